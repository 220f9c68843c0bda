"""quantize_weights: int8 per-channel/per-tensor and float16 weights, chunked storage Grappler folds back at load
time, embedding rows, fixpoint, no-fire cases."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_def_of, run
from graphxform.transforms.quantize_weights import (
    FOLD_CHUNK_ELEMENTS,
    QuantizeWeights,
    symmetric_int8,
)
from tensorflow.core.framework import types_pb2

from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.engine.explain import explain
from graphxform.engine.registry import get_rule
from graphxform.engine.runner import run_pipeline


# ----------------------------------------------------------------- helpers
def _quantize(gd, protected=("out",), **params) -> tuple[Graph, dict[str, int]]:
    g = Graph(gd, protected=protected)
    report = run_pipeline(g, [QuantizeWeights(**params)])
    assert g.lint() == []
    return g, report.counts


def _explain(graph: Graph, name: str, **params) -> str | None:
    return dict(explain(graph, QuantizeWeights(**params)))[name]


def _big_float_consts(g: Graph, minimum: int = 1024) -> list[str]:
    return [n.name for n in g.nodes_by_op("Const")
            if n.attr["dtype"].type == types_pb2.DT_FLOAT and g.const_value(n.name).size >= minimum]


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference relative to the output's scale (max |reference|)."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _producer_op(g: Graph, node: str, index: int) -> str:
    return g.producer(g.data_inputs(node)[index]).op


def _stored(g: Graph, name: str):
    """``(values, scale, parts)`` behind weight ``name``: the stored int8/float16 values in the weight's shape,
    the float32 scale (``None`` for float16) and the stored ``Const`` nodes, checking the structure on the way:
    ``name = Mul(widened, scale)`` (int8) or ``name = widened`` (float16), where ``widened`` is ``Cast(Const)``
    or ``Reshape(ConcatV2(Cast(Const), ..., axis 0), shape)``."""
    node, scale = g.node(name), None
    if node.op == "Mul":
        wide, sc = (g.producer(i) for i in g.data_inputs(name))
        assert sc.op == "Const" and sc.attr["dtype"].type == types_pb2.DT_FLOAT
        scale = g.const_value(sc.name)
    else:
        wide = node
    if wide.op == "Cast":
        parts = [g.producer(g.data_inputs(wide.name)[0])]
        values = g.const_value(parts[0].name)
    else:
        assert wide.op == "Reshape", wide.op
        concat = g.producer(g.data_inputs(wide.name)[0])
        assert concat.op == "ConcatV2" and int(g.const_value(g.data_inputs(concat.name)[-1])) == 0
        casts = [g.producer(i) for i in g.data_inputs(concat.name)[:-1]]
        assert len(casts) > 1 and all(c.op == "Cast" for c in casts)
        parts = [g.producer(g.data_inputs(c.name)[0]) for c in casts]
        values = np.concatenate([g.const_value(p.name) for p in parts]).reshape(
            g.const_value(g.data_inputs(wide.name)[1]))
    assert all(p.op == "Const" and p.attr["dtype"].type in (types_pb2.DT_INT8, types_pb2.DT_HALF) for p in parts)
    assert not g.nodes_by_op("Dequantize")
    return values, scale, parts


def _grappler_filter_ops(gd) -> dict[str, str]:
    """{conv/matmul name: op producing its weight} after Grappler's default optimization, as at session creation."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(gd, name="")
        mg = tf.compat.v1.train.export_meta_graph(graph=graph)
    mg.collection_def["train_op"].node_list.value.append("out")
    out = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), mg)
    nodes = {n.name: n for n in out.node}
    return {n.name: nodes[parse_input(n.input[1])[0]].op for n in out.node
            if n.op in ("Conv2D", "_FusedConv2D", "MatMul", "_FusedMatMul")}


def _channel_scaled(rng, shape, axis, decades=3.0) -> np.ndarray:
    """Random weights whose channels along ``axis`` span ``decades`` orders of magnitude."""
    w = rng.standard_normal(shape).astype(np.float32)
    scale = np.logspace(-decades, 0, shape[axis]).astype(np.float32)
    return w * scale.reshape([-1 if i == axis else 1 for i in range(len(shape))])


