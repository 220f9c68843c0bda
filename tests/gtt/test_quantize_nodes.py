"""Ports of ``tensorflow/tools/graph_transforms/quantize_nodes_test.cc`` (``QuantizeNodesTest``), except its four
``merge_duplicate_nodes`` TESTs (in test_merge_duplicate_nodes.py), and evidence about the eight-bit kernels.

GTT's ``quantize_nodes`` (quantize_nodes.cc) replaces float ``Add, AvgPool,
BiasAdd, Concat (V1), Conv2D, Conv2DBackpropInput, MatMul, MaxPool, Mul, Relu,
Relu6, ResizeBilinear, Reshape`` by ``Quantized*`` ops between ``QuantizeV2`` and
``Dequantize`` (MIN_FIRST, quint8; 32-bit results go through
``RequantizationRange`` + ``Requantize``), then runs its internal steps:
``QuantizePlaceholders`` (``input_min``/``input_max``), ``HoistFakeQuants``,
``ConvertFakeQuantsToRequantize``, ``fallback_min``/``fallback_max`` instead
of ``RequantizationRange``, ``MergeAdjacentRequantizes``,
``MergeDuplicateNodes``, ``RemoveRedundantQuantizations``; ``ignore_op`` leaves
op types float.

graphxform: ``transforms/quantize_nodes.py`` (the steps in ``transforms/_quantize_steps.py``), all but
``Conv2DBackpropInput``, whose ``QuantizedConv2DTranspose`` TensorFlow no longer has. Several C++ TESTs call one
internal step directly; the ports run the whole transform with ``ignore_op`` set so that only that step has work
to do, and say so in their docstrings.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from .conftest import build, expect_near, iota, node_map, op_counts, run, transform, values


#: TestQuantizedVersusFloatGraph: none of these may be left (Reshape may be added by the quantization itself).
QUANTIZABLE_OPS = {"BiasAdd", "Concat", "Conv2D", "MatMul", "Relu", "Relu6", "AvgPool", "MaxPool"}


def _versus_float(gd, float_feeds, outputs, transforms="quantize_nodes", threshold=1.0, quantized_feeds=None,
                  inputs=None):
    """TestTransformedVersusFloatGraph: every output of the transformed graph within ``threshold``."""
    float_out = run(gd, float_feeds, outputs)
    out = transform(gd, list(float_feeds) if inputs is None else inputs, outputs, transforms)
    got = run(out, float_feeds if quantized_feeds is None else quantized_feeds, outputs)
    assert len(got) == len(float_out) == len(outputs)
    for a, b in zip(got, float_out):
        expect_near(a, b, threshold)
    return out


def _quantized_versus_float(gd, feeds, outputs):
    """TestQuantizedVersusFloatGraph: ``quantize_nodes`` within 1.0, and no quantizable float op left."""
    out = _versus_float(gd, feeds, outputs)
    assert not QUANTIZABLE_OPS & {n.op for n in out.node}
    return out


def _matmul(m, n, k, a, b):
    def fn():
        tf.linalg.matmul(tf.constant(values(a, [m, k]), name="a_op"), tf.constant(values(b, [k, n]), name="b_op"),
                         name="mat_mul_op")
    return build(fn)


def test_quantize_mat_mul_tiny():
    """QuantizeNodesTest.TestQuantizeMatMulTiny: tiny MatMuls, including min == max of a matrix."""
    for m, n, k, a, b in [(1, 1, 1, [2], [3]), (1, 2, 1, [1], [2, 3]), (1, 1, 2, [1, 1], [1, 1]),
                          (1, 1, 2, [0, 0], [1, 1]), (1, 1, 2, [1, 2], [1, 2])]:
        _quantized_versus_float(_matmul(m, n, k, a, b), {}, ["mat_mul_op"])


def test_quantize_mat_mul_small():
    """QuantizeNodesTest.TestQuantizeMatMulSmall: a 2x3 by 3x4 MatMul."""
    _quantized_versus_float(_matmul(2, 4, 3, list(range(1, 7)), list(range(7, 19))), {}, ["mat_mul_op"])


def _conv(depth, width, height, batch, filter_size, filter_count, stride, padding, input_values, filter_values):
    def fn():
        x = tf.constant(values(input_values, [batch, height, width, depth]), name="input_op")
        f = tf.constant(values(filter_values, [filter_size, filter_size, depth, filter_count]), name="filter_op")
        tf.nn.conv2d(x, f, [1, stride, stride, 1], padding, name="conv_op")
    return build(fn)


def test_odd_padding_problem():
    """QuantizeNodesTest.TestOddPaddingProblem: a 4x4 input, 3x3 filter, stride 2, SAME."""
    _quantized_versus_float(_conv(1, 4, 4, 1, 3, 1, 2, "SAME", list(range(1, 17)), list(range(1, 10))), {},
                            ["conv_op"])


def test_quantize_conv2d():
    """QuantizeNodesTest.TestQuantizeConv2D: a 3x4 input, 3x3 filter, stride 1, SAME."""
    _quantized_versus_float(_conv(1, 4, 3, 1, 3, 1, 1, "SAME", list(range(1, 13)), [1, 4, 7, 2, 5, 8, 3, 6, 9]), {},
                            ["conv_op"])


def test_quantize_bias_add():
    """QuantizeNodesTest.TestQuantizeBiasAdd."""
    def fn():
        tf.nn.bias_add(tf.constant(iota([1, 1, 2, 6]), name="input_op"), tf.constant(iota([6]), name="offset_op"),
                       name="bias_add_op")
    _quantized_versus_float(build(fn), {}, ["bias_add_op"])


def test_quantize_concat():
    """QuantizeNodesTest.TestQuantizeConcat. (The C++ API's ``Concat`` builds a ``ConcatV2``, which GTT's op list,
    holding the V1 ``Concat``, leaves float; the check "no Concat left" holds either way.)"""
    def fn():
        tf.concat([tf.constant(iota([2, 2, 3]), name="a_op"), tf.constant(iota([2, 2, 3], 13.0), name="b_op")],
                  tf.constant(0, name="shape_op"), name="concat_op")
    _quantized_versus_float(build(fn), {}, ["concat_op"])


def _unary(fn_name):
    def fn():
        x = tf.constant(iota([1, 2, 6, 1]), name="constant_op")
        if fn_name == "relu_op":
            tf.nn.relu(x, name=fn_name)
        elif fn_name == "relu6_op":
            tf.nn.relu6(x, name=fn_name)
        elif fn_name == "max_pool_op":
            tf.nn.max_pool2d(x, [1, 2, 2, 1], [1, 1, 1, 1], "SAME", name=fn_name)
        else:
            tf.nn.avg_pool2d(x, [1, 2, 2, 1], [1, 1, 1, 1], "SAME", name=fn_name)
    return build(fn)


@pytest.mark.parametrize("name, test", [("relu_op", "TestQuantizeRelu"), ("relu6_op", "TestQuantizeRelu6"),
                                        ("max_pool_op", "TestQuantizeMaxPool"), ("avg_pool_op", "TestQuantizeAvgPool")])
def test_quantize_unary(name, test):
    """QuantizeNodesTest.TestQuantizeRelu, TestQuantizeRelu6, TestQuantizeMaxPool, TestQuantizeAvgPool (2x2 SAME
    pools, stride 1) on a [1, 2, 6, 1] input."""
    _quantized_versus_float(_unary(name), {}, [name])


def test_quantize_reshape():
    """QuantizeNodesTest.TestQuantizeReshape: [4, 5] to [10, 2]."""
    def fn():
        tf.reshape(tf.constant(iota([4, 5]), name="constant_op"), [10, 2], name="reshape_op")
    _quantized_versus_float(build(fn), {}, ["reshape_op"])


def _requantized_bias_add():
    """quantized_op --QuantizedBiasAdd--> RequantizationRange/Requantize --> dequantize_op (the C++ tests' chain)."""
    q = tf.constant(np.zeros([1, 6], np.uint8), tf.quint8, name="quantized_op")
    qmin = tf.constant(2.0, name="quantized_min_op")
    qmax = tf.constant(2.0, name="quantized_max_op")  # built from the min tensor in the C++ tests: 2.0 too
    off = tf.constant(np.arange(1, 7, dtype=np.uint8), tf.quint8, name="offset_op")
    omin = tf.constant(0.0, name="offset_min_op")
    omax = tf.constant(255.0, name="offset_max_op")
    ba = tf.raw_ops.QuantizedBiasAdd(input=q, bias=off, min_input=qmin, max_input=qmax, min_bias=omin,
                                     max_bias=omax, out_type=tf.qint32, name="bias_add_op")
    rr = tf.raw_ops.RequantizationRange(input=ba.output, input_min=ba.min_out, input_max=ba.max_out,
                                        name="requantization_range_op")
    rq = tf.raw_ops.Requantize(input=ba.output, input_min=ba.min_out, input_max=ba.max_out,
                               requested_output_min=rr.output_min, requested_output_max=rr.output_max,
                               out_type=tf.quint8, name="requantize_op")
    return tf.raw_ops.Dequantize(input=rq.output, min_range=rq.output_min, max_range=rq.output_max,
                                 name="dequantize_op")


def _requantize_round_trip(deq):
    """Dequantize -> Reshape/Min/Max -> QuantizeV2 -> final_dequantize: the redundant round trip."""
    dims = tf.constant([-1], name="dequantize_reshape_dims")
    red = tf.constant(0, name="dequantize_reduction_dims")
    reshape = tf.reshape(deq, dims, name="dequantize_reshape")
    mn = tf.reduce_min(reshape, red, keepdims=False, name="dequantize_min")
    mx = tf.reduce_max(reshape, red, keepdims=False, name="dequantize_max")
    q = tf.raw_ops.QuantizeV2(input=deq, min_range=mn, max_range=mx, T=tf.quint8, mode="MIN_FIRST",
                              name="quantize_op")
    tf.raw_ops.Dequantize(input=q.output, min_range=q.output_min, max_range=q.output_max, name="final_dequantize")


def test_remove_redundant_quantization():
    """QuantizeNodesTest.TestRemoveRedundantQuantization (the C++ test calls the internal
    ``RemoveRedundantQuantizations``; here ``quantize_nodes(ignore_op=Reshape)``, so that only that step has work):
    ``final_dequantize`` reads ``quantized_op`` directly."""
    def fn():
        q = tf.constant(np.zeros([], np.uint8), tf.quint8, name="quantized_op")
        deq = tf.raw_ops.Dequantize(input=q, min_range=tf.constant(2.0, name="quantized_min_op"),
                                    max_range=tf.constant(2.0, name="quantized_max_op"), name="dequantize_op")
        _requantize_round_trip(deq)
    out = _versus_float(build(fn), {}, ["final_dequantize"], "quantize_nodes(ignore_op=Reshape)")
    assert node_map(out)["final_dequantize"].input[0] == "quantized_op"


def test_remove_redundant_quantization_with_bias_add():
    """QuantizeNodesTest.TestRemoveRedundantQuantizationWithBiasAdd (internal step, as above):
    ``final_dequantize`` reads ``requantize_op`` directly."""
    def fn():
        _requantize_round_trip(_requantized_bias_add())
    out = _versus_float(build(fn), {}, ["final_dequantize"], "quantize_nodes(ignore_op=Reshape)")
    assert node_map(out)["final_dequantize"].input[0] == "requantize_op"


def test_remove_redundant_quantization_with_multiple_outputs():
    """QuantizeNodesTest.TestRemoveRedundantQuantizationWithMultipleOutputs (internal step; ``ignore_op=Reshape,
    ignore_op=Relu``): ``dequantize_op`` also feeds a float Relu, so it stays: two Dequantize ops in all."""
    def fn():
        deq = _requantized_bias_add()
        _requantize_round_trip(deq)
        tf.nn.relu(deq, name="relu_op")
    out = _versus_float(build(fn), {}, ["final_dequantize", "relu_op"],
                        "quantize_nodes(ignore_op=Reshape, ignore_op=Relu)")
    assert op_counts(out)["Dequantize"] == 2


def _placeholder_relu():
    def fn():
        tf.nn.relu(tf.compat.v1.placeholder(tf.float32, name="placeholder_op"), name="relu_op")
    return build(fn)


def test_quantize_placeholders():
    """QuantizeNodesTest.TestQuantizePlaceholders: with ``input_min=-10.0, input_max=10.0`` the float Placeholder
    becomes a quint8 one and its reader goes through a Dequantize (the C++ test calls the internal
    ``QuantizePlaceholders``; here ``ignore_op=Relu`` keeps the Relu float); then plain ``quantize_nodes`` on the
    float graph matches it within 1.0 for an input of 5."""
    gd = _placeholder_relu()
    out = node_map(transform(gd, ["placeholder_op"], ["relu_op"],
                             "quantize_nodes(input_min=-10.0, input_max=10.0, ignore_op=Relu)"))
    assert out["relu_op"].input[0] != "placeholder_op"
    assert out["placeholder_op"].op == "Placeholder"
    assert out["placeholder_op"].attr["dtype"].type == tf.quint8.as_datatype_enum
    _quantized_versus_float(gd, {"placeholder_op:0": np.float32(5.0)}, ["relu_op"])


def float_to_quint8(x, range_min, range_max):
    """``FloatTensorToQuantizedInPlace<quint8>`` (quantization_utils.h: round half away from zero, clamped)."""
    scale = 255.0 / (range_max - range_min)

    def rnd(v):
        return np.sign(v) * np.floor(np.abs(v) + 0.5)

    q = rnd(np.asarray(x, np.float64) * scale) - rnd(range_min * scale)
    return np.clip(q, 0, 255).astype(np.uint8)


def _bias_add_placeholder():
    def fn():
        tf.nn.bias_add(tf.constant(iota([1, 100]), name="a"), tf.compat.v1.placeholder(tf.float32, name="placeholder"),
                       name="bias_add")
    return build(fn)


def test_input_range():
    """QuantizeNodesTest.TestInputRange: ``input_min=0, input_max=100``; the quantized graph is fed the quint8
    version of the float input; outputs within 1.0."""
    x = iota([100])
    _versus_float(_bias_add_placeholder(), {"placeholder:0": x}, ["bias_add"],
                  "quantize_nodes(input_min=0, input_max=100)",
                  quantized_feeds={"placeholder:0": float_to_quint8(x, 0.0, 100.0)})


def test_fallback_range():
    """QuantizeNodesTest.TestFallbackRange: ``fallback_min=0, fallback_max=200`` replaces every
    RequantizationRange by constants; outputs within 2.0."""
    out = _versus_float(_bias_add_placeholder(), {"placeholder:0": iota([100])}, ["bias_add"],
                        "quantize_nodes(fallback_min=0, fallback_max=200)", threshold=2.0)
    assert "RequantizationRange" not in op_counts(out)


def _bias_add_fake_quant(hoist: bool = False):
    def fn():
        x = tf.nn.bias_add(tf.constant(iota([1, 1, 2, 6]), name="input_op"), tf.constant(iota([6]), name="offset_op"),
                           name="bias_add_op")
        if hoist:
            x = tf.nn.max_pool2d(tf.nn.relu(x, name="relu_op"), [1, 2, 2, 1], [1, 1, 1, 1], "SAME",
                                 name="max_pool_op")
        tf.raw_ops.FakeQuantWithMinMaxVars(inputs=x, min=tf.constant(0.0, name="fake_quant_min_op"),
                                           max=tf.constant(18.0, name="fake_quant_max_op"), name="fake_quant_op")
    return build(fn)


def test_convert_fake_quants_to_requantize():
    """QuantizeNodesTest.TestConvertFakeQuantsToRequantize (internal ``ConvertFakeQuantsToRequantize``; here
    ``ignore_op=BiasAdd``): the FakeQuantWithMinMaxVars is gone, outputs within 1.0."""
    out = _versus_float(_bias_add_fake_quant(), {}, ["fake_quant_op"], "quantize_nodes(ignore_op=BiasAdd)")
    assert "FakeQuantWithMinMaxVars" not in op_counts(out)


def test_merge_adjacent_requantizes():
    """QuantizeNodesTest.TestMergeAdjacentRequantizes (internal ``MergeAdjacentRequantizes``; the graph is already
    quantized, so ``quantize_nodes`` has only that to do): the dynamic Requantize and the constant one merge."""
    def fn():
        x = tf.constant(np.arange(1, 13, dtype=np.uint8).reshape(1, 1, 2, 6), tf.quint8, name="input_op")
        off = tf.constant(np.arange(1, 7, dtype=np.uint8), tf.quint8, name="offset_op")
        ba = tf.raw_ops.QuantizedBiasAdd(
            input=x, bias=off, min_input=tf.constant(0.0, name="input_min_op"),
            max_input=tf.constant(255.0, name="input_max_op"), min_bias=tf.constant(0.0, name="offset_min_op"),
            max_bias=tf.constant(255.0, name="offset_max_op"), out_type=tf.qint32, name="quantized_bias_add_op")
        rr = tf.raw_ops.RequantizationRange(input=ba.output, input_min=ba.min_out, input_max=ba.max_out,
                                            name="requantization_range_op")
        rq = tf.raw_ops.Requantize(input=ba.output, input_min=ba.min_out, input_max=ba.max_out,
                                   requested_output_min=rr.output_min, requested_output_max=rr.output_max,
                                   out_type=tf.quint8, name="requantize_op")
        deq = tf.raw_ops.Dequantize(input=rq.output, min_range=rq.output_min, max_range=rq.output_max,
                                    mode="MIN_FIRST", name="dequantize_op")
        q = tf.raw_ops.QuantizeV2(input=deq, min_range=tf.constant(0.0, name="quantize_min_op"),
                                  max_range=tf.constant(255.0, name="quantize_max_op"), T=tf.qint32,
                                  mode="MIN_FIRST", name="quantize_op")
        frq = tf.raw_ops.Requantize(input=q.output, input_min=q.output_min, input_max=q.output_max,
                                    requested_output_min=tf.constant(0.0, name="fake_requantize_min_op"),
                                    requested_output_max=tf.constant(255.0, name="fake_requantize_max_op"),
                                    out_type=tf.quint8, name="fake_requantize_op")
        tf.raw_ops.Dequantize(input=frq.output, min_range=frq.output_min, max_range=frq.output_max,
                              mode="MIN_FIRST", name="fake_dequantize_op")
    out = _versus_float(build(fn), {}, ["fake_dequantize_op"])
    assert op_counts(out)["Requantize"] == 1


def test_convert_fake_quants_end_to_end():
    """QuantizeNodesTest.TestConvertFakeQuantsEndToEnd: ``quantize_nodes`` on BiasAdd + FakeQuant: no FakeQuant
    left, and one Requantize (the BiasAdd's dynamic one merged with the FakeQuant's trained range)."""
    out = _versus_float(_bias_add_fake_quant(), {}, ["fake_quant_op"])
    counts = op_counts(out)
    assert "FakeQuantWithMinMaxVars" not in counts
    assert counts["Requantize"] == 1


def test_hoist_fake_quants():
    """QuantizeNodesTest.TestHoistFakeQuants (internal ``HoistFakeQuants``; here with ``ignore_op`` for BiasAdd,
    Relu and MaxPool): the FakeQuant after BiasAdd -> Relu -> MaxPool moves up to right after the BiasAdd, and
    the MaxPool takes its name. (In the C++ test the hoisted node is still a FakeQuant; through the whole
    transform ``ConvertFakeQuantsToRequantize`` then turns it into a Dequantize of a Requantize.)"""
    out = _versus_float(_bias_add_fake_quant(hoist=True), {}, ["fake_quant_op"],
                        "quantize_nodes(ignore_op=BiasAdd, ignore_op=Relu, ignore_op=MaxPool)")
    nodes = node_map(out)
    assert nodes["fake_quant_op"].op == "MaxPool"
    hoisted = nodes[nodes["relu_op"].input[0]]
    assert hoisted.name == "fake_quant_op_hoisted" and hoisted.op == "Dequantize"
    assert nodes[hoisted.input[0].split(":")[0]].op == "Requantize"


def test_exclude_non_float():
    """QuantizeNodesTest.TestExcludeNonFloat: an int32 Reshape/Relu chain stays as it is, the float Reshape is
    quantized (becomes a Dequantize of the quantized result)."""
    def fn():
        ic = tf.constant(iota([4, 5], dtype=np.int32), name="int_constant")
        fc = tf.constant(iota([4, 5], 2.0), name="float_constant")
        er = tf.reshape(ic, [10, 2], name="excluded_reshape_op")
        ir = tf.reshape(fc, [10, 2], name="included_reshape_op")
        tf.cast(tf.nn.relu(er, name="excluded_relu_op"), tf.float32, name="excluded_float_caster")
        tf.nn.relu(ir, name="included_relu_op")
    out = node_map(_versus_float(build(fn), {}, ["excluded_float_caster", "included_relu_op"]))
    assert out["excluded_reshape_op"].op == "Reshape"
    assert out["included_reshape_op"].op == "Dequantize"


# ----------------------------------------------------------------------------- evidence: the kernels on TF 2.x
def _q(x, lo, hi):
    return tf.raw_ops.QuantizeV2(input=tf.constant(x, tf.float32), min_range=lo, max_range=hi, T=tf.quint8,
                                 mode="MIN_FIRST")


def _deq(t, lo, hi):
    return tf.raw_ops.Dequantize(input=t, min_range=lo, max_range=hi, mode="MIN_FIRST")


def test_eight_bit_kernels_run_on_cpu():
    """Not a C++ TEST: the eight-bit ops ``quantize_nodes`` emits are registered in this TensorFlow and run on CPU
    (without oneDNN), matching the float ops within a few quantization steps: QuantizeV2, Dequantize,
    QuantizedConv2D, RequantizationRange, Requantize, QuantizedMatMul, QuantizedBiasAdd, QuantizedRelu,
    QuantizedRelu6, QuantizedAvgPool, QuantizedMaxPool, QuantizedConcat, QuantizedReshape, QuantizedAdd,
    QuantizedMul, QuantizedResizeBilinear."""
    x4 = iota([1, 3, 4, 1])
    w = iota([3, 3, 1, 1])
    a, b = iota([1, 2]), iota([2, 1])
    bias = iota([6])
    xb = iota([1, 1, 2, 6])

    g = tf.Graph()
    with g.as_default():
        fetch = {}
        qx, qw = _q(x4, 0.0, 12.0), _q(w, 0.0, 9.0)
        conv = tf.raw_ops.QuantizedConv2D(input=qx.output, filter=qw.output, min_input=qx.output_min,
                                          max_input=qx.output_max, min_filter=qw.output_min, max_filter=qw.output_max,
                                          strides=[1, 1, 1, 1], padding="SAME", out_type=tf.qint32)
        rr = tf.raw_ops.RequantizationRange(input=conv.output, input_min=conv.min_output, input_max=conv.max_output)
        rq = tf.raw_ops.Requantize(input=conv.output, input_min=conv.min_output, input_max=conv.max_output,
                                   requested_output_min=rr.output_min, requested_output_max=rr.output_max,
                                   out_type=tf.quint8)
        fetch["conv"] = (_deq(rq.output, rq.output_min, rq.output_max),
                         tf.nn.conv2d(x4, w, [1, 1, 1, 1], "SAME"), 2.0)
        qa, qb = _q(a, 0.0, 2.0), _q(b, 0.0, 2.0)
        mm = tf.raw_ops.QuantizedMatMul(a=qa.output, b=qb.output, min_a=qa.output_min, max_a=qa.output_max,
                                        min_b=qb.output_min, max_b=qb.output_max, Toutput=tf.qint32)
        fetch["matmul"] = (tf.raw_ops.Dequantize(input=mm.out, min_range=mm.min_out, max_range=mm.max_out,
                                                 mode="MIN_FIRST"), tf.linalg.matmul(a, b), 0.1)
        qxb, qbias = _q(xb, 0.0, 12.0), _q(bias, 0.0, 6.0)
        ba = tf.raw_ops.QuantizedBiasAdd(input=qxb.output, bias=qbias.output, min_input=qxb.output_min,
                                         max_input=qxb.output_max, min_bias=qbias.output_min,
                                         max_bias=qbias.output_max, out_type=tf.qint32)
        fetch["bias_add"] = (tf.raw_ops.Dequantize(input=ba.output, min_range=ba.min_out, max_range=ba.max_out,
                                                   mode="MIN_FIRST"), tf.nn.bias_add(xb, bias), 0.2)
        qr = _q(iota([1, 2, 6, 1]) - 6.0, -6.0, 6.0)
        for name, op, ref in (("relu", tf.raw_ops.QuantizedRelu, tf.nn.relu),
                              ("relu6", tf.raw_ops.QuantizedRelu6, tf.nn.relu6)):
            r = op(features=qr.output, min_features=qr.output_min, max_features=qr.output_max, out_type=tf.quint8)
            fetch[name] = (_deq(r.activations, r.min_activations, r.max_activations), ref(iota([1, 2, 6, 1]) - 6.0),
                           0.1)
        qp = _q(iota([1, 2, 6, 1]), 0.0, 12.0)
        for name, op, ref in (("avg_pool", tf.raw_ops.QuantizedAvgPool, tf.nn.avg_pool2d),
                              ("max_pool", tf.raw_ops.QuantizedMaxPool, tf.nn.max_pool2d)):
            p = op(input=qp.output, min_input=qp.output_min, max_input=qp.output_max, ksize=[1, 2, 2, 1],
                   strides=[1, 1, 1, 1], padding="SAME")
            fetch[name] = (_deq(p.output, p.min_output, p.max_output),
                           ref(iota([1, 2, 6, 1]), [1, 2, 2, 1], [1, 1, 1, 1], "SAME"), 0.1)
        c1, c2 = _q(iota([2, 2, 3]), 0.0, 24.0), _q(iota([2, 2, 3], 13.0), 0.0, 24.0)
        cc = tf.raw_ops.QuantizedConcat(concat_dim=tf.constant(0), values=[c1.output, c2.output],
                                        input_mins=[c1.output_min, c2.output_min],
                                        input_maxes=[c1.output_max, c2.output_max])
        fetch["concat"] = (_deq(cc.output, cc.output_min, cc.output_max),
                           tf.concat([iota([2, 2, 3]), iota([2, 2, 3], 13.0)], 0), 0.1)
        rs = tf.raw_ops.QuantizedReshape(tensor=c1.output, shape=tf.constant([6, 2]), input_min=c1.output_min,
                                         input_max=c1.output_max)
        fetch["reshape"] = (_deq(rs.output, rs.output_min, rs.output_max), tf.reshape(iota([2, 2, 3]), [6, 2]), 0.1)
        for name, op, ref in (("add", tf.raw_ops.QuantizedAdd, tf.add), ("mul", tf.raw_ops.QuantizedMul, tf.multiply)):
            r = op(x=c1.output, y=c2.output, min_x=c1.output_min, max_x=c1.output_max, min_y=c2.output_min,
                   max_y=c2.output_max, Toutput=tf.qint32)
            fetch[name] = (tf.raw_ops.Dequantize(input=r.z, min_range=r.min_z, max_range=r.max_z, mode="MIN_FIRST"),
                           ref(iota([2, 2, 3]), iota([2, 2, 3], 13.0)), 3.0 if name == "mul" else 0.2)
        rb = tf.raw_ops.QuantizedResizeBilinear(images=qp.output, size=tf.constant([4, 12]), min=qp.output_min,
                                                max=qp.output_max)
        fetch["resize_bilinear"] = (_deq(rb.resized_images, rb.out_min, rb.out_max),
                                    tf.raw_ops.ResizeBilinear(images=iota([1, 2, 6, 1]), size=[4, 12]), 0.1)
    with tf.compat.v1.Session(graph=g) as s:
        got = s.run({k: (q, f) for k, (q, f, _) in fetch.items()})
    for key, (quantized, reference) in got.items():
        assert quantized.shape == reference.shape, key
        expect_near(quantized, reference, fetch[key][2])


def test_quantized_conv2d_transpose_does_not_exist():
    """Not a C++ TEST: GTT's op list maps ``Conv2DBackpropInput`` to ``QuantizedConv2DTranspose``, an op this
    TensorFlow does not have (so that mapping cannot be ported); the other targets exist."""
    assert op_def_registry.get("QuantizedConv2DTranspose") is None
    for op in ("QuantizedAdd", "QuantizedAvgPool", "QuantizedBiasAdd", "QuantizedConcat", "QuantizedConv2D",
               "QuantizedMatMul", "QuantizedMaxPool", "QuantizedMul", "QuantizedRelu", "QuantizedRelu6",
               "QuantizedResizeBilinear", "QuantizedReshape", "QuantizeV2", "Dequantize", "Requantize",
               "RequantizationRange"):
        assert op_def_registry.get(op) is not None, op
