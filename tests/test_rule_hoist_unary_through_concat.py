"""hoist_unary_through_concat: Concat(f(a), f(b)) -> f(Concat(a, b)), chains, names kept, and where it must not fire."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from conftest import assert_close, control_flow_v1, graph_def_of, run
from graphxform.transforms.hoist_unary_through_concat import HoistUnaryThroughConcat
from tensorflow.core.framework import types_pb2

from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.explain import explain
from graphxform.engine.registry import get_rule
from graphxform.engine.rule import Match
from graphxform.engine.runner import run_pipeline, run_rule_once
from graphxform.jobs.gtt import TransformGraph
from graphxform.model.model import Model, Signature
from graphxform.tf.session import run_signature

X = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5) / 4.0


def _x():
    return tf.compat.v1.placeholder(tf.float32, [2, 3, 4], name="x")


def _reason(graph: Graph, name: str, rule: HoistUnaryThroughConcat | None = None) -> str | None:
    """Why the rule does not fire at ``name`` (the match's or the check's reason); ``None``: it fires."""
    rule = rule or HoistUnaryThroughConcat()
    m = rule.match(graph, graph.node(name))
    return m if isinstance(m, str) else rule.check(m)


def _hoisted(gd, fetches: list[str], rule: HoistUnaryThroughConcat | None = None, feeds=None):
    """Run the rule to its fixpoint on ``gd`` (fetches protected); check outputs; return (graph, report)."""
    feeds = feeds if feeds is not None else {"x:0": X}
    before = run(gd, feeds, fetches)
    g = Graph(gd, protected=[f.split(":")[0] for f in fetches])
    report = run_pipeline(g, [rule or HoistUnaryThroughConcat()], debug=True)
    assert g.lint() == []
    assert_close(run(g, feeds, fetches), before)
    return g, report


def _ops(g: Graph, op: str) -> list[str]:
    return sorted(n.name for n in g.nodes_by_op(op))


def test_registered():
    assert get_rule("hoist_unary_through_concat") is HoistUnaryThroughConcat
    assert HoistUnaryThroughConcat.summary().startswith("Replaces ``Concat(f(a), f(b), ..., axis)`` by ``f(Concat(")


def test_relus_of_every_input_become_one_relu_after_the_concat():
    def build():
        x = _x()
        a, b, c = (tf.nn.relu(x * k, name=f"r{i}") for i, k in enumerate((1.0, -2.0, 0.5)))
        cat = tf.concat([a, b, c], axis=-1, name="cat")
        tf.reduce_sum(cat, axis=1, name="out")

    g, report = _hoisted(graph_def_of(build), ["out:0"])
    assert report.counts == {"hoist_unary_through_concat": 1}
    assert not {"r0", "r1", "r2"} & set(g.node_names)
    # The concat's name now holds the Relu: its consumer is untouched.
    assert g.node("cat").op == "Relu" and g.data_inputs("cat") == ["cat/before_relu"]
    assert g.data_inputs("out")[0] == "cat"
    inner = g.node("cat/before_relu")
    assert inner.op == "ConcatV2" and inner.attr["N"].i == 3
    assert g.data_inputs("cat/before_relu") == ["mul", "mul_1", "mul_2", "cat/axis"]
    assert _ops(g, "Relu") == ["cat"]


def test_concat_v1_with_the_axis_first():
    def build():
        x = _x()
        a, b = tf.math.tanh(x + 1.0, name="t0"), tf.math.tanh(x - 1.0, name="t1")
        tf.raw_ops.Concat(concat_dim=tf.constant(1, name="dim"), values=[a, b], name="cat")

    g, _ = _hoisted(graph_def_of(build), ["cat:0"])
    assert g.node("cat").op == "Tanh"
    assert g.node("cat/before_tanh").op == "Concat"
    assert g.data_inputs("cat/before_tanh") == ["dim", "add", "sub"]


def test_a_chain_is_hoisted_one_op_per_rewrite():
    def build():
        x = _x()
        a = tf.math.exp(tf.math.sin(x, name="s0"), name="e0")
        b = tf.math.exp(tf.math.sin(x * 3.0, name="s1"), name="e1")
        tf.concat([a, b], axis=0, name="cat")

    g, report = _hoisted(graph_def_of(build), ["cat:0"])
    assert report.counts == {"hoist_unary_through_concat": 2}
    assert g.node("cat").op == "Exp"
    assert g.node("cat/before_exp").op == "Sin"
    assert g.node("cat/before_exp/before_sin").op == "ConcatV2"
    assert g.data_inputs("cat/before_exp/before_sin")[:2] == ["x", "mul"]
    assert not g.nodes_by_op("Exp")[1:] and len(g.nodes_by_op("Sin")) == 1


def test_nested_concats_as_in_inception_v3_mixed9():
    """mixed9: Concat(Relu, Concat(Relu, Relu), Concat(Relu, Relu), Relu): six Relus become one."""
    def build():
        x = _x()
        r = [tf.nn.relu(x * (i - 2.5), name=f"r{i}") for i in range(6)]
        inner1 = tf.concat([r[1], r[2]], axis=-1, name="mixed9_0")
        inner2 = tf.concat([r[3], r[4]], axis=-1, name="concatenate")
        tf.concat([r[0], inner1, inner2, r[5]], axis=-1, name="mixed9")

    g, report = _hoisted(graph_def_of(build), ["mixed9:0"])
    assert report.counts == {"hoist_unary_through_concat": 3}
    assert _ops(g, "Relu") == ["mixed9"]
    # The inner concats became Relus under their names, then went when the outer concat hoisted them.
    assert not {"mixed9_0", "concatenate"} & set(g.node_names)
    assert g.data_inputs("mixed9/before_relu") == ["mul", "mixed9_0/before_relu", "concatenate/before_relu",
                                                   "mul_5", "mixed9/axis"]


def test_a_concat_that_is_a_signature_output_keeps_its_name():
    def build():
        x = _x()
        tf.concat([tf.nn.relu6(x * 4.0, name="a"), tf.nn.relu6(x, name="b")], axis=1, name="cat")

    gd = graph_def_of(build)
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [2, 3, 4])},
                    outputs={"y": TensorSpec("cat:0", types_pb2.DT_FLOAT, [2, 6, 4])})
    model = Model(Graph(gd), {"serving_default": sig}, Path("mem"), "graph_def")
    before = run_signature(model, "serving_default", {"x": X})
    assert run_pipeline(model.graph, [HoistUnaryThroughConcat()]).counts == {"hoist_unary_through_concat": 1}
    assert model.graph.lint() == []
    assert model.signatures["serving_default"].outputs["y"].name == "cat:0"
    assert model.graph.node("cat").op == "Relu6"
    after = run_signature(model, "serving_default", {"x": X})
    assert_close([after["y"]], [before["y"]])


def test_control_inputs_move_to_the_new_concat():
    def build():
        x = _x()
        dep, dep2 = tf.no_op(name="dep"), tf.no_op(name="dep2")
        with tf.control_dependencies([dep]):
            a = tf.nn.relu(x, name="a")
        b = tf.nn.relu(-x, name="b")
        axis = tf.constant(0, name="axis")
        with tf.control_dependencies([dep2]):
            tf.concat([a, b], axis=axis, name="cat")

    g, _ = _hoisted(graph_def_of(build), ["cat:0"])
    assert g.control_inputs("cat/before_relu") == ["dep2", "dep"]
    assert g.control_inputs("cat") == []


def test_the_concat_axis_need_not_be_constant():
    def build():
        x = _x()
        axis = tf.compat.v1.placeholder(tf.int32, [], name="axis")
        tf.concat([tf.math.sigmoid(x, name="a"), tf.math.sigmoid(x * 2.0, name="b")], axis=axis, name="cat")

    gd = graph_def_of(build)
    for axis in (0, 2):
        g, _ = _hoisted(gd, ["cat:0"], feeds={"x:0": X, "axis:0": np.int32(axis)})
        assert g.node("cat").op == "Sigmoid" and g.data_inputs("cat/before_sigmoid")[-1] == "axis"


def test_same_attrs_required_leaky_relu_alpha():
    def build():
        x = _x()
        same = [tf.nn.leaky_relu(x * k, alpha=0.1, name=f"s{i}") for i, k in enumerate((1.0, 2.0))]
        tf.concat(same, axis=0, name="same")
        diff = [tf.nn.leaky_relu(x, alpha=0.1, name="d0"), tf.nn.leaky_relu(x * 2.0, alpha=0.2, name="d1")]
        tf.concat(diff, axis=0, name="diff")

    g, report = _hoisted(graph_def_of(build), ["same:0", "diff:0"])
    assert report.counts == {"hoist_unary_through_concat": 1}
    assert g.node("same").op == "LeakyRelu"
    reason = _reason(g, "diff")
    assert "differ in attrs alpha" in reason and "'d0'" in reason and "'d1'" in reason
    assert {"d0", "d1"} <= set(g.node_names)


def test_not_with_different_ops_or_an_input_that_is_no_unary_op():
    def build():
        x = _x()
        tf.concat([tf.nn.relu(x, name="r"), tf.nn.relu6(x, name="r6")], axis=0, name="mixed_ops")
        tf.concat([tf.nn.relu(x, name="r2"), tf.nn.max_pool1d(x, 1, 1, "VALID", name="pool")], axis=0,
                  name="with_pool")
        tf.concat([tf.math.is_nan(x, name="n0"), tf.math.is_nan(-x, name="n1")], axis=0, name="nan")

    g = Graph(graph_def_of(build), protected=["mixed_ops", "with_pool", "nan"])
    assert "different ops: Relu ('r') and Relu6 ('r6'" in _reason(g, "mixed_ops")
    assert "is MaxPool" in _reason(g, "with_pool") or "is Squeeze" in _reason(g, "with_pool")
    assert "IsNan, not an element-wise unary op that keeps its dtype" in _reason(g, "nan")
    assert run_rule_once(g, HoistUnaryThroughConcat()) == 0


def test_not_when_an_input_op_has_other_readers_or_control_users():
    def build():
        x = _x()
        a, b = tf.nn.relu(x, name="a"), tf.nn.relu(-x, name="b")
        tf.concat([a, b], axis=0, name="cat")
        tf.negative(a, name="other_reader")
        c, d = tf.nn.relu(x * 2.0, name="c"), tf.nn.relu(x * 3.0, name="d")
        tf.concat([c, d], axis=0, name="cat2")
        with tf.control_dependencies([d.op]):
            tf.add(x, 1.0, name="after_d")

    gd = graph_def_of(build)
    g = Graph(gd, protected=["cat", "other_reader", "cat2", "after_d"])
    assert "Relu 'a' is also read by other_reader" in _reason(g, "cat")
    reason = _reason(g, "cat2")
    assert "by control edge (^d)" in reason and "after_d" in reason
    assert run_rule_once(g, HoistUnaryThroughConcat()) == 0
    assert g.lint() == []


def test_not_when_an_input_op_is_protected_or_a_signature_output():
    def build():
        x = _x()
        a, b = tf.nn.relu(x, name="a"), tf.nn.relu(-x, name="b")
        tf.concat([a, b], axis=0, name="cat")

    gd = graph_def_of(build)
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [2, 3, 4])},
                    outputs={"y": TensorSpec("cat:0", types_pb2.DT_FLOAT, None),
                             "b": TensorSpec("b:0", types_pb2.DT_FLOAT, None)})
    model = Model(Graph(gd), {"serving_default": sig}, Path("mem"), "graph_def")
    assert "Relu 'b' is protected or a signature tensor" in _reason(model.graph, "cat")
    g = Graph(gd, protected=["cat", "a"])
    assert "Relu 'a' is protected" in _reason(g, "cat")
    assert run_rule_once(g, HoistUnaryThroughConcat()) == 0


def test_not_when_the_concat_is_a_signature_input():
    def build():
        x = _x()
        cat = tf.concat([tf.nn.relu(x, name="a"), tf.nn.relu(-x, name="b")], axis=0, name="cat")
        tf.negative(cat, name="out")

    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, None),
                            "c": TensorSpec("cat:0", types_pb2.DT_FLOAT, None)},
                    outputs={"y": TensorSpec("out:0", types_pb2.DT_FLOAT, None)})
    model = Model(Graph(graph_def_of(build)), {"serving_default": sig}, Path("mem"), "graph_def")
    assert "signature 'serving_default' input 'c'" in _reason(model.graph, "cat")


def test_not_with_the_same_node_twice_different_devices_or_colocation():
    def build():
        x = _x()
        r = tf.nn.relu(x, name="r")
        tf.concat([r, r], axis=0, name="twice")
        with tf.device("/device:CPU:0"):
            on_cpu = tf.nn.relu(x * 2.0, name="on_cpu")
        tf.concat([on_cpu, tf.nn.relu(x * 3.0, name="anywhere")], axis=0, name="devices")
        c0 = tf.nn.relu(x * 4.0, name="c0")
        with tf.compat.v1.get_default_graph().colocate_with(c0):
            tf.identity(x, name="pinned")
        tf.concat([c0, tf.nn.relu(x * 5.0, name="c1")], axis=0, name="coloc")
        with tf.compat.v1.get_default_graph().colocate_with(x):
            k0 = tf.nn.relu(x * 6.0, name="k0")
        tf.concat([k0, tf.nn.relu(x * 7.0, name="k1")], axis=0, name="has_class")

    g = Graph(graph_def_of(build), protected=["twice", "devices", "coloc", "pinned", "has_class"])
    assert "the same node 'r'" in _reason(g, "twice")
    assert "on device '/device:CPU:0'" in _reason(g, "devices")
    assert "colocate with 'c0'" in _reason(g, "coloc")
    assert "Relu 'k0' has a colocation constraint (_class)" in _reason(g, "has_class")
    assert run_rule_once(g, HoistUnaryThroughConcat()) == 0


def test_not_inside_tf1_control_flow_frames():
    def build():
        x = _x()

        def body(i, v):
            cat = tf.concat([tf.nn.relu(v, name="ra"), tf.nn.relu(-v, name="rb")], axis=0, name="body_cat")
            return i + 1, tf.reduce_mean(tf.reshape(cat, [2, 2, 3, 4]), axis=0)

        _, v = tf.compat.v1.while_loop(lambda i, v: i < 2, body, [tf.constant(0), x])
        tf.concat([tf.nn.relu(v, name="oa"), tf.nn.relu(x, name="ob")], axis=0, name="out")

    with control_flow_v1():
        gd = graph_def_of(build)
    assert {n.op for n in gd.node} >= {"Enter", "Exit", "NextIteration"}
    g = Graph(gd, protected=["out"])
    assert "control-flow frame" in _reason(g, "while/body_cat")
    reasons = dict(explain(g, HoistUnaryThroughConcat()))
    assert reasons["out"] is None and reasons["while/body_cat"]  # "oa" reads an Exit: outside the frame
    before = run(gd, {"x:0": X}, ["out:0"])
    assert run_pipeline(g, [HoistUnaryThroughConcat()]).counts == {"hoist_unary_through_concat": 1}
    assert g.lint() == [] and g.node("out").op == "Relu" and "while/ra" in g
    assert_close(run(g, {"x:0": X}, ["out:0"]), before)


def test_keep_fusable_leaves_relus_that_read_a_bias_add():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [1, 5, 5, 3], name="x")
        branches = []
        for i in range(2):
            w = tf.constant(np.random.default_rng(i).normal(size=(1, 1, 3, 4)).astype(np.float32), name=f"w{i}")
            conv = tf.nn.conv2d(x, w, 1, "SAME", name=f"conv{i}")
            branches.append(tf.nn.relu(tf.nn.bias_add(conv, tf.constant([0.1, -0.2, 0.3, 0.0]), name=f"b{i}"),
                                       name=f"r{i}"))
        tf.concat(branches, axis=-1, name="cat")
        tf.concat([tf.nn.relu(x, name="plain0"), tf.nn.relu(-x, name="plain1")], axis=-1, name="cat_plain")

    gd = graph_def_of(build)
    rule = get_rule("hoist_unary_through_concat")(keep_fusable="true")
    g = Graph(gd, protected=["cat", "cat_plain"])
    assert "reads BiasAdd 'b0'; the remapper fuses it" in _reason(g, "cat", rule)
    assert _reason(g, "cat_plain", rule) is None
    assert _reason(g, "cat") is None  # the default hoists them
    feeds = {"x:0": np.random.default_rng(3).normal(size=(1, 5, 5, 3)).astype(np.float32)}
    g2, report = _hoisted(gd, ["cat:0", "cat_plain:0"], rule=rule, feeds=feeds)
    assert report.counts == {"hoist_unary_through_concat": 1}
    assert g2.node("cat").op == "ConcatV2" and g2.node("cat_plain").op == "Relu"


def test_explain_names_every_concat():
    def build():
        x = _x()
        tf.concat([tf.nn.relu(x, name="a"), tf.nn.relu(-x, name="b")], axis=0, name="good")
        tf.concat([x, tf.nn.relu(x, name="c")], axis=0, name="bad")

    g = Graph(graph_def_of(build), protected=["good", "bad"])
    reasons = dict(explain(g, HoistUnaryThroughConcat()))
    assert reasons["good"] is None
    assert "input 0 of 'bad' ('x') is Placeholder" in reasons["bad"]
    m = HoistUnaryThroughConcat().match(g, g.node("good"))
    assert isinstance(m, Match) and m["branch0"].name == "a" and m["branch1"].name == "b"


def test_an_inception_block_through_transform_graph_with_the_default_pipeline():
    """Conv + BN + Relu branches into a concat, as Keras' InceptionV3 builds them: 4 Relus -> 1, same output."""
    rng = np.random.default_rng(0)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 9, 9, 8], name="input")

        def conv_bn_relu(t, k, cout, i):
            w = tf.constant(rng.normal(0, 0.3, (k, k, t.shape[-1], cout)).astype(np.float32), name=f"w{i}")
            y = tf.nn.conv2d(t, w, 1, "SAME", name=f"conv{i}")
            mean, var = (tf.constant(rng.normal(0, 0.1, cout).astype(np.float32), name=f"mean{i}"),
                         tf.constant(rng.uniform(0.5, 2, cout).astype(np.float32), name=f"var{i}"))
            gamma, beta = (tf.constant(rng.uniform(0.5, 1.5, cout).astype(np.float32), name=f"gamma{i}"),
                           tf.constant(rng.normal(0, 0.1, cout).astype(np.float32), name=f"beta{i}"))
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(y, gamma, beta, mean, var, is_training=False,
                                                       name=f"bn{i}")
            return tf.nn.relu(y, name=f"relu{i}")

        b0 = conv_bn_relu(x, 1, 4, 0)
        b1 = conv_bn_relu(conv_bn_relu(x, 1, 3, 1), 3, 4, 2)
        b2 = conv_bn_relu(conv_bn_relu(x, 1, 3, 3), 5, 4, 4)
        b3 = conv_bn_relu(tf.nn.avg_pool2d(x, 3, 1, "SAME"), 1, 2, 5)
        cat = tf.concat([b0, b1, b2, b3], axis=-1, name="mixed0")
        tf.identity(tf.reduce_mean(cat, axis=[1, 2]), name="output")

    gd = graph_def_of(build)
    default = ["remove_identity", "merge_duplicates", "strip_unused", "fold_constants", "fold_batch_norms"]
    plain = TransformGraph(gd, ["input"], ["output"], default)
    hoisted = TransformGraph(gd, ["input"], ["output"], [*default, "hoist_unary_through_concat"])
    relus = [sum(n.op == "Relu" for n in g.node) for g in (plain, hoisted)]
    assert relus == [6, 3]
    assert len(hoisted.node) == len(plain.node) - 3
    assert {n.name: n.op for n in hoisted.node}["mixed0"] == "Relu"
    feeds = {"input:0": rng.normal(size=(2, 9, 9, 8)).astype(np.float32)}
    assert_close(run(hoisted, feeds, ["output:0"]), run(gd, feeds, ["output:0"]), rtol=1e-5, atol=1e-5)
    assert_close(run(hoisted, feeds, ["output:0"]), run(plain, feeds, ["output:0"]))