def _matmul_graph(w: np.ndarray, transpose_b: bool = False, n_in: int | None = None):
    n_in = n_in or (w.shape[1] if transpose_b else w.shape[0])

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, n_in], name="x")
        tf.identity(tf.matmul(x, tf.constant(w, name="w"), transpose_b=transpose_b), name="out")

    return graph_def_of(build)


# ----------------------------------------------------------------- registry and params
def test_registered_with_gtt_name_and_params():
    assert get_rule("quantize_weights") is QuantizeWeights
    assert QuantizeWeights().args == {"dtype": "int8", "per_tensor": False, "minimum_size": 1024,
                                      "chunk_size": 24576}
    assert FOLD_CHUNK_ELEMENTS * 4 < 100 * 1024  # float32 chunks below Grappler's 100 KiB folding limit
    assert QuantizeWeights(dtype="float16", per_tensor="true", minimum_size="16", chunk_size="0").args == {
        "dtype": "float16", "per_tensor": True, "minimum_size": 16, "chunk_size": 0}
    with pytest.raises(RuleError, match="must be one of"):
        QuantizeWeights(dtype="int4")
    with pytest.raises(RuleError, match="chunk_size must be >= 0"):
        QuantizeWeights(chunk_size=-1)
    assert QuantizeWeights.doc().startswith("Replaces ")


