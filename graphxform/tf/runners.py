"""Running a model's signatures in TensorFlow: the runners ``verify`` and ``bisect`` compare.

A runner exposes ``signatures`` (:class:`SigInfo` by key) and ``run(key, {input key: array})`` →
``{output: array}``. The reference runners here are the input model's:

* :class:`SavedModelRunner`: a SavedModel directory in TensorFlow's TF1 loader and a ``Session`` (variables
  restored, init op run, assets fed — what serving does);
* :class:`TF2SavedModelRunner`: a TF2 SavedModel in ``tf.saved_model.load`` (variables bound through the
  object graph), for the models the TF1 loader cannot run (:func:`needs_object_graph`);
* :class:`ModelRunner`: a :class:`~graphxform.model.model.Model` in one session (:mod:`graphxform.tf.session`),
  frozen first (a copy) when it keeps variables.

The output's runners — each of TensorFlow's loaders — are :mod:`graphxform.tf.loaders`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from graphxform.core.errors import GraphxformError, ModelLoadError, SignatureError, tf_error_summary
from graphxform.core.oplibs import ensure_ops
from graphxform.model.model import Model
from graphxform.savedmodel.objects import bind_object_graph
from graphxform.savedmodel.read import (
    INIT_OP_SIGNATURE_KEY,
    find_meta_graph,
    is_saved_model_dir,
    parse_saved_model,
    saved_model_tags,
)
from graphxform.tf.session import asset_feeds, model_session


@dataclass
class SigInfo:
    """One signature as a runner sees it: tensor names by input key, fetches by output key, input dtypes."""

    method_name: str
    inputs: dict[str, str]  # input key -> tensor name
    outputs: dict[str, list[tuple[str, str]]]  # output key -> [(reported name, tensor name)]
    input_dtypes: dict[str, int] = field(default_factory=dict)
    #: input key -> the signature's shape (None: unknown rank; a None dimension: any size); absent: not known
    input_shapes: dict[str, list[int | None] | None] = field(default_factory=dict)


class Runner:
    """Runs the signatures of one model."""

    label: str
    signatures: dict[str, SigInfo]
    model: Model | None = None

    def run(self, key: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        sig = self.signatures[key]
        missing = set(sig.inputs) - set(inputs)
        if missing:
            raise SignatureError(f"{self.label}: signature {key!r} needs inputs {sorted(missing)}; give them in "
                                 "the --inputs file or leave --inputs out to synthesize them")
        fetch_names: list[str] = []
        keys: list[str] = []
        for _, comps in sorted(sig.outputs.items()):
            for reported, tensor in comps:
                keys.append(reported)
                fetch_names.append(tensor)
        values = self._run({sig.inputs[k]: inputs[k] for k in sig.inputs}, fetch_names)
        return dict(zip(keys, values))

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover
        pass


def outputs_from_tensor_info(outputs: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """``{output key: [(reported name, tensor)]}``: a sparse output is reported as its three components."""
    out: dict[str, list[tuple[str, str]]] = {}
    for key, info in outputs.items():
        if info.WhichOneof("encoding") == "coo_sparse":
            cs = info.coo_sparse
            out[key] = [(f"{key}/indices", cs.indices_tensor_name), (f"{key}/values", cs.values_tensor_name),
                        (f"{key}/dense_shape", cs.dense_shape_tensor_name)]
        elif info.name:
            out[key] = [(key, info.name)]
    return out


def signature_infos(signature_defs: Mapping[str, Any]) -> dict[str, SigInfo]:
    """Runner signature infos from a ``signature_def`` map (the init op's signature left out)."""
    return {key: SigInfo(sd.method_name, {k: v.name for k, v in sd.inputs.items() if v.name},
                         outputs_from_tensor_info(sd.outputs), {k: v.dtype for k, v in sd.inputs.items()},
                         {k: _shape_of(v) for k, v in sd.inputs.items()})
            for key, sd in signature_defs.items() if key != INIT_OP_SIGNATURE_KEY}


def _shape_of(info: Any) -> list[int | None] | None:
    """A ``TensorInfo``'s shape as a list (``None``: unknown rank or not recorded; a ``None`` dimension: any size)."""
    if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank:
        return None
    return [d.size if d.size >= 0 else None for d in info.tensor_shape.dim]


def first_line(exc: BaseException) -> str:
    """TensorFlow's message of ``exc`` on one line (at most 2000 characters)."""
    msg = getattr(exc, "message", None) or str(exc)
    text = " ".join(line.strip() for line in str(msg).splitlines() if line.strip())
    return text[:2000]


def _session_config() -> Any:
    return tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)


class SavedModelRunner(Runner):
    """A SavedModel directory loaded by TensorFlow's TF1 loader into a session (what serving does)."""

    def __init__(self, path: str | os.PathLike[str], tags: list[str] | None = None) -> None:
        self.label = str(path)
        tags = list(tags) if tags else saved_model_tags(path)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=_session_config())
        try:
            with self.graph.as_default():
                mg = tf.compat.v1.saved_model.loader.load(self.session, tags, str(path))
        except (RuntimeError, ValueError, KeyError, OSError, tf.errors.OpError) as exc:  # (KeyError: a collection
            self.session.close()                                                        # naming a missing node)
            raise ModelLoadError(f"{path}: TensorFlow's SavedModel loader failed: {exc}") from exc
        self.signatures = signature_infos(mg.signature_def)

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:
        try:
            return self.session.run([self.graph.get_tensor_by_name(f) for f in fetches],
                                    {self.graph.get_tensor_by_name(k): v for k, v in feeds.items()})
        except tf.errors.OpError as exc:
            raise GraphxformError(f"{self.label}: running the model failed: {exc.message}") from exc

    def close(self) -> None:
        self.session.close()


