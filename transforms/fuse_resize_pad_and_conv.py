"""``fuse_resize_pad_and_conv`` (GTT): ``Conv2D(MirrorPad(ResizeBilinear(x)))`` as one ``FusedResizeAndPadConv2D``."""
from __future__ import annotations

from graphxform import Any, Match, Op, Replacement, Rule, make_node, register
from graphxform.core.nodes import attr

from ._fused_conv import conv_reason, feeds_only, pad_reason, resize_reason


@register
class FuseResizePadAndConv(Rule):
    """Replaces ``Conv2D(MirrorPad(ResizeBilinear(x, size), paddings), w)`` by
    ``FusedResizeAndPadConv2D(x, size, paddings, w)``.

    GTT's ``fuse_resize_pad_and_conv``: neither the resized nor the padded image is held in memory. The fused op
    keeps the convolution's name. Not fused: NCHW, dilated or explicitly padded convolutions,
    ``half_pixel_centers`` resizes, paddings that are not an int32 ``Const`` padding height and width only, and
    an intermediate node other nodes read or that is protected.
    """

    name = "fuse_resize_pad_and_conv"
    pattern = Op("Conv2D", Op("MirrorPad", Op("ResizeBilinear", Any(bind="x"), Any(bind="size"), bind="resize"),
                              Any(bind="paddings"), bind="pad"), Any(bind="w"), bind="conv")

    def check(self, match: Match) -> str | None:
        graph, conv, pad, resize = match.graph, match["conv"], match["pad"], match["resize"]
        return (conv_reason(conv) or feeds_only(graph, pad, conv.name) or feeds_only(graph, resize, pad.name)
                or pad_reason(graph, pad) or resize_reason(resize, conv))

    def rewrite(self, match: Match) -> Replacement:
        conv, pad, resize = match["conv"], match["pad"], match["resize"]
        control = [i for i in (*conv.input, *pad.input, *resize.input) if i.startswith("^")]
        fused = make_node("FusedResizeAndPadConv2D", conv.name,
                          [match.tensor("x"), match.tensor("size"), match.tensor("paddings"), match.tensor("w"),
                           *dict.fromkeys(control)],
                          device=conv.device, attrs={
                              "T": attr(conv, "T"), "resize_align_corners": attr(resize, "align_corners", False),
                              "mode": attr(pad, "mode"), "strides": attr(conv, "strides"),
                              "padding": attr(conv, "padding")})
        return Replacement(update=[fused], remove=[pad.name, resize.name])


__all__ = ["FuseResizePadAndConv"]
