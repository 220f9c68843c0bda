"""GTT compatibility: the transform-string parser, name mapping, and the TransformGraph drop-in."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, assert_close, graph_def_of, run
from tensorflow.core.framework import graph_pb2

import graphxform
from graphxform.core.errors import GraphError, RuleError
from graphxform.engine.gtt_syntax import format_transform, parse_transforms
from graphxform.engine.pipeline import (
    DEFAULT_PIPELINE,
    FLOAT_PIPELINE,
    build_pipeline,
    default_pipeline,
    describe_pipeline,
    supported_names,
)
from graphxform.jobs.gtt import TransformGraph

RECIPE = ("remove_nodes(op=Identity) merge_duplicate_nodes strip_unused_nodes fold_constants(ignore_errors=true) "
          "fold_batch_norms fold_old_batch_norms quantize_weights")


# ----------------------------------------------------------------------------- parser
@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("   \n\t ", []),
    ("a", [("a", {})]),
    ("a b\nc", [("a", {}), ("b", {}), ("c", {})]),
    ("a()", [("a", {})]),
    ("a(x=1)", [("a", {"x": "1"})]),
    ("a(x=1, y=two)b", [("a", {"x": "1", "y": "two"}), ("b", {})]),
    ("a(x=1,y=2)", [("a", {"x": "1", "y": "2"})]),
    ("a(op=Identity, op=CheckNumerics)", [("a", {"op": ["Identity", "CheckNumerics"]})]),
    ('a(shape="1,224,224,3", type=float)', [("a", {"shape": "1,224,224,3", "type": "float"})]),
    ("a(name=scope/sub-name.v2_x)", [("a", {"name": "scope/sub-name.v2_x"})]),
    ('a(x="with space")', [("a", {"x": "with space"})]),
    ('a(x="q\\"uote")', [("a", {"x": 'q\\"uote'})]),  # GTT keeps the backslash
    ("a(x=-1)", [("a", {"x": "-1"})]),
    ("a(x=1')", [("a", {"x": "1"})]),  # GTT eats a stray trailing quote
    ("a( x = 1 , y=2 )", [("a", {"x": "1", "y": "2"})]),  # whitespace leniency
    ("fold_constants(ignore_errors=true)\n  strip_unused_nodes(type=float, shape=\"1,2\")",
     [("fold_constants", {"ignore_errors": "true"}), ("strip_unused_nodes", {"type": "float", "shape": "1,2"})]),
])
def test_parse_transforms(text, expected):
    assert parse_transforms(text) == expected


@pytest.mark.parametrize("text, message", [
    ("a(x)", r"looking for '=' after a\(x at position 3"),
    ("(x=1)", r"looking for a transform name at position 0"),
    ("a(=1)", r"looking for a parameter name of a at position 2"),
    ("a(x=1", r"a\( is missing its closing '\)'"),
    ('a(x="open)', r"has no closing '\"'"),
    ("a(x=)", r"looking for a value for a\(x=...\) at position 4"),
    ("a,b", r"looking for a transform name at position 1"),
])
def test_parse_errors_say_where(text, message):
    with pytest.raises(RuleError, match=message):
        parse_transforms(text)


def test_format_transform_round_trips():
    params = {"op": ["Identity", "CheckNumerics"], "shape": "1,2", "flag": True}
    text = format_transform("t", params)
    assert text == 't(op=Identity, op=CheckNumerics, shape="1,2", flag=true)'
    assert parse_transforms(text) == [("t", {"op": ["Identity", "CheckNumerics"], "shape": "1,2", "flag": "true"})]


# ----------------------------------------------------------------------------- names -> rules
def test_the_gtt_recipe_builds_our_pipeline():
    rules = build_pipeline(RECIPE)
    assert [r.name for r in rules] == ["remove_identity", "merge_duplicates", "strip_unused", "fold_constants",
                                       "fold_batch_norms", "quantize_weights"]  # fold_old_batch_norms deduped
    assert rules[0].args["op"] == ["Identity"]
    assert rules[3].args["ignore_errors"] is True
    assert rules[-1].final and not rules[0].final
    assert describe_pipeline(rules) == ("remove_identity merge_duplicates strip_unused "
                                        "fold_constants(ignore_errors=true) fold_batch_norms quantize_weights")


def test_default_pipeline():
    assert [r.name for r in default_pipeline()] == list(DEFAULT_PIPELINE)
    assert [r.name for r in default_pipeline(quantize=False)] == list(FLOAT_PIPELINE)
    assert [r.name for r in build_pipeline(quantize="none")] == list(FLOAT_PIPELINE)
    assert default_pipeline(quantize="float16")[-1].args["dtype"] == "float16"


def test_list_items_may_be_strings_pairs_classes_or_rules():
    from graphxform.transforms.strip_unused import StripUnused

    rules = build_pipeline(["remove_nodes(op=Identity, op=CheckNumerics) fold_constants",
                            ("strip_unused", {"name": "keep_me"}), StripUnused, StripUnused(type="int32")])
    assert [r.name for r in rules] == ["remove_identity", "fold_constants", "strip_unused", "strip_unused",
                                       "strip_unused"]
    assert rules[0].args["op"] == ["Identity", "CheckNumerics"]
    assert rules[2].args["name"] == ["keep_me"]
    with pytest.raises(RuleError, match="cannot build a rule from 3"):
        build_pipeline([3])  # type: ignore[list-item]


def test_ignore_errors_is_accepted_by_every_transform():
    rules = build_pipeline("merge_duplicate_nodes(ignore_errors=true) strip_unused_nodes")
    assert rules[0].ignore_errors is True and not getattr(rules[1], "ignore_errors", False)
    with pytest.raises(RuleError, match="ignore_errors='perhaps' is not a valid bool"):
        build_pipeline("merge_duplicate_nodes(ignore_errors=perhaps)")


def test_refused_gtt_transform_says_why_and_what_instead():
    with pytest.raises(RuleError) as info:
        build_pipeline("fold_constants fuse_quantized_conv_and_requantize")
    msg = str(info.value)
    assert "'fuse_quantized_conv_and_requantize' is not supported by graphxform" in msg
    assert "oneDNN" in msg and "qint8" in msg and "quantize_nodes" in msg  # the reason and the alternative
    gtt = {"add_default_attributes", "backport_concatv2", "backport_tensor_array_v3", "flatten_atrous_conv",
           "fold_batch_norms", "fold_constants", "fold_old_batch_norms", "freeze_requantization_ranges",
           "fuse_pad_and_conv", "fuse_resize_and_conv", "fuse_resize_pad_and_conv", "inline_partitionedcall",
           "insert_logging", "merge_duplicate_nodes", "obfuscate_names", "quantize_nodes", "quantize_weights",
           "remove_attribute", "remove_control_dependencies", "remove_device", "remove_nodes", "rename_attribute",
           "rename_node", "rename_op", "round_weights", "set_device", "sort_by_execution_order", "sparsify_gather",
           "strip_unused_nodes"}
    assert set(supported_names()) >= gtt  # every other GTT transform is accepted


def test_unknown_names_and_bad_params_fail_before_anything_runs():
    with pytest.raises(RuleError, match="unknown rule 'fold_constans'. Did you mean fold_constants"):
        build_pipeline("remove_nodes(op=Identity) fold_constans")
    with pytest.raises(RuleError, match="rule 'strip_unused' has no parameter 'bogus'"):
        build_pipeline("strip_unused_nodes(bogus=1)")


def test_every_gtt_transform_is_a_rule_none_a_no_op(caplog):
    with caplog.at_level(logging.INFO, logger="graphxform.engine.pipeline"):
        rules = build_pipeline("sort_by_execution_order add_default_attributes fold_constants")
    assert [r.name for r in rules] == ["sort_by_execution_order", "add_default_attributes", "fold_constants"]
    assert rules[0].final and rules[1].final  # they run after the fixpoint rules
    assert "accepted as a no-op" not in caplog.text


# ----------------------------------------------------------------------------- TransformGraph
def _frozen_bn() -> graph_pb2.GraphDef:
    gd = graph_pb2.GraphDef()
    gd.ParseFromString((FIXTURES / "tf1_frozen_bn.pb").read_bytes())
    return gd


@pytest.mark.skipif(not (FIXTURES / "tf1_frozen_bn.pb").exists(), reason="fixture not built")
def test_transform_graph_runs_the_recipe_on_a_frozen_graph():
    gd = _frozen_bn()
    original = gd.SerializeToString()
    with np.load(FIXTURES / "samples" / "tf1_frozen_bn.npz") as data:
        x = data["input:0"]
    before = run(gd, {"input:0": x}, ["output:0"])
    float_recipe = RECIPE.replace(" quantize_weights", "")
    out = TransformGraph(gd, ["input"], ["output"], [float_recipe])
    assert gd.SerializeToString() == original  # the input is not modified
    ops = [n.op for n in out.node]
    assert "FusedBatchNormV3" not in ops and "Identity" in ops  # the output Identity keeps its name
    assert ops.count("Identity") == 1 and {n.name for n in out.node} >= {"input", "output"}
    assert len(out.node) < len(gd.node)
    assert_close(run(out, {"input:0": x}, ["output:0"]), before, rtol=1e-4, atol=1e-5)
    # the whole recipe (with int8 weights), as a list of strings the way the old API took it
    q = TransformGraph(gd, ["input:0"], ["output:0"], RECIPE.split(" "))
    got = run(q, {"input:0": x}, ["output:0"])[0]
    ref = before[0]
    assert np.max(np.abs(got - ref)) <= 0.05 * np.max(np.abs(ref))
    assert graphxform.TransformGraph(gd, ["input"], ["output"], ["remove_nodes(op=Identity)"]).node


def test_transform_graph_keeps_output_names_when_outputs_fold():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        c = tf.constant([1.0, 2.0]) * 3.0
        tf.identity(c + 1.0, name="const_out")
        tf.identity(tf.nn.relu(x) + c, name="y")

    gd = graph_def_of(build)
    out = TransformGraph(gd, ["x"], ["y", "const_out"], ["fold_constants", "remove_nodes(op=Identity)",
                                                        "strip_unused_nodes"])
    names = {n.name: n for n in out.node}
    assert {"x", "y", "const_out"} <= set(names)
    xv = np.array([-1.0, 4.0], np.float32)
    assert_close(run(out, {"x:0": xv}, ["y:0", "const_out:0"]), run(gd, {"x:0": xv}, ["y:0", "const_out:0"]))
    assert not any(n.op == "Mul" for n in out.node)


def test_transform_graph_errors():
    def build():
        tf.compat.v1.placeholder(tf.float32, [2], name="x")

    gd = graph_def_of(build)
    with pytest.raises(GraphError, match="'nope' named in inputs/outputs is not a node"):
        TransformGraph(gd, ["x"], ["nope"], ["fold_constants"])
    with pytest.raises(RuleError, match="not supported by graphxform"):
        TransformGraph(gd, ["x"], ["x"], ["fuse_quantized_conv_and_requantize"])
    with pytest.raises(GraphError, match="takes a GraphDef"):
        TransformGraph("not a graph", ["x"], ["x"], ["fold_constants"])
    same = TransformGraph(gd.SerializeToString(), ["x"], ["x"], [])  # serialized input, nothing to run
    assert [n.name for n in same.node] == ["x"]
