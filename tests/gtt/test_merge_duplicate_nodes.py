"""Ports of the ``merge_duplicate_nodes`` TESTs of ``tensorflow/tools/graph_transforms/quantize_nodes_test.cc``.

GTT's ``merge_duplicate_nodes`` (quantize_nodes.cc, ``MergeDuplicateNodes``)
hashes every node without its name, except the inputs and outputs, which keep
their name in the hash: an input or output is never merged with another node,
neither absorbed nor absorbing. Stateful ops are never merged. Repeats until
nothing changes. graphxform's ``merge_duplicate_nodes`` (``merge_duplicates``)
compares nodes fully (op, attrs, inputs, device, tensor bytes) and never
merges a protected node away.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .conftest import build, expect_near, iota, node_map, op_counts, run, transform

WIDTH = 10


def _merge(gd, outputs, feeds=None, inputs=()):
    """TestTransformedVersusFloatGraph with MergeDuplicateNodes: outputs within 1.0."""
    feeds = feeds or {}
    before = run(gd, feeds, outputs)
    out = transform(gd, list(inputs), outputs, "merge_duplicate_nodes")
    for b, a in zip(before, run(out, feeds, outputs)):
        expect_near(a, b, 1.0)
    return out


def test_merge_duplicate_quantizes():
    """QuantizeNodesTest.TestMergeDuplicateQuantizes: two identical ``QuantizeV2`` of one ``Dequantize`` (and their
    identical Reshape/Min/Max) merge into one."""
    def fn():
        q = tf.constant(np.zeros([], np.uint8), tf.quint8, name="quantized_op")
        qmin = tf.constant(2.0, name="quantized_min_op")
        qmax = tf.constant(2.0, name="quantized_max_op")  # the C++ test builds it from the min tensor: 2.0 too
        deq = tf.raw_ops.Dequantize(input=q, min_range=qmin, max_range=qmax, name="dequantize_op")

        def quantize(i, dims_name):
            dims = tf.constant([-1], name=dims_name)
            red = tf.constant(0, name=f"quantize_reduction_dims{i}")
            reshape = tf.reshape(deq, dims, name=f"quantize_reshape{i}")
            mn = tf.reduce_min(reshape, red, keepdims=False, name=f"quantize_min{i}")
            mx = tf.reduce_max(reshape, red, keepdims=False, name=f"quantize_max{i}")
            return mn, mx

        mn1, mx1 = quantize(1, "dequantize_reshape_dims1")
        quantize(2, "dequantize_reshape_dims2")
        # Both QuantizeV2 read quantize_min1/quantize_max1, as in the C++ test.
        q1 = tf.raw_ops.QuantizeV2(input=deq, min_range=mn1, max_range=mx1, T=tf.quint8, mode="MIN_FIRST",
                                   name="quantize_op1")
        q2 = tf.raw_ops.QuantizeV2(input=deq, min_range=mn1, max_range=mx1, T=tf.quint8, mode="MIN_FIRST",
                                   name="quantize_op2")
        d1 = tf.raw_ops.Dequantize(input=q1.output, min_range=q1.output_min, max_range=q1.output_max,
                                   name="final_dequantize1")
        d2 = tf.raw_ops.Dequantize(input=q2.output, min_range=q2.output_min, max_range=q2.output_max,
                                   name="final_dequantize2")
        tf.raw_ops.Add(x=d1, y=d2, name="add_op")

    out = _merge(build(fn), ["add_op"])
    assert op_counts(out)["QuantizeV2"] == 1


def _add_mul(a_relu: bool = False):
    def fn():
        a = tf.constant(iota([WIDTH]), name="a_op")
        b = tf.constant(iota([WIDTH]), name="b_op")
        if a_relu:
            a, b = tf.nn.relu(a, name="a_relu_op"), tf.nn.relu(b, name="b_relu_op")
        add = tf.raw_ops.Add(x=a, y=b, name="add_op")
        tf.multiply(add, tf.constant(iota([WIDTH], 2.0), name="c_op"), name="mul_op")
    return build(fn)


def test_merge_duplicate_consts():
    """QuantizeNodesTest.TestMergeDuplicateConsts: the identical ``a_op``/``b_op`` merge; ``add_op`` reads the one
    left twice; ``c_op`` (other values) stays."""
    out = node_map(_merge(_add_mul(), ["mul_op"]))
    assert ("a_op" in out) + ("b_op" in out) == 1
    remaining = "a_op" if "a_op" in out else "b_op"
    assert list(out["add_op"].input) == [remaining, remaining]
    assert "c_op" in out
    assert list(out["mul_op"].input) == ["add_op", "c_op"]


def test_merge_duplicates_nested():
    """QuantizeNodesTest.TestMergeDuplicatesNested: merging ``a_op``/``b_op`` makes ``a_relu_op``/``b_relu_op``
    duplicates, which merge too."""
    out = node_map(_merge(_add_mul(a_relu=True), ["mul_op"]))
    assert ("a_op" in out) + ("b_op" in out) == 1
    assert ("a_relu_op" in out) + ("b_relu_op" in out) == 1
    remaining = "a_relu_op" if "a_relu_op" in out else "b_relu_op"
    assert list(out["add_op"].input) == [remaining, remaining]
    assert "c_op" in out
    assert list(out["mul_op"].input) == ["add_op", "c_op"]


def test_merge_duplicate_in_out():
    """QuantizeNodesTest.TestMergeDuplicateInOut: the input ``a_op`` and the output ``mul_op1`` are never merged
    away (``a_op``/``b_op`` and their Relus all stay); ``a_op`` (a Const) is fed when run, as in the C++ test.

    Deliberate difference: GTT never merges an output with anything, so its ``mul_op2``/``mul_op3`` merge with
    each other only and ``final_mul_op`` reads the one left twice. graphxform never merges a protected node
    *away* but lets it absorb its duplicates: ``mul_op2`` and ``mul_op3`` both merge into ``mul_op1``.
    """
    def fn():
        a = tf.constant(iota([WIDTH]), name="a_op")
        b = tf.constant(iota([WIDTH]), name="b_op")
        add = tf.raw_ops.Add(x=tf.nn.relu(a, name="a_relu_op"), y=tf.nn.relu(b, name="b_relu_op"),
                             name="add_op")
        c = tf.constant(iota([WIDTH], 2.0), name="c_op")
        tf.multiply(add, c, name="mul_op1")
        m2 = tf.multiply(add, c, name="mul_op2")
        m3 = tf.multiply(add, c, name="mul_op3")
        tf.multiply(m2, m3, name="final_mul_op")

    gd = build(fn)
    out = node_map(_merge(gd, ["mul_op1", "final_mul_op"], feeds={"a_op:0": iota([WIDTH])}, inputs=["a_op"]))
    for name in ("a_op", "b_op", "a_relu_op", "b_relu_op", "mul_op1", "final_mul_op", "c_op"):
        assert name in out, name
    assert "mul_op2" not in out and "mul_op3" not in out  # GTT: one of them stays
    assert list(out["final_mul_op"].input) == ["mul_op1", "mul_op1"]  # GTT: [remaining, remaining]
    assert list(out["mul_op1"].input) == ["add_op", "c_op"]
