"""Freezing: variables become constants read from the checkpoint; save/restore machinery goes.

:func:`freeze_model` (what :meth:`Model.freeze` calls) works in place:

1. **Read values, in one batched run** (:mod:`graphxform.model.checkpoint`):
   the saver's restore op, or the checkpoint by object path for what a TF2
   object graph binds; a variable the checkpoint does not hold but the init op
   assigns from a placeholder or constant is replaced by that tensor.
2. **Rewrite.** ``VarHandleOp`` / ``VariableV2`` → ``Const``;
   ``ReadVariableOp`` → ``Identity``; ``ResourceGather`` → ``GatherV2``;
   ``ResourceGatherNd`` → ``GatherNd``; ``VariableShape`` → ``Shape``;
   ``Identity`` of a handle passes the value on. Functional control flow
   (``If``, ``While``, ``Case``, calls inside their bodies) that receives a
   variable handle gets a specialised copy of its functions taking the value
   (:mod:`graphxform.model.specialise`).
3. **Remove** what only exists to save, restore, check or initialize
   variables (``SaveV2``/``RestoreV2``/``MergeV2Checkpoints`` and the saver
   subgraph, ``AssignVariableOp``/``Assign``, ``VarIsInitializedOp``,
   initializer subgraphs, groups that only waited on them), dropping control
   dependencies on removed nodes. Tables, their initializers, the init op
   and assets stay.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, node_def_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saver_pb2

from graphxform.core.errors import GraphError
from graphxform.core.graph import Graph
from graphxform.core.names import input_string, parse_input
from graphxform.core.opdefs import (
    CHECKPOINT_OPS,
    FUNCTIONAL_OPS,
    REF_VARIABLE_OPS,
    RESOURCE_VARIABLE_OPS,
    VARIABLE_OPS,
    VARIABLE_UPDATE_OPS,
    attr_int,
    attr_type,
    is_variable_update,
)
from graphxform.model.checkpoint import Freezable, Values, checkpointed_tables, read_values, restore_imports, var_dtype
from graphxform.model.specialise import Library, axis_const, gather_to_value, specialise_call
from graphxform.model.tf2_flatten import prune_library
from graphxform.savedmodel.read import VARIABLE_COLLECTIONS

log = logging.getLogger(__name__)

#: Ops left behind once a variable is frozen; none may remain.
LEFTOVER_OPS = VARIABLE_OPS | {"ReadVariableOp", "ResourceGather", "ResourceGatherNd", "AssignVariableOp",
                               "VarIsInitializedOp"}


def _value_node(var: node_def_pb2.NodeDef, value: np.ndarray) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=var.name, op="Const", device=var.device)
    dtype = var_dtype(var)
    if var.op in REF_VARIABLE_OPS:
        dtype = tf.as_dtype(dtype).base_dtype.as_datatype_enum
    node.attr["dtype"].type = dtype
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype, shape=value.shape))
    if "_class" in var.attr:
        node.attr["_class"].CopyFrom(var.attr["_class"])
    return node


def _table_init_nodes(g: Graph, table: node_def_pb2.NodeDef, keys: np.ndarray, values: np.ndarray
                      ) -> list[node_def_pb2.NodeDef]:
    """``Const`` keys, ``Const`` values and the op that fills ``table`` with them when the init op runs.

    ``MutableHashTable`` (of tensors): ``LookupTableImportV2``, what the saver's
    restore runs. ``MutableDenseHashTable``: its checkpoint holds the bucket
    arrays; the empty and deleted buckets are dropped and the entries are put
    back with ``LookupTableInsertV2`` (same lookups, constants no larger than
    the entries).
    """
    key_dtype, value_dtype = int(table.attr["key_dtype"].type), int(table.attr["value_dtype"].type)
    op = "LookupTableImportV2"
    if table.op == "MutableDenseHashTableV2":
        empty, deleted = (_const_input(g, table, i) for i in (0, 1))
        key_shape = empty.shape
        keys = keys.reshape((-1, *key_shape))
        value_shape = [d.size for d in table.attr["value_shape"].shape.dim] if "value_shape" in table.attr else []
        values = values.reshape((keys.shape[0], *value_shape))
        flat = keys.reshape(keys.shape[0], -1)
        real = ~(np.all(flat == empty.reshape(1, -1), axis=1) | np.all(flat == deleted.reshape(1, -1), axis=1))
        keys, values = keys[real], values[real]
        op = "LookupTableInsertV2"
    base = f"{table.name}/frozen_contents"
    nodes = []
    for what, arr, dtype in (("keys", keys, key_dtype), ("values", values, value_dtype)):
        c = node_def_pb2.NodeDef(name=g.unique_name(f"{base}/{what}"), op="Const", device=table.device)
        c.attr["dtype"].type = dtype
        c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr, dtype=dtype, shape=arr.shape))
        nodes.append(c)
    fill = node_def_pb2.NodeDef(name=g.unique_name(f"{base}/{op}"), op=op, device=table.device)
    fill.input.extend([table.name, nodes[0].name, nodes[1].name])
    fill.attr["Tin"].type = key_dtype
    fill.attr["Tout"].type = value_dtype
    return [*nodes, fill]


def _const_input(g: Graph, node: node_def_pb2.NodeDef, index: int) -> np.ndarray:
    src = parse_input(node.input[index])[0]
    if g.node(src).op != "Const":
        raise GraphError(f"cannot freeze table {node.name!r}: its input {node.input[index]!r} is not a constant")
    return np.asarray(g.const_value(src))


class _Freezer:
    def __init__(self, model: Freezable) -> None:
        self.model = model
        self.graph = model.graph
        self.lib = Library(self.graph.library)
        self.removed: set[str] = set()

    def rewrite_consumers(self, handle: str, value: str, dtype: int) -> None:
        """Consumers of handle tensor ``handle`` read ``value`` (a tensor of ``dtype``) instead."""
        g = self.graph
        val_node, val_port, _ = parse_input(value)
        val_in = input_string(val_node, val_port)
        for dst, idx in g.consumers(handle):
            if dst in self.removed:
                continue
            node = node_def_pb2.NodeDef()
            node.CopyFrom(g.node(dst))
            op = node.op
            follow: list[str] = []
            if is_variable_update(op) or op in CHECKPOINT_OPS:
                self.removed.add(dst)
                continue
            if op == "ReadVariableOp" and not g.consumer_nodes(dst) and not g.is_protected(dst):
                self.removed.add(dst)  # the `<var>/Read/ReadVariableOp` every variable comes with
                continue
            node.input[idx] = val_in
            if op == "ReadVariableOp":
                node.op = "Identity"
                del node.attr["dtype"]
                node.attr["T"].type = dtype
            elif op == "Identity" and attr_type(node, "T") == types_pb2.DT_RESOURCE:
                node.attr["T"].type = dtype
                if "_output_shapes" in node.attr:
                    del node.attr["_output_shapes"]
                follow.append(f"{dst}:0")
            elif op in ("ResourceGather", "ResourceGatherNd") and idx == 0:
                axis = gather_to_value(node, dtype, lambda base: g.unique_name(base), None)
                if axis:
                    g.add_node(axis_const(axis, attr_int(node, "batch_dims")))
            elif op == "VariableShape":
                node.op = "Shape"
                del node.attr["dtype"]
                node.attr["T"].type = dtype
            elif op in FUNCTIONAL_OPS or op in self.lib.funcs:
                follow += [f"{dst}:{p}" for p in specialise_call(node, [idx], dtype, self.lib)]
            else:
                raise GraphError(
                    f"cannot freeze: node {dst!r} ({op}) uses variable handle {handle!r} in a way graphxform "
                    "cannot rewrite to a constant"
                )
            g.update_node(node)
            for t in follow:
                self.rewrite_consumers(t, t, dtype)

    def run(self, values: Values, variables: list[node_def_pb2.NodeDef]) -> None:
        g = self.graph
        by_name = {v.name: v for v in variables}
        for name, value in values.consts.items():
            var = by_name[name]
            g.update_node(_value_node(var, value))
            if var.op in RESOURCE_VARIABLE_OPS:
                self.rewrite_consumers(f"{name}:0", f"{name}:0", attr_type(g.node(name), "dtype"))
            else:
                for dst, idx in g.consumers(f"{name}:0"):
                    if is_variable_update(g.node(dst).op):
                        self.removed.add(dst)
        for name, tensor in values.aliases.items():
            self.rewrite_consumers(f"{name}:0", tensor, var_dtype(by_name[name]))
            self.removed.add(name)
        for table in values.tables:
            # The saver's import of the checkpointed contents goes with the saver; constants replace it below.
            for imp in restore_imports(g, table):
                g.protected.discard(imp)
                self.model.table_initializers = [t for t in self.model.table_initializers if parse_input(t)[0] != imp]
        self.removed.update(values.missing)
        self.removed.update(n.name for n in g if n.op in CHECKPOINT_OPS or n.op in VARIABLE_UPDATE_OPS)
        store = self.model.variables
        if store is not None and store.saver_def:
            sd = saver_pb2.SaverDef()
            sd.ParseFromString(store.saver_def)
            for t in (sd.restore_op_name, sd.save_tensor_name):
                if t and parse_input(t)[0] in g:
                    self.removed.add(parse_input(t)[0])
            # The saver was protected while the variables lived in the checkpoint; frozen, it goes.
            for t in (sd.restore_op_name, sd.save_tensor_name, sd.filename_tensor_name):
                if t:
                    g.protected.discard(parse_input(t)[0])
        self.propagate()
        self.remove()
        for table, (keys, vals) in values.tables.items():
            if table in g and g.consumer_nodes(table):
                init = _table_init_nodes(g, g.node(table), keys, vals)
                g.add_nodes(init)
                self.model.table_initializers.append(init[-1].name)
                g.protected.add(init[-1].name)
                dims = init[0].attr["value"].tensor.tensor_shape.dim
                log.info("table %r: %d entries (%s) filled by %r at load", table, dims[0].size if dims else 1,
                         values.table_sources.get(table, "checkpoint"), init[-1].name)

    def propagate(self) -> None:
        """Grow the removed set: data consumers of removed nodes, nodes only removed nodes consume,
        and groups (no data inputs) that only waited on removed nodes."""
        g = self.graph
        protected = g.protected_nodes()
        bad = sorted(self.removed & protected)
        work = deque()
        for n in list(self.removed):
            work.extend(g.consumer_nodes(n))
            work.extend(parse_input(i)[0] for i in g.node(n).input)
        while work:
            n = work.popleft()
            if n in self.removed or n not in g:
                continue
            node = g.node(n)
            data_srcs = [parse_input(i)[0] for i in node.input if not i.startswith("^")]
            ctrl_srcs = [i[1:] for i in node.input if i.startswith("^")]
            users = g.consumer_nodes(n)
            reason = None
            if any(s in self.removed for s in data_srcs):
                reason = "data"
            elif n in protected:
                continue
            elif users and all(u in self.removed for u in users):
                reason = "unused"
            elif not data_srcs and ctrl_srcs and all(s in self.removed for s in ctrl_srcs) and node.op == "NoOp":
                reason = "group"
            if reason is None:
                continue
            if n in protected:
                bad.append(n)
                continue
            self.removed.add(n)
            work.extend(g.consumer_nodes(n))
            work.extend(parse_input(i)[0] for i in node.input)
        if bad:
            raise GraphError(self._explain(sorted(set(bad))))

    def _explain(self, bad: list[str]) -> str:
        g = self.graph
        users = {}
        for sig in g.signatures.values():
            for spec in sig.outputs.values():
                for t in spec.tensor_names():
                    users.setdefault(parse_input(t)[0], []).append(sig.key)
        parts = []
        for b in bad[:3]:
            variables = sorted(s for s in g.ancestors([b]) if s in self.removed and g.node(s).op in VARIABLE_OPS)
            who = f"{b!r}" + (f" (signature {', '.join(sorted(set(users[b])))})" if b in users else "")
            if variables:
                parts.append(f"{who} needs variable {', '.join(repr(v) for v in variables[:3])}")
            else:
                parts.append(f"{who} depends on save/restore or variable-initialization ops")
        store = self.model.variables
        where = f"the checkpoint {store.checkpoint_prefix}" if store is not None else "the checkpoint"
        return (f"{self.model.source}: cannot freeze: {'; '.join(parts)}, which has no value in {where} and is "
                "not set by the init op; export the SavedModel with every variable saved")

    def remove(self) -> None:
        g = self.graph
        gone = self.removed
        for node in list(g):
            if node.name in gone:
                continue
            inputs = [i for i in node.input if not (i.startswith("^") and i[1:] in gone)]
            cls = node.attr["_class"].list.s if "_class" in node.attr else []
            kept_cls = [s for s in cls if not (s.startswith(b"loc:@") and s[5:].decode() in gone)]
            if len(inputs) != len(node.input) or len(kept_cls) != len(cls):
                new = node_def_pb2.NodeDef()
                new.CopyFrom(node)
                del new.input[:]
                new.input.extend(inputs)
                if len(kept_cls) != len(cls):
                    if kept_cls:
                        new.attr["_class"].CopyFrom(attr_value_pb2.AttrValue(
                            list=attr_value_pb2.AttrValue.ListValue(s=kept_cls)))
                    else:
                        del new.attr["_class"]
                g.update_node(new)
        g.remove_nodes(gone)


def _prune_meta_info(model: Freezable, removed: Iterable[str]) -> None:
    gone = set(removed)
    info = model.meta_info
    info["saver_def"] = None
    colls = info.get("collection_def")
    if not colls:
        return
    kept: dict[str, bytes] = {}
    for name, raw in colls.items():
        if name in VARIABLE_COLLECTIONS:
            continue
        cd = meta_graph_pb2.CollectionDef()
        cd.ParseFromString(raw)
        if cd.WhichOneof("kind") == "node_list":
            values = [v for v in cd.node_list.value if parse_input(v)[0] in model.graph]
            if not values:
                continue
            cd.node_list.ClearField("value")
            cd.node_list.value.extend(values)
        kept[name] = cd.SerializeToString()
    info["collection_def"] = kept
    log.debug("freeze dropped %d nodes and %d collections", len(gone), len(colls) - len(kept))


def _reads_kept(g: Graph, node: node_def_pb2.NodeDef, keep: Collection[str]) -> bool:
    """``node`` is a kept variable or reads one (through ``Identity`` s)."""
    if node.name in keep:
        return True
    if node.op in VARIABLE_OPS or not node.input:
        return False
    src = parse_input(node.input[0])[0]
    while src in g and g.node(src).op == "Identity" and g.node(src).input:
        src = parse_input(g.node(src).input[0])[0]
    return src in keep


def freeze_model(model: Freezable, keep: Mapping[str, str] | None = None) -> Freezable:
    """Replace the model's variables by constants read from its checkpoint (in place; returns ``model``).

    After freezing ``model.variables`` is ``None``, no ``VarHandleOp``,
    ``ReadVariableOp``, ``ResourceGather`` or ``VariableV2`` is left, and
    ``model.graph.lint()`` is empty. ``keep`` ({variable: checkpoint key},
    :mod:`graphxform.model.keep`) names resource variables that stay, with their
    reads; the others are read by key where :func:`~graphxform.model.keep.variable_keys`
    found one, and every save/restore/initialization op goes (the exporter needs a
    new saver for the kept ones: :func:`graphxform.model.keep.write_kept`).
    """
    g = model.graph
    keep = dict(keep or {})
    variables = [v for v in g.nodes_by_op(*VARIABLE_OPS) if v.name not in keep]
    if model.variables is None:
        if variables:
            raise GraphError(
                f"{model.source}: the graph has {len(variables)} variables (e.g. {variables[0].name!r}) but no "
                "checkpoint; load the SavedModel directory instead of a bare GraphDef"
            )
        return model
    keys = None
    if keep:
        from graphxform.model.keep import variable_keys

        keys = variable_keys(model)
    values = read_values(model, variables, keys) if variables or checkpointed_tables(model) else Values()
    freezer = _Freezer(model)
    freezer.run(values, variables)
    gd_lib = g.to_graph_def()
    dropped = prune_library(gd_lib)
    if dropped:
        g.library.CopyFrom(gd_lib.library)
    left = [n for n in g.nodes_by_op(*LEFTOVER_OPS) if not (keep and _reads_kept(g, n, keep))]
    if left:
        raise GraphError(
            f"{model.source}: freezing left {left[0].op} node {left[0].name!r} (and {len(left) - 1} more) "
            "that reads a variable graphxform could not resolve"
        )
    model.table_initializers = [t for t in model.table_initializers if parse_input(t)[0] in g]
    model.variables = None
    _prune_meta_info(model, freezer.removed)
    problems = g.lint()
    if problems:
        raise GraphError(f"{model.source}: graph lint failed after freezing: {'; '.join(problems[:5])}")
    log.info("froze %s: %d variables to constants, %d aliased, %d nodes removed",
             model.source, len(values.consts), len(values.aliases), len(freezer.removed))
    return model


__all__ = ["LEFTOVER_OPS", "freeze_model"]
