"""``flatten_atrous_conv`` (GTT): ``BatchToSpaceND(Conv(SpaceToBatchND(x)))`` as one convolution."""
from __future__ import annotations

import numpy as np

from graphxform import Any, Const, Match, Op, Replacement, Rule, const, make_node, register, with_attrs
from graphxform.core.nodes import attr, tensor_proto


def _same_or_valid(pads: np.ndarray, crops: np.ndarray, k_eff: list[int]) -> str | None:
    """``"SAME"``/``"VALID"`` when padding by ``pads`` and cropping ``crops`` is that padding of a convolution
    with (dilated) kernel sizes ``k_eff``, else ``None``."""
    net = pads - crops  # padding the whole image by pads, then cropping the output, pads it by pads - crops
    if not net.any():
        return "VALID"
    same = np.array([[(k - 1) // 2, (k - 1) - (k - 1) // 2] for k in k_eff])
    return "SAME" if np.array_equal(net, same) else None


@register
class FlattenAtrousConv(Rule):
    """Replaces ``BatchToSpaceND(Conv2D(SpaceToBatchND(x, block, pads), w), block, crops)`` by
    ``Conv2D(x, upsampled(w))`` (also ``DepthwiseConv2dNative``).

    GTT's ``flatten_atrous_conv``: ``tf.nn.atrous_conv2d`` builds a dilated convolution by moving the image to
    the batch and back; this does it in one convolution whose filter is the original spread ``block`` apart with
    zeros between (as GTT). The result keeps the ``BatchToSpaceND``'s name. GTT always makes it a ``SAME``
    convolution; here the paddings and crops must amount to ``SAME`` or ``VALID`` padding of the dilated filter,
    and that padding is used (other paddings are not flattened). Not flattened: non-``Const`` block shapes,
    paddings, crops or filters; two different block shapes; strided, non-``VALID`` or NCHW inner convolutions;
    intermediate nodes read elsewhere or protected.
    """

    name = "flatten_atrous_conv"
    pattern = Op("BatchToSpaceND",
                 Op("Conv2D|DepthwiseConv2dNative",
                    Op("SpaceToBatchND", Any(bind="x"), Const(bind="block"), Const(bind="pads"), bind="s2b"),
                    Const(bind="w"), bind="conv"),
                 Const(bind="block2"), Const(bind="crops"), bind="b2s")

    def check(self, match: Match) -> str | None:
        graph, conv = match.graph, match["conv"]
        for key, user in (("s2b", "conv"), ("conv", "b2s")):
            node = match[key]
            if graph.consumer_nodes(node.name) != [match[user].name] or graph.output_ports(node.name) != {0}:
                return f"{node.name!r} is read by other nodes; flattening would compute it twice"
            if graph.is_protected(node.name):
                return f"{node.name!r} is a signature tensor or protected"
        block = np.asarray(graph.const_value(match["block"].name)).reshape(-1)
        if block.shape != (2,) or not np.array_equal(block, graph.const_value(match["block2"].name).reshape(-1)):
            return "the SpaceToBatchND and BatchToSpaceND block shapes differ or are not 2-D"
        if attr(conv, "data_format", b"NHWC") != b"NHWC":
            return f"{conv.name!r} is not NHWC"
        if attr(conv, "padding", b"") != b"VALID" or any(s != 1 for s in attr(conv, "strides", [1, 1, 1, 1])):
            return f"{conv.name!r} is not a VALID convolution with stride 1"
        if any(d != 1 for d in attr(conv, "dilations", [1, 1, 1, 1])):
            return f"{conv.name!r} is already dilated"
        w = graph.const_value(match["w"].name)
        if w.ndim != 4 or w.dtype.kind != "f":
            return f"the filter {match['w'].name!r} is not a 4-D float Const"
        if self._padding(match) is None:
            return "the paddings and crops are neither SAME nor VALID padding of the dilated filter"
        return None

    @staticmethod
    def _padding(match: Match) -> str | None:
        graph = match.graph
        block = graph.const_value(match["block"].name).reshape(-1)
        w = graph.const_value(match["w"].name)
        pads = np.asarray(graph.const_value(match["pads"].name)).reshape(-1, 2)
        crops = np.asarray(graph.const_value(match["crops"].name)).reshape(-1, 2)
        if pads.shape != (2, 2) or crops.shape != (2, 2):
            return None
        return _same_or_valid(pads, crops, [(w.shape[i] - 1) * int(block[i]) + 1 for i in range(2)])

    def rewrite(self, match: Match) -> Replacement:
        graph, conv, b2s, w_node = match.graph, match["conv"], match["b2s"], match["w"]
        bh, bw = (int(b) for b in graph.const_value(match["block"].name).reshape(-1))
        w = graph.const_value(w_node.name)
        up = np.zeros(((w.shape[0] - 1) * bh + 1, (w.shape[1] - 1) * bw + 1, *w.shape[2:]), w.dtype)
        up[::bh, ::bw] = w
        rep = Replacement()
        filter_name = w_node.name
        if graph.consumer_nodes(w_node.name) == [conv.name] and not graph.is_protected(w_node.name):
            rep.update.append(with_attrs(w_node, value=tensor_proto(up, w.dtype)))
        else:  # the filter is shared: the upsampled one is a new Const
            filter_name = graph.unique_name(f"{w_node.name}/upsampled")
            rep.add.append(const(filter_name, up, device=w_node.device))
        attrs = {k: attr(conv, k) for k in ("T", "strides", "data_format", "use_cudnn_on_gpu") if k in conv.attr}
        attrs["padding"] = self._padding(match)
        control = [i for n in (b2s, conv, match["s2b"]) for i in n.input if i.startswith("^")]
        rep.update.append(make_node(conv.op, b2s.name, [match.tensor("x"), filter_name, *dict.fromkeys(control)],
                                    device=conv.device, attrs=attrs))
        rep.remove.extend([conv.name, match["s2b"].name, match["block"].name, match["pads"].name,
                           match["block2"].name, match["crops"].name])
        return rep


__all__ = ["FlattenAtrousConv"]
