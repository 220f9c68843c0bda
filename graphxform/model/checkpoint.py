"""Freezing, step 1: the values of a model's variables and the contents of its checkpointed tables.

The graph is imported into a ``tf.Graph``; the ``SaverDef``'s restore op runs with the checkpoint prefix fed
to its filename tensor (TF1 name-based and TF2 object-based checkpoints alike; without a ``SaverDef`` TF's
checkpoint reader is asked for each variable's shared name). Then every restored variable is read in one
``session.run``. Variables and tables bound through a TF2 SavedObjectGraph take their checkpoint value by
object path instead, as ``tf.saved_model.load`` gives it to the functions that capture them. A variable the
checkpoint does not hold but the init op assigns from a placeholder or constant is aliased to that tensor;
one the init op computes otherwise is read after running the init op.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2
from tensorflow.core.protobuf import saver_pb2

from graphxform.core.errors import GraphxformError, ModelLoadError, tf_error_summary
from graphxform.core.graph import Graph
from graphxform.core.names import canon, parse_input
from graphxform.core.opdefs import CHECKPOINT_OPS, FEED_OPS, MUTABLE_TABLE_OPS, RESOURCE_VARIABLE_OPS, attr_type
from graphxform.core.signature import Asset, VariableStore

log = logging.getLogger(__name__)


class Freezable(Protocol):
    """What freezing reads and changes of a model (a :class:`~graphxform.model.model.Model`)."""

    graph: Graph
    source: Path
    variables: VariableStore | None
    objects: Any
    init_op: str | None
    assets: list[Asset]
    table_initializers: list[str]
    meta_info: dict[str, Any]


@dataclass
class Values:
    consts: dict[str, np.ndarray] = field(default_factory=dict)  # variable -> value
    aliases: dict[str, str] = field(default_factory=dict)  # variable -> tensor holding its value
    missing: list[str] = field(default_factory=list)  # variables without any value
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # table -> (keys, values)
    table_sources: dict[str, str] = field(default_factory=dict)  # table -> where its contents came from


def var_dtype(node: node_def_pb2.NodeDef) -> int:
    return attr_type(node, "dtype")


def _assigns(graph: Graph, var: str) -> list[node_def_pb2.NodeDef]:
    return [graph.node(d) for d, idx in graph.consumers(f"{var}:0")
            if idx == 0 and graph.node(d).op in ("AssignVariableOp", "Assign")]


def read_values(model: Freezable, variables: list[node_def_pb2.NodeDef],
                by_key: Mapping[str, str] | None = None) -> Values:
    """Variable values from the checkpoint: restore once, then read them all in one batched session run.

    With a ``SaverDef`` its restore op fills the variables; without one, TF's
    checkpoint reader is asked for each variable's shared name (TF1 graphs).
    Variables the checkpoint lacks are aliased to what the init op assigns them
    (placeholder/constant), read after running the init op, or reported missing.
    ``by_key`` ({variable: checkpoint key}) are read by key; when they cover every
    variable the restore op is not run (it would load the whole checkpoint, kept
    variables too: see :mod:`graphxform.model.keep`).
    """
    graph = model.graph
    store = model.variables
    assert store is not None
    prefix = str(store.checkpoint_prefix)
    saver_def = saver_pb2.SaverDef()
    if store.saver_def:
        saver_def.ParseFromString(store.saver_def)
    out = Values()
    names = [v.name for v in variables]
    binding = model.objects
    # Variables and tables bound through the SavedObjectGraph take their checkpoint value by object path, as
    # tf.saved_model.load gives it to the functions that capture them, whatever the saver's restore op fills.
    from_objects = {n: k for n in names if binding is not None and (k := binding.variable_key(n))}
    from_objects.update({n: k for n, k in (by_key or {}).items() if n in names})
    tables = checkpointed_tables(model)
    saver_tables = [t for t, src in tables.items() if src is None]
    by_key_only = by_key is not None and not saver_tables and all(n in from_objects for n in names)

    tfg = tf.Graph()
    with tfg.as_default():
        try:
            tf.graph_util.import_graph_def(graph.to_graph_def(), name="")
        except (ValueError, tf.errors.OpError) as exc:
            raise GraphxformError(f"{model.source}: TensorFlow refused the graph while freezing: "
                                  f"{tf_error_summary(str(exc))}") from exc
        reads, inited = {}, {}
        with tf.name_scope("graphxform_freeze"):
            for v in variables:
                t = tfg.get_tensor_by_name(f"{v.name}:0")
                if v.op in RESOURCE_VARIABLE_OPS:
                    reads[v.name] = tf.raw_ops.ReadVariableOp(resource=t, dtype=var_dtype(v))
                    inited[v.name] = tf.raw_ops.VarIsInitializedOp(resource=t)
                else:
                    reads[v.name] = tf.identity(t)
                    inited[v.name] = tf.raw_ops.IsVariableInitialized(ref=t)
            exports = {t: _export_table(tfg, graph.node(t)) for t in saver_tables}
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)
    with tf.compat.v1.Session(graph=tfg, config=config) as sess:
        if saver_def.restore_op_name and not by_key_only:
            try:
                restore = tfg.get_operation_by_name(parse_input(saver_def.restore_op_name)[0])
                filename = tfg.get_tensor_by_name(saver_def.filename_tensor_name)
                sess.run(restore, {filename: prefix})
            except (KeyError, ValueError) as exc:
                raise ModelLoadError(f"{model.source}: the SaverDef names ops missing from the graph ({exc}); "
                                     "re-export the SavedModel") from None
            except tf.errors.OpError as exc:
                raise ModelLoadError(
                    f"{prefix}: restoring the variables failed: {tf_error_summary(exc.message)}; "
                    "check that variables/ belongs to this saved_model.pb"
                ) from None
            flags = dict(zip(names, sess.run([inited[n] for n in names])))
            for t, (keys, values) in zip(exports, sess.run(list(exports.values()))):
                out.tables[t] = (np.asarray(keys), np.asarray(values))
                out.table_sources[t] = f"restored by the saver ({parse_input(saver_def.restore_op_name)[0]})"
        else:
            if not by_key_only:
                out.consts.update(_read_with_checkpoint_reader(prefix, variables))
            flags = {n: False for n in names}
        if from_objects or any(tables.values()):
            objs = _read_bound_values(prefix, graph, from_objects, {t: k for t, k in tables.items() if k})
            for n, value in objs.consts.items():
                out.consts[n] = value
                flags[n] = False  # (the checkpoint value, not what the saver's restore op may have filled)
            out.tables.update(objs.tables)
            out.table_sources.update(objs.table_sources)
        pending = [n for n in names if not flags[n] and n not in out.consts]
        run_init = []
        init_ancestors = graph.ancestors([model.init_op]) if model.init_op else set()
        for n in pending:
            assigns = [a for a in _assigns(graph, n) if a.name in init_ancestors]
            if len(assigns) == 1:
                value = assigns[0].input[1]
                if graph.node(parse_input(value)[0]).op in FEED_OPS | {"Const"}:
                    out.aliases[n] = value
                    continue
                run_init.append(n)
            else:
                out.missing.append(n)
        if run_init:
            assert model.init_op is not None
            feeds = {tfg.get_tensor_by_name(canon(a.tensor_name)): str(a.source_path) for a in model.assets}
            try:
                sess.run(tfg.get_operation_by_name(model.init_op), feeds)
            except tf.errors.OpError as exc:
                raise ModelLoadError(
                    f"{model.source}: running the init op {model.init_op!r} to compute variables "
                    f"{', '.join(run_init[:3])} failed: {tf_error_summary(exc.message)}"
                ) from None
        wanted = [n for n in names if flags[n] or n in run_init]
        for n, value in zip(wanted, sess.run([reads[n] for n in wanted])):
            out.consts[n] = np.asarray(value)
    if out.missing:
        log.info("variables with no value in %s (dropped unless a signature needs them): %s",
                 prefix, ", ".join(out.missing[:10]))
    return out


def checkpointed_tables(model: Freezable) -> dict[str, tuple[str, str] | None]:
    """Mutable tables whose contents live in the checkpoint: {table: (keys key, values key)} when the object
    graph binds them to checkpoint values, {table: None} when only the saver's restore op fills them."""
    g = model.graph
    binding = model.objects
    out: dict[str, tuple[str, str] | None] = {}
    for t in g.nodes_by_op(*MUTABLE_TABLE_OPS):
        keys = binding.table_keys(t.name) if binding is not None else None
        if keys is not None:
            out[t.name] = keys
        elif restore_imports(g, t.name):
            out[t.name] = None
    return out


