"""Freezing: variables become constants read from the checkpoint; save/restore machinery goes.

:func:`freeze_model` (what :meth:`Model.freeze` calls) works in place:

1. **Read values, in one batched run.** The graph is imported into a
   ``tf.Graph``; the ``SaverDef``'s restore op runs with the checkpoint
   prefix fed to its filename tensor (this handles TF1 name-based and TF2
   object-based checkpoints alike; without a ``SaverDef`` TF's checkpoint
   reader is used with the variables' shared names as keys). Then every
   restored variable is read in one ``session.run``. A variable the
   checkpoint does not hold but the init op assigns from a placeholder or
   constant (TF2 keeps asset paths like that) is replaced by that tensor;
   one the init op computes otherwise is read after running the init op.
2. **Rewrite.** ``VarHandleOp`` / ``VariableV2`` → ``Const``;
   ``ReadVariableOp`` → ``Identity``; ``ResourceGather`` → ``GatherV2``;
   ``ResourceGatherNd`` → ``GatherNd``; ``VariableShape`` → ``Shape``;
   ``Identity`` of a handle passes the value on. Functional control flow
   (``If``, ``While``, ``Case``, calls inside their bodies) that receives a
   variable handle gets a specialised copy of its functions taking the value.
3. **Remove** what only exists to save, restore, check or initialize
   variables (``SaveV2``/``RestoreV2``/``MergeV2Checkpoints`` and the saver
   subgraph, ``AssignVariableOp``/``Assign``, ``VarIsInitializedOp``,
   initializer subgraphs, groups that only waited on them), dropping control
   dependencies on removed nodes. Tables, their initializers, the init op
   and assets stay.
"""
from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from tensorflow.core.framework import attr_value_pb2, function_pb2, node_def_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saver_pb2

from graphxform.errors import GraphError, GraphxformError, ModelLoadError, tf_error_summary
from graphxform.graph import Graph, input_string, parse_input
from graphxform.model import Model
from graphxform.opdefs import attr_int, attr_type, op_def
from graphxform.tf2_flatten import prune_library

log = logging.getLogger(__name__)

RESOURCE_VARIABLE_OPS = frozenset({"VarHandleOp"})
REF_VARIABLE_OPS = frozenset({"VariableV2", "Variable"})
VARIABLE_OPS = RESOURCE_VARIABLE_OPS | REF_VARIABLE_OPS
#: Ops that only exist to write checkpoints or read them back.
SAVER_OPS = frozenset({"SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints"})
#: Ops that write, check or destroy a variable: removed together with the variable machinery.
_MUTATING_OPS = frozenset({
    "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "VarIsInitializedOp", "DisableCopyOnRead",
    "DestroyResourceOp", "Assign", "AssignAdd", "AssignSub", "IsVariableInitialized", "CountUpTo",
    "ResourceCountUpTo", "StridedSliceAssign", "ResourceStridedSliceAssign", "ScatterNdUpdate",
})
_MUTATING_PREFIXES = ("ResourceApply", "ResourceSparseApply", "ResourceScatter")
#: Ops left behind once a variable is frozen; none may remain.
LEFTOVER_OPS = frozenset({"VarHandleOp", "ReadVariableOp", "ResourceGather", "ResourceGatherNd", "VariableV2",
                          "Variable", "AssignVariableOp", "VarIsInitializedOp"})
#: Collections that describe variables; meaningless once frozen.
VARIABLE_COLLECTIONS = frozenset({"variables", "trainable_variables", "global_step", "local_variables",
                                  "model_variables", "moving_average_variables", "savers"})
#: Functional ops: (index of the first argument input, type-list attr, function attrs).
_FUNCTIONAL = {
    "If": (1, "Tin", ("then_branch", "else_branch")),
    "StatelessIf": (1, "Tin", ("then_branch", "else_branch")),
    "Case": (1, "Tin", ("branches",)),
    "StatelessCase": (1, "Tin", ("branches",)),
    "While": (0, "T", ("cond", "body")),
    "StatelessWhile": (0, "T", ("cond", "body")),
    "PartitionedCall": (0, "Tin", ("f",)),
    "StatefulPartitionedCall": (0, "Tin", ("f",)),
}
_WHILE = frozenset({"While", "StatelessWhile"})


