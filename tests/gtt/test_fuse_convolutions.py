"""Ports of ``tensorflow/tools/graph_transforms/fuse_convolutions_test.cc`` (``FuseConvolutionsTest``).

GTT's ``fuse_resize_pad_and_conv``, ``fuse_resize_and_conv`` and
``fuse_pad_and_conv`` merge ``ResizeBilinear`` and/or ``MirrorPad`` into the
following ``Conv2D`` as ``FusedResizeAndPadConv2D`` / ``FusedPadConv2D`` (ops
that still exist in TF 2.x). graphxform: ``transforms/fuse_*.py``.
optimize_for_inference_test.py's fused-convolution TESTs are ported in
test_optimize_for_inference.py.
"""
from __future__ import annotations

import tensorflow as tf

from .conftest import build, expect_near, run, transform, values

INPUT = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0, -1.0, -4.0, -2.0, -5.0, -3.0, -6.0]
WEIGHTS = [1.0, 2.0, 3.0, 4.0, 0.1, 0.2, 0.3, 0.4]


def resize_pad_conv(resize: bool, pad: bool):
    """Const [1,2,3,2] -> ResizeBilinear to [12,4] (align_corners false) -> MirrorPad REFLECT [[0,0],[1,1],[2,2],
    [0,0]] -> Conv2D VALID named ``output``, with the stages asked for."""
    def fn():
        x = tf.constant(values(INPUT, [1, 2, 3, 2]), name="input_op")
        if resize:
            x = tf.raw_ops.ResizeBilinear(images=x, size=tf.constant([12, 4], name="size"), align_corners=False,
                                          name="resize_op")
        if pad:
            x = tf.raw_ops.MirrorPad(input=x, paddings=tf.constant([[0, 0], [1, 1], [2, 2], [0, 0]],
                                                                   name="pad_dims_op"),
                                     mode="REFLECT", name="pad_op")
        tf.nn.conv2d(x, tf.constant(values(WEIGHTS, [1, 2, 2, 2]), name="weights_op"), [1, 1, 1, 1], "VALID",
                     name="output")
    return build(fn)


def fuse(gd, transforms, gone, tol=1e-5):
    before = run(gd, {}, ["output"])[0]
    out = transform(gd, [], ["output"], transforms)
    expect_near(run(out, {}, ["output"])[0], before, tol)
    assert not set(gone) & {n.op for n in out.node}
    return out


def test_fuse_resize_pad_and_conv():
    """FuseConvolutionsTest.TestFuseResizePadAndConv: no Conv2D, MirrorPad or ResizeBilinear left; within 1e-5."""
    fuse(resize_pad_conv(True, True), "fuse_resize_pad_and_conv", ["Conv2D", "MirrorPad", "ResizeBilinear"])


def test_fuse_resize_and_conv():
    """FuseConvolutionsTest.TestFuseResizeAndConv: no Conv2D or ResizeBilinear left; within 1e-5."""
    fuse(resize_pad_conv(True, False), "fuse_resize_and_conv", ["Conv2D", "ResizeBilinear"])


def test_fuse_pad_and_conv():
    """FuseConvolutionsTest.TestFusePadAndConv: no Conv2D or MirrorPad left; within 1e-5."""
    fuse(resize_pad_conv(False, True), "fuse_pad_and_conv", ["Conv2D", "MirrorPad"])
