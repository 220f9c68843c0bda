"""Reading models: frozen ``GraphDef`` files and TF1/TF2 SavedModel directories → :class:`Model`.

>>> model = load("fixtures/estimator_dnn")                       # doctest: +SKIP
>>> model = load("frozen.pb", inputs=["input"], outputs=["prob"])   # doctest: +SKIP

* ``.pb`` / ``.pbtxt`` holding a ``GraphDef``: a frozen graph. ``inputs`` /
  ``outputs`` (node or tensor names) make a ``serving_default`` signature.
  A file that is really a SavedModel proto loads its directory instead.
* A SavedModel directory (``saved_model.pb`` or ``saved_model.pbtxt``): the
  MetaGraph whose tag set equals ``tags`` (default ``["serve"]``) is read —
  signatures, init/main op, table initializers, assets, the variables
  checkpoint. TF2 SavedModels (``tf.saved_model.save``, Keras ``export``)
  are flattened on the way in: every ``StatefulPartitionedCall`` /
  ``PartitionedCall`` is inlined (:mod:`graphxform.model.tf2_flatten`) and the
  signatures are remapped to the inlined tensors.

Every failure is a :class:`~graphxform.core.errors.ModelLoadError` whose one-line
message names the file and says what to do.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import saved_model_pb2, saver_pb2

from graphxform.core.errors import GraphError, ModelLoadError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.opdefs import FEED_OPS, MUTABLE_TABLE_OPS, TABLE_INIT_OPS, VARIABLE_OPS, output_count
from graphxform.core.oplibs import ensure_ops
from graphxform.core.signature import METHOD_PREDICT, Signature, TensorSpec, VariableStore
from graphxform.model.integrity import problems
from graphxform.model.model import Model
from graphxform.model.tf2_flatten import has_function_calls, inline_function_calls
from graphxform.savedmodel.objects import bind_object_graph
from graphxform.savedmodel.read import (
    HINT,
    SAVED_MODEL_FILES,
    TABLE_INITIALIZER_COLLECTION,
    TEXT_SUFFIXES,
    check_collections,
    check_unique_names,
    check_variables,
    choose_meta_graph,
    find_assets,
    find_init_op,
    node_list,
    read_model_file,
    read_saved_model,
    shape_of,
    signature_prefixes,
    signatures_from_meta_graph,
)
from graphxform.savedmodel.stream import NodeListGraphDef

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- entry point
def load(
    path: str | os.PathLike[str],
    tags: list[str] | str | None = None,
    *,
    inputs: list[str] | str | None = None,
    outputs: list[str] | str | None = None,
) -> Model:
    """Load a SavedModel directory (TF1/Estimator or TF2) or a frozen ``.pb``/``.pbtxt`` ``GraphDef``.

    ``tags`` picks the MetaGraph of a SavedModel (a list, or a comma separated
    string such as ``"serve,gpu"``; default ``["serve"]``). ``inputs`` and
    ``outputs`` (lists of node or tensor names, or comma separated strings)
    give a bare ``GraphDef`` a ``serving_default`` signature.
    """
    p = Path(path)
    tag_list = _parse_tags(tags)
    ins, outs = _name_list(inputs), _name_list(outputs)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file or directory; {HINT}")
    if p.is_dir():
        for fname in SAVED_MODEL_FILES:
            if (p / fname).exists():  # (a directory or a pipe there is refused by read_model_file)
                return _load_saved_model(p, p / fname, tag_list, ins, outs)
        raise ModelLoadError(f"{p}: directory holds no saved_model.pb or saved_model.pbtxt; {HINT}")
    kind, proto = read_model_file(p)
    if kind == "saved_model":
        assert isinstance(proto, saved_model_pb2.SavedModel)
        return _load_saved_model(p.parent, p, tag_list, ins, outs, proto)
    assert isinstance(proto, (graph_pb2.GraphDef, NodeListGraphDef))
    return _load_graph_def(p, proto, ins, outs)


def _parse_tags(tags: list[str] | str | None) -> list[str]:
    if tags is None:
        return ["serve"]
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    return [str(t) for t in tags]


def _name_list(names: list[str] | str | None) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str):
        return [n.strip() for n in names.split(",") if n.strip()]
    return [str(n) for n in names]


# --------------------------------------------------------------------------- GraphDef files
def _graph_def_signature(
    graph: Graph, path: Path, inputs: list[str], outputs: list[str], remap: Callable[[str], str]
) -> Signature:
    sig = Signature("serving_default", METHOD_PREDICT)

    def spec(given: str, kind: str) -> tuple[str, TensorSpec]:
        name = remap(given)
        node_name, port, control = parse_input(name)
        if control or node_name not in graph:
            raise ModelLoadError(
                f"{path}: {kind} {given!r} names no node of the graph; pick names from `graphxform inspect {path}`"
            )
        node = graph.node(node_name)
        tensor = f"{node_name}:{port}"
        dtype = graph.output_dtype(tensor)
        shape: list[int | None] | None = None
        if node.op in FEED_OPS and "shape" in node.attr:
            shape = shape_of(node.attr["shape"].shape)
        elif "_output_shapes" in node.attr and port < len(node.attr["_output_shapes"].list.shape):
            shape = shape_of(node.attr["_output_shapes"].list.shape[port])
        if dtype is None:
            raise ModelLoadError(f"{path}: cannot tell the dtype of {kind} {tensor!r} (op {node.op}); "
                                 "name a tensor of a registered op")
        given_node, given_port, _ = parse_input(given)  # keys follow the names the user gave
        key = given_node if given_port == 0 else f"{given_node}_{given_port}"
        return key, TensorSpec(tensor, int(dtype), shape)

    for name in inputs:
        k, s = spec(name, "input")
        sig.inputs[k] = s
    for name in outputs:
        k, s = spec(name, "output")
        sig.outputs[k] = s
    return sig


def _load_graph_def(path: Path, graph_def: graph_pb2.GraphDef | NodeListGraphDef, inputs: list[str],
                    outputs: list[str]) -> Model:
    ensure_ops(graph_def, path)
    check_unique_names(graph_def, path)
    flat = None
    if has_function_calls(graph_def):
        try:
            flat = inline_function_calls(graph_def)
        except GraphError as exc:
            raise ModelLoadError(f"{path}: {exc}") from None
        graph_def = flat.graph_def
        log.info("%s: inlined %d function calls", path, flat.inlined)

    def remap(name: str) -> str:
        return flat.resolve(name) if flat is not None and not name.startswith("^") else name

    try:
        graph = Graph(graph_def)
    except GraphError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None
    _check_integrity(graph, path)
    signatures: dict[str, Signature] = {}
    if inputs or outputs:
        if not outputs:
            raise ModelLoadError(f"{path}: inputs given without outputs; pass outputs too to make a signature")
        sig = _graph_def_signature(graph, path, inputs, outputs, remap)
        signatures[sig.key] = sig
    if graph.nodes_by_op(*VARIABLE_OPS):
        log.warning("%s: the GraphDef holds variables but no checkpoint; freeze it before export", path)
    table_inits = [n.name for n in graph.nodes_by_op(*TABLE_INIT_OPS)]
    return Model(
        graph=graph, signatures=signatures, source=path, format="graph_def", table_initializers=table_inits,
        meta_info={"source_format": "pbtxt" if path.suffix.lower() in TEXT_SUFFIXES else "pb"},
    )


def require_assets(model: Model) -> None:
    """Refuse a model whose asset files are missing (or not files): it could be transformed but not written.

    ``inspect`` reads a model without its assets; ``transform`` and ``optimize`` call this right after loading,
    before any work is done.
    """
    for a in model.assets:
        if not a.source_path.is_file():
            what = "is a directory, not a file" if a.source_path.is_dir() else "is missing"
            raise ModelLoadError(f"{model.source}: asset {a.filename!r} {what} (expected at {a.source_path}); copy "
                                 "the complete SavedModel with its assets/ directory")


def _check_signature_tensor(graph: Graph, pb_path: Path, sig: Signature, tensor: str) -> None:
    name, port, _ = parse_input(tensor)
    if name not in graph:
        raise ModelLoadError(f"{pb_path}: signature {sig.key!r} names tensor {tensor!r}, which is not in the graph; "
                             "the SavedModel is corrupt, re-export it")
    count = output_count(graph.node(name))
    if count is not None and port >= count:
        raise ModelLoadError(f"{pb_path}: signature {sig.key!r} names tensor {tensor!r}, but {graph.node(name).op} "
                             f"{name!r} has {count} output{'s' if count != 1 else ''}; the SavedModel is corrupt, "
                             "re-export it")


def _check_integrity(graph: Graph, path: Path) -> None:
    """Refuse a graph with dangling inputs, cycles or corrupt constants (see :mod:`graphxform.model.integrity`)."""
    found = problems(graph)
    if found:
        raise ModelLoadError(f"{path}: the graph is corrupt: {'; '.join(found)}; re-export the model")



# --------------------------------------------------------------------------- SavedModels
def _load_saved_model(
    export_dir: Path,
    pb_path: Path,
    tags: list[str],
    inputs: list[str],
    outputs: list[str],
    proto: saved_model_pb2.SavedModel | None = None,
) -> Model:
    if inputs or outputs:
        raise ModelLoadError(
            f"{export_dir}: inputs/outputs name the signature of a bare GraphDef; a SavedModel brings its own "
            "signatures — drop inputs/outputs"
        )
    sm = proto if proto is not None else read_saved_model(pb_path)
    mg = choose_meta_graph(sm, tags, pb_path)
    graph_def = mg.graph_def
    ensure_ops(graph_def, pb_path)
    check_unique_names(graph_def, pb_path)
    check_collections(mg, pb_path)
    signatures = signatures_from_meta_graph(mg, pb_path)
    for sig in signatures.values():  # before inlining: a control name or a bad port would be resolved wrongly
        for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
            for t in spec.tensor_names():
                if parse_input(t)[2]:
                    raise ModelLoadError(f"{pb_path}: signature {sig.key!r} names {t!r}, a control dependency, not "
                                         "a tensor; the SavedModel is corrupt, re-export it")
    init_op = find_init_op(mg)
    assets = find_assets(mg, export_dir)
    saver_def = mg.saver_def if mg.HasField("saver_def") else None
    version = 2 if mg.HasField("object_graph_def") and len(mg.object_graph_def.nodes) > 0 else 1

    objects = None
    if version == 2:
        index = export_dir / "variables" / "variables.index"
        if index.is_file():
            check_variables(export_dir)  # a missing shard is named as such, not as an unreadable object graph
        objects = bind_object_graph(mg, index.with_suffix("") if index.is_file() else None, pb_path)

    collections = {k: v.SerializeToString() for k, v in mg.collection_def.items()}
    flattened = has_function_calls(graph_def)
    if flattened:
        keep = [n for n in (init_op, saver_def.restore_op_name if saver_def else None) if n]
        try:
            flat = inline_function_calls(graph_def, prefixes=signature_prefixes(graph_def, mg),
                                         keep=[parse_input(k)[0] for k in keep])
        except GraphError as exc:
            raise ModelLoadError(f"{pb_path}: {exc}") from None
        graph_def = flat.graph_def
        log.info("%s: inlined %d function calls", export_dir, flat.inlined)

        def remap(name: str) -> str:
            return flat.resolve(name) if name else name

        for sig in signatures.values():
            for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
                if spec.name:
                    spec.name = remap(spec.name)
                if spec.components:
                    spec.components = {k: remap(v) for k, v in spec.components.items()}
        for a in assets:
            a.tensor_name = remap(a.tensor_name)
        if saver_def is not None:
            sd = saver_pb2.SaverDef()
            sd.CopyFrom(saver_def)
            if sd.save_tensor_name:
                sd.save_tensor_name = remap(sd.save_tensor_name)
            if sd.filename_tensor_name:
                sd.filename_tensor_name = remap(sd.filename_tensor_name)
            saver_def = sd

    try:
        graph = Graph(graph_def)
    except GraphError as exc:
        raise ModelLoadError(f"{pb_path}: {exc}") from None
    _check_integrity(graph, pb_path)
    for sig in signatures.values():
        for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
            for t in spec.tensor_names():
                _check_signature_tensor(graph, pb_path, sig, t)
    if init_op and init_op not in graph:
        raise ModelLoadError(f"{pb_path}: the init op {init_op!r} is not in the graph; re-export the SavedModel")

    table_inits = [parse_input(n)[0] for n in node_list(mg, TABLE_INITIALIZER_COLLECTION)]
    table_inits += [n.name for n in graph.nodes_by_op(*TABLE_INIT_OPS)]
    table_inits = [n for n in dict.fromkeys(table_inits) if n in graph]

    variables = None
    # Mutable tables are state too: with a saver, their contents are in the checkpoint.
    if graph.nodes_by_op(*VARIABLE_OPS) or (saver_def is not None and graph.nodes_by_op(*MUTABLE_TABLE_OPS)):
        prefix = check_variables(export_dir)
        variables = VariableStore(prefix, saver_def.SerializeToString() if saver_def is not None else None)

    extra = export_dir / "assets.extra"
    meta_info = {
        "tags": list(mg.meta_info_def.tags),
        "tag_sets": [list(m.meta_info_def.tags) for m in sm.meta_graphs],
        "tensorflow_version": mg.meta_info_def.tensorflow_version,
        "tensorflow_git_version": mg.meta_info_def.tensorflow_git_version,
        "saved_model_schema_version": int(sm.saved_model_schema_version),
        "collection_def": collections,
        "saver_def": saver_def.SerializeToString() if saver_def is not None else None,
        "assets_extra": extra if extra.is_dir() else None,
        "source_format": "pbtxt" if pb_path.suffix == ".pbtxt" else "pb",
        "flattened": flattened,
    }
    model = Model(
        graph=graph, signatures=signatures, source=export_dir, format="saved_model", tags=list(tags),
        assets=assets, init_op=init_op, table_initializers=table_inits, variables=variables,
        saved_model_version=version, meta_info=meta_info, objects=objects,
    )
    log.info("loaded %s: %d nodes, signatures %s", export_dir, len(graph), sorted(signatures))
    return model


__all__ = ["load", "require_assets"]