def is_mutating_op(op: str) -> bool:
    """True for ops that assign, check or destroy variables (they go when the variable is frozen).

    Besides the explicit list: resource update ops (``ResourceApply*``,
    ``ResourceScatter*`` …) and ops whose first input is a reference
    (``ScatterUpdate``, ``ApplyAdam`` …), but not the ``Ref*`` control-flow ops.
    """
    if op in _MUTATING_OPS or op.startswith(_MUTATING_PREFIXES):
        return True
    d = op_def(op)
    return bool(d and d.input_arg and d.input_arg[0].is_ref and not op.startswith("Ref"))


# --------------------------------------------------------------------------- reading values
@dataclass
class _Values:
    consts: dict[str, np.ndarray] = field(default_factory=dict)  # variable -> value
    aliases: dict[str, str] = field(default_factory=dict)  # variable -> tensor holding its value
    missing: list[str] = field(default_factory=list)  # variables without any value
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # table -> (keys, values)
    table_sources: dict[str, str] = field(default_factory=dict)  # table -> where its contents came from


def _var_dtype(node: node_def_pb2.NodeDef) -> int:
    return attr_type(node, "dtype")


def _assigns(graph: Graph, var: str) -> list[node_def_pb2.NodeDef]:
    return [graph.node(d) for d, idx in graph.consumers(f"{var}:0")
            if idx == 0 and graph.node(d).op in ("AssignVariableOp", "Assign")]


def _read_values(model: Model, variables: list[node_def_pb2.NodeDef]) -> _Values:
    """Variable values from the checkpoint: restore once, then read them all in one batched session run.

    With a ``SaverDef`` its restore op fills the variables; without one, TF's
    checkpoint reader is asked for each variable's shared name (TF1 graphs).
    Variables the checkpoint lacks are aliased to what the init op assigns them
    (placeholder/constant), read after running the init op, or reported missing.
    """
    import tensorflow as tf

    graph = model.graph
    store = model.variables
    assert store is not None
    prefix = str(store.checkpoint_prefix)
    saver_def = saver_pb2.SaverDef()
    if store.saver_def:
        saver_def.ParseFromString(store.saver_def)
    out = _Values()
    names = [v.name for v in variables]
    binding = model.objects
    # Variables and tables bound through the SavedObjectGraph take their checkpoint value by object path, as
    # tf.saved_model.load gives it to the functions that capture them, whatever the saver's restore op fills.
    from_objects = {n: k for n in names if binding is not None and (k := binding.variable_key(n))}
    tables = _checkpointed_tables(model)
    saver_tables = [t for t, src in tables.items() if src is None]

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
                    reads[v.name] = tf.raw_ops.ReadVariableOp(resource=t, dtype=_var_dtype(v))
                    inited[v.name] = tf.raw_ops.VarIsInitializedOp(resource=t)
                else:
                    reads[v.name] = tf.identity(t)
                    inited[v.name] = tf.raw_ops.IsVariableInitialized(ref=t)
            exports = {t: _export_table(tfg, graph.node(t)) for t in saver_tables}
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)
    with tf.compat.v1.Session(graph=tfg, config=config) as sess:
        if saver_def.restore_op_name:
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
            out.consts.update(_read_with_checkpoint_reader(prefix, variables))
            flags = {n: False for n in names}
        if from_objects or any(tables.values()):
            assert binding is not None
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
                if graph.node(parse_input(value)[0]).op in ("Placeholder", "PlaceholderWithDefault", "Const"):
                    out.aliases[n] = value
                    continue
                run_init.append(n)
            else:
                out.missing.append(n)
        if run_init:
            assert model.init_op is not None
            feeds = {tfg.get_tensor_by_name(_canon(a.tensor_name)): str(a.source_path) for a in model.assets}
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


