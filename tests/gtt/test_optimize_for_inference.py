"""Ports of ``tensorflow/python/tools/optimize_for_inference_test.py`` (``OptimizeForInferenceTest``).

``optimize_for_inference_lib`` is GTT's Python sibling: ``optimize_for_inference``
strips unused nodes, removes training nodes (``Identity`` and ``CheckNumerics``,
dropping control dependencies), turns named ``Placeholder`` s and every
``PlaceholderWithDefault`` into ``Const`` s, fuses decomposed batch norms, folds
batch norms (``fold_batch_norms``: BatchNormWithGlobalNormalization and
FusedBatchNorm V1/V3 after Conv2D/DepthwiseConv2dNative, NHWC and NCHW) and
fuses resize/pad into convolutions. The ports use the matching GTT transform
strings: ``strip_unused_nodes``, ``remove_nodes(op=Identity, op=CheckNumerics)``,
``fold_old_batch_norms``, ``fold_constants fold_batch_norms`` (graphxform folds
decomposed batch norms once ``fold_constants`` has folded their constant
chains), ``fuse_resize_pad_and_conv`` / ``fuse_resize_and_conv`` /
``fuse_pad_and_conv``.

NCHW graphs run in a child process with oneDNN on (TensorFlow's own CPU kernels
are NHWC only), as the Python test runs them on a GPU.
"""
from __future__ import annotations

import pytest
import tensorflow as tf

from .conftest import (
    build,
    const,
    expect_close,
    graph_def,
    node,
    node_map,
    run,
    run_nchw,
    transform,
    values,
)
from .test_fuse_convolutions import fuse, resize_pad_conv

INPUT = [1, 4, 2, 5, 3, 6, -1, -4, -2, -5, -3, -6]
RECIPE = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_old_batch_norms"


def test_optimize_for_inference():
    """OptimizeForInferenceTest.testOptimizeForInference: the unused Const and Adds go, the CheckNumerics and
    Identity nodes go; exactly ``a_constant``, ``b_constant`` and ``add(a_constant, b_constant)`` are left."""
    gd = graph_def(
        const("unused_constant", 0.0, shape=[]),
        node("unconnected_add", "Add", ["unused_constant", "unused_constant"], T=tf.float32),
        const("a_constant", 1.0, shape=[]),
        node("a_check", "CheckNumerics", ["a_constant"]),
        node("a_identity", "Identity", ["a_constant", "^a_check"]),
        const("b_constant", 1.0, shape=[]),
        node("b_check", "CheckNumerics", ["b_constant"]),
        node("b_identity", "Identity", ["b_constant", "^b_check"]),
        node("add", "Add", ["a_identity", "b_identity"], T=tf.float32),
        node("unused_output_add", "Add", ["add", "b_constant"], T=tf.float32),
    )
    out = transform(gd, [], ["add"], RECIPE)
    expected = graph_def(const("a_constant", 1.0, shape=[]), const("b_constant", 1.0, shape=[]),
                         node("add", "Add", ["a_constant", "b_constant"], T=tf.float32))
    assert sorted(out.node, key=lambda n: n.name) == sorted(expected.node, key=lambda n: n.name)


def _phase_train():
    return graph_def(node("phase_train", "Placeholder", dtype=tf.bool), node("r_relu", "Relu", ["phase_train"]))


def _learning_phase():
    return graph_def(const("a_constant", True, tf.bool, []),
                     node("keras_learning_phase", "PlaceholderWithDefault", ["a_constant"], dtype=tf.bool),
                     node("r_relu", "Relu", ["keras_learning_phase"]))


@pytest.mark.parametrize("test", ["testConvertPlaceholderToConstant", "testConvertPlaceholderToConstant2"])
def test_convert_placeholder_to_constant(test):
    """OptimizeForInferenceTest.testConvertPlaceholderToConstant and testConvertPlaceholderToConstant2
    (``placeholder_to_const_names=["phase_train=False"]`` / ``convert_placeholder_to_const``).

    Deliberate difference (no equivalent): GTT has no transform that turns a Placeholder into a Const, and
    neither has graphxform; its recipe keeps ``phase_train`` a Placeholder (feeds are never folded).
    """
    out = node_map(transform(_phase_train(), [], ["r_relu"], RECIPE + " fold_constants"))
    assert out["phase_train"].op == "Placeholder"


