"""``--bisect``: a deliberately broken user rule, loaded from a rules file, is named by the bisection.

The rules file holds two wrong rules: ``Relu(x) -> Identity(x)`` and ``BiasAdd(x, b) -> BiasAdd(x, 2*b)``. They
run in a pipeline with the (correct) built-ins, which apply many rewrites before and after them; the bisection
must name an application of the broken rule — not a built-in — with its anchor node and the nodes it touched.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from broken_inputs import run_cli
from conftest import FIXTURES, fixture_path

BROKEN_RULES = textwrap.dedent('''
    """Two wrong rules, for testing --bisect."""
    import numpy as np
    from tensorflow.core.framework import node_def_pb2

    from graphxform import Any, Const, Op, Replacement, Rule, register


    @register
    class ReluToIdentity(Rule):
        """Replaces ``Relu(x)`` by ``Identity(x)`` (wrong on purpose)."""

        name = "test_bisect_relu_to_identity"
        pattern = Op("Relu", Any(bind="x"), bind="relu")

        def rewrite(self, match):
            node = node_def_pb2.NodeDef()
            node.CopyFrom(match["relu"])
            node.op = "Identity"
            return Replacement(update=[node])


    @register
    class DoubleBias(Rule):
        """Replaces ``BiasAdd(x, b)`` by ``BiasAdd(x, 2 * b)`` (wrong on purpose; once per bias)."""

        name = "test_bisect_double_bias"
        pattern = Op("BiasAdd", Any(bind="x"), Const(bind="b", where=lambda n: None if "_doubled" not in n.attr
                                                                                else "already doubled"),
                     bind="add")

        def rewrite(self, match):
            import tensorflow as tf

            b = match["b"]
            node = node_def_pb2.NodeDef()
            node.CopyFrom(b)
            value = match.graph.const_value(b.name) * 2
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            node.attr["_doubled"].b = True
            return Replacement(update=[node])
''')

PIPELINE = "remove_identity merge_duplicates strip_unused fold_constants fold_batch_norms"


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "broken_rules.py"
    path.write_text(BROKEN_RULES)
    return path


def _culprit_checks(result, rule: str, op: str, frozen_ops: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """The named rewrite is ``rule``'s, anchored on an ``op`` node; just before it the outputs matched."""
    assert result.found, result.summary()
    bad = result.first_bad
    assert bad.rule == rule, result.summary()
    assert frozen_ops.get(bad.anchor) == op, (bad.anchor, frozen_ops.get(bad.anchor))
    assert bad.anchor in bad.matched
    by_k = {e.k: e for e in result.evaluations}
    assert by_k[bad.step].bad and not by_k[bad.step - 1].bad
    assert by_k[0].bad is False and by_k[result.steps].bad is True
    assert result.failures and all("/" in f for f in result.failures)
    # Other rules really did apply rewrites around the broken one (the search space is not trivial).
    assert result.steps > bad.step or bad.step > 1
    assert rule in result.summary() and repr(bad.anchor) in result.summary()


@pytest.mark.timeout(120)
def test_bisect_names_the_broken_bias_rule_on_a_frozen_graph(rules_file):
    """Library call on the frozen TF1 graph: BiasAdd doubling is found among fold_batch_norms' rewrites."""
    from graphxform import load
    from graphxform.jobs.bisect import bisect

    pb = fixture_path("tf1_frozen_bn.pb")
    model = load(pb, inputs="input", outputs="output")
    ops = {n.name: n.op for n in model.graph}
    with np.load(FIXTURES / "samples" / "tf1_frozen_bn.npz", allow_pickle=False) as data:
        x = data["input:0"]
    said: list[str] = []
    result = bisect(model, f"{PIPELINE} test_bisect_double_bias", rules_files=[rules_file],
                    inputs={"serving_default": {"input": x}}, status=said.append)
    # fold_batch_norms adds a BiasAdd of its own; the first doubled bias that changes the output is named.
    assert result.found and result.first_bad.rule == "test_bisect_double_bias", result.summary()
    assert result.first_bad.updated and result.first_bad.updated[0] in result.first_bad.matched
    by_k = {e.k: e for e in result.evaluations}
    assert by_k[result.first_bad.step].bad and not by_k[result.first_bad.step - 1].bad
    assert ops  # the loaded model was not modified by the bisection
    # progress: each step is said, the narrowing included
    assert said[0] == "bisect: preparing inputs" and "bisect: running the pipeline once to record its rewrites" in said
    assert f"bisect: running the model after all {result.steps} rewrites" in said
    assert len([s for s in said if "the first change is between rewrites" in s]) == len(result.evaluations) - 2
    assert {n.name: n.op for n in model.graph} == ops


