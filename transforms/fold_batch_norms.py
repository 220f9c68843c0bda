"""``fold_batch_norms``: fold inference batch norms and per-channel scale/shift into conv/matmul weights.

GTT names: ``fold_batch_norms`` (trailing ``Mul``) and ``fold_old_batch_norms``
(``FusedBatchNorm``, ``BatchNormWithGlobalNormalization``). Decomposed batch
norms (Keras 3, ``tf.nn.batch_normalization``) need their ``Rsqrt(var + eps) *
gamma`` chains folded into ``Const`` s first: run ``fold_constants`` before
this rule (the default pipeline does).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from graphxform import Graph, Match, NodeDef, Replacement, Rule, parse_input, register
from graphxform.core.frames import colocation_targets
from graphxform.core.nodes import const, copy_node, make_node, with_attrs
from graphxform.core.opdefs import (
    FEED_OPS,
    FUSED_BATCH_NORM_OPS,
    PASS_THROUGH_OPS,
    attr_bool,
    attr_float,
    attr_str,
    attr_type,
    is_stateful,
)

from ._bn_through import match_through, rewrite_through, scaled_weights

log = logging.getLogger(__name__)

#: Ops whose weights (input 1) can absorb a per-output-channel scale.
WEIGHTED_OPS = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul"})
BN_OPS = FUSED_BATCH_NORM_OPS | {"BatchNormWithGlobalNormalization"}
BIAS_OPS = frozenset({"BiasAdd", "BiasAddV1"})
ADD_OPS = frozenset({"Add", "AddV2"})
AFFINE_OPS = BN_OPS | BIAS_OPS | ADD_OPS | {"Mul", "Sub", "RealDiv"}
_FLOAT_TYPES = {types_pb2.DT_HALF, types_pb2.DT_BFLOAT16, types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE}
#: How many affine nodes after a weighted op ``candidates`` looks back through.
_MAX_CHAIN = 16


def const_source(graph: Graph, tensor: str) -> tuple[NodeDef | None, list[str], str]:
    """The ``Const`` behind ``tensor`` (following ``Identity`` s), the nodes on the way, or why there is none."""
    path: list[str] = []
    inp = tensor
    for _ in range(64):
        name, port, _ = parse_input(inp)
        node = graph.get(name)
        if node is None:
            return None, path, f"{inp!r} names no node"
        path.append(name)
        if node.op == "Const" and port == 0:
            return node, path, ""
        data = graph.data_inputs(name)
        if node.op in PASS_THROUGH_OPS and len(data) == 1 and port == 0 and not graph.control_inputs(name):
            inp = data[0]
            continue
        return None, path, f"{parse_input(tensor)[0]!r} is a {node.op}, not a Const"
    return None, path, f"{tensor!r} is behind too many Identity ops"


@dataclass
class _Layout:
    """Where the output channels of the weighted op are."""

    fmt: str  # "NHWC" (channels last, also MatMul) or "NCHW"
    rank: int  # rank of the op's output: 4 for convolutions, 2 for MatMul
    channels: int

    @property
    def axis(self) -> int:
        return 1 if self.fmt == "NCHW" else self.rank - 1


@dataclass
class _Step:
    """One node after the weighted op: ``y = x * k + c`` per channel (float64 vectors)."""

    node: NodeDef
    k: np.ndarray
    c: np.ndarray
    consts: list[str] = field(default_factory=list)  # const operands (and their Identity wrappers)


@dataclass
class _Plan:
    op: NodeDef
    weights: NodeDef
    weights_path: list[str]
    layout: _Layout
    steps: list[_Step]
    stop: str  # why the chain ends where it ends


def _per_channel(value: np.ndarray, layout: _Layout, what: str) -> np.ndarray | str:
    """``value`` as a [channels] float64 vector, or why it does not broadcast per output channel."""
    shape = list(value.shape)
    if len(shape) > layout.rank:
        return f"{what} has rank {len(shape)}, more than the rank-{layout.rank} output it is applied to"
    padded = [1] * (layout.rank - len(shape)) + shape
    for axis, dim in enumerate(padded):
        if axis == layout.axis:
            if dim not in (1, layout.channels):
                return f"{what} has shape {shape}: {dim} values along the channel axis, not {layout.channels}"
        elif dim != 1:
            return (f"{what} has shape {shape}, not per-channel for a {layout.fmt} output with "
                    f"{layout.channels} channels (axis {axis} has size {dim})")
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    return np.broadcast_to(flat, (layout.channels,)).copy()


def _const_vector(graph: Graph, tensor: str, layout: _Layout, what: str, consts: list[str]) -> np.ndarray | str:
    node, path, reason = const_source(graph, tensor)
    if node is None:
        last = graph.get(path[-1]) if path else None
        computed = last is not None and last.op not in FEED_OPS and not is_stateful(last.op)
        return f"{what} {reason}" + (" (if it is computed from constants, run fold_constants first)"
                                     if computed else "")
    consts.extend(path)
    value = graph.const_value(node.name)
    if value.dtype.kind not in "fiu":
        return f"{what} {node.name!r} is {value.dtype}, not a number"
    return _per_channel(value, layout, f"{what} {node.name!r}")


def _bn_step(graph: Graph, node: NodeDef, layout: _Layout) -> _Step | str:
    name = node.name
    if layout.rank != 4:
        return f"{node.op} {name!r} needs a 4-D input; the MatMul output is 2-D"
    data = graph.data_inputs(name)
    consts: list[str] = []
    if node.op == "BatchNormWithGlobalNormalization":
        if layout.fmt != "NHWC":
            return f"{name!r} is BatchNormWithGlobalNormalization (channels last) after a {layout.fmt} op"
        names = {"mean": 1, "variance": 2, "beta": 3, "gamma": 4}
        eps = attr_float(node, "variance_epsilon")
        scale_after = attr_bool(node, "scale_after_normalization")
    else:
        if attr_bool(node, "is_training", True):
            return f"{node.op} {name!r} is in training mode (is_training=true): it normalises with batch statistics"
        fmt = attr_str(node, "data_format", "NHWC")
        if fmt not in ("NHWC", "NCHW"):
            return f"{node.op} {name!r} has data_format {fmt}, unsupported (NHWC or NCHW)"
        if fmt != layout.fmt:
            return f"{node.op} {name!r} is {fmt} but the op before it is {layout.fmt}"
        names = {"gamma": 1, "beta": 2, "mean": 3, "variance": 4}
        eps = attr_float(node, "epsilon", 1e-4)
        scale_after = True
    vec: dict[str, np.ndarray] = {}
    vec_layout = _Layout("NHWC", 1, layout.channels)  # the parameters are plain [C] vectors
    for key, idx in names.items():
        if idx >= len(data):
            return f"{node.op} {name!r} has no {key} input"
        v = _const_vector(graph, data[idx], vec_layout, f"{key} input of {name!r}:", consts)
        if isinstance(v, str):
            return v
        vec[key] = v
    with np.errstate(all="ignore"):
        k = 1.0 / np.sqrt(vec["variance"] + np.float64(eps))
    if scale_after:
        k = k * vec["gamma"]
    return _Step(node, k, vec["beta"] - vec["mean"] * k, consts)


def _affine_step(graph: Graph, node: NodeDef, x_index: int, layout: _Layout) -> _Step | str:
    """``node`` (reading the chain tensor at input ``x_index``) as ``y = x * k + c``, or why it is not one."""
    name, op = node.name, node.op
    if op not in AFFINE_OPS:
        return f"{name!r} is {op}, not a batch norm, Mul, Add, Sub, RealDiv or BiasAdd"
    if graph.control_inputs(name):
        return f"{name!r} has control inputs"
    if op in BN_OPS:
        if x_index != 0:
            return f"the chain tensor is not the data input of {op} {name!r}"
        return _bn_step(graph, node, layout)
    data = graph.data_inputs(name)
    if len(data) != 2:
        return f"{op} {name!r} has {len(data)} inputs"
    other = data[1 - x_index]
    consts: list[str] = []
    ones, zeros = np.ones(layout.channels), np.zeros(layout.channels)
    if op in BIAS_OPS:
        if x_index != 0:
            return f"the chain tensor is the bias of {name!r}"
        fmt = attr_str(node, "data_format", "NHWC")
        if layout.rank == 4 and fmt != layout.fmt:
            return f"BiasAdd {name!r} is {fmt} but the op before it is {layout.fmt}"
        v = _const_vector(graph, other, _Layout("NHWC", 1, layout.channels), f"bias of {name!r}:", consts)
        return v if isinstance(v, str) else _Step(node, ones, v, consts)
    v = _const_vector(graph, other, layout, f"{'multiplier' if op == 'Mul' else 'operand'} of {op} {name!r}:",
                      consts)
    if isinstance(v, str):
        return v
    if op == "Mul":
        return _Step(node, v, zeros, consts)
    if op in ADD_OPS:
        return _Step(node, ones, v, consts)
    if op == "Sub":
        return _Step(node, ones, -v, consts) if x_index == 0 else _Step(node, -ones, v, consts)
    # RealDiv
    if x_index != 0:
        return f"RealDiv {name!r} divides a constant by the chain tensor"
    if np.any(v == 0):
        return f"RealDiv {name!r} divides by zero in some channel"
    return _Step(node, 1.0 / v, zeros, consts)


def _layout(graph: Graph, op: NodeDef, weights: NodeDef) -> _Layout | str:
    """Where the output channels of ``op`` are, from the shape of its ``weights`` (not converting the value)."""
    if "value" not in weights.attr:  # (indexing a proto map would insert the key)
        graph.const_value(weights.name)  # raises: the graph is corrupt
    shape = [d.size for d in weights.attr["value"].tensor.tensor_shape.dim]
    if op.op == "MatMul":
        if len(shape) != 2:
            return f"weights of {op.name!r} have rank {len(shape)}, not 2"
        return _Layout("NHWC", 2, int(shape[0] if attr_bool(op, "transpose_b") else shape[1]))
    fmt = attr_str(op, "data_format", "NHWC")
    if fmt not in ("NHWC", "NCHW"):
        return f"{op.op} {op.name!r} has data_format {fmt}, unsupported (NHWC or NCHW)"
    if len(shape) != 4:
        return f"weights of {op.name!r} have rank {len(shape)}, not 4"
    channels = shape[3] if op.op == "Conv2D" else shape[2] * shape[3]
    return _Layout(fmt, 4, int(channels))


def _signature_nodes(graph: Graph) -> set[str]:
    return {parse_input(t)[0] for t in graph.signature_tensors()}


def plan_fold(graph: Graph, op: NodeDef) -> _Plan | str:
    """The chain of affine nodes after weighted ``op`` that can be folded into it, or why there is none."""
    if op.op not in WEIGHTED_OPS:
        return f"{op.name!r} is {op.op}, not one of {', '.join(sorted(WEIGHTED_OPS))}"
    if attr_type(op, "T") not in _FLOAT_TYPES:
        return f"{op.name!r} computes in {types_pb2.DataType.Name(attr_type(op, 'T'))}, not a float type"
    data = graph.data_inputs(op.name)
    if len(data) < 2:
        return f"{op.name!r} has {len(data)} inputs"
    weights, path, reason = const_source(graph, data[1])
    if weights is None:
        return f"weights of {op.name!r}: {reason} (freeze the model first)"
    layout = _layout(graph, op, weights)
    if isinstance(layout, str):
        return layout
    steps: list[_Step] = []
    sig_nodes = _signature_nodes(graph)
    cur = op
    while True:
        if cur.name in sig_nodes or cur.name in graph.protected:
            stop = f"{cur.name!r} is a signature tensor or protected: its value must not change"
            break
        users = graph.consumers(cur.name)
        ports = graph.output_ports(cur.name)
        if graph.control_consumers(cur.name):
            stop = f"{cur.name!r} has control consumers ({', '.join(graph.control_consumers(cur.name)[:3])})"
            break
        if len(users) != 1 or ports != {0}:
            stop = (f"{cur.name!r} has no consumers" if not users else
                    f"the output of {cur.name!r} is used by {len(users)} inputs "
                    f"({', '.join(sorted({u for u, _ in users})[:3])}); its value must not change")
            break
        nxt = graph.node(users[0][0])
        step = _affine_step(graph, nxt, users[0][1], layout)
        if isinstance(step, str):
            stop = step
            break
        if nxt.op in BN_OPS:  # it becomes a BiasAdd: its other outputs (batch statistics) must be unused
            extra = sorted({p for p in graph.output_ports(nxt.name) if p != 0}
                           | {parse_input(t)[1] for t in graph.signature_tensors()
                              if parse_input(t)[0] == nxt.name and parse_input(t)[1] != 0})
            if extra:
                stop = f"outputs {extra} (batch statistics) of {nxt.op} {nxt.name!r} are used"
                break
        steps.append(step)
        cur = nxt
    return _Plan(op, weights, path, layout, steps, stop)


def _compose(steps: list[_Step], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The chain as one ``y = x * scale + shift`` (float64, per channel)."""
    scale, shift = np.ones(channels), np.zeros(channels)
    with np.errstate(all="ignore"):
        for step in steps:
            scale, shift = scale * step.k, shift * step.k + step.c
    return scale, shift