@pytest.mark.parametrize("test", ["testConvertPlaceholderWithDefaultToConstant",
                                  "testConvertPlaceholderWithDefaultToConstant2"])
def test_convert_placeholder_with_default_to_constant(test):
    """OptimizeForInferenceTest.testConvertPlaceholderWithDefaultToConstant and ...ToConstant2: optimize_for_inference
    turns ``keras_learning_phase`` (a PlaceholderWithDefault, default True) into ``Const(False)``.

    Deliberate difference: a PlaceholderWithDefault is a feed point in graphxform; ``fold_constants`` leaves it
    (its default still flows when it is not fed). GTT's ``fold_constants`` does not fold it either, unless it is
    named in ``inputs`` (then it becomes a plain Placeholder).
    """
    gd = _learning_phase()
    out = node_map(transform(gd, [], ["r_relu"], RECIPE + " fold_constants"))
    assert out["keras_learning_phase"].op == "PlaceholderWithDefault"


def _bn_consts(channels=2):
    return (tf.constant(values([10, 20][:channels], [channels])), tf.constant(values([0.25, 0.5], [2])),
            tf.constant(values([0.1, 0.6], [2])), tf.constant(values([1.0, 2.0], [2])))


def _fold_and_compare(gd, transforms, gone, rtol=1e-6, atol=1e-6, nchw=False, feeds=None):
    feeds = feeds or {}
    out = transform(gd, [k.split(":")[0] for k in feeds], ["output"], transforms)
    runner = run_nchw if nchw else run
    before, after = runner(gd, feeds, ["output:0"]), runner(out, feeds, ["output:0"])
    expect_close(after[0], before[0], atol=atol, rtol=rtol)
    assert not set(gone) & {n.op for n in out.node}
    return out


def test_fold_batch_norms():
    """OptimizeForInferenceTest.testFoldBatchNorms: BatchNormWithGlobalNormalization after a SAME Conv2D (producer
    8) folds; no BatchNormWithGlobalNormalization left.

    Deliberate difference (rounding): graphxform computes the folded weights ``W * s`` in float64 and rounds once;
    optimize_for_inference_lib rounds ``s`` to float32 first. Both are float32 noise away from the unfolded graph,
    but on this test's cancellation-prone outputs (|y| up to 40) graphxform's result differs from the unfolded one
    by up to 7.6e-6 where the library's differs by 3.8e-6, which ``assertAllClose``'s rtol = atol = 1e-6 tells
    apart (measured on this AMD CPU). The tolerance is the C++ port's (fold_old_batch_norms_test.cc): 1e-5 absolute.
    """
    def fn():
        x = tf.constant(values(INPUT, [1, 1, 6, 2]))
        w = tf.constant(values([1, 2, 3, 4, 0.1, 0.2, 0.3, 0.4], [1, 2, 2, 2]))
        conv = tf.nn.conv2d(x, w, [1, 1, 1, 1], padding="SAME", name="conv_op")
        mean, variance, beta, gamma = _bn_consts()
        tf.raw_ops.BatchNormWithGlobalNormalization(t=conv, m=mean, v=variance, beta=beta, gamma=gamma,
                                                    variance_epsilon=0.00001, scale_after_normalization=False,
                                                    name="output")
    _fold_and_compare(build(fn, producer=8), "fold_old_batch_norms", ["BatchNormWithGlobalNormalization"],
                      rtol=0, atol=1e-5)


def _fused_bn_graph(data_format, conv, version):
    def fn():
        shape = [1, 1, 6, 2] if data_format == "NHWC" else [1, 2, 1, 6]
        x = tf.constant(values(INPUT, shape))
        if conv == "conv2d":
            w = tf.constant(values([1, 2, 3, 4, 0.1, 0.2, 0.3, 0.4], [1, 2, 2, 2]))
            y = tf.nn.conv2d(x, w, [1, 1, 1, 1], padding="SAME", data_format=data_format, name="conv_op")
        else:
            w = tf.constant(values([1, 2, 0.3, 0.4], [1, 2, 2, 1]))
            y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=w, strides=[1, 1, 1, 1], padding="SAME",
                                                 data_format=data_format, name="conv_op")
        mean, variance, beta, gamma = _bn_consts()
        op = tf.raw_ops.FusedBatchNorm if version == 1 else tf.raw_ops.FusedBatchNormV3
        op(x=y, scale=gamma, offset=beta, mean=mean, variance=variance, epsilon=0.00001, is_training=False,
           data_format=data_format, name="output")
    return build(fn, producer=9)


