"""remove_redundant_cast: Cast to the same type and lossless round trips go; lossy round trips stay."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import graph_def_of
from graphxform.transforms.remove_redundant_cast import RemoveRedundantCast
from rule_check import model_of, reason, transformed

from graphxform.engine.registry import get_rule

X = np.array([[0.1, -2.5, 3.0e7 + 1.0], [65504.0, 1.0e-8, 0.0]], np.float32)
I = np.array([[2**31 - 1, -(2**31), 7]], np.int32)


def test_registered():
    assert get_rule("remove_redundant_cast") is RemoveRedundantCast
    assert RemoveRedundantCast.summary().startswith("Replaces ``Cast(x, T -> T)`` by ``x``")


def test_same_type_and_lossless_round_trips_go():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        i = tf.compat.v1.placeholder(tf.int32, [1, 3], name="i")
        tf.math.negative(tf.cast(tf.cast(x, tf.float64, name="up"), tf.float32, name="down"), name="o1")
        tf.math.negative(tf.cast(tf.cast(i, tf.int64, name="i64"), tf.int32, name="i32"), name="o2")
        tf.math.negative(tf.raw_ops.Cast(x=x, DstT=tf.float32, name="same"), name="o3")
        b = x > 0.0
        tf.logical_not(tf.cast(tf.cast(b, tf.float32, name="bf"), tf.bool, name="bb"), name="o4")

    g, report = transformed(graph_def_of(build), {"x:0": X, "i:0": I}, ["o1:0", "o2:0", "o3:0", "o4:0"],
                            [RemoveRedundantCast()])
    assert report.counts == {"remove_redundant_cast": 4}
    assert not g.nodes_by_op("Cast")
    assert g.data_inputs("o1") == ["x"] and g.data_inputs("o2") == ["i"] and g.data_inputs("o3") == ["x"]


def test_lossy_round_trips_stay():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        i = tf.compat.v1.placeholder(tf.int32, [1, 3], name="i")
        tf.math.negative(tf.cast(tf.cast(x, tf.float16, name="half"), tf.float32, name="back"), name="o1")
        tf.math.negative(tf.cast(tf.cast(i, tf.float32, name="f"), tf.int32, name="back_i"), name="o2")
        tf.math.negative(tf.cast(tf.cast(x, tf.int32, name="trunc"), tf.float32, name="back_t"), name="o3")

    g, report = transformed(graph_def_of(build), {"x:0": X, "i:0": I}, ["o1:0", "o2:0", "o3:0"],
                            [RemoveRedundantCast()])
    assert report.counts == {}
    assert "half does not hold every float value" in reason(RemoveRedundantCast(), g, "back")
    assert "float does not hold every int32 value" in reason(RemoveRedundantCast(), g, "back_i")
    assert len(g.nodes_by_op("Cast")) == 6


def test_the_inner_cast_stays_for_its_other_readers():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        up = tf.cast(x, tf.float64, name="up")
        tf.math.negative(tf.cast(up, tf.float32, name="down"), name="o1")
        tf.math.negative(up, name="o2")

    g, _ = transformed(graph_def_of(build), {"x:0": X}, ["o1:0", "o2:0"], [RemoveRedundantCast()])
    assert g.data_inputs("o1") == ["x"] and "down" not in g and g.data_inputs("o2") == ["up"]


def test_not_onto_a_signature_input():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.cast(tf.cast(x, tf.float64, name="up"), tf.float32, name="down")

    model = model_of(graph_def_of(build), {"x": "x:0"}, {"y": "down:0"})
    assert "would name its own input" in reason(RemoveRedundantCast(), model.graph, "down")