def _checkpointed_tables(model: Model) -> dict[str, tuple[str, str] | None]:
    """Mutable tables whose contents live in the checkpoint: {table: (keys key, values key)} when the object
    graph binds them to checkpoint values, {table: None} when only the saver's restore op fills them."""
    from graphxform.objects import MUTABLE_TABLE_OPS

    g = model.graph
    binding = model.objects
    out: dict[str, tuple[str, str] | None] = {}
    for t in g.nodes_by_op(*MUTABLE_TABLE_OPS):
        keys = binding.table_keys(t.name) if binding is not None else None
        if keys is not None:
            out[t.name] = keys
        elif _restore_imports(g, t.name):
            out[t.name] = None
    return out


def _restore_imports(g: Graph, table: str) -> list[str]:
    """The table-import nodes of ``table`` that the saver feeds (their values come from a ``RestoreV2``)."""
    found = []
    for dst, idx in g.consumers(f"{table}:0"):
        node = g.node(dst)
        if idx == 0 and node.op in ("LookupTableImportV2", "LookupTableImport", "LookupTableInsertV2"):
            if any(g.node(a).op in SAVER_OPS for a in g.ancestors([dst])):
                found.append(dst)
    return found


def _export_table(tfg: object, node: node_def_pb2.NodeDef) -> tuple[object, object]:
    """``LookupTableExportV2`` of table ``node`` in the ``tf.Graph`` ``tfg`` (keys and values tensors)."""
    import tensorflow as tf

    handle = tfg.get_tensor_by_name(f"{node.name}:0")  # type: ignore[attr-defined]
    keys, values = tf.raw_ops.LookupTableExportV2(table_handle=handle, Tkeys=node.attr["key_dtype"].type,
                                                  Tvalues=node.attr["value_dtype"].type)
    return keys, values


def _read_bound_values(prefix: str, graph: Graph, variables: Mapping[str, str],
                       tables: Mapping[str, tuple[str, str]]) -> _Values:
    """Values of variables and contents of tables read from the checkpoint by key (object paths of a TF2
    SavedModel); a value whose dtype or shape differs from its graph node's is refused."""
    import tensorflow as tf

    out = _Values()
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as exc:
        raise ModelLoadError(f"{prefix}: cannot read the checkpoint ({tf_error_summary(str(exc))})") from None
    dtypes = reader.get_variable_to_dtype_map()
    for name, key in variables.items():
        node = graph.node(name)
        want = tf.as_dtype(_var_dtype(node)).base_dtype
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
    import tensorflow as tf

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


def _canon(t: str) -> str:
    n, p, _ = parse_input(t)
    return f"{n}:{p}"


# --------------------------------------------------------------------------- function specialisation
class _Library:
    """The graph's function library, with copies specialised to take values instead of handles."""

    def __init__(self, library: function_pb2.FunctionDefLibrary) -> None:
        self.library = library
        self.funcs = {f.signature.name: f for f in library.function}
        self.cache: dict[tuple[str, tuple[tuple[int, int], ...]], str] = {}

    def specialise(self, fname: str, args: Mapping[int, int], *, passthrough_ok: bool = False) -> str:
        """Name of a copy of ``fname`` whose arguments ``args`` ({index: dtype}) are values, not handles."""
        key = (fname, tuple(sorted(args.items())))
        if key in self.cache:
            return self.cache[key]
        src = self.funcs.get(fname)
        if src is None:
            raise GraphError(f"function {fname!r} is not in the library; cannot freeze the variables it reads")
        f = function_pb2.FunctionDef()
        f.CopyFrom(src)
        base = re.sub(r"_frozen(_\d+)?$", "", fname) + "_frozen"
        name, i = base, 1
        while name in self.funcs:
            name = f"{base}_{i}"
            i += 1
        f.signature.name = name
        self.cache[key] = name
        handles: dict[str, int] = {}  # body reference -> dtype of the value it now carries
        for idx, dtype in args.items():
            arg = f.signature.input_arg[idx]
            arg.type = dtype
            arg.ClearField("handle_data")
            handles[arg.name] = dtype
        _drop_handle_annotations(f, args)
        _devar_body(f, handles, self, passthrough_ok=passthrough_ok)
        self.funcs[name] = f
        self.library.function.append(f)
        return name