# ----------------------------------------------------------------- int8 dense weights
def test_conv2d_per_output_channel(rng):
    w = _channel_scaled(rng, (3, 3, 16, 32), axis=3, decades=2)
    b = rng.standard_normal(32).astype(np.float32)
    x = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)

    def build():
        xp = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 16], name="x")
        y = tf.nn.conv2d(xp, tf.constant(w, name="w"), strides=1, padding="SAME", name="conv")
        tf.nn.bias_add(y, tf.constant(b, name="b"), name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": x}, ["out:0"])[0]
    g, counts = _quantize(gd)
    assert counts == {"quantize_weights": 1}
    # the weight keeps its name, so consumers are untouched: w = Mul(Cast(int8 const), scale), one chunk
    assert g.node("w").op == "Mul" and g.data_inputs("conv")[1] == "w"
    q, scale, parts = _stored(g, "w")
    assert len(parts) == 1 and parts[0].attr["dtype"].type == types_pb2.DT_INT8 and q.shape == (3, 3, 16, 32)
    assert scale.shape == (1, 1, 1, 32)  # per output channel, broadcast along the filter's last axis
    np.testing.assert_allclose(scale.reshape(-1), np.abs(w).max(axis=(0, 1, 2)) / 127, rtol=1e-6)
    np.testing.assert_array_equal(q, symmetric_int8(w, 3)[0])
    assert np.abs(q).max() == 127 and _big_float_consts(g) == []
    assert g.node("b").op == "Const"  # 32 elements < minimum_size
    after = run(g, {"x:0": x}, ["out:0"])[0]
    assert _rel_err(after, before) < 1e-2


@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_axis_follows_transpose_b(rng, transpose_b):
    w = _channel_scaled(rng, (64, 96), axis=0 if transpose_b else 1)  # 96 output channels either way
    gd = _matmul_graph(w, transpose_b)
    x = rng.standard_normal((5, 96 if transpose_b else 64)).astype(np.float32)
    before = run(gd, {"x:0": x}, ["out:0"])[0]
    g, _ = _quantize(gd)
    _, scale, _ = _stored(g, "w")
    assert scale.shape == ((64, 1) if transpose_b else (1, 96))  # the output-channel axis of w
    after = run(g, {"x:0": x}, ["out:0"])[0]
    assert _rel_err(after, before) < 1e-2


def test_batch_matmul_adj_y(rng):
    w = rng.standard_normal((2, 48, 32)).astype(np.float32)  # adj_y: [batch, out, in]
    x = rng.standard_normal((2, 3, 32)).astype(np.float32)

    def build():
        xp = tf.compat.v1.placeholder(tf.float32, [2, 3, 32], name="x")
        tf.identity(tf.raw_ops.BatchMatMulV2(x=xp, y=tf.constant(w, name="w"), adj_y=True), name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": x}, ["out:0"])[0]
    g, _ = _quantize(gd)
    assert _stored(g, "w")[1].shape == (1, 48, 1)
    assert _rel_err(run(g, {"x:0": x}, ["out:0"])[0], before) < 1e-2


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_channels_are_in_times_multiplier(rng, multiplier):
    w = rng.standard_normal((3, 3, 128, multiplier)).astype(np.float32)
    w[:, :, ::2] *= 0.01  # very different channel scales
    x = rng.standard_normal((1, 6, 6, 128)).astype(np.float32)

    def build():
        xp = tf.compat.v1.placeholder(tf.float32, [1, 6, 6, 128], name="x")
        y = tf.nn.depthwise_conv2d(xp, tf.constant(w, name="w"), [1, 1, 1, 1], "SAME")
        tf.identity(y, name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": x}, ["out:0"])[0]
    g, _ = _quantize(gd)
    q, scale, _ = _stored(g, "w")  # one scale per (in, multiplier) channel
    assert q.shape == w.shape and scale.shape == (1, 1, 128, multiplier)
    np.testing.assert_allclose(scale, np.abs(w).max(axis=(0, 1), keepdims=True) / 127, rtol=1e-6)
    after = run(g, {"x:0": x}, ["out:0"])[0]
    # every output channel is close at its own scale (fan-in 9: rounding errors barely average out)
    err = np.abs(after - before).max(axis=(0, 1, 2)) / np.abs(before).max(axis=(0, 1, 2))
    assert err.max() < 2e-2 and np.median(err) < 1e-2


def test_graph_def_shrinks_when_weights_dominate(rng):
    w1 = rng.standard_normal((256, 512)).astype(np.float32)
    w2 = rng.standard_normal((512, 128)).astype(np.float32)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 256], name="x")
        h = tf.nn.relu(tf.matmul(x, tf.constant(w1, name="w1")))
        tf.identity(tf.matmul(h, tf.constant(w2, name="w2")), name="out")

    gd = graph_def_of(build)
    g, counts = _quantize(gd)
    assert counts == {"quantize_weights": 2}
    ratio = g.to_graph_def().ByteSize() / gd.ByteSize()
    assert ratio <= 0.3, ratio
    x = rng.standard_normal((4, 256)).astype(np.float32)  # two quantized layers: their errors add up
    assert _rel_err(run(g, {"x:0": x}, ["out:0"])[0], run(gd, {"x:0": x}, ["out:0"])[0]) < 2e-2


def test_per_channel_is_more_accurate_than_per_tensor(rng):
    w = _channel_scaled(rng, (128, 64), axis=1, decades=3)
    gd = _matmul_graph(w)
    x = rng.standard_normal((16, 128)).astype(np.float32)
    ref = run(gd, {"x:0": x}, ["out:0"])[0]
    g_ch, _ = _quantize(gd)
    g_t, _ = _quantize(gd, per_tensor=True)
    assert _stored(g_t, "w")[1].shape == ()
    # error per output column, relative to that column's scale
    col = np.abs(ref).max(axis=0)
    err_ch = (np.abs(run(g_ch, {"x:0": x}, ["out:0"])[0] - ref).max(axis=0) / col).max()
    err_t = (np.abs(run(g_t, {"x:0": x}, ["out:0"])[0] - ref).max(axis=0) / col).max()
    assert err_ch < 2e-2
    assert err_ch * 10 < err_t  # small columns lose most of their bits with one scale


def test_zero_channel_stays_zero(rng):
    w = rng.standard_normal((64, 32)).astype(np.float32)
    w[:, 5] = 0.0
    gd = _matmul_graph(w)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    g, _ = _quantize(gd)
    scale = _stored(g, "w")[1].reshape(-1)
    assert np.all(np.isfinite(scale)) and scale[5] > 0
    out = run(g, {"x:0": x}, ["out:0"])[0]
    assert np.all(np.isfinite(out)) and np.all(out[:, 5] == 0)
    q, max_abs = symmetric_int8(np.zeros((4, 3), np.float32), 1)
    assert not q.any() and np.all(max_abs == 1)


def test_float16_mode(rng):
    w = rng.standard_normal((64, 48)).astype(np.float32)
    gd = _matmul_graph(w)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    g, _ = _quantize(gd, dtype="float16")
    cast = g.node("w")
    assert cast.op == "Cast" and cast.attr["SrcT"].type == types_pb2.DT_HALF
    half = g.producer(g.data_inputs("w")[0])
    assert half.op == "Const" and half.attr["dtype"].type == types_pb2.DT_HALF
    assert _big_float_consts(g) == [] and not g.nodes_by_op("Dequantize")
    np.testing.assert_allclose(g.const_value(half.name), w.astype(np.float16))
    assert _rel_err(run(g, {"x:0": x}, ["out:0"])[0], run(gd, {"x:0": x}, ["out:0"])[0]) < 2e-3
    big = np.full((32, 32), 1e5, np.float32)
    assert "beyond float16" in _explain(Graph(_matmul_graph(big)), "w", dtype="float16")


# ----------------------------------------------------------------- chunked storage, folded back by Grappler
def test_large_weight_stored_in_chunks(rng):
    w = _channel_scaled(rng, (64, 96), axis=1)  # 6144 elements
    gd = _matmul_graph(w)
    x = rng.standard_normal((5, 64)).astype(np.float32)
    before = run(gd, {"x:0": x}, ["out:0"])[0]
    g, counts = _quantize(gd, chunk_size=1000)
    assert counts == {"quantize_weights": 1}
    q, scale, parts = _stored(g, "w")  # w = Mul(Reshape(ConcatV2(Cast(part_0), ..., 0), [64, 96]), scale)
    assert len(parts) == 7 and all(g.const_value(p.name).ndim == 1 for p in parts)
    sizes = [g.const_value(p.name).size for p in parts]
    assert sum(sizes) == w.size and max(sizes) <= 1000 and max(sizes) - min(sizes) <= 1  # even, <= chunk_size
    np.testing.assert_array_equal(q, symmetric_int8(w, 1)[0])
    np.testing.assert_allclose(scale.reshape(-1), np.abs(w).max(axis=0) / 127, rtol=1e-6)
    stored = sum(len(p.attr["value"].tensor.tensor_content) for p in parts)
    assert stored == w.size  # one byte per weight
    after = run(g, {"x:0": x}, ["out:0"])[0]
    assert _rel_err(after, before) < 1e-2
    # the same values whatever the chunking
    g1, _ = _quantize(gd, chunk_size=0)
    assert len(_stored(g1, "w")[2]) == 1
    np.testing.assert_array_equal(run(g1, {"x:0": x}, ["out:0"])[0], after)
    # float16 is chunked the same way: w = Reshape(ConcatV2(Cast(float16 part), ...))
    g16, _ = _quantize(gd, dtype="float16", chunk_size=1000)
    h, none, parts16 = _stored(g16, "w")
    assert none is None and len(parts16) == 7 and h.dtype == np.float16
    np.testing.assert_array_equal(h, w.astype(np.float16))
    assert _rel_err(run(g16, {"x:0": x}, ["out:0"])[0], before) < 2e-3


def test_grappler_folds_weights_back_at_load_time(rng):
    """The reason for the form: at session creation Grappler folds the int8 weights into float32 Consts.

    Grappler folds a node whose output outgrows its inputs only below 100 KiB of output, so a whole-tensor
    Cast (or Dequantize) of a 73,728-element filter stays a runtime op, and oneDNN then re-lays out the
    filter on every call (``is_filter_const=False``). Chunks of at most 24,576 elements (96 KiB) fold; chunks of
    exactly 25,600 (100 KiB) do not.
    """
    w = rng.standard_normal((3, 3, 64, 128)).astype(np.float32)  # 288 KiB as float32
    m = rng.standard_normal((128, 400)).astype(np.float32)  # 51,200 elements: 2 x 25,600
    x = rng.standard_normal((1, 8, 8, 64)).astype(np.float32)

    def build():
        xp = tf.compat.v1.placeholder(tf.float32, [1, 8, 8, 64], name="x")
        y = tf.nn.relu(tf.nn.conv2d(xp, tf.constant(w, name="w"), 1, "SAME", name="conv"))
        tf.identity(tf.matmul(tf.reduce_mean(y, axis=[1, 2]), tf.constant(m, name="m"), name="mm"), name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": x}, ["out:0"])[0]
    g, counts = _quantize(gd)
    assert counts == {"quantize_weights": 2}
    assert [p.attr["value"].tensor.tensor_shape.dim[0].size for p in _stored(g, "w")[2]] == [24576] * 3
    assert len(_stored(g, "m")[2]) == 3
    qgd = g.to_graph_def()
    assert _grappler_filter_ops(qgd) == {"conv": "Const", "mm": "Const"}
    # the form's whole point, checked against TensorFlow itself: a Cast to 100 KiB or more is not folded
    for chunk_size, expected in ((0, {"conv": "Mul", "mm": "Mul"}),  # one Cast of the whole weight
                                 (25600, {"conv": "Const", "mm": "Mul"})):  # conv: 3 x 24,576; m: 2 x 25,600
        g0, _ = _quantize(gd, chunk_size=chunk_size)
        assert _grappler_filter_ops(g0.to_graph_def()) == expected, \
            f"Grappler's folding limit changed (chunk_size={chunk_size}): revisit FOLD_CHUNK_ELEMENTS"
    # in a session (Grappler on, as in serving): the oneDNN kernels see constant filters
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        tf.graph_util.import_graph_def(qgd, name="")
        meta = tf.compat.v1.RunMetadata()
        after = sess.run("out:0", {"x:0": x}, options=tf.compat.v1.RunOptions(output_partition_graphs=True),
                         run_metadata=meta)
    flags = [n.attr["is_filter_const"].b for pg in meta.partition_graphs for n in pg.node
             if "is_filter_const" in n.attr]
    assert all(flags)  # empty without oneDNN: nothing to check there
    assert _rel_err(after, before) < 1e-2


# ----------------------------------------------------------------- where it must not fire
def test_minimum_size_respected(rng):
    small = rng.standard_normal((31, 33)).astype(np.float32)  # 1023 elements
    gd = _matmul_graph(small)
    g, counts = _quantize(gd)
    assert counts == {} and g.node("w").op == "Const"
    assert "1023 elements, fewer than minimum_size=1024" in _explain(g, "w")
    g2, counts2 = _quantize(gd, minimum_size=1000)
    assert counts2 == {"quantize_weights": 1} and g2.node("w").op == "Mul"


def test_never_quantized(rng):
    big = rng.standard_normal((40, 40)).astype(np.float32)
    bad = big.copy()
    bad[0, 0] = np.nan

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 40], name="x")
        i = tf.compat.v1.placeholder(tf.int32, [None, 40], name="i")
        a = tf.matmul(x, tf.constant(big, name="protected_w"))
        b = tf.matmul(x, tf.constant(bad, name="nan_w"))
        c = tf.nn.relu(tf.constant(big, name="relu_in")) * x[:1, :1]
        d = i * tf.constant(np.ones((40, 40), np.int32), name="int_w")
        e = tf.nn.conv2d(tf.constant(big.reshape(1, 40, 40, 1), name="image"), tf.ones([1, 1, 1, 1]), 1, "SAME")
        tf.identity(a + b + c + tf.cast(d, tf.float32) + tf.reshape(e, [40, 40])[:1], name="out")

    gd = graph_def_of(build)
    g = Graph(gd, protected=["out", "protected_w"])
    assert "protected" in _explain(g, "protected_w")
    assert "inf or nan" in _explain(g, "nan_w")
    assert "Relu" in _explain(g, "relu_in") and "not a weight-like use" in _explain(g, "relu_in")
    assert "DT_INT32, not DT_FLOAT" in _explain(g, "int_w")
    assert "data input of Conv2D" in _explain(g, "image")
    before_ops = g.op_histogram()
    assert run_pipeline(g, [QuantizeWeights()]).counts == {}
    assert g.op_histogram() == before_ops


