"""Ports of ``tensorflow/tools/graph_transforms/sort_by_execution_order_test.cc`` (``SortByExecutionOrderTest``).

GTT's ``sort_by_execution_order`` orders the nodes so that every node comes
after its inputs (the C++ tests call the ``SortByExecutionOrder`` utility it
wraps). Deliberate difference: graphxform accepts ``sort_by_execution_order``
as a no-op (TensorFlow imports a GraphDef's nodes in any order) and keeps the
input's node order. Each port checks that the transform is accepted, changes
nothing, and records where GTT would have put the nodes.
"""
from __future__ import annotations

import logging

from .conftest import graph_def, node, transform


def _unchanged(gd, caplog):
    with caplog.at_level(logging.INFO, logger="graphxform.engine.pipeline"):
        out = transform(gd, [], [], "sort_by_execution_order")
    assert "sort_by_execution_order: accepted as a no-op" in caplog.text
    assert out.node == gd.node  # same nodes, same order
    return {n.name: i for i, n in enumerate(out.node)}


def test_simple_add(caplog):
    """SortByExecutionOrderTest.TestSimpleAdd. GTT: ``add_node`` last (2); graphxform keeps it first."""
    gd = graph_def(node("add_node", "Add", ["a_node", "b_node"]), node("b_node", "Const"), node("a_node", "Const"))
    order = _unchanged(gd, caplog)
    assert order["add_node"] == 0  # GTT: 2


def test_simple_linear(caplog):
    """SortByExecutionOrderTest.TestSimpleLinear. GTT: const_node, relu_node, sqrt_node, negative_node."""
    gd = graph_def(
        node("negative_node", "Negative", ["sqrt_node"]),
        node("relu_node", "Relu", ["const_node"]),
        node("sqrt_node", "Sqrt", ["relu_node"]),
        node("const_node", "Const"),
    )
    order = _unchanged(gd, caplog)
    assert [order[n] for n in ("const_node", "relu_node", "sqrt_node", "negative_node")] == [3, 1, 2, 0]  # GTT: 0-3


def test_simple_tree(caplog):
    """SortByExecutionOrderTest.TestSimpleTree. GTT: ``add_node1`` last (6), the Consts before the Adds."""
    gd = graph_def(
        node("add_node1", "Add", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["const_node1", "const_node2"]),
        node("add_node3", "Add", ["const_node3", "const_node4"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
        node("const_node4", "Const"),
    )
    order = _unchanged(gd, caplog)
    assert order["add_node1"] == 0  # GTT: 6


def test_common_ancestor(caplog):
    """SortByExecutionOrderTest.TestCommonAncestor. GTT: ``add_node1`` last (5), ``const_node1`` before 3."""
    gd = graph_def(
        node("add_node1", "Add", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["const_node1", "const_node2"]),
        node("add_node3", "Add", ["const_node1", "const_node3"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
    )
    order = _unchanged(gd, caplog)
    assert order["add_node1"] == 0  # GTT: 5
