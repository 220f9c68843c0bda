"""The public node builder: nodes made, copied and read without touching protos, never an empty AttrValue."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, run
from tensorflow.core.framework import graph_pb2

from graphxform import attr, colocation, const, copy_node, make_node, with_attrs, with_colocation, with_inputs
from graphxform.core.errors import GraphError
from graphxform.core.graph import Graph
from graphxform.core.nodes import dtype_itemsize, tensor_nbytes, tensor_proto, tensor_proto_to_array
from graphxform.core.validate import node_violations


def test_make_node_converts_python_values_to_attrs():
    node = make_node("Conv2D", "conv", ["x", "w", "^init"], device="/device:CPU:0", attrs={
        "T": tf.float32, "strides": [1, 1, 1, 1], "padding": "SAME", "use_cudnn_on_gpu": True,
        "data_format": b"NHWC", "dilations": [np.int64(1)] * 4, "explicit_paddings": [], "skipped": None})
    assert node.input[:] == ["x", "w", "^init"] and node.device == "/device:CPU:0"
    assert node.attr["T"].type == tf.float32.as_datatype_enum and node.attr["padding"].s == b"SAME"
    assert list(node.attr["strides"].list.i) == [1, 1, 1, 1] and node.attr["use_cudnn_on_gpu"].b is True
    assert node.attr["explicit_paddings"].WhichOneof("value") == "list", "an empty list is still a value"
    assert "skipped" not in node.attr
    assert node_violations(node) == [], "TensorFlow's C++ loader would accept it"
    with pytest.raises(GraphError, match="no AttrValue form"):
        make_node("Neg", "n", attrs={"T": object()})


def test_const_holds_arrays_strings_and_tensor_protos():
    c = const("c", np.arange(6, dtype=np.float32).reshape(2, 3), control_inputs=["init"])
    assert c.op == "Const" and c.input[:] == ["^init"] and c.attr["dtype"].type == tf.float32.as_datatype_enum
    assert c.attr["value"].tensor.tensor_content, "numbers as raw bytes"
    assert tensor_proto_to_array(c.attr["value"].tensor).tolist() == [[0, 1, 2], [3, 4, 5]]
    s = const("s", [b"a", b"bc"], tf.string)
    assert tensor_proto_to_array(s.attr["value"].tensor).tolist() == [b"a", b"bc"]
    again = const("again", c.attr["value"].tensor, device="/device:CPU:0")
    assert again.attr["value"] == c.attr["value"] and again.device == "/device:CPU:0"
    cast = const("half", [1.5, 2.5], tf.float16)
    assert tensor_proto_to_array(cast.attr["value"].tensor).dtype == np.float16


def test_const_value_is_a_read_only_view_over_the_bytes():
    """What README says of ``Graph.const_value``: a read-only numpy view over one copy of the bytes."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    g = Graph(graph_pb2.GraphDef(node=[const("w", w)]))
    value = g.const_value("w")
    np.testing.assert_array_equal(value, w)
    assert not value.flags.writeable and not value.flags.owndata
    base = value
    while isinstance(base, np.ndarray):  # (a reshaped view of the flat view over the bytes)
        base = base.base
    assert isinstance(base, bytes) and len(base) == w.nbytes
    with pytest.raises(GraphError, match="not a Const"):
        Graph(graph_pb2.GraphDef(node=[make_node("NoOp", "n")])).const_value("n")


def test_dtype_itemsize():
    assert [dtype_itemsize(t.as_datatype_enum) for t in (tf.float32, tf.bfloat16, tf.int64, tf.qint8, tf.bool)] == [
        4, 2, 8, 1, 1]
    assert dtype_itemsize(tf.string.as_datatype_enum) is None and dtype_itemsize(tf.resource.as_datatype_enum) is None
    assert dtype_itemsize(9999) is None and dtype_itemsize(0) is None  # unknown, DT_INVALID


