"""Reading the SavedModel format: GraphDef and SavedModel files, meta graphs by tags, what a meta graph says.

* files: :func:`read_model_file` parses ``.pb``/``.pbtxt`` as a ``GraphDef`` or a ``SavedModel`` (binary or
  text, told apart by name and content), refusing files over protobuf's 2 GiB limit before reading them;
* meta graphs: the one whose tag set equals the tags asked for (:func:`choose_meta_graph`);
* what a meta graph holds: signatures (:func:`signatures_from_meta_graph`), the init/main op, assets (whose
  names may not lead outside ``assets/``), the variables checkpoint's files;
* the format's constants: file names, collection names, the TF2 init op's signature key.

Everything here reads protos and files and returns plain data (:mod:`graphxform.core.signature`).
"""
from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import message, text_format
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.saved_model import loader_impl

from graphxform.core.errors import ModelLoadError
from graphxform.core.names import parse_input
from graphxform.core.nodes import tensor_proto_to_array
from graphxform.core.opdefs import CALL_OPS
from graphxform.core.signature import Asset, Signature, TensorSpec
from graphxform.savedmodel.sniff import keras_file_message
from graphxform.savedmodel.stream import NodeListGraphDef, read_graph_def_nodes

log = logging.getLogger(__name__)

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
GRAPH_DEF_SUFFIXES = (".pb", ".pbtxt")
TEXT_SUFFIXES = (".pbtxt", ".txt", ".prototxt", ".textproto")
#: The SignatureDef key TF2 uses for its init op (not a user signature).
INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"
#: The collection TF1's ``SavedModelBuilder`` writes its ``main_op`` to (what graphxform writes too).
MAIN_OP_COLLECTION = "saved_model_main_op"
#: Collections that may name the init/main op, most specific first.
MAIN_OP_COLLECTIONS = (MAIN_OP_COLLECTION, "legacy_init_op", "main_op")
TABLE_INITIALIZER_COLLECTION = "table_initializer"
ASSETS_COLLECTION = "saved_model_assets"
#: Collections that describe variables; meaningless once a model is frozen.
VARIABLE_COLLECTIONS = frozenset({"variables", "trainable_variables", "global_step", "local_variables",
                                  "model_variables", "moving_average_variables", "savers"})
#: Protobuf cannot parse (nor serialize) a message of 2 GiB or more: such a file is refused by its size.
MAX_PROTO_BYTES = 2 * 1024**3 - 1
HINT = "pass a SavedModel directory (the one holding saved_model.pb) or a frozen GraphDef .pb/.pbtxt"


# --------------------------------------------------------------------------- files
def is_text(path: Path, data: bytes) -> bool:
    if path.suffix.lower() in TEXT_SUFFIXES:
        return True
    if path.suffix.lower() == ".pb":
        return False
    return _looks_like_text(data) and bool(
        re.match(rb"\s*(#|node\s*\{|saved_model_schema_version|meta_graphs|versions|library)", data[:4096]))


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


def read_model_file(
    path: Path,
) -> tuple[str, graph_pb2.GraphDef | NodeListGraphDef | saved_model_pb2.SavedModel]:
    """Parse ``path`` as a ``GraphDef`` or a ``SavedModel`` proto (binary or text).

    A binary ``GraphDef`` is read a node at a time: a :class:`~graphxform.savedmodel.stream.NodeListGraphDef`
    whose nodes are messages of their own, freed one by one when the rules drop them."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a named pipe" if stat.S_ISFIFO(st.st_mode) else \
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file"
            raise ModelLoadError(f"{path}: is {kind}, not a regular file; refusing to read it; {HINT}")
        size = st.st_size
        if size > MAX_PROTO_BYTES:
            raise ModelLoadError(
                f"{path}: the file is {size / 1024**3:.2f} GiB, over protobuf's 2 GiB limit for one message; it "
                "cannot be a valid GraphDef or SavedModel (keep large weights in variables/, do not freeze them)")
        streamed = _read_nodes(path)
        if streamed is not None:
            return "graph_def", streamed
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    if not data:
        raise ModelLoadError(f"{path}: the file is empty; {HINT}")
    keras = keras_file_message(path, data, HINT)
    if keras is not None:
        raise ModelLoadError(keras)
    saved_model_first = path.name in SAVED_MODEL_FILES
    text = is_text(path, data)
    errors: list[str] = []
    found = _parse_model(data, text, saved_model_first, errors)
    if found is None and not text and _looks_like_text(data):
        # A text proto in a binary-named file: GTT's LoadTextOrBinaryGraphFile tries binary, then text.
        found = _parse_model(data, True, saved_model_first, [])
    if found is not None:
        return found
    what = "text" if text else "binary"
    # The first kind tried is the likelier one: its error is the one worth showing.
    expected = "SavedModel" if saved_model_first else "GraphDef or SavedModel"
    raise ModelLoadError(f"{path}: not a {what} {expected}: {errors[0]}; {HINT}")


def _read_nodes(path: Path) -> NodeListGraphDef | None:
    """A binary GraphDef file read a node at a time (:mod:`graphxform.savedmodel.stream`), or ``None`` when the file
    may be something else (text, a SavedModel, a Keras file, corrupt: parsed whole, which tells which)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head or path.name in SAVED_MODEL_FILES or keras_file_message(path, head, HINT) is not None \
            or head.startswith(b"PK") or is_text(path, head):
        return None
    gd = read_graph_def_nodes(path)
    return gd if gd is not None and _graph_def_problem(gd) is None else None


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse_model(data: bytes, text: bool, saved_model_first: bool,
                 errors: list[str]) -> tuple[str, graph_pb2.GraphDef | saved_model_pb2.SavedModel] | None:
    """``data`` parsed as a ``GraphDef`` or a ``SavedModel`` (text or binary), or ``None`` with ``errors`` filled."""
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
    return None


