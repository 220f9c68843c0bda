"""``Shape``/``Size``/``Rank``/``ShapeN`` of tensors whose shape TensorFlow infers statically, as ``Const`` s.

``fold_constants`` folds them as GTT's does (its shape map comes from TensorFlow's shape inference on import):
the graph the nodes read is imported once (through TensorFlow's C API: no Python ``Operation`` per node), and
every such node whose input shape is fully known (for ``Rank``: whose rank is known) becomes a ``Const`` of the
same name. ``_output_shapes`` attrs count
only when asked (GTT's ``clear_output_shapes=false``).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from graphxform import Replacement, const
from graphxform.core.errors import GraphxformError
from graphxform.core.graph import Graph
from graphxform.core.opdefs import CONTROL_FLOW_OPS
from graphxform.core.shapes import light_copy
from graphxform.engine.apply import apply_replacement
from graphxform.engine.context import Context
from graphxform.tf.session import CGraph

log = logging.getLogger(__name__)

SHAPE_OPS = frozenset({"Shape", "Size", "Rank", "ShapeN"})


def _candidates(graph: Graph, skip: Mapping[str, str]) -> list[str]:
    """Shape ops whose inputs are not all ``Const`` s (those fold anyway), outside TF1 control-flow frames."""
    out = []
    for node in graph.nodes_by_op(*SHAPE_OPS):
        if node.name in skip or graph.is_protected(node.name):
            continue
        if all(graph.producer(i).op == "Const" for i in graph.data_inputs(node.name)):
            continue
        out.append(node.name)
    if out and any(graph.nodes_by_op(*CONTROL_FLOW_OPS)):
        in_frame = Context().frame_facts(graph).in_frame
        out = [n for n in out if n not in in_frame]
    return out


def _imported(graph: Graph, names: list[str], use_output_shapes: bool) -> CGraph | None:
    """The ancestors of ``names`` imported through TensorFlow's C API (its importer infers every static shape;
    no Python ``Operation`` per node), big weights as placeholders; ``None`` when TensorFlow refuses them."""
    gd = graph_pb2.GraphDef()
    gd.versions.CopyFrom(graph.versions)
    if graph.library.function:
        gd.library.CopyFrom(graph.library)
    needed = graph.ancestors(names)
    for name in graph.node_names:
        if name not in needed:
            continue
        node = gd.node.add()
        node.CopyFrom(light_copy(graph.node(name), keep_output_shapes=use_output_shapes))  # weights not copied
        node.device = ""
    try:
        return CGraph(gd.SerializeToString(), None)
    except GraphxformError as exc:
        log.debug("fold_constants: static shapes unknown, TensorFlow refused the graph: %s", exc)
        return None


def _values(graph: Graph, imported: CGraph, name: str) -> list[np.ndarray] | None:
    """The values shape op ``name`` computes, when its inputs' static shapes tell them."""
    node = graph.node(name)
    shapes = [imported.static_shape(i)[1] for i in graph.data_inputs(name)]
    if node.op == "Rank":
        return None if shapes[0] is None else [np.array(len(shapes[0]), np.int32)]
    out_type = tf.as_dtype(node.attr["out_type"].type if "out_type" in node.attr else tf.int32).as_numpy_dtype
    if any(s is None or None in s for s in shapes):
        return None
    if node.op == "Size":
        return [np.array(np.prod(shapes[0], dtype=np.int64), out_type)]
    return [np.array(s, out_type) for s in shapes]


def static_shape_folds(graph: Graph, skip: Mapping[str, str], *, use_output_shapes: bool,
                       unknown: dict[str, bytes] | None = None) -> Replacement | None:
    """The replacement that turns every shape op of statically known value into a ``Const`` (``None``: none).

    Output 0 keeps the node's name; output ``p`` of a ``ShapeN`` becomes ``<name>/output_<p>``. ``unknown``
    (kept by the caller for a run) remembers the shape ops found not foldable, so later rounds do not import
    the graph again for them: a rewrite keeps the value, hence the shape, of every tensor it leaves.
    """
    unknown = {} if unknown is None else unknown
    names = [n for n in _candidates(graph, skip)
             if unknown.get(n) != graph.node(n).SerializeToString(deterministic=True)]
    if not names:
        return None
    imported = _imported(graph, names, use_output_shapes)
    if imported is None:
        unknown.update((n, graph.node(n).SerializeToString(deterministic=True)) for n in names)
        return None
    try:
        found = {name: _values(graph, imported, name) for name in names}
    finally:
        imported.close()
    rep = Replacement()
    for name in names:
        values = found[name]
        if values is None:
            unknown[name] = graph.node(name).SerializeToString(deterministic=True)
            continue
        node = graph.node(name)
        for port, value in enumerate(values):
            attrs = {"_output_shapes": [tf.TensorShape(value.shape).as_proto()]} if use_output_shapes else None
            if port == 0:
                rep.update.append(const(name, value, device=node.device, attrs=attrs))
            elif port in graph.output_ports(name):
                new = graph.unique_name(f"{name}/output_{port}")
                rep.add.append(const(new, value, device=node.device, attrs=attrs))
                rep.replace[f"{name}:{port}"] = f"{new}:0"
    if rep.is_empty():
        return None
    log.info("fold_constants: %d shape ops have statically known values", len(rep.update))
    return rep


def copy_with(graph: Graph, rep: Replacement) -> Graph:
    """A copy of ``graph`` (signatures and protection included) with ``rep`` applied; ``graph`` is untouched."""
    out = Graph(graph.to_graph_def(), signatures=copy.deepcopy(graph.signatures), protected=set(graph.protected))
    apply_replacement(out, rep)
    return out


__all__ = ["SHAPE_OPS", "copy_with", "static_shape_folds"]
