"""remove_neutral_arithmetic: x * 1, x / 1, x + 0, x - 0 are x when broadcasting keeps x's shape; where they stay."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import control_flow_v1, graph_def_of
from graphxform.transforms.remove_neutral_arithmetic import RemoveNeutralArithmetic
from rule_check import model_of, reason, signature_run, transformed

from graphxform.core.graph import Graph
from graphxform.engine.registry import get_rule
from graphxform.engine.runner import run_rule_once

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 4.0


def _x(shape=(2, 3, 4)):
    return tf.compat.v1.placeholder(tf.float32, shape, name="x")


def test_registered():
    assert get_rule("remove_neutral_arithmetic") is RemoveNeutralArithmetic
    assert RemoveNeutralArithmetic.summary().startswith("Replaces ``Mul(x, 1)``")


def test_every_neutral_form_goes():
    def build():
        x = _x()
        y = tf.math.exp(x, name="e")
        a = tf.multiply(y, tf.constant(1.0, name="one"), name="m1")                   # x * 1
        b = tf.multiply(tf.constant(np.ones(4, np.float32), name="ones4"), a, name="m2")  # ones[4] * x
        c = tf.math.truediv(b, tf.constant(np.ones((1, 1, 4), np.float32), name="ones114"), name="d1")
        d = tf.add(c, tf.constant(np.zeros(4, np.float32), name="zeros4"), name="a0")
        e = tf.subtract(d, tf.constant(0.0, name="zero"), name="s0")
        f = tf.nn.bias_add(e, tf.constant(np.zeros(4, np.float32), name="bias0"), name="b0")
        tf.math.negative(f, name="out")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [RemoveNeutralArithmetic()])
    assert report.counts == {"remove_neutral_arithmetic": 6}
    assert not {"m1", "m2", "d1", "a0", "s0", "b0"} & set(g.node_names)
    assert g.data_inputs("out") == ["e"]


def test_with_an_unknown_batch_the_static_shape_decides():
    def build():
        x = _x((None, 3, 4))
        y = tf.math.exp(x, name="e")
        tf.math.negative(y * tf.constant(np.ones((3, 4), np.float32), name="ones34"), name="out")

    g, _ = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [RemoveNeutralArithmetic()])
    assert g.data_inputs("out") == ["e"]


def test_not_when_the_constant_broadcasts_x_to_a_bigger_shape():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        tf.math.negative(x * tf.constant(np.ones(8, np.float32), name="ones8"), name="grow")
        tf.math.negative(x * tf.constant(np.ones((1, 1, 1), np.float32), name="ones111"), name="rank_up")
        u = tf.compat.v1.placeholder(tf.float32, None, name="u")  # unknown rank
        tf.math.negative(u * tf.constant(np.ones(3, np.float32), name="ones3"), name="unknown")

    gd = graph_def_of(build)
    xv, uv = np.arange(3, dtype=np.float32).reshape(3, 1), np.float32(2.0)
    g, report = transformed(gd, {"x:0": xv, "u:0": uv}, ["grow:0", "rank_up:0", "unknown:0"],
                            [RemoveNeutralArithmetic()])
    assert report.counts == {}
    assert "may broadcast 'x:0' (static shape [?, 1])" in reason(RemoveNeutralArithmetic(), g, "mul")
    assert "static shape unknown" in reason(RemoveNeutralArithmetic(), g, "mul_2")
    assert len(g.nodes_by_op("Mul")) == 3


def test_not_one_over_x_zero_minus_x_or_almost_one():
    def build():
        x = _x()
        tf.math.negative(tf.math.truediv(tf.constant(1.0, name="one"), x, name="recip"), name="o1")
        tf.math.negative(tf.subtract(tf.constant(0.0, name="zero"), x, name="neg"), name="o2")
        tf.math.negative(x * tf.constant(np.float32(1.0000001), name="almost"), name="o3")
        tf.math.negative(x + tf.constant(np.array([0.0, 0.0, 0.0, 1.0], np.float32), name="not_all"), name="o4")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["o1:0", "o2:0", "o3:0", "o4:0"],
                            [RemoveNeutralArithmetic()])
    assert report.counts == {}
    assert {"recip", "neg", "mul", "add"} <= set(g.node_names)


def test_not_a_fed_constant_a_protected_node_control_inputs_or_a_frame():
    def build():
        x = _x()
        one = tf.constant(1.0, name="one")
        tf.math.negative(x * one, name="o1")  # 'one' is a signature input: its value is fed
        kept = tf.multiply(x, tf.constant(1.0, name="one_b"), name="kept")
        tf.math.negative(kept, name="o2")
        dep = tf.random.uniform([1], name="dep")
        one_c = tf.constant(1.0, name="one_c")
        with tf.control_dependencies([dep.op]):
            guarded = tf.multiply(x, one_c, name="guarded")
            one_d = tf.constant(1.0, name="one_d")
        tf.math.negative(guarded, name="o3")
        tf.math.negative(x * one_d, name="o4")
        with control_flow_v1():
            tf.while_loop(lambda a: tf.reduce_sum(a) < 100.0, lambda a: (a + 1.0) * 1.0, [x], name="loop")

    model = model_of(graph_def_of(build), {"x": "x:0", "one": "one:0"}, {"y": "o1:0"})
    g = model.graph
    g.protected.add("kept")
    assert "signature 'serving_default' input 'one'" in reason(RemoveNeutralArithmetic(), g, "mul")
    assert "protected" in reason(RemoveNeutralArithmetic(), g, "kept")
    assert "control inputs" in reason(RemoveNeutralArithmetic(), g, "guarded")
    assert "the constant 'one_d' has control inputs" in reason(RemoveNeutralArithmetic(), g, "mul_1")
    (in_loop,) = [n.name for n in g.nodes_by_op("Mul") if n.name.startswith("loop/")]
    why = reason(RemoveNeutralArithmetic(), g, in_loop)  # a constant in a loop is tied to its frame by a ^ input
    assert "control inputs" in why or "control-flow frame" in why
    assert run_rule_once(g, RemoveNeutralArithmetic()) == 0


def test_a_signature_output_moves_to_x():
    def build():
        x = _x()
        y = tf.math.exp(x, name="e")
        tf.multiply(y, tf.constant(1.0, name="one"), name="m1")

    model = model_of(graph_def_of(build), {"x": "x:0"}, {"y": "m1:0"})
    before, after = signature_run(model, [RemoveNeutralArithmetic()], {"x": X})
    np.testing.assert_array_equal(after["y"], before["y"])
    assert "m1" not in model.graph and model.signatures["serving_default"].outputs["y"].name == "e:0"


def test_not_when_the_output_would_be_the_signature_input():
    def build():
        x = _x()
        tf.multiply(x, tf.constant(1.0, name="one"), name="m1")

    model = model_of(graph_def_of(build), {"x": "x:0"}, {"y": "m1:0"})
    assert "would name its own input" in reason(RemoveNeutralArithmetic(), model.graph, "m1")


def test_candidates_skip_nodes_without_a_neutral_constant_but_explain_lists_them():
    from graphxform.engine.explain import explain

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        a = tf.multiply(x, tf.constant(2.0), name="twice")
        b = tf.multiply(a, tf.constant(1.0), name="once")
        tf.add(b, tf.constant(0.5), name="out")

    g = Graph(graph_def_of(build))
    rule = RemoveNeutralArithmetic()
    assert [n.name for n in rule.candidates(g)] == ["once"]
    assert [n.name for n in rule.candidates(g, ["twice", "once", "out"])] == ["once"]
    reasons = dict(explain(g, rule))
    assert "not all 1" in reasons["twice"] and "not all 0" in reasons["out"] and "once" in reasons


def test_readers_of_a_small_constant_that_is_neither_0_nor_1_are_not_looked_at():
    # A merged constant may have hundreds of thousands of readers: a small one is looked into first.
    from graphxform.transforms.remove_neutral_arithmetic import _neutral_readers

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        two = tf.constant(2.0, name="two")
        y = x
        for i in range(4):
            y = tf.multiply(y, two, name=f"m{i}")
        tf.multiply(y, tf.constant([1.0, 1.0, 1.0], name="ones"), name="out")

    g = Graph(graph_def_of(build))
    asked: list[str] = []
    real = g.get
    g.get = lambda name: asked.append(name) or real(name)  # type: ignore[method-assign]
    assert _neutral_readers(g) == {"out"}
    assert not {"m0", "m1", "m2", "m3"} & set(asked), asked  # the readers of 2.0
    assert "out" in asked  # the readers of the ones are
    g.get = real  # type: ignore[method-assign]
    assert [n.name for n in RemoveNeutralArithmetic().candidates(g)] == ["out"]


def test_a_weight_no_arithmetic_node_reads_is_never_looked_into(monkeypatch):
    # Reading a weight's tensor_content copies the whole tensor: only constants an arithmetic node reads are
    # looked at (the convolution's all-ones filter is not; the Mul's 1 is, and goes).
    import graphxform.transforms.remove_neutral_arithmetic as rna

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [1, 4, 4, 3], name="x")
        w = tf.constant(np.ones((3, 3, 3, 8), np.float32), name="w")
        conv = tf.nn.conv2d(x, w, strides=1, padding="SAME", name="conv")
        tf.math.negative(tf.multiply(conv, tf.constant(1.0, name="one"), name="m"), name="out")

    looked: list[str] = []
    real = rna._all_equal_fast

    def spy(t, value):
        looked.append(tuple(d.size for d in t.tensor_shape.dim))
        return real(t, value)

    monkeypatch.setattr(rna, "_all_equal_fast", spy)
    feed = {"x:0": np.arange(48, dtype=np.float32).reshape(1, 4, 4, 3)}
    g, report = transformed(graph_def_of(build), feed, ["out:0"], [RemoveNeutralArithmetic()])
    assert report.counts == {"remove_neutral_arithmetic": 1} and g.data_inputs("out") == ["conv"]
    assert looked and (3, 3, 3, 8) not in looked
