"""Ports of ``tensorflow/tools/graph_transforms/fold_constants_test.cc`` (``ConstantFoldingTest``).

GTT's ``fold_constants`` (fold_constants_lib.cc): the ``inputs`` are cut points
(``RewriteGraphForExecution`` feeds them, so nothing is folded through them),
``exclude_op`` / ``exclude_node`` keep ops/nodes from folding,
``max_constant_size_in_bytes`` bounds a folded constant, ``clear_output_shapes``
(default true) drops ``_output_shapes`` before folding, and the result is
passed through ``RemoveUnusedNodes`` (what the outputs do not need goes).
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2


from .conftest import (
    check_expect_suffixes,
    const,
    expect_near,
    graph_def,
    iota,
    node,
    node_map,
    run,
    shape_proto,
    transform,
)

WIDTH = 100


def _simple_add(prefix_a="a_expect_removed", prefix_b="b_expect_removed", add="add_expect_removed"):
    """a + b (iota 1..100 each) times a Placeholder: the graph of TestSimpleAdd and its variants."""
    return graph_def(
        const(prefix_a, iota([WIDTH])),
        const(prefix_b, iota([WIDTH])),
        node(add, "Add", [prefix_a, prefix_b], T=tf.float32),
        node("placeholder_expect_remains", "Placeholder", dtype=tf.float32),
        node("output_expect_remains", "Mul", [add, "placeholder_expect_remains"], T=tf.float32),
    )


def _fold_and_compare(gd, inputs, outputs, transforms, feeds):
    """TestConstantFolding: run before and after, outputs within 1e-5 (ExpectTensorNear)."""
    before = run(gd, feeds, outputs)
    out = transform(gd, inputs, outputs, transforms)
    after = run(out, feeds, outputs)
    assert len(before) == len(after)
    for b, a in zip(before, after):
        expect_near(a, b, 1e-5)
    return out


@pytest.mark.parametrize("suffix", ["", ":0"])
def test_simple_add(suffix):
    """ConstantFoldingTest.TestSimpleAdd (inputs/outputs given as node names, then as ``name:0``).

    Deliberate difference: the folded ``Add`` keeps its name (``add_expect_removed`` is now the ``Const``);
    GTT names the constant after the folded tensor and drops the node.
    """
    gd = _simple_add()
    feeds = {"placeholder_expect_remains:0": iota([WIDTH])}
    out = _fold_and_compare(gd, ["placeholder_expect_remains" + suffix], ["output_expect_remains" + suffix],
                            "fold_constants", feeds)
    check_expect_suffixes(gd, out, kept_by_graphxform=["add_expect_removed"])
    np.testing.assert_array_equal(tf.make_ndarray(node_map(out)["add_expect_removed"].attr["value"].tensor),
                                  2 * iota([WIDTH]))


def test_op_exclusion_add():
    """ConstantFoldingTest.TestOpExclusionAdd: ``exclude_op=Add`` keeps the Add and its inputs."""
    gd = _simple_add("a_expect_remains", "b_expect_remains", "add_expect_remains")
    out = _fold_and_compare(gd, ["placeholder_expect_remains"], ["output_expect_remains"],
                            "fold_constants(exclude_op=Add)", {"placeholder_expect_remains:0": iota([WIDTH])})
    check_expect_suffixes(gd, out)
    assert node_map(out)["add_expect_remains"].op == "Add"


def test_node_exclusion_add():
    """Not a C++ TEST: GTT's ``exclude_node`` parameter (fold_constants_lib.cc), the node-name twin of
    ``exclude_op``, on TestOpExclusionAdd's graph."""
    gd = _simple_add("a_expect_remains", "b_expect_remains", "add_expect_remains")
    out = _fold_and_compare(gd, ["placeholder_expect_remains"], ["output_expect_remains"],
                            "fold_constants(exclude_node=add_expect_remains)",
                            {"placeholder_expect_remains:0": iota([WIDTH])})
    check_expect_suffixes(gd, out)


def test_shape_propagation():
    """ConstantFoldingTest.TestShapePropagation: ``Cast(Shape(Const[1,1,3]))`` folds.

    Deliberate difference: the folded ``Cast`` keeps its name (``cast_expect_removed`` is the ``Const``).
    """
    gd = graph_def(
        node("placeholder_expect_remains", "Placeholder", dtype=tf.float32),
        const("a_expect_removed", [1, 1, 1], tf.int32, [1, 1, 3]),
        node("shape_expect_removed", "Shape", ["a_expect_removed"], T=tf.int32, out_type=tf.int32),
        node("cast_expect_removed", "Cast", ["shape_expect_removed"], SrcT=tf.int32, DstT=tf.float32,
             Truncate=False),
        node("output_expect_remains", "Mul", ["cast_expect_removed", "placeholder_expect_remains"], T=tf.float32),
    )
    out = _fold_and_compare(gd, ["placeholder_expect_remains"], ["output_expect_remains"], "fold_constants",
                            {"placeholder_expect_remains:0": iota([3])})
    check_expect_suffixes(gd, out, kept_by_graphxform=["cast_expect_removed"])


