"""Summaries of a model as plain dicts: what ``graphxform inspect`` prints.

Everything here reads protos and numpy views; nothing runs a TensorFlow
session. :func:`summarize` describes a whole :class:`~graphxform.model.model.Model`
(tag sets, signatures, op histogram, parameters, largest tensors, library
functions, tables, assets, candidate inputs/outputs, warnings) as a JSON-ready
dict (strings, numbers, lists, dicts), so the CLI can print it as tables or as
JSON; :mod:`graphxform.inspect.node` describes one node,
:mod:`graphxform.inspect.scan` the ops that touch files or run code.

Conventions shared with ``saved_model_cli show``: dtypes are ``DataType``
enum names (``DT_FLOAT``), shapes are lists with ``-1`` for an unknown
dimension and ``None`` for an unknown rank, printed as ``(-1, 3)`` /
``unknown_rank``.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tensorflow.core.framework import node_def_pb2, tensor_pb2, types_pb2

from graphxform.core.errors import ModelLoadError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.nodes import dtype_itemsize
from graphxform.core.opdefs import FORWARDING_OPS, TABLE_INIT_OPS, TABLE_OPS, VARIABLE_OPS, attr_str, attr_type
from graphxform.core.opdefs import attr_value as node_attr_value
from graphxform.core.signature import TensorSpec, dtype_name, shape_list, shape_str
from graphxform.inspect.scan import scan_warnings
from graphxform.model.candidates import candidate_inputs, candidate_outputs, file_graph, graph_counts
from graphxform.model.loader import load
from graphxform.model.model import Model
from graphxform.savedmodel.read import read_saved_model_proto

log = logging.getLogger(__name__)

_STRING_TYPES = (types_pb2.DT_STRING,)


# --------------------------------------------------------------------------- small helpers
def _count(shape: list[int] | None) -> int | None:
    if shape is None or any(d < 0 for d in shape):
        return None
    return int(math.prod(shape))


def human_bytes(n: int | None) -> str:
    """``1.3 MB`` (powers of 1000)."""
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def decode(b: bytes, limit: int = 80) -> str:
    s = b.decode("utf-8", errors="replace")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _spec_dict(key: str, spec: TensorSpec) -> dict[str, Any]:
    shape = None if spec.shape is None else [-1 if d is None else int(d) for d in spec.shape]
    d: dict[str, Any] = {"key": key, "name": spec.name, "dtype": dtype_name(spec.dtype), "shape": shape,
                         "shape_str": shape_str(shape)}
    if spec.components:
        d["components"] = dict(spec.components)
    return d


def _tensor_info_dict(key: str, info: Any) -> dict[str, Any]:
    shape = shape_list(info.tensor_shape)
    d: dict[str, Any] = {"key": key, "name": info.name, "dtype": dtype_name(info.dtype), "shape": shape,
                         "shape_str": shape_str(shape)}
    if info.WhichOneof("encoding") == "coo_sparse":
        c = info.coo_sparse
        d["components"] = {"values": c.values_tensor_name, "indices": c.indices_tensor_name,
                           "dense_shape": c.dense_shape_tensor_name}
    return d


# --------------------------------------------------------------------------- SavedModel file
def _file_meta_graph(sm: Any, tags: Iterable[str]) -> Any | None:
    wanted = set(tags)
    for mg in sm.meta_graphs:
        if set(mg.meta_info_def.tags) == wanted:
            return mg
    return sm.meta_graphs[0] if len(sm.meta_graphs) == 1 else None


# --------------------------------------------------------------------------- whole-model summary
def signatures_summary(model: Model, file_meta_graph: Any | None = None) -> list[dict[str, Any]]:
    """Signatures sorted by key; each input/output with tensor name, dtype and shape.

    Signature defs present in the file but not in ``model.signatures`` (e.g.
    ``__saved_model_init_op``) are listed too, with ``"file_only": True``.
    When the loader renamed a tensor (TF2 graphs are flattened), the name in
    the file is kept as ``"file_name"``.
    """
    file_sigs = dict(file_meta_graph.signature_def) if file_meta_graph is not None else {}
    out = []
    for key in sorted(set(model.signatures) | set(file_sigs)):
        if key in model.signatures:
            sig = model.signatures[key]
            entry: dict[str, Any] = {
                "key": key,
                "method_name": sig.method_name,
                "inputs": [_spec_dict(k, s) for k, s in sorted(sig.inputs.items())],
                "outputs": [_spec_dict(k, s) for k, s in sorted(sig.outputs.items())],
            }
            fsig = file_sigs.get(key)
            if fsig is not None:
                for side, infos in (("inputs", fsig.inputs), ("outputs", fsig.outputs)):
                    for item in entry[side]:
                        info = infos.get(item["key"])
                        if info is not None and info.name and info.name != item["name"]:
                            item["file_name"] = info.name
        else:
            fsig = file_sigs[key]
            entry = {
                "key": key,
                "method_name": fsig.method_name,
                "inputs": [_tensor_info_dict(k, v) for k, v in sorted(fsig.inputs.items())],
                "outputs": [_tensor_info_dict(k, v) for k, v in sorted(fsig.outputs.items())],
                "file_only": True,
            }
        out.append(entry)
    return out


def const_record(node: node_def_pb2.NodeDef) -> dict[str, Any]:
    value = node_attr_value(node, "value")
    tensor = value.tensor if value is not None else tensor_pb2.TensorProto()
    dtype = attr_type(node, "dtype", tensor.dtype)
    shape = shape_list(tensor.tensor_shape) or []
    count = _count(shape)
    size = dtype_itemsize(dtype)
    if dtype in _STRING_TYPES:
        nbytes: int | None = sum(len(s) for s in tensor.string_val)
    else:
        nbytes = count * size if (count is not None and size is not None) else None
    return {"name": node.name, "kind": "const", "dtype": dtype_name(dtype), "shape": shape, "count": count,
            "bytes": nbytes}


def _variable_records(graph: Graph) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for node in graph.nodes_by_op(*VARIABLE_OPS):
        key = (attr_str(node, "container"), attr_str(node, "shared_name") or node.name)
        if key in seen:  # several handles to one variable
            continue
        seen.add(key)
        dtype = attr_type(node, "dtype")
        shape = shape_list(node.attr["shape"].shape) if "shape" in node.attr else None
        count = _count(shape)
        size = dtype_itemsize(dtype)
        out.append({"name": node.name, "kind": "variable", "dtype": dtype_name(dtype), "shape": shape,
                    "count": count, "bytes": count * size if count is not None and size is not None else None})
    return out


def _served_nodes(model: Model) -> set[str] | None:
    """Nodes the signatures, the init op and the table initializers depend on; ``None`` without signatures."""
    g = model.graph
    if not g.signatures:
        return None
    roots = [t for t in g.signature_tensors()]
    roots += [r for r in [model.init_op, *model.table_initializers] if r]
    return g.ancestors(r for r in roots if parse_input(r)[0] in g)


def parameters_summary(
    graph: Graph, top: int = 10, used: set[str] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(parameters, largest): element count and bytes of ``Const`` s and variables, by dtype; the ``top`` largest.

    ``used`` (node names, e.g. what the signatures depend on) restricts the
    count to those nodes; the rest is totalled under ``"unused"`` — Keras
    exports, for instance, hold three handles per weight of which the
    signatures read one. Bytes are in-memory sizes (elements × item size;
    string bytes for ``DT_STRING``); a variable of unknown shape counts in
    ``unknown_size``.
    """
    records = [const_record(n) for n in graph.nodes_by_op("Const")] + _variable_records(graph)

    def bucket() -> dict[str, Any]:
        return {"tensors": 0, "count": 0, "bytes": 0, "unknown_size": 0}

    def add(b: dict[str, Any], r: dict[str, Any]) -> None:
        b["tensors"] += 1
        if r["count"] is None:
            b["unknown_size"] += 1
        else:
            b["count"] += r["count"]
        b["bytes"] += r["bytes"] or 0

    by_dtype: dict[str, dict[str, Any]] = {}
    by_kind: dict[str, dict[str, Any]] = {"const": bucket(), "variable": bucket()}
    total, unused = bucket(), bucket()
    kept = []
    for r in records:
        if used is not None and r["name"] not in used:
            add(unused, r)
            continue
        kept.append(r)
        for b in (by_dtype.setdefault(r["dtype"], bucket()), by_kind[r["kind"]], total):
            add(b, r)
    params = {**total, "by_dtype": dict(sorted(by_dtype.items(), key=lambda kv: -kv[1]["bytes"])),
              "constants": by_kind["const"], "variables": by_kind["variable"],
              "counted": "served" if used is not None else "all", "unused": unused}
    largest = sorted(kept, key=lambda r: (-(r["bytes"] or 0), r["name"]))[: max(top, 0)]
    return params, largest


