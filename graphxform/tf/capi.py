"""TensorFlow's C++ SavedModel loader, reached through the C API of the TensorFlow wheel.

``TF_LoadSessionFromSavedModel`` is the C API face of ``LoadSavedModel``
(``tensorflow/cc/saved_model/loader.cc``), the loader TF Serving's
``SavedModelBundle`` runs: it validates every ``NodeDef`` against its
``OpDef``, runs the restore op and the init/main op, and feeds the asset
paths. A model it refuses cannot be served. The symbols live in the shared
libraries beside ``tensorflow/__init__.py`` (``libtensorflow_cc.so.2``,
``libtensorflow_framework.so.2``); :mod:`ctypes` reaches them, no build step.

>>> with CSavedModelSession("fixtures/estimator_dnn") as s:       # doctest: +SKIP
...     sd = s.meta_graph.signature_def["predict"]
...     probs, = s.run({"input_example_tensor:0": examples}, ["dnn/head/predictions/probabilities:0"])

Tensors cross the C boundary as copies: numeric tensors through their raw
buffer, strings as ``TF_TString`` (24 bytes each, the layout of TF ≥ 2.4).
"""
from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2

from graphxform.core.clib import Buffer as _Buffer
from graphxform.core.clib import Output as _Output
from graphxform.core.clib import Status as _Status
from graphxform.core.clib import lib as _lib
from graphxform.core.clib import vp as _vp
from graphxform.core.errors import GraphxformError
from graphxform.core.validate import validate_graph

log = logging.getLogger(__name__)

_TSTRING_SIZE = 24  # sizeof(TF_TString)
_DT_STRING = 7


class CLoaderError(GraphxformError):
    """TensorFlow's C++ loader refused a model, or running it failed (TF's own message attached)."""


def _refuse_invalid_nodes(graph_def: Any, what: str) -> None:
    """Raise :class:`CLoaderError` for a node TensorFlow's C++ session would refuse, before one runs it.

    TensorFlow refuses such a node with an error status, unless its oneDNN rewrites are on (the default on CPUs
    with AVX-512 or AMX, or ``TF_ENABLE_ONEDNN_OPTS=1``): then its layout pass meets the node first and aborts
    the whole process (a failed ``CHECK`` on a ``MatMul`` whose ``transpose_b`` holds no bool, say). The
    validator (:mod:`graphxform.core.validate`) applies the same rules in TensorFlow's words."""
    violations = validate_graph(graph_def)
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        raise CLoaderError(f"{what}: {violations[0]}{more}")


def first_line(message: str) -> str:
    """TF's message up to the op signature it appends (``; Op<name=...>``), on one line."""
    text = " ".join(part.strip() for part in message.splitlines())
    return text.split("; Op<name=")[0].strip()


def _numpy_dtype(dtype_enum: int) -> np.dtype:
    return np.dtype(tf.as_dtype(dtype_enum).as_numpy_dtype)


def _to_tensor(value: Any, dtype_enum: int) -> int:
    """A new ``TF_Tensor*`` holding a copy of ``value`` as ``dtype_enum``; the caller deletes it."""
    lib = _lib()
    if dtype_enum == _DT_STRING:
        arr = np.asarray(value, dtype=object)
        dims = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
        t = lib.TF_AllocateTensor(dtype_enum, dims, arr.ndim, _TSTRING_SIZE * arr.size)
        base = lib.TF_TensorData(t)
        for i, item in enumerate(arr.reshape(-1)):
            data = item if isinstance(item, bytes) else str(item).encode("utf-8")
            dst = base + i * _TSTRING_SIZE
            lib.TF_StringInit(dst)
            lib.TF_StringCopy(dst, data, len(data))
        return t
    arr = np.asarray(value, dtype=_numpy_dtype(dtype_enum))  # (not ascontiguousarray: it makes a scalar 1-D)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    dims = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
    t = lib.TF_AllocateTensor(dtype_enum, dims, arr.ndim, arr.nbytes)
    if arr.nbytes:
        ctypes.memmove(lib.TF_TensorData(t), arr.ctypes.data, arr.nbytes)
    return t


