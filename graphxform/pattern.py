"""Patterns over a :class:`~graphxform.graph.Graph`, matched from an anchor node upwards.

``Op("Conv2D|DepthwiseConv2dNative", Any(bind="x"), Const(bind="w"), bind="conv")``
matches a convolution whose second input is a ``Const``; the match binds
``conv``, ``x`` and ``w`` to ``NodeDef`` s. ``Op(..., commutative=True)``
tries its two inputs in both orders. A failed match returns the reason, so
``--explain`` can print why a rule did not fire.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any as _Any

from tensorflow.core.framework import node_def_pb2

from graphxform.graph import Graph, parse_input

Bindings = dict[str, node_def_pb2.NodeDef]


class Pattern:
    bind: str | None = None

    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Bindings | str:
        bindings: Bindings = {}
        reason = self._match(graph, node, 0, bindings)
        return reason if reason is not None else bindings

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, b: Bindings) -> str | None:
        raise NotImplementedError

    def _bind(self, node: node_def_pb2.NodeDef, b: Bindings) -> str | None:
        if self.bind:
            prev = b.get(self.bind)
            if prev is not None and prev.name != node.name:
                return f"{self.bind!r} bound to both {prev.name!r} and {node.name!r}"
            b[self.bind] = node
        return None


@dataclass
class Any(Pattern):
    """Any producer (optionally of output port ``port``)."""

    bind: str | None = None
    port: int | None = None

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, b: Bindings) -> str | None:
        if self.port is not None and port != self.port:
            return f"{node.name!r} output {port} is not port {self.port}"
        return self._bind(node, b)


@dataclass
class Op(Pattern):
    """A node whose op is one of ``"A|B"`` (``"*"``: any op), with data inputs matching ``inputs``.

    Extra data inputs beyond those listed are allowed unless ``exact``.
    ``where(node) -> None | reason`` adds a custom check.
    """

    ops: str
    inputs: tuple[Pattern, ...] = ()
    bind: str | None = None
    commutative: bool = False
    exact: bool = False
    where: Callable[[node_def_pb2.NodeDef], str | None] | None = None
    single_use: bool = False

    def __init__(self, ops: str, *inputs: Pattern, bind: str | None = None, commutative: bool = False,
                 exact: bool = False, where: Callable[[node_def_pb2.NodeDef], str | None] | None = None,
                 single_use: bool = False) -> None:
        self.ops = ops
        self.inputs = inputs
        self.bind = bind
        self.commutative = commutative
        self.exact = exact
        self.where = where
        self.single_use = single_use

    @property
    def op_set(self) -> frozenset[str] | None:
        return None if self.ops == "*" else frozenset(self.ops.split("|"))

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, b: Bindings) -> str | None:
        ops = self.op_set
        if ops is not None and node.op not in ops:
            return f"{node.name!r} is {node.op}, not {self.ops}"
        if self.where is not None:
            reason = self.where(node)
            if reason:
                return f"{node.name!r}: {reason}"
        if self.single_use and len(graph.consumer_nodes(node.name)) > 1:
            return f"{node.name!r} has more than one consumer"
        reason = self._bind(node, b)
        if reason:
            return reason
        data = graph.data_inputs(node.name)
        if len(data) < len(self.inputs) or (self.exact and len(data) != len(self.inputs)):
            return f"{node.name!r} has {len(data)} inputs, pattern wants {len(self.inputs)}"
        orders = [list(range(len(self.inputs)))]
        if self.commutative and len(self.inputs) == 2:
            orders.append([1, 0])
        first_reason = None
        for order in orders:
            trial = dict(b)
            reason = None
            for pat_i, in_i in enumerate(order):
                src, src_port, _ = parse_input(data[in_i])
                src_node = graph.get(src)
                if src_node is None:
                    reason = f"{node.name!r} input {data[in_i]!r} is dangling"
                    break
                reason = self.inputs[pat_i]._match(graph, src_node, src_port, trial)
                if reason:
                    break
            if reason is None:
                b.clear()
                b.update(trial)
                return None
            first_reason = first_reason or reason
        return first_reason


@dataclass
class Const(Pattern):
    """A ``Const`` node, optionally of a dtype (``DataType`` enum or name), rank or shape."""

    bind: str | None = None
    dtype: _Any = None
    rank: int | None = None
    shape: tuple[int, ...] | None = None
    where: Callable[[node_def_pb2.NodeDef], str | None] | None = field(default=None)

    def _match(self, graph: Graph, node: node_def_pb2.NodeDef, port: int, b: Bindings) -> str | None:
        if node.op != "Const":
            return f"{node.name!r} is {node.op}, not Const"
        t = node.attr["value"].tensor
        if self.dtype is not None:
            import tensorflow as tf

            want = tf.as_dtype(self.dtype).as_datatype_enum
            if t.dtype != want:
                return f"{node.name!r} is {tf.as_dtype(t.dtype).name}, not {tf.as_dtype(want).name}"
        dims = [d.size for d in t.tensor_shape.dim]
        if self.rank is not None and len(dims) != self.rank:
            return f"{node.name!r} has rank {len(dims)}, not {self.rank}"
        if self.shape is not None and tuple(dims) != tuple(self.shape):
            return f"{node.name!r} has shape {dims}, not {list(self.shape)}"
        if self.where is not None:
            reason = self.where(node)
            if reason:
                return f"{node.name!r}: {reason}"
        return self._bind(node, b)


def anchors_of(pattern: Pattern | None) -> frozenset[str] | None:
    """The op set a pattern can start from (``None``: any)."""
    if isinstance(pattern, Op):
        return pattern.op_set
    if isinstance(pattern, Const):
        return frozenset({"Const"})
    return None