def test_looks_through_identity_and_refuses_protected_identity(rng):
    w = rng.standard_normal((64, 32)).astype(np.float32)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
        read = tf.identity(tf.constant(w, name="w"), name="w/read")
        tf.identity(tf.matmul(x, read), name="out")

    gd = graph_def_of(build)
    g, counts = _quantize(gd)
    assert counts == {"quantize_weights": 1} and _stored(g, "w")[1].shape == (1, 32)
    assert list(g.node("w/read").input) == ["w"]
    g2 = Graph(gd, protected=["out", "w/read"])
    assert "'w/read', which is protected" in _explain(g2, "w")


def test_shared_weight_one_dequantize(rng):
    w = rng.standard_normal((64, 64)).astype(np.float32)
    x = rng.standard_normal((3, 64)).astype(np.float32)

    def build(transpose_second):
        def fn():
            xp = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
            wc = tf.constant(w, name="w")
            a = tf.matmul(xp, wc, name="mm1")
            b = tf.matmul(xp, wc, transpose_b=transpose_second, name="mm2")
            tf.identity(a + b, name="out")
        return graph_def_of(fn)

    for transpose_second, shape in ((False, (1, 64)), (True, ())):  # disagreeing axes: one per-tensor scale
        gd = build(transpose_second)
        g, counts = _quantize(gd)
        assert counts == {"quantize_weights": 1} and len(g.nodes_by_op("Cast")) == 1
        assert g.data_inputs("mm1")[1] == "w" and g.data_inputs("mm2")[1] == "w"
        assert _stored(g, "w")[1].shape == shape
        assert _rel_err(run(g, {"x:0": x}, ["out:0"])[0], run(gd, {"x:0": x}, ["out:0"])[0]) < 2e-2


