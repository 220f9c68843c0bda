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
  ``PartitionedCall`` is inlined (:mod:`graphxform.tf2_flatten`) and the
  signatures are remapped to the inlined tensors.

Every failure is a :class:`~graphxform.errors.ModelLoadError` whose one-line
message names the file and says what to do.
"""
from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from google.protobuf import message, text_format
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2, saver_pb2

from graphxform.errors import GraphError, ModelLoadError
from graphxform.graph import Graph, parse_input, tensor_proto_to_array
from graphxform.model import METHOD_PREDICT, Asset, Model, Signature, TensorSpec, VariableStore
from graphxform.oplibs import ensure_ops
from graphxform.tf2_flatten import CALL_OPS, has_function_calls, inline_function_calls

log = logging.getLogger(__name__)

#: Ops that hold variables (resource and reference forms).
VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})
#: Ops that fill a lookup table.
TABLE_INIT_OPS = frozenset({
    "InitializeTable", "InitializeTableV2", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "LookupTableImport", "LookupTableImportV2", "InitializeTableFromDataset",
})
#: The SignatureDef key TF2 uses for its init op (not a user signature).
INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"
#: Collections that may name the init/main op, most specific first.
MAIN_OP_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "main_op")
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
TEXT_SUFFIXES = (".pbtxt", ".txt", ".prototxt", ".textproto")

_HINT = "pass a SavedModel directory (the one holding saved_model.pb) or a frozen GraphDef .pb/.pbtxt"
#: Protobuf cannot parse a message of 2 GiB or more: such a file is refused by its size, before it is read.
MAX_PROTO_BYTES = 2 * 1024**3 - 1


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
        raise ModelLoadError(f"{p}: no such file or directory; {_HINT}")
    if p.is_dir():
        for fname in SAVED_MODEL_FILES:
            if (p / fname).exists():  # (a directory or a pipe there is refused by _read_model_file)
                return _load_saved_model(p, p / fname, tag_list, ins, outs)
        raise ModelLoadError(f"{p}: directory holds no saved_model.pb or saved_model.pbtxt; {_HINT}")
    kind, proto = _read_model_file(p)
    if kind == "saved_model":
        assert isinstance(proto, saved_model_pb2.SavedModel)
        return _load_saved_model(p.parent, p, tag_list, ins, outs, proto)
    assert isinstance(proto, graph_pb2.GraphDef)
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


# --------------------------------------------------------------------------- reading protos
def _is_text(path: Path, data: bytes) -> bool:
    if path.suffix.lower() in TEXT_SUFFIXES:
        return True
    if path.suffix.lower() == ".pb":
        return False
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(re.match(rb"\s*(#|node\s*\{|saved_model_schema_version|meta_graphs|versions|library)", head))


def _graph_def_problem(gd: graph_pb2.GraphDef) -> str | None:
    """Why ``gd`` (parsed without error) is no usable GraphDef, or ``None``."""
    if not gd.node:
        return "it holds no node"
    for i, n in enumerate(gd.node):
        if not n.name or not n.op:
            return f"node #{i} ({'op ' + repr(n.op) if n.op else 'name ' + repr(n.name)}) has no " \
                   f"{'name' if not n.name else 'op'}"
    return None


def _saved_model_problem(sm: saved_model_pb2.SavedModel) -> str | None:
    if not sm.meta_graphs:
        return "it holds no MetaGraph"
    for mg in sm.meta_graphs:
        if not mg.graph_def.node:
            return f"the MetaGraph tagged [{','.join(mg.meta_info_def.tags)}] holds an empty graph"
    return None


def _read_model_file(path: Path) -> tuple[str, graph_pb2.GraphDef | saved_model_pb2.SavedModel]:
    """Parse ``path`` as a ``GraphDef`` or a ``SavedModel`` proto (binary or text)."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a named pipe" if stat.S_ISFIFO(st.st_mode) else \
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file"
            raise ModelLoadError(f"{path}: is {kind}, not a regular file; refusing to read it; {_HINT}")
        size = st.st_size
        if size > MAX_PROTO_BYTES:
            raise ModelLoadError(
                f"{path}: the file is {size / 1024**3:.2f} GiB, over protobuf's 2 GiB limit for one message; it "
                "cannot be a valid GraphDef or SavedModel (keep large weights in variables/, do not freeze them)")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    if not data:
        raise ModelLoadError(f"{path}: the file is empty; {_HINT}")
    saved_model_first = path.name in SAVED_MODEL_FILES
    text = _is_text(path, data)
    errors: list[str] = []
    kinds: list[tuple[str, type]] = [("graph_def", graph_pb2.GraphDef), ("saved_model", saved_model_pb2.SavedModel)]
    if saved_model_first or (text and re.match(rb"\s*(saved_model_schema_version|meta_graphs)", data[:4096])):
        kinds.reverse()
    for kind, cls in kinds:
        proto = cls()
        label = "SavedModel" if kind == "saved_model" else "GraphDef"
        try:
            if text:
                text_format.Parse(data.decode("utf-8", errors="strict"), proto, allow_unknown_extension=False)
            else:
                proto.ParseFromString(data)
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            errors.append(f"text parse error ({str(exc).splitlines()[0][:100]})")
            continue
        except message.DecodeError as exc:
            detail = str(exc).rpartition(": ")[2] or "parse error"
            errors.append(f"truncated or corrupt protobuf ({detail})")
            continue
        except Exception as exc:  # noqa: BLE001 - protobuf backends raise assorted errors on garbage
            errors.append(f"unreadable protobuf ({type(exc).__name__}: {str(exc)[:100]})")
            continue
        problem = _graph_def_problem(proto) if kind == "graph_def" else _saved_model_problem(proto)
        if problem is None:
            return kind, proto
        errors.append(f"parses as an invalid {label}: {problem}")
    what = "text" if text else "binary"
    # The first kind tried is the likelier one: its error is the one worth showing.
    expected = "SavedModel" if saved_model_first else "GraphDef or SavedModel"
    raise ModelLoadError(f"{path}: not a {what} {expected}: {errors[0]}; {_HINT}")


