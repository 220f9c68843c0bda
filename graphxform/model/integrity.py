"""Integrity checks of a freshly loaded graph: what a corrupt or hostile file can hold that TensorFlow would refuse.

The loader calls :func:`check_graph` on every graph it reads, so a broken
model is refused at once with a one-line message naming the node, instead of
failing later inside a rule, the exporter or TensorFlow — or worse, being
transformed and written as if it were fine. Checked, in one pass over the
nodes (no tensor is decoded, nothing is allocated beyond the graph itself):

* every input names an existing node, and an output port that node has
  (when its op and attrs tell how many outputs it has);
* no cycle outside TF1 control-flow frames (``NextIteration`` loops are legal);
* every ``Const`` has a known dtype, no negative dimension, a
  ``tensor_content`` whose length matches its shape, and does not expand to
  more than :data:`MAX_CONST_BYTES` (a 30-byte splat ``Const`` of shape
  ``[100000, 100000]`` would allocate 40 GB when read).
"""
from __future__ import annotations

import logging

import networkx as nx
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.opdefs import CONTROL_FLOW_OPS, output_count

log = logging.getLogger(__name__)

#: A Const may not describe more bytes than protobuf can hold (2 GiB).
MAX_CONST_BYTES = 2 * 1024**3
#: Problems listed in one error message.
MAX_LISTED = 3

_VARIABLE_SIZE = {types_pb2.DT_STRING, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT}


def _itemsize(dtype: int) -> int | None:
    try:
        d = tf.as_dtype(dtype)
    except TypeError:
        return None
    return d.size if dtype not in _VARIABLE_SIZE else None


def _dtype_known(dtype: int) -> bool:
    try:
        types_pb2.DataType.Name(dtype)
    except ValueError:
        return False
    return dtype != types_pb2.DT_INVALID


def const_problem(node: node_def_pb2.NodeDef) -> str | None:
    """What is wrong with ``Const`` node ``node`` (``None`` if nothing)."""
    tensor = node.attr["value"].tensor if "value" in node.attr else None
    if tensor is None:
        return f"Const {node.name!r} has no value"
    if not _dtype_known(tensor.dtype):
        return f"Const {node.name!r} has an unknown dtype (enum {tensor.dtype})"
    if "dtype" in node.attr and not _dtype_known(node.attr["dtype"].type):
        return f"Const {node.name!r} has an unknown dtype attr (enum {node.attr['dtype'].type})"
    dims = [d.size for d in tensor.tensor_shape.dim]
    if any(d < 0 for d in dims):
        return f"Const {node.name!r} has a negative dimension in shape {dims}"
    count = 1
    for d in dims:
        count *= d
    itemsize = _itemsize(tensor.dtype)
    if itemsize is None:
        return None
    if tensor.tensor_content:
        if len(tensor.tensor_content) != count * itemsize:
            return (f"Const {node.name!r}: tensor_content holds {len(tensor.tensor_content)} bytes but shape {dims} "
                    f"needs {count * itemsize}")
    elif count * itemsize > MAX_CONST_BYTES:
        return (f"Const {node.name!r} of shape {dims} would expand to {count * itemsize / 1e9:.1f} GB from a "
                f"{tensor.ByteSize()}-byte proto (over the {MAX_CONST_BYTES // 1024**3} GiB limit)")
    return None


def problems(graph: Graph, limit: int = MAX_LISTED) -> list[str]:
    """Up to ``limit`` integrity problems of ``graph`` (empty when it is sound)."""
    found: list[str] = []
    counts: dict[str, int | None] = {}
    for node in graph:
        if node.op == "Const":
            p = const_problem(node)
            if p:
                found.append(p)
        for inp in node.input:
            src, port, control = parse_input(inp)
            producer = graph.get(src)
            if producer is None:
                found.append(f"node {node.name!r} input {inp!r} names no node")
            elif not control:
                if src not in counts:
                    counts[src] = output_count(producer)
                n = counts[src]
                if n is not None and port >= n:
                    found.append(f"node {node.name!r} input {inp!r}: {producer.op} {src!r} has {n} output"
                                 f"{'s' if n != 1 else ''}")
        if len(found) >= limit:
            return found[:limit]
    view = graph.nx.subgraph([n for n in graph.node_names])
    if not nx.is_directed_acyclic_graph(view):
        ops = nx.get_node_attributes(view, "op")
        acyclic = view.subgraph([n for n, o in ops.items() if o not in CONTROL_FLOW_OPS])
        try:
            cycle = nx.find_cycle(acyclic)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            names = [e[0] for e in cycle[:8]]
            found.append("cycle outside control-flow frames: " + " -> ".join(names + [names[0]]))
    return found[:limit]


__all__ = ["MAX_CONST_BYTES", "const_problem", "problems"]
