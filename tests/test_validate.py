"""Node validation before export: the rules TensorFlow's C++ loader applies, checked against that loader itself.

Also the root cause of the empty AttrValues: attr reads go through :mod:`graphxform.core.opdefs` getters, and no
rule changes a node it only looks at.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, graph_def_of, run
from tensorflow.core.framework import attr_value_pb2, function_pb2, graph_pb2, node_def_pb2, types_pb2

from graphxform import load
from graphxform.core.errors import ExportError, RuleError
from graphxform.core.graph import Graph
from graphxform.core.opdefs import attr_bool, attr_float, attr_int, attr_str, attr_type, attr_value
from graphxform.core.signature import TensorSpec
from graphxform.core.validate import describe, node_violations, validate_graph
from graphxform.engine.explain import explain
from graphxform.engine.pattern import Op
from graphxform.engine.pipeline import build_pipeline
from graphxform.engine.rule import Match, Replacement, Rule
from graphxform.engine.runner import run_pipeline
from graphxform.model import export as exporter
from graphxform.model.model import Model, Signature
from graphxform.tf.capi import CGraphDefSession, CLoaderError

X = np.arange(6, dtype=np.float32).reshape(2, 3)


def _matmul_graph() -> graph_pb2.GraphDef:
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        y = tf.matmul(x, tf.constant(np.ones((3, 2), np.float32), name="w"), name="mm")
        tf.identity(y, name="y")
    gd = graph_def_of(build)
    for n in gd.node:  # as exporters write it: attrs equal to the op's default stripped
        if n.op == "MatMul":
            for a in ("transpose_a", "transpose_b", "grad_a", "grad_b"):
                if a in n.attr:
                    del n.attr[a]
    return gd


def _node(gd: graph_pb2.GraphDef, name: str) -> node_def_pb2.NodeDef:
    return next(n for n in gd.node if n.name == name)


# ----------------------------------------------------------------------------- the getters
def test_attr_getters_read_defaults_and_never_insert():
    mm = _node(_matmul_graph(), "mm")
    before = mm.SerializeToString(deterministic=True)
    assert "transpose_b" not in mm.attr
    assert attr_bool(mm, "transpose_b") is False and attr_value(mm, "transpose_b").b is False
    assert attr_type(mm, "T") == types_pb2.DT_FLOAT
    assert attr_value(mm, "no_such_attr") is None and attr_int(mm, "no_such_attr", 7) == 7
    bn = node_def_pb2.NodeDef(name="bn", op="FusedBatchNormV3")  # stripped: every attr at its default
    assert attr_bool(bn, "is_training") is True  # the default is training mode
    assert attr_float(bn, "epsilon") == pytest.approx(1e-4)
    assert attr_str(bn, "data_format") == "NHWC"
    assert mm.SerializeToString(deterministic=True) == before and not bn.attr
    # An entry that is present but empty (what an indexing read leaves) is treated as absent.
    mm.attr["transpose_b"].Clear()
    assert attr_bool(mm, "transpose_b", default=True) is False  # the OpDef default, not the caller's


# ----------------------------------------------------------------------------- rules of the validator
def _broken(kind: str) -> graph_pb2.GraphDef:
    gd = _matmul_graph()
    mm = _node(gd, "mm")
    if kind == "empty_attr":  # what node.attr["transpose_b"].b leaves behind
        mm.attr["transpose_b"].Clear()
    elif kind == "wrong_type":
        mm.attr["transpose_b"].i = 1
    elif kind == "dtype_not_allowed":
        mm.attr["T"].type = types_pb2.DT_STRING
    elif kind == "missing_required":
        del _node(gd, "y").attr["T"]
    elif kind == "input_count":
        mm.input.append("x")
    return gd


BROKEN = {
    "empty_attr": "AttrValue missing value with expected type 'bool' for attr 'transpose_b'",
    "wrong_type": "AttrValue had value with type 'int' when 'bool' expected for attr 'transpose_b'",
    "dtype_not_allowed": "Value for attr 'T' of DT_STRING is not in the list of allowed values",
    "missing_required": "NodeDef missing attr 'T'",
    "input_count": "has 3 data inputs; Op<name=MatMul> takes 2",
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_validator_flags_what_tensorflows_cpp_session_refuses(kind):
    gd = _broken(kind)
    violations = validate_graph(gd)
    assert len(violations) == 1, violations
    assert BROKEN[kind] in str(violations[0])
    assert violations[0].node in ("mm", "y")
    with pytest.raises(CLoaderError):  # the reference: TensorFlow's own C++ NodeDef validation (not ours)
        with CGraphDefSession(gd.SerializeToString(), validate=False) as s:
            s.run({"x:0": X}, ["y:0"])


def test_validator_accepts_valid_graphs_and_fixtures():
    gd = _matmul_graph()
    assert validate_graph(gd) == []
    _node(gd, "mm").attr["from_a_newer_tensorflow"].i = 1  # TensorFlow logs and ignores undeclared attrs
    assert validate_graph(gd) == []
    with CGraphDefSession(gd.SerializeToString()) as s:
        np.testing.assert_array_equal(s.run({"x:0": X}, ["y:0"])[0], run(gd, {"x:0": X}, ["y:0"])[0])
    for name in ("estimator_dnn", "keras_bn", "keras_rnn", "tf2_control_flow", "tf1_frozen_bn.pb"):
        assert validate_graph(load(FIXTURES / name).graph) == [], name


def test_validator_checks_function_bodies_and_skips_placeholders_and_internal_attrs():
    lib = function_pb2.FunctionDefLibrary()
    f = lib.function.add()
    f.signature.name = "f"
    ok = f.node_def.add(name="ok", op="Identity", input=["a"])
    ok.attr["T"].placeholder = "T"  # a reference to the function's own attr
    ok.attr["_output_shapes"].Clear()  # internal attrs are not TensorFlow's to check
    bad = f.node_def.add(name="bad", op="MatMul", input=["a", "b"])
    bad.attr["T"].type = types_pb2.DT_FLOAT
    bad.attr["transpose_a"].Clear()
    (v,) = validate_graph(graph_pb2.GraphDef(library=lib))
    assert (v.node, v.function) == ("bad", "f") and "transpose_a" in v.message
    assert "in function 'f'" in str(v)


# ----------------------------------------------------------------------------- the exporter refuses
class EmptyAttrRule(Rule):
    """Replaces ``Identity(x)`` by ``Identity(x)`` with an empty ``T`` attr (a broken rule, for the test)."""

    name = "t_empty_attr"
    pattern = Op("Identity", bind="id")

    def rewrite(self, m: Match) -> Replacement:
        node = node_def_pb2.NodeDef()
        node.CopyFrom(m["id"])
        node.attr["T"].Clear()
        return Replacement(update=[node])


def _model(gd: graph_pb2.GraphDef) -> Model:
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    {"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [None, 3])},
                    {"y": TensorSpec("y:0", types_pb2.DT_FLOAT, [None, 2])})
    return Model(Graph(gd), {"serving_default": sig}, None, "graph_def")


@pytest.mark.parametrize("suffix", ["", ".pb"])
def test_export_refuses_a_node_tensorflow_would_refuse_and_names_the_rule(tmp_path, suffix):
    model = _model(_matmul_graph())
    report = run_pipeline(model.graph, [EmptyAttrRule()])
    out = tmp_path / f"out{suffix}"
    with pytest.raises(ExportError) as info:
        exporter.export(model, out, history=report.applied)
    msg = str(info.value)
    assert "node 'y' (Identity): AttrValue missing value with expected type 'type' for attr 'T'" in msg
    assert "made by rule 't_empty_attr' (step 1, at node 'y')" in msg
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing on disk


def test_export_names_nodes_no_rule_touched(tmp_path):
    model = _model(_broken("empty_attr"))
    with pytest.raises(ExportError, match=r"node 'mm' \(MatMul\).*transpose_b.*no rewrite history"):
        exporter.export(model, tmp_path / "out")
    report = run_pipeline(model.graph, build_pipeline("remove_identity"))
    with pytest.raises(ExportError, match="no rule touched it: it came from the input as loaded or from freezing"):
        exporter.export(model, tmp_path / "out", history=report.applied)
    assert not (tmp_path / "out").exists()


def test_debug_runner_stops_at_the_rule_that_breaks_a_node():
    model = _model(_matmul_graph())
    with pytest.raises(RuleError, match="rule 't_empty_attr' at node 'y' left nodes TensorFlow's C\\+\\+ loader"):
        run_pipeline(model.graph, [EmptyAttrRule()], debug=True)


def test_describe_limits_the_list():
    gd = _matmul_graph()
    for i in range(8):
        n = gd.node.add(name=f"extra{i}", op="Identity", input=["x"])
        n.attr["T"].Clear()
    text = describe(validate_graph(gd), None, limit=3)
    assert text.count("AttrValue missing value") == 3 and text.endswith("… 5 more")


# ----------------------------------------------------------------------------- rules look without touching
@pytest.mark.parametrize("name", ["estimator_dnn", "estimator_linear", "keras_bn", "keras_rnn", "tf2_lookup"])
def test_no_rule_changes_a_node_it_only_looks_at(name):
    """``explain`` runs every rule's match and check on every candidate: not one node may change."""
    model = load(FIXTURES / name)
    model.freeze()
    g = model.graph
    before = {n.name: n.SerializeToString(deterministic=True) for n in g}
    lib_before = g.library.SerializeToString(deterministic=True)
    rules = build_pipeline("remove_identity merge_duplicates strip_unused fold_constants fold_batch_norms "
                           "hoist_unary_through_concat quantize_weights quantize_weights(dtype=float16)")
    for rule in rules:
        explain(g, rule)
        after = {n.name: n.SerializeToString(deterministic=True) for n in g}
        changed = [k for k in before if after.get(k) != before[k]]
        assert not changed, f"{rule.name} changed {changed[:3]} while only looking"
    assert g.library.SerializeToString(deterministic=True) == lib_before
    assert validate_graph(g) == []