# --------------------------------------------------------------------------- signatures
def _shape_of(tensor_shape: object) -> list[int | None] | None:
    if getattr(tensor_shape, "unknown_rank", False):
        return None
    return [None if d.size < 0 else int(d.size) for d in tensor_shape.dim]  # type: ignore[attr-defined]


def _spec_from_info(info: meta_graph_pb2.TensorInfo, where: str) -> TensorSpec:
    enc = info.WhichOneof("encoding")
    shape = _shape_of(info.tensor_shape)
    if enc == "name":
        return TensorSpec(info.name, int(info.dtype), shape)
    if enc == "coo_sparse":
        sp = info.coo_sparse
        return TensorSpec("", int(info.dtype), shape, components={
            "values": sp.values_tensor_name, "indices": sp.indices_tensor_name,
            "dense_shape": sp.dense_shape_tensor_name,
        })
    if enc == "composite_tensor":
        comps = {str(i): c.name for i, c in enumerate(info.composite_tensor.components) if c.name}
        log.warning("%s is a composite tensor; it is kept as its %d component tensors", where, len(comps))
        return TensorSpec("", int(info.dtype), shape, components=comps)
    raise ModelLoadError(f"{where}: a TensorInfo without a tensor name; the SavedModel is corrupt, re-export it")


def _signatures_from_meta_graph(mg: meta_graph_pb2.MetaGraphDef, source: Path) -> dict[str, Signature]:
    sigs: dict[str, Signature] = {}
    for key in sorted(mg.signature_def):
        if key == INIT_OP_SIGNATURE_KEY:
            continue
        sd = mg.signature_def[key]
        sig = Signature(key, sd.method_name)
        for k in sorted(sd.inputs):
            sig.inputs[k] = _spec_from_info(sd.inputs[k], f"{source}: signature {key!r} input {k!r}")
        for k in sorted(sd.outputs):
            sig.outputs[k] = _spec_from_info(sd.outputs[k], f"{source}: signature {key!r} output {k!r}")
        for k, t in sd.defaults.items():
            sig.defaults[k] = tensor_proto_to_array(t)
        sigs[key] = sig
    return sigs


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
        if node.op in ("Placeholder", "PlaceholderWithDefault") and "shape" in node.attr:
            shape = _shape_of(node.attr["shape"].shape)
        elif "_output_shapes" in node.attr and port < len(node.attr["_output_shapes"].list.shape):
            shape = _shape_of(node.attr["_output_shapes"].list.shape[port])
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


# --------------------------------------------------------------------------- GraphDef files
def _load_graph_def(path: Path, graph_def: graph_pb2.GraphDef, inputs: list[str], outputs: list[str]) -> Model:
    ensure_ops(graph_def, path)
    _check_unique_names(graph_def, path)
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


# --------------------------------------------------------------------------- SavedModels
def _read_saved_model(pb_path: Path) -> saved_model_pb2.SavedModel:
    kind, proto = _read_model_file(pb_path)
    if kind != "saved_model":
        raise ModelLoadError(
            f"{pb_path}: holds a GraphDef, not a SavedModel; load the file itself as a frozen graph"
        )
    assert isinstance(proto, saved_model_pb2.SavedModel)
    return proto


