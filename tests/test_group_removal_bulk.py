"""``Graph.remove_group`` of a large share of the graph takes a bulk path (``view.cut_group``: the dicts of what
stays filtered once). It must leave exactly what removing the nodes one by one leaves: the view's dicts in the
same order with the same edge keys, the nodes in order, the op and colocation indexes, the recorded delta."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import graph_pb2, node_def_pb2

import graphxform.core.graph as graph_module
from graphxform.core.errors import GraphError
from graphxform.core.graph import Graph

N = 12


def _graph(spec: list[tuple[int, list[tuple[int, int, bool]], bool]]) -> Graph:
    """Node ``i`` runs ``Op{op}`` and reads earlier nodes (``(source, port, control)``; source ``-1``: a name
    that is no node), and colocates with node 0 when asked (a ``_class`` attr)."""
    nodes = []
    for i, (op, inputs, colocated) in enumerate(spec):
        node = node_def_pb2.NodeDef(name=f"n{i}", op=f"Op{op}")
        for src, port, control in inputs:
            name = "missing" if src < 0 else f"n{src % i}" if i else "missing"
            node.input.append(f"^{name}" if control else name if not port else f"{name}:{port}")
        node.input.sort(key=lambda s: s.startswith("^"))  # (control inputs come last)
        if colocated and i:
            node.attr["_class"].list.s.append(b"loc:@n0")
        nodes.append(node)
    return Graph(graph_pb2.GraphDef(node=nodes))


def _downstream(g: Graph, seeds: list[str]) -> list[str]:
    """``seeds`` and every node reading them, transitively (a group nothing outside it reads), in graph order."""
    found, stack = set(), list(seeds)
    while stack:
        name = stack.pop()
        if name not in found:
            found.add(name)
            stack.extend(d for d in g.nx._succ[name] if g.nx._node[d]["op"] is not None)  # noqa: SLF001
    return [n for n in g.node_names if n in found]


def _state(g: Graph, delta) -> tuple:
    nx_ = g.nx
    return (list(nx_._node.items()),  # noqa: SLF001
            [(n, [(d, list(k.items())) for d, k in out.items()]) for n, out in nx_._succ.items()],  # noqa: SLF001
            [(n, [(s, list(k.items())) for s, k in inn.items()]) for n, inn in nx_._pred.items()],  # noqa: SLF001
            list(g.node_names), [(op, list(names)) for op, names in g._by_op.items()],  # noqa: SLF001
            {t: sorted(users) for t, users in g.colocation_index().items()}, g.op_kinds(),
            list(delta.before.items()), sorted(delta.touched))


SPECS = st.lists(st.tuples(st.integers(0, 2),
                           st.lists(st.tuples(st.integers(-1, N), st.integers(0, 2), st.booleans()), max_size=3),
                           st.booleans()), min_size=2, max_size=N)


@settings(max_examples=300, deadline=None)
@given(SPECS, st.data())
def test_bulk_removal_leaves_what_one_by_one_removal_leaves(spec, data) -> None:
    probe = _graph(spec)
    seeds = data.draw(st.lists(st.sampled_from(probe.node_names), min_size=1, max_size=4))
    group = _downstream(probe, seeds)
    order = data.draw(st.permutations(group))  # (any order: members read only one another)
    index_first = data.draw(st.booleans())  # the colocation index built before the removal, or after
    states = []
    for share in (1, 10 ** 9):  # bulk (a group of any size), then one by one
        g = _graph(spec)
        if index_first:
            g.colocation_index()
        graph_module_share = graph_module._BULK_SHARE  # noqa: SLF001
        graph_module._BULK_SHARE = share  # noqa: SLF001
        try:
            with g.recording() as delta:
                g.remove_group(list(order))
        finally:
            graph_module._BULK_SHARE = graph_module_share  # noqa: SLF001
        assert [p for p in g.lint() if "names no node" not in p] == []  # (the graph's own dangling inputs stay)
        states.append((_state(g, delta), g.lint()))
    assert states[0] == states[1]


def test_bulk_removal_is_taken_for_a_quarter_of_the_graph_and_refuses_before_removing(monkeypatch) -> None:
    g = _graph([(0, [], False), (1, [(0, 0, False)], False), (1, [(1, 0, False)], False), (2, [], False)])
    calls = []
    cut = graph_module.view.cut_group
    monkeypatch.setattr(graph_module.view, "cut_group", lambda *a: calls.append(1) or cut(*a))
    with pytest.raises(GraphError, match="'n1': still consumed by n2"):
        g.remove_group(["n0", "n1"])  # n2 reads n1 and stays
    assert g.node_names == ["n0", "n1", "n2", "n3"] and not calls
    g.remove_group(["n2"])  # a quarter of four nodes: in bulk
    assert calls == [1] and g.node_names == ["n0", "n1", "n3"] and g.lint() == []
