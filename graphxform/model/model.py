"""``Model``: what was loaded — graph, signatures, assets, init op, tags, variables.

Plain data, no TensorFlow session inside. The loader (:mod:`graphxform.model.loader`) fills it; rules change
its ``graph``; :meth:`Model.freeze` turns its variables into constants; :mod:`graphxform.model.export` writes it.
"""
from __future__ import annotations

import copy as _copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorflow.core.protobuf import saver_pb2

from graphxform.core.errors import SignatureError
from graphxform.core.graph import Graph
from graphxform.core.names import node_name
from graphxform.core.signature import Asset, Signature, VariableStore
from graphxform.model.freeze import freeze_model


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
            self.graph.protected.add(node_name(self.init_op))
        self.graph.protected.update(node_name(t) for t in self.table_initializers)
        self.graph.protected.update(node_name(a.tensor_name) for a in self.assets)
        if self.variables is not None and self.variables.saver_def:
            # Until the model is frozen, the saver's ops are what restores the variables.
            saver = saver_pb2.SaverDef.FromString(self.variables.saver_def)
            for tensor in (saver.restore_op_name, saver.save_tensor_name, saver.filename_tensor_name):
                if tensor and node_name(tensor) in self.graph:
                    self.graph.protected.add(node_name(tensor))

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
        return freeze_model(self)

    def copy(self) -> Model:
        """A deep copy: its own graph and signatures; mutating one never touches the other."""
        graph = self.graph.copy()
        return Model(graph=graph, signatures=graph.signatures, source=self.source, format=self.format,
                     tags=list(self.tags), assets=_copy.deepcopy(self.assets), init_op=self.init_op,
                     table_initializers=list(self.table_initializers), variables=_copy.deepcopy(self.variables),
                     saved_model_version=self.saved_model_version, meta_info=dict(self.meta_info),
                     objects=self.objects)

    def __repr__(self) -> str:
        return (
            f"<Model {self.source} ({self.format}) {len(self.graph)} nodes, "
            f"signatures={sorted(self.signatures)}, frozen={self.frozen}>"
        )


__all__ = ["Model"]