def test_fold_batch_norms_reads_stripped_defaults():
    """A stripped ``transpose_b`` is False (the MatMul folds, no empty attr left); a stripped ``is_training`` is
    True: that batch norm normalises with batch statistics and must not be folded."""
    rng = np.random.default_rng(0)
    scale, shift = rng.uniform(0.5, 2, 2).astype(np.float32), rng.normal(size=2).astype(np.float32)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        y = tf.matmul(x, tf.constant(rng.normal(size=(3, 2)).astype(np.float32)), name="mm")
        tf.identity(y * scale + shift, name="y")
    gd = graph_def_of(build)
    for n in gd.node:
        if n.op == "MatMul":
            del n.attr["transpose_a"], n.attr["transpose_b"]
    want = run(gd, {"x:0": X}, ["y:0"])[0]
    g = _model(gd).graph
    report = run_pipeline(g, build_pipeline("fold_constants fold_batch_norms"))
    assert report.counts.get("fold_batch_norms") == 1
    assert validate_graph(g) == []
    np.testing.assert_allclose(run(g.to_graph_def(), {"x:0": X}, ["y:0"])[0], want, rtol=1e-5, atol=1e-6)

    def build_bn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 2], name="x")
        w = tf.constant(rng.normal(size=(1, 1, 2, 2)).astype(np.float32))
        y = tf.nn.conv2d(x, w, 1, "SAME", name="conv")
        tf.raw_ops.FusedBatchNormV3(x=y, scale=scale, offset=shift, mean=np.zeros(2, np.float32),
                                    variance=np.ones(2, np.float32), is_training=False, name="bn")
    gd = graph_def_of(build_bn)
    bn = _node(gd, "bn")
    del bn.attr["is_training"]  # stripped: the default, training mode
    g = _model(gd).graph
    (reason,) = [r for n, r in explain(g, build_pipeline("fold_batch_norms")[0]) if n == "conv"]
    assert reason and "training mode" in reason
    assert "is_training" not in g.node("bn").attr


def test_protobuf_map_indexing_inserts_which_is_why_the_getters_exist():
    node = node_def_pb2.NodeDef(name="mm", op="MatMul")
    assert node.attr["transpose_b"].b is False
    assert "transpose_b" in node.attr and node.attr["transpose_b"] == attr_value_pb2.AttrValue()
    assert node_violations(node, count_inputs=False)