def read_graph_def(path: Path) -> graph_pb2.GraphDef:
    """The ``GraphDef`` of a file graphxform wrote (text when it ends in ``.pbtxt``)."""
    gd = graph_pb2.GraphDef()
    try:
        if path.suffix == ".pbtxt":
            text_format.Parse(path.read_text(), gd)
        else:
            gd.ParseFromString(path.read_bytes())
    except (OSError, text_format.ParseError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable GraphDef ({exc})") from exc
    return gd


def is_saved_model_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_dir() and any((p / f).is_file() for f in SAVED_MODEL_FILES)


def parse_saved_model(path: str | os.PathLike[str]) -> saved_model_pb2.SavedModel:
    """The ``SavedModel`` proto of directory ``path``, read by TensorFlow's own parser."""
    try:
        return loader_impl.parse_saved_model(str(path))
    except OSError as exc:
        raise ModelLoadError(f"{path}: not a SavedModel directory ({exc})") from exc


def read_saved_model_proto(path: str | os.PathLike[str]) -> saved_model_pb2.SavedModel | None:
    """The ``SavedModel`` proto of directory ``path`` (``saved_model.pb`` or ``.pbtxt``), or ``None``."""
    p = Path(path)
    if not p.is_dir():
        return None
    sm = saved_model_pb2.SavedModel()
    try:
        if (p / "saved_model.pb").is_file():
            sm.ParseFromString((p / "saved_model.pb").read_bytes())
        elif (p / "saved_model.pbtxt").is_file():
            text_format.Parse((p / "saved_model.pbtxt").read_text(), sm)
        else:
            return None
    except Exception as exc:  # noqa: BLE001 - a corrupt file is reported, not fatal to inspect
        log.warning("%s: could not parse the SavedModel proto: %s", p, exc)
        return None
    return sm


def saved_model_tags(path: str | os.PathLike[str]) -> list[str]:
    """Tags of the first MetaGraph of a SavedModel directory ("serve" when it has that one)."""
    sets = [list(mg.meta_info_def.tags) for mg in parse_saved_model(path).meta_graphs]
    if ["serve"] in sets:
        return ["serve"]
    if not sets:
        raise ModelLoadError(f"{path}: the SavedModel holds no MetaGraph")
    return sets[0]


# --------------------------------------------------------------------------- meta graphs
def find_meta_graph(sm: saved_model_pb2.SavedModel, tags: Iterable[str]) -> meta_graph_pb2.MetaGraphDef | None:
    """The meta graph whose tag set is ``tags``, or ``None``."""
    wanted = set(tags)
    return next((mg for mg in sm.meta_graphs if set(mg.meta_info_def.tags) == wanted), None)


def choose_meta_graph(sm: saved_model_pb2.SavedModel, tags: list[str], pb_path: str | os.PathLike[str]
                      ) -> meta_graph_pb2.MetaGraphDef:
    """The meta graph whose tag set is ``tags``; :class:`ModelLoadError` naming the tag sets there are if none."""
    wanted = set(tags)
    found = [m for m in sm.meta_graphs if set(m.meta_info_def.tags) == wanted]
    if len(found) > 1:
        raise ModelLoadError(f"{pb_path}: {len(found)} MetaGraphs have the tag set [{','.join(tags)}]; TensorFlow's "
                             "loaders would pick one arbitrarily — the SavedModel is corrupt, re-export it")
    if found:
        return found[0]
    present = "; ".join("[" + ",".join(m.meta_info_def.tags) + "]" for m in sm.meta_graphs)
    raise ModelLoadError(
        f"{pb_path}: no MetaGraph with tags [{','.join(tags)}]; the SavedModel has tag sets: {present}; "
        "pass one of them with --tags / tags="
    )


def read_saved_model(pb_path: Path) -> saved_model_pb2.SavedModel:
    """The ``SavedModel`` in ``pb_path`` (binary or text); a file holding a ``GraphDef`` is refused."""
    kind, proto = read_model_file(pb_path)
    if kind != "saved_model":
        raise ModelLoadError(
            f"{pb_path}: holds a GraphDef, not a SavedModel; load the file itself as a frozen graph"
        )
    assert isinstance(proto, saved_model_pb2.SavedModel)
    return proto


# --------------------------------------------------------------------------- meta graph contents
def node_list(mg: meta_graph_pb2.MetaGraphDef, key: str) -> list[str]:
    """The node names of collection ``key`` (empty when it is missing or holds something else)."""
    if key in mg.collection_def and mg.collection_def[key].WhichOneof("kind") == "node_list":
        return list(mg.collection_def[key].node_list.value)
    return []


def find_init_op(mg: meta_graph_pb2.MetaGraphDef) -> str | None:
    """The op the loaders run after restoring: TF2's init-op signature, else the main-op collections."""
    sd = mg.signature_def.get(INIT_OP_SIGNATURE_KEY)
    if sd is not None and sd.outputs:
        info = next(iter(sd.outputs.values()))
        return parse_input(info.name)[0]
    for key in MAIN_OP_COLLECTIONS:
        ops = node_list(mg, key)
        if ops:
            if len(ops) > 1:
                log.warning("collection %r names %d ops; using the first, %r", key, len(ops), ops[0])
            return parse_input(ops[0])[0]
    return None


def find_assets(mg: meta_graph_pb2.MetaGraphDef, export_dir: Path) -> list[Asset]:
    """The asset files of the meta graph (``asset_file_def`` and the TF1 assets collection), under ``assets/``."""
    defs: list[meta_graph_pb2.AssetFileDef] = list(mg.asset_file_def)
    coll = mg.collection_def.get(ASSETS_COLLECTION)
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
        check_asset_name(d.filename, src, export_dir)
        if not src.is_file():  # inspect shows it; transform/optimize refuse it (model.loader.require_assets)
            log.info("%s: asset %r is missing (expected at %s)", export_dir, d.filename, src)
        assets[name] = Asset(d.filename, src, name)
    return list(assets.values())


def check_unique_names(graph_def: graph_pb2.GraphDef, path: Path) -> None:
    """Refuse two nodes of one name (checked before function calls are inlined, which renames nodes)."""
    seen: set[str] = set()
    for n in graph_def.node:
        if n.name in seen:
            raise ModelLoadError(f"{path}: the graph is corrupt: duplicate node name {n.name!r}; re-export the model")
        seen.add(n.name)


def check_collections(mg: meta_graph_pb2.MetaGraphDef, pb_path: Path) -> None:
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


def check_asset_name(filename: str, src: Path, export_dir: Path) -> None:
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


def shape_of(tensor_shape: object) -> list[int | None] | None:
    if getattr(tensor_shape, "unknown_rank", False):
        return None
    return [None if d.size < 0 else int(d.size) for d in tensor_shape.dim]  # type: ignore[attr-defined]


def spec_from_info(info: meta_graph_pb2.TensorInfo, where: str) -> TensorSpec:
    enc = info.WhichOneof("encoding")
    shape = shape_of(info.tensor_shape)
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


def signatures_from_meta_graph(mg: meta_graph_pb2.MetaGraphDef, source: Path) -> dict[str, Signature]:
    sigs: dict[str, Signature] = {}
    for key in sorted(mg.signature_def):
        if key == INIT_OP_SIGNATURE_KEY:
            continue
        sd = mg.signature_def[key]
        sig = Signature(key, sd.method_name)
        for k in sorted(sd.inputs):
            sig.inputs[k] = spec_from_info(sd.inputs[k], f"{source}: signature {key!r} input {k!r}")
        for k in sorted(sd.outputs):
            sig.outputs[k] = spec_from_info(sd.outputs[k], f"{source}: signature {key!r} output {k!r}")
        for k, t in sd.defaults.items():
            sig.defaults[k] = tensor_proto_to_array(t)
        sigs[key] = sig
    return sigs


def check_variables(export_dir: Path) -> Path:
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


def signature_prefixes(graph_def: graph_pb2.GraphDef, mg: meta_graph_pb2.MetaGraphDef) -> dict[str, str]:
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


__all__ = [
    "ASSETS_COLLECTION", "GRAPH_DEF_SUFFIXES", "HINT", "INIT_OP_SIGNATURE_KEY", "MAIN_OP_COLLECTION",
    "MAIN_OP_COLLECTIONS", "MAX_PROTO_BYTES", "SAVED_MODEL_FILES", "TABLE_INITIALIZER_COLLECTION", "TEXT_SUFFIXES",
    "VARIABLE_COLLECTIONS", "check_asset_name", "check_variables", "choose_meta_graph", "find_assets",
    "check_collections", "check_unique_names", "find_init_op", "find_meta_graph", "is_saved_model_dir", "is_text", "node_list", "parse_saved_model",
    "keras_file_message", "read_graph_def", "read_model_file", "read_saved_model", "read_saved_model_proto",
    "saved_model_tags",
    "shape_of", "signature_prefixes", "signatures_from_meta_graph", "spec_from_info",
]
