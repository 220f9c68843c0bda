"""What ``fuse_pad_and_conv``, ``fuse_resize_and_conv`` and ``fuse_resize_pad_and_conv`` check before fusing.

``FusedPadConv2D`` and ``FusedResizeAndPadConv2D`` compute an NHWC ``Conv2D`` (no dilations, ``SAME``/``VALID``
padding) of a ``MirrorPad`` of an optional legacy ``ResizeBilinear``; every check says why a graph is not that.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from graphxform import NodeDef, attr
from graphxform.core.graph import Graph

_FUSED_TYPES = (tf.half, tf.float32, tf.float64)


def conv_reason(conv: NodeDef) -> str | None:
    """Why the fused ops cannot compute ``conv`` (a ``Conv2D``), or ``None``."""
    fmt = attr(conv, "data_format", b"NHWC")
    if fmt not in (b"NHWC", "NHWC"):
        return f"{conv.name!r} is {fmt.decode() if isinstance(fmt, bytes) else fmt}; the fused ops are NHWC only"
    if any(d != 1 for d in attr(conv, "dilations", [1, 1, 1, 1])):
        return f"{conv.name!r} is dilated; the fused ops have no dilations"
    if attr(conv, "padding", b"") not in (b"SAME", b"VALID"):
        return f"{conv.name!r} has explicit padding; the fused ops take SAME or VALID"
    if attr(conv, "T", tf.float32) not in _FUSED_TYPES:
        return f"{conv.name!r} computes in {attr(conv, 'T').name}; the fused ops take half, float or double"
    return None


def feeds_only(graph: Graph, node: NodeDef, consumer: str) -> str | None:
    """Why ``node`` (to be fused into ``consumer``) must stay, or ``None``: it must feed ``consumer`` alone."""
    name = node.name
    if graph.consumer_nodes(name) != [consumer] or graph.output_ports(name) != {0}:
        return f"{name!r} is read by other nodes than {consumer!r}; fusing would compute it twice"
    if graph.is_protected(name):
        return f"{name!r} is a signature tensor or protected"
    return None


def pad_reason(graph: Graph, pad: NodeDef) -> str | None:
    """Why ``MirrorPad`` ``pad`` cannot be fused, or ``None``: int32 paddings, a ``Const`` that pads height and
    width only."""
    if attr(pad, "Tpaddings", tf.int32) != tf.int32:
        return f"{pad.name!r} has int64 paddings; the fused ops take int32"
    if attr(pad, "T", tf.float32) not in _FUSED_TYPES:
        return f"{pad.name!r} pads a {attr(pad, 'T').name} tensor"
    paddings = graph.producer(graph.data_inputs(pad.name)[1])
    if paddings.op != "Const":
        return f"the paddings of {pad.name!r} are not a Const; the fused ops pad height and width only"
    value = np.asarray(graph.const_value(paddings.name))
    if value.shape != (4, 2) or value[0].any() or value[3].any():
        return f"{pad.name!r} pads the batch or channel axis (paddings {value.tolist()}); the fused ops pad H, W only"
    return None


def resize_reason(resize: NodeDef, conv: NodeDef) -> str | None:
    """Why ``ResizeBilinear`` ``resize`` cannot be fused into ``conv``, or ``None``."""
    if attr(resize, "half_pixel_centers", False):
        return f"{resize.name!r} uses half_pixel_centers; the fused op resizes the legacy way"
    if attr(resize, "T", tf.float32) != attr(conv, "T", tf.float32):
        return f"{resize.name!r} reads {attr(resize, 'T').name}, the convolution computes in {attr(conv, 'T').name}"
    return None


__all__ = ["conv_reason", "feeds_only", "pad_reason", "resize_reason"]
