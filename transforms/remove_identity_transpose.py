"""``remove_identity_transpose``: a ``Transpose`` that moves nothing goes; two in a row become one (or none).

Grappler does the same (``constant_folding.cc`` ``RemoveShuffleOrTranspose``, ``arithmetic_optimizer.cc``
``RemoveIdentityTranspose``). Keras' ``Dense`` on a rank-3 input goes through ``tensordot``, which transposes with
the permutation ``[0, 1, 2]``. No GTT name.
"""
from __future__ import annotations

import numpy as np

from graphxform import Any, Const, Graph, Match, NodeDef, Op, Replacement, Rule, const, register, with_inputs
from graphxform.transforms._bypass import bypass, bypass_reason


def _perm(match: Match, key: str) -> np.ndarray | None:
    value = np.asarray(match.graph.const_value(match[key].name))
    if value.ndim != 1 or sorted(value.tolist()) != list(range(value.size)):
        return None
    return value


@register
class RemoveIdentityTranspose(Rule):
    """Replaces ``Transpose(x, [0, 1, ..., n-1])`` by ``x``, and ``Transpose(Transpose(y, p), q)`` by ``y`` (``p[q]`` the identity) or by ``Transpose(y, p[q])``.

    Also by ``x``: a permutation that only moves dimensions of size 1, when
    TensorFlow's static shapes say so (``[1, 5, 1]`` with ``[2, 1, 0]``).
    Two transposes merge into one only when the inner one has no other reader
    and is not protected; when they cancel, the outer one's readers read ``y``
    and the inner one goes too unless something else reads it. Not done: a permutation that
    is not a ``Const``, ``ConjugateTranspose``, a node that is protected or has
    control inputs, a signature output that would name a signature input or
    another output's tensor, TF1 control-flow frames, ``_class`` colocation.
    """

    name = "remove_identity_transpose"
    pattern = Op("Transpose", Any(bind="x"), Const(bind="perm"), bind="t")

    def match(self, graph: Graph, node: NodeDef) -> Match | str:
        m = super().match(graph, node)
        if isinstance(m, str):
            return m
        inner = m["x"]
        if inner.op == "Transpose":
            data = graph.data_inputs(inner.name)
            if len(data) == 2 and graph.producer(data[1]).op == "Const":
                m.nodes["inner_perm"] = graph.producer(data[1])
        return m

    def check(self, match: Match) -> str | None:
        graph, t = match.graph, match["t"]
        perm = _perm(match, "perm")
        if perm is None:
            return f"{match['perm'].name!r} is not a permutation"
        if np.array_equal(perm, np.arange(perm.size)):
            return bypass_reason(match, t, match.tensor("x"))
        if "inner_perm" in match:
            p = _perm(match, "inner_perm")
            if p is not None and p.size == perm.size:
                inner = match["x"]
                composed = p[perm]
                y = graph.data_inputs(inner.name)[0]
                if np.array_equal(composed, np.arange(perm.size)):
                    return bypass_reason(match, t, y)
                if graph.consumer_nodes(inner.name) != [t.name] or graph.is_protected(inner.name):
                    return f"the inner Transpose {inner.name!r} has other readers or is protected"
                if graph.control_inputs(inner.name) or "_class" in inner.attr:
                    return f"the inner Transpose {inner.name!r} has control inputs or a colocation constraint"
                if inner.device != t.device:
                    return f"{inner.name!r} and {t.name!r} are on different devices"
                return None
        shape = match.ctx.static_shapes(graph).shape(match.tensor("x"))
        if shape is None or len(shape) != perm.size:
            return f"{t.name!r} permutes dimensions ({perm.tolist()}) and the input's shape is not known"
        for i, j in enumerate(perm.tolist()):
            if i != j and (shape[i] != 1 or shape[j] != 1):
                dims = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
                return f"{t.name!r} moves dimension {j} of {dims} (permutation {perm.tolist()})"
        return bypass_reason(match, t, match.tensor("x"))

    def rewrite(self, match: Match) -> Replacement:
        graph, t = match.graph, match["t"]
        perm = _perm(match, "perm")
        assert perm is not None
        if "inner_perm" in match and not np.array_equal(perm, np.arange(perm.size)):
            p = _perm(match, "inner_perm")
            if p is not None and p.size == perm.size:
                inner = match["x"]
                composed = p[perm]
                y = graph.data_inputs(inner.name)[0]
                if np.array_equal(composed, np.arange(perm.size)):
                    alone = graph.consumer_nodes(inner.name) == [t.name] and not graph.is_protected(inner.name)
                    return bypass(graph, t, y, remove=[inner.name] if alone else None)
                dtype = graph.node(match["perm"].name).attr["dtype"].type
                c = const(graph.unique_name(f"{t.name}/perm"), composed.astype(perm.dtype), dtype,
                          device=t.device)
                ctrl = ["^" + n for n in graph.control_inputs(t.name)]
                return Replacement(add=[c], update=[with_inputs(t, [y, c.name, *ctrl])], remove=[inner.name])
        return bypass(graph, t, match.tensor("x"))


__all__ = ["RemoveIdentityTranspose"]
