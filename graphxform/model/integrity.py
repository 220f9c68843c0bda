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
  ``tensor_content`` whose length matches its shape (or no more values than
  elements), and does not expand to more than :data:`MAX_CONST_BYTES` (a
  splat ``Const`` of shape ``[100000, 100000]`` held in a 22-byte ``TensorProto`` would allocate 40 GB
  when read);
* what TensorFlow's own graph import checks, for registered ops: valid node
  names, control inputs after data inputs, the attrs the op requires (of the
  right kind), as many inputs as the op takes, of the dtypes it takes, and
  placeholder shapes without dimensions below -1.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import networkx as nx
from tensorflow.core.framework import node_def_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.names import VALID_NODE_NAME, parse_input
from graphxform.core.nodes import dtype_itemsize
from graphxform.core.opdefs import (
    CONTROL_FLOW_OPS,
    FEED_OPS,
    dtype_label,
    input_args,
    op_def,
    output_count,
    output_dtypes,
)

log = logging.getLogger(__name__)

#: A Const may not describe more bytes than protobuf can hold (2 GiB).
MAX_CONST_BYTES = 2 * 1024**3
#: Problems listed in one error message.
MAX_LISTED = 3

#: The ``DataType`` enums protobuf knows (a valid dtype), ``DT_INVALID`` left out.
_KNOWN_DTYPES = frozenset(types_pb2.DataType.values()) - {types_pb2.DT_INVALID}


def const_problem(node: node_def_pb2.NodeDef) -> str | None:
    """What is wrong with ``Const`` node ``node`` (``None`` if nothing)."""
    attr = node.attr
    value = attr.get("value")  # (each attr looked up once; indexing a proto map would insert the key)
    if value is None:
        return f"Const {node.name!r} has no value"
    tensor = value.tensor
    dtype = tensor.dtype
    if dtype not in _KNOWN_DTYPES:
        return f"Const {node.name!r} has an unknown dtype (enum {dtype})"
    dtype_attr = attr.get("dtype")
    if dtype_attr is not None and dtype_attr.type not in _KNOWN_DTYPES:
        return f"Const {node.name!r} has an unknown dtype attr (enum {dtype_attr.type})"
    dims = [d.size for d in tensor.tensor_shape.dim]
    count = 1
    for d in dims:
        if d < 0:
            return f"Const {node.name!r} has a negative dimension in shape {dims}"
        count *= d
    content = tensor.tensor_content
    if not content:
        values = sum(len(v) for f, v in tensor.ListFields() if f.name.endswith("_val"))
        if values > count * (2 if dtype in _COMPLEX else 1):
            return (f"Const {node.name!r} holds {values} values for shape {dims} "
                    f"({count} element{'s' if count != 1 else ''})")
    if dtype_attr is not None and dtype_attr.type != dtype:
        return (f"Const {node.name!r}: its dtype attr is {dtype_label(dtype_attr.type)} but its value is "
                f"{dtype_label(dtype)}")
    itemsize = dtype_itemsize(dtype)
    if itemsize is None:
        if dtype == types_pb2.DT_STRING and count * _STRING_ELEMENT_BYTES > MAX_CONST_BYTES:
            return (f"Const {node.name!r} of shape {dims} would expand to {count:,} strings from a "
                    f"{tensor.ByteSize()}-byte proto (over the {MAX_CONST_BYTES // 1024**3} GiB limit)")
        return None
    if content:
        if len(content) != count * itemsize:
            return (f"Const {node.name!r}: tensor_content holds {len(content)} bytes but shape {dims} "
                    f"needs {count * itemsize}")
    elif count * itemsize > MAX_CONST_BYTES:
        return (f"Const {node.name!r} of shape {dims} would expand to {count * itemsize / 1e9:.1f} GB from a "
                f"{tensor.ByteSize()}-byte proto (over the {MAX_CONST_BYTES // 1024**3} GiB limit)")
    return None


