"""fold_batch_norms: every weighted op x batch-norm form x with/without BiasAdd, shared weights, and refusals."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, SAMPLES, assert_close, graph_def_of, run, run_nchw
from graphxform.transforms.fold_batch_norms import FoldBatchNorms
from graphxform.transforms.fold_constants import FoldConstants
from tensorflow.core.framework import graph_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.registry import get_rule
from graphxform.engine.rule import Match
from graphxform.engine.runner import run_pipeline
from graphxform.model.model import Model, Signature

RNG = np.random.default_rng(42)
EPS = 1e-3
BN_LIKE = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "BatchNormWithGlobalNormalization",
           "Mul", "Add", "AddV2", "Sub", "RealDiv", "Rsqrt"}

#: op -> (input shape, weight shape, output channels)
SHAPES = {
    "Conv2D": ((2, 6, 6, 3), (3, 3, 3, 4), 4),
    "DepthwiseConv2dNative": ((2, 6, 6, 3), (3, 3, 3, 2), 6),
    "MatMul": ((2, 5), (5, 4), 4),
}
FUSED_FORMS = ["fused_v1", "fused_v2", "fused_v3", "global"]
DECOMPOSED_FORMS = ["keras", "keras_4d", "tfnn", "sub_form", "mul_only", "bias_chain", "div_sub"]


def _f32(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def _stats(c):
    """gamma, beta, mean, variance: non-trivial, variance > 0."""
    return _f32(c, low=0.5, high=2.0), _f32(c), _f32(c), _f32(c, low=0.2, high=3.0)


def _weighted(op, x, w, name="op"):
    if op == "Conv2D":
        return tf.nn.conv2d(x, w, 1, "SAME", name=name)
    if op == "DepthwiseConv2dNative":
        return tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME", name=name)
    return tf.matmul(x, w, name=name)


def _apply_form(y, form, c, rank):
    gamma, beta, mean, var = _stats(c)
    k = tf.constant
    if form == "fused_v3":
        return tf.compat.v1.nn.fused_batch_norm(y, k(gamma), k(beta), k(mean), k(var), epsilon=EPS,
                                                is_training=False, name="bn")[0]
    if form in ("fused_v1", "fused_v2"):
        fn = tf.raw_ops.FusedBatchNorm if form == "fused_v1" else tf.raw_ops.FusedBatchNormV2
        return fn(x=y, scale=k(gamma), offset=k(beta), mean=k(mean), variance=k(var), epsilon=EPS,
                  is_training=False, name="bn")[0]
    if form == "keras":  # Keras 3 after fold_constants: x * (gamma * rsqrt(var + eps)) + (beta - mean * that)
        s = gamma / np.sqrt(var + EPS)
        return tf.add(tf.multiply(y, k(s), name="bn_mul"), k(beta - mean * s), name="bn_add")
    if form == "keras_4d":  # the same with [1, ..., 1, C] constants and Add
        s = (gamma / np.sqrt(var + EPS)).reshape([1] * (rank - 1) + [c])
        return tf.raw_ops.Add(x=tf.multiply(k(s), y, name="bn_mul"), y=k(beta.reshape(s.shape) - mean * s),
                              name="bn_add")
    if form == "tfnn":  # needs fold_constants first (Rsqrt chain)
        return tf.nn.batch_normalization(y, k(mean), k(var), k(beta), k(gamma), EPS, name="bn")
    if form == "sub_form":  # (x - mean) * s + beta
        s = gamma / np.sqrt(var + EPS)
        return tf.add(tf.multiply(tf.subtract(y, k(mean), name="bn_sub"), k(s)), k(beta), name="bn_add")
    if form == "mul_only":
        return tf.multiply(y, k(gamma), name="bn_mul")
    if form == "bias_chain":
        return tf.add(tf.raw_ops.AddV2(x=y, y=k(beta), name="b1"), k(np.float32(0.25)), name="b2")
    if form == "div_sub":  # c - x / d
        return tf.subtract(k(beta), tf.realdiv(y, k(gamma)), name="bn_sub")
    raise AssertionError(form)


def _build(op, form, with_bias):
    xs, ws, c = SHAPES[op]
    w_val = _f32(*ws)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, xs, name="x")
        y = _weighted(op, x, tf.constant(w_val, name="w"))
        if with_bias:
            y = tf.nn.bias_add(y, tf.constant(_f32(c), name="b0"), name="bias")
        y = _apply_form(y, "keras" if form == "global" else form, c, len(xs))
        tf.nn.relu(y, name="out")

    gd = graph_def_of(build)
    if form == "global":  # BatchNormWithGlobalNormalization: GraphDef version < 9 only, so patch it in
        gd = _to_global_bn(gd, c, with_bias)
    return gd, xs


def _to_global_bn(gd, c, with_bias):
    out = graph_pb2.GraphDef()
    out.versions.producer = 8
    gamma, beta, mean, var = _stats(c)
    src = "bias" if with_bias else "op"
    for node in gd.node:
        if node.name in ("bn_mul", "bn_add") or node.name.startswith(("bn_mul/", "bn_add/")):
            continue
        new = out.node.add()
        new.CopyFrom(node)
        if node.name == "out":
            new.input[0] = "bn"
    for name, value in (("m", mean), ("v", var), ("beta", beta), ("gamma", gamma)):
        node = out.node.add()
        node.name, node.op = name, "Const"
        node.attr["dtype"].type = types_pb2.DT_FLOAT
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    bn = out.node.add()
    bn.name, bn.op = "bn", "BatchNormWithGlobalNormalization"
    bn.input.extend([src, "m", "v", "beta", "gamma"])
    bn.attr["T"].type = types_pb2.DT_FLOAT
    bn.attr["variance_epsilon"].f = EPS
    bn.attr["scale_after_normalization"].b = True
    return out


def _explain(graph, name):
    rule = FoldBatchNorms()
    m = rule.match(graph, graph.node(name))
    if not isinstance(m, Match):
        return m
    return rule.check(m)


def _cases():
    for op in SHAPES:
        forms = DECOMPOSED_FORMS + ([] if op == "MatMul" else FUSED_FORMS)
        for form in forms:
            for with_bias in (False, True):
                yield pytest.param(op, form, with_bias, id=f"{op}-{form}-{'bias' if with_bias else 'nobias'}")


@pytest.mark.parametrize("op,form,with_bias", list(_cases()))
def test_fold(op, form, with_bias):
    gd, xs = _build(op, form, with_bias)
    expected = {"fused_v1": "FusedBatchNorm", "fused_v2": "FusedBatchNormV2", "fused_v3": "FusedBatchNormV3",
                "global": "BatchNormWithGlobalNormalization", "tfnn": "Rsqrt", "div_sub": "RealDiv",
                "bias_chain": "AddV2"}.get(form, "Mul")
    ops_before = {n.op for n in gd.node}
    assert expected in ops_before
    feeds = {"x:0": _f32(*xs)}
    before = run(gd, feeds, ["out:0"])
    g = Graph(gd)
    rules = [FoldConstants(), FoldBatchNorms()] if form == "tfnn" else [FoldBatchNorms()]
    report = run_pipeline(g, rules)
    assert g.lint() == []
    assert report.counts.get("fold_batch_norms") == 1
    left = sorted(n.op for n in g if n.op in BN_LIKE)
    assert left == [], left
    biases = g.nodes_by_op("BiasAdd")
    relu_in = g.node(g.input_nodes("out")[0])
    if form == "mul_only" and not with_bias:  # no shift: the weighted op itself takes the Mul's name
        assert biases == [] and relu_in.op == op and relu_in.name == "bn_mul" and "op" not in g
    else:
        assert len(biases) == 1 and relu_in is biases[0]
        assert g.node(g.input_nodes(relu_in.name)[0]).op == op
        assert g.node(g.input_nodes(relu_in.name)[1]).op == "Const"
    weighted = g.nodes_by_op(op)
    assert len(weighted) == 1 and g.node(g.input_nodes(weighted[0].name)[1]).op == "Const"
    assert_close(run(g, feeds, ["out:0"]), before, rtol=1e-5, atol=1e-5)
    # a second run finds nothing left to fold
    assert run_pipeline(g, rules).counts == {}


@pytest.mark.parametrize("op", ["Conv2D", "MatMul"])
def test_runs_before_fold_constants_too(op):
    """Pipeline order [fold_batch_norms, fold_constants]: the chain becomes foldable in round 2, and the
    worklist traces the folded operands back up to the convolution."""
    gd, xs = _build(op, "tfnn", with_bias=True)
    feeds = {"x:0": _f32(*xs)}
    g = Graph(gd)
    report = run_pipeline(g, [FoldBatchNorms(), FoldConstants()])
    assert report.counts.get("fold_batch_norms") == 1
    assert not [n.op for n in g if n.op in BN_LIKE] and len(g.nodes_by_op("BiasAdd")) == 1
    assert_close(run(g, feeds, ["out:0"]), run(gd, feeds, ["out:0"]), rtol=1e-5, atol=1e-5)


def test_weights_updated_in_place_when_exclusive_and_through_identity():
    xs, ws, c = SHAPES["Conv2D"]
    gamma, beta, mean, var = _stats(c)
    w_val = _f32(*ws)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, xs, name="x")
        w = tf.identity(tf.constant(w_val, name="w"), name="w/read")
        y = tf.nn.conv2d(x, w, 1, "SAME", name="op")
        y = tf.compat.v1.nn.fused_batch_norm(y, gamma, beta, mean, var, epsilon=EPS, is_training=False, name="bn")[0]
        tf.identity(y, name="out")

    gd = graph_def_of(build)
    g = Graph(gd)
    run_pipeline(g, [FoldBatchNorms()])
    assert g.lint() == []
    assert g.input_nodes("op") == ["x", "w/read"] and g.input_nodes("w/read") == ["w"]  # same names, new values
    np.testing.assert_allclose(g.const_value("w"), w_val * (gamma / np.sqrt(var + EPS)), rtol=1e-6)
    assert g.node("bn").op == "BiasAdd" and g.input_nodes("bn")[0] == "op"
    feeds = {"x:0": _f32(*xs)}
    assert_close(run(g, feeds, ["out:0"]), run(gd, feeds, ["out:0"]), rtol=1e-5, atol=1e-5)


def test_shared_weights_get_a_new_const_and_the_old_stays():
    xs, ws, c = SHAPES["Conv2D"]
    w_val = _f32(*ws)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, xs, name="x")
        w = tf.constant(w_val, name="w")
        y1 = _apply_form(tf.nn.conv2d(x, w, 1, "SAME", name="conv1"), "fused_v3", c, 4)
        tf.nn.relu(y1, name="out1")
        tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME", name="conv2"), name="out2")

    gd = graph_def_of(build)
    g = Graph(gd)
    run_pipeline(g, [FoldBatchNorms()])
    assert g.lint() == []
    assert g.input_nodes("conv2") == ["x", "w"]
    np.testing.assert_array_equal(g.const_value("w"), w_val)
    new_w = g.input_nodes("conv1")[1]
    assert new_w != "w" and g.node(new_w).op == "Const"
    feeds = {"x:0": _f32(*xs)}
    assert_close(run(g, feeds, ["out1:0", "out2:0"]), run(gd, feeds, ["out1:0", "out2:0"]), rtol=1e-5, atol=1e-5)


def test_nchw_conv_with_nchw_batch_norm_and_channel_mul():
    c = 4
    gamma, beta, mean, var = _stats(c)
    w_val = _f32(3, 3, 3, c)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, (1, 3, 6, 5), name="x")
        y = tf.nn.conv2d(x, tf.constant(w_val), 1, "SAME", data_format="NCHW", name="op")
        y = tf.compat.v1.nn.fused_batch_norm(y, gamma, beta, mean, var, epsilon=EPS, is_training=False,
                                             data_format="NCHW", name="bn")[0]
        y = tf.multiply(y, tf.constant(_f32(c, 1, 1)), name="chan_mul")  # [C, 1, 1]: per channel in NCHW
        tf.nn.relu(y, name="out")

    gd = graph_def_of(build)
    g = Graph(gd)
    run_pipeline(g, [FoldBatchNorms()])
    assert g.lint() == []
    assert not [n for n in g if n.op in BN_LIKE]
    bias = g.nodes_by_op("BiasAdd")
    assert len(bias) == 1 and bias[0].attr["data_format"].s == b"NCHW"
    feeds = {"x:0": _f32(1, 3, 6, 5)}
    assert_close(run_nchw(g, feeds, ["out:0"]), run_nchw(gd, feeds, ["out:0"]), rtol=1e-5, atol=1e-5)


def _refusal(build, anchor="op"):
    gd = graph_def_of(build)
    g = Graph(gd)
    reason = _explain(g, anchor)
    before = sorted((n.name, n.op) for n in g)
    assert run_pipeline(g, [FoldBatchNorms()]).counts == {}
    assert sorted((n.name, n.op) for n in g) == before
    return reason


def _conv(x=None, weights=None):
    xs, ws, _ = SHAPES["Conv2D"]
    x = x if x is not None else tf.compat.v1.placeholder(tf.float32, xs, name="x")
    w = weights if weights is not None else tf.constant(_f32(*ws), name="w")
    return tf.nn.conv2d(x, w, 1, "SAME", name="op")


def test_not_in_training_mode():
    def build():
        gamma, beta, _, _ = _stats(4)
        y = tf.compat.v1.nn.fused_batch_norm(_conv(), gamma, beta, epsilon=EPS, is_training=True, name="bn")[0]
        tf.nn.relu(y, name="out")

    assert "training mode" in _refusal(build)


def test_not_when_statistics_are_not_const():
    def build():
        gamma, beta, _, var = _stats(4)
        mean = tf.compat.v1.placeholder(tf.float32, [4], name="mean")
        y = tf.compat.v1.nn.fused_batch_norm(_conv(), gamma, beta, mean, var, epsilon=EPS, is_training=False,
                                             name="bn")[0]
        tf.nn.relu(y, name="out")

    reason = _refusal(build)
    assert "mean input" in reason and "Placeholder, not a Const" in reason and "fold_constants" not in reason


def test_not_when_the_conv_output_is_used_elsewhere():
    def build():
        y = _conv()
        tf.nn.relu(_apply_form(y, "fused_v3", 4, 4), name="out")
        tf.nn.sigmoid(y, name="other")

    assert "used by 2 inputs" in _refusal(build)


def test_not_when_batch_statistics_outputs_are_used():
    def build():
        gamma, beta, mean, var = _stats(4)
        y, batch_mean, _ = tf.compat.v1.nn.fused_batch_norm(_conv(), gamma, beta, mean, var, epsilon=EPS,
                                                            is_training=False, name="bn")
        tf.nn.relu(y, name="out")
        tf.identity(batch_mean, name="stat")

    assert "batch statistics" in _refusal(build)


def test_not_with_negative_variance():
    def build():
        gamma, beta, mean, _ = _stats(4)
        var = np.array([1.0, -2.0, 1.0, 1.0], np.float32)
        y = tf.compat.v1.nn.fused_batch_norm(_conv(), gamma, beta, mean, var, epsilon=EPS, is_training=False,
                                             name="bn")[0]
        tf.nn.relu(y, name="out")

    assert "non-finite" in _refusal(build)


def test_not_for_a_full_tensor_multiplier():
    def build():
        tf.nn.relu(tf.multiply(_conv(), tf.constant(_f32(6, 6, 4))), name="out")

    assert "not per-channel" in _refusal(build)


def test_not_for_a_channel_vector_on_the_wrong_axis_of_nchw():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, (1, 3, 6, 4), name="x")
        y = tf.nn.conv2d(x, tf.constant(_f32(3, 3, 3, 4)), 1, "SAME", data_format="NCHW", name="op")
        tf.nn.relu(tf.multiply(y, tf.constant(_f32(4))), name="out")  # broadcasts along W, not C

    assert "not per-channel" in _refusal(build)


def test_not_for_mismatched_data_formats():
    def build():
        y = _conv()  # NHWC, output [2, 6, 6, 4]: NCHW would read 6 channels
        gamma, beta, mean, var = _stats(6)
        y = tf.compat.v1.nn.fused_batch_norm(y, gamma, beta, mean, var, epsilon=EPS, is_training=False,
                                             data_format="NCHW", name="bn")[0]
        tf.nn.relu(y, name="out")

    assert "is NCHW but the op before it is NHWC" in _refusal(build)


def test_not_for_non_const_weights_or_a_lone_bias_add():
    def build():
        w = tf.compat.v1.placeholder(tf.float32, SHAPES["Conv2D"][1], name="w")
        tf.nn.relu(_apply_form(_conv(weights=w), "fused_v3", 4, 4), name="out")

    reason = _refusal(build)
    assert "weights of 'op'" in reason and "Placeholder, not a Const" in reason and "freeze" in reason

    def build_bias():
        tf.nn.relu(tf.nn.bias_add(_conv(), tf.constant(_f32(4))), name="out")

    assert "nothing to fold" in _refusal(build_bias)


def test_not_for_const_times_x_matmul_or_non_const_operand():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, (5, 2), name="x")
        y = tf.matmul(tf.constant(_f32(4, 5)), x, name="op")  # weights on the left: channels come from x
        tf.nn.relu(y * tf.constant(2.0), name="out")

    assert "Placeholder, not a Const" in _refusal(build)

    def build_add():
        x = tf.compat.v1.placeholder(tf.float32, SHAPES["Conv2D"][0], name="x")
        z = tf.compat.v1.placeholder(tf.float32, [4], name="z")
        tf.nn.relu(_conv(x) + z, name="out")

    assert "operand of AddV2" in _refusal(build_add)


def test_signature_tensor_in_the_middle_stops_the_chain():
    xs, ws, c = SHAPES["Conv2D"]

    def build():
        y = tf.multiply(_conv(), tf.constant(_f32(c, low=0.5, high=2.0)), name="scaled")
        tf.add(y, tf.constant(_f32(c)), name="out")

    gd = graph_def_of(build)
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, list(xs))},
                    outputs={"scaled": TensorSpec("scaled:0", types_pb2.DT_FLOAT, None),
                             "out": TensorSpec("out:0", types_pb2.DT_FLOAT, None)})
    model = Model(Graph(gd), {"serving_default": sig}, source=None, format="graph_def")  # type: ignore[arg-type]
    g = model.graph
    run_pipeline(g, [FoldBatchNorms()])
    assert g.lint() == []
    # The Mul folded into the conv (which took its name); the Add after the signature tensor stays.
    assert g.node("scaled").op == "Conv2D" and g.node("out").op == "AddV2"
    assert sig.outputs["scaled"].name == "scaled:0"
    assert "signature tensor" in _explain(g, "scaled")
    feeds = {"x:0": _f32(*xs)}
    assert_close(run(g, feeds, ["scaled:0", "out:0"]), run(gd, feeds, ["scaled:0", "out:0"]), rtol=1e-5, atol=1e-5)


def test_registered_with_gtt_aliases():
    assert get_rule("fold_old_batch_norms") is FoldBatchNorms
    assert get_rule("fold_batch_norms") is FoldBatchNorms
    assert FoldBatchNorms.doc().startswith("Replaces ")


@pytest.fixture(scope="module")
def keras_frozen():
    keras = pytest.importorskip("keras")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3)(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(5)(h)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inp, keras.layers.ReLU()(h))
    rng = np.random.default_rng(1)
    for layer in model.layers:  # non-trivial moving statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            g_, b_, m_, v_ = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, g_.shape), rng.normal(size=b_.shape),
                               rng.normal(size=m_.shape), rng.uniform(0.2, 3, v_.shape)])
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec([None, 8, 8, 3]))
    frozen = convert_variables_to_constants_v2(fn)
    return frozen.graph.as_graph_def(), frozen.inputs[0].name, frozen.outputs[0].name


def test_keras3_model_after_fold_constants(keras_frozen):
    gd, inp, out = keras_frozen
    assert {"Rsqrt", "Mul", "Sub", "AddV2"} <= {n.op for n in gd.node}
    feeds = {inp: np.random.default_rng(3).normal(size=(4, 8, 8, 3)).astype(np.float32)}
    before = run(gd, feeds, [out])
    g = Graph(gd)
    # fold_batch_norms alone cannot see through the Rsqrt chains, and says so
    conv = g.nodes_by_op("Conv2D")[0].name
    assert "run fold_constants first" in _explain(g, conv)
    for order in ([FoldConstants(), FoldBatchNorms()], [FoldBatchNorms(), FoldConstants()]):
        g = Graph(gd)
        report = run_pipeline(g, order)
        assert g.lint() == []
        assert report.counts["fold_batch_norms"] == 3
        assert not [n.op for n in g if n.op in BN_LIKE]
        assert len(g.nodes_by_op("BiasAdd")) == 3
        assert_close(run(g, feeds, [out]), before, rtol=1e-4, atol=1e-4)


def test_tf1_frozen_fixture():
    path = FIXTURES / "tf1_frozen_bn.pb"
    if not path.exists():
        pytest.skip("fixture tf1_frozen_bn.pb not generated")
    gd = graph_pb2.GraphDef()
    gd.ParseFromString(path.read_bytes())
    with np.load(SAMPLES / "tf1_frozen_bn.npz") as data:
        feeds = {"input:0": data["input:0"]}
    before = run(gd, feeds, ["output:0"])
    g = Graph(gd)
    run_pipeline(g, [FoldConstants(), FoldBatchNorms()])
    assert g.lint() == []
    assert not g.nodes_by_op("FusedBatchNormV3")
    assert sorted(n.op for n in g if n.op != "Const") == ["BiasAdd", "BiasAdd", "Conv2D", "Conv2D", "Identity",
                                                          "Placeholder", "Relu"]
    assert_close(run(g, feeds, ["output:0"]), before, rtol=1e-5, atol=1e-5)
