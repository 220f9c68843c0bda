"""Summaries of a model as plain dicts: what ``graphxform inspect`` prints.

Everything here reads protos and numpy views; nothing runs a TensorFlow
session. :func:`summarize` describes a whole :class:`~graphxform.model.model.Model`
(tag sets, signatures, op histogram, parameters, largest tensors, library
functions, tables, assets, candidate inputs/outputs, warnings);
:func:`node_info` describes one node. Both return JSON-ready dicts (strings,
numbers, lists, dicts) so the CLI can print them as tables or as JSON.

Conventions shared with ``saved_model_cli show``: dtypes are ``DataType``
enum names (``DT_FLOAT``), shapes are lists with ``-1`` for an unknown
dimension and ``None`` for an unknown rank, printed as ``(-1, 3)`` /
``unknown_rank``.
"""
from __future__ import annotations

import difflib
import logging
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tensorflow.core.framework import attr_value_pb2, node_def_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from graphxform.core.errors import GraphError, ModelLoadError
from graphxform.core.graph import Graph, parse_input
from graphxform.model.model import Model, TensorSpec
from graphxform.core.opdefs import attr_str, attr_type
from graphxform.core.opdefs import attr_value as node_attr_value

log = logging.getLogger(__name__)

#: What ``saved_model_cli scan`` reports by default (its ``_OP_DENYLIST``).
SAVED_MODEL_CLI_DENYLIST = frozenset({"WriteFile", "ReadFile", "PrintV2"})

#: Ops that touch files or run code, with the reason shown to the user.
RISKY_OPS: dict[str, str] = {
    "ReadFile": "reads a file from the serving host",
    "WriteFile": "writes a file on the serving host",
    "MatchingFiles": "lists files on the serving host (glob)",
    "ImmutableConst": "memory-maps a file from the serving host",
    "PrintV2": "prints tensors to a log or file",
    "Print": "prints tensors to stderr",
    "PyFunc": "runs Python code (needs the exporting process; not servable)",
    "PyFuncStateless": "runs Python code (needs the exporting process; not servable)",
    "EagerPyFunc": "runs Python code (needs the exporting process; not servable)",
}

#: Checkpoint ops: fine inside the saver, suspicious anywhere else.
CHECKPOINT_OPS = frozenset({
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
})

#: Ops that create lookup tables (their ``key_dtype``/``value_dtype`` attrs describe them).
TABLE_OPS = frozenset({
    "HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2", "MutableHashTableOfTensors",
    "MutableHashTableOfTensorsV2", "MutableDenseHashTable", "MutableDenseHashTableV2", "AnonymousHashTable",
    "AnonymousMutableHashTable", "AnonymousMutableHashTableOfTensors", "AnonymousMutableDenseHashTable",
})

#: Ops that fill a table: input 0 is the table handle.
TABLE_INIT_OPS = frozenset({
    "InitializeTable", "InitializeTableV2", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "LookupTableImport", "LookupTableImportV2", "InitializeTableFromDataset",
})

#: Variable ops whose ``dtype``/``shape`` attrs give the parameters of a non-frozen model.
VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})

#: Ops that are never a model's output even when nothing consumes them (as summarize_graph did, and more).
NOT_OUTPUT_OPS = frozenset({
    "Const", "NoOp", "Placeholder", "PlaceholderWithDefault", "Assert", "Assign", "AssignAdd", "AssignSub",
    "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "VarHandleOp", "VariableV2", "Variable",
    "VarIsInitializedOp", "IsVariableInitialized", "ScalarSummary", "HistogramSummary", "ImageSummary",
    "AudioSummary", "AudioSummaryV2", "TensorSummary", "TensorSummaryV2", "MergeSummary", "Print", "PrintV2",
    "DestroyResourceOp",
}) | CHECKPOINT_OPS | TABLE_INIT_OPS | {"ShardedFilename", "ShardedFilespec", "StringJoin"}

#: Pass-through ops followed when tracing a table handle or a filename back to its source.
_PASS_THROUGH = frozenset({"Identity", "IdentityN", "Snapshot", "StopGradient"})

_STRING_TYPES = (types_pb2.DT_STRING,)


