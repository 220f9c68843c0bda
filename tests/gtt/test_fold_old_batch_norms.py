"""Ports of ``tensorflow/tools/graph_transforms/fold_old_batch_norms_test.cc`` (``FoldOldBatchNormsTest``).

GTT's ``fold_old_batch_norms`` folds ``BatchNormWithGlobalNormalization`` and
``FusedBatchNorm`` (V1-V3) after ``Conv2D`` / ``DepthwiseConv2dNative``, after
``BatchToSpaceND(Conv2D)`` (the BiasAdd moves before the BatchToSpaceND) and
after ``ConcatV2(Conv2D, Conv2D)`` (the scale/offset split along the concat
axis when it is the channel axis). graphxform runs it as ``fold_batch_norms``.
"""
from __future__ import annotations

import pytest
import tensorflow as tf

from .conftest import build, expect_close, expect_near, node, run, transform, values

INPUT = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0, -1.0, -4.0, -2.0, -5.0, -3.0, -6.0]
WEIGHTS = [1.0, 2.0, 3.0, 4.0, 0.1, 0.2, 0.3, 0.4]


def _bn_consts(channels: int) -> None:
    mean = [10.0, 20.0, 30.0, 40.0][:channels]
    variance = [0.25, 0.5, 0.75, 1.0][:channels]
    beta = [0.1, 0.6, 1.1, 1.6][:channels]
    gamma = [1.0, 2.0, 3.0, 4.0][:channels]
    tf.constant(values(mean, [channels]), name="mean_op")
    tf.constant(values(variance, [channels]), name="variance_op")
    tf.constant(values(beta, [channels]), name="beta_op")
    tf.constant(values(gamma, [channels]), name="gamma_op")


def _old_bn(src: str):
    """BatchNormWithGlobalNormalization, added as a raw NodeDef (deprecated at GraphDef version 9)."""
    return node("output", "BatchNormWithGlobalNormalization", [src, "mean_op", "variance_op", "beta_op", "gamma_op"],
                T=tf.float32, variance_epsilon=0.00001, scale_after_normalization=False)


def _fused_bn(src: str):
    return node("output", "FusedBatchNorm", [src, "gamma_op", "beta_op", "mean_op", "variance_op"],
                T=tf.float32, epsilon=0.00001, is_training=False)


def _conv_graph(conv: str, channels: int, bn, producer=None):
    def fn():
        x = tf.constant(values(INPUT, [1, 1, 6, 2]), name="input_op")
        w = tf.constant(values(WEIGHTS, [1, 2, 2, 2]), name="weights_op")
        if conv == "Conv2D":
            tf.nn.conv2d(x, w, [1, 1, 1, 1], "VALID", name="conv_op")
        else:
            tf.raw_ops.DepthwiseConv2dNative(input=x, filter=w, strides=[1, 1, 1, 1], padding="VALID", name="conv_op")
        _bn_consts(channels)

    gd = build(fn, producer=producer)
    gd.node.append(bn("conv_op"))
    return gd


def _fold(gd, check):
    before = run(gd, {}, ["output"])[0]
    out = transform(gd, [], ["output"], "fold_old_batch_norms")
    check(run(out, {}, ["output"])[0], before)
    return out


def test_fold_old_batch_norms():
    """FoldOldBatchNormsTest.TestFoldOldBatchNorms: BatchNormWithGlobalNormalization after Conv2D (producer 8)."""
    out = _fold(_conv_graph("Conv2D", 2, _old_bn, producer=8), lambda a, b: expect_near(a, b, 1e-5))
    assert all(n.op != "BatchNormWithGlobalNormalization" for n in out.node)


def test_fold_old_batch_norms_after_depthwise_conv2d_native():
    """FoldOldBatchNormsTest.TestFoldOldBatchNormsAfterDepthwiseConv2dNative (4 channels, producer 8)."""
    out = _fold(_conv_graph("DepthwiseConv2dNative", 4, _old_bn, producer=8), lambda a, b: expect_near(a, b, 1e-5))
    assert all(n.op != "BatchNormWithGlobalNormalization" for n in out.node)


def test_fold_fused_batch_norms():
    """FoldOldBatchNormsTest.TestFoldFusedBatchNorms: FusedBatchNorm after Conv2D, within 2e-5."""
    out = _fold(_conv_graph("Conv2D", 2, _fused_bn), lambda a, b: expect_near(a, b, 2e-5))
    assert all(n.op != "FusedBatchNorm" for n in out.node)


