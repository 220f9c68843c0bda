"""``fold_batch_norms`` through a ``ConcatV2`` of convolutions or a ``BatchToSpaceND`` of one (GTT's
``fold_old_batch_norms`` cases ``FuseBatchNormWithConvConcat`` and ``FuseBatchNormWithBatchToSpace``).

Neither op mixes channels: a per-channel batch norm after it is a per-channel scale of the convolutions' weights
(the concatenated slice of the scale for each, when the concat axis is the channel axis) followed by one
``BiasAdd`` of the offset after the op, named like the batch norm.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from graphxform import Graph, Match, NodeDef, Replacement, const, copy_node, make_node, with_attrs
from graphxform.core.nodes import raw_tensor_proto
from graphxform.core.opdefs import attr_str, attr_type

CONV_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative"})
THROUGH_OPS = frozenset({"ConcatV2", "BatchToSpaceND"})


@dataclass
class Through:
    """A batch norm ``bn`` after ``op`` (concat or batch-to-space) of ``convs``: what folding it changes."""

    bn: NodeDef
    op: NodeDef
    convs: list[NodeDef]
    weights: list[tuple[NodeDef, list[str]]]  # each conv's Const and the path to it
    scales: list[np.ndarray]  # per conv, its output channels' scale
    shift: np.ndarray  # per output channel of the batch norm
    consts: list[str]  # the batch norm's parameter nodes


def _scaled(w2: np.ndarray, s2: np.ndarray, dtype: np.dtype, block: int = 1 << 13) -> np.ndarray:
    """``w2 * s2`` (2-D, ``s2`` broadcast by rows or columns) in float64, cast to ``dtype``.

    Computed a block of rows at a time in one float64 buffer, allocated once: the intermediate stays small
    (64 KiB) however large the weights are, and leaves no trail of freed blocks behind.
    """
    out = np.empty(w2.shape, dtype=dtype)
    rows = max(1, block // max(1, w2.shape[1]))
    per_row = s2.shape[0] != 1
    buf = np.empty((min(rows, w2.shape[0]), w2.shape[1]), dtype=np.float64)
    with np.errstate(all="ignore"):
        for i in range(0, w2.shape[0], rows):
            src = w2[i:i + rows]
            part = buf[:len(src)]
            part[...] = src
            np.multiply(part, s2[i:i + rows] if per_row else s2, out=part)
            out[i:i + rows] = part
    return out


def _conv_channels(conv: NodeDef, w: np.ndarray) -> int:
    return int(w.shape[3] if conv.op == "Conv2D" else w.shape[2] * w.shape[3])


def _feeds_only(graph: Graph, node: NodeDef, consumer: str) -> str | None:
    if graph.consumer_nodes(node.name) != [consumer] or graph.output_ports(node.name) != {0}:
        return f"{node.name!r} is read by other nodes than {consumer!r}: its value must not change"
    if graph.is_protected(node.name):
        return f"{node.name!r} is a signature tensor or protected: its value must not change"
    return None


#: ``const_source(graph, tensor)`` of fold_batch_norms: the Const behind ``tensor``, the path to it, or why not.
SourceFn = Callable[[Graph, str], tuple]
#: The per-channel ``(k, c)`` step of batch norm ``bn`` over ``channels`` NHWC channels, or why there is none.
StepFn = Callable[[Graph, NodeDef, int], object]


def plan_through(graph: Graph, bn: NodeDef, step_of: StepFn, const_source: SourceFn) -> Through | str:
    """The fold of batch norm ``bn`` through the ``ConcatV2``/``BatchToSpaceND`` it reads, or why there is none.

    ``step_of`` and ``const_source`` are fold_batch_norms' (passed in: that module imports this one).
    """
    op = graph.producer(graph.data_inputs(bn.name)[0])
    if op.op not in THROUGH_OPS:
        return f"{bn.name!r} reads a {op.op}: it is folded from the convolution before it, if any"
    reason = _feeds_only(graph, op, bn.name)
    if reason or graph.control_inputs(op.name) or graph.control_inputs(bn.name):
        return reason or f"{op.name!r} or {bn.name!r} has control inputs"
    extra = {p for p in graph.output_ports(bn.name) if p} | {p for *_, p in graph.signature_uses(bn.name) if p}
    if extra:
        return f"outputs {sorted(extra)} (batch statistics) of {bn.op} {bn.name!r} are used"
    data = graph.data_inputs(op.name)
    values = data[:-1] if op.op == "ConcatV2" else data[:1]
    convs, weights, channels = [], [], []
    for t in values:
        conv = graph.producer(t)
        if conv.op not in CONV_OPS or t.partition(":")[2] not in ("", "0"):
            return f"{op.name!r} reads {t!r}, not a Conv2D or DepthwiseConv2dNative"
        reason = _feeds_only(graph, conv, op.name)
        if reason or attr_str(conv, "data_format", "NHWC") != "NHWC":
            return reason or f"{conv.name!r} is not NHWC"
        if attr_type(conv, "T") not in (tf.float16.as_datatype_enum, tf.float32.as_datatype_enum,
                                        tf.float64.as_datatype_enum):
            return f"{conv.name!r} does not compute in a float type"
        w, path, why = const_source(graph, graph.data_inputs(conv.name)[1])
        if w is None:
            return f"weights of {conv.name!r}: {why}"
        convs.append(conv)
        weights.append((w, path))
        channels.append(_conv_channels(conv, graph.const_value(w.name)))
    if op.op == "ConcatV2":
        axis_node, _, why = const_source(graph, data[-1])
        if axis_node is None:
            return f"the axis of {op.name!r}: {why}"
        axis = int(np.asarray(graph.const_value(axis_node.name)).reshape(-1)[0])
        on_channels = axis in (3, -1)
        total = sum(channels) if on_channels else channels[0]
        if not on_channels and len(set(channels)) != 1:
            return f"{op.name!r} concatenates convolutions with different channel counts along axis {axis}"
    else:
        block, _, why = const_source(graph, data[1])
        if block is None or np.asarray(graph.const_value(block.name)).size > 2:
            return f"the block shape of {op.name!r} is not a Const of at most 2 dims (the channels must stay last)"
        on_channels, total = False, channels[0]
    step = step_of(graph, bn, total)
    if isinstance(step, str):
        return step
    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(step.k)) and np.all(np.isfinite(step.c))
    if not finite:
        return f"folding {bn.name!r} gives non-finite scales or offsets (a variance + epsilon <= 0)"
    offsets = np.cumsum([0, *channels]) if on_channels else [0] * (len(channels) + 1)
    scales = [step.k[offsets[i]:offsets[i] + channels[i]] if on_channels else step.k for i in range(len(convs))]
    return Through(bn, op, convs, weights, scales, step.c, step.consts)


def match_through(graph: Graph, bn: NodeDef, params: dict, step_of: StepFn, const_source: SourceFn) -> Match | str:
    plan = plan_through(graph, bn, step_of, const_source)
    if isinstance(plan, str):
        return plan
    m = Match(graph, bn, {"anchor": bn, "op": plan.op, **{f"conv{i}": c for i, c in enumerate(plan.convs)}}, params)
    m.extra["through"] = plan
    return m


def scaled_weights(graph: Graph, name: str, scale: np.ndarray, channels: str) -> tensor_pb2.TensorProto:
    """The weights of Const ``name`` times ``scale`` per output channel, as a proto. ``channels``: where the output
    channel is, ``"last"`` (Conv2D's HWIO, MatMul), ``"depthwise"`` (the last two axes, in × multiplier) or
    ``"rows"`` (MatMul with ``transpose_b``).

    Two copies of the weights at most are alive at once (a model's largest weights are most of its size): the old
    weights' bytes go before the new array is taken as bytes, that array before the bytes become a proto. (No heap
    trim here: the TF1 convnet's peak fell 0.1x its file with one, but its transform took a quarter longer, each
    page given back being faulted in again by the next weight.)"""
    w = graph.const_value(name)
    shape, dtype = w.shape, w.dtype
    if channels == "rows":
        scaled = _scaled(w, scale[:, None], dtype)
    else:
        scaled = _scaled(w.reshape(-1, w.shape[2] * w.shape[3] if channels == "depthwise" else w.shape[-1]),
                         scale.reshape(1, -1), dtype)
    del w
    content = scaled.tobytes()
    del scaled
    return raw_tensor_proto(dtype, shape, content)


def rewrite_through(match: Match) -> Replacement:
    """Scale each convolution's weights; the batch norm becomes ``BiasAdd(op, offset)`` under its own name."""
    graph, plan = match.graph, match.extra["through"]
    rep = Replacement()
    for conv, (w_node, path), scale in zip(plan.convs, plan.weights, plan.scales):
        value = scaled_weights(graph, w_node.name, scale, "last" if conv.op == "Conv2D" else "depthwise")
        chain = [conv.name, *path]
        if all(graph.consumer_nodes(n) == [chain[i]] and not graph.is_protected(n) for i, n in enumerate(chain[1:])):
            rep.update.append(with_attrs(w_node, value=value))
        else:  # shared weights stay as they are
            name = graph.unique_name(f"{w_node.name}/bn_folded")
            rep.add.append(const(name, value, device=w_node.device))
            new_conv = copy_node(conv)
            new_conv.input[1] = name
            rep.update.append(new_conv)
    dtype = tf.as_dtype(attr_type(plan.convs[0], "T"))
    bias = graph.unique_name(f"{plan.op.name}_bn_offset")
    rep.add.append(const(bias, plan.shift, dtype, device=plan.bn.device))
    rep.update.append(make_node("BiasAdd", plan.bn.name, [plan.op.name, bias], device=plan.bn.device,
                                attrs={"T": dtype, "data_format": "NHWC"}))
    for name in plan.consts:
        if graph.control_consumers(name):
            rep.replace_control[name] = []
    rep.remove.extend(plan.consts)
    return rep


__all__ = ["THROUGH_OPS", "Through", "match_through", "plan_through", "rewrite_through"]
