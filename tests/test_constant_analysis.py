"""The constant analysis behind fold_constants (``graphxform/tf/constant_analysis.py``) finds the constant nodes by
walking forward from the constant leaves only. These tests hold it to the definition, a topological walk of the
whole graph (FIFO queue, readers queued in graph order): same constant nodes, in the same order, same frontier, on
random graphs whose node order is not topological, with control inputs, missing inputs, excluded and stateful
nodes and cycles; and the reasons ``--explain`` gives, including for nodes on or after a cycle."""
from __future__ import annotations

from collections import defaultdict, deque

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import graph_pb2

from graphxform.core.graph import Graph
from graphxform.core.nodes import const, make_node
from graphxform.core.signature import Signature, TensorSpec
from graphxform.tf.constant_analysis import ConstantAnalysis, own_reason

F32 = tf.float32
OPS = ["Const", "Const", "AddV2", "AddV2", "Identity", "Placeholder", "RandomUniform"]


def _whole_graph_walk(graph: Graph, excluded: dict[str, str]) -> list[str]:
    """The constant nodes in the order a topological walk of every node reaches them (the definition)."""
    nodes = dict(zip(graph.node_names, graph))
    _, producers = graph.adjacency()
    indeg, succ = {}, defaultdict(list)
    for name in nodes:
        inside = [src for src in producers[name] if src in nodes]
        for src in inside:
            succ[src].append(name)
        indeg[name] = len(inside)
    feeds = {t.split(":")[0] for sig in graph.signatures.values() for s in sig.inputs.values()
             for t in s.tensor_names()}
    queue, constant, order = deque(n for n, d in indeg.items() if d == 0), set(), []
    while queue:
        name = queue.popleft()
        if (name not in excluded and all(src in constant for src in producers[name])
                and own_reason(graph, nodes[name], feeds) is None):
            constant.add(name)
            order.append(name)
        for dst in succ[name]:
            indeg[dst] -= 1
            if indeg[dst] == 0:
                queue.append(dst)
    return order


@st.composite
def _graphs(draw):
    n = draw(st.integers(2, 12))
    names = [f"n{i}" for i in range(n)]
    nodes = []
    for i, name in enumerate(names):
        op = draw(st.sampled_from(OPS))
        if op == "Const":
            inputs = [f"^{names[j]}" for j in draw(st.lists(st.integers(0, max(i - 1, 0)), max_size=1)) if j < i]
            nodes.append(const(name, np.float32(i), control_inputs=[s[1:] for s in inputs]))
            continue
        if op == "Placeholder":
            nodes.append(make_node(op, name, attrs={"dtype": F32}))
            continue
        picks = draw(st.lists(st.integers(0, max(i - 1, 0)), min_size=1, max_size=3)) if i else []
        inputs = [names[j] if draw(st.booleans()) else f"^{names[j]}" for j in picks]
        if draw(st.integers(0, 9)) == 0:
            inputs.append("ghost:1")  # a missing input
        attrs = {"dtype": F32, "T": F32} if op == "RandomUniform" else {"T": F32}
        nodes.append(make_node(op, name, inputs, attrs=attrs))
    if draw(st.booleans()) and n > 3:  # a back edge: a cycle through a later node
        src, dst = draw(st.integers(n // 2, n - 1)), draw(st.integers(1, n // 2))
        if nodes[dst].op not in ("Const", "Placeholder"):
            nodes[dst].input.append(names[src])
    order = draw(st.permutations(nodes))  # graph order is not topological
    excluded = {nm: "excluded" for nm in draw(st.lists(st.sampled_from(names), max_size=2))}
    later = draw(st.permutations(names))  # the order after an edit: not the order the view's edges were made in
    return order, excluded, later


@settings(max_examples=400, deadline=None)
@given(_graphs())
def test_constants_and_their_order_match_a_walk_of_the_whole_graph(case) -> None:
    nodes, excluded, later = case
    g = Graph(graph_pb2.GraphDef(node=nodes))
    g.reorder(later)
    analysis = ConstantAnalysis(g, excluded)
    expected = _whole_graph_walk(g, excluded)
    assert analysis.order == expected
    assert analysis.constant == set(expected)
    frontier = analysis.frontier()
    assert list(frontier) == [n for n in expected if g.node(n).op != "Const" and n in frontier]
    for name in g.node_names:  # every node has a reason exactly when it is not constant
        assert (analysis.reason(name) is None) == (name in analysis.constant), name


def test_reasons_on_and_after_a_cycle_and_before_it() -> None:
    """x -> a -> m <-> nxt (a loop), m -> after; c -> k (constant), c -> a (reads x too)."""
    g = Graph(graph_pb2.GraphDef(node=[make_node("Placeholder", "x", attrs={"dtype": F32}), const("c", np.float32(2)),
                 make_node("AddV2", "a", ["x", "c"], attrs={"T": F32}),
                 make_node("AddV2", "m", ["a", "nxt"], attrs={"T": F32}),
                 make_node("Neg", "nxt", ["m"], attrs={"T": F32}),
                 make_node("Neg", "after", ["m"], attrs={"T": F32}),
                 make_node("Neg", "k", ["c"], attrs={"T": F32})]))
    g.signatures["s"] = Signature("s", "m", {"x": TensorSpec("x:0", 1, None)}, {"y": TensorSpec("k:0", 1, None)})
    analysis = ConstantAnalysis(g)
    assert analysis.order == ["c", "k"] and analysis.frontier() == {"k": [0]}
    assert analysis.reason("k") is None
    assert analysis.reason("a") == "'a' depends on 'x', which is not constant: 'x' is a signature input (a feed point)"
    for name in ("m", "nxt", "after"):
        assert analysis.reason(name) == f"{name!r} is on or after a cycle (a TF1 while loop)"
    assert analysis.reason("ghost") == "no node named 'ghost'"
