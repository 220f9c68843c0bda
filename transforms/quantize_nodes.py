"""``quantize_nodes`` (GTT): float ops replaced by TensorFlow's eight-bit ``Quantized*`` kernels."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from graphxform import Context, NodeDef, Param, Pass, Replacement, const, make_node, parse_input, register
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.nodes import attr
from graphxform.core.opdefs import CONTROL_FLOW_OPS, attr_value, op_def, output_dtypes

from . import _quantize_steps as steps
from ._graph_edits import replacement_for
from ._quantize_steps import QINT32, QUINT8, Scratch, tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizedOp:
    """How a float op maps to its eight-bit kernel (GTT's ``QuantizedOpInfo``)."""

    attrs: tuple[str, ...]  # copied over
    dtypes: tuple[tuple[str, tf.DType], ...]  # set
    out_32bit: bool  # the result is qint32 and goes through Requantize
    unquantized: tuple[int, ...] = ()  # inputs that stay as they are (shapes, sizes, axes)
    separate_min_max: bool = False  # [in0, in1, min0, min1, max0, max1] instead of [in0, in1, min0, max0, ...]


_BINARY = (("T1", QUINT8), ("T2", QUINT8), ("Toutput", QINT32))
#: GTT's op list (quantize_nodes.cc), less Conv2DBackpropInput: its QuantizedConv2DTranspose is not in TensorFlow.
QUANTIZED_OPS: dict[str, QuantizedOp] = {
    "Add": QuantizedOp((), _BINARY, True),
    "AvgPool": QuantizedOp(("ksize", "strides", "padding"), (("T", QUINT8),), False),
    "BiasAdd": QuantizedOp((), (("T1", QUINT8), ("T2", QUINT8), ("out_type", QINT32)), True),
    "Concat": QuantizedOp(("N",), (("T", QUINT8),), False, (0,), True),
    "Conv2D": QuantizedOp(("strides", "padding"), (("Tinput", QUINT8), ("Tfilter", QUINT8), ("out_type", QINT32)),
                          True),
    "MatMul": QuantizedOp(("transpose_a", "transpose_b"), _BINARY, True),
    "MaxPool": QuantizedOp(("ksize", "strides", "padding"), (("T", QUINT8),), False),
    "Mul": QuantizedOp((), _BINARY, True),
    "Relu": QuantizedOp((), (("Tinput", QUINT8),), False),
    "Relu6": QuantizedOp((), (("Tinput", QUINT8),), False),
    "ResizeBilinear": QuantizedOp(("align_corners",), (("T", QUINT8),), False, (1,)),
    "Reshape": QuantizedOp(("Tshape",), (("T", QUINT8),), False, (1,)),
}


def _input_types(node: NodeDef) -> list[int] | None:
    """The ``DataType`` of every data input of ``node`` from its OpDef and attrs (``GetInOutTypes``)."""
    d = op_def(node.op)
    if d is None:
        return None
    out: list[int] = []
    for arg in d.input_arg:
        if arg.type_list_attr:
            value = attr_value(node, arg.type_list_attr)
            if value is None:
                return None
            out.extend(value.list.type)
            continue
        value = attr_value(node, arg.type_attr) if arg.type_attr else None
        if arg.type_attr and (value is None or value.WhichOneof("value") != "type"):
            return None
        dtype = value.type if arg.type_attr else arg.type
        count = int(attr_value(node, arg.number_attr).i) if arg.number_attr else 1
        out.extend([dtype] * count)
    return out


def _reason(graph: Graph, node: NodeDef, info: QuantizedOp, in_frame: set[str]) -> str | None:
    """Why float op ``node`` stays float, or ``None``."""
    name, data = node.name, [i for i in node.input if not i.startswith("^")]
    types, outs = _input_types(node), output_dtypes(node)
    if types is None or outs is None or len(types) != len(data):
        return f"the types of {node.op} {name!r} cannot be told from its attrs"
    if any(t != tf.float32.as_datatype_enum for i, t in enumerate(types) if i not in info.unquantized) \
            or any(t != tf.float32.as_datatype_enum for t in outs):
        return f"{name!r} is not a float op"
    fmt = attr(node, "data_format", b"NHWC")
    if fmt not in (b"NHWC", "NHWC"):
        return f"{name!r} is {fmt.decode() if isinstance(fmt, bytes) else fmt}; the eight-bit kernels are NHWC only"
    if any(d != 1 for d in attr(node, "dilations", [1])) or attr(node, "padding", b"SAME") == b"EXPLICIT":
        return f"{name!r} is dilated or explicitly padded; QuantizedConv2D is neither"
    if attr(node, "half_pixel_centers", False):
        return f"{name!r} uses half_pixel_centers; QuantizedResizeBilinear does not"
    if name in in_frame:
        return f"{name!r} is inside a TF1 control-flow frame"
    if graph.is_protected(name) and not graph.signature_uses(name):
        return f"{name!r} is protected (init op, table initializer or asset)"
    return None


def _unique_input_name(inp: str) -> str:
    """GTT's ``UniqueNodeNameFromInput``: ``x:1`` -> ``x__port__1``, ``^x`` -> ``__hat__x``."""
    name, port, control = parse_input(inp)
    return ("__hat__" if control else "") + name + (f"__port__{port}" if ":" in inp and not control else "")


def quantize(g: Scratch, node: NodeDef, info: QuantizedOp, fallback: tuple[float, float] | None) -> None:
    """GTT's replacement of one float op: every float input goes through ``Reshape``/``Min``/``Max``/``QuantizeV2``,
    the op becomes ``Quantized<op>`` (``<name>/eightbit``), a 32-bit result goes through ``RequantizationRange``
    (or the fallback range) and ``Requantize``, and a ``Dequantize`` named like the op gives float back."""
    prefix = f"{node.name}_eightbit"
    data = [i for i in node.input if not i.startswith("^")]
    quantized_inputs = []
    for i, inp in enumerate(data):
        if i in info.unquantized:
            continue
        base = f"{prefix}/{_unique_input_name(inp)}"
        g.put(const(f"{base}/reshape_dims", [-1], tf.int32, control_inputs=[parse_input(inp)[0]]))
        g.put(const(f"{base}/reduction_dims", [0], tf.int32, control_inputs=[parse_input(inp)[0]]))
        g.put(make_node("Reshape", f"{base}/reshape", [inp, f"{base}/reshape_dims"], attrs={"T": tf.float32}))
        for op in ("Min", "Max"):
            g.put(make_node(op, f"{base}/{op.lower()}", [f"{base}/reshape", f"{base}/reduction_dims"],
                            attrs={"T": tf.float32, "keep_dims": False}))
        g.put(make_node("QuantizeV2", f"{base}/quantize", [inp, f"{base}/min", f"{base}/max"],
                        attrs={"T": QUINT8, "mode": "MIN_FIRST"}))
        quantized_inputs.append(f"{base}/quantize")
    main = f"{node.name}/eightbit"
    inputs, it = [], iter(quantized_inputs)
    for i, inp in enumerate(data):
        inputs.append(inp if i in info.unquantized else next(it))
    if info.separate_min_max:
        inputs += [tensor(q, 1) for q in quantized_inputs] + [tensor(q, 2) for q in quantized_inputs]
    else:
        inputs += [t for q in quantized_inputs for t in (tensor(q, 1), tensor(q, 2))]
    attrs = {k: attr(node, k) for k in info.attrs if attr(node, k) is not None}
    attrs.update(dict(info.dtypes))
    control = [i for i in node.input if i.startswith("^")]
    g.put(make_node(f"Quantized{node.op}", main, [*inputs, *control], device=node.device, attrs=attrs))
    eight_bit = main
    if info.out_32bit:
        if fallback is not None:
            g.put(const(f"{main}/fallback_min", np.float32(fallback[0])))
            g.put(const(f"{main}/fallback_max", np.float32(fallback[1])))
            lo, hi = f"{main}/fallback_min", f"{main}/fallback_max"
        else:
            g.put(make_node("RequantizationRange", f"{main}/requant_range", [tensor(main, p) for p in range(3)],
                            attrs={"Tinput": QINT32}))
            lo, hi = f"{main}/requant_range", f"{main}/requant_range:1"
        g.put(make_node("Requantize", f"{main}/requantize", [*(tensor(main, p) for p in range(3)), lo, hi],
                        attrs={"Tinput": QINT32, "out_type": QUINT8}))
        eight_bit = f"{main}/requantize"
    g.put(make_node("Dequantize", node.name, [tensor(eight_bit, p) for p in range(3)], device=node.device,
                    attrs={"T": QUINT8, "mode": "MIN_FIRST"}))


def _range(params: dict, lo_key: str, hi_key: str) -> tuple[float, float] | None:
    lo, hi = params[lo_key], params[hi_key]
    if (lo is None) != (hi is None):
        raise RuleError(f"rule 'quantize_nodes': pass both {lo_key} and {hi_key}")
    return None if lo is None else (lo, hi)


@register
class QuantizeNodes(Pass):
    """Replaces each float ``Conv2D``, ``MatMul``, ``BiasAdd``, ``Add``, ``Mul``, ``Relu``, ``Relu6``, ``MaxPool``,
    ``AvgPool``, ``Concat``, ``Reshape``, ``ResizeBilinear`` by ``Dequantize(Quantized<op>(QuantizeV2(inputs)))``.

    GTT's ``quantize_nodes(ignore_op=, input_min=, input_max=, fallback_min=, fallback_max=)``: the eight-bit
    reference kernels of TensorFlow (quint8, ``MIN_FIRST``; all registered and running on CPU in TF 2.x). Each
    input's range is measured at run time (``Min``/``Max``), 32-bit results are requantized to their measured
    range (``RequantizationRange``; ``fallback_min``/``fallback_max``: a fixed one instead), and a ``Dequantize``
    named like the op gives float back. Then, as GTT: ``input_min``/``input_max`` make float Placeholders quint8
    (fed quantized values); ``FakeQuantWithMinMaxVars`` ops move up chains of one-input ops and become
    ``Requantize`` s with their trained range, which replace the dynamic ranges before them; duplicate nodes
    merge; and a ``Dequantize`` feeding a ``QuantizeV2`` is skipped, so adjacent eight-bit ops stay eight-bit.
    ``ignore_op`` keeps op types float. Left float (``--explain`` says why): ``Conv2DBackpropInput`` (GTT's
    target ``QuantizedConv2DTranspose`` does not exist in TensorFlow), NCHW, dilated or explicitly padded ops,
    ``half_pixel_centers`` resizes, ops inside TF1 control-flow frames. These kernels are TensorFlow's legacy
    reference implementations: the model gets smaller, not faster; ``quantize_weights`` is the way to shrink a
    servable. Runs once, after the other rules (``final``), so folding cannot undo it.
    """

    name = "quantize_nodes"
    final = True
    idempotent = True
    params = {
        "ignore_op": Param(list, [], "op types to leave float"),
        "input_min": Param(float, None, "with input_max: float Placeholders become quint8 of this range"),
        "input_max": Param(float, None, "see input_min"),
        "fallback_min": Param(float, None, "with fallback_max: a fixed range for every 32-bit to 8-bit requantization"),
        "fallback_max": Param(float, None, "see fallback_min"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._input_range = _range(self.args, "input_min", "input_max")
        self._fallback = _range(self.args, "fallback_min", "fallback_max")

    def _ops(self) -> dict[str, QuantizedOp]:
        return {op: info for op, info in QUANTIZED_OPS.items() if op not in self.args["ignore_op"]}

    @staticmethod
    def _in_frame(graph: Graph) -> set[str]:
        return Context().frame_facts(graph).in_frame if graph.nodes_by_op(*CONTROL_FLOW_OPS) else set()

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        state: dict = ctx.cached("quantize_nodes", dict)
        if state.get("done"):  # one-shot: its Dequantize/QuantizeV2 pairs are what the next run would see
            return []
        state["done"] = True
        outputs = set(graph.protected) | {parse_input(t)[0] for t in graph.signature_tensors()}
        original = set(graph.node_names)
        g = Scratch(graph, outputs)
        if self._input_range is not None:
            steps.quantize_placeholders(g, *self._input_range)
        steps.hoist_fake_quants(g)
        steps.convert_fake_quants(g)
        ops, in_frame, count = self._ops(), self._in_frame(graph), 0
        for node in [n for n in g.nodes.values() if n.op in ops]:
            if _reason(graph, node, ops[node.op], in_frame) is None:
                quantize(g, node, ops[node.op], self._fallback)
                count += 1
        steps.merge_adjacent_requantizes(g)
        steps.merge_duplicates(g, outputs)
        steps.remove_redundant_quantizations(g)
        steps.prune(g, original)
        rep = replacement_for(graph, g.nodes.values())
        log.info("quantize_nodes: %d ops quantized; %d nodes added, %d changed, %d removed", count, len(rep.add),
                 len(rep.update), len(rep.remove))
        return [] if rep.is_empty() else [rep]

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        ops, in_frame = self._ops(), self._in_frame(graph)
        return {n.name: _reason(graph, n, ops[n.op], in_frame) for n in graph if n.op in ops}


__all__ = ["QUANTIZED_OPS", "QuantizeNodes", "QuantizedOp"]
