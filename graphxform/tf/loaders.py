"""TensorFlow's own loaders as runners: the consumers an exported model must satisfy.

A SavedModel counts as servable when all three of TensorFlow's loaders load
it and run every signature:

==========  ==========================================================================================
``c++``     TensorFlow's C++ ``LoadSavedModel`` (TF Serving's), through the C API
            (:class:`graphxform.tf.capi.CSavedModelSession`): validates every ``NodeDef`` against its
            ``OpDef``, restores variables, runs the init/main op with the assets fed.
``tf2``     ``tf.saved_model.load(path).signatures[key](**inputs)``: builds each function's graph from
            the function library and its shape annotations (stale ones fail here).
``tf1``     ``tf.compat.v1.saved_model.loader.load`` into a ``Session`` (TF1 serving code).
==========  ==========================================================================================

A frozen ``.pb``/``.pbtxt`` is *not* a servable format: no SavedModel loader
reads it, and it cannot hold signatures, assets or an init op (the exporter
writes those to ``<file>.signatures.json``). What TensorFlow offers for a
frozen graph is running it, so the same three keys mean, for a GraphDef file:

==========  ==========================================================================================
``c++``     the C++ session a C++ program creates from a frozen graph (``Session::Create(graph_def)``,
            via the C API's ``TF_NewDeprecatedSession`` + ``TF_ExtendGraph``; the same ``NodeDef``
            validation as the SavedModel loader, done when the graph first runs);
``tf2``     ``tf.compat.v1.wrap_function`` over ``import_graph_def``, pruned per signature (TF2's way to
            run a frozen graph);
``tf1``     ``import_graph_def`` into a ``tf.Graph`` and a ``Session``.
==========  ==========================================================================================

Each runs the sidecar's init op / table initializers first, feeding each
asset path tensor with the asset file the model was read from (the sidecar
records it; a ``.pb`` carries no ``assets/`` directory).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from graphxform.core.errors import GraphxformError, ModelLoadError
from graphxform.core.names import canon, parse_input
from graphxform.savedmodel.read import (
    GRAPH_DEF_SUFFIXES,
    INIT_OP_SIGNATURE_KEY,
    find_meta_graph,
    parse_saved_model,
    read_graph_def,
    saved_model_tags,
)
from graphxform.tf.capi import CGraphDefSession, CSavedModelSession
from graphxform.tf.runners import Runner, SavedModelRunner, SigInfo, first_line, signature_infos
from graphxform.tf.session import GraphSession

log = logging.getLogger(__name__)

LOADER_KEYS = ("c++", "tf2", "tf1")
SAVED_MODEL_LOADERS = {
    "c++": "LoadSavedModel (C++, TF Serving)",
    "tf2": "tf.saved_model.load",
    "tf1": "TF1 saved_model.loader.load",
}
GRAPH_DEF_LOADERS = {
    "c++": "Session::Create (C++)",
    "tf2": "wrap_function(import_graph_def)",
    "tf1": "import_graph_def + Session",
}


@dataclass
class LoaderResult:
    """How one loader fared with a model: loaded or not (TensorFlow's message), and how long it took."""

    key: str
    description: str
    loaded: bool = False
    error: str | None = None
    seconds: float = 0.0
    signatures: list[str] | None = None  # the signature keys this loader exposes

    def to_dict(self) -> dict[str, Any]:
        return {"loader": self.key, "description": self.description, "loaded": self.loaded, "error": self.error,
                "seconds": round(self.seconds, 3), "signatures": self.signatures}


def _meta_graph(path: str | os.PathLike[str], tags: Sequence[str]) -> Any:
    mg = find_meta_graph(parse_saved_model(path), tags)
    if mg is None:
        raise ModelLoadError(f"{path}: no MetaGraph with tags {list(tags)}")
    return mg


# --------------------------------------------------------------------------- SavedModel
class CppSavedModelRunner(Runner):
    """A SavedModel loaded by TensorFlow's C++ ``LoadSavedModel`` (TF Serving's loader)."""

    def __init__(self, path: str | os.PathLike[str], tags: Sequence[str]) -> None:
        self.label = str(path)
        self.session = CSavedModelSession(path, tags)
        # (A __saved_model_init_op entry is how TF2 writes its init op; TF Serving runs it, it serves nothing.)
        self.listed = sorted(k for k in self.session.meta_graph.signature_def if k != INIT_OP_SIGNATURE_KEY)
        self.signatures = signature_infos(self.session.meta_graph.signature_def)
        self._dtypes = {name: info.input_dtypes[k] for info in self.signatures.values()
                        for k, name in info.inputs.items() if k in info.input_dtypes}

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:
        typed = {n: (v, int(self._dtypes[n])) if n in self._dtypes else v for n, v in feeds.items()}
        return self.session.run(typed, fetches)

    def close(self) -> None:
        self.session.close()


def _tf_value(value: Any, dtype_enum: int | None) -> Any:
    if dtype_enum is None:
        return tf.constant(value)
    dtype = tf.as_dtype(dtype_enum)
    if dtype == tf.string:
        return tf.constant(np.asarray(value, dtype=object), dtype=tf.string)
    return tf.constant(np.asarray(value).astype(dtype.as_numpy_dtype), dtype=dtype)


def _tf2_outputs(out: Mapping[str, Any]) -> dict[str, np.ndarray]:
    res: dict[str, np.ndarray] = {}
    for name, value in out.items():
        if isinstance(value, tf.SparseTensor):
            res[f"{name}/indices"] = value.indices.numpy()
            res[f"{name}/values"] = value.values.numpy()
            res[f"{name}/dense_shape"] = value.dense_shape.numpy()
        else:
            res[name] = np.asarray(value.numpy())
    return res


class TF2FunctionRunner(Runner):
    """A SavedModel loaded by ``tf.saved_model.load``; each signature runs as its concrete function."""

    def __init__(self, path: str | os.PathLike[str], tags: Sequence[str]) -> None:
        self.label = str(path)
        self.obj = tf.saved_model.load(str(path), tags=list(tags))
        self.listed = sorted(self.obj.signatures.keys())
        infos = signature_infos(_meta_graph(path, tags).signature_def)
        self.signatures = {k: infos[k] for k in self.listed if k in infos}

    def run(self, key: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        sig = self.signatures[key]
        try:
            out = self.obj.signatures[key](**{k: _tf_value(inputs[k], sig.input_dtypes.get(k)) for k in sig.inputs})
        except (tf.errors.OpError, TypeError, ValueError) as exc:
            raise GraphxformError(f"{self.label}: signature {key!r} failed in tf.saved_model.load's function: "
                                  f"{first_line(exc)}") from exc
        return _tf2_outputs(out)


# --------------------------------------------------------------------------- GraphDef files
@dataclass
class Sidecar:
    """What ``<file>.signatures.json`` says about a GraphDef file (see :func:`graphxform.model.export.signatures_json`)."""

    signatures: dict[str, SigInfo]
    init_ops: list[str]
    asset_feeds: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        side = path.with_name(path.name + ".signatures.json")
        if not side.is_file():
            return cls({}, [], {})
        try:
            data = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{side}: not a readable signatures file ({exc})") from exc
        sigs: dict[str, SigInfo] = {}
        for key, sig in (data.get("signatures") or {}).items():
            ins = {k: s["name"] for k, s in sig.get("inputs", {}).items() if s.get("name")}
            dtypes = {k: types_pb2.DataType.Value(s["dtype"]) for k, s in sig.get("inputs", {}).items()
                      if s.get("dtype") in types_pb2.DataType.keys()}
            outs: dict[str, list[tuple[str, str]]] = {}
            for k, s in sig.get("outputs", {}).items():
                if s.get("components"):
                    outs[k] = [(f"{k}/{c}", t) for c, t in s["components"].items()]
                elif s.get("name"):
                    outs[k] = [(k, s["name"])]
            sigs[key] = SigInfo(sig.get("method_name", ""), ins, outs, dtypes)
        init = [data["init_op"]] if data.get("init_op") else []
        init += [t for t in data.get("table_initializers", []) if t not in init]
        feeds: dict[str, str] = {}
        for a in data.get("assets", []):
            src = a.get("source")
            if src and Path(src).is_file():
                feeds[a["tensor"]] = src
            else:
                log.warning("%s: asset %s: file %s not found; the table it fills cannot be initialized", side,
                            a.get("filename"), src)
        return cls(sigs, [parse_input(t)[0] for t in init], feeds)


class CppGraphDefRunner(Runner):
    """A GraphDef file in TensorFlow's C++ session (``Session::Create``), init ops run first."""

    def __init__(self, path: Path, graph_def: Any, sidecar: Sidecar) -> None:
        self.label = str(path)
        self.signatures = sidecar.signatures
        self.listed = sorted(self.signatures)
        self.session = CGraphDefSession(graph_def, label=str(path))
        self._dtypes = {name: info.input_dtypes[k] for info in self.signatures.values()
                        for k, name in info.inputs.items() if k in info.input_dtypes}
        if sidecar.init_ops:
            try:
                self.session.run({k: (v.encode(), 7) for k, v in sidecar.asset_feeds.items()}, [], sidecar.init_ops)
            except BaseException:
                self.session.close()
                raise

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:
        typed = {n: (v, int(self._dtypes[n])) if n in self._dtypes else v for n, v in feeds.items()}
        return self.session.run(typed, fetches)

    def close(self) -> None:
        self.session.close()


class TF1GraphDefRunner(Runner):
    """A GraphDef file imported into a ``tf.Graph`` and run in a TF1 ``Session``, init ops run first."""

    def __init__(self, path: Path, graph_def: Any, sidecar: Sidecar) -> None:
        self.label = str(path)
        self.signatures = sidecar.signatures
        self.listed = sorted(self.signatures)
        self.session = GraphSession(graph_def, init_ops=sidecar.init_ops, init_feeds=sidecar.asset_feeds)

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:
        try:
            return self.session.run(feeds, fetches)
        except tf.errors.OpError as exc:
            raise GraphxformError(f"{self.label}: running the graph failed: {first_line(exc)}") from exc

    def close(self) -> None:
        self.session.close()


class TF2GraphDefRunner(Runner):
    """A GraphDef file wrapped as a TF2 function (``wrap_function`` + ``import_graph_def``), pruned per signature."""

    def __init__(self, path: Path, graph_def: Any, sidecar: Sidecar) -> None:
        self.label = str(path)
        self.signatures = sidecar.signatures
        self.listed = sorted(self.signatures)
        self.wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        self._pruned: dict[str, Callable[..., Any]] = {}
        g = self.wrapped.graph
        if sidecar.init_ops:
            with g.as_default():
                anchor = tf.constant(0.0, name="graphxform_init_anchor")
            assets = sorted(sidecar.asset_feeds)
            init_fn = self.wrapped.prune(feeds=[g.as_graph_element(canon(t)) for t in assets],
                                         fetches=[anchor, *[g.get_operation_by_name(o) for o in sidecar.init_ops]])
            init_fn(*[tf.constant(sidecar.asset_feeds[t]) for t in assets])

    def run(self, key: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        sig = self.signatures[key]
        keys = sorted(sig.inputs)
        fetch_keys = [(reported, tensor) for comps in sig.outputs.values() for reported, tensor in comps]
        fn = self._pruned.get(key)
        g = self.wrapped.graph
        try:
            if fn is None:
                fn = self._pruned[key] = self.wrapped.prune(
                    feeds=[g.as_graph_element(canon(sig.inputs[k])) for k in keys],
                    fetches=[g.as_graph_element(canon(t)) for _, t in fetch_keys])
            values = fn(*[_tf_value(inputs[k], sig.input_dtypes.get(k)) for k in keys])
        except (tf.errors.OpError, TypeError, ValueError, KeyError) as exc:
            raise GraphxformError(f"{self.label}: signature {key!r} failed in the wrapped function: "
                                  f"{first_line(exc)}") from exc
        return {reported: np.asarray(v.numpy()) for (reported, _), v in zip(fetch_keys, values)}


# --------------------------------------------------------------------------- opening
def open_loaders(path: str | os.PathLike[str], tags: Sequence[str] | None = None,
                 loaders: Sequence[str] = LOADER_KEYS) -> list[tuple[LoaderResult, Runner | None]]:
    """Load ``path`` (a SavedModel directory or a GraphDef file) with each of TensorFlow's loaders.

    Returns ``(result, runner)`` per loader; ``runner`` is ``None`` when the
    loader refused the model (``result.error`` holds TensorFlow's message).
    Nothing is raised for a refusal: a model one loader refuses is a finding.
    """
    p = Path(path)
    out: list[tuple[LoaderResult, Runner | None]] = []
    if p.is_file() and p.suffix in GRAPH_DEF_SUFFIXES:
        gd = read_graph_def(p)
        sidecar = Sidecar.read(p)
        factories: dict[str, Callable[[], Runner]] = {
            "c++": lambda: CppGraphDefRunner(p, gd, sidecar),
            "tf2": lambda: TF2GraphDefRunner(p, gd, sidecar),
            "tf1": lambda: TF1GraphDefRunner(p, gd, sidecar),
        }
        names = GRAPH_DEF_LOADERS
    else:
        tag_list = list(tags) if tags else saved_model_tags(p)
        factories = {
            "c++": lambda: CppSavedModelRunner(p, tag_list),
            "tf2": lambda: TF2FunctionRunner(p, tag_list),
            "tf1": lambda: _tf1(p, tag_list),
        }
        names = SAVED_MODEL_LOADERS
    for key in loaders:
        result = LoaderResult(key, names[key])
        t0 = time.perf_counter()
        try:
            runner: Runner | None = factories[key]()
            result.loaded = True
            result.signatures = list(getattr(runner, "listed", None) or sorted(runner.signatures))
        except Exception as exc:  # noqa: BLE001 - any refusal is reported, per loader
            runner = None
            result.error = first_line(exc)
            log.info("%s: %s refused it: %s", path, names[key], result.error)
        result.seconds = time.perf_counter() - t0
        out.append((result, runner))
    return out


def _tf1(path: Path, tags: list[str]) -> Runner:
    runner = SavedModelRunner(path, tags)
    runner.listed = sorted(k for k in _meta_graph(path, tags).signature_def  # type: ignore[attr-defined]
                           if k != INIT_OP_SIGNATURE_KEY)
    return runner


__all__ = ["GRAPH_DEF_LOADERS", "LOADER_KEYS", "LoaderResult", "SAVED_MODEL_LOADERS", "Sidecar", "open_loaders"]
