"""The exporter: :class:`~graphxform.model.Model` → servable SavedModel directory, or a frozen ``.pb``/``.pbtxt``.

The SavedModel proto is written here, field by field (one ``MetaGraphDef``):

- ``graph_def``: the model's graph without ``_output_shapes`` hints, plus,
  when needed, one ``NoOp`` that groups the init op and the table
  initializers; streamed to the file a node at a time (:class:`GraphWriter`),
  so writing a model costs no second copy of its weights;
- ``meta_info_def``: tags (``model.tags`` or ``["serve"]``), the TensorFlow
  version, and the stripped op list of every op the graph uses;
- ``signature_def``: every signature with its method name and input/output
  ``TensorInfo`` (name, dtype, shape; ``coo_sparse`` for sparse tensors),
  pointing at the tensors that survived the transforms;
- the init op as the ``saved_model_main_op`` collection, as TF1's
  ``SavedModelBuilder`` writes its ``main_op``: TF Serving's C++ loader, the
  TF1 loader and ``tf.saved_model.load`` all run it after restoring, and no
  ``__saved_model_init_op`` signature shows up beside the model's own;
- ``asset_file_def`` for every asset path tensor (a ``Placeholder`` path
  becomes a ``Const`` holding the file name, as TF1 writes it); the files
  are copied to ``assets/`` (``assets.extra/`` of the source is copied too);
- ``saver_def`` and ``variables/`` copied from the checkpoint when the model
  is not frozen; a frozen model gets an empty ``variables/`` directory and no
  saver, which ``tf.saved_model.load``, the TF1 loader and TF Serving accept.

The result is a TF1-style (v1) SavedModel, also for a TF2-origin model:
``tf.saved_model.load`` loads it through its v1 path and exposes
``.signatures[key]``.

Writing is atomic: everything goes to a temporary directory beside ``out``
(same filesystem), is fsynced, and is renamed into place at the end. An
existing ``out`` is refused unless ``force`` (then it is replaced: old
renamed aside, new renamed in, old deleted). On any error the temporary
directory is removed. The model's source is never written to.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tensorflow.core.framework import (
    function_pb2,
    graph_pb2,
    node_def_pb2,
    op_def_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2, saver_pb2

from graphxform.errors import ExportError, GraphxformError
from graphxform.graph import parse_input
from graphxform.testhooks import pause_point

if TYPE_CHECKING:  # pragma: no cover
    from graphxform.model import Model, Signature, TensorSpec

log = logging.getLogger(__name__)

INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"
MAIN_OP_COLLECTION = "saved_model_main_op"
TABLE_INITIALIZER_COLLECTION = "table_initializer"
INIT_NOOP_NAME = "graphxform_init_op"
GRAPH_DEF_SUFFIXES = (".pb", ".pbtxt")
#: Protobuf cannot serialize (nor parse) a message of 2 GiB or more.
MAX_PROTO_BYTES = 2 * 1024**3 - 1

#: coo_sparse field of TensorInfo for each name a sparse TensorSpec may use for its components.
_COO_FIELDS = {
    "values": "values_tensor_name",
    "values_tensor_name": "values_tensor_name",
    "indices": "indices_tensor_name",
    "indices_tensor_name": "indices_tensor_name",
    "dense_shape": "dense_shape_tensor_name",
    "dense_shape_tensor_name": "dense_shape_tensor_name",
    "shape": "dense_shape_tensor_name",
}


# --------------------------------------------------------------------------- public API
def export(model: Model, out: str | os.PathLike[str], *, force: bool = False,
           history: Sequence[Any] | None = None, allow_no_signatures: bool = True) -> Path:
    """Write ``model`` to ``out`` and return the path written.

    ``out`` ending in ``.pb`` / ``.pbtxt`` gives a frozen ``GraphDef`` (binary
    or text) with a sidecar ``<out>.signatures.json``; anything else gives a
    SavedModel directory. An existing ``out`` is refused (:class:`ExportError`)
    unless ``force``. ``out`` may not be the model's source nor lie inside it.

    Before anything is written every node of the graph and of its functions is
    checked against its ``OpDef`` (:mod:`graphxform.validate`); a node
    TensorFlow's C++ loader would refuse raises :class:`ExportError` naming it
    and, from ``history`` (the ``applied`` rewrites of a
    :class:`~graphxform.runner.RunReport`), the rule that made it.
    ``allow_no_signatures=False`` refuses a SavedModel without signatures (a
    servable nothing can call).
    """
    out_path = Path(out).expanduser()
    check_target(model, out_path, force)
    if not allow_no_signatures and out_path.suffix not in GRAPH_DEF_SUFFIXES and not user_signatures(model):
        raise ExportError(no_signature_message(model, out_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix in GRAPH_DEF_SUFFIXES:
        return _export_graph_def_file(model, out_path, history)
    return _export_saved_model_dir(model, out_path, history)


def user_signatures(model: Model) -> list[str]:
    """The model's signature keys, without the init op's."""
    return [k for k in model.signatures if k != INIT_OP_SIGNATURE_KEY]


def no_signature_message(model: Model, out: Path) -> str:
    """Why a SavedModel without signatures is refused, with the candidate inputs/outputs ``inspect`` finds."""
    from graphxform.inspect import candidate_inputs, candidate_outputs

    ins = [c["name"] for c in candidate_inputs(model.graph)][:6]
    outs = [c["name"] for c in candidate_outputs(model.graph)][:6]
    hint = (f"; candidate inputs: {', '.join(ins) or 'none found'}; candidate outputs: "
            f"{', '.join(outs) or 'none found'}")
    return (f"{out}: the SavedModel would have no signatures, so no server could call it (the input "
            f"{model.source or 'model'} names no inputs/outputs); name them with --input-names/--output-names "
            f"(graphxform.load(path, inputs=..., outputs=...)), or pass --allow-no-signatures to write it anyway"
            + hint)


def check_nodes(writer: GraphWriter, where: Path, history: Sequence[Any] | None = None) -> None:
    """Raise :class:`ExportError` when a node to be written breaks its ``OpDef`` (see :mod:`graphxform.validate`)."""
    from graphxform.validate import describe, validate_nodes

    violations = validate_nodes(writer.nodes.values(), writer.library)
    if violations:
        raise ExportError(
            f"{where}: not written: {len(violations)} node{'s' if len(violations) > 1 else ''} TensorFlow's C++ "
            f"loader (TF Serving's) would refuse: {describe(violations, history)}")


def build_saved_model(model: Model) -> saved_model_pb2.SavedModel:
    """The ``SavedModel`` proto for ``model``, with asset file names as they will be under ``assets/``."""
    return _SavedModelBuilder(model).build()[0]


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes of every regular file under ``path`` (or of the file itself)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


# --------------------------------------------------------------------------- checks
def check_target(model: Model, out: Path, force: bool) -> None:
    """Raise :class:`ExportError` when ``out`` may not be written: it exists (without ``force``), or it is the
    model's source, lies inside it, or (with ``force``) contains it."""
    out_abs = Path(os.path.abspath(out))
    clean_stale(out_abs)
    src = Path(os.path.abspath(model.source)) if model.source else None
    if src is not None:
        src_real, out_real = src.resolve(), out_abs.resolve()
        if out_real == src_real:
            raise ExportError(f"{out}: is the model's input; write the output to another path (the input is never "
                              "modified)")
        if src_real in out_real.parents:
            raise ExportError(f"{out}: lies inside the input model {model.source}; choose a path outside it")
        if force and out_real in src_real.parents:
            raise ExportError(f"{out}: contains the input model {model.source}; replacing it would delete the input")
    if out_abs.exists() or out_abs.is_symlink():
        if not force:
            raise ExportError(f"{out}: already exists; pass --force (force=True) to replace it")
        if out.suffix in GRAPH_DEF_SUFFIXES and out_abs.is_dir():
            raise ExportError(f"{out}: is a directory but the name asks for a GraphDef file; remove it or rename")


