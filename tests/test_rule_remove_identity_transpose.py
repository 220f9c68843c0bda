"""remove_identity_transpose: identity permutations and transposes that cancel go; pairs merge; where they stay."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import graph_def_of
from graphxform.transforms.remove_identity_transpose import RemoveIdentityTranspose
from rule_check import model_of, reason, signature_run, transformed

from graphxform.engine.registry import get_rule

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 4.0


def _x(shape=(2, 3, 4)):
    return tf.compat.v1.placeholder(tf.float32, shape, name="x")


def test_registered():
    assert get_rule("remove_identity_transpose") is RemoveIdentityTranspose
    assert RemoveIdentityTranspose.summary().startswith("Replaces ``Transpose(x, [0, 1, ..., n-1])`` by ``x``")


def test_identity_permutation_goes_as_in_keras_tensordot():
    def build():
        x = _x((None, 3, 4))
        t = tf.transpose(tf.math.exp(x, name="e"), [0, 1, 2], name="t")
        tf.math.negative(t, name="out")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [RemoveIdentityTranspose()])
    assert report.counts == {"remove_identity_transpose": 1}
    assert not g.nodes_by_op("Transpose") and g.data_inputs("out") == ["e"]


def test_a_pair_that_cancels_goes_and_a_pair_that_does_not_becomes_one():
    def build():
        x = _x()
        a = tf.transpose(tf.transpose(x, [1, 2, 0], name="t1"), [2, 0, 1], name="t2")  # cancel
        tf.math.negative(a, name="out")
        b = tf.transpose(tf.transpose(x * 2.0, [1, 0, 2], name="u1"), [0, 2, 1], name="u2")  # compose
        tf.math.negative(b, name="out2")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["out:0", "out2:0"], [RemoveIdentityTranspose()])
    assert report.counts == {"remove_identity_transpose": 2}
    assert g.data_inputs("out") == ["x"]
    assert [n.name for n in g.nodes_by_op("Transpose")] == ["u2"] and g.data_inputs("u2")[0] == "mul"
    assert g.const_value(g.data_inputs("u2")[1]).tolist() == [1, 2, 0]


def test_moving_only_size_one_dimensions():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [1, 5, 1], name="x")
        tf.math.negative(tf.transpose(x, [2, 1, 0], name="t"), name="out")

    g, _ = transformed(graph_def_of(build), {"x:0": np.arange(5, dtype=np.float32).reshape(1, 5, 1)}, ["out:0"],
                       [RemoveIdentityTranspose()])
    assert not g.nodes_by_op("Transpose")


def test_not_a_real_permutation_a_fed_permutation_or_a_shared_inner_transpose():
    def build():
        x = _x()
        tf.math.negative(tf.transpose(x, [0, 2, 1], name="real"), name="o1")
        perm = tf.compat.v1.placeholder(tf.int32, [3], name="perm")
        tf.math.negative(tf.transpose(x, perm, name="fed"), name="o2")
        inner = tf.transpose(x * 3.0, [1, 0, 2], name="inner")
        tf.math.negative(inner, name="o3")
        tf.math.negative(tf.transpose(inner, [0, 2, 1], name="outer"), name="o4")
        y = tf.compat.v1.placeholder(tf.float32, [None, 5, 1], name="y")
        tf.math.negative(tf.transpose(y, [0, 2, 1], name="unknown_batch"), name="o5")

    feeds = {"x:0": X, "perm:0": np.array([2, 1, 0], np.int32), "y:0": np.ones((3, 5, 1), np.float32)}
    g, report = transformed(graph_def_of(build), feeds, [f"o{i}:0" for i in range(1, 6)],
                            [RemoveIdentityTranspose()])
    assert report.counts == {}
    rule = RemoveIdentityTranspose()
    assert "moves dimension 2" in reason(rule, g, "real")
    assert "other readers" in reason(rule, g, "outer")
    assert "moves dimension 2 of [?, 5, 1]" in reason(rule, g, "unknown_batch")
    assert len(g.nodes_by_op("Transpose")) == 5


def test_a_signature_output_moves_but_never_onto_the_signature_input():
    def build():
        x = _x()
        tf.transpose(tf.math.exp(x, name="e"), [0, 1, 2], name="t")
        tf.transpose(x, [0, 1, 2], name="tx")

    model = model_of(graph_def_of(build), {"x": "x:0"}, {"y": "t:0", "z": "tx:0"})
    assert "would name its own input" in reason(RemoveIdentityTranspose(), model.graph, "tx")
    before, after = signature_run(model, [RemoveIdentityTranspose()], {"x": X})
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    assert model.signatures["serving_default"].outputs["y"].name == "e:0" and "tx" in model.graph