def functions_summary(graph: Graph) -> list[dict[str, Any]]:
    """Library functions: name, node count, inputs/outputs count, most frequent ops; largest first."""
    out = []
    for f in graph.library.function:
        ops = Counter(n.op for n in f.node_def)
        out.append({"name": f.signature.name, "node_count": len(f.node_def),
                    "inputs": len(f.signature.input_arg), "outputs": len(f.signature.output_arg),
                    "ops": dict(ops.most_common())})
    return sorted(out, key=lambda d: (-d["node_count"], d["name"]))


def _trace(nodes: dict[str, node_def_pb2.NodeDef], inp: str) -> node_def_pb2.NodeDef | None:
    """The node that really produces ``inp``, looking through Identity-like ops."""
    seen = set()
    name = parse_input(inp)[0]
    while name in nodes and name not in seen:
        seen.add(name)
        node = nodes[name]
        if node.op in FORWARDING_OPS and node.input:
            name = parse_input(node.input[0])[0]
            continue
        return node
    return None


def _scopes(graph: Graph) -> list[tuple[str, dict[str, node_def_pb2.NodeDef]]]:
    """("graph", nodes) then ("function:<name>", nodes) for each library function.

    Inside functions, inputs look like ``node:out:0``; they are normalised
    to ``node`` names so :func:`_trace` works in both.
    """
    scopes = [("graph", {n.name: n for n in graph})]
    for f in graph.library.function:
        nodes = {}
        for n in f.node_def:
            c = node_def_pb2.NodeDef()
            c.CopyFrom(n)
            del c.input[:]
            c.input.extend(("^" if i.startswith("^") else "") + i.lstrip("^").split(":")[0] for i in n.input)
            nodes[n.name] = c
        scopes.append((f"function:{f.signature.name}", nodes))
    return scopes


