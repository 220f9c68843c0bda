"""merge_duplicates' one replacement (duplicates removed as a group, uses of a duplicate by another duplicate not
named at all) leaves the graph that merging the duplicates one at a time leaves (every use of each duplicate moved
to its survivor, then the duplicate removed), on random graphs with chains of duplicates, control inputs and
signature outputs naming duplicates."""
from __future__ import annotations

from pathlib import Path

import graphxform.transforms.merge_duplicates as md
import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import graph_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.nodes import make_node
from graphxform.core.signature import TensorSpec
from graphxform.engine.apply import apply_replacement
from graphxform.engine.runner import run_pipeline
from graphxform.model.model import Model, Signature

OPS = ["Const", "Neg", "AddV2", "Mul", "Identity"]
NODE = st.tuples(st.sampled_from(OPS), st.integers(0, 1), st.integers(0, 10 ** 6), st.integers(0, 10 ** 6),
                 st.one_of(st.none(), st.integers(0, 10 ** 6)))


def _graph_def(spec: list[tuple]) -> graph_pb2.GraphDef:
    """Node ``n{i}`` runs ``op``: a Const of value 1 or 2, or reads earlier nodes (picked by ``a``, ``b``), with
    a control input on an earlier node when ``c`` is given. Few values and ops: many duplicates, in chains."""
    f32 = tf.float32
    nodes = [make_node("Placeholder", "x", attrs={"dtype": f32, "shape": tf.TensorShape([2]).as_proto()})]
    for i, (op, value, a, b, c) in enumerate(spec, start=1):
        name = f"n{i}"
        if op == "Const":
            node = make_node("Const", name, attrs={"dtype": f32, "value": np.full([2], 1.0 + value, np.float32)})
        else:
            inputs = [nodes[a % i].name] + ([nodes[b % i].name] if op in ("AddV2", "Mul") else [])
            node = make_node(op, name, inputs, attrs={"T": f32})
        if c is not None:
            node.input.append(f"^{nodes[c % i].name}")
        nodes.append(node)
    return graph_pb2.GraphDef(node=nodes)


def _model(gd: graph_pb2.GraphDef, outputs: list[str]) -> Model:
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [2])},
                    outputs={n: TensorSpec(f"{n}:0", types_pb2.DT_FLOAT, [2]) for n in outputs})
    return Model(Graph(gd), {"serving_default": sig}, Path("mem"), "graph_def")


def _state(model: Model) -> tuple:
    """The graph and its signature outputs, without control inputs on a node also read as data (redundant: one at
    a time, ``^n2 -> ^n1`` then ``n3 -> n1`` leaves ``AddV2(x, n1, ^n1)``; the group's control move, made after
    its data moves, sees ``n1`` read already and leaves ``AddV2(x, n1)``)."""
    outputs = {k: s.name for k, s in model.signatures["serving_default"].outputs.items()}
    gd = model.graph.to_graph_def()
    for node in gd.node:
        data = {i.split(":")[0] for i in node.input if not i.startswith("^")}
        kept = [i for i in node.input if not (i.startswith("^") and i[1:] in data)]
        if len(kept) != len(node.input):
            del node.input[:]
            node.input.extend(kept)
    return gd.SerializeToString(deterministic=True), outputs


@settings(max_examples=200, deadline=None)
@given(st.lists(NODE, min_size=1, max_size=14), st.data())
def test_one_group_replacement_leaves_what_one_merge_at_a_time_leaves(spec, data) -> None:
    gd = _graph_def(spec)
    names = [n.name for n in gd.node[1:]]
    outputs = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    found: list[dict[str, str]] = []
    replacements = md.MergeDuplicates._replacements  # noqa: SLF001

    def spy(graph, facts, survivor_of):
        found.append(dict(survivor_of))
        return replacements(graph, facts, survivor_of)

    model = _model(gd, outputs)
    md.MergeDuplicates._replacements = staticmethod(spy)  # noqa: SLF001
    try:
        run_pipeline(model.graph, [md.MergeDuplicates()])
    finally:
        md.MergeDuplicates._replacements = staticmethod(replacements)  # noqa: SLF001
    assert model.graph.lint() == []

    reference = _model(gd, outputs)  # each duplicate in turn (producers first): all its uses, then itself
    graph = reference.graph
    ports = md._Facts(graph).signature_ports  # noqa: SLF001
    for survivor_of in found:
        for dup, survivor in survivor_of.items():
            assert apply_replacement(graph, md.merge_replacement(graph, dup, survivor, ports.get(dup, set()))) == [dup]
    assert _state(model) == _state(reference)
