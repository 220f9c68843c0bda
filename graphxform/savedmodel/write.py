"""Writing the SavedModel proto, field by field (one ``MetaGraphDef``), from plain data.

- ``graph_def``: the graph without ``_output_shapes`` hints, plus, when
  needed, one ``NoOp`` that groups the init op and the table initializers;
  streamed a node at a time (:class:`~graphxform.savedmodel.wire.GraphWriter`),
  so writing a model costs no second copy of its weights;
- ``meta_info_def``: tags (``["serve"]`` by default), the TensorFlow
  version, and the stripped op list of every op the graph uses;
- ``signature_def``: every signature with its method name and input/output
  ``TensorInfo`` (name, dtype, shape; ``coo_sparse`` for sparse tensors),
  pointing at the tensors that survived the transforms;
- the init op as the ``saved_model_main_op`` collection, as TF1's
  ``SavedModelBuilder`` writes its ``main_op``: TF Serving's C++ loader, the
  TF1 loader and ``tf.saved_model.load`` all run it after restoring, and no
  ``__saved_model_init_op`` signature shows up beside the model's own;
- ``asset_file_def`` for every asset path tensor (a ``Placeholder`` path
  becomes a ``Const`` holding the file name, as TF1 writes it);
- ``saver_def`` when the variables are kept; a frozen model gets none, which
  ``tf.saved_model.load``, the TF1 loader and TF Serving accept.

The result is a TF1-style (v1) SavedModel, also for a TF2-origin model:
``tf.saved_model.load`` loads it through its v1 path and exposes
``.signatures[key]``. Writing the files is :mod:`graphxform.model.export`'s.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import op_def_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2, saver_pb2

from graphxform.core.errors import ExportError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.nodes import const, make_node
from graphxform.core.opdefs import op_def, output_dtypes
from graphxform.core.signature import Asset, Signature, TensorSpec, VariableStore
from graphxform.savedmodel.read import INIT_OP_SIGNATURE_KEY, MAIN_OP_COLLECTION, TABLE_INITIALIZER_COLLECTION
from graphxform.savedmodel.wire import GraphWriter

log = logging.getLogger(__name__)

#: The ``NoOp`` added to run the init op and the table initializers together, when they are several.
INIT_NOOP_NAME = "graphxform_init_op"

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



class SavedModelBuilder:
    """Builds the SavedModel proto and the list of files to copy (assets) for a graph and what it carries.

    ``variables`` is ``None`` for a frozen graph; ``source`` names the model in error messages.
    """

    def __init__(self, graph: Graph, signatures: Mapping[str, Signature], *, tags: Iterable[str] = (),
                 init_op: str | None = None, table_initializers: Iterable[str] = (), assets: Iterable[Asset] = (),
                 variables: VariableStore | None = None, source: Any = None) -> None:
        self.source_graph = graph
        self.signatures = dict(signatures)
        self.tags = list(tags) or ["serve"]
        self.init_op_name = init_op
        self.table_initializers = list(table_initializers)
        self.asset_list = list(assets)
        self.variables = variables
        self.source = source
        self.graph = GraphWriter(graph)
        self.node_names = self.graph.nodes

    # -- helpers
    def _node_outputs(self, name: str) -> int | None:
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
        return self.source_graph.output_dtype(tensor) or types_pb2.DT_INVALID

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
        deps: list[str] = []
        wanted = ([self.init_op_name] if self.init_op_name else []) + self.table_initializers
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
        covered = self.source_graph.ancestors(deps[:1]) if len(deps) > 1 else set()
        deps = deps[:1] + [d for d in deps[1:] if d not in covered]
        if len(deps) == 1 and self.node_names[deps[0]].op == "NoOp":
            return deps[0]
        name = INIT_NOOP_NAME
        i = 0
        while name in self.node_names:
            i += 1
            name = f"{INIT_NOOP_NAME}_{i}"
        self.node_names[name] = make_node("NoOp", name, ["^" + d for d in deps])
        return name

    def assets(self) -> list[tuple[str, Path, str]]:
        """``(filename under assets/, source file, tensor name)`` for assets whose tensor is still in the graph."""
        out: list[tuple[str, Path, str]] = []
        used: dict[str, Path] = {}
        for a in self.asset_list:
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
        # (the graph's own node is left as it is)
        self.node_names[node.name] = const(node.name, fname.encode(), tf.string, device=node.device)

    def saver_def(self) -> saver_pb2.SaverDef | None:
        store = self.variables
        if store is None:
            return None
        if not store.saver_def:
            raise ExportError(
                f"{self.source}: the model keeps its variables but has no SaverDef (TF2 object-based "
                "checkpoint); freeze it first (model.freeze(), or use `graphxform optimize`)"
            )
        sd = saver_pb2.SaverDef()
        sd.ParseFromString(store.saver_def)
        for what, t in (("filename tensor", sd.filename_tensor_name), ("restore op", sd.restore_op_name),
                        ("save tensor", sd.save_tensor_name)):
            if t and parse_input(t)[0] not in self.node_names:
                raise ExportError(
                    f"{self.source}: the saver's {what} {t!r} was removed from the graph, so the variables "
                    "could not be restored; freeze the model before transforming, or keep the save/ nodes"
                )
        return sd

    def build(self, *, with_graph: bool = True) -> tuple[saved_model_pb2.SavedModel, list[tuple[str, Path, str]]]:
        """The SavedModel proto and the assets to copy; ``with_graph=False`` leaves ``graph_def`` empty (it
        is then streamed by :func:`saved_model_chunks`)."""
        sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
        mg = sm.meta_graphs.add()
        for key, sig in self.signatures.items():
            if key == INIT_OP_SIGNATURE_KEY:
                continue
            mg.signature_def[key].CopyFrom(self.signature_def(sig))
        init = self.init_op()
        assets = self.assets()
        saver = self.saver_def()

        if with_graph:
            mg.graph_def.CopyFrom(self.graph.to_graph_def())
        _fill_meta_info(mg.meta_info_def, self.graph.op_names(), self.tags)
        if init:
            # As TF1's SavedModelBuilder writes its main_op: a collection, which TF Serving's C++ loader, the TF1
            # loader and tf.saved_model.load all run (loader_impl.get_init_op, loader.cc GetInitOp). Not the
            # __saved_model_init_op signature as well: tf.saved_model.load would list it among .signatures.
            mg.collection_def[MAIN_OP_COLLECTION].node_list.value.append(init)
        tables = [parse_input(t)[0] for t in self.table_initializers]
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
    info.tags.extend(tags)
    info.tensorflow_version = tf.version.VERSION
    info.tensorflow_git_version = tf.version.GIT_VERSION
    info.stripped_op_list.CopyFrom(_op_list(ops))
    # Nodes may lack attrs that equal their op's default (the input was written stripped); the loaders
    # fill those back from the registered op (and the stripped op list) when this flag is set.
    info.stripped_default_attrs = True


def _op_list(ops: set[str]) -> op_def_pb2.OpList:
    out = op_def_pb2.OpList()
    for name in sorted(ops):
        d = op_def(name)
        if d is not None:
            out.op.add().CopyFrom(d)
    return out


def _shape_proto(shape: list[int | None] | None) -> tensor_shape_pb2.TensorShapeProto:
    proto = tensor_shape_pb2.TensorShapeProto()
    if shape is None:
        proto.unknown_rank = True
        return proto
    for d in shape:
        proto.dim.add(size=-1 if d is None or d < 0 else int(d))
    return proto


def _tensor_proto(value: Any) -> tensor_pb2.TensorProto:
    return value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)


__all__ = ["INIT_NOOP_NAME", "SavedModelBuilder"]
