"""strip_unused: dead code goes; signatures, init op, tables and colocation targets stay; GTT type/shape."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FIXTURES,
    assert_close,
    assert_same_outputs,
    control_flow_v1,
    graph_def_of,
    load_samples,
    run,
    signature_outputs,
)
from graphxform.transforms.strip_unused import StripUnused
from tensorflow.core.framework import types_pb2

from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.context import Context
from graphxform.engine.explain import explain
from graphxform.engine.registry import get_rule
from graphxform.engine.runner import run_pipeline, run_rule_once
from graphxform.model.model import Model, Signature
from graphxform.tf.session import run_signature

X = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)


def _sig(inputs: dict[str, tuple[str, int]], outputs: dict[str, tuple[str, int]], key="serving_default"):
    return Signature(key, "tensorflow/serving/predict",
                     inputs={k: TensorSpec(t, dt, None) for k, (t, dt) in inputs.items()},
                     outputs={k: TensorSpec(t, dt, None) for k, (t, dt) in outputs.items()})


def _model(gd, *sigs: Signature, init_op: str | None = None) -> Model:
    return Model(Graph(gd), {s.key: s for s in sigs}, Path("mem"), "graph_def", init_op=init_op)


def _explain(graph: Graph, name: str, **params) -> str | None:
    return StripUnused(**params).explain(graph, Context())[name]


def test_registered_under_gtt_alias():
    assert get_rule("strip_unused_nodes") is StripUnused


def test_dead_branches_removed_and_outputs_equal():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        unused_in = tf.compat.v1.placeholder(tf.float32, [2, 3], name="unused_in")
        y = tf.nn.relu(x * 2.0, name="y")
        tf.reduce_sum(tf.exp(x, name="dead_exp"), name="dead_sum")  # no signature needs these
        tf.sigmoid(unused_in, name="dead_sig")
        tf.negative(y, name="z")

    f32 = types_pb2.DT_FLOAT
    sig_a = _sig({"x": ("x:0", f32)}, {"y": ("y:0", f32)}, key="a")
    sig_b = _sig({"x": ("x:0", f32), "u": ("unused_in:0", f32)}, {"z": ("z:0", f32)}, key="b")
    model = _model(graph_def_of(build), sig_a, sig_b)
    before = run_signature(model, "b", {"x": X, "u": X})
    assert _explain(model.graph, "dead_sum") is None
    assert _explain(model.graph, "mul") == "'mul' is needed by 'y' (signature 'a' output 'y')"
    reasons = dict(explain(model.graph, StripUnused()))  # what --explain prints: None = would be removed
    assert {n for n, r in reasons.items() if r is None} == {"dead_exp", "Const", "dead_sum", "dead_sig"}
    assert reasons["unused_in"] == "'unused_in' is signature 'b' input 'u'"
    report = run_pipeline(model.graph, [StripUnused()])
    g = model.graph
    assert g.lint() == []
    assert report.counts == {"strip_unused": 1} and report.rounds == 2
    assert not {n for n, r in reasons.items() if r is None} & set(g.node_names)
    assert {"x", "unused_in", "y", "z"} <= set(g.node_names)  # an input of a signature stays even if unused
    assert_close([run_signature(model, "b", {"x": X, "u": X})["z"]], [before["z"]])


def test_dead_tf1_while_loop_is_removed_although_it_is_a_cycle():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.compat.v1.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [tf.constant(0), x],
                                name="dead_loop")
        tf.identity(x + 1.0, name="y")

    with control_flow_v1():
        gd = graph_def_of(build)
    f32 = types_pb2.DT_FLOAT
    model = _model(gd, _sig({"x": ("x:0", f32)}, {"y": ("y:0", f32)}))
    run_pipeline(model.graph, [StripUnused()])
    assert model.graph.lint() == []
    assert sorted(model.graph.node_names) == ["add", "add/y", "x", "y"]
    assert_close(run(model.graph, {"x:0": X}, ["y:0"]), [X + 1.0])


def test_table_initializer_subgraph_kept_when_only_the_init_op_needs_it():
    def build():
        keys = tf.constant(["a", "b", "c"], name="keys")
        vals = tf.constant([10, 20, 30], tf.int64, name="vals")
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, vals), -1)
        s = tf.compat.v1.placeholder(tf.string, [None], name="s")
        table.lookup(s, name="ids")
        tf.compat.v1.tables_initializer(name="init_all_tables")
        tf.strings.length(s, name="dead_len")

    gd = graph_def_of(build)
    ops_before = {n.op for n in gd.node}
    assert {"HashTableV2", "LookupTableImportV2", "LookupTableFindV2"} <= ops_before
    sig = _sig({"s": ("s:0", types_pb2.DT_STRING)}, {"ids": ("ids/LookupTableFindV2:0", types_pb2.DT_INT64)})
    model = _model(gd, sig, init_op="init_all_tables")
    feed = {"s": np.array([b"b", b"zz", b"a"])}
    before = run_signature(model, "serving_default", feed)
    run_pipeline(model.graph, [StripUnused()])
    g = model.graph
    assert g.lint() == []
    assert "dead_len" not in g
    import_op = g.nodes_by_op("LookupTableImportV2")
    assert len(import_op) == 1 and {"keys", "vals", "init_all_tables"} <= set(g.node_names)
    assert "protected" in _explain(g, "init_all_tables")
    assert "needed by 'init_all_tables'" in _explain(g, import_op[0].name)
    after = run_signature(model, "serving_default", feed)
    np.testing.assert_array_equal(after["ids"], [20, -1, 10])
    np.testing.assert_array_equal(after["ids"], before["ids"])


def test_placeholder_type_and_shape_set_on_signature_input_placeholders():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, None, name="x")
        tf.reduce_sum(x * 3.0, axis=-1, name="y")

    f32 = types_pb2.DT_FLOAT
    model = _model(graph_def_of(build), _sig({"x": ("x:0", f32)}, {"y": ("y:0", f32)}))
    rule = get_rule("strip_unused_nodes")(placeholder_type="float", placeholder_shape="2,3")
    assert run_rule_once(model.graph, rule) == 1
    g = model.graph
    assert g.lint() == []
    x = g.node("x")
    assert x.attr["dtype"].type == types_pb2.DT_FLOAT
    assert [d.size for d in x.attr["shape"].shape.dim] == [2, 3]
    spec = model.signatures["serving_default"].inputs["x"]
    assert spec.dtype == types_pb2.DT_FLOAT and spec.shape == [2, 3]
    assert run_rule_once(g, rule) == 0  # already applied: nothing left to do
    out = run(g, {"x:0": X}, ["y:0"])
    assert_close(out, [(X * 3.0).sum(-1)])
    with pytest.raises(Exception):  # the placeholder now really is [2, 3]
        run(g, {"x:0": np.zeros((4, 3), np.float32)}, ["y:0"])


def test_unknown_dim_and_bad_params():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        tf.identity(x, name="y")

    f32 = types_pb2.DT_FLOAT
    model = _model(graph_def_of(build), _sig({"x": ("x:0", f32)}, {"y": ("y:0", f32)}))
    run_rule_once(model.graph, StripUnused(placeholder_shape=["-1", "224", "224", "3"]))
    assert [d.size for d in model.graph.node("x").attr["shape"].shape.dim] == [-1, 224, 224, 3]
    assert model.signatures["serving_default"].inputs["x"].shape == [None, 224, 224, 3]
    with pytest.raises(RuleError, match="not a TensorFlow dtype"):
        StripUnused(type="floaty")
    with pytest.raises(RuleError, match="not a shape"):
        StripUnused(shape="1,x,3")
    with pytest.raises(RuleError, match="names no node"):
        run_rule_once(model.graph, StripUnused(keep="nope"))


def test_bare_graph_def_is_left_alone_with_a_warning(caplog):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.nn.relu(x, name="y")
        tf.exp(x, name="e")

    g = Graph(graph_def_of(build))
    with caplog.at_level(logging.WARNING, logger="transforms.strip_unused"):
        assert run_rule_once(g, StripUnused()) == 0
    assert len(g) == 3
    assert "nothing removed" in caplog.text
    # keep= says what to keep.
    assert run_rule_once(g, StripUnused(keep="y")) == 1
    assert sorted(g.node_names) == ["x", "y"] and g.lint() == []


def test_colocation_targets_of_kept_nodes_stay():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        anchor = tf.constant(np.ones((2, 3), np.float32), name="anchor")
        tf.negative(anchor, name="anchor_user")
        with tf.compat.v1.get_default_graph().colocate_with(anchor):
            tf.add(x, 1.0, name="y")

    f32 = types_pb2.DT_FLOAT
    gd = graph_def_of(build)
    model = _model(gd, _sig({"x": ("x:0", f32)}, {"y": ("y:0", f32)}))
    run_pipeline(model.graph, [StripUnused()])
    g = model.graph
    assert g.lint() == []
    assert "anchor" in g and "anchor_user" not in g
    assert "colocation target" in _explain(g, "anchor")
    assert_close(run(g, {"x:0": X}, ["y:0"]), [X + 1.0])  # TF refuses to import a dangling loc:@anchor


@pytest.mark.skipif(not (FIXTURES / "estimator_dnn").is_dir(), reason="fixture estimator_dnn not built")
def test_on_the_estimator_dnn_fixture():
    import graphxform

    model = graphxform.load(FIXTURES / "estimator_dnn")
    if not model.frozen:
        model.freeze()
    before = signature_outputs(model, "estimator_dnn")
    ops_before = model.graph.op_histogram()
    report = run_pipeline(model.graph, [StripUnused()])
    assert model.graph.lint() == []
    ops_after = model.graph.op_histogram()
    assert report.counts["strip_unused"] == 1 and sum(ops_after.values()) < sum(ops_before.values())
    # Vocabulary tables and their initializers stay: the init op needs them.
    for op in ("HashTableV2", "InitializeTableFromTextFileV2"):
        assert ops_after[op] == ops_before[op] > 0, op
    assert model.init_op and model.graph.get(model.init_op.lstrip("^").split(":")[0]) is not None
    assert_same_outputs(before, signature_outputs(model, "estimator_dnn"))


def test_saver_of_an_unfrozen_model_is_kept_and_the_model_still_freezes():
    from tensorflow.core.protobuf import saver_pb2

    import graphxform

    model = graphxform.load(FIXTURES / "estimator_dnn")
    saver = saver_pb2.SaverDef.FromString(model.variables.saver_def)
    restore = saver.restore_op_name.split(":")[0]
    run_pipeline(model.graph, [StripUnused()])
    assert restore in model.graph and model.graph.lint() == []
    model.freeze()
    assert restore not in model.graph and model.graph.lint() == []
    samples = load_samples("estimator_dnn")["predict"]
    out = run_signature(model, "predict", samples)
    assert out["probabilities"].shape == (len(samples["examples"]), 3)


_REMOVAL_ORDER = """
import sys
sys.path.insert(0, sys.argv[1])
from tensorflow.core.framework import graph_pb2
from graphxform.core.graph import Graph
from graphxform.core.signature import Signature, TensorSpec
from graphxform.engine.pipeline import build_pipeline
from graphxform.engine.runner import run_pipeline

