"""Ports of ``tensorflow/tools/graph_transforms/flatten_atrous_test.cc`` (``FlattenAtrousConvTest``).

GTT's ``flatten_atrous_conv`` replaces ``BatchToSpaceND(Conv(SpaceToBatchND(x)))``
(how ``atrous_conv2d`` is built) by one convolution with an upsampled
(dilated, zero-filled) filter. graphxform: ``transforms/flatten_atrous_conv.py``.
"""
from __future__ import annotations

import pytest
import tensorflow as tf

from .conftest import build, expect_near, node_map, run, transform, values


def _atrous(conv: str):
    def fn():
        x = tf.constant(values([.1, .4, .2, .5, .3, .6, -1.0, -.4, -.2, -.5, -.3, -.6, .1, .4, .2, .5, .3, .6],
                               [1, 3, 3, 2]), name="input_op")
        block = tf.constant([2, 2], tf.int32, name="block_shape_op")
        s2b = tf.raw_ops.SpaceToBatchND(input=x, block_shape=block,
                                        paddings=tf.constant([[1, 2], [1, 2]], tf.int32, name="paddings_op"),
                                        name="space_to_batch_op")
        w = tf.constant(values([.1, .2, .3, .4, .1, .2, .3, .4], [2, 2, 2, 1]), name="weights_op")
        if conv == "Conv2D":
            y = tf.nn.conv2d(s2b, w, [1, 1, 1, 1], "VALID", name="conv_op")
        else:
            y = tf.raw_ops.DepthwiseConv2dNative(input=s2b, filter=w, strides=[1, 1, 1, 1], padding="VALID",
                                                 name="conv_op")
        tf.raw_ops.BatchToSpaceND(input=y, block_shape=block,
                                  crops=tf.constant([[0, 1], [0, 1]], tf.int32, name="crops_op"), name="output")
    return build(fn)


@pytest.mark.parametrize("conv, test", [("Conv2D", "TestFlattenAtrousConv2D"),
                                        ("DepthwiseConv2dNative", "TestFlattenAtrousDepthwiseConv2dNative")])
def test_flatten_atrous_conv(conv, test):
    """FlattenAtrousConvTest.TestFlattenAtrousConv2D and TestFlattenAtrousDepthwiseConv2dNative: three nodes are
    left, ``input_op`` and ``weights_op`` (Consts) and ``output`` (the convolution); output within 1e-6.
    (GTT also puts them in that order; graphxform does not promise a node order.)"""
    gd = _atrous(conv)
    before = run(gd, {}, ["output"])[0]
    out = transform(gd, [], ["output"], "flatten_atrous_conv")
    nodes = node_map(out)
    assert len(out.node) == 3
    assert nodes["input_op"].op == "Const" and nodes["weights_op"].op == "Const" and nodes["output"].op == conv
    expect_near(run(out, {}, ["output"])[0], before, 1e-6)
