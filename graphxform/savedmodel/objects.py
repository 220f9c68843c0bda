"""TF2 object-graph binding: which object, and which checkpoint value, each captured graph input stands for.

A TF2 SavedModel (``tf.saved_model.save``, Keras ``export``) keeps its state
as objects: the MetaGraph's ``object_graph_def`` (a ``SavedObjectGraph``)
lists them (variables, resources such as lookup tables, assets, constants,
functions) with their children, and the checkpoint under ``variables/``
holds their values, keyed by object path
(``model/_operations/2/beta/.ATTRIBUTES/VARIABLE_VALUE``), with its own
object graph (a ``TrackableObjectGraph`` under the key
``_CHECKPOINTABLE_OBJECT_GRAPH``).

``tf.saved_model.load`` never looks at the names of the graph's
``VarHandleOp`` s. It recreates the objects, restores the checkpoint by
matching its object graph to the saved one child name by child name from
the root, and gives each concrete function its captured inputs from
``concrete_functions[name].bound_inputs`` (object node ids, one per
captured input: the function's last inputs). This module does the same on
the protos: for every call node of the top-level graph whose function has
``bound_inputs``, the graph tensors fed to its last inputs are bound to
those objects, and each object to its checkpoint keys. The saver's restore
op plays no part, so a SavedModel whose signature functions capture
variables the saver does not fill (Keras 3 models saved with
``tf.saved_model.save``: TF1 loaders and TF Serving fail on them with
"Could not find variable …") is bound correctly.

>>> binding = bind_object_graph(meta_graph, "export/variables/variables")   # doctest: +SKIP
>>> binding.variable_key("d1/kernel")                                          # doctest: +SKIP
'model/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE'
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, trackable_object_graph_pb2

from graphxform.core.errors import ModelLoadError, tf_error_summary
from graphxform.core.names import parse_input
from graphxform.core.opdefs import CALL_OPS, TABLE_OPS, VARIABLE_OPS, dtype_label

log = logging.getLogger(__name__)

#: The checkpoint key of the serialized ``TrackableObjectGraph``.
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
#: The attribute name a variable's value has in the checkpoint's object graph.
VARIABLE_VALUE = "VARIABLE_VALUE"


@dataclass
class BoundObject:
    """One object of the SavedObjectGraph that graph nodes stand for.

    ``kind`` is the ``SavedObject`` kind (``variable``, ``resource``,
    ``asset``, ``constant``, ``captured_tensor`` …); ``path`` the object path
    from the root (``model/_operations/2/beta``); ``checkpoint_keys`` the
    checkpoint attributes of the object ({attribute name: checkpoint key},
    e.g. ``{"VARIABLE_VALUE": "…/.ATTRIBUTES/VARIABLE_VALUE"}`` or
    ``{"table": "…/.ATTRIBUTES/table"}``); ``graph_nodes`` the top-level
    graph nodes bound to it; ``functions`` the concrete functions capturing it.
    """

    node_id: int
    kind: str
    path: str
    checkpoint_keys: dict[str, str] = field(default_factory=dict)
    graph_nodes: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    name: str = ""  # a variable's own name (SavedVariable.name)


@dataclass
class ObjectGraphBinding:
    """How the top-level graph nodes of a TF2 SavedModel map to objects and checkpoint values."""

    objects: dict[int, BoundObject] = field(default_factory=dict)  # object node id -> object
    by_node: dict[str, int] = field(default_factory=dict)  # graph node -> object node id
    checkpoint_prefix: Path | None = None
    checkpoint_keys: frozenset[str] = frozenset()  # every tensor key of the checkpoint
    restored_by_saver: frozenset[str] = frozenset()  # graph nodes the SaverDef's restore op fills

    def object_of(self, node: str) -> BoundObject | None:
        """The object graph node ``node`` (a top-level graph node name) is bound to, if any."""
        oid = self.by_node.get(node)
        return self.objects.get(oid) if oid is not None else None

    def variable_key(self, node: str) -> str | None:
        """Checkpoint key of the value of variable ``node`` (a ``VarHandleOp``), as ``tf.saved_model.load`` reads it."""
        obj = self.object_of(node)
        if obj is None or obj.kind != "variable":
            return None
        key = obj.checkpoint_keys.get(VARIABLE_VALUE)
        return key if key in self.checkpoint_keys else None

    def table_keys(self, node: str) -> tuple[str, str] | None:
        """Checkpoint keys ``(keys, values)`` of the contents of table ``node``, when the checkpoint holds them."""
        obj = self.object_of(node)
        if obj is None:
            return None
        for base in obj.checkpoint_keys.values():
            keys, values = f"{base}-keys", f"{base}-values"
            if keys in self.checkpoint_keys and values in self.checkpoint_keys:
                return keys, values
        return None

    def unservable_nodes(self) -> list[str]:
        """Bound variables/tables with a checkpoint value that the saver's restore op does not fill.

        TF1 loaders and TensorFlow's C++ loader (TF Serving) restore through the
        SaverDef only: a signature reading one of these fails there with
        "Could not find variable …" (or reads an empty table).
        """
        out = []
        for node, oid in sorted(self.by_node.items()):
            if node in self.restored_by_saver:
                continue
            if self.variable_key(node) is not None or self.table_keys(node) is not None:
                out.append(node)
        return out

    def describe(self, node: str) -> dict[str, Any] | None:
        """``{"object": path, "kind": …, "checkpoint_key": …}`` for a bound graph node, else ``None``."""
        obj = self.object_of(node)
        if obj is None:
            return None
        key: Any = self.variable_key(node)
        if key is None:
            tk = self.table_keys(node)
            key = list(tk) if tk else None
        return {"object": obj.path, "kind": obj.kind, "node_id": obj.node_id, "checkpoint_key": key,
                "functions": list(obj.functions), "restored_by_saver": node in self.restored_by_saver}


def _object_paths(og: Any) -> dict[int, str]:
    """Breadth-first object paths from the root (``model/_operations/2/beta``); the first path found wins."""
    paths = {0: ""}
    queue = deque([0])
    while queue:
        nid = queue.popleft()
        if nid >= len(og.nodes):
            continue
        for child in og.nodes[nid].children:
            if child.node_id not in paths:
                prefix = paths[nid]
                paths[child.node_id] = f"{prefix}/{child.local_name}" if prefix else child.local_name
                queue.append(child.node_id)
    return paths


def _match_checkpoint(og: Any, ckpt_graph: Any) -> dict[int, int]:
    """{saved object id: checkpoint object id}, matched child name by child name from the roots (as TF restores)."""
    match = {0: 0}
    queue = deque([(0, 0)])
    while queue:
        sid, cid = queue.popleft()
        if sid >= len(og.nodes) or cid >= len(ckpt_graph.nodes):
            continue
        ck_children = {c.local_name: c.node_id for c in ckpt_graph.nodes[cid].children}
        for child in og.nodes[sid].children:
            c = ck_children.get(child.local_name)
            if c is None or child.node_id in match:
                continue
            match[child.node_id] = c
            queue.append((child.node_id, c))
    return match


def _read_checkpoint_graph(prefix: Path) -> tuple[Any, frozenset[str]] | None:
    """The checkpoint's ``TrackableObjectGraph`` and its tensor keys, or ``None`` when it has no object graph."""
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (ValueError, tf.errors.OpError) as exc:
        raise ModelLoadError(f"{prefix}: cannot read the checkpoint ({tf_error_summary(str(exc))}); copy the "
                             "complete SavedModel variables/ directory") from None
    keys = frozenset(reader.get_variable_to_shape_map())
    if OBJECT_GRAPH_KEY not in keys:
        return None
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        raw = reader.get_tensor(OBJECT_GRAPH_KEY)
    except (tf.errors.OpError, ValueError, IndexError) as exc:  # (a data shard shorter than the index says)
        detail = tf_error_summary(exc.message if isinstance(exc, tf.errors.OpError) else str(exc))
        raise ModelLoadError(f"{prefix}: cannot read the checkpoint's data ({detail or type(exc).__name__}); "
                             "variables.index and variables.data-* do not match or are damaged: copy the complete "
                             "SavedModel variables/ directory") from None
    try:
        graph.ParseFromString(raw)
    except Exception as exc:  # noqa: BLE001 - protobuf backends raise assorted errors on garbage
        raise ModelLoadError(f"{prefix}: the checkpoint's object graph is corrupt ({type(exc).__name__}); "
                             "re-export the SavedModel") from None
    return graph, keys