def _choose_meta_graph(sm: saved_model_pb2.SavedModel, tags: list[str], pb_path: Path) -> meta_graph_pb2.MetaGraphDef:
    wanted = set(tags)
    found = [mg for mg in sm.meta_graphs if set(mg.meta_info_def.tags) == wanted]
    if len(found) > 1:
        raise ModelLoadError(f"{pb_path}: {len(found)} MetaGraphs have the tag set [{','.join(tags)}]; TensorFlow's "
                             "loaders would pick one arbitrarily — the SavedModel is corrupt, re-export it")
    if found:
        return found[0]
    present = "; ".join("[" + ",".join(mg.meta_info_def.tags) + "]" for mg in sm.meta_graphs)
    raise ModelLoadError(
        f"{pb_path}: no MetaGraph with tags [{','.join(tags)}]; the SavedModel has tag sets: {present}; "
        "pass one of them with --tags / tags="
    )


def _node_list(mg: meta_graph_pb2.MetaGraphDef, key: str) -> list[str]:
    if key in mg.collection_def and mg.collection_def[key].WhichOneof("kind") == "node_list":
        return list(mg.collection_def[key].node_list.value)
    return []


def _find_init_op(mg: meta_graph_pb2.MetaGraphDef) -> str | None:
    sd = mg.signature_def.get(INIT_OP_SIGNATURE_KEY)
    if sd is not None and sd.outputs:
        info = next(iter(sd.outputs.values()))
        return parse_input(info.name)[0]
    for key in MAIN_OP_COLLECTIONS:
        ops = _node_list(mg, key)
        if ops:
            if len(ops) > 1:
                log.warning("collection %r names %d ops; using the first, %r", key, len(ops), ops[0])
            return parse_input(ops[0])[0]
    return None


def _find_assets(mg: meta_graph_pb2.MetaGraphDef, export_dir: Path) -> list[Asset]:
    defs: list[meta_graph_pb2.AssetFileDef] = list(mg.asset_file_def)
    coll = mg.collection_def.get("saved_model_assets")
    if coll is not None and coll.WhichOneof("kind") == "any_list":
        for any_msg in coll.any_list.value:
            d = meta_graph_pb2.AssetFileDef()
            if any_msg.Unpack(d):
                defs.append(d)
    assets: dict[str, Asset] = {}
    for d in defs:
        name = d.tensor_info.name
        if name in assets:
            continue
        src = export_dir / "assets" / d.filename
        _check_asset_name(d.filename, src, export_dir)
        if not src.is_file():  # inspect shows it; transform/optimize refuse it (require_assets)
            log.info("%s: asset %r is missing (expected at %s)", export_dir, d.filename, src)
        assets[name] = Asset(d.filename, src, name)
    return list(assets.values())


def _check_asset_name(filename: str, src: Path, export_dir: Path) -> None:
    """Refuse an asset whose file name leads outside ``assets/`` (``../x``, ``/etc/x``, a symlink out)."""
    assets_dir = (export_dir / "assets").resolve()
    try:
        escapes = not filename or Path(filename).is_absolute() or ".." in Path(filename).parts \
            or assets_dir not in src.resolve().parents
    except (OSError, RuntimeError):  # a symlink loop
        escapes = True
    if escapes:
        raise ModelLoadError(
            f"{export_dir}: asset file name {filename!r} points outside {export_dir / 'assets'}; refusing to read "
            "files outside the model directory (the SavedModel is corrupt or hostile)")


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


def _check_unique_names(graph_def: graph_pb2.GraphDef, path: Path) -> None:
    """Refuse two nodes of one name (checked before function calls are inlined, which renames nodes)."""
    seen: set[str] = set()
    for n in graph_def.node:
        if n.name in seen:
            raise ModelLoadError(f"{path}: the graph is corrupt: duplicate node name {n.name!r}; re-export the model")
        seen.add(n.name)


def _check_collections(mg: meta_graph_pb2.MetaGraphDef, pb_path: Path) -> None:
    """Refuse node-list collections naming nodes the graph lacks: TensorFlow's TF1 loader fails on them."""
    names = {n.name for n in mg.graph_def.node}
    for key in sorted(mg.collection_def):
        coll = mg.collection_def[key]
        if coll.WhichOneof("kind") != "node_list":
            continue
        for value in coll.node_list.value:
            if parse_input(value)[0] not in names:
                raise ModelLoadError(f"{pb_path}: collection {key!r} names {value!r}, which is not in the graph; "
                                     "TensorFlow's loaders refuse it — the SavedModel is corrupt, re-export it")


def _check_signature_tensor(graph: Graph, pb_path: Path, sig: Signature, tensor: str) -> None:
    from graphxform.integrity import output_count

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
    """Refuse a graph with dangling inputs, cycles or corrupt constants (see :mod:`graphxform.integrity`)."""
    from graphxform.integrity import problems

    found = problems(graph)
    if found:
        raise ModelLoadError(f"{path}: the graph is corrupt: {'; '.join(found)}; re-export the model")