CASES = [("NHWC", "conv2d"), ("NCHW", "conv2d"), ("NHWC", "depthwise_conv2d_native"),
         ("NCHW", "depthwise_conv2d_native")]


@pytest.mark.parametrize("data_format, conv", CASES)
def test_fold_fused_batch_norms(data_format, conv):
    """OptimizeForInferenceTest.testFoldFusedBatchNorms: FusedBatchNorm after Conv2D / DepthwiseConv2dNative, NHWC
    and NCHW; within rtol 1e-4, atol 1e-6; no FusedBatchNorm left."""
    _fold_and_compare(_fused_bn_graph(data_format, conv, 1), "fold_old_batch_norms", ["FusedBatchNorm"],
                      rtol=1e-4, nchw=data_format == "NCHW")


@pytest.mark.parametrize("data_format, conv", CASES)
def test_fold_fused_batch_norms_v3(data_format, conv):
    """OptimizeForInferenceTest.testFoldFusedBatchNormsV3: the same with FusedBatchNormV3."""
    _fold_and_compare(_fused_bn_graph(data_format, conv, 3), "fold_old_batch_norms", ["FusedBatchNormV3"],
                      rtol=1e-4, nchw=data_format == "NCHW")


def test_fuse_resize_pad_and_conv():
    """OptimizeForInferenceTest.testFuseResizePadAndConv (``fuse_resize_and_conv`` in the library; GTT's
    ``fuse_resize_pad_and_conv``): no Conv2D, MirrorPad or ResizeBilinear left (assertAllClose tolerances)."""
    fuse(resize_pad_conv(True, True), "fuse_resize_pad_and_conv", ["Conv2D", "MirrorPad", "ResizeBilinear"], 1e-6)


def test_fuse_resize_and_conv():
    """OptimizeForInferenceTest.testFuseResizeAndConv (GTT's ``fuse_resize_and_conv``): no Conv2D left (nor a
    MirrorPad, which this graph never had)."""
    fuse(resize_pad_conv(True, False), "fuse_resize_and_conv", ["Conv2D", "MirrorPad"], 1e-6)


def test_fuse_pad_and_conv():
    """OptimizeForInferenceTest.testFusePadAndConv (GTT's ``fuse_pad_and_conv``): no Conv2D left (nor a
    ResizeBilinear, which this graph never had)."""
    fuse(resize_pad_conv(False, True), "fuse_pad_and_conv", ["Conv2D", "ResizeBilinear"], 1e-6)


def _decomposed_bn(mode):
    """create_base_for_fuse_batchnorm: conv * v + (beta - mean * v), v = rsqrt(var + eps) * gamma; the input is a
    Placeholder ``input_op`` fed the test's values (:data:`DECOMPOSED_FEEDS`)."""
    def fn():
        nchw = mode == "MISMATCH_FORMAT"
        data_format = "NCHW" if nchw else "NHWC"
        x = tf.compat.v1.placeholder(tf.float32, [1, 2, 1, 6] if nchw else [1, 1, 6, 2], name="input_op")
        w = tf.constant(values([1, 2, 3, 4, 0.1, 0.2, 0.3, 0.4], [1, 2, 2, 2]))
        conv = tf.nn.conv2d(x, w, [1, 1, 1, 1], data_format=data_format, padding="SAME", name="conv_op")
        c2 = tf.constant(0.00001)
        if not nchw:
            c1, c3, c4, c5, c6 = (tf.constant(values(v, [2])) for v in
                                  ([0.25, 0.5], [10, 20], [0.1, 0.6], [1.0, 2.0], [0.2, 0.5]))
        else:
            c1, c3, c4, c5, c6 = (tf.constant(values(v, [6])) for v in
                                  ([0.25, 0.5, 0.6, 0.7, 0.8, 0.9], [10, 20, 30, 40, 50, 60],
                                   [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1, 2, 3, 4, 5, 6], [0.2, 0.4, 0.5, 0.6, 0.7, 0.8]))
        rsqrt = tf.math.rsqrt(tf.raw_ops.Add(x=c1, y=c2))
        v = rsqrt if mode == "MATCH_NO_GAMMA" else tf.multiply(rsqrt, c5)
        mul1 = tf.multiply(conv, v)
        mul2 = tf.multiply(c3, c6) if mode == "MISMATCH_PATTERN" else tf.multiply(c3, v)
        sub = tf.subtract(c4, mul2)
        if mode == "MATCH_SWITCH_ORDER":
            tf.raw_ops.Add(x=sub, y=mul1, name="output")
        else:
            tf.raw_ops.Add(x=mul1, y=sub, name="output")
    return build(fn, producer=8)


