"""simplify_embedding_lookup: SparseSegment*(Gather(w, Unique(ids):0), Unique(ids):1, seg) -> SparseSegment*(w, ids, seg)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_def_of
from graphxform.transforms.quantize_weights import QuantizeWeights
from graphxform.transforms.simplify_embedding_lookup import SimplifyEmbeddingLookup
from rule_check import reason, transformed

from graphxform.core.graph import Graph
from graphxform.engine.registry import get_rule
from graphxform.engine.runner import run_pipeline

TABLE = (np.arange(2000 * 8, dtype=np.float32).reshape(2000, 8) % 97 - 48.0) / 7.0
IDS = np.array([3, 1999, 3, 7, 0, 1999, 42], np.int64)
INDICES = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [3, 0], [3, 1]], np.int64)


def _lookup(combiner: str, table: np.ndarray = TABLE):
    """``tf.nn.embedding_lookup_sparse`` as TensorFlow <= 2.15 (Estimators, feature columns) builds it."""
    op = {"mean": tf.raw_ops.SparseSegmentMean, "sum": tf.raw_ops.SparseSegmentSum,
          "sqrtn": tf.raw_ops.SparseSegmentSqrtN}[combiner]

    def build():
        ids = tf.compat.v1.placeholder(tf.int64, [None], name="ids")
        idx = tf.compat.v1.placeholder(tf.int64, [None, 2], name="indices")
        seg = tf.cast(idx[:, 0], tf.int32, name="segments")
        u = tf.unique(ids, name="unique")
        rows = tf.gather(tf.constant(table, name="table"), u.y, name="embedding_lookup")
        tf.identity(op(data=rows, indices=u.idx, segment_ids=seg, name="lookup_sparse"), name="out")

    return graph_def_of(build)


FEEDS = {"ids:0": IDS, "indices:0": INDICES}


def test_registered():
    assert get_rule("simplify_embedding_lookup") is SimplifyEmbeddingLookup
    assert SimplifyEmbeddingLookup.summary().startswith("Replaces ``SparseSegmentMean(Gather(params, Unique(ids):0)")


@pytest.mark.parametrize("combiner", ["mean", "sum", "sqrtn"])
def test_the_reduction_reads_the_table_directly(combiner):
    g, report = transformed(_lookup(combiner), FEEDS, ["out:0"], [SimplifyEmbeddingLookup()], rtol=1e-6)
    assert report.counts == {"simplify_embedding_lookup": 1}
    assert not g.nodes_by_op("Unique") and not g.nodes_by_op("GatherV2")
    (red,) = [n for n in g if n.op.startswith("SparseSegment")]
    assert g.producer(g.data_inputs(red.name)[0]).name == "table"
    assert red.attr["Tidx"].type == tf.int64.as_datatype_enum


def test_not_when_the_indices_are_not_the_unique_positions_or_the_gather_is_on_another_axis():
    def build():
        ids = tf.compat.v1.placeholder(tf.int64, [None], name="ids")
        seg = tf.compat.v1.placeholder(tf.int32, [None], name="seg")
        t = tf.constant(TABLE, name="table")
        u = tf.unique(ids, name="u")
        rows = tf.gather(t, u.y, name="rows")
        tf.math.segment_sum(rows, seg)  # noqa: B018 - keeps nothing; the next ones are the cases
        other = tf.raw_ops.SparseSegmentSum(data=rows, indices=tf.range(tf.size(u.y)), segment_ids=seg,
                                            name="other_indices")
        tf.identity(other, name="o1")
        tt = tf.constant(TABLE.T.copy(), name="table_t")
        cols = tf.gather(tt, u.y, axis=1, name="cols")
        on_axis1 = tf.raw_ops.SparseSegmentSum(data=cols, indices=u.idx, segment_ids=seg, name="axis1")
        tf.identity(on_axis1, name="o2")

    g = Graph(graph_def_of(build), protected=["o1", "o2"])
    assert "not the positions" in reason(SimplifyEmbeddingLookup(), g, "other_indices")
    assert "along axis [1], not 0" in reason(SimplifyEmbeddingLookup(), g, "axis1")


def test_not_when_the_gather_is_protected():
    g = Graph(_lookup("mean"), protected=["out"])
    (gather,) = g.nodes_by_op("GatherV2")
    g.protected.add(gather.name)
    (red,) = [n for n in g if n.op.startswith("SparseSegment")]
    assert "is protected" in reason(SimplifyEmbeddingLookup(), g, red.name)


def test_quantize_weights_then_dequantizes_only_the_rows_looked_up():
    gd = _lookup("mean")
    g, _ = transformed(gd, FEEDS, ["out:0"], [SimplifyEmbeddingLookup()])
    before = g.to_graph_def()
    from conftest import run

    want = run(before, FEEDS, ["out:0"])[0]
    run_pipeline(g, [QuantizeWeights(minimum_size=1000)])
    assert g.lint() == []
    (table,) = [n for n in g.nodes_by_op("Const") if n.attr["dtype"].type == tf.int8.as_datatype_enum]
    users = {g.node(d).op for d, _ in g.consumers(table.name)}
    assert users == {"GatherV2"}  # the rows of the unique ids, never the whole table widened
    assert not [n for n in g.nodes_by_op("Const") if g.const_value(n.name).size == TABLE.size
                and n.attr["dtype"].type == tf.float32.as_datatype_enum]
    got = run(g, FEEDS, ["out:0"])[0]
    assert np.abs(got - want).max() <= 1e-2 * np.abs(TABLE).max()
