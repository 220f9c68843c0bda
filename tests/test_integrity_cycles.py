"""The loader's acyclicity check (``integrity._has_cycle``: Kahn's algorithm over the view's dicts) says what
networkx says of the subgraph of the graph's nodes, on random graphs with self loops, control edges, several edges
between two nodes and inputs naming no node; and a TF1 while loop (a cycle through ``NextIteration``) still loads."""
from __future__ import annotations

import networkx as nx
import tensorflow as tf
from conftest import control_flow_v1, graph_def_of
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import graph_pb2, node_def_pb2

from graphxform.core.graph import Graph
from graphxform.model.integrity import _has_cycle, problems  # noqa: PLC2701

EDGE = st.tuples(st.integers(-1, 7), st.integers(0, 1), st.booleans())  # (source, port, control); -1: no node


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(EDGE, max_size=4), min_size=1, max_size=8))
def test_has_cycle_agrees_with_networkx(spec) -> None:
    nodes = []
    for i, edges in enumerate(spec):
        node = node_def_pb2.NodeDef(name=f"n{i}", op="NoOp")
        for src, port, control in edges:
            name = "missing" if src < 0 or src >= len(spec) else f"n{src}"
            node.input.append(f"^{name}" if control else f"{name}:{port}" if port else name)
        nodes.append(node)
    g = Graph(graph_pb2.GraphDef(node=nodes))
    assert _has_cycle(g) == (not nx.is_directed_acyclic_graph(g.nx.subgraph(g.node_names)))


def test_a_tf1_while_loop_is_no_problem_and_a_cycle_outside_one_is_named() -> None:
    def build() -> None:
        x = tf.compat.v1.placeholder(tf.float32, [], name="x")
        tf.identity(tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [0, x])[1], name="y")

    with control_flow_v1():
        g = Graph(graph_def_of(build))
    assert g.nodes_by_op("NextIteration") and _has_cycle(g)  # (NextIteration -> Merge closes the loop)
    assert problems(g) == []
    gd = graph_pb2.GraphDef()
    a = gd.node.add(name="a", op="Identity", input=["b"])
    a.attr["T"].type = tf.float32.as_datatype_enum
    b = gd.node.add(name="b", op="Identity", input=["a"])
    b.attr["T"].type = tf.float32.as_datatype_enum
    assert problems(Graph(gd)) == ["cycle outside control-flow frames: a -> b -> a"]


def test_dtype_problems_come_only_when_nothing_else_is_wrong_and_before_a_cycle() -> None:
    """A wrong input dtype is named when every input resolves (then a cycle is named after it); a dangling input
    hides it (dtypes are read from the producers)."""
    f32, i32 = tf.float32.as_datatype_enum, tf.int32.as_datatype_enum

    def graph(dangling: bool) -> Graph:
        gd = graph_pb2.GraphDef()
        c = gd.node.add(name="c", op="Const")
        c.attr["dtype"].type = i32
        c.attr["value"].tensor.dtype = i32
        c.attr["value"].tensor.int_val.append(1)
        neg = gd.node.add(name="neg", op="Neg", input=["c"])
        neg.attr["T"].type = f32
        for name, src in (("a", "b"), ("b", "ghost" if dangling else "a")):
            gd.node.add(name=name, op="Identity", input=[src]).attr["T"].type = f32
        return Graph(gd)

    assert problems(graph(False)) == ["Neg 'neg' takes float on input 'c', which is int32",
                                      "cycle outside control-flow frames: a -> b -> a"]
    assert problems(graph(True)) == ["node 'b' input 'ghost' names no node"]
