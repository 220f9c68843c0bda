"""remove_pass_through: IdentityN, StopGradient, PreventGradient are their inputs at inference; where they stay."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import control_flow_v1, graph_def_of
from graphxform.transforms.remove_pass_through import RemovePassThrough
from rule_check import model_of, reason, signature_run, transformed

from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.engine.registry import get_rule
from graphxform.engine.runner import run_rule_once

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 4.0


def _x():
    return tf.compat.v1.placeholder(tf.float32, [2, 3, 4], name="x")


def test_registered_and_params():
    assert get_rule("remove_pass_through") is RemovePassThrough
    assert RemovePassThrough.summary().startswith("Replaces ``IdentityN(x0, x1, ...)[i]`` by ``x_i``")
    with pytest.raises(RuleError, match="Identity is remove_identity's"):
        RemovePassThrough(op=["Identity"])


def test_swish_identity_n_stop_and_prevent_gradient_go():
    """Keras' swish leaves ``IdentityN(x * sigmoid(x), x, beta)`` of which port 0 is read; moments a StopGradient."""
    def build():
        x = _x()
        beta = tf.constant(1.0, name="beta")
        act = tf.raw_ops.IdentityN(input=[x * tf.math.sigmoid(beta * x), x, beta], name="swish")
        mean = tf.reduce_mean(act[0], axis=-1, keepdims=True, name="mean")
        sg = tf.stop_gradient(mean, name="sg")
        pg = tf.raw_ops.PreventGradient(input=act[0] - sg, name="pg")
        tf.math.square(pg, name="out")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [RemovePassThrough()])
    assert report.counts == {"remove_pass_through": 3}
    assert not (g.nodes_by_op("IdentityN") or g.nodes_by_op("StopGradient") or g.nodes_by_op("PreventGradient"))
    assert g.data_inputs("mean")[0] == "mul_1"
    assert g.data_inputs("sub") == ["mul_1", "mean"]
    assert g.data_inputs("out") == ["sub"]


def test_only_the_chosen_ops():
    def build():
        x = _x()
        tf.math.negative(tf.stop_gradient(tf.raw_ops.IdentityN(input=[x])[0], name="sg"), name="out")

    g, _ = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [RemovePassThrough(op=["StopGradient"])])
    assert g.nodes_by_op("IdentityN") and not g.nodes_by_op("StopGradient")


def test_signature_tensors_stay_and_other_ports_are_still_forwarded():
    def build():
        x = _x()
        idn = tf.raw_ops.IdentityN(input=[x * 2.0, x + 1.0], name="idn")
        tf.math.negative(idn[0], name="neg")
        tf.math.negative(idn[1], name="neg1")

    model = model_of(graph_def_of(build), {"x": "x:0"}, {"a": "idn:0", "b": "neg:0", "c": "neg1:0"})
    before, after = signature_run(model, [RemovePassThrough()], {"x": X})
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    g = model.graph
    assert g.node("idn").op == "IdentityN"  # port 0 is a signature output: the node stays for it
    assert g.data_inputs("neg") == ["idn"] and g.data_inputs("neg1") == ["add"]
    assert model.signatures["serving_default"].outputs["a"].name == "idn:0"


def test_not_a_signature_input():
    def build():
        x = _x()
        tf.math.negative(tf.stop_gradient(x, name="sg"), name="out")

    model = model_of(graph_def_of(build), {"x": "x:0", "s": "sg:0"}, {"y": "out:0"})
    assert "signature 'serving_default' input 's'" in reason(RemovePassThrough(), model.graph, "sg")


def test_control_edges_move_only_when_that_adds_none():
    def build():
        x = _x()
        dep = tf.random.uniform([1], name="dep")
        y3, y4 = x * 3.0, x * 4.0
        with tf.control_dependencies([dep.op]):
            sg = tf.stop_gradient(y3, name="sg")
        tf.math.negative(sg, name="out")
        with tf.control_dependencies([dep.op]):
            sg2 = tf.stop_gradient(y4, name="sg2")
        for i in range(3):
            tf.math.negative(sg2 + float(i), name=f"o{i}")

    g, _ = transformed(graph_def_of(build), {"x:0": X}, ["out:0", "o0:0", "o1:0", "o2:0"], [RemovePassThrough()])
    assert "sg" not in g and g.control_inputs("out") == ["dep/RandomUniform"]
    # one control input, three readers: 1 x 3 <= 1 + 3: moved to each reader
    assert "sg2" not in g and all(g.control_inputs(f"add_{i}" if i else "add") == ["dep/RandomUniform"]
                                  for i in range(3))
    g2 = Graph(graph_def_of(build), protected=["out"])
    for n in ("sg", "sg2"):
        assert reason(RemovePassThrough(), g2, n) is None


def test_not_in_tf1_frames_nor_on_control_flow_or_unread_or_check_ops():
    def build():
        x = _x()
        with control_flow_v1():
            tf.while_loop(lambda a: tf.reduce_sum(a) < 100.0, lambda a: tf.stop_gradient(a * 2.0, name="sg_loop"),
                          [x], name="loop")
        tf.stop_gradient(x, name="unread")
        tf.math.negative(tf.debugging.check_numerics(x, "nan", name="cn"), name="out")
        tf.math.negative(tf.raw_ops.Snapshot(input=x, name="snap"), name="out2")

    g = Graph(graph_def_of(build), protected=["out", "out2"])
    (sg_loop,) = [n.name for n in g.nodes_by_op("StopGradient") if "sg_loop" in n.name]
    assert "control-flow frame" in reason(RemovePassThrough(), g, sg_loop)
    assert "no consumers" in reason(RemovePassThrough(), g, "unread")
    assert run_rule_once(g, RemovePassThrough()) == 0
    assert g.nodes_by_op("CheckNumerics") and g.nodes_by_op("Snapshot")