# --------------------------------------------------------------------------- small helpers
def dtype_name(dtype: int) -> str:
    """``DataType`` enum name, as ``saved_model_cli`` prints it (``DT_FLOAT``)."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DT_UNKNOWN_{dtype}"


def shape_list(shape: tensor_shape_pb2.TensorShapeProto) -> list[int] | None:
    """Dims of a ``TensorShapeProto`` (``-1`` unknown), or ``None`` for an unknown rank."""
    if shape.unknown_rank:
        return None
    return [int(d.size) for d in shape.dim]


def shape_str(shape: list[int | None] | None) -> str:
    """``(-1, 3)`` / ``(-1)`` / ``()`` / ``unknown_rank``, the notation of ``saved_model_cli show``."""
    if shape is None:
        return "unknown_rank"
    return "(" + ", ".join("-1" if d is None or d < 0 else str(d) for d in shape) + ")"


def _itemsize(dtype: int) -> int | None:
    import tensorflow as tf

    try:
        d = tf.as_dtype(dtype)
    except TypeError:
        return None
    if d.base_dtype in (tf.string, tf.resource, tf.variant):
        return None
    return int(d.size)


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


def _decode(b: bytes, limit: int = 80) -> str:
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
def read_saved_model_proto(path: str | Path) -> Any | None:
    """The ``SavedModel`` proto of directory ``path`` (``saved_model.pb`` or ``.pbtxt``), or ``None``."""
    from tensorflow.core.protobuf import saved_model_pb2

    p = Path(path)
    if not p.is_dir():
        return None
    sm = saved_model_pb2.SavedModel()
    try:
        if (p / "saved_model.pb").is_file():
            sm.ParseFromString((p / "saved_model.pb").read_bytes())
        elif (p / "saved_model.pbtxt").is_file():
            from google.protobuf import text_format

            text_format.Parse((p / "saved_model.pbtxt").read_text(), sm)
        else:
            return None
    except Exception as exc:  # noqa: BLE001 - a corrupt file is reported, not fatal to inspect
        log.warning("%s: could not parse the SavedModel proto: %s", p, exc)
        return None
    return sm


def tag_sets(path: str | Path) -> list[list[str]]:
    """The tag sets of the meta graphs in SavedModel directory ``path`` (``[]`` if it is not one)."""
    sm = read_saved_model_proto(path)
    if sm is None:
        return []
    return sorted(sorted(mg.meta_info_def.tags) for mg in sm.meta_graphs)


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


def _const_record(node: node_def_pb2.NodeDef) -> dict[str, Any]:
    value = node_attr_value(node, "value")
    tensor = value.tensor if value is not None else tensor_pb2.TensorProto()
    dtype = attr_type(node, "dtype", tensor.dtype)
    shape = shape_list(tensor.tensor_shape) or []
    count = _count(shape)
    size = _itemsize(dtype)
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
        size = _itemsize(dtype)
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
    records = [_const_record(n) for n in graph.nodes_by_op("Const")] + _variable_records(graph)

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
        if node.op in _PASS_THROUGH and node.input:
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
                        init["filename"] = _decode(vals[0], 200)
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


def candidate_inputs(graph: Graph) -> list[dict[str, Any]]:
    """Placeholders (with dtype and shape), the likely inputs of a bare ``GraphDef``."""
    out = []
    for n in graph.nodes_by_op("Placeholder", "PlaceholderWithDefault"):
        shape = shape_list(n.attr["shape"].shape) if "shape" in n.attr else None
        d = {"name": n.name, "op": n.op, "dtype": dtype_name(attr_type(n, "dtype")), "shape": shape,
             "shape_str": shape_str(shape)}
        out.append(d)
    return sorted(out, key=lambda d: d["name"])


def candidate_outputs(graph: Graph) -> list[dict[str, Any]]:
    """Nodes nothing consumes that are not bookkeeping (NoOp, Assert, saver, summaries…): likely outputs."""
    from graphxform.core.opdefs import output_dtypes

    out = []
    for n in graph:
        if n.op in NOT_OUTPUT_OPS or graph.nx.out_degree(n.name):
            continue
        if n.op == "ReadVariableOp" and all(graph.nx.nodes[parse_input(i)[0]].get("op") in VARIABLE_OPS
                                            for i in n.input if not i.startswith("^")):
            continue  # a variable read nothing uses (TF2 exports leave one per variable)
        try:
            dtypes = output_dtypes(n)
        except Exception:  # noqa: BLE001 - malformed attrs: still list the node
            dtypes = None
        if dtypes == []:
            continue  # no outputs at all: an op run for its effect
        out.append({"name": n.name, "op": n.op, "dtypes": [dtype_name(t) for t in dtypes] if dtypes else None})
    return sorted(out, key=lambda d: d["name"])


def _saver_scope(model: Model) -> tuple[set[str], set[str]]:
    """(top-graph nodes, functions) that belong to the checkpoint saver."""
    from tensorflow.core.protobuf import saver_pb2

    g = model.graph
    roots: list[str] = []
    raw = model.variables.saver_def if model.variables is not None else None
    raw = raw or model.meta_info.get("saver_def")
    if raw:
        sd = saver_pb2.SaverDef.FromString(raw)
        roots = [parse_input(t)[0] for t in (sd.save_tensor_name, sd.restore_op_name) if t]
    nodes = g.ancestors([r for r in roots if r in g])
    for n in g:
        first = n.name.split("/", 1)[0]
        if (first == "save" or (first.startswith("save_") and first[5:].isdigit())) and "/" in n.name:
            nodes.add(n.name)
        elif first in roots:
            nodes.add(n.name)
    fnames = {f.signature.name for f in g.library.function
              if "_traced_save" in f.signature.name or "_traced_restore" in f.signature.name}
    for name in nodes:
        node = g.get(name)
        if node is not None and "f" in node.attr and node.attr["f"].func.name:
            fnames.add(node.attr["f"].func.name)
    return nodes, fnames


def scan_warnings(model: Model) -> list[dict[str, Any]]:
    """Ops that touch files or run code (``saved_model_cli scan`` and more), in the graph and its functions.

    Each warning: ``op``, ``node``, ``where`` (``graph`` or
    ``function:<name>``), ``reason``, and ``denylisted`` when
    ``saved_model_cli scan`` would flag it too. Checkpoint ops count only
    outside the saver; ops TensorFlow does not know are reported as well.
    """
    from graphxform.core.opdefs import is_known_op

    saver_nodes, saver_fns = _saver_scope(model)
    fn_names = {f.signature.name for f in model.graph.library.function}
    out = []

    def check(node: Any, where: str, in_saver: bool) -> None:
        reason = RISKY_OPS.get(node.op)
        if reason is None and node.op in CHECKPOINT_OPS and not in_saver:
            reason = "reads or writes checkpoint files outside the model's saver"
        if reason is None and node.op not in fn_names and not is_known_op(node.op):
            reason = "op unknown to this TensorFlow (custom op library needed to run it)"
        if reason is not None:
            out.append({"op": node.op, "node": node.name, "where": where, "reason": reason,
                        "denylisted": node.op in SAVED_MODEL_CLI_DENYLIST})

    for n in model.graph:
        check(n, "graph", n.name in saver_nodes)
    for f in model.graph.library.function:
        for n in f.node_def:
            check(n, f"function:{f.signature.name}", f.signature.name in saver_fns)
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
    ``table_initializers``, ``candidate_inputs``, ``candidate_outputs``,
    ``warnings``, ``bound_only_by_object_graph`` (see :func:`unservable_nodes`).
    """
    g = model.graph
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
        "candidate_outputs": candidate_outputs(g),
        "warnings": scan_warnings(model),
        "bound_only_by_object_graph": unservable_nodes(model),
    }