gd = graph_pb2.GraphDef()
gd.node.add(name="x", op="Placeholder").attr["dtype"].type = 1
gd.node.add(name="y", op="Neg", input=["x"]).attr["T"].type = 1
for i in range(12):  # dead branches: x -> n{i} -> m{i}, and a NoOp waiting for some of them
    gd.node.add(name=f"n{i}", op="Neg", input=["x"]).attr["T"].type = 1
    gd.node.add(name=f"m{i}", op="Neg", input=[f"n{i}"]).attr["T"].type = 1
gd.node.add(name="wait", op="NoOp", input=[f"^m{i}" for i in range(0, 12, 3)])
sig = Signature("s", "m", {"x": TensorSpec("x:0", 1, None)}, {"y": TensorSpec("y:0", 1, None)})
report = run_pipeline(Graph(gd, signatures={"s": sig}), build_pipeline("strip_unused"))
print(*[n for r in report.applied for n in r.removed])
"""


def test_removal_order_does_not_depend_on_string_hashing():
    """The nodes strip_unused removes are recorded (and traced) in the same order in every process."""
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    orders = {subprocess.run([sys.executable, "-c", _REMOVAL_ORDER, root], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in "123"}
    assert len(orders) == 1, orders
    order = orders.pop().split()
    assert len(order) == 25 and order.index("wait") < order.index("m0") < order.index("n0")  # consumers first


def test_the_needed_set_is_shared_with_fold_constants_until_the_graph_changes(monkeypatch):
    # strip_unused then fold_constants on a graph strip_unused leaves as it is: one walk for both. After a rewrite
    # (a dead node removed; then a fold) the set is walked again, and what each pass does is what it did alone.
    import graphxform.transforms.strip_unused as su
    from graphxform.transforms.fold_constants import FoldConstants

    walks, needed = [], su._needed
    monkeypatch.setattr(su, "_needed", lambda *a: walks.append(1) or needed(*a))

    def build(dead: bool):
        def fn():
            x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
            c = tf.add(tf.constant(1.0), tf.constant(2.0), name="c")
            tf.multiply(x, c, name="y")
            if dead:
                tf.exp(x, name="dead")
        return graph_def_of(fn)

    f32 = types_pb2.DT_FLOAT
    for dead, expected_walks in ((False, 2), (True, 3)):
        walks.clear()
        gd = build(dead)
        model = _model(gd, _sig({"x": ("x:0", f32)}, {"y": ("y:0", f32)}))
        report = run_pipeline(model.graph, [StripUnused(), FoldConstants()])
        # strip's first run, fold's first (shared when strip removed nothing), strip's second after the fold
        assert len(walks) == expected_walks, (dead, len(walks), report.counts)
        assert "dead" not in model.graph and model.graph.node("c").op == "Const"
        assert_close(run(model.graph.to_graph_def(), {"x:0": X}, ["y:0"]), run(gd, {"x:0": X}, ["y:0"]))
    # without a runner's version (explain, a bare Context) nothing is kept
    walks.clear()
    g = _model(build(False), _sig({"x": ("x:0", f32)}, {"y": ("y:0", f32)})).graph
    ctx = Context()
    StripUnused().run(g, ctx), StripUnused().run(g, ctx)
    assert len(walks) == 2
