"""graphxform.core.shapes: static shapes from TensorFlow's shape functions, and the broadcasting facts rules use."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_def_of

from graphxform.core.clib import ShapeGraph, ShapeGraphError
from graphxform.core.graph import Graph
from graphxform.core.nodes import const
from graphxform.core.shapes import SMALL_CONST_BYTES, StaticShapes, broadcast_keeps, broadcast_shape, light_copy
from graphxform.engine.context import Context


def _graph():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 3], name="x")
        w = tf.constant(np.ones((3, 1000), np.float32), name="w")  # bigger than SMALL_CONST_BYTES
        y = tf.linalg.matmul(tf.reshape(x, [-1, 3], name="flat"), w, name="mm")
        tf.reshape(y, tf.stack([tf.shape(x)[0], 8, 1000]), name="back")
        tf.compat.v1.placeholder(tf.float32, None, name="u")

    return Graph(graph_def_of(build))


def test_shapes_of_a_graph_with_an_unknown_batch():
    g = _graph()
    assert np.ones((3, 1000), np.float32).nbytes > SMALL_CONST_BYTES
    s = StaticShapes(g)
    assert s.shape("x:0") == (None, 8, 3)
    assert s.shape("mm:0") == (None, 1000)
    assert s.shape("back:0") == (None, 8, 1000)  # the Shape -> StridedSlice -> Pack target is read
    assert s.shape("u:0") is None and s.rank("u:0") is None
    assert s.rank("w:0") == 2 and s.is_fully_defined("w:0") and not s.is_fully_defined("mm:0")
    assert s.shape("^mm") is None and s.shape("missing:0") is None


def test_a_big_constant_is_imported_as_a_placeholder_whatever_its_encoding():
    """Big by its element count: a splat (one value for 4,000 elements) is no smaller a tensor than its bytes."""
    for value in (np.ones((4, 1000), np.float32), tf.make_tensor_proto(1.0, tf.float32, shape=[4, 1000])):
        big = light_copy(const("w", value))
        assert big.op == "Placeholder" and big.attr["dtype"].type == tf.float32.as_datatype_enum
        assert [d.size for d in big.attr["shape"].shape.dim] == [4, 1000]
    small = const("s", np.array([-1, 3], np.int32))  # (a shape operand: its value matters to shape functions)
    assert light_copy(small) is small


def test_nodes_added_after_the_import_are_inferred_on_their_own():
    g = _graph()
    s = Context().static_shapes(g)
    assert s.shape("mm:0") == (None, 1000)
    c = const("two", np.float32(2.0))
    g.add_node(c)
    node = tf.compat.v1.NodeDef(name="scaled", op="Mul", input=["mm", "two"])
    node.attr["T"].type = tf.float32.as_datatype_enum
    g.add_node(node)
    assert s.shape("scaled:0") == (None, 1000)
    assert s.shape("two:0") == ()


def test_the_run_context_shares_one_import():
    g = _graph()
    store: dict = {}
    a, b = Context(store).static_shapes(g), Context(store).static_shapes(g)
    assert a is b
    assert Context(store).static_shapes(_graph()) is not a  # another graph: its own shapes


def test_broadcasting_facts():
    assert broadcast_keeps((None, 8, 3), ()) and broadcast_keeps((None, 8, 3), (1, 1))
    assert broadcast_keeps((None, 8, 3), (8, 3)) and broadcast_keeps((None, 8, 3), (1, 3))
    assert not broadcast_keeps((None, 1), (8,))          # [?, 1] * [8] -> [?, 8]
    assert not broadcast_keeps((None, 8, 3), (1, 1, 1, 1))  # one more dimension
    assert not broadcast_keeps(None, (3,)) and broadcast_keeps(None, ())
    assert not broadcast_keeps((None, None), (3,))       # the unknown dimension may be 1
    assert broadcast_shape((None, 1), (8,)) == (None, 8)
    assert broadcast_shape((2, 3), (4, 3)) is None


def test_shape_graph_answers_static_shapes_through_the_c_api():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
        w = tf.constant(np.ones((8, 3), np.float32), name="w")
        y = tf.matmul(x, w, name="y")
        tf.split(y, [1, 2], axis=1, name="split")
        tf.compat.v1.placeholder(tf.float32, None, name="any")

    gd = graph_def_of(build)
    with ShapeGraph(gd) as g:
        assert g.shape("y") == (None, 3)
        assert g.shapes("split") == [(None, 1), (None, 2)]
        assert g.shape("any") is None  # not even the rank
        assert g.shape("nope") is None and g.shapes("nope") is None and g.shape("y", 5) is None


def test_shape_graph_refusal_carries_tensorflows_message():
    def build():
        tf.compat.v1.placeholder(tf.float32, [2], name="x")

    gd = graph_def_of(build)
    gd.node.add(name="bad", op="NoSuchOp", input=["x"])
    with pytest.raises(ShapeGraphError, match="NoSuchOp"):
        ShapeGraph(gd)