@pytest.mark.timeout(120)
def test_bisect_finds_nothing_in_a_correct_pipeline():
    """The built-in float pipeline changes no output: the bisection says so, names no rule."""
    from graphxform.jobs.bisect import bisect

    # Folding batch norms reassociates float arithmetic: allow for rounding (≈6e-6 on synthesized inputs).
    result = bisect(fixture_path("tf1_frozen_bn.pb"), PIPELINE, graph_inputs="input", graph_outputs="output", rtol=1e-4,
                    atol=1e-4)
    assert result.steps > 5
    assert not result.found and "still match" in result.note
    assert [e.k for e in result.evaluations] == [0, result.steps]


@pytest.mark.timeout(180)
def test_verify_bisect_cli_names_relu_rule(rules_file, tmp_path):
    """transform keras_bn with the broken Relu rule; `verify A B --bisect` exits 1 and names its first application."""
    from graphxform import load

    src = fixture_path("keras_bn")
    out = tmp_path / "broken_out"
    transforms = f"{PIPELINE} test_bisect_relu_to_identity"
    res = run_cli(["transform", str(src), str(out), "--rules", str(rules_file), "-t", transforms, "--json"])
    assert res.code == 0, res.stderr
    applied = {r["rule"]: r["applied"] for r in json.loads(res.stdout)["rules"]}
    assert applied["test_bisect_relu_to_identity"] == 4 and applied["fold_batch_norms"] > 0

    # Without --bisect: a plain mismatch.
    res = run_cli(["verify", str(src), str(out)])
    assert res.code == 1 and "bisect:" not in res.stderr + res.stdout
    # With --bisect: exit 1 still, and the rule, its anchor Relu and the nodes are named.
    res = run_cli(["verify", str(src), str(out), "--bisect", "--rules", str(rules_file), "--transforms", transforms,
                   "--json"])
    assert res.code == 1, res.stderr
    report = json.loads(res.stdout)
    found = report["bisect"]["first_bad"]
    assert found["rule"] == "test_bisect_relu_to_identity"
    frozen = load(src).freeze()
    relus = {n.name for n in frozen.graph if n.op == "Relu"}
    assert found["anchor"] in relus and found["updated"] == [found["anchor"]]
    assert len(res.error_lines) == 1 and "test_bisect_relu_to_identity" in res.error_lines[0]
    assert found["anchor"] in res.error_lines[0]
    evals = {e["k"]: e["bad"] for e in report["bisect"]["evaluations"]}
    assert evals[found["step"]] is True and evals[found["step"] - 1] is False
    assert len(evals) <= 2 + int(np.ceil(np.log2(report["bisect"]["steps"]))) + 1


@pytest.mark.timeout(120)
def test_optimize_bisect_names_the_rule(rules_file, tmp_path):
    """`optimize --bisect` with a broken rule in --transforms: exit 1, OUT kept, the error line names the rule."""
    from graphxform.engine.registry import load_rules_file

    load_rules_file(str(rules_file))  # in-process: the registry now knows the broken rules
    out = tmp_path / "opt"
    res = run_cli(["optimize", str(fixture_path("estimator_dnn")), str(out), "--transforms",
                   "remove_identity fold_constants test_bisect_double_bias", "--bisect"])
    assert res.code == 1, res.stderr
    assert out.is_dir()
    line = res.error_lines[0]
    assert "bisect: rewrite" in line and "rule 'test_bisect_double_bias' at node" in line, line
