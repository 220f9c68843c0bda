"""How a weight is read: its consumers through pass-through ops, the channel axis each one wants, and whether
a consumer shows the weight is one ``quantize_weights`` made (a scale of int8 values). Used by that rule.

Tables read by rows (``Gather``, ``GatherV2``, the ``SparseSegment*`` reductions of
``tf.nn.embedding_lookup_sparse``) can be dequantized row by row.
"""
from __future__ import annotations

from dataclasses import dataclass

from tensorflow.core.framework import types_pb2

from graphxform import Graph, NodeDef
from graphxform.core.opdefs import PASS_THROUGH_OPS, attr_bool, attr_int

#: Elementwise ops that may read a dequantized weight (any quantization axis suits them).
ELEMENTWISE_OPS = frozenset(
    {"Mul", "Add", "AddV2", "Sub", "BiasAdd", "RealDiv", "Maximum", "Minimum", "SquaredDifference", "Einsum"}
)
GATHER_OPS = frozenset({"Gather", "GatherV2"})
#: Sparse segment reductions read rows of their input 0 (``data``) by the indices of input 1, like a gather.
SPARSE_SEGMENT_OPS = frozenset({
    "SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN", "SparseSegmentSumWithNumSegments",
    "SparseSegmentMeanWithNumSegments", "SparseSegmentSqrtNWithNumSegments",
})
#: Everything that reads rows of a table: the row path dequantizes only the rows read.
ROW_READER_OPS = GATHER_OPS | SPARSE_SEGMENT_OPS
_CONV_LAST_AXIS = frozenset({"Conv2D", "Conv3D", "_FusedConv2D"})
_MATMUL = frozenset({"MatMul", "_FusedMatMul"})
_BATCH_MATMUL = frozenset({"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"})
_INT8_SOURCES = (types_pb2.DT_INT8, types_pb2.DT_QINT8)
DEPTHWISE = "depthwise"  # axis preference: axes 2 and 3 of [h, w, in, mult] together


@dataclass
class Use:
    node: NodeDef
    index: int
    axis: int | str | None  # preferred channel axis; None: any; DEPTHWISE
    gather_ok: bool = False  # a Gather/GatherV2 params use the row path can rewrite
    gather_reason: str = ""


def dims(node: NodeDef) -> list[int]:
    return [d.size for d in node.attr["value"].tensor.tensor_shape.dim]


def classify(graph: Graph, node: NodeDef, index: int, shape: list[int]) -> Use | str:
    """How ``node`` reads the weight at input ``index``: its preferred channel axis, or why it is no weight use."""
    op, rank = node.op, len(shape)
    where = f"{node.op} {node.name!r} input {index}"
    if op in _CONV_LAST_AXIS or op == "DepthwiseConv2dNative" or op == "Conv2DBackpropInput":
        if index != 1:
            return f"it is the data input of {where}, not its filter"
        if op == "DepthwiseConv2dNative":
            if rank != 4:
                return f"{where} filter has rank {rank}, not 4"
            return Use(node, index, 2 if shape[3] == 1 else DEPTHWISE)
        if op == "Conv2DBackpropInput":
            return Use(node, index, 2 if rank == 4 else None)
        return Use(node, index, rank - 1)
    if op in _MATMUL:
        if rank != 2:
            return f"{where} reads a rank-{rank} tensor"
        if index == 1:
            return Use(node, index, 0 if attr_bool(node, "transpose_b") else 1)
        return Use(node, index, 1 if attr_bool(node, "transpose_a") else 0)
    if op in _BATCH_MATMUL:
        if rank < 2:
            return f"{where} reads a rank-{rank} tensor"
        if index == 1:
            return Use(node, index, rank - 2 if attr_bool(node, "adj_y") else rank - 1)
        return Use(node, index, rank - 1 if attr_bool(node, "adj_x") else rank - 2)
    if op in GATHER_OPS:
        if index != 0:
            return f"it is the indices input of {where}"
        use = Use(node, index, 0 if rank else None)
        reason = gather_reason(graph, node)
        use.gather_ok, use.gather_reason = reason is None, reason or ""
        return use
    if op in SPARSE_SEGMENT_OPS:
        if index != 0:
            return f"it is the indices or segment ids of {where}"
        if rank == 0:
            return f"{where} reads a scalar"
        return Use(node, index, 0, gather_ok=True)
    if op in ELEMENTWISE_OPS:
        return Use(node, index, None)
    if op == "Dequantize":
        return f"it is a quantization range ({where}): already quantized"
    return f"{where} is not a weight-like use (weights feed convolutions, matmuls, gathers, elementwise ops)"