# ----------------------------------------------------------------- embedding tables
def _embedding_graph(table: np.ndarray, *, lookup: str = "gather", ids_shape=(None, 3)):
    def build():
        ids = tf.compat.v1.placeholder(tf.int32, ids_shape, name="ids")
        t = tf.constant(table, name="table")
        if lookup == "embedding_lookup":  # Identity + GatherV2 colocated with the table
            rows = tf.nn.embedding_lookup(t, ids)
        elif lookup == "two":
            rows = tf.gather(t, ids, name="g1") + tf.gather(t, ids[:, ::-1], name="g2")
        else:
            rows = tf.gather(t, ids, name="gather")
        tf.identity(rows, name="out")

    g = tf.Graph()
    with g.as_default():
        build()
    return g.as_graph_def(add_shapes=True)  # _output_shapes, as SavedModels carry them, must stay consistent


def _assert_rows_only(g: Graph, table_size: int) -> None:
    """The int8 table is read only by gathers: no Cast/Dequantize of the whole table."""
    tables = [n for n in g.nodes_by_op("Const")
              if n.attr["dtype"].type in (types_pb2.DT_INT8, types_pb2.DT_HALF)
              and g.const_value(n.name).size == table_size]
    assert len(tables) == 1
    users = [g.node(d) for d, _ in g.consumers(tables[0].name)]
    assert users and all(u.op in ("GatherV2", "Gather") for u in users)
    assert not g.nodes_by_op("Dequantize")
    for cast in g.nodes_by_op("Cast"):
        assert _producer_op(g, cast.name, 0) in ("GatherV2", "Gather")
    assert _big_float_consts(g, table_size) == []