def tables_summary(model: Model) -> list[dict[str, Any]]:
    """Lookup tables (top graph and functions): op, key/value dtypes and the initializers that fill them."""
    asset_by_node = {parse_input(a.tensor_name)[0]: a.filename for a in model.assets}
    out = []
    for where, nodes in _scopes(model.graph):
        tables: dict[str, dict[str, Any]] = {}
        for n in nodes.values():
            if n.op in TABLE_OPS:
                tables[n.name] = {
                    "name": n.name, "op": n.op, "where": where,
                    "key_dtype": dtype_name(attr_type(n, "key_dtype")),
                    "value_dtype": dtype_name(attr_type(n, "value_dtype")),
                    "shared_name": attr_str(n, "shared_name"),
                    "initializers": [],
                }
                obj = model.objects.object_of(n.name) if model.objects is not None and where == "graph" else None
                if obj is not None:
                    tables[n.name]["object"] = obj.path
        unlinked = []
        assigns = [n for n in nodes.values() if n.op == "AssignVariableOp"]
        for n in nodes.values():
            if n.op not in TABLE_INIT_OPS or not n.input:
                continue
            init: dict[str, Any] = {"node": n.name, "op": n.op}
            if n.op.startswith("InitializeTableFromTextFile") and len(n.input) > 1:
                src = _trace(nodes, n.input[1])
                if src is not None and src.op == "ReadVariableOp" and src.input:
                    # TF2 keeps an asset's path in a string variable assigned from the asset placeholder.
                    handle = _trace(nodes, src.input[0])
                    for a in assigns:
                        if len(a.input) > 1 and handle is not None and _trace(nodes, a.input[0]) is handle:
                            src = _trace(nodes, a.input[1]) or src
                            break
                if src is not None and src.name in asset_by_node:
                    init["asset"] = asset_by_node[src.name]
                if src is not None and src.op == "Const" and "value" in src.attr:
                    vals = src.attr["value"].tensor.string_val
                    if vals:
                        init["filename"] = decode(vals[0], 200)
                elif src is not None and "asset" not in init:
                    init["filename_from"] = f"{src.name} ({src.op})"
                for a in ("key_index", "value_index", "vocab_size"):
                    if a in n.attr:
                        init[a] = int(n.attr[a].i)
            elif n.op.startswith("LookupTableImport") or n.op.startswith("InitializeTable"):
                keys = _trace(nodes, n.input[1]) if len(n.input) > 1 else None
                if keys is not None and keys.op == "Const" and "value" in keys.attr:
                    shape = shape_list(keys.attr["value"].tensor.tensor_shape) or []
                    init["size"] = _count(shape)
            table = _trace(nodes, n.input[0])
            if table is not None and table.name in tables:
                tables[table.name]["initializers"].append(init)
            else:
                init["table"] = table.name if table is not None else parse_input(n.input[0])[0]
                unlinked.append(init)
        out.extend(tables.values())
        if unlinked:
            # Initializers whose table is created elsewhere (a function argument, another scope).
            out.append({"name": None, "op": None, "where": where, "key_dtype": None, "value_dtype": None,
                        "shared_name": "", "initializers": unlinked})
    return out