@register
class FoldBatchNorms(Rule):
    """Replaces ``BatchNorm(Conv2D(x, W))`` (or ``Add(Mul(Conv2D(x, W), s), b)``) by ``BiasAdd(Conv2D(x, W*s), b')``.

    The weighted op is ``Conv2D``, ``DepthwiseConv2dNative`` or ``MatMul`` with
    ``Const`` weights (possibly behind an ``Identity``). Every single-consumer
    node after it that is affine per output channel is folded: inference
    ``FusedBatchNorm``/``V2``/``V3`` (NHWC or NCHW), ``BatchNormWithGlobalNormalization``,
    ``Mul``/``RealDiv`` by a per-channel ``Const``, ``Add``/``AddV2``/``Sub``/``BiasAdd``
    of one. The scales go into the weights (per output channel; for depthwise
    weights ``[h, w, in, mult]`` over ``in * mult``), all shifts into ONE ``BiasAdd``
    named like the last folded node, so its consumers and signatures are
    unchanged. Computed in float64, cast to the weights' dtype. Weights read
    elsewhere get a new ``Const``; the shared one is left alone. Not folded:
    batch norms in training mode, non-Const parameters (run ``fold_constants``
    first for Keras' ``Rsqrt`` chains), multipliers that are not per-channel,
    intermediate tensors read elsewhere or named by a signature, and
    unsupported data formats. A batch norm after a ``ConcatV2`` of NHWC
    convolutions (any axis; on the channel axis each gets its slice of the
    scale) or after a ``BatchToSpaceND`` of one (atrous convolutions) folds
    too (GTT's ``fold_old_batch_norms``): the scales go into each weights, the
    offset into one ``BiasAdd`` after the concat / batch-to-space.
    """

    name = "fold_batch_norms"
    aliases = ("fold_old_batch_norms",)
    # No pattern: the match walks DOWN from the convolution through a chain of any length (a pattern looks up
    # from its anchor, a fixed depth). reach: candidates() maps a change in the chain back up to the anchor.
    anchors = WEIGHTED_OPS | BN_OPS  # a batch norm after a ConcatV2 / BatchToSpaceND of convolutions anchors itself
    reach = 2

    def candidates(self, graph: Graph, names: Iterable[str] | None = None) -> list[NodeDef]:
        """All weighted ops; or, for changed ``names``, the weighted ops whose chain may now fold.

        A change anywhere in a chain (a ``Mul`` operand folded into a ``Const``,
        a consumer removed) is traced back up through affine ops to the
        convolution/matmul that anchors the chain.
        """
        if names is None or not graph.has_op(*self.anchors):  # (the graph's op index: no anchor, nothing to fold)
            return super().candidates(graph) if names is None else []
        found: dict[str, NodeDef] = {}
        stack: list[tuple[str, int]] = []
        for name in names:
            node = graph.get(name)
            if node is None:
                continue
            stack.append((name, 0))
            if node.op == "Const" or node.op in PASS_THROUGH_OPS:  # a new operand: start from its readers
                stack.extend((u, 0) for u, _ in graph.consumers(name))
        seen: set[str] = set()
        while stack:
            name, depth = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            node = graph.get(name)
            if node is None:
                continue
            if node.op in WEIGHTED_OPS or node.op in BN_OPS:
                found[name] = node
            elif (node.op in AFFINE_OPS or depth == 0) and depth < _MAX_CHAIN:
                stack.extend((parse_input(i)[0], depth + 1) for i in graph.data_inputs(name))
        return list(found.values())

    def match(self, graph: Graph, node: NodeDef) -> Match | str:
        if node.op in BN_OPS:
            return match_through(graph, node, dict(self.args),
                                 lambda g, bn, n: _bn_step(g, bn, _Layout("NHWC", 4, n)), const_source)
        plan = plan_fold(graph, node)
        if isinstance(plan, str):
            return plan
        m = Match(graph, node, {"anchor": node, "weights": plan.weights}, dict(self.args))
        for i, step in enumerate(plan.steps):
            m.nodes[f"step{i}"] = step.node
        m.extra["plan"] = plan
        return m

    def check(self, match: Match) -> str | None:
        if "through" in match.extra:
            return None
        plan: _Plan = match.extra["plan"]
        if not plan.steps:
            return plan.stop
        if len(plan.steps) == 1 and plan.steps[0].node.op in BIAS_OPS:
            return f"nothing to fold: {plan.op.name!r} is followed by one BiasAdd only ({plan.stop})"
        scale, shift = _compose(plan.steps, plan.layout.channels)
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(shift))):
            return (f"folding into {plan.op.name!r} gives non-finite scales or offsets "
                    "(a variance + epsilon <= 0, or a division by zero)")
        return None

    def rewrite(self, match: Match) -> Replacement:
        if "through" in match.extra:
            return rewrite_through(match)
        graph = match.graph
        plan: _Plan = match.extra["plan"]
        op, end = plan.op, plan.steps[-1].node
        dtype = attr_type(op, "T")
        scale, shift = _compose(plan.steps, plan.layout.channels)
        rep = Replacement()
        going = {s.node.name for s in plan.steps} | {n for s in plan.steps for n in s.consts} | set(plan.weights_path)
        coloc = colocation_targets(graph, going)

        # ---- the weights
        new_op = copy_node(op)
        if not np.all(scale == 1.0):
            channels = ("depthwise" if op.op == "DepthwiseConv2dNative" else
                        "rows" if op.op == "MatMul" and attr_bool(op, "transpose_b") else "last")
            value = scaled_weights(graph, plan.weights.name, scale, channels)
            chain = [op.name, *plan.weights_path]  # op <- Identity* <- Const
            protected = graph.protected_nodes()
            exclusive = all(  # control consumers of a Const/Identity do not read its value
                {u for u, _ in graph.consumers(n)} == {chain[i]} and n not in protected
                for i, n in enumerate(chain[1:])
            )
            if exclusive:  # the same Const with the new value (its other attrs and control inputs kept)
                rep.update.append(with_attrs(plan.weights, value=value))
            else:
                name = graph.unique_name(f"{plan.weights.name}/bn_folded")
                rep.add.append(const(name, value, device=plan.weights.device))
                new_op.input[1] = name
                rep.remove.extend(plan.weights_path)
            del value

        # ---- the bias: the last folded node becomes BiasAdd(op, bias), or the op itself when there is none
        removable = [s.node.name for s in reversed(plan.steps[:-1])]
        if not np.any(shift) and op.name not in coloc:
            rep.update.append(copy_node(new_op, name=end.name))
            removable.append(op.name)
        else:
            if new_op != op:
                rep.update.append(new_op)
            bias_name = graph.unique_name(f"{op.name}_bn_offset")
            rep.add.append(const(bias_name, shift, tf.as_dtype(dtype), device=op.device))
            rep.update.append(make_node("BiasAdd", end.name, [op.name, bias_name], device=end.device,
                                        attrs={"T": tf.as_dtype(dtype), "data_format": plan.layout.fmt}))
        consts = [n for step in plan.steps for n in step.consts]
        for name in consts:  # Consts (and Identities of them) have no side effects: nothing orders after them
            if graph.control_consumers(name):
                rep.replace_control[name] = []
        removable.extend(consts)
        rep.remove.extend(n for n in dict.fromkeys(removable) if n not in coloc)
        log.info("fold_batch_norms: folded %s into %s %r",
                 " -> ".join(f"{s.node.op}" for s in plan.steps), op.op, op.name)
        return rep


__all__ = ["FoldBatchNorms", "const_source", "plan_fold"]