def _source_node(nodes: dict[str, Any], tensor: str) -> str:
    """The node behind ``tensor``, through ``Identity`` s."""
    name = parse_input(tensor)[0]
    seen = set()
    while name in nodes and nodes[name].op == "Identity" and nodes[name].input and name not in seen:
        seen.add(name)
        name = parse_input(nodes[name].input[0])[0]
    return name


def _saver_restored(graph_def: Any, saver_def: Any, lib: dict[str, Any]) -> frozenset[str]:
    """Top-level nodes the SaverDef's restore op reads or fills (the restore call's inputs, or the
    resources its ``AssignVariableOp`` / table-import nodes touch in a TF1-style graph)."""
    if saver_def is None or not saver_def.restore_op_name:
        return frozenset()
    nodes = {n.name: n for n in graph_def.node}
    out: set[str] = set()
    todo = [parse_input(saver_def.restore_op_name)[0]]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        for inp in node.input:
            src = parse_input(inp)[0]
            if inp.startswith("^"):
                todo.append(src)
                continue
            if src in nodes:
                out.add(_source_node(nodes, inp))
                if nodes[src].op in ("AssignVariableOp", "Assign", "LookupTableImportV2", "NoOp", "Identity") \
                        or nodes[src].op in lib or nodes[src].op in CALL_OPS:
                    todo.append(src)
    return frozenset(out)