#: ``AttrValue`` field for each ``OpDef`` attr type (``list(...)`` types use ``list``).
_ATTR_FIELD = {"type": "type", "int": "i", "bool": "b", "float": "f", "string": "s", "shape": "shape",
               "tensor": "tensor", "func": "func"}
_COMPLEX = {types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128}
#: Bytes a string element takes in memory at least (TensorFlow's ``tstring``), for the splat check.
_STRING_ELEMENT_BYTES = 32


@lru_cache(maxsize=None)
def _op_spec(op: str) -> tuple[tuple, tuple] | None:
    """What the checks read of the registered ``OpDef`` of ``op``, read once (proto fields are slow to read):
    ``((attr name, has a default, the AttrValue field it wants or None, its type), ...)`` and
    its :func:`~graphxform.core.opdefs.input_args`; ``None`` for an unknown op."""
    d = op_def(op)
    if d is None:
        return None
    attrs = tuple((a.name, a.HasField("default_value"),
                   "list" if a.type.startswith("list(") else _ATTR_FIELD.get(a.type), a.type) for a in d.attr)
    return attrs, input_args(op)


def _input_dtypes(attr: Any, input_args: tuple) -> list[int] | None:
    """The dtypes an op takes on each data input (``input_args``: its :func:`_op_spec`), from a node's ``attr``
    map, or ``None`` when the attrs do not say."""
    out: list[int] = []
    for type_list_attr, type_attr, fixed_type, number_attr in input_args:
        if type_list_attr:
            value = attr.get(type_list_attr)  # (one lookup each: indexing a proto map would insert the key)
            if value is None:
                return None
            types = list(value.list.type)
        elif type_attr:
            value = attr.get(type_attr)
            if value is None:
                return None
            types = [value.type]
        else:
            types = [fixed_type]
        if number_attr:
            value = attr.get(number_attr)
            if value is None:
                return None
            types = types * int(value.i)
        out.extend(types)
    return out


def node_problem(node: node_def_pb2.NodeDef) -> str | None:
    """What TensorFlow's graph import would refuse in ``node`` on its own (``None`` if nothing)."""
    return _node_check(node, node.input[:])[0]


def _node_check(node: node_def_pb2.NodeDef, inputs: list[str]) -> tuple[str | None, list[int] | None]:
    """``(node_problem, the dtypes its op takes on its data inputs or None)`` of ``node``, whose inputs are
    ``inputs``; the dtypes only when no problem was found (what the dtype check needs, read once)."""
    name, op = node.name, node.op  # (read once: a proto field read is not free)
    if not VALID_NODE_NAME.match(name):
        return f"node name {name!r} is not a valid TensorFlow node name", None
    n_data = len(inputs)
    for i, inp in enumerate(inputs):
        if inp[:1] == "^":
            n_data = i
            for later in inputs[i + 1:]:
                if later[:1] != "^":
                    return f"node {name!r}: data input {later!r} comes after a control input", None
            break
    attr = node.attr
    if op in FEED_OPS and "shape" in attr:
        dims = [d.size for d in attr["shape"].shape.dim]
        if any(d < -1 for d in dims):
            return f"{op} {name!r} has shape {dims}, with a dimension below -1", None
    spec = _op_spec(op)
    if spec is None:
        return None, None
    attrs, input_args = spec
    for attr_name, has_default, want, type_ in attrs:
        value = attr.get(attr_name)  # (indexing a proto map would insert the key)
        if value is None:
            if not has_default:
                return f"{op} {name!r} lacks the attr {attr_name!r} its op requires", None
            continue
        kind = value.WhichOneof("value")
        if kind is not None and want is not None and kind != want:
            have = {"s": "string", "i": "int", "f": "float", "b": "bool"}.get(kind, kind)
            return f"{op} {name!r}: attr {attr_name!r} holds a {have} value, the op wants a {type_}", None
    wanted = _input_dtypes(attr, input_args)
    if wanted is not None and len(wanted) != n_data:
        return (f"{op} {name!r} has {n_data} data input{'s' if n_data != 1 else ''}, its op takes "
                f"{len(wanted)}", None)
    return None, wanted


