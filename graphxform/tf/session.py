"""Running graphs in TensorFlow: a ``GraphDef`` or a ``Model``'s signatures, in one session.

Used to fold constants, to verify rewrites and in tests. The graph is
imported as is (no name prefix) into a fresh ``tf.Graph``; table
initializers/init op run first; asset path tensors are fed with the asset
files' current paths.
"""
from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2

from graphxform.core import clib
from graphxform.core.clib import ShapeGraph, ShapeGraphError
from graphxform.core.errors import GraphxformError
from graphxform.core.names import canon, parse_input
from graphxform.tf import capi

if TYPE_CHECKING:  # pragma: no cover
    from graphxform.model.model import Model

log = logging.getLogger(__name__)


class GraphSession:
    """A TF1 session over one ``GraphDef``; ``run`` may be called many times.

    >>> with GraphSession(gd, init_ops=["init_all_tables"]) as s:   # doctest: +SKIP
    ...     y, = s.run({"x:0": x}, ["y:0"])
    """

    def __init__(
        self,
        graph_def: graph_pb2.GraphDef | bytes,
        *,
        init_ops: Sequence[str] = (),
        init_feeds: Mapping[str, Any] | None = None,
        optimize: bool = True,
        c_api: bool = False,
    ) -> None:
        """``optimize=False`` turns Grappler and TF's graph optimizer off: cheaper for one-shot evaluations.

        ``c_api=True``: import and run through TensorFlow's C API (:class:`CGraph`), without a Python
        ``tf.Graph`` (whose importer builds a Python ``Operation`` per node); feeds and fetches are tensor
        names, static shapes are read with :meth:`static_shape`, init ops are not supported, and
        :attr:`tf_graph` is ``None``. ``graph_def`` may then be its serialized bytes.
        """
        config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)
        if not optimize:
            config.graph_options.optimizer_options.opt_level = config_pb2.OptimizerOptions.L0
            config.graph_options.rewrite_options.disable_meta_optimizer = True
        self.c_graph: CGraph | None = None
        if c_api:
            if init_ops:
                raise GraphxformError("GraphSession(c_api=True) runs no init ops")
            data = graph_def if isinstance(graph_def, bytes) else graph_def.SerializeToString()
            self.tf_graph = None
            self.c_graph = CGraph(data, config)
            return
        self.tf_graph = tf.Graph()
        with self.tf_graph.as_default():
            try:
                tf.graph_util.import_graph_def(graph_def, name="")
            except (ValueError, tf.errors.OpError) as exc:
                raise GraphxformError(f"TensorFlow refused the graph: {exc}") from exc
        self.session = tf.compat.v1.Session(graph=self.tf_graph, config=config)
        if init_ops:
            try:
                ops = [self.tf_graph.get_operation_by_name(parse_input(o)[0]) for o in init_ops]
                self.session.run(ops, feed_dict=self._feed(init_feeds or {}))
            except (KeyError, ValueError, tf.errors.OpError) as exc:
                self.session.close()
                detail = exc.message if isinstance(exc, tf.errors.OpError) else str(exc)
                raise GraphxformError(f"running the init op / table initializers {list(init_ops)[:3]} failed: "
                                      f"{detail}") from exc

    def _feed(self, feeds: Mapping[str, Any]) -> dict[Any, Any]:
        return {self.tf_graph.get_tensor_by_name(canon(k)): v for k, v in feeds.items()}

    def run(self, feeds: Mapping[str, Any], fetches: Iterable[str]) -> list[np.ndarray]:
        """Fetch ``fetches`` (tensor names) given ``feeds`` ({tensor name: value})."""
        if self.c_graph is not None:
            return self.c_graph.run({canon(k): v for k, v in feeds.items()}, [canon(f) for f in fetches])
        fetch_list = [self.tf_graph.get_tensor_by_name(canon(f)) for f in fetches]
        return self.session.run(fetch_list, feed_dict=self._feed(feeds))

    def evaluate_constant(self, tensor: str) -> np.ndarray | None:
        """``tensor`` 's value computed without a session run when TensorFlow can (``c_api=True`` only; see
        :meth:`CGraph.evaluate_constant`), else ``None``."""
        return self.c_graph.evaluate_constant(canon(tensor)) if self.c_graph is not None else None

    def static_shape(self, tensor: str) -> tuple[tf.DType, list[int | None] | None]:
        """The dtype and the static shape TensorFlow's shape inference gives ``tensor`` (``None``: unknown rank;
        ``None`` entries: unknown dimensions)."""
        if self.c_graph is not None:
            return self.c_graph.static_shape(canon(tensor))
        t = self.tf_graph.get_tensor_by_name(canon(tensor))
        return t.dtype, (None if t.shape.rank is None else t.shape.as_list())

    def num_outputs(self, op: str) -> int:
        if self.c_graph is not None:
            return self.c_graph.num_outputs(op)
        return len(self.tf_graph.get_operation_by_name(op).outputs)

    def close(self) -> None:
        if self.c_graph is not None:
            self.c_graph.close()
        else:
            self.session.close()

    def __enter__(self) -> GraphSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CGraph:
    """A ``GraphDef`` imported into a C API ``TF_Graph`` (``TF_GraphImportGraphDef``: TensorFlow's importer and
    shape inference, without the Python ``Operation`` s) and run by a ``TF_Session`` on it."""

    def __init__(self, graph_def: bytes, config: config_pb2.ConfigProto) -> None:
        self.lib = lib = clib.lib()
        self.session: int | None = None
        try:
            self.shapes: ShapeGraph | None = ShapeGraph(graph_def)
        except ShapeGraphError as exc:
            raise GraphxformError(f"TensorFlow refused the graph: {exc}") from None
        self.graph: int | None = self.shapes.graph
        self._config = config  # the session is created on the first run (constants may need none)

    def _session(self) -> int:
        if self.session is not None:
            return self.session
        lib, status = self.lib, clib.Status()
        opts = lib.TF_NewSessionOptions()
        try:
            data = self._config.SerializeToString()
            lib.TF_SetConfig(opts, ctypes.create_string_buffer(data, len(data)), len(data), status.ptr)
            session = lib.TF_NewSession(self.graph, opts, status.ptr)
        finally:
            lib.TF_DeleteSessionOptions(opts)
        if status.code != 0:
            raise GraphxformError(f"TensorFlow could not create a session: {status.message}")
        self.session = session
        return session

    def evaluate_constant(self, tensor: str) -> np.ndarray | None:
        """The value of ``tensor`` when TensorFlow's shape inference can compute it from constants alone
        (``TF_TryEvaluateConstant``: its own evaluator, one thread, no session or runtime to start), else ``None``
        (a session run computes it, or says why it cannot)."""
        result = ctypes.c_void_p()
        status = clib.Status()
        evaluated = self.lib.TF_TryEvaluateConstant(self.graph, self._output(tensor), ctypes.byref(result),
                                                    status.ptr)
        if not result.value:
            return None
        try:
            return capi._from_tensor(result.value) if evaluated and status.code == 0 else None  # noqa: SLF001
        finally:
            capi._delete_tensor(result.value)  # noqa: SLF001

    def _output(self, tensor: str) -> clib.Output:
        name, port, _ = parse_input(tensor)
        op = self.lib.TF_GraphOperationByName(self.graph, name.encode())
        if not op or port >= self.lib.TF_OperationNumOutputs(op):
            raise GraphxformError(f"the graph has no tensor {tensor!r}")
        return clib.Output(op, port)

    def num_outputs(self, op_name: str) -> int:
        op = self.lib.TF_GraphOperationByName(self.graph, op_name.encode())
        if not op:
            raise GraphxformError(f"the graph has no operation {op_name!r}")
        return int(self.lib.TF_OperationNumOutputs(op))

    def static_shape(self, tensor: str) -> tuple[tf.DType, list[int | None] | None]:
        out = self._output(tensor)
        dtype = _as_dtype(int(self.lib.TF_OperationOutputType(out)))
        assert self.shapes is not None
        shape = self.shapes.output_shape(out)
        return dtype, None if shape is None else list(shape)

    def run(self, feeds: Mapping[str, Any], fetches: Sequence[str]) -> list[np.ndarray]:
        """Fetch ``fetches`` given ``feeds`` (tensor names); a failure raises ``tf.errors.OpError`` with
        TensorFlow's message, as a Python session would."""
        lib = self.lib
        names = list(feeds)
        inputs = (clib.Output * max(len(names), 1))(*[self._output(n) for n in names])
        outputs = (clib.Output * max(len(fetches), 1))(*[self._output(f) for f in fetches])
        in_values = (ctypes.c_void_p * max(len(names), 1))()
        out_values = (ctypes.c_void_p * max(len(fetches), 1))()
        dtypes: list[int] = []
        status = clib.Status()
        try:
            for i, name in enumerate(names):
                value, dtype_enum = capi._feed_dtype(feeds[name])  # noqa: SLF001
                dtypes.append(dtype_enum)
                in_values[i] = capi._to_tensor(value, dtype_enum)  # noqa: SLF001
            lib.TF_SessionRun(self._session(), None, inputs, in_values, len(names), outputs, out_values, len(fetches),
                              None, 0, None, status.ptr)
            if status.code != 0:
                raise tf.errors.OpError(None, None, status.message, status.code)
            return [capi._from_tensor(out_values[i]) for i in range(len(fetches))]  # noqa: SLF001
        finally:
            for i, dtype_enum in enumerate(dtypes):
                if in_values[i]:
                    capi._delete_tensor(in_values[i], dtype_enum)  # noqa: SLF001
            for i in range(len(fetches)):
                if out_values[i]:
                    capi._delete_tensor(out_values[i])  # noqa: SLF001

    def close(self) -> None:
        if self.session is not None:
            status = clib.Status()
            self.lib.TF_CloseSession(self.session, status.ptr)
            self.lib.TF_DeleteSession(self.session, status.ptr)
            self.session = None
        if self.shapes is not None:
            self.shapes.close()
            self.shapes = self.graph = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