#: SavedObject kinds a concrete function may capture (``bound_inputs``).
_CAPTURABLE = frozenset({"variable", "resource", "asset", "constant", "captured_tensor"})
_CORRUPT = "the SavedModel is corrupt, re-export it"


def _check_object_graph(mg: meta_graph_pb2.MetaGraphDef, source: str | Path) -> None:
    """Refuse a SavedObjectGraph that ``tf.saved_model.load`` could not rebuild: ids out of range, concrete
    functions missing from the object graph or the function library, captures of objects that hold no value."""
    og = mg.object_graph_def
    n = len(og.nodes)
    lib = {f.signature.name for f in mg.graph_def.library.function}
    for nid, saved in enumerate(og.nodes):
        for child in saved.children:
            if not 0 <= child.node_id < n:
                raise ModelLoadError(f"{source}: object {nid} has child {child.local_name!r} = object "
                                     f"{child.node_id}, which the object graph (of {n} objects) does not have; "
                                     f"{_CORRUPT}")
        kind = saved.WhichOneof("kind")
        names = list(saved.function.concrete_functions) if kind == "function" else \
            [saved.bare_concrete_function.concrete_function_name] if kind == "bare_concrete_function" else []
        for name in names:
            if name not in og.concrete_functions or name not in lib:
                where = "the object graph's concrete functions" if name not in og.concrete_functions else \
                    "the function library"
                raise ModelLoadError(f"{source}: object {nid} ({kind}) names concrete function {name!r}, which is not "
                                     f"in {where}; {_CORRUPT}")
        if kind == "asset" and not 0 <= saved.asset.asset_file_def_index < len(mg.asset_file_def):
            raise ModelLoadError(f"{source}: asset object {nid} names asset_file_def "
                                 f"{saved.asset.asset_file_def_index}, but the MetaGraph has "
                                 f"{len(mg.asset_file_def)}; {_CORRUPT}")
    for fname, cf in og.concrete_functions.items():
        if fname not in lib:
            raise ModelLoadError(f"{source}: concrete function {fname!r} is not in the function library; {_CORRUPT}")
        for nid in cf.bound_inputs:
            if not 0 <= nid < n:
                raise ModelLoadError(f"{source}: function {fname!r} captures object {nid}, which the object graph "
                                     f"does not have; {_CORRUPT}")
            kind = og.nodes[nid].WhichOneof("kind")
            if kind not in _CAPTURABLE:
                raise ModelLoadError(f"{source}: function {fname!r} captures object {nid}, a {kind or 'kindless'} "
                                     f"object that holds no value (a capture is a variable, resource, asset or "
                                     f"constant); {_CORRUPT}")


def _check_bound_node(node: Any, saved: Any, obj: BoundObject, fname: str, source: str | Path) -> None:
    """Refuse a capture whose graph node cannot be the object bound to it (a table bound to a constant, a variable
    of another dtype or shape than its SavedVariable)."""
    if node is None:
        return
    is_var = node.op in VARIABLE_OPS
    if is_var != (obj.kind == "variable") or (node.op in TABLE_OPS and obj.kind != "resource"):
        raise ModelLoadError(f"{source}: function {fname!r} binds graph node {node.name!r} ({node.op}) to object "
                             f"{obj.path!r}, a {obj.kind} object; the bound_inputs are wrong, {_CORRUPT}")
    if is_var and "dtype" in node.attr and saved.variable.dtype and saved.variable.dtype != node.attr["dtype"].type:
        raise ModelLoadError(f"{source}: variable {node.name!r}: the SavedVariable {obj.path!r} has dtype "
                             f"{dtype_label(saved.variable.dtype)}, the graph's {node.op} "
                             f"{dtype_label(node.attr['dtype'].type)}; {_CORRUPT}")
    if is_var and "shape" in node.attr and not node.attr["shape"].shape.unknown_rank \
            and not saved.variable.shape.unknown_rank:
        want = [d.size for d in node.attr["shape"].shape.dim]
        have = [d.size for d in saved.variable.shape.dim]
        if len(want) != len(have) or any(a >= 0 and b >= 0 and a != b for a, b in zip(want, have)):
            raise ModelLoadError(f"{source}: variable {node.name!r}: the SavedVariable {obj.path!r} has shape {have}, "
                                 f"the graph's {node.op} {want}; {_CORRUPT}")