def _placeholder_with_output_shapes():
    ph = node("placeholder_expect_remains", "Placeholder", dtype=tf.float32)
    ph.attr["_output_shapes"].CopyFrom(attr_value_pb2.AttrValue(
        list=attr_value_pb2.AttrValue.ListValue(shape=[shape_proto([1, 1, 3])])))
    return graph_def(
        ph,
        node("shape_expect_removed", "Shape", ["placeholder_expect_remains"], T=tf.float32, out_type=tf.int32),
        node("cast_expect_removed", "Cast", ["shape_expect_removed"], SrcT=tf.int32, DstT=tf.float32,
             Truncate=False),
        node("output_expect_remains", "Mul", ["cast_expect_removed", "placeholder_expect_remains"], T=tf.float32),
    )


def test_preserve_output_shapes():
    """ConstantFoldingTest.TestPreserveOutputShapes: with ``clear_output_shapes=false`` the Placeholder's
    ``_output_shapes`` ([1,1,3]) lets ``Shape`` fold.

    Graphxform's naming (the folded ``Cast`` keeps its name) is asserted, as in TestShapePropagation.
    """
    gd = _placeholder_with_output_shapes()
    out = _fold_and_compare(gd, ["placeholder_expect_remains"], ["output_expect_remains"],
                            "fold_constants(clear_output_shapes=false)",
                            {"placeholder_expect_remains:0": iota([1, 1, 3])})
    check_expect_suffixes(gd, out, kept_by_graphxform=["cast_expect_removed"])


def test_shape_of_placeholder_with_known_shape_folds():
    """Not a C++ TEST (issue #13): GTT's shape map comes from shape inference, so ``Shape`` of a Placeholder
    whose ``shape`` attr is fully known ([1,1,3]) folds even with the default ``clear_output_shapes``."""
    gd = _placeholder_with_output_shapes()
    ph = node_map(gd)["placeholder_expect_remains"]
    del ph.attr["_output_shapes"]
    ph.attr["shape"].shape.CopyFrom(shape_proto([1, 1, 3]))
    out = _fold_and_compare(gd, ["placeholder_expect_remains"], ["output_expect_remains"], "fold_constants",
                            {"placeholder_expect_remains:0": iota([1, 1, 3])})
    check_expect_suffixes(gd, out, kept_by_graphxform=["cast_expect_removed"])


def _recv(name):
    return node(name, "_Recv", tensor_type=tf.float32, tensor_name="", send_device="", send_device_incarnation=0,
                recv_device="", client_terminated=False)


def _send(name, inp):
    return node(name, "_Send", [inp], T=tf.float32, tensor_name="", send_device="", send_device_incarnation=0,
                recv_device="", client_terminated=False)


def test_replace_send_recvs():
    """ConstantFoldingTest.TestReplaceSendRecvs, through ``fold_constants`` (the C++ test calls the internal
    ``ReplaceSendRecvs``): no feed/fetch plumbing (``_recv_placeholder_0``, a new ``_Send``) is left in the result,
    and the graph's own ``_Recv``/``_Send`` stay unchanged when an output needs them. With ``a_const`` the only
    output they are not needed, and GTT's ``fold_constants`` (its ``RemoveUnusedNodes``) drops them, as
    graphxform's does."""
    gd = graph_def(
        _recv("original_recv"),
        const("a_const", iota([WIDTH])),
        node("placeholder", "Placeholder", dtype=tf.float32),
        _send("original_send", "a_const"),
    )
    out = transform(gd, ["placeholder"], ["a_const", "original_send", "original_recv"], "fold_constants")
    names = node_map(out)
    for kept in ("original_recv", "a_const", "placeholder", "original_send"):
        assert names[kept] == node_map(gd)[kept], kept
    assert "_recv_placeholder_0" not in names and "new_send" not in names
    assert sorted(n.op for n in out.node) == sorted(n.op for n in gd.node)
    names = node_map(transform(gd, ["placeholder"], ["a_const"], "fold_constants"))
    assert sorted(names) == ["a_const", "placeholder"]


def test_replace_send_recvs_prefix_names():
    """ConstantFoldingTest.TestReplaceSendRecvsPrefixNames, through ``fold_constants``: inputs whose names
    prefix one another (``placeholder``, ``placeholder_1``) both stay, with the ``add`` reading them."""
    gd = graph_def(
        node("placeholder", "Placeholder", dtype=tf.float32),
        node("placeholder_1", "Placeholder", dtype=tf.float32),
        node("add", "Add", ["placeholder", "placeholder_1"], T=tf.float32),
    )
    out = transform(gd, ["placeholder", "placeholder_1"], ["add"], "fold_constants")
    names = node_map(out)
    assert {"placeholder", "placeholder_1", "add"} <= set(names)
    assert list(names["add"].input) == ["placeholder", "placeholder_1"]
    x, y = np.float32([1, 2]), np.float32([10, 20])
    expect_near(run(out, {"placeholder:0": x, "placeholder_1:0": y}, ["add:0"])[0], x + y, 0)