def _from_tensor(t: int) -> np.ndarray:
    """A numpy copy of ``TF_Tensor*`` ``t`` (strings as ``bytes`` objects)."""
    lib = _lib()
    shape = tuple(int(lib.TF_Dim(t, i)) for i in range(lib.TF_NumDims(t)))
    dtype_enum = int(lib.TF_TensorType(t))
    base = lib.TF_TensorData(t)
    if dtype_enum == _DT_STRING:
        count = int(np.prod(shape)) if shape else 1
        out = np.empty(count, dtype=object)
        for i in range(count):
            s = base + i * _TSTRING_SIZE
            out[i] = ctypes.string_at(lib.TF_StringGetDataPointer(s), lib.TF_StringGetSize(s))
        return out.reshape(shape)
    dtype = _numpy_dtype(dtype_enum)
    size = int(lib.TF_TensorByteSize(t))
    raw = ctypes.string_at(base, size) if size else b""
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _delete_tensor(t: int, dtype_enum: int | None = None) -> None:
    lib = _lib()
    if dtype_enum is None:
        dtype_enum = int(lib.TF_TensorType(t))
    if dtype_enum == _DT_STRING:
        count = int(lib.TF_TensorByteSize(t)) // _TSTRING_SIZE
        base = lib.TF_TensorData(t)
        for i in range(count):
            lib.TF_StringDealloc(base + i * _TSTRING_SIZE)
    lib.TF_DeleteTensor(t)


def _delete_run_tensors(in_values: Any, dtypes: list[int], out_values: Any, n_out: int) -> None:
    """Free a run's input tensors (those made so far, with their dtypes) and its output tensors."""
    for i, dtype_enum in enumerate(dtypes):
        if in_values[i]:
            _delete_tensor(in_values[i], dtype_enum)
    for i in range(n_out):
        if out_values[i]:
            _delete_tensor(out_values[i])


