"""TensorFlow's C API, reached through :mod:`ctypes` in the shared libraries of the TensorFlow wheel.

:func:`lib` declares the functions once; :class:`Status` wraps a ``TF_Status``. :class:`ShapeGraph` imports a
``GraphDef`` into a ``TF_Graph`` (TensorFlow's shape inference runs on import, as for ``tf.Graph``) and answers
the static shape of a tensor when asked — without the Python ``Operation`` objects ``import_graph_def`` makes
for every node, which cost more than the import itself. :mod:`graphxform.tf.capi` runs sessions on top of this.
"""
from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from typing import Any

from graphxform.core.errors import GraphxformError

vp = ctypes.c_void_p


vp = ctypes.c_void_p


class Output(ctypes.Structure):
    _fields_ = [("oper", vp), ("index", ctypes.c_int)]


class Buffer(ctypes.Structure):
    _fields_ = [("data", vp), ("length", ctypes.c_size_t), ("data_deallocator", vp)]


@lru_cache(maxsize=1)
def lib() -> ctypes.CDLL:
    """The C API, with argument and result types declared once."""
    import tensorflow as tf  # (loaded lazily: the core layer does not need TensorFlow to import)

    here = os.path.dirname(tf.__file__)
    # The framework library holds the tensor/status functions; loading it first and globally lets the
    # cc library's symbols resolve against the copy TensorFlow's Python module already has loaded.
    ctypes.CDLL(os.path.join(here, "libtensorflow_framework.so.2"), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(os.path.join(here, "libtensorflow_cc.so.2"), mode=ctypes.RTLD_GLOBAL)
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "TF_NewStatus": (vp, []),
        "TF_DeleteStatus": (None, [vp]),
        "TF_GetCode": (ctypes.c_int, [vp]),
        "TF_Message": (ctypes.c_char_p, [vp]),
        "TF_NewGraph": (vp, []),
        "TF_DeleteGraph": (None, [vp]),
        "TF_NewSessionOptions": (vp, []),
        "TF_DeleteSessionOptions": (None, [vp]),
        "TF_SetConfig": (None, [vp, vp, ctypes.c_size_t, vp]),
        "TF_NewBuffer": (ctypes.POINTER(Buffer), []),
        "TF_DeleteBuffer": (None, [ctypes.POINTER(Buffer)]),
        "TF_LoadSessionFromSavedModel": (
            vp, [vp, vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, vp,
                  ctypes.POINTER(Buffer), vp]),
        "TF_CloseSession": (None, [vp, vp]),
        "TF_DeleteSession": (None, [vp, vp]),
        "TF_GraphOperationByName": (vp, [vp, ctypes.c_char_p]),
        "TF_OperationNumOutputs": (ctypes.c_int, [vp]),
        "TF_TryEvaluateConstant": (ctypes.c_ubyte, [vp, Output, ctypes.POINTER(vp), vp]),
        "TF_SessionRun": (None, [vp, vp, ctypes.POINTER(Output), ctypes.POINTER(vp), ctypes.c_int,
                                 ctypes.POINTER(Output), ctypes.POINTER(vp), ctypes.c_int,
                                 ctypes.POINTER(vp), ctypes.c_int, vp, vp]),
        "TF_AllocateTensor": (vp, [ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_size_t]),
        "TF_DeleteTensor": (None, [vp]),
        "TF_TensorData": (vp, [vp]),
        "TF_TensorByteSize": (ctypes.c_size_t, [vp]),
        "TF_TensorType": (ctypes.c_int, [vp]),
        "TF_NumDims": (ctypes.c_int, [vp]),
        "TF_Dim": (ctypes.c_int64, [vp, ctypes.c_int]),
        "TF_StringInit": (None, [vp]),
        "TF_StringCopy": (None, [vp, ctypes.c_char_p, ctypes.c_size_t]),
        "TF_StringGetDataPointer": (vp, [vp]),
        "TF_StringGetSize": (ctypes.c_size_t, [vp]),
        "TF_StringDealloc": (None, [vp]),
        # The GraphDef session (tensorflow::Session::Create/Extend with a GraphDef, as C++ programs run a frozen graph)
        "TF_NewDeprecatedSession": (vp, [vp, vp]),
        "TF_ExtendGraph": (None, [vp, ctypes.c_char_p, ctypes.c_size_t, vp]),
        "TF_Run": (None, [vp, vp, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(vp), ctypes.c_int,
                          ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(vp), ctypes.c_int,
                          ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, vp, vp]),
        "TF_CloseDeprecatedSession": (None, [vp, vp]),
        # A GraphDef imported into a TF_Graph: TensorFlow's shape inference runs on import
        "TF_NewImportGraphDefOptions": (vp, []),
        "TF_DeleteImportGraphDefOptions": (None, [vp]),
        "TF_NewBufferFromString": (ctypes.POINTER(Buffer), [ctypes.c_char_p, ctypes.c_size_t]),
        "TF_GraphImportGraphDef": (None, [vp, ctypes.POINTER(Buffer), vp, vp]),
        "TF_GraphGetTensorNumDims": (ctypes.c_int, [vp, Output, vp]),
        "TF_GraphGetTensorShape": (None, [vp, Output, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, vp]),
        "TF_OperationOutputType": (ctypes.c_int, [Output]),
        "TF_NewSession": (vp, [vp, vp, vp]),
        "TF_DeleteDeprecatedSession": (None, [vp, vp]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


class Status:
    def __init__(self) -> None:
        self.lib = lib()
        self.ptr = self.lib.TF_NewStatus()

    @property
    def code(self) -> int:
        return int(self.lib.TF_GetCode(self.ptr))

    @property
    def message(self) -> str:
        return (self.lib.TF_Message(self.ptr) or b"").decode("utf-8", errors="replace")

    def __del__(self) -> None:
        if getattr(self, "ptr", None):
            self.lib.TF_DeleteStatus(self.ptr)
            self.ptr = None


class ShapeGraphError(GraphxformError):
    """TensorFlow refused to import a graph (its message attached)."""


class ShapeGraph:
    """A ``GraphDef`` imported into a ``TF_Graph``; :meth:`shape` gives a tensor's static shape.

    Raises :class:`ShapeGraphError` with TensorFlow's message when the import fails. Close it (or use it as a
    context manager) to free the graph; it is freed when collected otherwise.
    """

    def __init__(self, graph_def: Any) -> None:
        self._lib = lib()
        self.graph: int | None = self._lib.TF_NewGraph()  # the TF_Graph*
        data = graph_def if isinstance(graph_def, bytes) else graph_def.SerializeToString()
        status, options = Status(), self._lib.TF_NewImportGraphDefOptions()
        buf = self._lib.TF_NewBufferFromString(data, len(data))
        try:
            self._lib.TF_GraphImportGraphDef(self.graph, buf, options, status.ptr)
        finally:
            self._lib.TF_DeleteBuffer(buf)
            self._lib.TF_DeleteImportGraphDefOptions(options)
        if status.code != 0:
            message = status.message
            self.close()
            raise ShapeGraphError(message)
        self._status = status

    def op(self, name: str) -> int | None:
        """The ``TF_Operation*`` called ``name`` (``None``: not in the graph)."""
        return self._lib.TF_GraphOperationByName(self.graph, name.encode()) or None

    def num_outputs(self, name: str) -> int:
        op = self.op(name)
        return 0 if op is None else int(self._lib.TF_OperationNumOutputs(op))

    def shape(self, name: str, port: int = 0) -> tuple[int | None, ...] | None:
        """The static shape of output ``port`` of ``name`` (``None`` for an unknown dimension); ``None`` when not
        even the rank is known, or there is no such tensor."""
        op = self.op(name)
        if op is None or not 0 <= port < self._lib.TF_OperationNumOutputs(op):
            return None
        return self.output_shape(Output(op, port))

    def output_shape(self, out: Output) -> tuple[int | None, ...] | None:
        """:meth:`shape` of an output already looked up."""
        st = self._status.ptr
        rank = self._lib.TF_GraphGetTensorNumDims(self.graph, out, st)
        if rank < 0 or self._status.code != 0:
            return None
        dims = (ctypes.c_int64 * max(rank, 1))()
        self._lib.TF_GraphGetTensorShape(self.graph, out, dims, rank, st)
        if self._status.code != 0:
            return None
        return tuple(None if d < 0 else int(d) for d in dims[:rank])

    def shapes(self, name: str) -> list[tuple[int | None, ...] | None] | None:
        """The static shape of every output of ``name`` (``None``: no such node)."""
        op = self.op(name)
        if op is None:
            return None
        return [self.shape(name, port) for port in range(int(self._lib.TF_OperationNumOutputs(op)))]

    def close(self) -> None:
        if getattr(self, "graph", None):
            self._lib.TF_DeleteGraph(self.graph)
            self.graph = None

    def __enter__(self) -> ShapeGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


__all__ = ["Buffer", "Output", "ShapeGraph", "ShapeGraphError", "Status", "lib", "vp"]