def test_tensor_nbytes_is_told_from_dtype_and_shape_whatever_the_encoding():
    """The bytes of a value without reading tensor_content (a copy at each read) or serializing the tensor."""
    weights = tensor_proto(np.ones((3, 5), np.float32))
    assert tensor_nbytes(weights) == len(weights.tensor_content) == 60
    splat = tf.make_tensor_proto(0.0, tf.float16, shape=[4, 1000])  # one float16 value for 4000 elements
    assert not splat.tensor_content and tensor_nbytes(splat) == 8000
    assert tensor_nbytes(tf.make_tensor_proto(np.int64(7))) == 8
    assert tensor_nbytes(tf.make_tensor_proto(np.zeros((0, 3), np.float32))) == 0
    strings = tf.make_tensor_proto([b"a", b"bc"])
    assert tensor_nbytes(strings) == strings.ByteSize()  # opaque: the size of its serialization


def test_copies_never_change_the_original():
    node = make_node("Relu", "r", ["x", "^a"], attrs={"T": tf.float32, "_class": [b"loc:@w", b"other"]})
    before = node.SerializeToString()
    assert with_inputs(node, ["y"]).input[:] == ["y"]
    assert copy_node(node, name="r2", op="Relu6").name == "r2"
    assert "T" not in with_attrs(node, T=None).attr and with_attrs(node, T=tf.float64).attr["T"].type == 2
    assert colocation(node) == ["w"]
    moved = with_colocation(node, ["v", "v"])
    assert list(moved.attr["_class"].list.s) == [b"other", b"loc:@v"], "other entries stay, targets once"
    assert "_class" not in with_colocation(make_node("Relu", "q", attrs={"_class": [b"loc:@w"]}), []).attr
    assert node.SerializeToString() == before


def test_attr_reads_without_inserting_and_falls_back_to_the_ops_default():
    node = make_node("MatMul", "mm", ["a", "b"], attrs={"T": tf.float32, "transpose_a": True})
    assert attr(node, "T") == tf.float32 and isinstance(attr(node, "T"), tf.DType)
    assert attr(node, "transpose_a") is True
    assert attr(node, "transpose_b") is False, "the OpDef's default"
    assert attr(node, "no_such_attr", "dflt") == "dflt"
    assert set(node.attr) == {"T", "transpose_a"}, "reading inserted nothing"
    n = make_node("IdentityN", "idn", ["a", "b"], attrs={"T": [tf.float32, tf.int32]})
    assert attr(n, "T") == [tf.float32, tf.int32]


def test_built_nodes_run_in_tensorflow():
    g = Graph(graph_pb2.GraphDef())
    x = make_node("Placeholder", "x", attrs={"dtype": tf.float32, "shape": tf.TensorShape([2]).as_proto()})
    two = const("two", np.float32(2.0))
    y = make_node("Mul", "y", ["x", "two"], attrs={"T": attr(two, "dtype")})
    g.add_nodes([x, two, y])
    assert g.lint() == []
    assert_close(run(g, {"x:0": np.array([1.0, -3.0], np.float32)}, ["y:0"]), [np.array([2.0, -6.0])])


def test_with_attrs_replacing_an_attr_keeps_the_rest_of_the_node():
    # (copied without the attr it replaces: a large old value is not carried along in the new node)
    c = const("w", np.ones((3, 4), np.float32), device="/cpu:0", control_inputs=["x"],
              attrs={"_class": [b"loc:@v"]})
    c.experimental_debug_info.original_node_names.append("orig")
    out = with_attrs(c, value=tensor_proto(np.zeros(2, np.float32)), _class=None, extra=3)
    assert (out.name, out.op, list(out.input), out.device) == ("w", "Const", ["^x"], "/cpu:0")
    assert list(out.experimental_debug_info.original_node_names) == ["orig"]
    assert sorted(out.attr) == sorted([k for k in c.attr if k != "_class"] + ["extra"])  # (a proto map has no order)
    assert tensor_proto_to_array(out.attr["value"].tensor).tolist() == [0.0, 0.0]
    assert tensor_proto_to_array(c.attr["value"].tensor).shape == (3, 4)  # the original is untouched
    assert with_attrs(c, value=c.attr["value"].tensor) == c