def gather_reason(graph: Graph, node: NodeDef) -> str | None:
    """Why the row path cannot rewrite gather ``node`` (``None``: it can)."""
    if node.op == "Gather":
        return None
    if attr_int(node, "batch_dims") != 0:
        return f"GatherV2 {node.name!r} has batch_dims={attr_int(node, 'batch_dims')}"
    inputs = graph.data_inputs(node.name)
    axis_node = graph.producer(inputs[2]) if len(inputs) > 2 else None
    if axis_node is None or axis_node.op != "Const":
        return f"GatherV2 {node.name!r} has a non-constant axis"
    axis = graph.const_value(axis_node.name)
    if axis.size != 1 or int(axis.reshape(-1)[0]) != 0:
        return f"GatherV2 {node.name!r} gathers along axis {axis.reshape(-1).tolist()}, not 0"
    return None


def _from_int8(graph: Graph, node: NodeDef, depth: int = 0) -> bool:
    """True when ``node`` is a ``Cast`` from int8, or a ``Reshape``/``ConcatV2`` of such casts (this rule's forms)."""
    if node.op == "Cast":
        return "SrcT" in node.attr and node.attr["SrcT"].type in _INT8_SOURCES
    if depth > 1 or node.op not in ("Reshape", "ConcatV2"):
        return False
    data = graph.data_inputs(node.name)
    parts = data[:1] if node.op == "Reshape" else data[:-1]
    return bool(parts) and all(_from_int8(graph, graph.producer(p), depth + 1) for p in parts)


def _scales_int8(graph: Graph, mul: NodeDef, skip: str) -> bool:
    """True when ``mul`` multiplies int8 values widened to float (the forms this rule emits) by tensor ``skip``."""
    if mul.op != "Mul":
        return False
    for inp in graph.data_inputs(mul.name):
        src = graph.producer(inp)
        if src.name != skip and _from_int8(graph, src):
            return True
    return False


def produced_here(graph: Graph, use: Use) -> str | None:
    """Why ``use`` shows the const is a scale this rule made (``None``: it is not)."""
    node = use.node
    if _scales_int8(graph, node, skip=""):
        return f"it scales int8 values in Mul {node.name!r}: a scale made by quantize_weights"
    if node.op in GATHER_OPS:
        for dst, _ in graph.consumers(f"{node.name}:0"):
            if _scales_int8(graph, graph.node(dst), skip=node.name):
                return f"it is the per-row scale table of an int8 embedding (gathered by {node.name!r})"
    return None


def collect_uses(graph: Graph, name: str) -> tuple[list[tuple[NodeDef, int]], list[str]]:
    """Data uses of const ``name`` seen through pass-through ops, and the pass-through nodes passed."""
    uses: list[tuple[NodeDef, int]] = []
    chain: list[str] = []
    stack, seen = [name], {name}
    while stack:
        cur = stack.pop()
        for dst, index in graph.consumers(f"{cur}:0"):
            node = graph.node(dst)
            if node.op in PASS_THROUGH_OPS:
                if dst not in seen:
                    seen.add(dst)
                    chain.append(dst)
                    stack.append(dst)
            else:
                uses.append((node, index))
    return uses, chain


__all__ = ["DEPTHWISE", "ELEMENTWISE_OPS", "GATHER_OPS", "ROW_READER_OPS", "SPARSE_SEGMENT_OPS", "Use", "classify", "collect_uses", "dims", "produced_here"]