DECOMPOSED = ["Add", "Rsqrt", "Mul", "Sub"]


def decomposed_feeds(mode):
    return {"input_op:0": values(INPUT, [1, 2, 1, 6] if mode == "MISMATCH_FORMAT" else [1, 1, 6, 2])}


@pytest.mark.parametrize("mode, test", [("MATCH_ALL", "testFuseDecomposedBatchNorm_MatchAll"),
                                        ("MATCH_NO_GAMMA", "testFuseDecomposedBatchNorm_MatchNoGamma"),
                                        ("MATCH_SWITCH_ORDER", "testFuseDecomposedBatchNorm_MatchSwitchOrder")])
def test_fuse_decomposed_batch_norm(mode, test):
    """OptimizeForInferenceTest.testFuseDecomposedBatchNorm_MatchAll, _MatchNoGamma, _MatchSwitchOrder: the
    library first fuses the decomposed batch norm into one FusedBatchNorm (no Add/Rsqrt/Mul/Sub left), then folds
    it (no FusedBatchNorm left; rtol 1e-4, atol 1e-6).

    graphxform folds the decomposed batch norm straight into the convolution (no FusedBatchNorm in between); the
    end state is checked: none of FusedBatchNorm, Add, Rsqrt, Mul, Sub left. The Python test's input is a Const,
    which makes ``fold_constants`` fold the whole graph; here it is a Placeholder fed the same values (and named
    in ``inputs``), so the batch-norm folding is what is tested.
    """
    _fold_and_compare(_decomposed_bn(mode), "fold_constants fold_batch_norms", ["FusedBatchNorm", *DECOMPOSED],
                      rtol=1e-4, feeds=decomposed_feeds(mode))


def test_fuse_decomposed_batch_norm_pattern_mismatch():
    """OptimizeForInferenceTest.testFuseDecomposedBatchNorm_PatternMismatchCase: ``mean * const`` instead of
    ``mean * v`` does not match the library's pattern, so its 7 math ops stay.

    Deliberate difference: graphxform folds any per-channel ``x * k + c`` with constant ``k``, ``c`` after a
    convolution, whatever the pattern: this graph folds into the convolution too (values unchanged). The input is a
    fed Placeholder, as in the matching cases.
    """
    _fold_and_compare(_decomposed_bn("MISMATCH_PATTERN"), "fold_constants fold_batch_norms", DECOMPOSED,
                      feeds=decomposed_feeds("MISMATCH_PATTERN"))


def test_fuse_decomposed_batch_norm_format_unsupported():
    """OptimizeForInferenceTest.testFuseDecomposedBatchNorm_FormatUnsupportedCase (run only with oneDNN in the
    Python test; here through oneDNN in a child process): an NCHW convolution whose "batch norm" constants have 6
    values, broadcast along the last (width) axis, not the channel axis: not a per-channel batch norm, so it is not
    folded into the convolution. The library keeps all 7 math ops; graphxform's ``fold_constants`` folds the 5 that
    only read constants, and the ``Mul`` of the convolution and the final ``Add`` stay."""
    out = _fold_and_compare(_decomposed_bn("MISMATCH_FORMAT"), "fold_constants fold_batch_norms", [],
                            nchw=True, feeds=decomposed_feeds("MISMATCH_FORMAT"))
    nodes = node_map(out)
    assert nodes["output"].op == "Add"
    assert sum(n.op in DECOMPOSED for n in out.node) == 2
    assert any(n.op == "Mul" and "conv_op" in n.input for n in out.node)