def _unused_graph():
    return graph_def(
        const("a", iota([WIDTH])),
        const("b", iota([WIDTH])),
        node("add", "Add", ["a", "b"], T=tf.float32),
        node("placeholder", "Placeholder", dtype=tf.float32),
        node("output", "Mul", ["add", "placeholder"], T=tf.float32),
        const("unused", iota([WIDTH])),
    )


def test_remove_unused_nodes():
    """ConstantFoldingTest.TestRemoveUnusedNodes: the C++ test calls GTT's internal ``RemoveUnusedNodes``, which
    is ``strip_unused_nodes``'s walk (what ``output`` needs, stopping at the inputs) — ported through
    ``strip_unused_nodes``: ``unused`` goes, the rest stays."""
    gd = _unused_graph()
    out = transform(gd, ["placeholder"], ["output"], "strip_unused_nodes")
    names = node_map(out)
    for kept in ("a", "b", "add", "placeholder", "output"):
        assert kept in names, kept
    assert "unused" not in names


def test_fold_constants_removes_unused_nodes():
    """ConstantFoldingTest.TestRemoveUnusedNodes, the part GTT's ``fold_constants`` itself does: its result goes
    through ``RemoveUnusedNodes``, so ``unused`` (needed by no output) is gone after ``fold_constants`` alone."""
    gd = _unused_graph()
    out = _fold_and_compare(gd, ["placeholder"], ["output"], "fold_constants", {"placeholder:0": iota([WIDTH])})
    assert "unused" not in node_map(out)


def test_max_constant_size_in_bytes():
    """ConstantFoldingTest.TestMaxConstantSizeInBytes: ``max_constant_size_in_bytes=10`` stops the fold of
    ``add(a, b)`` (400 bytes): every node remains."""
    gd = _simple_add("a_expect_remains", "b_expect_remains", "add_expect_remains")
    out = _fold_and_compare(gd, ["placeholder_expect_remains"], ["output_expect_remains"],
                            "fold_constants(max_constant_size_in_bytes=10)",
                            {"placeholder_expect_remains:0": iota([WIDTH])})
    check_expect_suffixes(gd, out)
    assert node_map(out)["add_expect_remains"].op == "Add"


def test_inputs_are_cut_points():
    """Not a C++ TEST (issue #13; fold_constants_lib.cc feeds the ``inputs`` through ``RewriteGraphForExecution``
    before folding): ``y = x * 2 + 1`` with a ``Const`` ``x`` named as an input must still follow ``x`` when it is
    fed after ``fold_constants``. (GTT then refuses the non-Placeholder input in ``RewriteInputsAsPlaceholders``;
    either way the graph never silently stops depending on its input.)"""
    gd = graph_def(
        const("x", [1.0, 2.0, 3.0]),
        const("two", 2.0),
        const("one", 1.0),
        node("mul", "Mul", ["x", "two"], T=tf.float32),
        node("y", "Add", ["mul", "one"], T=tf.float32),
    )
    out = transform(gd, ["x"], ["y"], "fold_constants")
    fed = np.float32([10, 20, 30])
    expect_near(run(out, {"x:0": fed}, ["y:0"])[0], fed * 2 + 1, 0)


def test_placeholder_with_default_input():
    """Not a C++ TEST (fold_constants_lib.cc, ``RewriteInputsAsPlaceholders``): GTT's ``fold_constants`` turns a
    ``PlaceholderWithDefault`` named in ``inputs`` into a plain ``Placeholder`` (its default input dropped).

    Deliberate difference: graphxform keeps it a ``PlaceholderWithDefault`` with its default (an input stays
    optional, as the model's author made it); it is a feed point, so nothing is folded through it either way.
    """
    gd = graph_def(
        const("default", 3.0),
        node("keep", "PlaceholderWithDefault", ["default"], dtype=tf.float32, shape=shape_proto([])),
        const("two", 2.0),
        node("y", "Mul", ["keep", "two"], T=tf.float32),
    )
    out = transform(gd, ["keep"], ["y"], "fold_constants")
    nodes = node_map(out)
    assert nodes["keep"].op == "PlaceholderWithDefault" and list(nodes["keep"].input) == ["default"]
    expect_near(run(out, {}, ["y"])[0], 6.0, 0)
    expect_near(run(out, {"keep:0": np.float32(5)}, ["y"])[0], 10.0, 0)