# --------------------------------------------------------------------------- SavedModel
class _SavedModelBuilder:
    """Builds the SavedModel proto and the list of files to copy (assets)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.graph = GraphWriter(model.graph)
        self.node_names = self.graph.nodes

    # -- helpers
    def _node_outputs(self, name: str) -> int | None:
        from graphxform.opdefs import output_dtypes

        node = self.node_names.get(name)
        if node is None:
            return None
        dtypes = output_dtypes(node)
        return len(dtypes) if dtypes is not None else None

    def _check_tensor(self, tensor: str, where: str) -> str:
        node, port, control = parse_input(tensor)
        if control:
            raise ExportError(f"{where}: {tensor!r} is a control dependency, not a tensor")
        if node not in self.node_names:
            raise ExportError(
                f"{where}: tensor {tensor!r} names no node in the graph (a transform removed it without "
                "moving the signature); run with --debug and check the rule that removed it"
            )
        n_out = self._node_outputs(node)
        if n_out is not None and port >= n_out:
            raise ExportError(f"{where}: tensor {tensor!r} — node {node!r} ({self.node_names[node].op}) has "
                              f"only {n_out} outputs")
        return f"{node}:{port}"

    def _dtype_of(self, tensor: str) -> int:
        return self.model.graph.output_dtype(tensor) or types_pb2.DT_INVALID

    def tensor_info(self, spec: TensorSpec, where: str) -> meta_graph_pb2.TensorInfo:
        info = meta_graph_pb2.TensorInfo()
        if spec.components:
            for key, tensor in spec.components.items():
                fld = _COO_FIELDS.get(key)
                if fld is None:
                    raise ExportError(
                        f"{where}: component {key!r} is not one of values/indices/dense_shape — composite (e.g. "
                        "ragged) signature tensors cannot be written as a v1 SavedModel; return dense or sparse "
                        "tensors from the signature")
                setattr(info.coo_sparse, fld, self._check_tensor(tensor, where))
            values = spec.components.get("values") or spec.components.get("values_tensor_name")
            info.dtype = spec.dtype or (self._dtype_of(values) if values else types_pb2.DT_INVALID)
        else:
            if not spec.name:
                raise ExportError(f"{where}: the signature tensor has no name")
            info.name = self._check_tensor(spec.name, where)
            info.dtype = spec.dtype or self._dtype_of(info.name)
        info.tensor_shape.CopyFrom(_shape_proto(spec.shape))
        return info

    def signature_def(self, sig: Signature) -> meta_graph_pb2.SignatureDef:
        sd = meta_graph_pb2.SignatureDef(method_name=sig.method_name or "")
        for key, spec in sig.inputs.items():
            sd.inputs[key].CopyFrom(self.tensor_info(spec, f"signature {sig.key!r} input {key!r}"))
        for key, spec in sig.outputs.items():
            sd.outputs[key].CopyFrom(self.tensor_info(spec, f"signature {sig.key!r} output {key!r}"))
        for key, value in (sig.defaults or {}).items():
            sd.defaults[key].CopyFrom(_tensor_proto(value))
        return sd

    def init_op(self) -> str | None:
        """Name of the op the loaders run after restoring; adds a grouping NoOp to ``graph_def`` if needed."""
        model = self.model
        deps: list[str] = []
        wanted = ([model.init_op] if model.init_op else []) + list(model.table_initializers)
        for t in wanted:
            name = parse_input(t)[0]
            if name not in self.node_names:
                log.warning("init op / table initializer %r is not in the graph any more; not run at load", name)
                continue
            if name not in deps:
                deps.append(name)
        if not deps:
            return None
        # Drop initializers already run by another dep (e.g. table inits grouped by the main op).
        covered = model.graph.ancestors(deps[:1]) if len(deps) > 1 else set()
        deps = deps[:1] + [d for d in deps[1:] if d not in covered]
        if len(deps) == 1 and self.node_names[deps[0]].op == "NoOp":
            return deps[0]
        name = INIT_NOOP_NAME
        i = 0
        while name in self.node_names:
            i += 1
            name = f"{INIT_NOOP_NAME}_{i}"
        node = node_def_pb2.NodeDef(name=name, op="NoOp")
        node.input.extend("^" + d for d in deps)
        self.node_names[name] = node
        return name

    def assets(self) -> list[tuple[str, Path, str]]:
        """``(filename under assets/, source file, tensor name)`` for assets whose tensor is still in the graph."""
        out: list[tuple[str, Path, str]] = []
        used: dict[str, Path] = {}
        for a in self.model.assets:
            node = parse_input(a.tensor_name)[0]
            if node not in self.node_names:
                log.info("asset %s dropped: its path tensor %r is no longer in the graph", a.filename, a.tensor_name)
                continue
            src = Path(a.source_path)
            if not src.is_file():
                raise ExportError(f"asset {a.filename!r}: source file {src} does not exist; the model's assets "
                                  "must stay readable until it is exported")
            fname = Path(a.filename).name or src.name
            if fname in used and used[fname].resolve() != src.resolve():
                stem, suffix = os.path.splitext(fname)
                k = 1
                while f"{stem}_{k}{suffix}" in used:
                    k += 1
                fname = f"{stem}_{k}{suffix}"
            used[fname] = src
            tensor = self._check_tensor(a.tensor_name, f"asset {a.filename!r}")
            self._asset_path_as_const(tensor, fname)
            out.append((fname, src, tensor))
        return out

    def _asset_path_as_const(self, tensor: str, fname: str) -> None:
        """Make a ``Placeholder`` asset path (TF2 style) a ``Const`` holding the file name (TF1 style).

        Loaders feed the real path either way, but ``tf.saved_model.load`` turns
        every SignatureDef of a v1 SavedModel into a function — the init op's
        too — and refuses one that depends on a placeholder it does not feed.
        """
        node = self.node_names[parse_input(tensor)[0]]
        if node.op != "Placeholder" or parse_input(tensor)[1] != 0:
            return
        import tensorflow as tf

        const = node_def_pb2.NodeDef(name=node.name, op="Const", device=node.device)
        const.attr["dtype"].type = types_pb2.DT_STRING
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(fname.encode(), dtype=tf.string))
        self.node_names[node.name] = const  # (the model's own node is left as it is)

    def saver_def(self) -> saver_pb2.SaverDef | None:
        store = self.model.variables
        if store is None:
            return None
        if not store.saver_def:
            raise ExportError(
                f"{self.model.source}: the model keeps its variables but has no SaverDef (TF2 object-based "
                "checkpoint); freeze it first (model.freeze(), or use `graphxform optimize`)"
            )
        sd = saver_pb2.SaverDef()
        sd.ParseFromString(store.saver_def)
        for what, t in (("filename tensor", sd.filename_tensor_name), ("restore op", sd.restore_op_name),
                        ("save tensor", sd.save_tensor_name)):
            if t and parse_input(t)[0] not in self.node_names:
                raise ExportError(
                    f"{self.model.source}: the saver's {what} {t!r} was removed from the graph, so the variables "
                    "could not be restored; freeze the model before transforming, or keep the save/ nodes"
                )
        return sd

    def build(self, *, with_graph: bool = True) -> tuple[saved_model_pb2.SavedModel, list[tuple[str, Path, str]]]:
        """The SavedModel proto and the assets to copy; ``with_graph=False`` leaves ``graph_def`` empty (it
        is then streamed by :func:`saved_model_chunks`)."""
        model = self.model
        sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
        mg = sm.meta_graphs.add()
        for key, sig in model.signatures.items():
            if key == INIT_OP_SIGNATURE_KEY:
                continue
            mg.signature_def[key].CopyFrom(self.signature_def(sig))
        init = self.init_op()
        assets = self.assets()
        saver = self.saver_def()

        if with_graph:
            mg.graph_def.CopyFrom(self.graph.to_graph_def())
        _fill_meta_info(mg.meta_info_def, self.graph.op_names(), model.tags or ["serve"])
        if init:
            # As TF1's SavedModelBuilder writes its main_op: a collection, which TF Serving's C++ loader, the TF1
            # loader and tf.saved_model.load all run (loader_impl.get_init_op, loader.cc GetInitOp). Not the
            # __saved_model_init_op signature as well: tf.saved_model.load would list it among .signatures.
            mg.collection_def[MAIN_OP_COLLECTION].node_list.value.append(init)
        tables = [parse_input(t)[0] for t in model.table_initializers]
        tables = [t for t in dict.fromkeys(tables) if t in self.node_names]
        if tables:
            mg.collection_def[TABLE_INITIALIZER_COLLECTION].node_list.value.extend(tables)
        for fname, _, tensor in assets:
            afd = mg.asset_file_def.add(filename=fname)
            afd.tensor_info.name = tensor
            afd.tensor_info.dtype = types_pb2.DT_STRING
            afd.tensor_info.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto())
        if saver is not None:
            mg.saver_def.CopyFrom(saver)
        return sm, assets


def _fill_meta_info(info: meta_graph_pb2.MetaGraphDef.MetaInfoDef, ops: set[str], tags: list[str]) -> None:
    import tensorflow as tf

    info.tags.extend(tags)
    info.tensorflow_version = tf.version.VERSION
    info.tensorflow_git_version = tf.version.GIT_VERSION
    info.stripped_op_list.CopyFrom(_op_list(ops))
    # Nodes may lack attrs that equal their op's default (the input was written stripped); the loaders
    # fill those back from the registered op (and the stripped op list) when this flag is set.
    info.stripped_default_attrs = True


def stripped_op_list(gd: graph_pb2.GraphDef) -> op_def_pb2.OpList:
    """The registered ``OpDef`` of every op used in ``gd`` and its function library (functions excluded)."""
    return _op_list(_ops_used(gd.node, gd.library))


def _ops_used(nodes: Iterable[node_def_pb2.NodeDef], library: function_pb2.FunctionDefLibrary) -> set[str]:
    ops = {n.op for n in nodes}
    for f in library.function:
        ops.update(n.op for n in f.node_def)
    return ops - {f.signature.name for f in library.function}


def _op_list(ops: set[str]) -> op_def_pb2.OpList:
    from graphxform.opdefs import op_def

    out = op_def_pb2.OpList()
    for name in sorted(ops):
        d = op_def(name)
        if d is not None:
            out.op.add().CopyFrom(d)
    return out


# --------------------------------------------------------------------------- streaming serialization
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field (a message or bytes)."""
    return _varint(number << 3 | 2) + _varint(length)


