"""remove_identity: rewiring, control dependencies, signatures, IdentityN, and where it must not fire."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, assert_close, assert_same_outputs, control_flow_v1, graph_def_of, run, signature_outputs
from graphxform.transforms.remove_identity import RemoveIdentity
from tensorflow.core.framework import types_pb2

from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.explain import explain
from graphxform.engine.registry import get_rule
from graphxform.engine.rule import Match
from graphxform.engine.runner import run_pipeline, run_rule_once
from graphxform.model.model import Model, Signature
from graphxform.tf.session import run_signature

X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5


def _ops(graph: Graph) -> list[str]:
    return sorted(n.op for n in graph)


def _explain(graph: Graph, rule: RemoveIdentity, name: str) -> str | None:
    m = rule.match(graph, graph.node(name))
    assert isinstance(m, Match), m
    return rule.check(m)


def _model(gd, outputs: dict[str, str], inputs: dict[str, str] | None = None) -> Model:
    inputs = inputs if inputs is not None else {"x": "x:0"}
    sig = Signature(
        "serving_default", "tensorflow/serving/predict",
        inputs={k: TensorSpec(t, types_pb2.DT_FLOAT, [2, 3]) for k, t in inputs.items()},
        outputs={k: TensorSpec(t, types_pb2.DT_FLOAT, [2, 3]) for k, t in outputs.items()},
    )
    return Model(Graph(gd), {"serving_default": sig}, Path("mem"), "graph_def")


def test_registered_under_gtt_alias():
    assert get_rule("remove_nodes") is RemoveIdentity
    assert get_rule("remove_identity") is RemoveIdentity


def test_other_ops_are_replaced_by_their_first_input_as_in_gtt():
    """GTT's remove_nodes: an op that is not pass-through, with 1..max_inputs data inputs, becomes its first input;
    not when that changes the dtype, when it has more inputs, or when another output is read."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        fq = tf.quantization.fake_quant_with_min_max_vars(x, tf.constant(-1.0, name="lo"), tf.constant(1.0, name="hi"),
                                                          name="fq")
        tf.nn.relu(fq, name="y")
        tf.nn.relu(tf.cast(x, tf.int32, name="cast"), name="z")
        split = tf.split(x, 3, axis=1, name="split")
        tf.add(split[0], split[1], name="s")

    model = _model(graph_def_of(build), {"y": "y:0", "z": "z:0", "s": "s:0"})
    g = model.graph
    assert "max_inputs=1" in dict(explain(g, RemoveIdentity(op="FakeQuantWithMinMaxVars")))["fq"]
    assert "DT_INT32" in dict(explain(g, RemoveIdentity(op="Cast")))["cast"]
    assert "outputs [1]" in dict(explain(g, RemoveIdentity(op="Split", max_inputs=2)))["split"]
    run_pipeline(g, [RemoveIdentity(op="FakeQuantWithMinMaxVars", max_inputs=3)], debug=True)
    assert "fq" not in g and "lo" not in g and "hi" not in g and g.input_nodes("y") == ["x"]
    assert g.lint() == []
    assert_close([run_signature(model, "serving_default", {"x": X})["y"]], [np.maximum(X, 0)])


