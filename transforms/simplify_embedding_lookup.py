"""``simplify_embedding_lookup``: a sparse segment reduction reads the embedding table directly.

``tf.nn.embedding_lookup_sparse`` (feature columns, Estimators) gathers the rows of the unique ids and reduces
them by segment with the ids' positions: ``SparseSegmentMean(Gather(params, Unique(ids).y), Unique(ids).idx,
segments)``. The reduction can gather by itself: ``SparseSegmentMean(params, ids, segments)``, the same sums in
the same order. Grappler does the same (``arithmetic_optimizer.cc`` ``SimplifyEmbeddingLookupStage``).
``quantize_weights`` knows this form: an int8 table read by a sparse segment reduction still dequantizes only the
rows looked up. No GTT name.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphxform import Any, Graph, Match, NodeDef, Op, Replacement, Rule, register, with_attrs, with_inputs
from graphxform.core.opdefs import attr_int

#: The sparse segment reductions; the ``WithNumSegments`` forms take one more input, kept as it is.
SPARSE_SEGMENT_OPS = ("SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN", "SparseSegmentSumWithNumSegments",
                      "SparseSegmentMeanWithNumSegments", "SparseSegmentSqrtNWithNumSegments")


def _axis_zero(graph: Graph, gather: NodeDef) -> str | None:
    if gather.op == "Gather":
        return None
    if attr_int(gather, "batch_dims") != 0:
        return f"{gather.name!r} has batch_dims={attr_int(gather, 'batch_dims')}"
    data = graph.data_inputs(gather.name)
    if len(data) < 3 or graph.producer(data[2]).op != "Const":
        return f"the axis of {gather.name!r} is not a constant"
    axis = np.asarray(graph.const_value(graph.producer(data[2]).name))
    if axis.size != 1 or int(axis.reshape(-1)[0]) != 0:
        return f"{gather.name!r} gathers along axis {axis.reshape(-1).tolist()}, not 0"
    return None


@register
class SimplifyEmbeddingLookup(Rule):
    """Replaces ``SparseSegmentMean(Gather(params, Unique(ids):0), Unique(ids):1, seg)`` by ``SparseSegmentMean(params, ids, seg)``.

    Also ``SparseSegmentSum``, ``SparseSegmentSqrtN`` and their
    ``WithNumSegments`` forms; ``Gather`` or ``GatherV2`` (axis a constant 0,
    ``batch_dims`` 0); ``Unique`` (not ``UniqueV2`` on another axis). The
    reduction keeps its name; its ``Tidx`` becomes the ids' type. The gather
    and the ``Unique`` go once nothing else reads them. Not done: the
    reduction's indices are not output 1 of the ``Unique`` whose output 0 the
    gather reads; the reduction has control inputs; the gather or ``Unique``
    is protected (a signature tensor, listed by the user); different devices.
    """

    name = "simplify_embedding_lookup"
    pattern = Op("|".join(SPARSE_SEGMENT_OPS),
                 Op("GatherV2|Gather", Any(bind="params"), Op("Unique", Any(bind="ids"), bind="unique"),
                    bind="gather"),
                 Any(bind="idx"), bind="reduce")

    def check(self, match: Match) -> str | None:
        graph, reduce, gather, unique = match.graph, match["reduce"], match["gather"], match["unique"]
        if match.tensor("unique") != f"{unique.name}:0":
            return f"{gather.name!r} reads {match.tensor('unique')!r}, not the unique values"
        if match.tensor("idx") != f"{unique.name}:1":
            return (f"the indices of {reduce.name!r} are {match.tensor('idx')!r}, not the positions "
                    f"{unique.name}:1 of the ids {gather.name!r} gathers")
        reason = _axis_zero(graph, gather)
        if reason:
            return reason
        for n in (gather, unique):
            if graph.is_protected(n.name):
                return f"{n.name!r} is protected (a signature tensor or listed by the user)"
        if graph.control_inputs(reduce.name):
            return f"{reduce.name!r} has control inputs"
        if len({reduce.device, gather.device, unique.device}) > 1:
            return f"{reduce.name!r}, {gather.name!r} and {unique.name!r} are on different devices"
        if graph.output_dtype(match.tensor("ids")) is None:
            return f"the type of the ids {match.tensor('ids')!r} is unknown"
        return None

    def rewrite(self, match: Match) -> Replacement:
        graph, reduce = match.graph, match["reduce"]
        data = graph.data_inputs(reduce.name)
        ids = match.tensor("ids")
        new = with_inputs(reduce, [match.tensor("params"), ids, *data[2:]])
        new = with_attrs(new, Tidx=tf.as_dtype(graph.output_dtype(ids)))
        return Replacement(update=[new], remove=[match["gather"].name, match["unique"].name])


__all__ = ["SPARSE_SEGMENT_OPS", "SimplifyEmbeddingLookup"]
