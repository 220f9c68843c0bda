"""prune_control_deps: control edges that only order pure computations go; those that order effects stay."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import control_flow_v1, graph_def_of, run
from graphxform.transforms.prune_control_deps import PruneControlDeps
from graphxform.transforms.remove_noop import RemoveNoop
from graphxform.transforms.strip_unused import StripUnused
from rule_check import model_of, signature_run, transformed

from graphxform.core.graph import Graph
from graphxform.engine.context import Context
from graphxform.engine.registry import get_rule

X = np.arange(6, dtype=np.float32).reshape(2, 3)


def _x():
    return tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")


def test_registered():
    assert get_rule("prune_control_deps") is PruneControlDeps
    assert PruneControlDeps.summary().startswith("Replaces ``y(..., ^c)`` by ``y(...)``")


def test_control_edges_from_constants_and_a_noop_of_constants_go():
    """The frozen Keras form: ``out = Identity(y, ^NoOp)``, ``NoOp(^w1, ^w2)`` with weight constants."""
    def build():
        x = _x()
        w1, w2 = tf.constant(np.ones((3, 3), np.float32), name="w1"), tf.constant(2.0, name="w2")
        with tf.control_dependencies([w1.op, w2.op]):
            noop = tf.no_op(name="NoOp")
        y = tf.matmul(x, w1, name="mm") * w2
        with tf.control_dependencies([noop, w1.op]):
            tf.identity(y, name="out")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [PruneControlDeps()])
    assert report.counts == {"prune_control_deps": 1}
    assert g.control_inputs("out") == [] and g.control_inputs("NoOp") == []
    g2, _ = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [PruneControlDeps(), StripUnused()])
    assert "NoOp" not in g2  # nothing holds it any more


def test_a_control_edge_doubling_a_data_edge_goes():
    def build():
        x = _x()
        a = tf.math.exp(x, name="a")
        with tf.control_dependencies([tf.random.uniform([1], name="rnd")]):  # stateful: kept
            b = tf.identity(a, name="b")
        with tf.control_dependencies([b.op]):
            tf.add(b, 1.0, name="out")

    g, _ = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [PruneControlDeps()])
    assert g.control_inputs("out") == []  # reads b by a data edge already
    assert g.control_inputs("b") == ["rnd/RandomUniform"]


def test_edges_that_order_effects_stay():
    def build():
        x = _x()
        v = tf.Variable(1.0, name="v", use_resource=True)
        update = v.assign_add(1.0, name="update")
        check = tf.debugging.assert_positive(x + 1.0, name="check")
        guard = tf.debugging.check_numerics(x, "bad", name="numerics")
        with tf.control_dependencies([check]):
            after_assert = tf.no_op(name="after_assert")  # a NoOp holding an assert is not pure
        y = x * 2.0
        with tf.control_dependencies([update.op, after_assert, guard.op]):
            tf.identity(y, name="out")

    gd = graph_def_of(build)
    g = Graph(gd, protected=["out"])
    assert PruneControlDeps().run(g, Context()) == []
    why = PruneControlDeps().explain(g, Context())
    assert why["out <- ^after_assert"].startswith("kept:") and "Assert" in why["out <- ^after_assert"]
    assert "is a check (CheckNumerics)" in why["out <- ^numerics"]
    (update,) = [k for k in why if k.startswith("out <- ^update")]
    assert "is stateful (AssignAddVariableOp)" in why[update]


def test_protected_nodes_are_not_pure():
    """A table initializer, the init op or a node the user lists stays ordered."""
    def build():
        x = _x()
        init = tf.no_op(name="init_all_tables")
        with tf.control_dependencies([init]):
            tf.identity(x, name="out")

    g = Graph(graph_def_of(build), protected=["out", "init_all_tables"])
    assert PruneControlDeps().run(g, Context()) == []
    assert "protected" in PruneControlDeps().explain(g, Context())["out <- ^init_all_tables"]


def test_tf1_loops_are_not_pure_and_cycles_terminate():
    def build():
        x = _x()
        with control_flow_v1():
            loop = tf.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2.0), [tf.constant(0), x],
                                 name="loop")
        y = x + 1.0
        with tf.control_dependencies([loop[1].op]):
            tf.identity(y, name="out")
        tf.identity(loop[1], name="looped")

    gd = graph_def_of(build)
    g, _ = transformed(gd, {"x:0": X}, ["out:0", "looped:0"], [PruneControlDeps()])
    assert g.control_inputs("out")  # kept: control flow is not pure
    # the NextIteration cycle was walked without recursion errors; the loop itself is unchanged
    assert len(g.nodes_by_op("NextIteration")) == 2


def test_a_node_rewired_away_is_no_longer_held_by_the_flattened_functions_control_edges():
    """The CLI's case: ``score/Identity_1(mul_out, ^score/NoOp, ^mul)`` keeps a dead ``Mul`` alive."""
    def build():
        x = _x()
        dead = tf.multiply(x, 3.0, name="mul")  # a custom rule rewired its readers away
        with tf.control_dependencies([tf.no_op(name="score/NoOp"), dead.op]):
            tf.identity(x + 3.0, name="score/Identity_1")

    model = model_of(graph_def_of(build), {"x": "x:0"}, {"score": "score/Identity_1:0"})
    before, after = signature_run(model, [PruneControlDeps(), RemoveNoop(), StripUnused()], {"x": X})
    np.testing.assert_array_equal(after["score"], before["score"])
    g = model.graph
    assert "mul" not in g and "score/NoOp" not in g
    assert g.control_inputs("score/Identity_1") == []


def test_gives_the_same_outputs_after_a_whole_run():
    def build():
        x = _x()
        c = tf.constant(5.0, name="c")
        with tf.control_dependencies([c.op]):
            y = tf.math.square(x, name="sq")
        with tf.control_dependencies([y.op]):
            tf.math.negative(y, name="out")

    gd = graph_def_of(build)
    g, _ = transformed(gd, {"x:0": X}, ["out:0"], [PruneControlDeps()])
    assert g.control_inputs("sq") == [] and g.control_inputs("out") == []
    np.testing.assert_array_equal(run(g, {"x:0": X}, ["out:0"])[0], -(X ** 2))
