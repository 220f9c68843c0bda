"""Ports of ``tensorflow/tools/graph_transforms/sort_by_execution_order_test.cc`` (``SortByExecutionOrderTest``).

GTT's ``sort_by_execution_order`` lists the nodes so that every node comes after its inputs (the C++ tests
call the ``SortByExecutionOrder`` utility it wraps). Each port asserts the C++ test's positions; the extra
cases run a real graph before and after (same outputs, same nodes, only the order changes), a ``Merge``
ready after one data input, and a cycle refused.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from graphxform.core.errors import GraphxformError

from .conftest import build, graph_def, node, run, transform


def _order(gd):
    out = transform(gd, [], [], "sort_by_execution_order")
    assert sorted(n.SerializeToString(deterministic=True) for n in out.node) == sorted(
        n.SerializeToString(deterministic=True) for n in gd.node)  # the same nodes, unchanged
    return {n.name: i for i, n in enumerate(out.node)}


def test_simple_add():
    """SortByExecutionOrderTest.TestSimpleAdd."""
    gd = graph_def(node("add_node", "Add", ["a_node", "b_node"]), node("b_node", "Const"), node("a_node", "Const"))
    order = _order(gd)
    assert order["add_node"] == 2 and order["a_node"] < 2 and order["b_node"] < 2


def test_simple_linear():
    """SortByExecutionOrderTest.TestSimpleLinear."""
    gd = graph_def(
        node("negative_node", "Negative", ["sqrt_node"]),
        node("relu_node", "Relu", ["const_node"]),
        node("sqrt_node", "Sqrt", ["relu_node"]),
        node("const_node", "Const"),
    )
    order = _order(gd)
    assert [order[n] for n in ("const_node", "relu_node", "sqrt_node", "negative_node")] == [0, 1, 2, 3]


def test_simple_tree():
    """SortByExecutionOrderTest.TestSimpleTree."""
    gd = graph_def(
        node("add_node1", "Add", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["const_node1", "const_node2"]),
        node("add_node3", "Add", ["const_node3", "const_node4"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
        node("const_node4", "Const"),
    )
    order = _order(gd)
    assert order["add_node1"] == 6 and order["add_node2"] < 6 and order["add_node3"] < 6
    assert all(order[f"const_node{i}"] < 5 for i in range(1, 5))


def test_common_ancestor():
    """SortByExecutionOrderTest.TestCommonAncestor."""
    gd = graph_def(
        node("add_node1", "Add", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["const_node1", "const_node2"]),
        node("add_node3", "Add", ["const_node1", "const_node3"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
    )
    order = _order(gd)
    assert order["add_node1"] == 5 and order["add_node2"] < 5 and order["add_node3"] < 5
    assert order["const_node2"] < 4 and order["const_node3"] < 4 and order["const_node1"] < 3


def test_a_real_graph_runs_the_same_with_every_node_after_its_inputs():
    def fn():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        w = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4), name="w")
        with tf.control_dependencies([tf.no_op(name="first")]):
            y = tf.nn.relu(tf.matmul(x, w), name="y")
        tf.identity(y * 2.0 + 1.0, name="out")

    gd = build(fn)
    reversed_gd = graph_def(*reversed(list(gd.node)))  # consumers first, as a hand-edited file may list them
    out = transform(reversed_gd, ["x"], ["out"], "sort_by_execution_order")
    position = {n.name: i for i, n in enumerate(out.node)}
    assert len(position) == len(gd.node)
    for n in out.node:
        for inp in n.input:
            assert position[inp.lstrip("^").split(":")[0]] < position[n.name], (inp, n.name)
    feeds = {"x:0": np.arange(6, dtype=np.float32).reshape(2, 3)}
    np.testing.assert_array_equal(run(out, feeds, ["out:0"])[0], run(gd, feeds, ["out:0"])[0])


def test_merge_is_ready_after_one_data_input():
    # GTT: a Merge waits for one data input (and its control inputs), not all: the back edge of a loop.
    gd = graph_def(node("m", "Merge", ["a", "b"]), node("b", "Identity", ["m"]), node("a", "Const"))
    order = _order(gd)
    assert order == {"a": 0, "m": 1, "b": 2}


def test_a_cycle_is_refused():
    gd = graph_def(node("a", "Identity", ["b"]), node("b", "Identity", ["a"]), node("c", "Const"))
    with pytest.raises(GraphxformError):
        transform(gd, [], [], "sort_by_execution_order")