def _check_variables(export_dir: Path) -> Path:
    """The checkpoint prefix ``<dir>/variables/variables``; raises when its files are missing."""
    prefix = export_dir / "variables" / "variables"
    index = prefix.with_name("variables.index")
    if not index.is_file():
        raise ModelLoadError(
            f"{export_dir}: the graph has variables but {index} is missing; copy the complete SavedModel "
            "(saved_model.pb with its variables/ directory)"
        )
    shards = sorted(prefix.parent.glob("variables.data-*-of-*"))
    if not shards:
        raise ModelLoadError(
            f"{export_dir}: the graph has variables but {prefix.parent}/variables.data-00000-of-00001 is missing; "
            "copy the complete SavedModel (saved_model.pb with its variables/ directory)"
        )
    m = re.search(r"-of-(\d+)$", shards[0].name)
    total = int(m.group(1)) if m else len(shards)
    for i in range(total):
        shard = prefix.parent / f"variables.data-{i:05d}-of-{total:05d}"
        if not shard.is_file():
            raise ModelLoadError(
                f"{export_dir}: variables shard {shard} is missing; copy the complete SavedModel variables/ directory"
            )
    return prefix


def _signature_prefixes(graph_def: graph_pb2.GraphDef, mg: meta_graph_pb2.MetaGraphDef) -> dict[str, str]:
    """{call node: signature key} for call nodes that compute exactly one signature's outputs."""
    owners: dict[str, set[str]] = {}
    for key, sd in mg.signature_def.items():
        if key == INIT_OP_SIGNATURE_KEY:
            continue
        for info in sd.outputs.values():
            owners.setdefault(parse_input(info.name)[0], set()).add(key)
    calls = {n.name for n in graph_def.node if n.op in CALL_OPS}
    by_key: dict[str, list[str]] = {}
    for node, keys in owners.items():
        if node in calls and len(keys) == 1:
            by_key.setdefault(next(iter(keys)), []).append(node)
    return {nodes[0]: key for key, nodes in by_key.items() if len(nodes) == 1}


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
    sm = proto if proto is not None else _read_saved_model(pb_path)
    mg = _choose_meta_graph(sm, tags, pb_path)
    graph_def = mg.graph_def
    ensure_ops(graph_def, pb_path)
    _check_unique_names(graph_def, pb_path)
    _check_collections(mg, pb_path)
    signatures = _signatures_from_meta_graph(mg, pb_path)
    for sig in signatures.values():  # before inlining: a control name or a bad port would be resolved wrongly
        for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
            for t in spec.tensor_names():
                if parse_input(t)[2]:
                    raise ModelLoadError(f"{pb_path}: signature {sig.key!r} names {t!r}, a control dependency, not "
                                         "a tensor; the SavedModel is corrupt, re-export it")
    init_op = _find_init_op(mg)
    assets = _find_assets(mg, export_dir)
    saver_def = mg.saver_def if mg.HasField("saver_def") else None
    version = 2 if mg.HasField("object_graph_def") and len(mg.object_graph_def.nodes) > 0 else 1

    objects = None
    if version == 2:
        from graphxform.objects import bind_object_graph

        index = export_dir / "variables" / "variables.index"
        if index.is_file():
            _check_variables(export_dir)  # a missing shard is named as such, not as an unreadable object graph
        objects = bind_object_graph(mg, index.with_suffix("") if index.is_file() else None, pb_path)

    collections = {k: v.SerializeToString() for k, v in mg.collection_def.items()}
    flattened = has_function_calls(graph_def)
    if flattened:
        keep = [n for n in (init_op, saver_def.restore_op_name if saver_def else None) if n]
        try:
            flat = inline_function_calls(graph_def, prefixes=_signature_prefixes(graph_def, mg),
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

    table_inits = [parse_input(n)[0] for n in _node_list(mg, "table_initializer")]
    table_inits += [n.name for n in graph.nodes_by_op(*TABLE_INIT_OPS)]
    table_inits = [n for n in dict.fromkeys(table_inits) if n in graph]

    variables = None
    from graphxform.objects import MUTABLE_TABLE_OPS

    # Mutable tables are state too: with a saver, their contents are in the checkpoint.
    if graph.nodes_by_op(*VARIABLE_OPS) or (saver_def is not None and graph.nodes_by_op(*MUTABLE_TABLE_OPS)):
        prefix = _check_variables(export_dir)
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


__all__ = ["load", "require_assets", "VARIABLE_OPS", "TABLE_INIT_OPS", "INIT_OP_SIGNATURE_KEY"]
