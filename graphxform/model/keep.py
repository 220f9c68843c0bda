"""Keeping large variables in the checkpoint: everything else is frozen and optimized around them.

A model whose weights pass protobuf's 2 GiB limit cannot be frozen (every weight would be written into the
``GraphDef``). With kept variables:

1. :func:`plan_keep` picks the resource variables (``VarHandleOp``) of at least ``min_bytes`` (all of them
   when ``min_bytes`` is 0) and finds the checkpoint key each one's value lives under: the object path a TF2
   object graph binds it to, the ``RestoreV2`` entry the TF1 saver assigns it from, or its shared name.
   :func:`needs_keep` says whether freezing everything would pass the limit (the automatic choice).
2. :func:`graphxform.model.freeze.freeze_model` freezes the other variables only (``keep=``), reading their
   values by key, so the kept ones are never loaded; every save/restore/initialization op goes.
3. The rules run; the kept variables' reads (``ReadVariableOp``, ``ResourceGather``) are stateful, so nothing
   folds them, and a kept variable no signature reads is stripped with its reads.
4. :func:`write_kept` writes the surviving kept variables to a new checkpoint (one variable in memory at a
   time: a ``SaveV2`` per group of variables, merged by ``MergeV2Checkpoints``), keyed by node name, and adds
   a TF1 saver (``save/RestoreV2`` → ``AssignVariableOp`` per variable, ``save/restore_all``, ``save/SaveV2``)
   with its ``SaverDef``: TF Serving's C++ loader, the TF1 loader and ``tf.saved_model.load`` restore them
   from ``variables/`` as they restore any TF1 SavedModel. With ``dtype`` int8 a float32 kept variable of
   rank ≥ 2 and ≥ 1024 elements read only by ``ReadVariableOp``/``ResourceGather`` is stored as int8:
   gathered, with per-row float32 scales (a second kept variable) and each gather becomes
   ``Mul(Cast(gather_int8), gather(scales))``, so a lookup dequantizes only the rows it gathered; read whole
   (a dense or conv weight), with one scale per output channel (the last axis, a constant) and each read
   becomes ``Mul(Cast(read_int8), scales)``. float16 stores it as float16 and casts each read.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saver_pb2

from graphxform.core.errors import GraphxformError, ModelLoadError, tf_error_summary
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.nodes import attr, const, copy_node, make_node, with_inputs
from graphxform.core.opdefs import PASS_THROUGH_OPS, RESOURCE_VARIABLE_OPS, VARIABLE_OPS
from graphxform.core.signature import VariableStore
from graphxform.savedmodel.read import MAX_PROTO_BYTES

log = logging.getLogger(__name__)

#: ``--keep-variables`` keeps variables of at least this many bytes (1 MiB) unless told otherwise.
DEFAULT_KEEP_MIN_BYTES = 1 << 20
#: Freezing is given up for keeping when the frozen graph would pass this (protobuf's limit less a margin for
#: what the rules add, e.g. int8 scales): the automatic choice.
AUTO_KEEP_BYTES = MAX_PROTO_BYTES - (256 << 20)
#: A ``SaveV2`` call writes at most this many bytes of variables (then the next shard starts).
SHARD_BYTES = 256 << 20
#: Variables smaller than this (elements), or of rank < 2 (biases, batch-norm parameters), stay float32, as
#: ``quantize_weights`` leaves small constants (its default ``minimum_size``).
QUANTIZE_MIN_ELEMENTS = 1024
#: Reads of a variable that the int8/float16 storage can rewrite.
_READS = ("ReadVariableOp", "ResourceGather")


@dataclass
class KeptVariable:
    """A variable that stays in the checkpoint: its graph node, where its value is, what it holds."""

    node: str
    key: str
    dtype: int
    shape: list[int]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * tf.as_dtype(self.dtype).size


def _through_identity(g: Graph, tensor: str) -> str:
    name = parse_input(tensor)[0]
    seen: set[str] = set()
    while name in g and g.node(name).op in PASS_THROUGH_OPS and g.node(name).input and name not in seen:
        seen.add(name)
        name = parse_input(g.node(name).input[0])[0]
    return name


def saver_keys(g: Graph) -> dict[str, tuple[str, str]]:
    """{variable node: (checkpoint key, slice spec)} from the TF1 saver's ``RestoreV2`` → ``Assign*`` wiring."""
    out: dict[str, tuple[str, str]] = {}
    for restore in g.nodes_by_op("RestoreV2"):
        srcs = [_through_identity(g, i) for i in restore.input[1:3]]
        if len(srcs) < 2 or any(s not in g or g.node(s).op != "Const" for s in srcs):
            continue
        names, slices = (np.asarray(g.const_value(s)).reshape(-1) for s in srcs)
        todo = [(f"{restore.name}:{i}", i) for i in range(len(names))] + [(restore.name, 0)]
        while todo:
            tensor, i = todo.pop()
            for dst, idx in g.consumers(tensor):
                node = g.node(dst)
                if node.op in PASS_THROUGH_OPS:
                    todo.append((f"{dst}:0", i))
                elif node.op in ("AssignVariableOp", "Assign") and idx == 1:
                    var = _through_identity(g, node.input[0])
                    if var in g and g.node(var).op in VARIABLE_OPS:
                        out[var] = (names[i].decode(), slices[i].decode())
    return out


