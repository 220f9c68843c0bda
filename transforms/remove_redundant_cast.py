"""``remove_redundant_cast``: a ``Cast`` to the type its input has goes, and so does a lossless round trip.

Grappler removes the first (``arithmetic_optimizer.cc`` ``RemoveRedundantCastStage``); the round trip
``Cast(Cast(x, A -> B), B -> A)`` is ``x`` whenever ``B`` holds every value of ``A`` (``int32 -> int64 -> int32``,
``float32 -> float64 -> float32``, ``bool -> float -> bool``). No GTT name.
"""
from __future__ import annotations

from tensorflow.core.framework import types_pb2 as t

from graphxform import Any, Match, Op, Replacement, Rule, attr, register
from graphxform.transforms._bypass import bypass, bypass_reason

_NUMERIC = {t.DT_INT8, t.DT_UINT8, t.DT_INT16, t.DT_UINT16, t.DT_INT32, t.DT_UINT32, t.DT_INT64, t.DT_UINT64,
            t.DT_HALF, t.DT_BFLOAT16, t.DT_FLOAT, t.DT_DOUBLE}
#: type -> the types that hold every one of its values exactly (and cast back to it unchanged).
WIDER: dict[int, frozenset[int]] = {
    t.DT_BOOL: frozenset(_NUMERIC | {t.DT_COMPLEX64, t.DT_COMPLEX128}),
    t.DT_INT8: frozenset({t.DT_INT16, t.DT_INT32, t.DT_INT64, t.DT_HALF, t.DT_BFLOAT16, t.DT_FLOAT, t.DT_DOUBLE}),
    t.DT_UINT8: frozenset({t.DT_INT16, t.DT_UINT16, t.DT_INT32, t.DT_UINT32, t.DT_INT64, t.DT_UINT64, t.DT_HALF,
                           t.DT_BFLOAT16, t.DT_FLOAT, t.DT_DOUBLE}),
    t.DT_INT16: frozenset({t.DT_INT32, t.DT_INT64, t.DT_FLOAT, t.DT_DOUBLE}),
    t.DT_UINT16: frozenset({t.DT_INT32, t.DT_UINT32, t.DT_INT64, t.DT_UINT64, t.DT_FLOAT, t.DT_DOUBLE}),
    t.DT_INT32: frozenset({t.DT_INT64, t.DT_DOUBLE}),
    t.DT_UINT32: frozenset({t.DT_INT64, t.DT_UINT64, t.DT_DOUBLE}),
    t.DT_HALF: frozenset({t.DT_FLOAT, t.DT_DOUBLE}),
    t.DT_BFLOAT16: frozenset({t.DT_FLOAT, t.DT_DOUBLE}),
    t.DT_FLOAT: frozenset({t.DT_DOUBLE}),
    t.DT_COMPLEX64: frozenset({t.DT_COMPLEX128}),
}


def _types(node) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    src, dst = attr(node, "SrcT"), attr(node, "DstT")
    return (src.as_datatype_enum if src is not None else 0, dst.as_datatype_enum if dst is not None else 0)


def _name(dtype: int) -> str:
    return t.DataType.Name(dtype)[3:].lower() if dtype in t.DataType.values() else str(dtype)


@register
class RemoveRedundantCast(Rule):
    """Replaces ``Cast(x, T -> T)`` by ``x``, and ``Cast(Cast(x, A -> B), B -> A)`` by ``x`` when ``B`` holds every value of ``A``.

    Lossless round trips (:data:`WIDER`): ``bool`` through any number type;
    an integer through a wider integer, or a float type with enough mantissa
    bits (``int32 -> double``, ``uint8 -> half``); ``half``/``bfloat16 ->
    float -> double``; ``complex64 -> complex128``. Never through a narrower
    type (``float -> half -> float`` rounds) or ``int64 -> double``. The inner
    ``Cast`` stays if something else reads it. Not done: a node that is
    protected or has control inputs, a signature output that would name a
    signature input or another output's tensor, TF1 control-flow frames,
    ``_class`` colocation.
    """

    name = "remove_redundant_cast"
    pattern = Op("Cast", Any(bind="x"), bind="cast")

    def check(self, match: Match) -> str | None:
        cast, x = match["cast"], match["x"]
        src, dst = _types(cast)
        if src == 0 or dst == 0:
            return f"{cast.name!r} has no SrcT/DstT"
        if src == dst:
            return bypass_reason(match, cast, match.tensor("x"))
        if x.op != "Cast":
            return f"{cast.name!r} casts {_name(src)} to {_name(dst)}; its input is {x.op}, not a Cast"
        a, b = _types(x)
        if b != src or a != dst:
            return f"{x.name!r} and {cast.name!r} cast {_name(a)} -> {_name(b)} -> {_name(dst)}: not a round trip"
        if b not in WIDER.get(a, ()):
            return f"{_name(b)} does not hold every {_name(a)} value: the round trip {x.name!r} -> {cast.name!r} rounds"
        return bypass_reason(match, cast, match.input("x", 0))

    def rewrite(self, match: Match) -> Replacement:
        graph, cast, x = match.graph, match["cast"], match["x"]
        src, dst = _types(cast)
        if src == dst:
            return bypass(graph, cast, match.tensor("x"))
        return bypass(graph, cast, match.input("x", 0), remove=[x.name])


__all__ = ["WIDER", "RemoveRedundantCast"]