class CSavedModelSession:
    """A SavedModel loaded by TensorFlow's C++ loader (``LoadSavedModel``), as TF Serving loads it.

    Raises :class:`CLoaderError` with TensorFlow's message when the loader
    refuses the model, or first with the validator's, naming the node, when a
    node of the MetaGraph it picks would be refused (``validate=False``:
    TensorFlow alone judges; see :func:`_refuse_invalid_nodes`). ``meta_graph``
    is the ``MetaGraphDef`` the loader read (signatures as the server sees them).
    """

    def __init__(self, path: str | os.PathLike[str], tags: Sequence[str] = ("serve",), *,
                 intra_op_threads: int = 2, inter_op_threads: int = 2, validate: bool = True) -> None:
        self.lib = lib = _lib()
        self.path = str(path)
        self.graph = lib.TF_NewGraph()
        self.session: int | None = None
        options = lib.TF_NewSessionOptions()
        status = _Status()
        try:
            config = config_pb2.ConfigProto(intra_op_parallelism_threads=intra_op_threads,
                                            inter_op_parallelism_threads=inter_op_threads).SerializeToString()
            buf = ctypes.create_string_buffer(config, len(config))
            lib.TF_SetConfig(options, buf, len(config), status.ptr)
            tag_array = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
            if validate:  # (off: TensorFlow's own refusal, or abort, is what the caller wants to see)
                self._check_nodes(tags)
            meta = lib.TF_NewBuffer()
            try:
                session = lib.TF_LoadSessionFromSavedModel(options, None, self.path.encode(), tag_array, len(tags),
                                                           self.graph, meta, status.ptr)
                if status.code != 0:
                    raise CLoaderError(f"{self.path}: TensorFlow's C++ SavedModel loader (TF Serving's) refused "
                                       f"the model: {first_line(status.message)}")
                self.session = session
                self.meta_graph = meta_graph_pb2.MetaGraphDef.FromString(
                    ctypes.string_at(meta.contents.data, meta.contents.length))
            finally:
                lib.TF_DeleteBuffer(meta)
        except BaseException:
            lib.TF_DeleteGraph(self.graph)
            self.graph = None
            raise
        finally:
            lib.TF_DeleteSessionOptions(options)

    def _check_nodes(self, tags: Sequence[str]) -> None:
        """:func:`_refuse_invalid_nodes` on the graph of the MetaGraph the loader will pick (``tags``)."""
        pb = os.path.join(self.path, "saved_model.pb")
        if not os.path.isfile(pb):  # (the loader names what is missing)
            return
        with open(pb, "rb") as f:
            sm = saved_model_pb2.SavedModel.FromString(f.read())
        for mg in sm.meta_graphs:
            if set(mg.meta_info_def.tags) == set(tags):
                _refuse_invalid_nodes(mg.graph_def, f"{self.path}: TensorFlow's C++ SavedModel loader (TF "
                                                    "Serving's) would refuse the model")
                return

    def _output(self, tensor: str) -> _Output:
        name, _, port = tensor.rpartition(":")
        if not name or not port.isdigit():
            name, port = tensor, "0"
        op = self.lib.TF_GraphOperationByName(self.graph, name.encode())
        if not op:
            raise CLoaderError(f"{self.path}: the graph the C++ loader built has no operation {name!r}")
        if int(port) >= self.lib.TF_OperationNumOutputs(op):
            raise CLoaderError(f"{self.path}: operation {name!r} has no output {port}")
        return _Output(op, int(port))

    def run(self, feeds: Mapping[str, tuple[Any, int] | Any], fetches: Sequence[str]) -> list[np.ndarray]:
        """Run the session: ``feeds`` maps tensor names to ``(value, dtype enum)`` (or arrays, whose dtype is
        taken from numpy), ``fetches`` are tensor names. Returns numpy copies."""
        if self.session is None:
            raise CLoaderError(f"{self.path}: the session is closed")
        lib = self.lib
        names = list(feeds)
        inputs = (_Output * max(len(names), 1))(*[self._output(n) for n in names])
        outputs = (_Output * max(len(fetches), 1))(*[self._output(f) for f in fetches])
        in_values = (_vp * max(len(names), 1))()
        dtypes: list[int] = []
        out_values = (_vp * max(len(fetches), 1))()
        status = _Status()
        try:
            for i, name in enumerate(names):
                value = feeds[name]
                if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
                    value, dtype_enum = value
                else:
                    arr = np.asarray(value)
                    dtype_enum = _DT_STRING if arr.dtype.kind in "OSU" else int(tf.as_dtype(arr.dtype).as_datatype_enum)
                dtypes.append(dtype_enum)
                in_values[i] = _to_tensor(value, dtype_enum)
            lib.TF_SessionRun(self.session, None, inputs, in_values, len(names), outputs, out_values, len(fetches),
                              None, 0, None, status.ptr)
            if status.code != 0:
                raise CLoaderError(f"{self.path}: running the model in the C++ loader's session failed: "
                                   f"{first_line(status.message)}")
            return [_from_tensor(out_values[i]) for i in range(len(fetches))]
        finally:
            _delete_run_tensors(in_values, dtypes, out_values, len(fetches))

    def close(self) -> None:
        if self.session is not None:
            status = _Status()
            self.lib.TF_CloseSession(self.session, status.ptr)
            self.lib.TF_DeleteSession(self.session, status.ptr)
            self.session = None
        if self.graph is not None:
            self.lib.TF_DeleteGraph(self.graph)
            self.graph = None

    def __enter__(self) -> CSavedModelSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _feed_dtype(value: Any) -> tuple[Any, int]:
    """``(value, dtype enum)`` from a ``(value, dtype)`` pair or an array (its numpy dtype)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return value
    arr = np.asarray(value)
    return value, _DT_STRING if arr.dtype.kind in "OSU" else int(tf.as_dtype(arr.dtype).as_datatype_enum)


def _session_options(status: _Status, intra: int, inter: int) -> int:
    lib = _lib()
    options = lib.TF_NewSessionOptions()
    config = config_pb2.ConfigProto(intra_op_parallelism_threads=intra,
                                    inter_op_parallelism_threads=inter).SerializeToString()
    buf = ctypes.create_string_buffer(config, len(config))
    lib.TF_SetConfig(options, buf, len(config), status.ptr)
    return options


class CGraphDefSession:
    """A frozen ``GraphDef`` in TensorFlow's C++ session: ``tensorflow::Session::Create(graph_def)``, as a C++
    program runs a frozen graph (``TF_NewDeprecatedSession`` + ``TF_ExtendGraph`` of the C API).

    Creating the session validates every ``NodeDef`` against its ``OpDef`` the way the SavedModel loader does
    (Python's ``import_graph_def`` is more lenient); :class:`CLoaderError` carries TensorFlow's message. The
    nodes are checked first (``validate``, :func:`_refuse_invalid_nodes`); ``graph_def`` is its serialization
    or, when the caller holds one, the ``GraphDef`` itself (then it is not parsed again for the check).
    """

    def __init__(self, graph_def: bytes | graph_pb2.GraphDef, label: str = "GraphDef", *, intra_op_threads: int = 2,
                 inter_op_threads: int = 2, validate: bool = True) -> None:
        self.lib = lib = _lib()
        self.label = label
        self.session: int | None = None
        parsed = graph_def if isinstance(graph_def, graph_pb2.GraphDef) else None  # (a caller's own: not parsed again)
        if parsed is not None:
            graph_def = parsed.SerializeToString()
        if validate:  # (off: TensorFlow's own refusal, or abort, is what the caller wants to see)
            _refuse_invalid_nodes(parsed if parsed is not None else graph_pb2.GraphDef.FromString(graph_def),
                                  f"{label}: TensorFlow's C++ session (Session::Create) would refuse the graph")
        status = _Status()
        options = _session_options(status, intra_op_threads, inter_op_threads)
        try:
            session = lib.TF_NewDeprecatedSession(options, status.ptr)
            if status.code != 0:
                raise CLoaderError(f"{label}: TensorFlow's C++ session could not be created: "
                                   f"{first_line(status.message)}")
            lib.TF_ExtendGraph(session, graph_def, len(graph_def), status.ptr)
            if status.code != 0:
                message = first_line(status.message)
                lib.TF_CloseDeprecatedSession(session, status.ptr)
                lib.TF_DeleteDeprecatedSession(session, status.ptr)
                raise CLoaderError(f"{label}: TensorFlow's C++ session (Session::Create) refused the graph: "
                                   f"{message}")
            self.session = session
        finally:
            lib.TF_DeleteSessionOptions(options)

    def run(self, feeds: Mapping[str, tuple[Any, int] | Any], fetches: Sequence[str],
            targets: Sequence[str] = ()) -> list[np.ndarray]:
        """Run: ``feeds`` maps tensor names to ``(value, dtype enum)`` or arrays; ``fetches`` are tensor names,
        ``targets`` operation names run for their effect. Returns numpy copies of the fetches."""
        if self.session is None:
            raise CLoaderError(f"{self.label}: the session is closed")
        lib = self.lib
        names = list(feeds)
        in_names = (ctypes.c_char_p * max(len(names), 1))(*[n.encode() for n in names])
        out_names = (ctypes.c_char_p * max(len(fetches), 1))(*[f.encode() for f in fetches])
        tgt_names = (ctypes.c_char_p * max(len(targets), 1))(*[t.encode() for t in targets])
        in_values = (_vp * max(len(names), 1))()
        out_values = (_vp * max(len(fetches), 1))()
        dtypes: list[int] = []
        status = _Status()
        try:
            for i, name in enumerate(names):
                value, dtype_enum = _feed_dtype(feeds[name])
                dtypes.append(dtype_enum)
                in_values[i] = _to_tensor(value, dtype_enum)
            lib.TF_Run(self.session, None, in_names, in_values, len(names), out_names, out_values, len(fetches),
                       tgt_names, len(targets), None, status.ptr)
            if status.code != 0:
                raise CLoaderError(f"{self.label}: running the graph in TensorFlow's C++ session failed: "
                                   f"{first_line(status.message)}")
            return [_from_tensor(out_values[i]) for i in range(len(fetches))]
        finally:
            _delete_run_tensors(in_values, dtypes, out_values, len(fetches))

    def close(self) -> None:
        if self.session is not None:
            status = _Status()  # (kept in a variable: a temporary's status would be freed before the call)
            self.lib.TF_CloseDeprecatedSession(self.session, status.ptr)
            self.lib.TF_DeleteDeprecatedSession(self.session, status.ptr)
            self.session = None

    def __enter__(self) -> CGraphDefSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


__all__ = ["CGraphDefSession", "CLoaderError", "CSavedModelSession"]