def restore_imports(g: Graph, table: str) -> list[str]:
    """The table-import nodes of ``table`` that the saver feeds (their values come from a ``RestoreV2``)."""
    found = []
    for dst, idx in g.consumers(f"{table}:0"):
        node = g.node(dst)
        if idx == 0 and node.op in ("LookupTableImportV2", "LookupTableImport", "LookupTableInsertV2"):
            if any(g.node(a).op in CHECKPOINT_OPS for a in g.ancestors([dst])):
                found.append(dst)
    return found


def _export_table(tfg: object, node: node_def_pb2.NodeDef) -> tuple[object, object]:
    """``LookupTableExportV2`` of table ``node`` in the ``tf.Graph`` ``tfg`` (keys and values tensors)."""
    handle = tfg.get_tensor_by_name(f"{node.name}:0")  # type: ignore[attr-defined]
    keys, values = tf.raw_ops.LookupTableExportV2(table_handle=handle, Tkeys=node.attr["key_dtype"].type,
                                                  Tvalues=node.attr["value_dtype"].type)
    return keys, values


def _read_bound_values(prefix: str, graph: Graph, variables: Mapping[str, str],
                       tables: Mapping[str, tuple[str, str]]) -> Values:
    """Values of variables and contents of tables read from the checkpoint by key (object paths of a TF2
    SavedModel); a value whose dtype or shape differs from its graph node's is refused."""
    out = Values()
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as exc:
        raise ModelLoadError(f"{prefix}: cannot read the checkpoint ({tf_error_summary(str(exc))})") from None
    dtypes = reader.get_variable_to_dtype_map()
    for name, key in variables.items():
        node = graph.node(name)
        want = tf.as_dtype(var_dtype(node)).base_dtype
        if key not in dtypes or dtypes[key].base_dtype != want:
            raise ModelLoadError(f"{prefix}: checkpoint value {key!r} of variable {name!r} is "
                                 f"{dtypes[key].name if key in dtypes else 'missing'}, the graph wants {want.name}; "
                                 "check that variables/ belongs to this saved_model.pb")
        value = np.asarray(reader.get_tensor(key))
        if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
            dims = [d.size for d in node.attr["shape"].shape.dim]
            if len(dims) != value.ndim or any(d >= 0 and d != v for d, v in zip(dims, value.shape)):
                raise ModelLoadError(f"{prefix}: checkpoint value {key!r} of variable {name!r} has shape "
                                     f"{list(value.shape)}, the graph wants {dims}; check that variables/ belongs to "
                                     "this saved_model.pb")
        out.consts[name] = value
    for name, (kkey, vkey) in tables.items():
        out.tables[name] = (np.asarray(reader.get_tensor(kkey)), np.asarray(reader.get_tensor(vkey)))
        out.table_sources[name] = f"checkpoint {kkey.rsplit('-', 1)[0]}"
    return out


def _read_with_checkpoint_reader(prefix: str, variables: list[node_def_pb2.NodeDef]) -> dict[str, np.ndarray]:
    """{variable: value} for the variables whose shared name (or node name) is a checkpoint key."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as exc:
        raise ModelLoadError(f"{prefix}: cannot read the checkpoint ({tf_error_summary(str(exc))})") from None
    keys = reader.get_variable_to_shape_map()
    out = {}
    for v in variables:
        shared = v.attr["shared_name"].s.decode() if "shared_name" in v.attr else ""
        for key in (shared, v.name):
            if key and key in keys:
                out[v.name] = reader.get_tensor(key)
                break
    return out


__all__ = ["Freezable", "Values", "checkpointed_tables", "read_values", "restore_imports", "var_dtype"]