def variable_keys(model: Any) -> dict[str, str]:
    """{resource variable node: checkpoint key} for every variable whose whole value a key holds."""
    g = model.graph
    binding = model.objects
    from_saver = saver_keys(g)
    try:
        present = set(tf.train.load_checkpoint(str(model.variables.checkpoint_prefix)).get_variable_to_shape_map())
    except (ValueError, tf.errors.OpError) as exc:
        raise ModelLoadError(f"{model.variables.checkpoint_prefix}: cannot read the checkpoint "
                             f"({tf_error_summary(str(exc))})") from None
    out: dict[str, str] = {}
    for v in g.nodes_by_op(*RESOURCE_VARIABLE_OPS):
        key = binding.variable_key(v.name) if binding is not None else None
        if key is None and v.name in from_saver and not from_saver[v.name][1]:
            key = from_saver[v.name][0]
        shared = attr(v, "shared_name", b"").decode()
        for k in (key, shared, v.name):
            if k and k in present:
                out[v.name] = k
                break
    return out


def _shape(g: Graph, name: str, reader: Any, key: str) -> list[int]:
    node = g.node(name)
    if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
        dims = [d.size for d in node.attr["shape"].shape.dim]
        if all(d >= 0 for d in dims):
            return dims
    return list(reader.get_variable_to_shape_map()[key])


def plan_keep(model: Any, min_bytes: int) -> list[KeptVariable]:
    """The resource variables of at least ``min_bytes`` whose value a checkpoint key holds, largest first."""
    if model.variables is None:
        return []
    keys = variable_keys(model)
    reader = tf.train.load_checkpoint(str(model.variables.checkpoint_prefix))
    kept = []
    for name, key in keys.items():
        kv = KeptVariable(name, key, int(model.graph.node(name).attr["dtype"].type),
                          _shape(model.graph, name, reader, key))
        if kv.nbytes >= min_bytes:
            kept.append(kv)
    return sorted(kept, key=lambda k: (-k.nbytes, k.node))


def needs_keep(model: Any) -> bool:
    """Would the frozen graph pass protobuf's limit? (variable bytes, from shapes, plus the graph)."""
    if model.variables is None:
        return False
    total = sum(k.nbytes for k in plan_keep(model, 0))
    if total < AUTO_KEEP_BYTES // 2:
        return False
    return total + model.graph.to_graph_def().ByteSize() > AUTO_KEEP_BYTES


# --------------------------------------------------------------------------- storage type
def _quantizable(g: Graph, var: str) -> bool:
    """Every use of ``var`` is a read the int8/float16 form can rewrite (a gather along rows, a whole read)."""
    users = g.consumers(f"{var}:0")
    for dst, idx in users:
        node = g.node(dst)
        if node.op not in _READS or idx != 0:
            return False
        if node.op == "ResourceGather" and attr(node, "batch_dims", 0):
            return False
    return bool(users)


