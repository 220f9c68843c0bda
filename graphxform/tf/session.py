"""Running graphs in TensorFlow: a ``GraphDef`` or a ``Model``'s signatures, in one session.

Used to fold constants, to verify rewrites and in tests. The graph is
imported as is (no name prefix) into a fresh ``tf.Graph``; table
initializers/init op run first; asset path tensors are fed with the asset
files' current paths.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2

from graphxform.core.errors import GraphxformError
from graphxform.core.names import canon, parse_input

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
        graph_def: graph_pb2.GraphDef,
        *,
        init_ops: Sequence[str] = (),
        init_feeds: Mapping[str, Any] | None = None,
        optimize: bool = True,
    ) -> None:
        """``optimize=False`` turns Grappler and TF's graph optimizer off: cheaper for one-shot evaluations."""
        self.tf_graph = tf.Graph()
        with self.tf_graph.as_default():
            try:
                tf.graph_util.import_graph_def(graph_def, name="")
            except (ValueError, tf.errors.OpError) as exc:
                raise GraphxformError(f"TensorFlow refused the graph: {exc}") from exc
        config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)
        if not optimize:
            config.graph_options.optimizer_options.opt_level = config_pb2.OptimizerOptions.L0
            config.graph_options.rewrite_options.disable_meta_optimizer = True
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
        fetch_list = [self.tf_graph.get_tensor_by_name(canon(f)) for f in fetches]
        return self.session.run(fetch_list, feed_dict=self._feed(feeds))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GraphSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