def bind_object_graph(mg: meta_graph_pb2.MetaGraphDef, checkpoint_prefix: Path | None,
                      source: str | Path = "saved_model.pb") -> ObjectGraphBinding | None:
    """Bind the top-level graph of ``mg`` (before flattening) to its SavedObjectGraph and checkpoint.

    Returns ``None`` for a SavedModel without an object graph (TF1). Without a
    checkpoint (no ``variables/``) objects get paths but no checkpoint keys.
    ``source`` names the file in error messages.
    """
    og = mg.object_graph_def if mg.HasField("object_graph_def") else None
    if og is None or not len(og.nodes):
        return None
    _check_object_graph(mg, source)
    binding = ObjectGraphBinding(checkpoint_prefix=checkpoint_prefix)
    paths = _object_paths(og)
    ckpt = _read_checkpoint_graph(checkpoint_prefix) if checkpoint_prefix is not None else None
    match: dict[int, int] = {}
    if ckpt is not None:
        ckpt_graph, binding.checkpoint_keys = ckpt
        match = _match_checkpoint(og, ckpt_graph)

    def obj(nid: int) -> BoundObject:
        if nid not in binding.objects:
            saved = og.nodes[nid]
            kind = saved.WhichOneof("kind") or ""
            o = BoundObject(nid, kind, paths.get(nid, f"<node {nid}>"))
            if kind == "variable":
                o.name = saved.variable.name
            if nid in match:
                o.checkpoint_keys = {a.name: a.checkpoint_key for a in ckpt_graph.nodes[match[nid]].attributes}
            binding.objects[nid] = o
        return binding.objects[nid]

    gd = mg.graph_def
    nodes = {n.name: n for n in gd.node}
    lib = {f.signature.name: f for f in gd.library.function}
    for node in gd.node:
        fname = None
        if node.op in CALL_OPS and "f" in node.attr:
            fname = node.attr["f"].func.name
        elif node.op in lib:
            fname = node.op
        if not fname or fname not in og.concrete_functions:
            continue
        bound = list(og.concrete_functions[fname].bound_inputs)
        if not bound:
            continue
        data = [i for i in node.input if not i.startswith("^")]
        if len(data) < len(bound):
            raise ModelLoadError(f"{source}: call node {node.name!r} passes {len(data)} inputs to {fname!r}, which captures "
                                 f"{len(bound)} objects; the SavedModel is corrupt, re-export it")
        for tensor, nid in zip(data[len(data) - len(bound):], bound):
            if not 0 <= nid < len(og.nodes):
                raise ModelLoadError(f"{source}: function {fname!r} captures object {nid}, which the object graph does not "
                                     "have; the SavedModel is corrupt, re-export it")
            src = _source_node(nodes, tensor)
            o = obj(nid)
            _check_bound_node(nodes.get(src), og.nodes[nid], o, fname, source)
            other = binding.by_node.get(src)
            if other is not None and other != nid:
                # One graph node standing for two objects: keep the first, it is what the loaders would share.
                log.warning("graph node %r is captured as object %s and as object %s; using %s",
                            src, binding.objects[other].path, o.path, binding.objects[other].path)
                continue
            binding.by_node[src] = nid
            if src not in o.graph_nodes:
                o.graph_nodes.append(src)
            if fname not in o.functions:
                o.functions.append(fname)
    if ckpt is not None:
        # tf.saved_model.load asserts that every saved object matched the checkpoint's object graph.
        unmatched = [o for o in binding.objects.values() if o.kind == "variable" and o.graph_nodes
                     and VARIABLE_VALUE not in o.checkpoint_keys]
        if unmatched:
            o = unmatched[0]
            raise ModelLoadError(
                f"{source}: variable {o.graph_nodes[0]!r} (object {o.path!r}) has no value in the checkpoint "
                f"{checkpoint_prefix}: its object graph does not match the SavedModel's ({len(unmatched)} variable"
                f"{'s' if len(unmatched) != 1 else ''} unmatched); the variables/ directory belongs to another "
                "export — copy the complete SavedModel")
    binding.restored_by_saver = _saver_restored(gd, mg.saver_def if mg.HasField("saver_def") else None, lib)
    log.debug("object graph: %d graph nodes bound to %d objects", len(binding.by_node), len(binding.objects))
    return binding


__all__ = ["BoundObject", "ObjectGraphBinding", "OBJECT_GRAPH_KEY", "bind_object_graph"]
