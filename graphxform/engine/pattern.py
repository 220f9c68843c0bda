"""Patterns over a :class:`~graphxform.core.graph.Graph`, matched from an anchor node upwards.

``Op("Conv2D|DepthwiseConv2dNative", Any(bind="x"), Const(bind="w"), bind="conv")``
matches a convolution whose second input is a ``Const``; the match binds
``conv``, ``x`` and ``w`` to ``NodeDef`` s (and, through
:meth:`Pattern.match_full`, to the tensors that were consumed, e.g.
``"split:1"``). The building blocks:

* ``Op("A|B", *inputs)``: op alternatives (``"*"`` is any op); the listed
  patterns match the first data inputs (more inputs are allowed unless
  ``exact=True``); ``commutative=True`` also tries the two inputs swapped;
  ``single_use=True`` wants exactly one consumer; ``where(node)`` returns
  ``None`` or the reason it does not match.
* ``Any()``: any producer (a wildcard), optionally of one output ``port``.
* ``Const(dtype=, rank=, shape=, where=)``: a ``Const`` node with predicates.
* ``OneOf(p1, p2, ...)``: the first alternative that matches.

A name bound twice must be bound to the same tensor both times, so
``Op("Sub", Any(bind="x"), Any(bind="x"))`` matches ``Sub(t, t)`` only. A
failed match returns the reason, so ``--explain`` can print why a rule did
not fire.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any as _Any

import tensorflow as tf
from tensorflow.core.framework import node_def_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.names import parse_input

Bindings = dict[str, node_def_pb2.NodeDef]
Where = Callable[[node_def_pb2.NodeDef], "str | None"]


class _State:
    """Bindings under construction: name -> node, and name -> tensor ("node:port")."""

    __slots__ = ("nodes", "tensors")

    def __init__(self, nodes: Bindings | None = None, tensors: dict[str, str] | None = None) -> None:
        self.nodes: Bindings = nodes if nodes is not None else {}
        self.tensors: dict[str, str] = tensors if tensors is not None else {}

    def copy(self) -> _State:
        return _State(dict(self.nodes), dict(self.tensors))

    def assign(self, other: _State) -> None:
        self.nodes = other.nodes
        self.tensors = other.tensors


class Pattern:
    """Base class: ``match(graph, node)`` gives the bindings or the reason there is no match."""

    bind: str | None = None

    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Bindings | str:
        """Match with ``node`` as the anchor: ``{bind name: NodeDef}`` or the reason it fails."""
        out = self.match_full(graph, node)
        return out if isinstance(out, str) else out[0]

    def match_full(self, graph: Graph, node: node_def_pb2.NodeDef) -> tuple[Bindings, dict[str, str]] | str:
        """Like :meth:`match`, plus ``{bind name: tensor}`` (the output of the bound node that was consumed)."""
        state = _State()
        reason = self._match(graph, node, 0, state)
        return reason if reason is not None else (state.nodes, state.tensors)

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, st: _State) -> str | None:
        raise NotImplementedError

    def _bind(self, node: node_def_pb2.NodeDef, port: int, st: _State) -> str | None:
        if self.bind:
            tensor = f"{node.name}:{port}"
            prev = st.tensors.get(self.bind)
            if prev is not None and prev != tensor:
                return f"{self.bind!r} bound to both {prev!r} and {tensor!r}"
            st.nodes[self.bind] = node
            st.tensors[self.bind] = tensor
        return None

    def depth(self) -> int:
        """How many edges above the anchor the pattern looks (0: the anchor only)."""
        return 0


@dataclass
class Any(Pattern):
    """Any producer (optionally of output port ``port``)."""

    bind: str | None = None
    port: int | None = None

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, st: _State) -> str | None:
        if self.port is not None and port != self.port:
            return f"{node.name!r} output {port} is used, not output {self.port}"
        return self._bind(node, port, st)


@dataclass
class Op(Pattern):
    """A node whose op is one of ``"A|B"`` (``"*"``: any op), with data inputs matching ``inputs``.

    Extra data inputs beyond those listed are allowed unless ``exact``.
    ``where(node) -> None | reason`` adds a custom check; ``single_use``
    wants the node to have exactly one consumer (data or control).
    """

    ops: str
    inputs: tuple[Pattern, ...] = ()
    bind: str | None = None
    commutative: bool = False
    exact: bool = False
    where: Where | None = None
    single_use: bool = False

    def __init__(self, ops: str, *inputs: Pattern, bind: str | None = None, commutative: bool = False,
                 exact: bool = False, where: Where | None = None, single_use: bool = False) -> None:
        if not ops or any(not o for o in ops.split("|")):
            raise ValueError(f"Op pattern needs op names like 'Add|AddV2' or '*', got {ops!r}")
        for p in inputs:
            if not isinstance(p, Pattern):
                raise TypeError(f"Op({ops!r}) inputs must be patterns (Op, Any, Const, OneOf), got {p!r}")
        if commutative and len(inputs) != 2:
            raise ValueError(f"Op({ops!r}, commutative=True) needs exactly two input patterns")
        self.ops = ops
        self.inputs = inputs
        self.bind = bind
        self.commutative = commutative
        self.exact = exact
        self.where = where
        self.single_use = single_use
        self._op_set = None if ops == "*" else frozenset(ops.split("|"))

    @property
    def op_set(self) -> frozenset[str] | None:
        return self._op_set

    def match_full(self, graph: Graph, node: node_def_pb2.NodeDef) -> tuple[Bindings, dict[str, str]] | str:
        if self.inputs or self.exact or self.where is not None or self.single_use or type(self)._match is not Op._match:
            return super().match_full(graph, node)
        # One op, nothing else to check (a rule's pattern Op("Identity", bind=...)): the op, and the anchor's binding.
        ops = self._op_set
        if ops is not None and node.op not in ops:
            return f"{node.name!r} is {node.op}, not {self.ops}"
        bind = self.bind
        if not bind:
            return {}, {}
        return {bind: node}, {bind: f"{node.name}:0"}

    def depth(self) -> int:
        return 1 + max((p.depth() for p in self.inputs), default=-1)

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, st: _State) -> str | None:
        ops = self._op_set
        if ops is not None and node.op not in ops:
            return f"{node.name!r} is {node.op}, not {self.ops}"
        if self.where is not None:
            reason = self.where(node)
            if reason:
                return f"{node.name!r}: {reason}"
        if self.single_use:
            users = graph.consumer_nodes(node.name)
            if len(users) != 1:
                return f"{node.name!r} has {len(users)} consumers, pattern wants exactly one"
        reason = self._bind(node, port, st)
        if reason:
            return reason
        if not self.inputs and not self.exact:
            return None
        data = [i for i in node.input if not i.startswith("^")]
        if len(data) < len(self.inputs) or (self.exact and len(data) != len(self.inputs)):
            want = f"{'exactly ' if self.exact else 'at least '}{len(self.inputs)}"
            return f"{node.name!r} has {len(data)} data inputs, pattern wants {want}"
        orders: list[tuple[int, ...]] = [tuple(range(len(self.inputs)))]
        if self.commutative:
            orders.append((1, 0))
        first_reason = None
        for order in orders:
            trial = st.copy()
            reason = None
            for pat_i, in_i in enumerate(order):
                src, src_port, _ = parse_input(data[in_i])
                src_node = graph.get(src)
                if src_node is None:
                    reason = f"{node.name!r} input {data[in_i]!r} names no node"
                    break
                reason = self.inputs[pat_i]._match(graph, src_node, src_port, trial)
                if reason:
                    break
            if reason is None:
                st.assign(trial)
                return None
            first_reason = first_reason or reason
        return first_reason


@dataclass
class Const(Pattern):
    """A ``Const`` node, optionally of a dtype (``DataType`` enum, name or ``tf.DType``), rank or shape.

    ``shape`` may hold ``None`` for a dimension of any size.
    """

    bind: str | None = None
    dtype: _Any = None
    rank: int | None = None
    shape: tuple[int | None, ...] | None = None
    where: Where | None = field(default=None)

    def __post_init__(self) -> None:
        self._dtype_enum: int | None = None
        if self.dtype is not None:
            try:
                self._dtype_enum = tf.as_dtype(self.dtype).as_datatype_enum
            except TypeError:
                raise ValueError(f"Const(dtype={self.dtype!r}): not a TensorFlow dtype") from None
        if self.shape is not None:
            self.shape = tuple(self.shape)
            if self.rank is not None and self.rank != len(self.shape):
                raise ValueError(f"Const(rank={self.rank}, shape={list(self.shape)}) contradict each other")

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, st: _State) -> str | None:
        if node.op != "Const":
            return f"{node.name!r} is {node.op}, not Const"
        if "value" not in node.attr:  # (indexing a proto map would insert the key)
            return f"{node.name!r} is a Const without a value"
        t = node.attr["value"].tensor
        if self._dtype_enum is not None and t.dtype != self._dtype_enum:
            have = types_pb2.DataType.Name(t.dtype) if t.dtype in types_pb2.DataType.values() else str(t.dtype)
            return f"{node.name!r} is {have}, not {types_pb2.DataType.Name(self._dtype_enum)}"
        if self.rank is not None or self.shape is not None:
            dims = [d.size for d in t.tensor_shape.dim]
            if self.rank is not None and len(dims) != self.rank:
                return f"{node.name!r} has rank {len(dims)}, not {self.rank}"
            if self.shape is not None and (
                len(dims) != len(self.shape) or any(w is not None and w != d for w, d in zip(self.shape, dims))
            ):
                want = ["?" if w is None else w for w in self.shape]
                return f"{node.name!r} has shape {dims}, not {want}"
        if self.where is not None:
            reason = self.where(node)
            if reason:
                return f"{node.name!r}: {reason}"
        return self._bind(node, port, st)


class OneOf(Pattern):
    """The first of several alternative patterns that matches (``bind`` names whichever node matched)."""

    def __init__(self, *alternatives: Pattern, bind: str | None = None) -> None:
        if not alternatives:
            raise ValueError("OneOf needs at least one alternative")
        self.alternatives = alternatives
        self.bind = bind

    def __repr__(self) -> str:
        return f"OneOf({', '.join(map(repr, self.alternatives))}, bind={self.bind!r})"

    def depth(self) -> int:
        return max(p.depth() for p in self.alternatives)

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, st: _State) -> str | None:
        reasons = []
        op = node.op
        for alt in self.alternatives:
            ops = alt._op_set if isinstance(alt, Op) else None
            if ops is not None and op not in ops:  # (before copying the bindings: most nodes fail here)
                reasons.append(f"{node.name!r} is {op}, not {alt.ops}")
                continue
            trial = st.copy()
            reason = alt._match(graph, node, port, trial)
            if reason is None:
                reason = self._bind(node, port, trial)
                if reason is None:
                    st.assign(trial)
                    return None
            reasons.append(reason)
        return "no alternative matches: " + "; ".join(reasons)


def anchors_of(pattern: Pattern | None) -> frozenset[str] | None:
    """The op set a pattern can start from (``None``: any)."""
    if isinstance(pattern, Op):
        return pattern.op_set
    if isinstance(pattern, Const):
        return frozenset({"Const"})
    if isinstance(pattern, OneOf):
        sets = [anchors_of(p) for p in pattern.alternatives]
        if any(s is None for s in sets):
            return None
        return frozenset().union(*sets)  # type: ignore[arg-type]
    return None


def depth_of(pattern: Pattern | None) -> int:
    """How far above the anchor ``pattern`` looks (0 for ``None``)."""
    return pattern.depth() if isinstance(pattern, Pattern) else 0


__all__ = ["Any", "Bindings", "Const", "OneOf", "Op", "Pattern", "anchors_of", "depth_of"]