@pytest.mark.parametrize("lookup", ["gather", "embedding_lookup", "two"])
def test_embedding_gathers_int8_rows_then_dequantizes_them(rng, lookup):
    table = _channel_scaled(rng, (3000, 16), axis=0, decades=2)
    gd = _embedding_graph(table, lookup=lookup)
    ids = rng.integers(0, 3000, (7, 3)).astype(np.int32)
    before = run(gd, {"ids:0": ids}, ["out:0"])[0]
    g, counts = _quantize(gd)
    assert counts == {"quantize_weights": 1}
    assert "table" not in g and "table/read" not in g.node_names
    for node in g:  # colocation moved to the int8 table
        if "_class" in node.attr:
            assert list(node.attr["_class"].list.s) == [b"loc:@table_quantized_const"]
    _assert_rows_only(g, table.size)
    scales = [n for n in g.nodes_by_op("Const") if n.name.endswith("_quantized_scale")]
    assert len(scales) == 1 and g.const_value(scales[0].name).shape == (3000, 1)
    for mul in g.nodes_by_op("Mul"):  # each gather became Cast(int8 rows) * gathered row scales
        assert sorted(g.producer(i).op for i in g.data_inputs(mul.name)) == ["Cast", "GatherV2"]
    after = run(g, {"ids:0": ids}, ["out:0"])[0]
    # every looked-up row is within 1% of its own scale (per-row quantization)
    rows = np.abs(before).max(axis=-1, keepdims=True)
    assert (np.abs(after - before) / rows).max() < 1e-2