def test_consumers_read_the_input_and_outputs_match():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        a = tf.identity(x, name="a")
        r = tf.nn.relu(a, name="relu")
        b = tf.identity(r, name="b")
        tf.add(b, tf.identity(a, name="a2"), name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": X}, ["out:0"])
    g = Graph(gd, protected=["out"])
    report = run_pipeline(g, [RemoveIdentity()])
    assert g.lint() == []
    assert report.counts["remove_identity"] == 3
    assert "Identity" not in _ops(g)
    assert list(g.node("relu").input) == ["x"]
    assert list(g.node("out").input) == ["relu", "x"]
    assert_close(run(g, {"x:0": X}, ["out:0"]), before)


def test_control_dependencies_move_to_data_and_control_consumers():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        dep = tf.no_op(name="dep")
        with tf.control_dependencies([dep]):
            i = tf.identity(x, name="i")
        tf.multiply(i, 2.0, name="y")
        with tf.control_dependencies([i.op]):
            tf.add(x, 1.0, name="w")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": X}, ["y:0", "w:0"])
    g = Graph(gd, protected=["y", "w"])
    assert run_rule_once(g, RemoveIdentity()) == 1
    assert g.lint() == []
    assert "i" not in g
    assert g.data_inputs("y")[0] == "x" and g.control_inputs("y") == ["dep"]
    # TF put ^i on the Const operand of w; ^i became the Identity's input producer and its own control input.
    assert g.control_inputs("w/y") == ["x", "dep"]
    assert not any(inp == "^i" for n in g for inp in n.input)
    assert_close(run(g, {"x:0": X}, ["y:0", "w:0"]), before)


def test_control_consumer_without_data_edge_gets_input_producer():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        s = tf.math.square(x, name="sq")
        i = tf.identity(s, name="i")
        tf.negative(i, name="neg")
        c = tf.constant(1.0, name="c")
        with tf.control_dependencies([i.op]):
            tf.add(c, c, name="w")

    g = Graph(graph_def_of(build), protected=["neg", "w"])
    run_rule_once(g, RemoveIdentity())
    assert g.lint() == [] and "i" not in g
    assert g.control_inputs("w") == ["sq"]


def test_signature_output_identity_is_removed_by_rewriting_the_signature():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        r = tf.nn.relu(x * 3.0, name="relu")
        tf.identity(r, name="out")

    model = _model(graph_def_of(build), {"y": "out:0"})
    before = run_signature(model, "serving_default", {"x": X})
    run_pipeline(model.graph, [RemoveIdentity()])
    assert model.graph.lint() == []
    assert "out" not in model.graph
    assert model.signatures["serving_default"].outputs["y"].name == "relu:0"
    after = run_signature(model, "serving_default", {"x": X})
    assert_close([after["y"]], [before["y"]])


def test_signature_output_identity_kept_when_it_would_expose_an_input_or_a_twin_output():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.identity(x, name="echo")
        r = tf.nn.relu(x, name="relu")
        tf.identity(r, name="r1")
        tf.identity(r, name="r2")

    model = _model(graph_def_of(build), {"echo": "echo:0", "a": "r1:0", "b": "r2:0"})
    rule = RemoveIdentity()
    assert "its own input" in _explain(model.graph, rule, "echo")
    # One of the twins may go; the other then keeps the two output keys apart.
    assert run_pipeline(model.graph, [rule]).counts == {"remove_identity": 1}
    assert model.graph.lint() == []
    kept = {"r1", "r2"} & set(model.graph.node_names)
    assert len(kept) == 1 and "echo" in model.graph
    reason = _explain(model.graph, rule, kept.pop())
    assert "both name" in reason and "relu:0" in reason
    outs = model.signatures["serving_default"].outputs
    assert sorted(spec.name for spec in outs.values()) == sorted(["echo:0", "relu:0", "r1:0" if "r1" in model.graph
                                                                  else "r2:0"])


def test_signature_output_with_control_dependencies_is_kept():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        check = tf.debugging.assert_all_finite(x, "bad")
        doubled = x * 2.0
        with tf.control_dependencies([check]):
            tf.identity(doubled, name="out")

    model = _model(graph_def_of(build), {"y": "out:0"})
    rule = RemoveIdentity()
    g = model.graph
    assert "control dependencies" in _explain(g, rule, "out")
    # assert_all_finite's own Identity (colocated with the x it reads, only a control input of "out") goes;
    # "out" now waits on what it waited for: x and the CheckNumerics.
    assert run_rule_once(g, rule) == 1
    assert "VerifyFinite/control_dependency" not in g and "out" in g
    assert sorted(g.control_inputs("out")) == ["VerifyFinite/CheckNumerics", "x"]
    assert g.lint() == []
    X = np.ones((2, 3), np.float32)
    assert_close(run(g, {"x:0": X}, ["out:0"]), [X * 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad"):
        run(g, {"x:0": np.full((2, 3), np.nan, np.float32)}, ["out:0"])


def test_identity_n_outputs_map_to_inputs():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        a, b = tf.raw_ops.IdentityN(input=[x * 2.0, x + 1.0], name="idn")
        tf.subtract(b, a, name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": X}, ["out:0"])
    g = Graph(gd, protected=["out"])
    assert run_rule_once(g, RemoveIdentity(op="IdentityN")) == 1
    assert g.lint() == [] and "idn" not in g
    assert g.data_inputs("out") == ["add", "mul"]
    assert_close(run(g, {"x:0": X}, ["out:0"]), before)


def test_gtt_style_op_list_removes_check_numerics_and_stop_gradient():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        c = tf.debugging.check_numerics(x * 2.0, "nan!", name="cn")
        s = tf.stop_gradient(c, name="sg")
        tf.identity(s, name="i")
        tf.negative(s, name="out")

    gd = graph_def_of(build)
    g = Graph(gd, protected=["out"])
    run_pipeline(g, [get_rule("remove_nodes")(op=["CheckNumerics", "StopGradient"])])
    assert g.lint() == []
    assert not {"cn", "sg"} & set(g.node_names)
    assert "i" in g  # Identity was not in op=, and it has no consumer anyway
    assert_close(run(g, {"x:0": X}, ["out:0"]), run(gd, {"x:0": X}, ["out:0"]))


def test_not_inside_tf1_control_flow_frames():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        _, v = tf.compat.v1.while_loop(
            lambda i, v: i < 3, lambda i, v: (i + 1, tf.identity(v * 2.0, name="body_id")), [tf.constant(0), x])
        c = tf.compat.v1.cond(tf.reduce_sum(x) > 0, lambda: tf.identity(x + 1.0, name="in_cond"), lambda: x - 1.0)
        tf.add(v, c, name="out")
        tf.negative(tf.identity(x, name="plain"), name="out2")

    with control_flow_v1():
        gd = graph_def_of(build)
    assert {n.op for n in gd.node} >= {"Enter", "Exit", "Switch", "Merge", "NextIteration"}
    before = run(gd, {"x:0": X}, ["out:0", "out2:0"])
    g = Graph(gd, protected=["out", "out2"])
    rule = RemoveIdentity()
    assert "control-flow frame" in _explain(g, rule, "while/body_id")
    assert "control-flow" in _explain(g, rule, "while/Identity")  # the loop pivot
    assert "control-flow" in _explain(g, rule, "cond/switch_t")
    assert "control-flow frame" in _explain(g, rule, "cond/in_cond")
    assert "control-flow op" in _explain(g, rule, "cond/pred_id")  # outside the branch, but feeds Switch
    identities = {n.name for n in g.nodes_by_op("Identity")}
    reasons = dict(explain(g, rule))  # what --explain prints: every Identity, None where the rule fires
    assert set(reasons) == identities and [n for n, r in reasons.items() if r is None] == ["plain"]
    assert run_pipeline(g, [rule]).counts == {"remove_identity": 1}
    assert g.lint() == []
    assert identities - {n.name for n in g.nodes_by_op("Identity")} == {"plain"}
    assert_close(run(g, {"x:0": X}, ["out:0", "out2:0"]), before)


def test_not_with_colocation_protection_resource_or_feed():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        a = tf.constant(np.ones((2, 3), np.float32), name="a")
        with tf.compat.v1.get_default_graph().colocate_with(x):
            col = tf.identity(a, name="colocated")  # placed with x, not with what it reads
        target = tf.identity(x * 2.0, name="target")
        with tf.compat.v1.get_default_graph().colocate_with(target):
            tf.add(target, col, name="coloc_user")
        prot = tf.identity(x - 1.0, name="prot")
        tf.negative(prot, name="neg")
        h = tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[2, 3], shared_name="v", name="h")
        tf.raw_ops.ReadVariableOp(resource=tf.identity(h, name="res_id"), dtype=tf.float32, name="read")
        fed = tf.identity(x, name="fed")
        tf.negative(fed, name="neg_fed")

    model = _model(graph_def_of(build), {"o": "neg_fed:0"}, inputs={"x": "x:0", "fed": "fed:0"})
    g = model.graph
    g.protected.update({"prot", "coloc_user", "neg", "read"})
    rule = RemoveIdentity()
    assert "colocation constraint" in _explain(g, rule, "colocated")
    assert "colocate with 'target'" in _explain(g, rule, "target")
    assert "protected" in _explain(g, rule, "prot")
    assert "resource" in _explain(g, rule, "res_id")
    assert "signature 'serving_default' input 'fed'" in _explain(g, rule, "fed")
    assert run_rule_once(g, rule) == 0
    assert g.lint() == []


def test_variable_read_colocated_with_its_input_is_removed():
    """A frozen TF1 variable's ``read`` Identity keeps ``_class: loc:@w`` naming the ``w`` it reads: its consumers
    can read ``w`` directly. An Identity colocated with ``w`` that reads another tensor stays."""
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.ParseFromString((FIXTURES / "tf1_frozen_bn.pb").read_bytes())
    other = gd.node.add(name="other", op="Identity", input=["conv2/BiasAdd"])  # placed with a weight it does not read
    other.attr["T"].type = types_pb2.DT_FLOAT
    other.attr["_class"].list.s.append(b"loc:@conv2/bias")
    gd.node.add(name="neg", op="Neg", input=["other"]).attr["T"].type = types_pb2.DT_FLOAT
    g = Graph(gd)
    assert g.node("conv1/kernel/read").attr["_class"].list.s == [b"loc:@conv1/kernel"]
    x = np.random.default_rng(3).standard_normal((2, 16, 16, 3)).astype(np.float32)
    before = run(g, {"input:0": x}, ["output:0", "neg:0"])
    rule = RemoveIdentity()
    assert "colocation constraint" in _explain(g, rule, "other")
    assert _explain(g, rule, "conv1/kernel/read") is None
    consumers = [d for d, _ in g.consumers("conv1/kernel/read:0")]
    run_pipeline(g, [rule])
    reads = [n.name for n in g.nodes_by_op("Identity")]
    assert sorted(reads) == ["other", "output"]  # every */read gone; "output" has no consumer (fetched by name)
    assert all("conv1/kernel" in g.input_nodes(d) for d in consumers)
    assert g.lint() == []
    assert_close(run(g, {"input:0": x}, ["output:0", "neg:0"]), before)


def _run_after_init(gd, init: str, feeds: dict, fetch: str) -> np.ndarray:
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(init)
        return sess.run(fetch, feeds)


def test_a_live_ref_variable_read_is_removed_and_its_consumers_read_the_ref():
    """A TF1 ``VariableV2`` (ref output) read through its ``read`` Identity: the Identity goes, the ``MatMul`` reads
    the variable's ref output (TensorFlow dereferences it) and computes the same after the initializer ran."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        w = tf.compat.v1.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), use_resource=False, name="w")
        tf.matmul(x, w, name="y")

    g = Graph(graph_def_of(build))
    assert g.node("w").op == "VariableV2" and list(g.node("y").input) == ["x", "w/read"]
    g.protected.add("w/Assign")  # (the initializer, as a loaded model marks it)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    before = _run_after_init(g.to_graph_def(), "w/Assign", {"x:0": x}, "y:0")
    run_pipeline(g, [RemoveIdentity()])
    assert "w/read" not in g and list(g.node("y").input) == ["x", "w"] and g.lint() == []
    assert_close(_run_after_init(g.to_graph_def(), "w/Assign", {"x:0": x}, "y:0"), before)


def test_dangling_identity_is_left_for_strip_unused():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.identity(x * 2.0, name="maybe_fetched")

    g = Graph(graph_def_of(build))
    assert "no consumers" in _explain(g, RemoveIdentity(), "maybe_fetched")
    assert run_rule_once(g, RemoveIdentity()) == 0


def test_identity_reading_a_missing_node_is_named_in_the_error():
    from tensorflow.core.framework import graph_pb2

    from graphxform.core.errors import RuleError

    gd = graph_pb2.GraphDef()
    gd.node.add(name="id", op="Identity", input=["ghost:1"]).attr["T"].type = types_pb2.DT_FLOAT
    gd.node.add(name="y", op="Neg", input=["id"]).attr["T"].type = types_pb2.DT_FLOAT
    g = Graph(gd)
    with pytest.raises(RuleError, match="remove_identity.*'id'.*no node named 'ghost'"):
        run_rule_once(g, RemoveIdentity())
    assert [n.name for n in g] == ["id", "y"] and g.data_inputs("y") == ["id"]


def test_chain_of_identities_on_a_multi_output_port():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [4, 3], name="x")
        parts = tf.split(x, 2, axis=0, name="split")
        i1 = tf.identity(parts[1], name="i1")
        i2 = tf.identity(i1, name="i2")
        tf.concat([i2, parts[0]], axis=0, name="out")

    gd = graph_def_of(build)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    g = Graph(gd, protected=["out"])
    run_pipeline(g, [RemoveIdentity()])
    assert g.lint() == [] and not g.nodes_by_op("Identity")
    assert g.data_inputs("out")[:2] == ["split:1", "split"]
    assert_close(run(g, {"x:0": x}, ["out:0"]), run(gd, {"x:0": x}, ["out:0"]))


@pytest.mark.skipif(not (FIXTURES / "keras_bn").is_dir(), reason="fixture keras_bn not built")
def test_on_the_keras_bn_fixture():
    import graphxform

    model = graphxform.load(FIXTURES / "keras_bn")
    if not model.frozen:
        model.freeze()
    before = signature_outputs(model, "keras_bn")
    ops_before = model.graph.op_histogram()
    report = run_pipeline(model.graph, [RemoveIdentity()])
    assert model.graph.lint() == []
    ops_after = model.graph.op_histogram()
    # Keras 3 export: every Identity but the signature outputs (which carry control deps) goes.
    assert report.counts["remove_identity"] >= 40
    assert ops_after["Identity"] == len(model.signatures) < ops_before["Identity"]
    assert_same_outputs(before, signature_outputs(model, "keras_bn"))


def test_signature_outputs_moved_earlier_in_the_run_are_seen_by_later_checks():
    """z = id1 moves to neg when id1 goes; id2 (y) reads id1, then neg: moving y to neg too would merge the two
    outputs, so id2 stays — the check must see the signature as the run left it, not as it started."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.identity(tf.identity(tf.negative(x, name="neg"), name="id1"), name="id2")

    model = _model(graph_def_of(build), {"z": "id1:0", "y": "id2:0"})
    before = run_signature(model, "serving_default", {"x": X})
    report = run_pipeline(model.graph, [RemoveIdentity()])
    assert report.counts == {"remove_identity": 1} and [r.anchor for r in report.applied] == ["id1"]
    outs = model.signatures["serving_default"].outputs
    assert (outs["z"].name, outs["y"].name) == ("neg:0", "id2:0")
    assert model.graph.input_nodes("id2") == ["neg"] and model.graph.lint() == []
    assert "both name" in _explain(model.graph, RemoveIdentity(), "id2")
    after = run_signature(model, "serving_default", {"x": X})
    assert_close([after["y"], after["z"]], [before["y"], before["z"]])


def test_control_flow_op_added_later_is_seen_with_the_same_context():
    """Without a control-flow op in the graph the check reads no producer or consumer op for the refusal; what it
    keeps in the context to know that follows the ops the graph holds."""
    from graphxform.core.nodes import make_node
    from graphxform.engine.context import Context

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.negative(tf.identity(x, name="id"), name="out")

    g = Graph(graph_def_of(build), protected=["out"])
    rule, ctx = RemoveIdentity(), Context()

    def check() -> str | None:
        m = rule.match_in(g, g.node("id"), ctx)
        assert isinstance(m, Match) and m.ctx is ctx
        return rule.check(m)

    assert check() is None
    g.add_nodes([make_node("Merge", "merge", ["id", "x"], attrs={"T": tf.float32, "N": 2})])
    assert check() == "'id' feeds control-flow op 'merge' (Merge)"
    g.remove_node("merge")
    assert check() is None
    g.add_nodes([make_node("Switch", "sw", ["x", "p"], attrs={"T": tf.float32}),
                 make_node("Placeholder", "p", attrs={"dtype": tf.bool})])
    g.update_node(make_node("Identity", "id", ["sw:1"], attrs={"T": tf.float32}))
    assert check() == "input 'sw:1' of 'id' comes from control-flow op Switch"
