"""``graphxform transform`` and ``graphxform rules``, run in-process through the CLI entry point."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, assert_close, run
from tensorflow.core.framework import graph_pb2

from graphxform.cli import main

FROZEN = FIXTURES / "tf1_frozen_bn.pb"
KERAS = FIXTURES / "keras_bn"
RECIPE_FLOAT = ("remove_nodes(op=Identity) merge_duplicate_nodes strip_unused_nodes "
                "fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms")

needs_frozen = pytest.mark.skipif(not FROZEN.exists(), reason="fixture tf1_frozen_bn.pb not built")


def cli(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _gd(path: Path) -> graph_pb2.GraphDef:
    gd = graph_pb2.GraphDef()
    gd.ParseFromString(path.read_bytes())
    return gd


def _sample() -> np.ndarray:
    with np.load(FIXTURES / "samples" / "tf1_frozen_bn.npz") as data:
        return data["input:0"]


# ----------------------------------------------------------------------------- transform
@needs_frozen
def test_transform_frozen_graph_with_the_gtt_recipe(tmp_path, capsys):
    out = tmp_path / "out.pb"
    trace = tmp_path / "trace.jsonl"
    code, stdout, _ = cli(capsys, "transform", FROZEN, out, "--input-names", "input", "--output-names", "output",
                          "--transforms", RECIPE_FLOAT, "--trace", trace, "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["output"] == str(out) and out.is_file()
    rules = {r["rule"]: r for r in result["rules"]}
    assert set(rules) == {"remove_identity", "merge_duplicates", "strip_unused", "fold_constants", "fold_batch_norms"}
    assert rules["fold_batch_norms"]["applied"] == 1
    assert result["nodes_after"] < result["nodes_before"] == 21
    lines = [json.loads(x) for x in trace.read_text().splitlines()]
    assert len(lines) == result["steps"] and {x["rule"] for x in lines} <= set(rules)
    got = _gd(out)
    assert not any(n.op.startswith("FusedBatchNorm") for n in got.node)
    x = _sample()
    assert_close(run(got, {"input:0": x}, ["output:0"]), run(_gd(FROZEN), {"input:0": x}, ["output:0"]),
                 rtol=1e-4, atol=1e-5)


@needs_frozen
def test_transform_prints_a_table_per_rule(tmp_path, capsys):
    code, stdout, _ = cli(capsys, "transform", FROZEN, tmp_path / "o.pb", "--input-names", "input", "--output-names",
                          "output",
                          "-t", "remove_identity fold_constants fold_batch_norms")
    assert code == 0
    for word in ("remove_identity", "fold_constants", "fold_batch_norms", "applied", "seconds", "nodes 21 →"):
        assert word in stdout


@pytest.mark.skipif(not KERAS.exists(), reason="fixture keras_bn not built")
def test_transform_saved_model_to_saved_model_keeps_outputs(tmp_path, capsys):
    from graphxform.jobs.verify import verify

    out = tmp_path / "sm"
    code, stdout, _ = cli(capsys, "transform", KERAS, out, "--json",
                          "-t", "remove_identity merge_duplicates strip_unused fold_constants fold_batch_norms")
    assert code == 0 and (out / "saved_model.pb").is_file()
    result = json.loads(stdout)
    assert result["frozen"] is True
    assert {r["rule"]: r["applied"] for r in result["rules"]}["fold_batch_norms"] >= 1
    report = verify(KERAS, out, rtol=1e-4, atol=1e-5)
    assert report.ok, report.summary()


@needs_frozen
def test_explain_without_output(tmp_path, capsys):
    code, stdout, _ = cli(capsys, "transform", FROZEN, "--input-names", "input", "--output-names", "output",
                          "-t", "", "--explain", "remove_nodes(op=Identity)", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["output"] is None and result["rules"] == []
    rows = {r["node"]: r for r in result["explain"]["nodes"]}
    assert rows["output"]["reason"].startswith("'output' is protected")
    # a frozen variable's read Identity (colocated with the Const it reads) would go
    assert rows["bn/gamma/read"]["op"] == "Identity" and rows["bn/gamma/read"]["reason"] is None
    code, stdout, _ = cli(capsys, "transform", FROZEN, "--input-names", "input", "--output-names", "output",
                          "--explain", "fold_batch_norms", "-t", "fold_constants")
    assert code == 0 and "why fold_batch_norms() does not fire" in stdout and "conv2" in stdout


@needs_frozen
def test_custom_rules_file(tmp_path, capsys):
    rules = tmp_path / "my_rules.py"
    rules.write_text(textwrap.dedent('''
        from graphxform import Any, Op, Replacement, Rule, register

        @register
        class ReluToRelu6(Rule):
            """Replaces ``Relu(x)`` by ``Relu6(x)`` (for a test: not equivalent!)."""
            name = "cli_test_relu6"
            pattern = Op("Relu", Any(), bind="r")

            def rewrite(self, m):
                from tensorflow.core.framework import node_def_pb2
                new = node_def_pb2.NodeDef()
                new.CopyFrom(m["r"])
                new.op = "Relu6"
                return Replacement(update=[new])
    '''))
    out = tmp_path / "o.pbtxt"
    code, stdout, _ = cli(capsys, "transform", FROZEN, out, "--input-names", "input", "--output-names", "output",
                          "--rules", rules, "-t", "cli_test_relu6", "--json")
    assert code == 0, stdout
    row = json.loads(stdout)["rules"][0]
    assert (row["rule"], row["applied"]) == ("cli_test_relu6", 1)
    assert "Relu6" in out.read_text()


@needs_frozen
@pytest.mark.parametrize("args, message", [
    (["-t", "fold_constans"], "unknown rule 'fold_constans'. Did you mean fold_constants"),
    (["-t", "fuse_quantized_conv_and_requantize"], "GTT transform 'fuse_quantized_conv_and_requantize' is not "
                                                  "supported"),
    (["-t", "fold_constants(bogus=1)"], "rule 'fold_constants' has no parameter 'bogus'"),
    (["-t", "quantize_weights(minimum_size=big)"], "minimum_size='big' is not a valid int"),
    (["-t", "fold_constants(", ], "missing its closing ')'"),
    (["--output-names", "nope"], "nope"),
    (["--rules", "/nonexistent/rules.py"], "does not exist"),
])
def test_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    code, _, err = cli(capsys, "transform", FROZEN, tmp_path / "o.pb", *args)
    assert code == 2
    assert message in err
    assert not (tmp_path / "o.pb").exists()


@needs_frozen
def test_existing_output_needs_force(tmp_path, capsys):
    out = tmp_path / "o.pb"
    out.write_bytes(b"old")
    code, _, err = cli(capsys, "transform", FROZEN, out, "--input-names", "input", "--output-names", "output", "-t",
                       "remove_identity")
    assert code == 2 and "already exists" in err and out.read_bytes() == b"old"
    code, _, _ = cli(capsys, "transform", FROZEN, out, "--input-names", "input", "--output-names", "output", "-t",
                     "remove_identity", "--force")
    assert code == 0 and len(_gd(out).node) > 0


@needs_frozen
def test_missing_output_is_a_usage_error(capsys):
    code, _, err = cli(capsys, "transform", FROZEN, "-t", "remove_identity")
    assert code == 2 and "missing OUT" in err


@needs_frozen
def test_oscillating_rules_file_fails_with_the_rule_names(tmp_path, capsys):
    rules = tmp_path / "osc.py"
    rules.write_text(textwrap.dedent('''
        from tensorflow.core.framework import node_def_pb2
        from graphxform import Replacement, Rule, register

        def _as(node, op):
            new = node_def_pb2.NodeDef()
            new.CopyFrom(node)
            new.op = op
            return Replacement(update=[new])

        @register
        class A(Rule):
            """Replaces ``Relu`` by ``Relu6``."""
            name = "cli_osc_a"
            anchors = frozenset({"Relu"})
            def rewrite(self, m):
                return _as(m.anchor, "Relu6")

        @register
        class B(Rule):
            """Replaces ``Relu6`` by ``Relu``."""
            name = "cli_osc_b"
            anchors = frozenset({"Relu6"})
            def rewrite(self, m):
                return _as(m.anchor, "Relu")
    '''))
    code, _, err = cli(capsys, "transform", FROZEN, tmp_path / "o.pb", "--input-names", "input", "--output-names",
                       "output",
                       "--rules", rules, "-t", "cli_osc_a cli_osc_b")
    assert code == 2 and "cli_osc_a" in err and "cli_osc_b" in err and "undo each other" in err
    assert not (tmp_path / "o.pb").exists()


# ----------------------------------------------------------------------------- rules
def test_rules_lists_every_rule(capsys):
    code, stdout, _ = cli(capsys, "rules")
    assert code == 0
    for word in ("remove_identity", "remove_nodes", "merge_duplicate_nodes", "fold_old_batch_norms",
                 "quantize_weights", "minimum_size", "sort_by_execution_order", "Replaces"):
        assert word in stdout


def test_rules_json_and_details(capsys):
    code, stdout, _ = cli(capsys, "rules", "--json")
    assert code == 0
    data = json.loads(stdout)
    by_name = {r["name"]: r for r in data["rules"]}
    assert by_name["remove_identity"]["aliases"] == ["remove_nodes"]
    assert by_name["quantize_weights"]["params"]["minimum_size"]["type"] == "int"
    assert by_name["strip_unused"]["global"] is True and by_name["quantize_weights"]["default_pipeline"] is True
    assert data["default_pipeline"][-1] == "quantize_weights"
    assert data["gtt_noops"] == {} and by_name["sort_by_execution_order"]["aliases"] == []
    code, stdout, _ = cli(capsys, "rules", "fold_old_batch_norms")
    assert code == 0 and "fold_batch_norms" in stdout and "Replaces" in stdout
    code, _, err = cli(capsys, "rules", "nope")
    assert code == 2 and "unknown rule 'nope'" in err


def test_rules_lists_a_rules_file(tmp_path, capsys):
    src = Path(__file__).with_name("test_registry.py").read_text()
    start = src.index("RULES_FILE = '''") + len("RULES_FILE = '''")
    path = tmp_path / "r.py"
    path.write_text(src[start:src.index("'''", start)].replace("drop_double_neg", "cli_listed_rule"))
    code, stdout, _ = cli(capsys, "rules", "--rules", path, "--json")
    assert code == 0 and "cli_listed_rule" in {r["name"] for r in json.loads(stdout)["rules"]}


@pytest.mark.skipif(not KERAS.exists(), reason="fixture keras_bn not built")
def test_outputs_protect_nodes_of_a_saved_model(tmp_path, capsys):
    keep = "serve/StatefulPartitionedCall/keras_bn_1/bn1_1/Cast/ReadVariableOp"  # an Identity after freezing
    out = tmp_path / "o.pbtxt"
    code, _, err = cli(capsys, "transform", KERAS, out, "-t", "remove_identity", "--output-names", keep, "--json")
    assert code == 0, err
    assert f'name: "{keep}"' in out.read_text()
    code, _, err = cli(capsys, "transform", KERAS, tmp_path / "p.pbtxt", "-t", "remove_identity")
    assert code == 0 and f'name: "{keep}"' not in (tmp_path / "p.pbtxt").read_text()
