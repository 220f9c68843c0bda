"""``fuse_pad_and_conv`` (GTT): ``Conv2D(MirrorPad(x))`` as one ``FusedPadConv2D``."""
from __future__ import annotations

from graphxform import Any, Match, Op, Replacement, Rule, make_node, register
from graphxform.core.nodes import attr

from ._fused_conv import conv_reason, feeds_only, pad_reason


@register
class FusePadAndConv(Rule):
    """Replaces ``Conv2D(MirrorPad(x, paddings), w)`` by ``FusedPadConv2D(x, paddings, w)``.

    GTT's ``fuse_pad_and_conv``: one op, no padded copy of the input in memory. The fused op keeps the
    convolution's name. Not fused: NCHW, dilated or explicitly padded convolutions, paddings that are not an int32
    ``Const`` padding height and width only, and a ``MirrorPad`` that other nodes read or that is protected.
    """

    name = "fuse_pad_and_conv"
    pattern = Op("Conv2D", Op("MirrorPad", Any(bind="x"), Any(bind="paddings"), bind="pad"), Any(bind="w"),
                 bind="conv")

    def check(self, match: Match) -> str | None:
        return (conv_reason(match["conv"]) or feeds_only(match.graph, match["pad"], match["conv"].name)
                or pad_reason(match.graph, match["pad"]))

    def rewrite(self, match: Match) -> Replacement:
        conv, pad = match["conv"], match["pad"]
        control = [i for i in (*conv.input, *pad.input) if i.startswith("^")]
        fused = make_node("FusedPadConv2D", conv.name,
                          [match.tensor("x"), match.tensor("paddings"), match.tensor("w"), *dict.fromkeys(control)],
                          device=conv.device, attrs={"T": attr(conv, "T"), "mode": attr(pad, "mode"),
                                                     "strides": attr(conv, "strides"), "padding": attr(conv, "padding")})
        return Replacement(update=[fused], remove=[pad.name])


__all__ = ["FusePadAndConv"]
