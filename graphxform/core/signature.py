"""Signatures and what a model carries beside its graph, as plain data: tensor specs, assets, the checkpoint.

A :class:`Signature` names tensors of the graph; when a rule moves or removes a tensor,
:meth:`graphxform.core.graph.Graph.replace_all_uses` renames it here too (:meth:`TensorSpec.rename_tensors`),
so no signature is ever silently dropped.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import node_def_pb2, tensor_shape_pb2, types_pb2

from graphxform.core.names import canon, tensor_name

#: SignatureDef method names (TensorFlow Serving's APIs).
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

    def __repr__(self) -> str:  # the dtype by name (``float32``), not its enum number
        comps = f", components={self.components!r}" if self.components else ""
        return f"TensorSpec(name={self.name!r}, dtype={self.dtype_name}, shape={self.shape!r}{comps})"

    def tensor_names(self) -> list[str]:
        if self.components:
            return list(self.components.values())
        return [self.name] if self.name else []

    def rename_tensors(self, renames: dict[str, str]) -> None:
        """Point this spec at ``renames[t]`` wherever it names tensor ``t`` (keys in ``"node:port"`` form)."""
        if self.name and canon(self.name) in renames:
            self.name = renames[canon(self.name)]
        if self.components:
            for k, v in self.components.items():
                if canon(v) in renames:
                    self.components[k] = renames[canon(v)]

    @property
    def dtype_name(self) -> str:
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
    #: The checkpoint is graphxform's own temporary one (kept variables): the exporter moves its files.
    owned: bool = False


def follow_placeholder(signatures: Iterable[Signature], previous: node_def_pb2.NodeDef,
                       node: node_def_pb2.NodeDef) -> None:
    """A signature input fed by Placeholder ``node`` follows a change of its ``dtype``/``shape`` attrs (from
    ``previous``)."""
    changed = [k for k in ("dtype", "shape") if (k in node.attr) and (k not in previous.attr
                                                                      or previous.attr[k] != node.attr[k])]
    if not changed:
        return
    shape: list[int | None] | None = None
    if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
        shape = [None if d.size < 0 else d.size for d in node.attr["shape"].shape.dim]
    tensor = f"{node.name}:0"
    for sig in signatures:
        for spec in sig.inputs.values():
            if spec.name and tensor_name(spec.name) == tensor:
                if "dtype" in changed:
                    spec.dtype = node.attr["dtype"].type
                if "shape" in changed:
                    spec.shape = shape


# --------------------------------------------------------------------------- as saved_model_cli shows them
def dtype_name(dtype: int) -> str:
    """``DataType`` enum name, as ``saved_model_cli`` prints it (``DT_FLOAT``)."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DT_UNKNOWN_{dtype}"


def shape_list(shape: tensor_shape_pb2.TensorShapeProto) -> list[int] | None:
    """Dims of a ``TensorShapeProto`` (``-1`` unknown), or ``None`` for an unknown rank."""
    if shape.unknown_rank:
        return None
    return [int(d.size) for d in shape.dim]


def shape_str(shape: list[int | None] | None) -> str:
    """``(-1, 3)`` / ``(-1)`` / ``()`` / ``unknown_rank``, the notation of ``saved_model_cli show``."""
    if shape is None:
        return "unknown_rank"
    return "(" + ", ".join("-1" if d is None or d < 0 else str(d) for d in shape) + ")"


__all__ = ["METHOD_CLASSIFY", "METHOD_PREDICT", "METHOD_REGRESS", "Asset", "Signature", "TensorSpec",
           "VariableStore", "dtype_name", "follow_placeholder", "shape_list", "shape_str"]
