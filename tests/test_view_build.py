"""The view built at load (``core/view.py`` ``build``, with its inlined split of input strings) is exactly the graph
``networkx.MultiDiGraph.add_edge`` gives from :func:`~graphxform.core.names.parse_input` on every input: same nodes
and ops, same edges with the same data and keys, in the same order, for every form an input string takes."""
from __future__ import annotations

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import graph_pb2, node_def_pb2

from graphxform.core import view
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input

NAMES = ["a", "b", "c/d", "e:f", "x"]  # "x" is never a node: a dangling input
INPUTS = st.sampled_from(
    ["a", "b", "c/d", "e:f", "x", "a:0", "a:1", "b:12", "c/d:2", "e:f:1", "a:", "a:z", "a:01", "^a", "^b", "^x",
     "^c/d", "^", ""])


def _reference(nodes: dict[str, node_def_pb2.NodeDef]) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    for name, node in nodes.items():
        g.add_node(name, op=node.op)
    for name, node in nodes.items():
        for dst_port, inp in enumerate(node.input):
            src, src_port, control = parse_input(inp)
            if src not in g:
                g.add_node(src, op=None)
            g.add_edge(src, name, src_port=src_port, dst_port=-1 if control else dst_port, control=control)
    return g


def _dump(g: nx.MultiDiGraph) -> tuple:
    return (list(g.nodes(data=True)),
            [(n, [(d, list(keys.items())) for d, keys in g._succ[n].items()]) for n in g],  # noqa: SLF001
            [(n, [(s, list(keys.items())) for s, keys in g._pred[n].items()]) for n in g])  # noqa: SLF001


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(INPUTS, max_size=6), min_size=len(NAMES) - 1, max_size=len(NAMES) - 1))
def test_build_matches_add_edge_on_every_input_form(input_lists: list[list[str]]) -> None:
    nodes = {name: node_def_pb2.NodeDef(name=name, op=f"Op{i % 2}", input=inputs)
             for i, (name, inputs) in enumerate(zip([n for n in NAMES if n != "x"], input_lists))}
    built = nx.MultiDiGraph()
    by_op = view.build(built, nodes)
    assert _dump(built) == _dump(_reference(nodes))
    assert by_op == {op: {n: None for n, node in nodes.items() if node.op == op} for op in ("Op0", "Op1")
                     if any(node.op == op for node in nodes.values())}


def test_graph_load_keeps_port_and_control_edges_apart() -> None:
    """Two data edges and a control edge from one producer to one consumer: three keyed edges, ports kept."""
    gd_nodes = [node_def_pb2.NodeDef(name="p", op="Split"),
                node_def_pb2.NodeDef(name="q", op="AddV2", input=["p:1", "p", "^p"])]
    g = Graph(graph_pb2.GraphDef(node=gd_nodes))
    assert g.lint() == []
    assert dict(g.nx._pred["q"]["p"]) == {  # noqa: SLF001
        0: {"src_port": 1, "dst_port": 0, "control": False},
        1: {"src_port": 0, "dst_port": 1, "control": False},
        2: {"src_port": -1, "dst_port": -1, "control": True}}


def _tiny_chain() -> graph_pb2.GraphDef:
    """x -> (Identity, AddV2 of duplicate Consts, Mul) x 20: identities to bypass, duplicates to merge."""
    from tests.bench.models import synthetic_graph

    return synthetic_graph(120, "chain")[0]


def test_edges_and_nodes_share_their_attribute_dicts() -> None:
    """Edges with the same ports share one data dict, nodes with the same op one attribute dict (a 1M-node graph
    would hold two million otherwise)."""
    g = Graph(graph_pb2.GraphDef(node=[
        node_def_pb2.NodeDef(name="p", op="Split"), node_def_pb2.NodeDef(name="r", op="Split"),
        node_def_pb2.NodeDef(name="q", op="AddV2", input=["p", "r"]),
        node_def_pb2.NodeDef(name="s", op="AddV2", input=["r", "p:1"])]))
    succ = g.adjacency()[0]
    assert succ["p"]["q"][0] is succ["r"]["s"][0]  # output 0 to input 0
    assert succ["p"]["q"][0] is not succ["r"]["q"][0]  # input 1
    assert g.nx.nodes["q"] is g.nx.nodes["s"] and g.nx.nodes["p"] is not g.nx.nodes["q"]


def test_moving_an_edge_never_modifies_a_shared_dict() -> None:
    """replace_uses points edges elsewhere with another shared dict; the one the others hold keeps its ports."""
    g = Graph(graph_pb2.GraphDef(node=[
        node_def_pb2.NodeDef(name="p", op="Split"), node_def_pb2.NodeDef(name="r", op="Split"),
        node_def_pb2.NodeDef(name="q", op="Relu", input=["p"]),
        node_def_pb2.NodeDef(name="s", op="Relu", input=["p"])]))
    before = g.adjacency()[0]["p"]["s"][0]
    g.replace_uses({"p:0": "r:1"}, skip={"s"})
    assert g.adjacency()[1]["q"]["r"][0] == {"src_port": 1, "dst_port": 0, "control": False}
    assert before == {"src_port": 0, "dst_port": 0, "control": False} and g.adjacency()[0]["p"]["s"][0] is before
    g.update_node(node_def_pb2.NodeDef(name="s", op="Sigmoid", input=["p"]))  # an op change replaces the dict
    assert g.nx.nodes["s"]["op"] == "Sigmoid" and g.nx.nodes["q"]["op"] == "Relu"
    assert g.lint() == []


def test_shared_dicts_hold_their_values_after_a_pipeline() -> None:
    """After the default pipeline moved, removed and merged edges and nodes, every shared dict still says what it
    stands for, and the view agrees with the nodes (lint compares ops and every edge's ports)."""
    from graphxform.engine.pipeline import build_pipeline
    from graphxform.engine.runner import run_pipeline

    g = Graph(_tiny_chain(), protected={"x", "y"})
    n0 = len(g)
    run_pipeline(g, build_pipeline("prune_control_deps remove_identity merge_duplicates strip_unused fold_constants"))
    assert len(g) < n0 / 2  # (identities bypassed, duplicates merged, constants folded)
    assert g.lint() == []
    for (src_port, dst_port, control), data in view._EDGE_DATA.items():  # noqa: SLF001
        assert data == {"src_port": src_port, "dst_port": dst_port, "control": control}
    for op, attrs in view._NODE_ATTRS.items():  # noqa: SLF001
        assert attrs == {"op": op}
