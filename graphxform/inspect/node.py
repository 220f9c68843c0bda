"""One node, as ``graphxform inspect MODEL --node NAME`` shows it: op, attrs, inputs, consumers, value statistics.

Nothing is run: a ``Const`` 's statistics come from the numpy view over its bytes.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np
from tensorflow.core.framework import attr_value_pb2, node_def_pb2

from graphxform.core.errors import GraphError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.opdefs import output_dtypes
from graphxform.core.signature import dtype_name, shape_list, shape_str
from graphxform.inspect.summary import const_record, decode
from graphxform.model.model import Model


def attr_value(value: attr_value_pb2.AttrValue) -> Any:
    """A readable, JSON-ready form of an ``AttrValue`` (dtype names, shape strings, lists, tensor summaries)."""
    kind = value.WhichOneof("value")
    if kind == "type":
        return dtype_name(value.type)
    if kind == "shape":
        return shape_str(shape_list(value.shape))
    if kind == "s":
        try:
            return value.s.decode("utf-8")
        except UnicodeDecodeError:
            return repr(value.s)
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "tensor":
        t = value.tensor
        return f"Tensor<{dtype_name(t.dtype)} {shape_str(shape_list(t.tensor_shape))}>"
    if kind == "func":
        return {"func": value.func.name, **{k: attr_value(v) for k, v in sorted(value.func.attr.items())}}
    if kind == "placeholder":
        return f"${value.placeholder}"
    if kind == "list":
        lst = value.list
        items: list[Any] = []
        items += [v.decode("utf-8", errors="replace") for v in lst.s]
        items += list(lst.i) + list(lst.f) + list(lst.b)
        items += [dtype_name(t) for t in lst.type]
        items += [shape_str(shape_list(s)) for s in lst.shape]
        items += [f"Tensor<{dtype_name(t.dtype)} {shape_str(shape_list(t.tensor_shape))}>" for t in lst.tensor]
        items += [f.name for f in lst.func]
        return items
    return None


def array_stats(arr: np.ndarray, *, samples: int = 5) -> dict[str, Any]:
    """Statistics of a constant's value: min/max/mean/std/zero fraction for numbers, a few values for strings."""
    stats: dict[str, Any] = {"count": int(arr.size)}
    if arr.size == 0:
        return stats
    kind = arr.dtype.kind
    if kind in "SOU":
        flat = arr.reshape(-1)
        vals = [v if isinstance(v, bytes) else str(v).encode() for v in flat[:samples]]
        stats["values"] = [decode(v) for v in vals]
        stats["max_length"] = int(max(len(v) if isinstance(v, bytes) else len(str(v)) for v in flat))
        return stats
    if kind == "b":
        stats["true_fraction"] = float(np.count_nonzero(arr)) / arr.size
        stats["values"] = arr.reshape(-1)[:samples].tolist()
        return stats
    if kind == "c":
        stats["zero_fraction"] = 1.0 - float(np.count_nonzero(arr)) / arr.size
        stats["values"] = [str(v) for v in arr.reshape(-1)[:samples]]
        return stats
    if kind == "V":  # bfloat16 / float8 from ml_dtypes: numpy has no arithmetic on them
        arr = arr.astype(np.float32)
        kind = "f"
    data = arr
    if kind == "f":
        finite = np.isfinite(arr)
        n_finite = int(np.count_nonzero(finite))
        stats["nan_count"] = int(np.count_nonzero(np.isnan(arr)))
        stats["inf_count"] = arr.size - n_finite - stats["nan_count"]
        if n_finite < arr.size:
            data = arr[finite]
        if data.size == 0:
            return stats
    stats["min"] = data.min().item()
    stats["max"] = data.max().item()
    stats["mean"] = float(np.mean(data, dtype=np.float64))
    stats["std"] = float(np.std(data, dtype=np.float64))
    stats["zero_fraction"] = 1.0 - float(np.count_nonzero(arr)) / arr.size
    stats["values"] = arr.reshape(-1)[:samples].tolist()
    return stats


class NodeNotFoundError(GraphError):
    """``--node NAME`` named no node; the message suggests close names."""


def suggest_names(graph: Graph, name: str, n: int = 5) -> list[str]:
    """Node names close to ``name`` (difflib), then names containing it."""
    names = graph.node_names
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    base = name.rsplit("/", 1)[-1]
    if len(close) < n:
        by_base = difflib.get_close_matches(base, [x.rsplit("/", 1)[-1] for x in names], n=n, cutoff=0.8)
        for x in names:
            if len(close) >= n:
                break
            if x not in close and x.rsplit("/", 1)[-1] in by_base:
                close.append(x)
    if len(close) < n:
        close += [x for x in names if name.lower() in x.lower() and x not in close][: n - len(close)]
    return close


def find_node(graph: Graph, name: str, source: str | Path | None = None) -> node_def_pb2.NodeDef:
    """The node ``name`` (``"x:0"`` accepted) or :class:`NodeNotFoundError` with suggestions."""
    node = graph.get(parse_input(name)[0])
    if node is not None:
        return node
    where = f"{source}: " if source else ""
    close = suggest_names(graph, parse_input(name)[0])
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
        "; run `graphxform inspect MODEL --json` to list the node names"
    raise NodeNotFoundError(f"{where}no node named {parse_input(name)[0]!r}{hint}")


def node_info(model: Model | Graph, name: str, *, samples: int = 5) -> dict[str, Any]:
    """One node: op, device, readable attrs, inputs (with producer ops), consumers, output dtypes, and for a
    ``Const`` its dtype, shape, bytes and value statistics (computed on the numpy view)."""
    graph = model.graph if isinstance(model, Model) else model
    source = model.source if isinstance(model, Model) else None
    node = find_node(graph, name, source)
    inputs = []
    for i, inp in enumerate(node.input):
        src, port, control = parse_input(inp)
        prod = graph.get(src)
        inputs.append({"index": None if control else i, "input": inp, "node": src, "port": None if control else port,
                       "control": control, "op": prod.op if prod is not None else None})
    consumers = []
    for e in sorted(graph.out_edges(node.name), key=lambda e: (e.dst, e.dst_port)):
        dnode = graph.get(e.dst)
        consumers.append({"node": e.dst, "op": dnode.op if dnode is not None else None,
                          "port": None if e.control else e.src_port,
                          "input_index": None if e.control else e.dst_port, "control": e.control})
    try:
        out_types = output_dtypes(node)
    except Exception:  # noqa: BLE001
        out_types = None
    info: dict[str, Any] = {
        "name": node.name,
        "op": node.op,
        "device": node.device,
        "attrs": {k: attr_value(v) for k, v in sorted(node.attr.items()) if not (node.op == "Const" and k == "value")},
        "inputs": inputs,
        "consumers": consumers,
        "output_dtypes": [dtype_name(t) for t in out_types] if out_types is not None else None,
        "protected": graph.is_protected(node.name),
    }
    sig_uses = []
    for sig in graph.signatures.values():
        for side, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for k, spec in specs.items():
                if any(parse_input(t)[0] == node.name for t in spec.tensor_names()):
                    sig_uses.append(f"{sig.key}:{side}:{k}")
    info["signatures"] = sig_uses
    if node.op == "Const":
        rec = const_record(node)
        arr = graph.const_value(node.name)
        info["value"] = {"dtype": rec["dtype"], "shape": rec["shape"], "shape_str": shape_str(rec["shape"]),
                         "bytes": rec["bytes"], "stats": array_stats(arr, samples=samples)}
    return info


__all__ = ["NodeNotFoundError", "array_stats", "attr_value", "find_node", "node_info", "suggest_names"]