def _drop_handle_annotations(f: function_pb2.FunctionDef, args: Iterable[int]) -> None:
    """Forget what ``f`` says about arguments ``args`` as resource handles: they carry values now.

    A handle is a scalar; the value it stood for is not. ``tf.saved_model.load``
    builds each function's placeholders from its ``_input_shapes`` attr and
    the arguments' ``_output_shapes``, so a stale scalar shape fails shape
    inference in the body ("Shape must be rank 2 but is rank 0"). The entries
    become unknown shapes; ``_handle_dtypes``/``_handle_shapes`` and the
    resource-aliasing ids (``resource_arg_unique_id``) go.
    """
    args = list(args)
    if "_input_shapes" in f.attr:
        shapes = f.attr["_input_shapes"].list.shape
        for idx in args:
            if idx < len(shapes):
                shapes[idx].Clear()
                shapes[idx].unknown_rank = True
    for idx in args:
        if idx in f.arg_attr:
            attrs = f.arg_attr[idx].attr
            for k in [k for k in attrs if k.startswith(("_handle", "_output_shapes", "_read_only"))]:
                del attrs[k]
        if idx in f.resource_arg_unique_id:
            del f.resource_arg_unique_id[idx]


def _devar_body(f: function_pb2.FunctionDef, handles: dict[str, int], lib: _Library, *, passthrough_ok: bool) -> None:
    """Rewrite the nodes of ``f`` that use the handles in ``handles`` (body references) to use values."""
    nodes = {n.name: n for n in f.node_def}
    renamed: dict[str, str] = {}  # "n:value:0" -> "n:output:0"
    body_names = set(nodes)

    def key(ref: str) -> str:
        parts = ref.split(":")
        if len(parts) == 2 and parts[1] == "0" and parts[0] in handles:
            return parts[0]
        return ref

    work = deque(handles)
    done: set[str] = set()
    while work:
        h = work.popleft()
        if h in done:
            continue
        done.add(h)
        dtype = handles[h]
        for node in list(f.node_def):
            idxs = [i for i, inp in enumerate(node.input) if not inp.startswith("^") and key(inp) == h]
            if not idxs:
                continue
            op = node.op
            if op == "ReadVariableOp":
                node.op = "Identity"
                del node.attr["dtype"]
                node.attr["T"].type = dtype
                renamed[f"{node.name}:value:0"] = f"{node.name}:output:0"
            elif op == "Identity" and attr_type(node, "T") == types_pb2.DT_RESOURCE:
                node.attr["T"].type = dtype
                if "_output_shapes" in node.attr:
                    del node.attr["_output_shapes"]
                handles[f"{node.name}:output:0"] = dtype
                work.append(f"{node.name}:output:0")
            elif op in ("ResourceGather", "ResourceGatherNd") and idxs == [0]:
                _gather_to_value(node, dtype, lambda base: _unique_body_name(base, body_names), f)
            elif op == "VariableShape":
                node.op = "Shape"
                del node.attr["dtype"]
                node.attr["T"].type = dtype
            elif op in _FUNCTIONAL or op in lib.funcs:
                outs = _specialise_call(node, idxs, dtype, lib)
                for port in outs:
                    ref = f"{node.name}:output:{port}"
                    handles[ref] = dtype
                    work.append(ref)
            else:
                raise GraphError(
                    f"cannot freeze: node {node.name!r} ({op}) in function {f.signature.name!r} uses a variable "
                    "in a way graphxform cannot rewrite to a constant"
                )
    if renamed:
        for node in f.node_def:
            for i, inp in enumerate(node.input):
                if inp in renamed:
                    node.input[i] = renamed[inp]
        for k, v in list(f.ret.items()):
            if v in renamed:
                f.ret[k] = renamed[v]
    for pos, arg in enumerate(f.signature.output_arg):
        ref = f.ret[arg.name]
        if key(ref) in handles and arg.type == types_pb2.DT_RESOURCE:
            if not passthrough_ok:
                raise GraphError(
                    f"cannot freeze: function {f.signature.name!r} returns variable handle {arg.name!r}"
                )
            arg.type = handles[key(ref)]


