"""Ports of ``tensorflow/tools/graph_transforms/fold_batch_norms_test.cc`` (``FoldBatchNormsTest``).

GTT's ``fold_batch_norms`` folds ``Mul(Conv2D|MatMul|DepthwiseConv2dNative(x, W), Const)`` into the weights.
In graphxform ``fold_batch_norms`` is one rule that also does ``fold_old_batch_norms``.
"""
from __future__ import annotations

import tensorflow as tf

from .conftest import build, expect_near, run, transform, values

INPUT = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0, -1.0, -4.0, -2.0, -5.0, -3.0, -6.0]
WEIGHTS = [1.0, 2.0, 3.0, 4.0, 0.1, 0.2, 0.3, 0.4]


def _conv_mul(shared: bool = False):
    def fn():
        x = tf.constant(values(INPUT, [1, 1, 6, 2]), name="input_op")
        w = tf.constant(values(WEIGHTS, [1, 2, 2, 2]), name="weights_op")
        conv = tf.nn.conv2d(x, w, [1, 1, 1, 1], "VALID", name="conv_op")
        tf.multiply(conv, tf.constant(values([2.0, 3.0], [2]), name="mul_values"), name="output")
        if shared:
            # As in the C++ test, mul_values_2 is built from mul_values' data.
            tf.multiply(conv, tf.constant(values([2.0, 3.0], [2]), name="mul_values_2"), name="output_2")
    return build(fn)


def _fold(gd, outputs, tol=1e-5):
    before = run(gd, {}, outputs)
    out = transform(gd, [], outputs, "fold_batch_norms")
    for b, a in zip(before, run(out, {}, outputs)):
        expect_near(a, b, tol)
    return out


def test_fold_batch_norms_conv2d():
    """FoldBatchNormsTest.TestFoldBatchNormsConv2D: ``Mul(Conv2D, [2, 3])`` folds; no ``Mul`` is left."""
    out = _fold(_conv_mul(), ["output"])
    assert all(n.op != "Mul" for n in out.node)


def test_fold_batch_norms_conv2d_shared():
    """FoldBatchNormsTest.TestFoldBatchNormsConv2DShared (defined in the C++ file, not registered as a TEST):
    one ``Conv2D`` read by two ``Mul`` s; both outputs keep their values."""
    _fold(_conv_mul(shared=True), ["output", "output_2"])


def test_fold_batch_norms_matmul():
    """FoldBatchNormsTest.TestFoldBatchNormsMatMul: ``Mul(MatMul, [2, 3])`` folds; no ``Mul`` is left."""
    def fn():
        x = tf.constant(values(INPUT, [6, 2]), name="input_op")
        w = tf.constant(values([1.0, 2.0, 0.3, 0.4], [2, 2]), name="weights_op")
        mm = tf.linalg.matmul(x, w, name="matmul_op")
        tf.multiply(mm, tf.constant(values([2.0, 3.0], [2]), name="mul_values"), name="output")

    out = _fold(build(fn), ["output"])
    assert all(n.op != "Mul" for n in out.node)
