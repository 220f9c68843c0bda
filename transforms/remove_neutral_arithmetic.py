"""``remove_neutral_arithmetic``: ``x * 1``, ``x / 1``, ``x + 0``, ``x - 0`` are ``x`` when the shape stays.

Grappler's constant folding does the same (``SimplifyArithmeticOperations``) when its symbolic shapes prove that
the constant does not broadcast ``x`` to a bigger shape. Here the proof comes from the constant's shape alone
when it can (a scalar, or all-1 dimensions no more than ``x`` 's rank), else from TensorFlow's static shapes
(:class:`graphxform.core.shapes.StaticShapes`). Keras' swish (``x * sigmoid(beta * x)`` with ``beta = 1``) and
an un-adapted ``Normalization`` layer (``(x - 0) / 1``) leave such ops. No GTT name.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.framework.tensor_pb2 import TensorProto

from graphxform import Any, Const, Graph, Match, NodeDef, OneOf, Op, Replacement, Rule, parse_input, register
from graphxform.core.nodes import tensor_proto_to_array
from graphxform.core.shapes import broadcast_keeps
from graphxform.transforms._bypass import bypass, bypass_reason


#: Where a small constant of these dtypes keeps its values when ``tensor_content`` is empty.
_VALUE_FIELDS = {types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT32: "int_val",
                 types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val", types_pb2.DT_UINT8: "int_val",
                 types_pb2.DT_INT64: "int64_val"}


def _all_equal_fast(t: TensorProto, value: float) -> bool | None:
    """Whether every element of the constant ``t`` equals ``value``, read from its ``*_val`` field (no array is
    built: this is asked of every constant operand of every arithmetic node); ``None`` when it cannot tell so."""
    field = _VALUE_FIELDS.get(t.dtype)
    if field is None or t.tensor_content:
        return None
    count = 1
    for d in t.tensor_shape.dim:
        count *= d.size
    vals = getattr(t, field)
    if count <= 0 or len(vals) > count:
        return None
    if not vals:  # no value written: all zeros
        return value == 0
    return all(v == value for v in vals)  # (fewer values than elements: the last one repeats)


def _all(value: float):  # type: ignore[no-untyped-def]
    def where(node: NodeDef) -> str | None:
        t = node.attr["value"].tensor
        same = _all_equal_fast(t, value)
        if same is None:
            v = tensor_proto_to_array(t)
            if v.dtype == object or v.dtype == np.bool_:
                return "not a number"
            same = v.size > 0 and bool(np.all(v == value))
        return None if same else f"not all {value:g}"
    return where


_ONE, _ZERO = _all(1), _all(0)
#: op -> (the neutral value, whether the constant may be either operand)
_NEUTRAL = {"Mul": (1, True), "RealDiv": (1, False), "Div": (1, False), "DivNoNan": (1, False),
            "Add": (0, True), "AddV2": (0, True), "Sub": (0, False), "BiasAdd": (0, False)}


def _may_match(graph: Graph, node: NodeDef) -> bool:
    """Whether an operand of ``node`` is a ``Const`` that may be all 1 (or 0): a cheap look before the pattern
    (every arithmetic node is a candidate, few have such an operand); ``True`` when it cannot tell so quickly."""
    value, either = _NEUTRAL[node.op]
    data = [i for i in node.input if not i.startswith("^")]
    for inp in data[:2] if either else data[1:2]:
        src = graph.get(parse_input(inp)[0])
        if src is not None and src.op == "Const" and "value" in src.attr:
            if _all_equal_fast(src.attr["value"].tensor, value) is not False:
                return True
    return False


_SMALL = 64  # elements: a constant this small is looked into before its readers are


def _neutral_readers(graph: Graph) -> set[str]:
    """The arithmetic nodes reading a ``Const`` that may be all 0 or all 1 where their op's neutral value is that
    one: every node :func:`_may_match` accepts is among them. Found from the constants (the graph's op index), which
    are far fewer than the arithmetic nodes, and hardly ever neutral."""
    readers: set[str] = set()
    succ = graph.adjacency()[0]
    for name in graph.names_by_op("Const"):
        src = graph.get(name)
        if src is None or "value" not in src.attr:
            continue
        users = succ.get(name)
        if not users:
            continue
        t = src.attr["value"].tensor
        neutral = None
        if math.prod(d.size for d in t.tensor_shape.dim) <= _SMALL:  # a small value is read first: most are
            neutral = {v for v in (0, 1) if _all_equal_fast(t, v) is not False}  # neither 0 nor 1, and a
            if not neutral:  # constant may have many readers
                continue
        # A larger one's arithmetic readers first: a weight read by a convolution is never looked into (reading
        # ``tensor_content`` copies the whole tensor).
        arithmetic = [(user, _NEUTRAL[op][0]) for user in users
                      if (op := getattr(graph.get(user), "op", None)) in _NEUTRAL]
        if not arithmetic:
            continue
        if neutral is None:
            neutral = {v for v in (0, 1) if _all_equal_fast(t, v) is not False}
        readers.update(user for user, value in arithmetic if value in neutral)
    return readers


@register
class RemoveNeutralArithmetic(Rule):
    """Replaces ``Mul(x, 1)``, ``Mul(1, x)``, ``RealDiv(x, 1)``, ``Add(x, 0)``, ``Sub(x, 0)``, ``BiasAdd(x, 0)`` by ``x``.

    The constant may be any shape whose every element is exactly 1 (for
    ``Mul``, ``RealDiv``, ``Div``, ``DivNoNan``) or 0 (for ``Add``, ``AddV2``,
    ``Sub``, ``BiasAdd``); for the non-commutative ops it must be the second
    operand (``1 / x`` and ``0 - x`` are not ``x``). Applied only when the
    result provably has ``x`` 's shape: the constant is a scalar, or its
    dimensions are all 1 and no more than ``x`` 's rank, or TensorFlow's
    static shapes say each dimension of the constant is 1 or equals ``x`` 's
    (``x[?, 1] * ones[8]`` broadcasts to ``[?, 8]`` and stays). Consumers
    and signatures read ``x`` instead.

    Not done: a constant fed as a signature input or with control inputs, a
    node that is protected or has control inputs, a signature output that would name a signature input
    or another output's tensor, TF1 control-flow frames and control-flow
    neighbours, ``_class`` colocation.
    """

    name = "remove_neutral_arithmetic"
    pattern = OneOf(
        Op("Mul", Any(bind="x"), Const(bind="c", where=_ONE), commutative=True, bind="op"),
        Op("RealDiv|Div|DivNoNan", Any(bind="x"), Const(bind="c", where=_ONE), bind="op"),
        Op("Add|AddV2", Any(bind="x"), Const(bind="c", where=_ZERO), commutative=True, bind="op"),
        Op("Sub|BiasAdd", Any(bind="x"), Const(bind="c", where=_ZERO), bind="op"),
    )

    def candidates(self, graph: Graph, names: Iterable[str] | None = None) -> list[NodeDef]:
        """The arithmetic nodes with a ``Const`` operand that may be neutral (the pattern decides)."""
        names = list(names) if names is not None else None
        if names is not None and len(names) <= len(graph.names_by_op("Const")):
            return [n for n in super().candidates(graph, names) if _may_match(graph, n)]
        # Many nodes to look at: look from the constants instead (most graphs have no neutral one).
        readers = _neutral_readers(graph)
        return [n for n in super().candidates(graph, names) if n.name in readers and _may_match(graph, n)] \
            if readers else []

    def check(self, match: Match) -> str | None:
        graph, node, c, x = match.graph, match["op"], match["c"], match.tensor("x")
        for sig, side, key, _ in graph.signature_uses(c.name):
            if side == "input":
                return f"{c.name!r} is signature {sig.key!r} input {key!r}: its value is fed, not constant"
        if graph.control_inputs(c.name):
            return f"the constant {c.name!r} has control inputs: readers of {node.name!r} wait for them"
        if node.op != "BiasAdd":  # a bias always has the channel dimension's size
            cshape = tuple(d.size for d in c.attr["value"].tensor.tensor_shape.dim)
            reason = _shape_kept(graph, match, x, cshape)
            if reason:
                return reason
        return bypass_reason(match, node, x)

    def rewrite(self, match: Match) -> Replacement:
        return bypass(match.graph, match["op"], match.tensor("x"))


def _shape_kept(graph: Graph, match: Match, x: str, cshape: tuple[int, ...]) -> str | None:
    """``None`` when broadcasting ``x`` with a constant of ``cshape`` provably leaves ``x`` 's shape."""
    if not cshape:
        return None
    shape = match.ctx.static_shapes(graph).shape(x)
    if broadcast_keeps(shape, cshape):
        return None
    have = "unknown" if shape is None else "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
    return (f"the constant {match['c'].name!r} of shape {list(cshape)} may broadcast {x!r} (static shape {have}) "
            "to a bigger shape")


__all__ = ["RemoveNeutralArithmetic"]
