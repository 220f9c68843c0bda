"""``backport_concatv2`` (GTT): ``ConcatV2`` back to the old ``Concat`` (axis first)."""
from __future__ import annotations

import tensorflow as tf

from graphxform import Match, Op, Replacement, Rule, copy_node, register
from graphxform.core.opdefs import attr_type


@register
class BackportConcatV2(Rule):
    """Replaces ``ConcatV2(v0, ..., vn, axis)`` by ``Concat(axis, v0, ..., vn)`` (no ``Tidx``).

    GTT's ``backport_concatv2``, for runtimes that predate ``ConcatV2``. The node keeps its name, so its
    consumers are unchanged. Not rewritten: a ``ConcatV2`` whose axis is int64 (``Concat`` takes an int32
    ``concat_dim``).
    """

    name = "backport_concatv2"
    pattern = Op("ConcatV2", bind="concat")

    def check(self, match: Match) -> str | None:
        node = match.anchor
        if "Tidx" in node.attr and attr_type(node, "Tidx") != tf.int32.as_datatype_enum:
            return f"{node.name!r} has an int64 axis; Concat takes an int32 concat_dim"
        if len(match.graph.data_inputs(node.name)) < 2:
            return f"{node.name!r} has no axis input"
        return None

    def rewrite(self, match: Match) -> Replacement:
        node = copy_node(match.anchor, op="Concat")
        data = [i for i in node.input if not i.startswith("^")]
        control = [i for i in node.input if i.startswith("^")]
        del node.input[:]
        node.input.extend([data[-1], *data[:-1], *control])
        if "Tidx" in node.attr:
            del node.attr["Tidx"]
        return Replacement(update=[node])


__all__ = ["BackportConcatV2"]
