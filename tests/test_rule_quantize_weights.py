"""quantize_weights: int8 per-channel/per-tensor and float16 weights, embedding rows, fixpoint, no-fire cases."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_def_of, run
from tensorflow.core.framework import types_pb2

from graphxform.errors import RuleError
from graphxform.graph import Graph, parse_input
from graphxform.rule import Match, get_rule
from graphxform.runner import run_pipeline
from transforms.quantize_weights import QuantizeWeights, symmetric_int8


# ----------------------------------------------------------------- helpers
def _quantize(gd, protected=("out",), **params) -> tuple[Graph, dict[str, int]]:
    g = Graph(gd, protected=protected)
    report = run_pipeline(g, [QuantizeWeights(**params)])
    assert g.lint() == []
    return g, report.counts


def _explain(graph: Graph, name: str, **params) -> str | None:
    rule = QuantizeWeights(**params)
    m = rule.match(graph, graph.node(name))
    assert isinstance(m, Match), m
    return rule.check(m)


def _big_float_consts(g: Graph, minimum: int = 1024) -> list[str]:
    return [n.name for n in g.nodes_by_op("Const")
            if n.attr["dtype"].type == types_pb2.DT_FLOAT and g.const_value(n.name).size >= minimum]


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference relative to the output's scale (max |reference|)."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _producer_op(g: Graph, node: str, index: int) -> str:
    return g.producer(g.data_inputs(node)[index]).op


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
    assert QuantizeWeights().args == {"dtype": "int8", "per_tensor": False, "minimum_size": 1024}
    assert QuantizeWeights(dtype="float16", per_tensor="true", minimum_size="16").args == {
        "dtype": "float16", "per_tensor": True, "minimum_size": 16}
    with pytest.raises(RuleError, match="must be one of"):
        QuantizeWeights(dtype="int4")
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
    deq = g.node("w")  # the weight keeps its name, so consumers are untouched
    assert deq.op == "Dequantize" and deq.attr["axis"].i == 3 and deq.attr["mode"].s == b"SCALED"
    assert deq.attr["T"].type == types_pb2.DT_QINT8
    qc, lo, hi = (g.producer(i) for i in g.data_inputs("w"))
    assert qc.attr["dtype"].type == types_pb2.DT_QINT8 and list(g.const_value(qc.name).shape) == [3, 3, 16, 32]
    np.testing.assert_allclose(g.const_value(hi.name), np.abs(w).max(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(g.const_value(lo.name), -g.const_value(hi.name))
    assert _big_float_consts(g) == []
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
    assert g.node("w").op == "Dequantize"
    assert g.node("w").attr["axis"].i == (0 if transpose_b else 1)
    hi = g.producer(g.data_inputs("w")[2])
    assert g.const_value(hi.name).shape == (64,) if transpose_b else (96,)
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
    assert g.node("w").attr["axis"].i == 1
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
    if multiplier == 1:
        assert g.node("w").op == "Dequantize" and g.node("w").attr["axis"].i == 2
    else:  # stored as [h, w, in*mult], dequantized on axis 2, reshaped back
        assert g.node("w").op == "Reshape" and _producer_op(g, "w", 0) == "Dequantize"
        deq = g.producer(g.data_inputs("w")[0])
        assert deq.attr["axis"].i == 2
        assert g.const_value(g.data_inputs(deq.name)[2]).shape == (128 * multiplier,)
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
    assert g_t.node("w").attr["axis"].i == -1
    assert g_t.const_value(g_t.data_inputs("w")[2]).shape == ()
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
    hi = g.const_value(g.data_inputs("w")[2])
    assert np.all(np.isfinite(hi)) and hi[5] > 0
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


# ----------------------------------------------------------------- where it must not fire
def test_minimum_size_respected(rng):
    small = rng.standard_normal((31, 33)).astype(np.float32)  # 1023 elements
    gd = _matmul_graph(small)
    g, counts = _quantize(gd)
    assert counts == {} and g.node("w").op == "Const"
    assert "1023 elements, fewer than minimum_size=1024" in _explain(g, "w")
    g2, counts2 = _quantize(gd, minimum_size=1000)
    assert counts2 == {"quantize_weights": 1} and g2.node("w").op == "Dequantize"


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
    assert counts == {"quantize_weights": 1} and g.node("w").attr["axis"].i == 1
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

    for transpose_second, axis in ((False, 1), (True, -1)):  # disagreeing axes: one per-tensor scale
        gd = build(transpose_second)
        g, counts = _quantize(gd)
        assert counts == {"quantize_weights": 1} and len(g.nodes_by_op("Dequantize")) == 1
        assert g.data_inputs("mm1")[1] == "w" and g.data_inputs("mm2")[1] == "w"
        assert g.node("w").attr["axis"].i == axis
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
def test_other_gathers_fall_back_to_whole_table_dequantize(rng, case):
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
    assert g.node("table").op == "Dequantize" and g.node("table").attr["axis"].i == 0
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
    for params in ({"minimum_size": 100}, {"minimum_size": 1}, {"minimum_size": 1, "per_tensor": True}):
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
    g2, _ = _quantize(_matmul_graph(rng.standard_normal((64, 32)).astype(np.float32)))
    hi = parse_input(g2.data_inputs("w")[2])[0]
    assert "quantization range" in _explain(g2, hi, minimum_size=1)
    assert "DT_QINT8" in _explain(g2, parse_input(g2.data_inputs("w")[0])[0], minimum_size=1)
    g3, _ = _quantize(gd, per_tensor=True)
    scalar = parse_input(g3.data_inputs("gather")[1])[0]
    assert "scales int8 values" in _explain(g3, scalar, minimum_size=1)
