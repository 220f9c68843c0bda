"""``fuse_resize_and_conv`` (GTT): ``Conv2D(ResizeBilinear(x))`` as one ``FusedResizeAndPadConv2D``."""
from __future__ import annotations

import numpy as np

from graphxform import Any, Match, Op, Replacement, Rule, const, make_node, register
from graphxform.core.nodes import attr

from ._fused_conv import conv_reason, feeds_only, resize_reason


@register
class FuseResizeAndConv(Rule):
    """Replaces ``Conv2D(ResizeBilinear(x, size), w)`` by ``FusedResizeAndPadConv2D(x, size, 0-paddings, w)``.

    GTT's ``fuse_resize_and_conv``: the resized image is never held in memory. The paddings are a new all-zero
    ``Const`` ``<conv>_dummy_paddings``; the fused op keeps the convolution's name. Not fused: NCHW, dilated or
    explicitly padded convolutions, ``half_pixel_centers`` resizes (the fused op resizes the legacy way), and a
    ``ResizeBilinear`` that other nodes read or that is protected.
    """

    name = "fuse_resize_and_conv"
    pattern = Op("Conv2D", Op("ResizeBilinear", Any(bind="x"), Any(bind="size"), bind="resize"), Any(bind="w"),
                 bind="conv")

    def check(self, match: Match) -> str | None:
        return (conv_reason(match["conv"]) or feeds_only(match.graph, match["resize"], match["conv"].name)
                or resize_reason(match["resize"], match["conv"]))

    def rewrite(self, match: Match) -> Replacement:
        conv, resize = match["conv"], match["resize"]
        pads = const(match.graph.unique_name(f"{conv.name}_dummy_paddings"), np.zeros([4, 2], np.int32),
                     device=conv.device)
        control = [i for i in (*conv.input, *resize.input) if i.startswith("^")]
        fused = make_node("FusedResizeAndPadConv2D", conv.name,
                          [match.tensor("x"), match.tensor("size"), pads.name, match.tensor("w"),
                           *dict.fromkeys(control)],
                          device=conv.device, attrs={
                              "T": attr(conv, "T"), "resize_align_corners": attr(resize, "align_corners", False),
                              "mode": "REFLECT", "strides": attr(conv, "strides"), "padding": attr(conv, "padding")})
        return Replacement(add=[pads], update=[fused], remove=[resize.name])


__all__ = ["FuseResizeAndConv"]
