"""Ports of ``tensorflow/tools/graph_transforms/strip_unused_nodes_test.cc`` (``StripUnusedNodesTest``).

GTT's ``strip_unused_nodes`` keeps what the outputs need, walking up from the
outputs and stopping at the inputs; an input that is not a ``Placeholder`` is
replaced by one (its ancestors go), typed by ``type`` (default float) or
``type_for_name`` and shaped by ``shape`` (default scalar) or
``shape_for_name``, each ``*_for_name`` paired with a ``name``.

The C++ tests use bare NodeDefs; so do the ports (the graphs are not run).
"""
from __future__ import annotations

import tensorflow as tf

from .conftest import graph_def, node, node_map, transform


def test_simple_add():
    """StripUnusedNodesTest.TestSimpleAdd: ``c_node`` (unused) goes."""
    gd = graph_def(
        node("add_node", "Add", ["a_node", "b_node"]),
        node("a_node", "Const"),
        node("b_node", "Const"),
        node("c_node", "Const"),
    )
    out = node_map(transform(gd, [], ["add_node"], "strip_unused_nodes"))
    assert {"add_node", "a_node", "b_node"} <= set(out)
    assert "c_node" not in out


def test_common_ancestor():
    """StripUnusedNodesTest.TestCommonAncestor: a shared ancestor stays once, ``add_node4`` goes, and the input
    ``dangling_input`` (a Const nothing reads) stays."""
    gd = graph_def(
        node("add_node1", "Add", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["const_node1", "const_node2"]),
        node("add_node3", "Add", ["const_node1", "const_node3"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
        node("dangling_input", "Const"),
        node("add_node4", "Add", ["add_node2", "add_node3"]),
    )
    out = node_map(transform(gd, ["dangling_input"], ["add_node1"], "strip_unused_nodes"))
    for name in ("add_node1", "add_node2", "add_node3", "const_node1", "const_node2", "const_node3",
                 "dangling_input"):
        assert name in out, name
    assert "add_node4" not in out and "const_node4" not in out


def _mul_input_graph():
    return graph_def(
        node("add_node", "Add", ["mul_node", "a_node"]),
        node("mul_node", "Mul", ["b_node", "c_node"]),
        node("a_node", "Const"),
        node("b_node", "Const"),
        node("c_node", "Const"),
    )


def _placeholder(n, dtype, dims):
    assert n.op == "Placeholder"
    assert n.attr["dtype"].type == dtype.as_datatype_enum
    assert tf.TensorShape(n.attr["shape"].shape).as_list() == dims


def test_simple_placeholder():
    """StripUnusedNodesTest.TestSimplePlaceholder: the input ``mul_node`` becomes a float scalar Placeholder and its
    inputs ``b_node``, ``c_node`` go."""
    out = node_map(transform(_mul_input_graph(), ["mul_node"], ["add_node"], "strip_unused_nodes"))
    assert "add_node" in out and "a_node" in out
    _placeholder(out["mul_node"], tf.float32, [])
    assert "b_node" not in out and "c_node" not in out


def test_placeholder_default_args():
    """StripUnusedNodesTest.TestPlaceholderDefaultArgs: ``type=int32, shape="1,2,3"`` type and shape it."""
    out = node_map(transform(_mul_input_graph(), ["mul_node"], ["add_node"],
                             'strip_unused_nodes(type=int32, shape="1,2,3")'))
    assert "add_node" in out and "a_node" in out
    _placeholder(out["mul_node"], tf.int32, [1, 2, 3])
    assert "b_node" not in out and "c_node" not in out


def test_placeholder_named_args():
    """StripUnusedNodesTest.TestPlaceholderNamedArgs: ``name=a_node, type_for_name=int64, shape_for_name="1,2",
    name=mul_node, type_for_name=quint8, shape_for_name="1, 2, 3"`` gives each input its own type and shape."""
    out = node_map(transform(
        _mul_input_graph(), ["mul_node", "a_node"], ["add_node"],
        'strip_unused_nodes(name=a_node, type_for_name=int64, shape_for_name="1,2", '
        'name=mul_node, type_for_name=quint8, shape_for_name="1, 2, 3")'))
    assert "add_node" in out
    _placeholder(out["mul_node"], tf.quint8, [1, 2, 3])
    _placeholder(out["a_node"], tf.int64, [1, 2])
    assert "b_node" not in out and "c_node" not in out


def test_existing_placeholder_input_is_kept_as_is():
    """Not a C++ TEST (strip_unused_nodes.cc: an input that is already a ``Placeholder`` is copied unchanged;
    ``type``/``shape`` only type the Placeholders that replace other inputs)."""
    gd = graph_def(
        node("x", "Placeholder", dtype=tf.float32, shape=tf.TensorShape([None, 3]).as_proto()),
        node("y", "Relu", ["x"], T=tf.float32),
    )
    out = node_map(transform(gd, ["x"], ["y"], 'strip_unused_nodes(type=int32, shape="1,2")'))
    _placeholder(out["x"], tf.float32, [None, 3])