def test_embedding_per_tensor_and_float16(rng):
    table = rng.standard_normal((2000, 8)).astype(np.float32)
    gd = _embedding_graph(table)
    ids = rng.integers(0, 2000, (4, 3)).astype(np.int32)
    before = run(gd, {"ids:0": ids}, ["out:0"])[0]
    g, _ = _quantize(gd, per_tensor=True)
    _assert_rows_only(g, table.size)
    mul = g.node("gather")
    assert mul.op == "Mul" and g.const_value(g.data_inputs("gather")[1]).shape == ()
    assert _rel_err(run(g, {"ids:0": ids}, ["out:0"])[0], before) < 1e-2
    g16, _ = _quantize(gd, dtype="float16")
    _assert_rows_only(g16, table.size)
    assert g16.node("gather").op == "Cast" and _producer_op(g16, "gather", 0) == "GatherV2"
    assert _rel_err(run(g16, {"ids:0": ids}, ["out:0"])[0], before) < 2e-3


@pytest.mark.parametrize("case", ["axis1", "batch_dims", "mixed_use"])
def test_other_gathers_fall_back_to_whole_table_form(rng, case):
    if case == "batch_dims":
        table = rng.standard_normal((4, 300, 8)).astype(np.float32)
        ids = rng.integers(0, 300, (4, 5)).astype(np.int32)
    else:
        table = rng.standard_normal((400, 8)).astype(np.float32) if case == "axis1" else \
            rng.standard_normal((300, 8)).astype(np.float32)
        ids = rng.integers(0, 8, (4, 5)).astype(np.int32)
    x = rng.standard_normal((2, 8)).astype(np.float32)

    def build():
        idp = tf.compat.v1.placeholder(tf.int32, [4, 5], name="ids")
        t = tf.constant(table, name="table")
        if case == "axis1":
            out = tf.gather(t, idp, axis=1)
        elif case == "batch_dims":
            out = tf.gather(t, idp, axis=1, batch_dims=1)
        else:  # tied embedding: gathered rows and a transposed projection share the table
            xp = tf.compat.v1.placeholder(tf.float32, [2, 8], name="x")
            out = tf.reduce_sum(tf.gather(t, idp)) + tf.matmul(xp, t, transpose_b=True)
        tf.identity(out, name="out")

    gd = graph_def_of(build)
    feeds = {"ids:0": ids, **({"x:0": x} if case == "mixed_use" else {})}
    before = run(gd, feeds, ["out:0"])[0]
    g, counts = _quantize(gd, minimum_size=1000)
    assert counts == {"quantize_weights": 1}
    assert _stored(g, "table")[1].shape == (table.shape[0],) + (1,) * (table.ndim - 1)  # per row (axis 0)
    assert _rel_err(run(g, feeds, ["out:0"])[0], before) < 1e-2