def _output_shapes_size(node: node_def_pb2.NodeDef) -> int:
    """Bytes the ``_output_shapes`` entry takes in ``node``'s serialization (0 without one), computed, not copied."""
    if "_output_shapes" not in node.attr:
        return 0
    key = b"_output_shapes"
    value = node.attr["_output_shapes"].ByteSize()
    entry = len(_field(1, len(key))) + len(key) + len(_field(2, value)) + value  # map entry {1: key, 2: value}
    return len(_field(5, entry)) + entry  # NodeDef.attr is field 5


def _without_output_shapes(node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef:
    if "_output_shapes" not in node.attr:
        return node
    clean = node_def_pb2.NodeDef()
    clean.CopyFrom(node)
    del clean.attr["_output_shapes"]
    return clean


class GraphWriter:
    """The model's ``GraphDef`` as written, serialized node by node: never a second copy of the graph.

    ``nodes`` starts as the graph's own nodes (shared, not copied; the
    exporter may add or replace entries, never edit a node). ``_output_shapes``
    hints are dropped: they are optional, and a rewrite that keeps a stale one
    makes TensorFlow refuse the whole graph at import ("``_output_shapes``
    attribute inconsistent with the GraphDef"); TF2's own writer leaves them
    out too. The bytes are those of ``to_graph_def().SerializeToString(
    deterministic=True)``.
    """

    def __init__(self, graph: Any) -> None:
        self.nodes: dict[str, node_def_pb2.NodeDef] = {n.name: n for n in graph}
        self.versions = graph.versions
        self.library = function_pb2.FunctionDefLibrary()
        self.library.CopyFrom(graph.library)
        for f in self.library.function:
            for node in f.node_def:
                if "_output_shapes" in node.attr:
                    del node.attr["_output_shapes"]

    def op_names(self) -> set[str]:
        return _ops_used(self.nodes.values(), self.library)

    def ByteSize(self) -> int:  # noqa: N802 - what check_proto_size asks of a message
        size = 0
        for node in self.nodes.values():
            n = node.ByteSize() - _output_shapes_size(node)
            size += len(_field(1, n)) + n
        for message, number in self._messages():
            size += len(_field(number, message.ByteSize())) + message.ByteSize()
        return size

    def _messages(self) -> list[tuple[Any, int]]:
        """The GraphDef's other fields as written: ``library`` (2) when it holds anything, ``versions`` (4)."""
        return [(self.library, 2)] * bool(self.library.ByteSize()) + [(self.versions, 4)]

    def chunks(self) -> Iterator[bytes]:
        """The serialized ``GraphDef``, a node at a time (fields in number order, as protobuf writes them)."""
        for node in self.nodes.values():
            data = _without_output_shapes(node).SerializeToString(deterministic=True)
            yield _field(1, len(data)) + data
        for message, number in self._messages():
            data = message.SerializeToString(deterministic=True)
            yield _field(number, len(data)) + data

    def to_graph_def(self) -> graph_pb2.GraphDef:
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(self.versions)
        if self.library.ByteSize():
            gd.library.CopyFrom(self.library)
        for node in self.nodes.values():
            gd.node.add().CopyFrom(_without_output_shapes(node))
        return gd


def saved_model_chunks(sm: saved_model_pb2.SavedModel, graph: GraphWriter) -> Iterator[bytes]:
    """The bytes of ``sm`` (one meta graph, ``graph_def`` empty) with ``graph`` as its ``graph_def``.

    Equal to the deterministic serialization of the full proto, without ever
    holding the graph's bytes, or a copy of its nodes, all at once.
    """
    (mg,) = sm.meta_graphs
    rest = meta_graph_pb2.MetaGraphDef()
    rest.CopyFrom(mg)
    rest.ClearField("meta_info_def")
    info = mg.meta_info_def.SerializeToString(deterministic=True)
    tail = rest.SerializeToString(deterministic=True)
    graph_size = graph.ByteSize()
    head_info = (_field(1, len(info)) + info) if mg.HasField("meta_info_def") else b""
    graph_head = _field(2, graph_size)
    mg_size = len(head_info) + len(graph_head) + graph_size + len(tail)
    top = saved_model_pb2.SavedModel(saved_model_schema_version=sm.saved_model_schema_version)
    yield top.SerializeToString(deterministic=True) + _field(2, mg_size) + head_info + graph_head
    yield from graph.chunks()
    yield tail


def _shape_proto(shape: list[int | None] | None) -> tensor_shape_pb2.TensorShapeProto:
    proto = tensor_shape_pb2.TensorShapeProto()
    if shape is None:
        proto.unknown_rank = True
        return proto
    for d in shape:
        proto.dim.add(size=-1 if d is None or d < 0 else int(d))
    return proto


def _tensor_proto(value: Any) -> Any:
    from tensorflow.core.framework import tensor_pb2

    if isinstance(value, tensor_pb2.TensorProto):
        return value
    import tensorflow as tf

    return tf.make_tensor_proto(value)


# --------------------------------------------------------------------------- writing
def _proto_size(message: Any) -> int:
    return int(message.ByteSize())


def check_proto_size(message: Any, out: Path, what: str) -> None:
    """Raise :class:`ExportError` when ``message`` is too big for protobuf (2 GiB), before serializing it."""
    size = _proto_size(message)
    if size > MAX_PROTO_BYTES:
        raise ExportError(
            f"{out}: the {what} would be {size / 1024**3:.2f} GiB, over protobuf's 2 GiB limit; nothing was written "
            "(quantize the weights, or keep them as variables: transform with --no-freeze)")


def _tmp_prefix(out: Path, kind: str) -> str:
    """``.<name>.<kind>-<pid>-``: temporary names beside ``out`` that say whose they are."""
    return f".{out.name}.{kind}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove what a killed export to ``out`` left beside it; returns what was cleaned.

    ``.<name>.tmp-<pid>-*`` (a half-written output) of a process that no
    longer runs is deleted. ``.<name>.old-<pid>-*`` (the previous output,
    moved aside by ``force``) is put back when ``out`` is missing — the
    process died between the two renames — and deleted otherwise.
    """
    import re

    cleaned: list[Path] = []
    parent = out.parent
    if not parent.is_dir():
        return cleaned
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(\d+)-[^/]*$")
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return cleaned
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or _pid_alive(int(m.group(2))):
            continue
        try:
            if m.group(1) == "old" and not (out.exists() or out.is_symlink()):
                os.rename(entry, out)
                log.warning("%s: restored the previous output that an interrupted export had moved aside", out)
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            cleaned.append(entry)
            log.info("removed %s, left by an interrupted export (process %s)", entry, m.group(2))
        except OSError as exc:  # pragma: no cover - best effort
            log.warning("could not clean %s: %s", entry, exc)
    return cleaned


def _write_error(out: Path, exc: OSError) -> ExportError:
    """The one-line error for a failed write: what failed, and that nothing was left behind."""
    what = (exc.strerror or str(exc)).rstrip(".")
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return ExportError(f"{out}: could not be written: {what}{where}; nothing was written (the temporary files "
                       "were removed)")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask (read without changing it where the kernel tells it)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_bytes(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or chunks of them) to ``path`` and fsync it."""
    with open(path, "wb") as f:
        if isinstance(data, (bytes, bytearray)):
            f.write(data)
        else:
            f.writelines(data)
        f.flush()
        os.fsync(f.fileno())


def _copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    _fsync_file(dst)


def _walk_dirs(root: Path) -> Iterator[Path]:
    yield root
    for p in sorted(root.rglob("*")):
        if p.is_dir():
            yield p


def _checkpoint_files(prefix: Path) -> list[Path]:
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise ExportError(f"variables checkpoint {prefix}: {index.name} is missing; the input model is incomplete")
    data = sorted(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    return [index, *data]


def _write_saved_model_into(model: Model, tmp: Path, out: Path, history: Sequence[Any] | None = None) -> None:
    builder = _SavedModelBuilder(model)
    sm, assets = builder.build(with_graph=False)
    check_nodes(builder.graph, out, history)
    (tmp / "variables").mkdir()
    if model.variables is not None:
        prefix = Path(model.variables.checkpoint_prefix)
        for f in _checkpoint_files(prefix):
            # The index names shards by number only, so the prefix may be renamed to "variables".
            _copy_file(f, tmp / "variables" / ("variables" + f.name[len(prefix.name):]))
    if assets:
        (tmp / "assets").mkdir()
        for fname, src, _ in assets:
            _copy_file(src, tmp / "assets" / fname)
    src_dir = Path(model.source) if model.source else None
    extra = src_dir / "assets.extra" if src_dir is not None and src_dir.is_dir() else None
    if extra is not None and extra.is_dir():
        shutil.copytree(extra, tmp / "assets.extra", symlinks=False, ignore=_links_out_of(src_dir))
        for f in (tmp / "assets.extra").rglob("*"):
            if f.is_file():
                _fsync_file(f)
    check_proto_size(builder.graph, tmp.parent / tmp.name, "saved_model.pb")
    pause_point("export:write")
    _write_bytes(tmp / "saved_model.pb", saved_model_chunks(sm, builder.graph))
    if model.variables is not None:  # TF's fingerprinting logs an error when there is no checkpoint
        _write_fingerprint(tmp)
    for d in sorted(_walk_dirs(tmp), key=lambda p: len(p.parts), reverse=True):
        _fsync_dir(d)


def _links_out_of(root: Path) -> Any:
    """A ``copytree`` ignore function: skip symlinks that lead outside ``root`` (never copy host files)."""
    top = root.resolve()

    def ignore(directory: str, names: list[str]) -> list[str]:
        skipped = []
        for name in names:
            p = Path(directory) / name
            if p.is_symlink() and top not in p.resolve().parents:
                log.warning("%s: not copied: it is a symlink to %s, outside the model", p, p.resolve())
                skipped.append(name)
        return skipped
    return ignore


def _write_fingerprint(export_dir: Path) -> None:
    """``fingerprint.pb`` as TF writes it (best effort: older TF builds lack the helper)."""
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting as fp
    except ImportError:  # pragma: no cover
        return
    try:
        data = fp.CreateFingerprintDef(str(export_dir))
    except Exception as exc:  # noqa: BLE001 - optional metadata, never fail the export on it
        log.debug("no fingerprint.pb written: %s", exc)
        return
    _write_bytes(export_dir / "fingerprint.pb", data)


def _export_saved_model_dir(model: Model, out: Path, history: Sequence[Any] | None = None) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(out, "tmp"), dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: the output is for servers running as others
        _write_saved_model_into(model, tmp, out, history)
        _move_into_place(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ExportError):
            raise ExportError(str(exc).replace(str(tmp), str(out))) from exc
        if isinstance(exc, OSError):
            raise _write_error(out, exc) from exc
        raise
    log.info("wrote SavedModel %s", out)
    return out


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is renamed aside first and deleted after."""
    if not (out.exists() or out.is_symlink()):
        os.rename(tmp, out)
        _fsync_dir(out.parent)
        return
    aside = Path(tempfile.mkdtemp(prefix=_tmp_prefix(out, "old"), dir=out.parent))
    aside.rmdir()
    os.rename(out, aside)
    try:
        pause_point("export:swap")
        os.rename(tmp, out)
    except BaseException:
        os.rename(aside, out)
        raise
    _fsync_dir(out.parent)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


# --------------------------------------------------------------------------- GraphDef files
def export_graph_def(model: Model) -> graph_pb2.GraphDef:
    """The model's ``GraphDef`` as written (see :class:`GraphWriter`): ``_output_shapes`` hints dropped."""
    return GraphWriter(model.graph).to_graph_def()


def signatures_json(model: Model) -> dict[str, Any]:
    """What a frozen ``.pb`` cannot hold: signatures (tensor names, dtypes, shapes), init op and assets."""
    sigs: dict[str, Any] = {}
    inputs: list[str] = []
    outputs: list[str] = []

    def spec_json(spec: TensorSpec) -> dict[str, Any]:
        d: dict[str, Any] = {"name": spec.name, "dtype": spec.dtype_name, "shape": spec.shape}
        if spec.components:
            d["components"] = dict(spec.components)
        return d

    for key, sig in model.signatures.items():
        if key == INIT_OP_SIGNATURE_KEY:
            continue
        sigs[key] = {
            "method_name": sig.method_name,
            "inputs": {k: spec_json(s) for k, s in sig.inputs.items()},
            "outputs": {k: spec_json(s) for k, s in sig.outputs.items()},
        }
        for s in sig.inputs.values():
            inputs.extend(t for t in s.tensor_names() if t not in inputs)
        for s in sig.outputs.values():
            outputs.extend(t for t in s.tensor_names() if t not in outputs)
    return {
        "inputs": inputs,
        "outputs": outputs,
        "signatures": sigs,
        "init_op": model.init_op,
        "table_initializers": list(model.table_initializers),
        # "source": the file the model read the asset from (a GraphDef file has no assets/ directory); runners of
        # the .pb feed it to the asset's path tensor before running the init op.
        "assets": [{"filename": a.filename, "tensor": a.tensor_name, "source": str(Path(a.source_path).resolve())}
                   for a in model.assets],
    }


def _export_graph_def_file(model: Model, out: Path, history: Sequence[Any] | None = None) -> Path:
    from google.protobuf import text_format

    graph = GraphWriter(model.graph)
    check_nodes(graph, out, history)
    check_proto_size(graph, out, "GraphDef")
    data: bytes | Iterator[bytes]
    if out.suffix == ".pbtxt":
        data = text_format.MessageToString(graph.to_graph_def()).encode()
    else:
        data = graph.chunks()
    sidecar = out.with_name(out.name + ".signatures.json")
    kept_out = [a.filename for a in model.assets]
    if model.signatures or kept_out:
        log.warning(
            "%s: a GraphDef file keeps no signatures, assets or init op; they are written to %s "
            "(write a directory instead of %s to get a servable SavedModel)", out, sidecar.name, out.suffix,
        )
    tmp_files: list[Path] = []
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(out, "tmp"), dir=out.parent)
        os.close(fd)
        tmp_files.append(Path(tmp_name))
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes it 0600
        _write_bytes(Path(tmp_name), data)
        side_tmp = None
        if model.signatures:
            fd, side_name = tempfile.mkstemp(prefix=_tmp_prefix(out, "tmp") + "sig-", dir=out.parent)
            os.close(fd)
            side_tmp = Path(side_name)
            tmp_files.append(side_tmp)
            os.chmod(side_tmp, 0o666 & ~_umask())
            _write_bytes(side_tmp, (json.dumps(signatures_json(model), indent=2) + "\n").encode())
        os.replace(tmp_name, out)
        tmp_files.remove(Path(tmp_name))
        if side_tmp is not None:
            os.replace(side_tmp, sidecar)
            tmp_files.remove(side_tmp)
        _fsync_dir(out.parent)
    except BaseException as exc:
        for f in tmp_files:
            f.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(out, exc) from exc
        raise
    log.info("wrote GraphDef %s (%d nodes)", out, len(graph.nodes))
    return out


__all__ = ["ExportError", "GraphxformError", "build_saved_model", "dir_size", "export", "signatures_json"]