# --------------------------------------------------------------------------- one node
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
        stats["values"] = [_decode(v) for v in vals]
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
    from graphxform.core.opdefs import output_dtypes

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
    for _, dst, data in sorted(graph.nx.out_edges(node.name, data=True), key=lambda e: (e[1], e[2]["dst_port"])):
        dnode = graph.get(dst)
        consumers.append({"node": dst, "op": dnode.op if dnode is not None else None,
                          "port": None if data["control"] else data["src_port"],
                          "input_index": None if data["control"] else data["dst_port"],
                          "control": data["control"]})
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
        rec = _const_record(node)
        arr = graph.const_value(node.name)
        info["value"] = {"dtype": rec["dtype"], "shape": rec["shape"], "shape_str": shape_str(rec["shape"]),
                         "bytes": rec["bytes"], "stats": array_stats(arr, samples=samples)}
    return info


def load_for_inspect(path: str | Path, tags: str | list[str] | None = None) -> Model:
    """Load ``path`` with the loader, turning a missing path into a one-line :class:`ModelLoadError`."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file or directory; give a SavedModel directory or a .pb/.pbtxt file")
    from graphxform.model.loader import load

    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    return load(p, tags=tags)


__all__ = [
    "NodeNotFoundError", "array_stats", "assets_summary", "attr_value", "candidate_inputs", "candidate_outputs",
    "dtype_name", "find_node", "functions_summary", "human_bytes", "load_for_inspect", "node_info",
    "parameters_summary", "read_saved_model_proto", "scan_warnings", "shape_str", "signatures_summary",
    "suggest_names", "summarize", "tables_summary", "tag_sets", "objects_summary",
    "unservable_nodes",
]
