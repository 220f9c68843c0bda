"""merge_concat: a concat of a concat along the same axis is one concat; where it must not merge."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import graph_def_of
from graphxform.transforms.merge_concat import MergeConcat
from rule_check import model_of, reason, transformed

from graphxform.engine.registry import get_rule
from graphxform.engine.runner import run_rule_once

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 4.0


def _x():
    return tf.compat.v1.placeholder(tf.float32, [2, 3, 4], name="x")


def test_registered():
    assert get_rule("merge_concat") is MergeConcat
    assert MergeConcat.summary().startswith("Replaces ``Concat(a, Concat(b, c, axis), d, axis)``")


def test_inception_mixed9_form_becomes_one_concat():
    def build():
        x = _x()
        b = [tf.math.exp(x * (i - 2.0), name=f"b{i}") for i in range(6)]
        inner1 = tf.concat([b[1], b[2]], axis=-1, name="mixed9_0")
        inner2 = tf.concat([b[3], b[4]], axis=2, name="concatenate")  # axis 2 == -1 for rank 3
        tf.concat([b[0], inner1, inner2, b[5]], axis=-1, name="mixed9")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["mixed9:0"], [MergeConcat()])
    assert report.counts == {"merge_concat": 1}
    assert [n.name for n in g.nodes_by_op("ConcatV2")] == ["mixed9"]
    assert g.data_inputs("mixed9") == ["b0", "b1", "b2", "b3", "b4", "b5", "mixed9/axis"]
    assert g.node("mixed9").attr["N"].i == 6


def test_concat_v1_inside_concat_v2():
    def build():
        x = _x()
        inner = tf.raw_ops.Concat(concat_dim=tf.constant(0, name="dim"), values=[x, x * 2.0], name="inner")
        tf.concat([inner, x + 1.0], axis=0, name="outer")

    g, _ = transformed(graph_def_of(build), {"x:0": X}, ["outer:0"], [MergeConcat()])
    assert g.data_inputs("outer") == ["x", "mul", "add", "outer/axis"] and "inner" not in g


def test_not_along_another_axis_with_other_readers_protected_or_with_control_inputs():
    def build():
        x = _x()
        other_axis = tf.concat([x, x * 2.0], axis=1, name="other_axis")
        tf.concat([other_axis, other_axis], axis=0, name="o1")
        shared = tf.concat([x, x * 3.0], axis=0, name="shared")
        tf.concat([shared, x], axis=0, name="o2")
        tf.math.negative(shared, name="o3")
        guarded_in, axis = x * 5.0, tf.constant(0, name="gaxis")
        with tf.control_dependencies([tf.random.uniform([1], name="dep").op]):
            guarded = tf.concat([x, guarded_in], axis=axis, name="guarded")
        tf.concat([guarded, x], axis=0, name="o4")
        tf.concat([tf.concat([x, x * 4.0], axis=0, name="listed"), x], axis=0, name="o5")

    outs = ["o1:0", "o2:0", "o3:0", "o4:0", "o5:0"]
    g, report = transformed(graph_def_of(build), {"x:0": X}, outs, [MergeConcat()],
                            protected=["o1", "o2", "o3", "o4", "o5", "listed"])
    assert report.counts == {}
    rule = MergeConcat()
    assert "concatenates along axis 1, 'o1' along 0" in reason(rule, g, "o1")
    assert "'shared' has other readers" in reason(rule, g, "o2")
    assert "'guarded' has control inputs" in reason(rule, g, "o4")
    assert "'listed' has other readers or is protected" in reason(rule, g, "o5")
    assert run_rule_once(g, rule) == 0


def test_not_when_the_inner_concat_is_a_signature_output():
    def build():
        x = _x()
        tf.concat([tf.concat([x, x * 2.0], axis=0, name="inner"), x], axis=0, name="outer")

    model = model_of(graph_def_of(build), {"x": "x:0"}, {"a": "outer:0", "b": "inner:0"})
    assert "'inner' has other readers or is protected" in reason(MergeConcat(), model.graph, "outer")