def test_fold_fused_batch_norms_after_depthwise_conv2d_native():
    """FoldOldBatchNormsTest.TestFoldFusedBatchNormsAfterDepthwiseConv2dNative: within atol = rtol = 2e-5."""
    out = _fold(_conv_graph("DepthwiseConv2dNative", 4, _fused_bn),
                lambda a, b: expect_close(a, b, atol=2e-5, rtol=2e-5))
    assert all(n.op != "FusedBatchNorm" for n in out.node)


def _concat_graph(split: bool):
    """Two Conv2Ds concatenated (axis 3 when ``split``: the channels; else axis 2), then FusedBatchNorm."""
    def fn():
        input_shape = [1, 1, 6, 2] if split else [1, 1, 12, 1]
        weight_shape = [1, 2, 2, 1] if split else [1, 2, 1, 2]
        x0 = tf.constant(values(INPUT, input_shape), name="input_op0")
        w0 = tf.constant(values([1.0, 2.0, 3.0, 4.0], weight_shape), name="weights0_op")
        c0 = tf.nn.conv2d(x0, w0, [1, 1, 1, 1], "VALID", name="conv0_op")
        x1 = tf.constant(values(INPUT, input_shape), name="input1_op")
        w1 = tf.constant(values([1.0, 2.0, 3.0, 4.0], weight_shape), name="weights1_op")
        c1 = tf.nn.conv2d(x1, w1, [1, 1, 1, 1], "VALID", name="conv1_op")
        tf.concat([c0, c1], tf.constant(3 if split else 2, name="shape_op"), name="concat_op")
        _bn_consts(2)

    gd = build(fn)
    gd.node.append(_fused_bn("concat_op"))
    return gd


@pytest.mark.parametrize("split", [True, False], ids=["split", "unsplit"])
def test_fold_fused_batch_norms_with_concat(split):
    """FoldOldBatchNormsTest.TestFoldFusedBatchNormsWithConcat (split: concat on the channel axis, the scale and
    offset split between the two convolutions; unsplit: concat on axis 2). No FusedBatchNorm is left.

    Deliberate difference (rounding, unsplit case): graphxform computes the folded weights and offset in float64
    and rounds once; GTT computes them in float32 exactly as TensorFlow's FusedBatchNorm kernel does, so its
    folded graph reproduces this test's outputs bit for bit. Here the unsplit outputs (|y| up to 141, with
    cancellation against the means 10 and 20) differ by up to 1.5e-5, checked at the 2e-5 of the other
    FusedBatchNorm TESTs of this file; the split case meets ``ExpectClose``'s 5 ulp."""
    tol = {} if split else {"atol": 2e-5, "rtol": 2e-5}
    out = _fold(_concat_graph(split), lambda a, b: expect_close(a, b, **tol))
    assert all(n.op != "FusedBatchNorm" for n in out.node)


def _batch_to_space_graph():
    def fn():
        x = tf.constant(values(INPUT, [2, 1, 3, 2]), name="input_op")
        w = tf.constant(values(WEIGHTS, [1, 2, 2, 2]), name="weights_op")
        conv = tf.nn.conv2d(x, w, [1, 1, 1, 1], "VALID", name="conv_op")
        block = tf.constant([1, 2], tf.int32, name="block_shape_op")
        tf.constant([[0, 0], [0, 1]], tf.int32, name="crops_op")  # built, unused (as in the C++ test)
        tf.raw_ops.BatchToSpaceND(input=conv, block_shape=block, crops=tf.constant([[0, 0], [0, 1]], tf.int32),
                                  name="batch_to_space_op")
        _bn_consts(2)

    gd = build(fn)
    gd.node.append(_fused_bn("batch_to_space_op"))
    return gd


def test_fold_fused_batch_norms_with_batch_to_space():
    """FoldOldBatchNormsTest.TestFoldFusedBatchNormsWithBatchToSpace: values within 1e-5. (The C++ test's
    structural check looks for an op named ``FusedBatchNormWithBatchToSpace``, which no graph has; the real
    structural expectation is :func:`test_fold_fused_batch_norms_with_batch_to_space_folds`.)"""
    out = _fold(_batch_to_space_graph(), lambda a, b: expect_near(a, b, 1e-5))
    assert all(n.op != "FusedBatchNormWithBatchToSpace" for n in out.node)


def test_fold_fused_batch_norms_with_batch_to_space_folds():
    """FoldOldBatchNormsTest.TestFoldFusedBatchNormsWithBatchToSpace, GTT's actual result
    (fold_old_batch_norms.cc, FuseBatchNormWithBatchToSpace): the batch norm is gone, the scale in the weights and
    the offset in a BiasAdd before the BatchToSpaceND."""
    out = _fold(_batch_to_space_graph(), lambda a, b: expect_near(a, b, 1e-5))
    assert all(not n.op.startswith("FusedBatchNorm") for n in out.node)