def _int8(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per slice along ``axis`` (per tensor when ``None``): ``(q, scale)``, ``w ≈ q * scale``,
    ``scale`` shaped to broadcast (``[rows, 1, …]`` for axis 0, ``[1, …, channels]`` for the last axis)."""
    w32 = w.astype(np.float32, copy=False)
    if axis is None or w32.ndim < 2:
        m = np.float32(np.abs(w32).max(initial=0.0))
        scale = np.asarray(m / 127 if m > 0 else 1.0, np.float32)
    else:
        others = tuple(a for a in range(w32.ndim) if a != axis)
        m = np.abs(w32).max(axis=others, keepdims=True, initial=0.0)
        scale = np.where(m > 0, m / 127, 1.0).astype(np.float32)
    q = np.clip(np.rint(w32 / scale), -127, 127).astype(np.int8)
    return q, scale


def _rewrite_reads(g: Graph, var: str, stored: tf.DType, scale_var: str | None, scale_const: str | None) -> None:
    """Each read of ``var`` (now of dtype ``stored``) becomes ``[Mul](Cast(read), scale)`` under the read's name."""
    for dst, _ in list(g.consumers(f"{var}:0")):
        read = g.node(dst)
        raw = copy_node(read, name=g.unique_name(f"{dst}/{stored.name}"))
        raw.attr["dtype"].type = stored.as_datatype_enum
        cast = make_node("Cast", g.unique_name(f"{dst}/dequantize"), [raw.name], device=read.device,
                         attrs={"SrcT": stored, "DstT": tf.float32, "Truncate": False})
        new = [raw, cast]
        if scale_var is None and scale_const is None:
            g.add_nodes(new)
            g.update_node(make_node("Identity", dst, [cast.name], device=read.device, attrs={"T": tf.float32}))
            continue
        if scale_var is not None:
            scale = with_inputs(copy_node(read, name=g.unique_name(f"{dst}/scale")), [scale_var, *read.input[1:]])
            new.append(scale)
            scale_t = scale.name
        else:
            scale_t = scale_const
        g.add_nodes(new)
        g.update_node(make_node("Mul", dst, [cast.name, scale_t], device=read.device, attrs={"T": tf.float32}))


def _store_as(g: Graph, kv: KeptVariable, dtype: str, reader: Any) -> list[tuple[str, np.ndarray]]:
    """The arrays to save for ``kv`` under its (possibly new) storage type; rewrites its reads accordingly."""
    value = np.asarray(reader.get_tensor(kv.key))
    if dtype == "none" or kv.dtype != types_pb2.DT_FLOAT or value.ndim < 2 or value.size < QUANTIZE_MIN_ELEMENTS \
            or not _quantizable(g, kv.node):
        return [(kv.node, value)]
    var = copy_node(g.node(kv.node))
    if dtype == "float16":
        var.attr["dtype"].type = types_pb2.DT_HALF
        g.update_node(var)
        _rewrite_reads(g, kv.node, tf.float16, None, None)
        return [(kv.node, value.astype(np.float16))]
    # A gathered table: one scale per row, gathered with the rows. Read whole (a dense or conv weight): one scale
    # per output channel (the last axis), a small constant.
    gathered = any(g.node(d).op == "ResourceGather" for d, _ in g.consumers(f"{kv.node}:0"))
    q, scale = _int8(value, 0 if gathered else value.ndim - 1)
    del value
    var.attr["dtype"].type = types_pb2.DT_INT8
    g.update_node(var)
    if not gathered or scale.ndim == 0:
        c = const(g.unique_name(f"{kv.node}/quant_scale"), scale, tf.float32, device=var.device)
        g.add_node(c)
        _rewrite_reads(g, kv.node, tf.int8, None, c.name)
        return [(kv.node, q)]
    svar = make_node("VarHandleOp", g.unique_name(f"{kv.node}/quant_scale"), device=var.device,
                     attrs={"dtype": tf.float32, "shape": tf.TensorShape(scale.shape).as_proto(),
                            "container": "", "shared_name": ""})
    svar.attr["shared_name"].s = svar.name.encode()
    g.add_node(svar)
    _rewrite_reads(g, kv.node, tf.int8, svar.name, None)
    return [(kv.node, q), (svar.name, scale)]


# --------------------------------------------------------------------------- checkpoint and saver
def _save_checkpoint(arrays: list[tuple[str, Any]], prefix: Path, work: Path) -> None:
    """Save ``arrays`` (name, array or a callable giving it) under ``prefix``: groups of up to ``SHARD_BYTES``,
    one ``SaveV2`` each, merged into one checkpoint; at most one group's arrays are alive at a time."""
    shards: list[str] = []
    group: list[tuple[str, np.ndarray]] = []
    size = 0

    def flush() -> None:
        nonlocal group, size
        if not group:
            return
        part = str(work / f"part-{len(shards):05d}")
        tf.raw_ops.SaveV2(prefix=part, tensor_names=[n for n, _ in group], shape_and_slices=[""] * len(group),
                          tensors=[tf.convert_to_tensor(a) for _, a in group])
        shards.append(part)
        group, size = [], 0

    for name, arr in arrays:
        value = arr() if callable(arr) else arr
        for n, a in value if isinstance(value, list) else [(name, value)]:
            group.append((n, a))
            size += a.nbytes
            if size >= SHARD_BYTES:
                flush()
        value = a = None  # (a written group's arrays go now, not when the next variable has been read)
    flush()
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=shards, destination_prefix=str(prefix), delete_old_dirs=True)


