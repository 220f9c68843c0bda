"""``TransformGraph``: a drop-in for ``tensorflow.tools.graph_transforms.TransformGraph``.

GTT names are aliases of our rules (``remove_nodes`` → ``remove_identity``, ``merge_duplicate_nodes`` →
``merge_duplicates``, ``strip_unused_nodes`` → ``strip_unused``, ``fold_old_batch_norms`` →
``fold_batch_norms``), declared on the rules; the transform strings are read by
:mod:`graphxform.engine.gtt_syntax`, and :mod:`graphxform.engine.pipeline` lists the GTT transforms accepted
as no-ops and those refused. Unlike GTT, which ran each transform once in order, all rules run together to a
fixpoint (quantization last), so their order does not matter.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from graphxform.core.errors import GraphError
from graphxform.core.graph import Graph
from graphxform.core.memory import Trimmer
from graphxform.core.names import parse_input
from graphxform.core.nodes import make_node
from graphxform.core.signature import METHOD_PREDICT, Signature, TensorSpec
from graphxform.engine.pipeline import build_pipeline
from graphxform.engine.runner import run_pipeline

log = logging.getLogger(__name__)


def TransformGraph(
    graph_def: Any,
    inputs: Sequence[str] | str,
    outputs: Sequence[str] | str,
    transforms: Sequence[str] | str,
) -> Any:
    """Drop-in for ``tensorflow.tools.graph_transforms.TransformGraph``: returns a new ``GraphDef``.

    ``inputs``/``outputs`` are node names (``"x"``, ``"x:0"`` accepted); they
    are protected — kept, with their names — and every other node that the
    outputs do not need may go. ``transforms`` is a list of transform strings
    (each may hold several, with parameters) as the original took. The input
    ``graph_def`` is not modified.
    """
    if isinstance(graph_def, (bytes, bytearray)):
        gd = graph_pb2.GraphDef()
        gd.ParseFromString(bytes(graph_def))
        graph_def = gd
    if not isinstance(graph_def, graph_pb2.GraphDef):
        if hasattr(graph_def, "SerializeToString"):  # a GraphDef from another protobuf module copy
            gd = graph_pb2.GraphDef()
            gd.ParseFromString(graph_def.SerializeToString())
            graph_def = gd
        else:
            raise GraphError(f"TransformGraph takes a GraphDef, got {type(graph_def).__name__}")
    in_names = [parse_input(n)[0] for n in ([inputs] if isinstance(inputs, str) else inputs) if n]
    out_names = [parse_input(n)[0] for n in ([outputs] if isinstance(outputs, str) else outputs) if n]
    text = transforms if isinstance(transforms, str) else " ".join(transforms)
    rules = build_pipeline(text)
    if not rules:
        log.warning("TransformGraph: no transform to run in %r; returning the graph unchanged", text)
    graph = Graph(graph_def)
    missing = [n for n in in_names + out_names if n not in graph]
    if missing:
        raise GraphError(f"TransformGraph: {', '.join(repr(m) for m in missing)} named in inputs/outputs "
                         "is not a node of the graph")

    def spec(name: str) -> TensorSpec:
        tensor = f"{name}:0"
        try:
            dtype = graph.output_dtype(tensor) or 0
        except Exception:  # noqa: BLE001 - an op unknown to this TensorFlow: dtype stays unknown
            dtype = 0
        return TensorSpec(tensor, dtype, None)

    graph.signatures = {
        "serving_default": Signature("serving_default", METHOD_PREDICT,
                                     {n: spec(n) for n in in_names}, {n: spec(n) for n in out_names})
    } if in_names or out_names else {}
    graph.protected.update(in_names + out_names)
    if rules:
        run_pipeline(graph, rules)
    _keep_output_names(graph, out_names)
    graph.signatures = {}
    # No trim before the copy (on the benchmark models one here lowered no peak, and cost time in a caller's process
    # that holds a large heap); during it, the nodes the caller's GraphDef holds free nothing as they are let go, so
    # only the others count towards a trim.
    return graph.take_graph_def(Trimmer(kept={id(node) for node in graph_def.node}))


def _keep_output_names(graph: Graph, out_names: list[str]) -> None:
    """A rule may have moved an output to another tensor (e.g. folded it): give it its name back."""
    sig = graph.signatures.get("serving_default")
    if sig is None:
        return
    for name in out_names:
        tensor = sig.outputs[name].name
        if parse_input(tensor)[0] == name or name in graph:
            continue
        dtype = graph.output_dtype(tensor)
        graph.add_node(make_node("Identity", name, [tensor], attrs={"T": tf.as_dtype(dtype)} if dtype else None))
        log.info("TransformGraph: output %r was rewritten to %s; kept its name with an Identity", name, tensor)


__all__ = ["TransformGraph"]