# ----------------------------------------------------------------- fixpoint
def test_fixpoint_does_not_requantize(rng):
    w = rng.standard_normal((64, 32)).astype(np.float32)
    dw = rng.standard_normal((3, 3, 8, 2)).astype(np.float32)
    table = rng.standard_normal((500, 4)).astype(np.float32)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
        img = tf.compat.v1.placeholder(tf.float32, [1, 4, 4, 8], name="img")
        ids = tf.compat.v1.placeholder(tf.int32, [None], name="ids")
        a = tf.matmul(x, tf.constant(w, name="w"))
        b = tf.nn.depthwise_conv2d(img, tf.constant(dw, name="dw"), [1, 1, 1, 1], "SAME")
        c = tf.gather(tf.constant(table, name="table"), ids)
        tf.identity(tf.reduce_sum(a) + tf.reduce_sum(b) + tf.reduce_sum(c), name="out")

    gd = graph_def_of(build)
    feeds = {"x:0": rng.standard_normal((2, 64)).astype(np.float32),
             "img:0": rng.standard_normal((1, 4, 4, 8)).astype(np.float32),
             "ids:0": np.array([0, 499, 7], np.int32)}
    before = run(gd, feeds, ["out:0"])[0]
    for params in ({"minimum_size": 100}, {"minimum_size": 1}, {"minimum_size": 1, "per_tensor": True},
                   {"minimum_size": 1, "chunk_size": 500}):  # w in 5 chunks: Reshape(ConcatV2(Cast...)) * scale
        g = Graph(gd, protected=["out"])
        # minimum_size=1: the scale/range consts this rule adds are big enough to match, and must not
        report = run_pipeline(g, [QuantizeWeights(**params), QuantizeWeights(**params)])
        assert g.lint() == []
        n_small_float = sum(1 for n in Graph(gd) if n.op == "Const" and n.attr["dtype"].type == types_pb2.DT_FLOAT
                            and n.name not in ("w", "dw", "table")) if params["minimum_size"] == 1 else 0
        assert report.counts == {"quantize_weights": 3 + n_small_float}, params
        anchors = [a.anchor for a in report.applied]
        assert len(anchors) == len(set(anchors)) and set(anchors) <= {n.name for n in gd.node}  # nothing twice
        assert run_pipeline(g, [QuantizeWeights(**params)]).counts == {}
        np.testing.assert_allclose(run(g, feeds, ["out:0"])[0], before, rtol=2e-2)
    # float16 output then int8: the float16 consts are not float32, nothing is requantized
    g = Graph(gd, protected=["out"])
    run_pipeline(g, [QuantizeWeights(dtype="float16", minimum_size=100)])
    assert run_pipeline(g, [QuantizeWeights(minimum_size=1)]).counts.get("quantize_weights", 0) == sum(
        1 for n in g if n.op == "Const" and n.attr["dtype"].type == types_pb2.DT_FLOAT)


def test_outputs_produced_by_the_rule_explain_why_not(rng):
    gd = _embedding_graph(rng.standard_normal((1500, 4)).astype(np.float32))
    g, _ = _quantize(gd)
    scale = next(n.name for n in g.nodes_by_op("Const") if n.name.endswith("_quantized_scale"))
    assert "per-row scale table" in _explain(g, scale, minimum_size=1)
    mm = _matmul_graph(rng.standard_normal((64, 32)).astype(np.float32))
    for chunk_size in (24576, 500):  # one Cast, or Reshape(ConcatV2(Cast, ...)): the scale is recognised either way
        g2, _ = _quantize(mm, chunk_size=chunk_size)
        scale = parse_input(g2.data_inputs("w")[1])[0]
        assert "scales int8 values in Mul 'w'" in _explain(g2, scale, minimum_size=1)
        for part in _stored(g2, "w")[2]:
            assert "DT_INT8, not DT_FLOAT" in _explain(g2, part.name, minimum_size=1)
    g3, _ = _quantize(gd, per_tensor=True)
    scalar = parse_input(g3.data_inputs("gather")[1])[0]
    assert "scales int8 values" in _explain(g3, scalar, minimum_size=1)
    # the ranges of a Dequantize made by an older version of this rule are left alone too
    q = rng.integers(-127, 128, (64, 32)).astype(np.int8)

    def legacy():
        x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
        lo, hi = tf.constant(-np.ones(32, np.float32), name="lo"), tf.constant(np.ones(32, np.float32), name="hi")
        w = tf.raw_ops.Dequantize(input=tf.constant(q, tf.qint8), min_range=lo, max_range=hi, mode="SCALED",
                                  narrow_range=True, axis=1, name="w")
        tf.identity(tf.matmul(x, w), name="out")

    g4 = Graph(graph_def_of(legacy), protected=["out"])
    assert "quantization range" in _explain(g4, "hi", minimum_size=1)
    assert run_pipeline(g4, [QuantizeWeights(minimum_size=1)]).counts == {}