def _saver_nodes(g: Graph, variables: list[tuple[str, int]]) -> saver_pb2.SaverDef:
    """Add a TF1 saver restoring ``variables`` (node, dtype) by their node names; returns its ``SaverDef``."""
    scope, k = "save", 0
    while any(n.name == scope or n.name.startswith(scope + "/") for n in g):
        k += 1
        scope = f"save_{k}"
    names = [v for v, _ in variables]
    dtypes = [tf.as_dtype(d) for _, d in variables]
    nodes = [const(f"{scope}/Const", b"model", tf.string),
             const(f"{scope}/SaveV2/tensor_names", np.array(names, dtype=object), tf.string),
             const(f"{scope}/SaveV2/shape_and_slices", np.array([""] * len(names), dtype=object), tf.string),
             const(f"{scope}/RestoreV2/tensor_names", np.array(names, dtype=object), tf.string),
             const(f"{scope}/RestoreV2/shape_and_slices", np.array([""] * len(names), dtype=object), tf.string)]
    reads = []
    for v, d in variables:
        reads.append(make_node("ReadVariableOp", f"{scope}/read/{v}", [v], attrs={"dtype": tf.as_dtype(d)}))
    nodes += reads
    nodes.append(make_node("SaveV2", f"{scope}/SaveV2", [f"{scope}/Const", f"{scope}/SaveV2/tensor_names",
                                                           f"{scope}/SaveV2/shape_and_slices", *(r.name for r in reads)],
                           attrs={"dtypes": dtypes}))
    nodes.append(make_node("Identity", f"{scope}/control_dependency", [f"{scope}/Const", f"^{scope}/SaveV2"],
                           attrs={"T": tf.string, "_class": [f"loc:@{scope}/Const".encode()]}))
    nodes.append(make_node("RestoreV2", f"{scope}/RestoreV2", [f"{scope}/Const", f"{scope}/RestoreV2/tensor_names",
                                                                 f"{scope}/RestoreV2/shape_and_slices"],
                           attrs={"dtypes": dtypes}))
    assigns = []
    for i, (v, d) in enumerate(variables):
        ident = make_node("Identity", f"{scope}/Identity_{i}", [f"{scope}/RestoreV2:{i}"], attrs={"T": tf.as_dtype(d)})
        assign = make_node("AssignVariableOp", f"{scope}/AssignVariableOp_{i}", [v, ident.name],
                           attrs={"dtype": tf.as_dtype(d)})
        nodes += [ident, assign]
        assigns.append(assign.name)
    nodes.append(make_node("NoOp", f"{scope}/restore_all", [f"^{a}" for a in assigns]))
    g.add_nodes(nodes)
    g.protected.update(n.name for n in nodes)
    return saver_pb2.SaverDef(filename_tensor_name=f"{scope}/Const:0", save_tensor_name=f"{scope}/control_dependency:0",
                              restore_op_name=f"{scope}/restore_all", max_to_keep=5, sharded=False,
                              keep_checkpoint_every_n_hours=10000.0, version=saver_pb2.SaverDef.V2)


def write_kept(model: Any, kept: list[KeptVariable], source_prefix: Path, dtype: str, work: Path
               ) -> list[dict[str, Any]]:
    """Store the kept variables the graph still has (see the module docstring) in a checkpoint under ``work``,
    add the saver restoring them and point ``model.variables`` at it; returns what was kept (for the report)."""
    g = model.graph
    alive = [k for k in kept if k.node in g]
    if not alive:
        return []
    reader = tf.train.load_checkpoint(str(source_prefix))
    for kv in alive:
        node = copy_node(g.node(kv.node))
        node.attr["shared_name"].s = kv.node.encode()  # node names are unique; object-graph shared names need not be
        g.update_node(node)
    report: list[dict[str, Any]] = []
    stored: list[tuple[str, int]] = []

    def arrays(kv: KeptVariable) -> Any:
        def make() -> list[tuple[str, np.ndarray]]:
            out = _store_as(g, kv, dtype, reader)
            for name, arr in out:
                stored.append((name, tf.as_dtype(arr.dtype).as_datatype_enum))
                report.append({"name": name, "shape": list(arr.shape), "dtype": tf.as_dtype(arr.dtype).name,
                               "bytes": int(arr.nbytes), "from": kv.key if name == kv.node else None})
            return out
        return make

    ckpt_dir = work / "variables"
    ckpt_dir.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="shards-", dir=work))
    try:
        _save_checkpoint([(kv.node, arrays(kv)) for kv in alive], ckpt_dir / "variables", tmp)
    except tf.errors.OpError as exc:
        raise GraphxformError(f"{work}: writing the kept variables failed: {tf_error_summary(exc.message)}") \
            from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    saver = _saver_nodes(g, stored)
    model.variables = VariableStore(ckpt_dir / "variables", saver.SerializeToString(), owned=True)
    log.info("kept %d variables (%d bytes) in %s", len(report), sum(r["bytes"] for r in report), ckpt_dir)
    return report


__all__ = ["AUTO_KEEP_BYTES", "DEFAULT_KEEP_MIN_BYTES", "KeptVariable", "needs_keep", "plan_keep", "saver_keys",
           "variable_keys", "write_kept"]
