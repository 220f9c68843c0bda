"""``merge_concat``: a concat of a concat along the same axis is one concat.

Grappler does the same (``constant_folding.cc`` ``MergeConcat``). InceptionV3's ``mixed9``/``mixed10`` blocks
concatenate concats of their branches. No GTT name.
"""
from __future__ import annotations

import numpy as np

from graphxform import Graph, Match, NodeDef, Op, Replacement, Rule, parse_input, register, with_attrs, with_inputs

CONCAT_OPS = ("ConcatV2", "Concat")


def _parts(graph: Graph, node: NodeDef) -> tuple[list[str], str] | None:
    """(values, axis tensor) of a ``ConcatV2``/``Concat``, or ``None`` when its inputs do not add up."""
    data = graph.data_inputs(node.name)
    if "N" not in node.attr or len(data) != node.attr["N"].i + 1:
        return None
    return (data[1:], data[0]) if node.op == "Concat" else (data[:-1], data[-1])


def _axis(graph: Graph, tensor: str) -> int | None:
    src = graph.producer(tensor)
    if src.op != "Const":
        return None
    value = np.asarray(graph.const_value(src.name))
    return int(value) if value.ndim == 0 else None


@register
class MergeConcat(Rule):
    """Replaces ``Concat(a, Concat(b, c, axis), d, axis)`` by ``Concat(a, b, c, d, axis)``.

    ``ConcatV2`` and ``Concat`` (either may be inside the other). The axes
    are constants; ``-1`` and ``3`` are the same axis when TensorFlow's static
    shapes give the rank. The inner concat must be read by this concat only,
    not be protected or a signature tensor, and have no control inputs,
    ``_class`` colocation or other device; the outer one keeps its name.
    Not done inside TF1 control-flow frames.
    """

    name = "merge_concat"
    pattern = Op("ConcatV2|Concat", bind="concat")
    reach = 1

    def match(self, graph: Graph, node: NodeDef) -> Match | str:
        m = super().match(graph, node)
        if isinstance(m, str):
            return m
        parts = _parts(graph, node)
        if parts is None:
            return f"{node.name!r}: N does not match its inputs"
        values, _ = parts
        inner = [graph.producer(v) for v in values]
        inner = [n for n in dict.fromkeys(n.name for n in inner if n.op in CONCAT_OPS)]
        if not inner:
            return f"no input of {node.name!r} is a concat"
        m.extra["inner"] = inner
        return m

    def _mergeable(self, match: Match) -> tuple[list[str], list[str]]:
        """(inner concats that can merge, reasons for the others)."""
        graph, outer = match.graph, match["concat"]
        _, axis = _parts(graph, outer)  # type: ignore[misc]
        a = _axis(graph, axis)
        ok, why = [], []
        facts = match.ctx.frame_facts(graph, [outer.name, *match.extra["inner"]])
        for name in match.extra["inner"]:
            inner = graph.node(name)
            parts = _parts(graph, inner)
            b = _axis(graph, parts[1]) if parts else None
            if a is None or b is None:
                why.append(f"the axes of {outer.name!r} and {name!r} are not both constant scalars")
                continue
            if a != b:
                rank = match.ctx.static_shapes(graph).rank(f"{outer.name}:0")
                if rank is None or a % rank != b % rank:
                    why.append(f"{name!r} concatenates along axis {b}, {outer.name!r} along {a}")
                    continue
            if graph.consumer_nodes(name) != [outer.name] or graph.is_protected(name):
                why.append(f"{name!r} has other readers or is protected")
            elif graph.control_inputs(name) or "_class" in inner.attr or name in facts.colocated_with:
                why.append(f"{name!r} has control inputs or a colocation constraint")
            elif inner.device != outer.device or name in facts.in_frame or outer.name in facts.in_frame:
                why.append(f"{name!r} is on another device or in a TF1 control-flow frame")
            elif "T" in inner.attr and "T" in outer.attr and inner.attr["T"].type != outer.attr["T"].type:
                why.append(f"{name!r} and {outer.name!r} have different T")
            elif any(parse_input(v)[1] != 0 for v in graph.data_inputs(outer.name) if parse_input(v)[0] == name):
                why.append(f"{outer.name!r} reads an output of {name!r} other than 0")
            else:
                ok.append(name)
        return ok, why

    def check(self, match: Match) -> str | None:
        ok, why = self._mergeable(match)
        return None if ok else "; ".join(why)

    def rewrite(self, match: Match) -> Replacement:
        graph, outer = match.graph, match["concat"]
        ok, _ = self._mergeable(match)
        values, axis = _parts(graph, outer)  # type: ignore[misc]
        merged: list[str] = []
        for v in values:
            src = parse_input(v)[0]
            merged.extend(_parts(graph, graph.node(src))[0] if src in ok else [v])  # type: ignore[index]
        ctrl = ["^" + c for c in graph.control_inputs(outer.name)]
        inputs = [axis, *merged] if outer.op == "Concat" else [*merged, axis]
        node = with_attrs(with_inputs(outer, [*inputs, *ctrl]), N=len(merged))
        return Replacement(update=[node], remove=ok)


__all__ = ["MergeConcat"]