def _unique_body_name(base: str, used: set[str]) -> str:
    name, i = base, 1
    while name in used:
        name = f"{base}_{i}"
        i += 1
    used.add(name)
    return name


def _gather_to_value(
    node: node_def_pb2.NodeDef, dtype: int, unique: Callable[[str], str], f: function_pb2.FunctionDef | None
) -> str | None:
    """``ResourceGather`` → ``GatherV2`` / ``ResourceGatherNd`` → ``GatherNd`` (in place).

    Returns the name of the axis ``Const`` that must be added (graph case) or
    adds it to function ``f`` itself.
    """
    if node.op == "ResourceGatherNd":
        node.op = "GatherNd"
        del node.attr["dtype"]
        node.attr["Tparams"].type = dtype
        return None
    batch_dims = attr_int(node, "batch_dims")
    node.op = "GatherV2"
    for a in ("dtype", "validate_indices"):
        if a in node.attr:
            del node.attr[a]
    node.attr["Tparams"].type = dtype
    node.attr["Taxis"].type = types_pb2.DT_INT32
    node.attr["batch_dims"].i = batch_dims
    axis = _axis_const(unique(f"{node.name}/axis"), batch_dims)
    data = [i for i in node.input if not i.startswith("^")]
    ctrl = [i for i in node.input if i.startswith("^")]
    del node.input[:]
    if f is not None:
        f.node_def.append(axis)
        node.input.extend(data[:2] + [f"{axis.name}:output:0"] + ctrl)
        return None
    node.input.extend(data[:2] + [axis.name] + ctrl)
    return axis.name


def _axis_const(name: str, value: int) -> node_def_pb2.NodeDef:
    import tensorflow as tf

    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = types_pb2.DT_INT32
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.int32(value)))
    return node


def _specialise_call(node: node_def_pb2.NodeDef, input_idxs: list[int], dtype: int, lib: _Library) -> list[int]:
    """Point functional op ``node`` (in place) at function copies taking values; returns output ports now values."""
    if node.op in lib.funcs:  # a direct function call: the op is the function
        node.op = lib.specialise(node.op, {i: dtype for i in input_idxs})
        return []
    first, type_attr, fattrs = _FUNCTIONAL[node.op]
    args = {i - first: dtype for i in input_idxs if i >= first}
    if len(args) != len(input_idxs):
        raise GraphError(f"cannot freeze: node {node.name!r} ({node.op}) takes a variable as its condition")
    types = node.attr[type_attr].list.type
    for i in args:
        types[i] = dtype
    is_while = node.op in _WHILE
    for a in fattrs:
        if node.attr[a].HasField("func"):
            fn = node.attr[a].func
            fn.name = lib.specialise(fn.name, args, passthrough_ok=is_while and a == "body")
        else:
            for fn in node.attr[a].list.func:
                fn.name = lib.specialise(fn.name, args)
    if is_while:  # the loop variables that were handles are values now: their shapes are not scalars
        for attr in ("output_shapes", "_output_shapes"):
            if attr in node.attr:
                shapes = node.attr[attr].list.shape
                for i in args:
                    if i < len(shapes):
                        shapes[i].Clear()
                        shapes[i].unknown_rank = True
    if "_input_shapes" in node.attr:  # (per input, as on the function: the handles' scalar shapes are stale)
        shapes = node.attr["_input_shapes"].list.shape
        for i in input_idxs:
            if i < len(shapes):
                shapes[i].Clear()
                shapes[i].unknown_rank = True
    if "_read_only_resource_inputs" in node.attr:
        ro = [i for i in node.attr["_read_only_resource_inputs"].list.i if i not in input_idxs]
        node.attr["_read_only_resource_inputs"].list.ClearField("i")
        node.attr["_read_only_resource_inputs"].list.i.extend(ro)
    return sorted(args) if is_while else []


