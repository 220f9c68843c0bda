"""``Model``: what was loaded — graph, signatures, assets, init op, tags, variables.

Plain data, no TensorFlow session inside. The loader fills it; rules change
its ``graph``; the exporter writes it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphxform.core.errors import SignatureError
from graphxform.core.graph import Graph, parse_input

log = logging.getLogger(__name__)

METHOD_CLASSIFY = "tensorflow/serving/classify"
METHOD_REGRESS = "tensorflow/serving/regress"
METHOD_PREDICT = "tensorflow/serving/predict"


@dataclass
class TensorSpec:
    """One signature input/output: tensor name, dtype (``DataType`` enum), shape (``None`` = unknown rank).

    Sparse tensors (``coo_sparse``) keep their three component tensors in
    ``components`` (values, indices, dense_shape); ``name`` is then empty.
    """

    name: str
    dtype: int
    shape: list[int | None] | None
    components: dict[str, str] | None = None

    def tensor_names(self) -> list[str]:
        if self.components:
            return list(self.components.values())
        return [self.name] if self.name else []

    def rename_tensor(self, old: str, new: str) -> None:
        self.rename_tensors({old: new})

    def rename_tensors(self, renames: dict[str, str]) -> None:
        """Point this spec at ``renames[t]`` wherever it names tensor ``t`` (keys in ``"node:port"`` form)."""
        def canon(t: str) -> str:
            n, p, _ = parse_input(t)
            return f"{n}:{p}"

        if self.name and canon(self.name) in renames:
            self.name = renames[canon(self.name)]
        if self.components:
            for k, v in self.components.items():
                if canon(v) in renames:
                    self.components[k] = renames[canon(v)]

    @property
    def dtype_name(self) -> str:
        import tensorflow as tf

        return tf.as_dtype(self.dtype).name if self.dtype else "invalid"

    def shape_str(self) -> str:
        if self.shape is None:
            return "unknown_rank"
        return "(" + ", ".join("-1" if d is None else str(d) for d in self.shape) + ")"


@dataclass
class Signature:
    """A serving signature: key, method name and named inputs/outputs."""

    key: str
    method_name: str
    inputs: dict[str, TensorSpec] = field(default_factory=dict)
    outputs: dict[str, TensorSpec] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class Asset:
    """An asset file: its name under ``assets/``, where it is now, and the tensor that holds its path."""

    filename: str
    source_path: Path
    tensor_name: str


@dataclass
class VariableStore:
    """Where the values of a non-frozen model's variables live.

    ``checkpoint_prefix`` is the TF checkpoint (``variables/variables``);
    ``saver_def`` the serialized ``SaverDef`` that restores it.
    """

    checkpoint_prefix: Path
    saver_def: bytes | None = None


@dataclass
class Model:
    """A loaded model. ``format`` is ``saved_model`` (TF1 or TF2) or ``graph_def``."""

    graph: Graph
    signatures: dict[str, Signature]
    source: Path
    format: str
    tags: list[str] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    init_op: str | None = None
    table_initializers: list[str] = field(default_factory=list)
    variables: VariableStore | None = None
    saved_model_version: int | None = None  # 1: TF1/Estimator graph, 2: TF2 object-based
    meta_info: dict[str, Any] = field(default_factory=dict)
    #: TF2: the graph's variables and tables bound to their objects and checkpoint keys
    #: (:class:`graphxform.savedmodel.objects.ObjectGraphBinding`), as ``tf.saved_model.load`` binds them.
    objects: Any = None

    def __post_init__(self) -> None:
        # The graph rewrites the very same Signature objects when tensors move.
        self.graph.signatures = self.signatures
        if self.init_op:
            self.graph.protected.add(parse_input(self.init_op)[0])
        self.graph.protected.update(parse_input(t)[0] for t in self.table_initializers)
        self.graph.protected.update(parse_input(a.tensor_name)[0] for a in self.assets)
        if self.variables is not None and self.variables.saver_def:
            # Until the model is frozen, the saver's ops are what restores the variables.
            from tensorflow.core.protobuf import saver_pb2

            saver = saver_pb2.SaverDef.FromString(self.variables.saver_def)
            for tensor in (saver.restore_op_name, saver.save_tensor_name, saver.filename_tensor_name):
                if tensor and parse_input(tensor)[0] in self.graph:
                    self.graph.protected.add(parse_input(tensor)[0])

    @property
    def frozen(self) -> bool:
        return self.variables is None

    def signature(self, key: str) -> Signature:
        try:
            return self.signatures[key]
        except KeyError:
            raise SignatureError(
                f"{self.source}: no signature {key!r}; the model has: {', '.join(sorted(self.signatures)) or 'none'}"
            ) from None

    def freeze(self) -> Model:
        """Replace variables by constants read from the checkpoint (in place; returns ``self``)."""
        from graphxform.model.freeze import freeze_model

        return freeze_model(self)

    def copy(self) -> Model:
        """A deep copy: its own graph and signatures; mutating one never touches the other."""
        import copy as _copy

        graph = self.graph.copy()
        return Model(graph=graph, signatures=graph.signatures, source=self.source, format=self.format,
                     tags=list(self.tags), assets=_copy.deepcopy(self.assets), init_op=self.init_op,
                     table_initializers=list(self.table_initializers), variables=_copy.deepcopy(self.variables),
                     saved_model_version=self.saved_model_version, meta_info=dict(self.meta_info),
                     objects=self.objects)

    def protected_tensors(self) -> set[str]:
        return self.graph.signature_tensors()

    def __repr__(self) -> str:
        return (
            f"<Model {self.source} ({self.format}) {len(self.graph)} nodes, "
            f"signatures={sorted(self.signatures)}, frozen={self.frozen}>"
        )