class TF2SavedModelRunner(Runner):
    """A TF2 SavedModel loaded by ``tf.saved_model.load`` (variables bound through the object graph), each
    signature called as a concrete function: the reference for TF2 SavedModels the TF1 loader cannot run."""

    def __init__(self, path: str | os.PathLike[str], tags: list[str] | None = None) -> None:
        self.label = str(path)
        tags = list(tags) if tags else saved_model_tags(path)
        try:
            self.loaded = tf.saved_model.load(str(path), tags=tags)
            sm = parse_saved_model(path)
        except (RuntimeError, ValueError, OSError, tf.errors.OpError) as exc:
            raise ModelLoadError(f"{path}: tf.saved_model.load failed: {tf_error_summary(str(exc))}") from exc
        mg = find_meta_graph(sm, tags)
        assert mg is not None  # (tf.saved_model.load found it)
        self.signatures = {k: s for k, s in signature_infos(mg.signature_def).items() if k in self.loaded.signatures}
        self.dtypes = {key: {k: tf.as_dtype(v) for k, v in info.input_dtypes.items()}
                       for key, info in self.signatures.items()}

    def run(self, key: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        sig = self.signatures[key]
        missing = set(sig.inputs) - set(inputs)
        if missing:
            raise SignatureError(f"{self.label}: signature {key!r} needs inputs {sorted(missing)}; give them in "
                                 "the --inputs file or leave --inputs out to synthesize them")
        args = {k: tf.constant(inputs[k], dtype=self.dtypes[key][k]) for k in sig.inputs}
        try:
            out = self.loaded.signatures[key](**args)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise GraphxformError(f"{self.label}: running signature {key!r} failed: "
                                  f"{tf_error_summary(str(exc))}") from exc
        values: dict[str, np.ndarray] = {}
        for out_key, comps in sorted(sig.outputs.items()):
            if out_key in out and len(comps) == 1:
                values[comps[0][0]] = np.asarray(out[out_key])
        return values

    def close(self) -> None:
        self.loaded = None


def load_op_libraries(path: str | os.PathLike[str], tags: list[str] | None) -> None:
    """Import the op libraries (TensorFlow Text …) the SavedModel's graph needs, before TensorFlow loads it."""
    tags = list(tags) if tags else saved_model_tags(path)
    mg = find_meta_graph(parse_saved_model(path), tags)
    if mg is not None:
        ensure_ops(mg.graph_def, path)


def needs_object_graph(path: str | os.PathLike[str], tags: list[str] | None = None) -> bool:
    """True for a TF2 SavedModel whose signatures read variables or tables the saver does not restore: the TF1
    and C++ loaders (TF Serving) cannot run it, ``tf.saved_model.load`` can (it binds them by object path)."""
    p = Path(path)
    if not is_saved_model_dir(p):
        return False
    tags = list(tags) if tags else saved_model_tags(p)
    mg = find_meta_graph(parse_saved_model(p), tags)
    index = p / "variables" / "variables.index"
    if mg is None or not index.is_file():
        return False
    binding = bind_object_graph(mg, index.with_suffix(""), p)
    return binding is not None and bool(binding.unservable_nodes())


class ModelRunner(Runner):
    """A :class:`Model` run in one session (a frozen copy when it keeps variables)."""

    def __init__(self, model: Model, label: str | None = None) -> None:
        self.label = label or str(model.source)
        if not model.frozen:
            model = model.copy()
            model.freeze()
        self.model = model
        try:
            self.session = model_session(model)
        except GraphxformError as exc:
            raise GraphxformError(f"{self.label}: cannot run the model: {exc}") from exc
        self.signatures = model_signature_infos(model)

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:
        assert self.model is not None
        try:
            return self.session.run({**asset_feeds(self.model), **feeds}, fetches)
        except tf.errors.OpError as exc:
            raise GraphxformError(f"{self.label}: running the model failed: {exc.message}") from exc

    def close(self) -> None:
        self.session.close()


def model_signature_infos(model: Model) -> dict[str, SigInfo]:
    """Signature inputs/outputs of a :class:`Model` in the form the runners use."""
    infos: dict[str, SigInfo] = {}
    for key, sig in model.signatures.items():
        if key == INIT_OP_SIGNATURE_KEY:
            continue
        outs: dict[str, list[tuple[str, str]]] = {}
        for k, spec in sig.outputs.items():
            if spec.components:
                outs[k] = [(f"{k}/{c}", t) for c, t in spec.components.items()]
            elif spec.name:
                outs[k] = [(k, spec.name)]
        infos[key] = SigInfo(sig.method_name, {k: s.name for k, s in sig.inputs.items() if s.name}, outs,
                             {k: s.dtype for k, s in sig.inputs.items()},
                             {k: list(s.shape) if s.shape is not None else None for k, s in sig.inputs.items()})
    return infos


__all__ = ["ModelRunner", "Runner", "SavedModelRunner", "SigInfo", "TF2SavedModelRunner", "first_line",
           "load_op_libraries", "model_signature_infos", "needs_object_graph", "outputs_from_tensor_info",
           "signature_infos"]