def _input_dtype_problem(node: node_def_pb2.NodeDef, wanted: list[int], data: list[tuple[str, str, int, object]],
                         cache: dict[str, list[int] | None]) -> str | None:
    """A data input of ``node`` whose dtype is not the one its op takes there (ref dtypes match their base).
    ``wanted``: from :func:`_node_check`; ``data``: ``(input, producer name, port, producer)`` of each data input
    (read by :func:`problems`); ``cache``: the output dtypes of the producers already read (filled in; one read
    per producer)."""
    for (inp, src, port, producer), want in zip(data, wanted):
        if src in cache:
            dtypes = cache[src]
        else:
            dtypes = cache[src] = output_dtypes(producer)  # (what graph.output_dtype reads)
        have = dtypes[port] if dtypes and port < len(dtypes) else None
        if have is None or not want:
            continue
        if have % 100 != want % 100:  # DT_FLOAT_REF (101) is DT_FLOAT (1) read through a reference
            return (f"{node.op} {node.name!r} takes {dtype_label(want % 100)} on input {inp!r}, which is "
                    f"{dtype_label(have % 100)}")
    return None


def problems(graph: Graph, limit: int = MAX_LISTED) -> list[str]:
    """Up to ``limit`` integrity problems of ``graph`` (empty when it is sound)."""
    found: list[str] = []
    counts: dict[str, int | None] = {}
    # Dtype problems are reported only when there is no other (dtypes are read from the producers: only once
    # every input resolves); they are looked for in the same pass, while nothing else was found.
    typed: list[str] = []
    dtypes_of: dict[str, list[int] | None] = {}
    get = graph.get
    for node in graph:
        inputs = node.input[:]  # (read once: a proto field read is not free)
        p, wanted = _node_check(node, inputs)
        if p:
            found.append(p)
        if node.op == "Const":
            p = const_problem(node)
            if p:
                found.append(p)
        data = []  # (input, producer name, port, producer) of each data input that resolves
        for inp in inputs:
            if ":" in inp or inp[:1] == "^":
                src, port, control = parse_input(inp)
            else:  # (the common input, a bare node name: output 0)
                src, port, control = inp, 0, False
            producer = get(src)
            if producer is None:
                found.append(f"node {node.name!r} input {inp!r} names no node")
            elif not control:
                if src not in counts:
                    counts[src] = output_count(producer)
                n = counts[src]
                if n is not None and port >= n:
                    found.append(f"node {node.name!r} input {inp!r}: {producer.op} {src!r} has {n} output"
                                 f"{'s' if n != 1 else ''}")
                data.append((inp, src, port, producer))
        if len(found) >= limit:
            return found[:limit]
        if not found and wanted is not None and len(typed) < limit:
            p = _input_dtype_problem(node, wanted, data, dtypes_of)
            if p:
                typed.append(p)
    if not found:
        found = typed
        if len(found) >= limit:
            return found
    if _has_cycle(graph):  # (then networkx finds one outside control flow to name)
        view = graph.nx.subgraph([n for n in graph.node_names])
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


def _has_cycle(graph: Graph) -> bool:
    """Whether the graph's nodes (inputs naming no node left out) have a cycle: Kahn's algorithm over the view's
    dicts, linear, where networkx's check of a subgraph view costs ~30 µs a node."""
    succ, pred = graph.adjacency()
    indeg = {}
    ready = []
    # (the view holds a node for each input naming no node: only then are the producers looked at one by one)
    dangling = len(pred) != len(graph)
    for name in graph.node_names:
        d = sum(1 for p in pred[name] if p in graph) if dangling else len(pred[name])
        indeg[name] = d
        if not d:
            ready.append(name)
    done = 0
    while ready:
        name = ready.pop()
        done += 1
        for child in succ[name]:
            left = indeg[child] - 1
            indeg[child] = left
            if not left:
                ready.append(child)
    return done < len(indeg)


__all__ = ["MAX_CONST_BYTES", "const_problem", "node_problem", "problems"]