_as_dtype = lru_cache(maxsize=None)(tf.as_dtype)


def run_graph_def(
    graph_def: graph_pb2.GraphDef,
    feeds: Mapping[str, Any],
    fetches: Sequence[str],
    *,
    init_ops: Sequence[str] = (),
    init_feeds: Mapping[str, Any] | None = None,
) -> list[np.ndarray]:
    """Run ``graph_def`` once: import, run ``init_ops``, fetch ``fetches``."""
    with GraphSession(graph_def, init_ops=init_ops, init_feeds=init_feeds) as s:
        return s.run(feeds, fetches)


def asset_feeds(model: Model) -> dict[str, str]:
    """{asset path tensor: current path of the file} for a model's assets."""
    return {a.tensor_name: str(a.source_path) for a in model.assets}


def model_session(model: Model) -> GraphSession:
    """A session over ``model.graph`` with assets fed and the init op / table initializers run."""
    init = [model.init_op] if model.init_op else []
    init += [t for t in model.table_initializers if t not in init]
    feeds = asset_feeds(model)
    session = GraphSession(model.graph.to_graph_def(), init_ops=init, init_feeds=feeds)
    return session


def run_signature(
    model: Model, key: str, inputs: Mapping[str, Any], session: GraphSession | None = None
) -> dict[str, np.ndarray]:
    """Run signature ``key`` of a model on ``inputs`` ({input key: array}); returns {output key: array}.

    Works on frozen models (variables are constants) and on graphs whose
    variables need no restore; pass a ``session`` to reuse one.
    """
    sig = model.signature(key)
    missing = set(sig.inputs) - set(inputs)
    if missing:
        raise GraphxformError(f"signature {key!r} needs inputs {sorted(missing)}")
    own = session is None
    s = session or model_session(model)
    try:
        feeds = {**asset_feeds(model), **{sig.inputs[k].name: v for k, v in inputs.items() if k in sig.inputs}}
        out_keys = sorted(k for k, spec in sig.outputs.items() if spec.name)
        values = s.run(feeds, [sig.outputs[k].name for k in out_keys])
        return dict(zip(out_keys, values))
    finally:
        if own:
            s.close()