# --------------------------------------------------------------------------- graph rewrite
def _value_node(var: node_def_pb2.NodeDef, value: np.ndarray) -> node_def_pb2.NodeDef:
    import tensorflow as tf

    node = node_def_pb2.NodeDef(name=var.name, op="Const", device=var.device)
    dtype = _var_dtype(var)
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
    import tensorflow as tf

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
    def __init__(self, model: Model) -> None:
        self.model = model
        self.graph = model.graph
        self.lib = _Library(self.graph.library)
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
            if is_mutating_op(op) or op in SAVER_OPS:
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
                axis = _gather_to_value(node, dtype, lambda base: g.unique_name(base), None)
                if axis:
                    g.add_node(_axis_const(axis, attr_int(node, "batch_dims")))
            elif op == "VariableShape":
                node.op = "Shape"
                del node.attr["dtype"]
                node.attr["T"].type = dtype
            elif op in _FUNCTIONAL or op in self.lib.funcs:
                follow += [f"{dst}:{p}" for p in _specialise_call(node, [idx], dtype, self.lib)]
            else:
                raise GraphError(
                    f"cannot freeze: node {dst!r} ({op}) uses variable handle {handle!r} in a way graphxform "
                    "cannot rewrite to a constant"
                )
            g.update_node(node)
            for t in follow:
                self.rewrite_consumers(t, t, dtype)

    def run(self, values: _Values, variables: list[node_def_pb2.NodeDef]) -> None:
        g = self.graph
        by_name = {v.name: v for v in variables}
        for name, value in values.consts.items():
            var = by_name[name]
            g.update_node(_value_node(var, value))
            if var.op in RESOURCE_VARIABLE_OPS:
                self.rewrite_consumers(f"{name}:0", f"{name}:0", attr_type(g.node(name), "dtype"))
            else:
                for dst, idx in g.consumers(f"{name}:0"):
                    if is_mutating_op(g.node(dst).op):
                        self.removed.add(dst)
        for name, tensor in values.aliases.items():
            self.rewrite_consumers(f"{name}:0", tensor, _var_dtype(by_name[name]))
            self.removed.add(name)
        for table in values.tables:
            # The saver's import of the checkpointed contents goes with the saver; constants replace it below.
            for imp in _restore_imports(g, table):
                g.protected.discard(imp)
                self.model.table_initializers = [t for t in self.model.table_initializers if parse_input(t)[0] != imp]
        self.removed.update(values.missing)
        self.removed.update(n.name for n in g if n.op in SAVER_OPS or n.op in _MUTATING_OPS)
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


def _prune_meta_info(model: Model, removed: Iterable[str]) -> None:
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


def freeze_model(model: Model) -> Model:
    """Replace the model's variables by constants read from its checkpoint (in place; returns ``model``).

    After freezing ``model.variables`` is ``None``, no ``VarHandleOp``,
    ``ReadVariableOp``, ``ResourceGather`` or ``VariableV2`` is left, and
    ``model.graph.lint()`` is empty.
    """
    g = model.graph
    variables = g.nodes_by_op(*VARIABLE_OPS)
    if model.variables is None:
        if variables:
            raise GraphError(
                f"{model.source}: the graph has {len(variables)} variables (e.g. {variables[0].name!r}) but no "
                "checkpoint; load the SavedModel directory instead of a bare GraphDef"
            )
        return model
    values = _read_values(model, variables) if variables or _checkpointed_tables(model) else _Values()
    freezer = _Freezer(model)
    freezer.run(values, variables)
    gd_lib = g.to_graph_def()
    dropped = prune_library(gd_lib)
    if dropped:
        g.library.CopyFrom(gd_lib.library)
    left = g.nodes_by_op(*LEFTOVER_OPS)
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


__all__ = ["freeze_model", "is_mutating_op", "SAVER_OPS", "VARIABLE_OPS"]