def assets_summary(model: Model) -> list[dict[str, Any]]:
    """Asset files: name under ``assets/``, size in bytes (``None`` if missing) and the tensor holding the path."""
    out = []
    for a in model.assets:
        p = Path(a.source_path)
        out.append({"filename": a.filename, "size": p.stat().st_size if p.is_file() else None,
                    "path": str(p), "tensor": a.tensor_name})
    return out


def objects_summary(model: Model) -> list[dict[str, Any]]:
    """TF2: where each variable and table of the graph comes from — its object path in the SavedObjectGraph and
    its checkpoint key — as ``tf.saved_model.load`` binds them; whether the saver's restore op fills it too.

    One record per bound variable or resource node of the top-level graph
    (``node``, ``op``, ``object``, ``kind``, ``checkpoint_key`` — a list
    ``[keys, values]`` for a table whose contents the checkpoint holds —,
    ``restored_by_saver``, ``functions``). Empty for TF1 graphs and frozen
    GraphDefs.
    """
    binding = model.objects
    if binding is None:
        return []
    g = model.graph
    out = []
    for node in sorted(binding.by_node):
        info = binding.describe(node)
        if info is None or info["kind"] not in ("variable", "resource") or node not in g:
            continue
        out.append({"node": node, "op": g.node(node).op, **info})
    return out


def unservable_nodes(model: Model) -> list[str] | None:
    """TF2: variables/tables the signatures read that the saver does not restore (TF Serving and the TF1 loader
    fail on the SavedModel as it is: "Could not find variable"); ``None`` when there is no object graph."""
    binding = model.objects
    if binding is None:
        return None
    return [n for n in binding.unservable_nodes() if n in model.graph]


def summarize(model: Model, *, top: int = 10) -> dict[str, Any]:
    """Everything ``graphxform inspect MODEL --json`` prints, as one JSON-ready dict.

    Keys: ``source``, ``format``, ``saved_model_version``, ``tags``,
    ``tag_sets``, ``frozen``, ``signatures``, ``node_count``,
    ``op_histogram``, ``function_op_histogram``, ``parameters``,
    ``largest``, ``functions``, ``tables``, ``objects`` (TF2 object paths), ``assets``, ``init_op``,
    ``table_initializers``, ``candidate_inputs``, ``inputs_with_default``, ``candidate_outputs``,
    ``control_edges``, ``devices``, ``warnings``, ``bound_only_by_object_graph`` (see :func:`unservable_nodes`).

    A bare GraphDef is described as it is in the file (``summarize_graph``'s view): its function calls are
    not inlined in the node count, op histogram, parameters and candidate inputs/outputs.
    """
    g = file_graph(model)
    sm = read_saved_model_proto(model.source) if model.format == "saved_model" else None
    file_mg = _file_meta_graph(sm, model.tags) if sm is not None else None
    params, largest = parameters_summary(g, top, _served_nodes(model))
    fn_ops: Counter[str] = Counter()
    for f in g.library.function:
        fn_ops.update(n.op for n in f.node_def)
    return {
        "source": str(model.source),
        "format": model.format,
        "saved_model_version": model.saved_model_version,
        "tags": list(model.tags),
        "tag_sets": sorted(sorted(mg.meta_info_def.tags) for mg in sm.meta_graphs) if sm is not None
        else sorted(sorted(t) for t in model.meta_info.get("tag_sets", [])),
        "frozen": model.frozen,
        "signatures": signatures_summary(model, file_mg),
        "node_count": len(g),
        "op_histogram": dict(sorted(g.op_histogram().items(), key=lambda kv: (-kv[1], kv[0]))),
        "function_op_histogram": dict(sorted(fn_ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "parameters": params,
        "largest": largest,
        "functions": functions_summary(g),
        "tables": tables_summary(model),
        "objects": objects_summary(model),
        "assets": assets_summary(model),
        "init_op": model.init_op,
        "table_initializers": list(model.table_initializers),
        "candidate_inputs": candidate_inputs(g),
        "inputs_with_default": candidate_inputs(g, ("PlaceholderWithDefault",)),
        "candidate_outputs": candidate_outputs(g),
        **graph_counts(g),
        "warnings": scan_warnings(model),
        "bound_only_by_object_graph": unservable_nodes(model),
    }


def load_for_inspect(path: str | Path, tags: str | list[str] | None = None) -> Model:
    """Load ``path`` with the loader, turning a missing path into a one-line :class:`ModelLoadError`."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file or directory; give a SavedModel directory or a .pb/.pbtxt file")
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    return load(p, tags=tags)


__all__ = [
    "assets_summary", "functions_summary", "human_bytes", "load_for_inspect", "objects_summary", "parameters_summary",
    "signatures_summary", "summarize", "tables_summary", "unservable_nodes",
]
