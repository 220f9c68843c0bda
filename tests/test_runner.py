"""The fixpoint runner: worklist, rounds, passes, stages, step limit, oscillation, trace, debug lint."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, graph_def_of, run
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, types_pb2

from graphxform.core.errors import FixpointError, RuleError
from graphxform.core.graph import Graph
from graphxform.core.signature import Signature, TensorSpec
from graphxform.engine.apply import apply_replacement
from graphxform.engine.context import Context
from graphxform.engine.explain import explain
from graphxform.engine.passes import Pass
from graphxform.engine.pattern import Any, Op
from graphxform.engine.report import RunReport
from graphxform.engine.rule import Match, Replacement, Rule
from graphxform.engine.runner import run_pipeline, run_rule_once

F32 = attr_value_pb2.AttrValue(type=types_pb2.DT_FLOAT)
X = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)


# ----------------------------------------------------------------------------- small rules
class DropDoubleNeg(Rule):
    """Replaces ``Neg(Neg(x))`` by ``x``."""

    name = "t_drop_double_neg"
    pattern = Op("Neg", Op("Neg", Any(bind="x"), bind="inner"), bind="outer")

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(replace={m.tensor("outer"): m.tensor("x")}, remove=[m["outer"].name, m["inner"].name])


class CollapseRelu(Rule):
    """Replaces ``Relu(Relu(x))`` by ``Relu(x)``."""

    name = "t_collapse_relu"
    pattern = Op("Relu", Op("Relu", bind="inner"), bind="outer")

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(replace={m.tensor("outer"): m.tensor("inner")}, remove=[m["outer"].name])


def _set_op(node: node_def_pb2.NodeDef, op: str) -> node_def_pb2.NodeDef:
    new = node_def_pb2.NodeDef()
    new.CopyFrom(node)
    new.op = op
    return new


class AddToAddV2(Rule):
    """Replaces ``Add(a, b)`` by ``AddV2(a, b)``."""

    name = "t_add_to_addv2"
    anchors = frozenset({"Add"})

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(update=[_set_op(m.anchor, "AddV2")])


class AddV2ToAdd(Rule):
    """Replaces ``AddV2(a, b)`` by ``Add(a, b)``."""

    name = "t_addv2_to_add"
    anchors = frozenset({"AddV2"})

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(update=[_set_op(m.anchor, "Add")])


class FlipAttr(Rule):
    """Replaces ``Relu[_flag=a]`` by ``Relu[_flag=not a]`` (undoes itself)."""

    name = "t_flip_attr"
    anchors = frozenset({"Relu"})

    def rewrite(self, m: Match) -> Replacement:
        new = node_def_pb2.NodeDef()
        new.CopyFrom(m.anchor)
        new.attr["_flag"].b = not m.anchor.attr["_flag"].b
        return Replacement(update=[new])


class GrowNeg(Rule):
    """Replaces ``Neg(x)`` by ``Neg(Neg(Neg(x)))`` (never ends)."""

    name = "t_grow_neg"
    anchors = frozenset({"Neg"})

    def rewrite(self, m: Match) -> Replacement:
        g = m.graph
        a = node_def_pb2.NodeDef(name=g.unique_name(m.anchor.name + "/g"), op="Neg", input=list(m.anchor.input))
        a.attr["T"].CopyFrom(F32)
        b = node_def_pb2.NodeDef(name=g.unique_name(m.anchor.name + "/h"), op="Neg", input=[a.name])
        b.attr["T"].CopyFrom(F32)
        return Replacement(add=[a, b], update=[_replace_inputs(m.anchor, [b.name])])


def _replace_inputs(node: node_def_pb2.NodeDef, inputs: list[str]) -> node_def_pb2.NodeDef:
    new = node_def_pb2.NodeDef()
    new.CopyFrom(node)
    del new.input[:]
    new.input.extend(inputs)
    return new


class Noop(Rule):
    """Replaces ``Relu(x)`` by the same ``Relu(x)`` (a rewrite that changes nothing)."""

    name = "t_noop"
    anchors = frozenset({"Relu"})

    def rewrite(self, m: Match) -> Replacement:
        same = node_def_pb2.NodeDef()
        same.CopyFrom(m.anchor)
        return Replacement(update=[same])


class Boom(Rule):
    """Replaces ``Relu(x)`` by an exception."""

    name = "t_boom"
    anchors = frozenset({"Relu"})

    def rewrite(self, m: Match) -> Replacement:
        raise ValueError("kaboom")


class Dangling(Rule):
    """Replaces ``Relu(x)`` by ``Relu(missing)`` (an invalid rewrite)."""

    name = "t_dangling"
    anchors = frozenset({"Relu"})

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(update=[_replace_inputs(m.anchor, ["no_such_node"])])


class MakeCycle(Rule):
    """Replaces ``Relu(x) -> y`` by a cycle ``Relu(y)`` (breaks the graph)."""

    name = "t_make_cycle"
    anchors = frozenset({"Relu"})

    def rewrite(self, m: Match) -> Replacement:
        users = [d for d, _ in m.graph.consumers(m.anchor.name)]
        return Replacement(update=[_replace_inputs(m.anchor, [users[0]])])


class CountingGlobal(Pass):
    """Replaces one ``Identity(x)`` per call by ``x`` (a pass)."""

    name = "t_counting_global"

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self.calls = 0

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        self.calls += 1
        for node in graph:
            if node.op == "Identity" and graph.consumers(node.name):
                return [Replacement(replace={f"{node.name}:0": node.input[0] + ":0" if ":" not in node.input[0]
                                             else node.input[0]}, remove=[node.name])]
        return []


# ----------------------------------------------------------------------------- graphs
def _node(gd: graph_pb2.GraphDef, name: str, op: str, inputs: list[str] = ()) -> str:  # type: ignore[assignment]
    n = gd.node.add(name=name, op=op)
    n.input.extend(inputs)
    n.attr["T" if op != "Placeholder" else "dtype"].CopyFrom(F32)
    return name


def relu_chain(n: int) -> tuple[graph_pb2.GraphDef, str]:
    gd = graph_pb2.GraphDef()
    cur = _node(gd, "x", "Placeholder")
    for i in range(n):
        cur = _node(gd, f"r{i}", "Relu", [cur])
    return gd, cur


def _graph(gd: graph_pb2.GraphDef, out: str, inp: str = "x") -> Graph:
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    {"x": TensorSpec(f"{inp}:0", types_pb2.DT_FLOAT, None)},
                    {"y": TensorSpec(f"{out}:0", types_pb2.DT_FLOAT, None)})
    return Graph(gd, signatures={"serving_default": sig})


def _out(g: Graph) -> str:
    return g.signatures["serving_default"].outputs["y"].name


# ----------------------------------------------------------------------------- fixpoint
def test_cascading_rewrites_reach_the_fixpoint_and_keep_outputs():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        y = x
        for _ in range(6):
            y = tf.negative(y)
        y = tf.nn.relu(tf.nn.relu(tf.nn.relu(y)))
        tf.identity(tf.negative(tf.negative(y)) * 2.0, name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": X}, ["out:0"])
    g = _graph(gd, "out")
    report = run_pipeline(g, [DropDoubleNeg(), CollapseRelu()])
    assert g.lint() == []
    ops = [n.op for n in g]
    assert "Neg" not in ops and ops.count("Relu") == 1
    assert report.counts == {"t_drop_double_neg": 4, "t_collapse_relu": 2}
    assert_close(run(g, {"x:0": X}, ["out:0"]), before)
    # a second run finds nothing left
    again = run_pipeline(g, [DropDoubleNeg(), CollapseRelu()])
    assert again.counts == {} and again.rounds == 1


def test_rewrite_enabling_an_earlier_rule_is_picked_up_next_round():
    # Relu(Neg(Neg(Relu(x)))): only after the Negs go does CollapseRelu (which ran first) match.
    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    _node(gd, "r0", "Relu", ["x"])
    _node(gd, "n0", "Neg", ["r0"])
    _node(gd, "n1", "Neg", ["n0"])
    _node(gd, "r1", "Relu", ["n1"])
    g = _graph(gd, "r1")
    report = run_pipeline(g, [CollapseRelu(), DropDoubleNeg()])
    assert sorted(n.name for n in g) == ["r0", "x"]
    assert _out(g) == "r0:0"
    assert report.rounds >= 2
    assert [r.rule for r in report.applied] == ["t_drop_double_neg", "t_collapse_relu"]
    assert g.lint() == []


def test_worklist_revisits_only_nodes_near_a_change():
    # A chain of n Relus collapses one rewrite at a time; each rewrite must revisit O(1) nodes, not the chain.
    n = 3000
    gd, out = relu_chain(n)
    g = _graph(gd, out)
    report = run_pipeline(g, [CollapseRelu()])
    assert [x.op for x in g] == ["Placeholder", "Relu"]
    assert report.counts["t_collapse_relu"] == n - 1
    visited = report.stats["t_collapse_relu"].visited
    assert visited < 6 * n, visited  # a full pass per round would be O(n^2) here
    assert g.lint() == []


class _NegsToRelus(Pass):
    """Turns every ``Neg`` into a ``Relu`` in one replacement (a pass changing much of the graph at once)."""

    name = "t_negs_to_relus"

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        negs = [_set_op(n, "Relu") for n in graph if n.op == "Neg"]
        return [Replacement(update=negs)] if negs else []


@pytest.mark.parametrize("negs", [1, 40])
def test_a_pass_changing_much_of_the_graph_sends_rules_to_a_full_pass(negs, monkeypatch):
    # x -> Relu r0..r39, one or forty of them Negs (changed by the pass into Relus). A change to most of the
    # graph is not marked node by node: the rules' next runs are full passes, which find what marks would.
    import graphxform.engine.runner as runner

    marked, mark_near = [], runner.mark_near

    def counting(graph, mark, changed, *args):
        marked.append(len(changed))
        mark_near(graph, mark, changed, *args)

    monkeypatch.setattr(runner, "mark_near", counting)
    gd = graph_pb2.GraphDef()
    cur = _node(gd, "x", "Placeholder")
    for i in range(40):
        cur = _node(gd, f"r{i}", "Neg" if i >= 40 - negs else "Relu", [cur])
    g = _graph(gd, cur)
    before = run(gd, {"x:0": X}, [f"{cur}:0"])
    report = run_pipeline(g, [CollapseRelu(), _NegsToRelus()])
    assert [n.op for n in g] == ["Placeholder", "Relu"] and g.lint() == []
    assert report.counts == {"t_negs_to_relus": 1, "t_collapse_relu": 39}
    if negs == 1:  # one node: marked
        assert 1 in marked
    else:  # the whole chain: not marked, yet every Relu pair is found
        assert 40 not in marked
        assert_close(run(g.to_graph_def(), {"x:0": X}, [f"{_out(g)}"]), [np.maximum(before[0], 0)])


def test_pass_runs_once_per_round_and_only_after_changes():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        tf.nn.relu(tf.identity(tf.identity(tf.identity(x))), name="out")

    gd = graph_def_of(build)
    g = _graph(gd, "out")
    rule = CountingGlobal()
    report = run_pipeline(g, [rule])
    assert report.counts["t_counting_global"] == 3
    assert "Identity" not in [n.op for n in g]
    # one Identity per call: 3 calls that changed something, 1 that found nothing
    assert rule.calls == 4 and report.rounds == 4
    rule2 = CountingGlobal()
    run_pipeline(g, [rule2, CollapseRelu()])
    assert rule2.calls == 1  # nothing changed after its first run: not called again


class _CountingIdempotent(Pass):
    """Finds nothing, counts its calls; ``removals_give_work`` set per test."""

    name = "t_counting_idempotent"
    idempotent = True

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self.calls = 0

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        self.calls += 1
        return []


class _DropOneDeadRelu(Pass):
    """Removes one Relu nothing reads per call (a pure removal)."""

    name = "t_drop_dead_relu"

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        for node in graph:
            if node.op == "Relu" and not graph.consumer_nodes(node.name) and node.name != "out":
                return [Replacement(remove=[node.name])]
        return []


@pytest.mark.parametrize("removals_give_work", [True, False])
def test_idempotent_pass_skips_rounds_of_removals_only_when_they_give_it_no_work(removals_give_work):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        tf.nn.relu(x, name="out")
        for i in range(3):
            tf.nn.relu(x, name=f"dead{i}")

    g = _graph(graph_def_of(build), "out")
    counting = type("Counting", (_CountingIdempotent,), {"removals_give_work": removals_give_work})()
    report = run_pipeline(g, [counting, _DropOneDeadRelu()])
    assert report.counts["t_drop_dead_relu"] == 3 and [n.op for n in g].count("Relu") == 1
    # rounds 1-3 remove one dead Relu each, round 4 finds nothing
    assert counting.calls == (4 if removals_give_work else 1)
    # any other change (a rewire) still runs it again
    counting2 = type("Counting", (_CountingIdempotent,), {"removals_give_work": False})()
    gd = graph_def_of(lambda: tf.nn.relu(tf.identity(tf.compat.v1.placeholder(tf.float32, [3], name="x")),
                                         name="out"))
    run_pipeline(_graph(gd, "out"), [counting2, CountingGlobal()])
    assert counting2.calls == 2


def test_final_rules_run_in_their_own_stage_after_the_others():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        tf.raw_ops.AddV2(x=tf.raw_ops.AddV2(x=x, y=x), y=x, name="out")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": X}, ["out:0"])
    g = _graph(gd, "out")
    final = AddToAddV2()
    final.final = True  # type: ignore[misc]
    report = run_pipeline(g, [final, AddV2ToAdd()])  # together they would oscillate
    assert sorted(n.op for n in g if n.op.startswith("Add")) == ["AddV2", "AddV2"]
    assert report.counts == {"t_addv2_to_add": 2, "t_add_to_addv2": 2}
    assert [r.rule for r in report.applied][:2] == ["t_addv2_to_add"] * 2
    assert_close(run(g, {"x:0": X}, ["out:0"]), before)


# ----------------------------------------------------------------------------- termination
def test_rules_that_undo_each_other_raise_naming_both():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        tf.raw_ops.Add(x=x, y=x, name="out")

    g = _graph(graph_def_of(build), "out")
    with pytest.raises(FixpointError) as info:
        run_pipeline(g, [AddToAddV2(), AddV2ToAdd()])
    msg = str(info.value)
    assert "t_add_to_addv2" in msg and "t_addv2_to_add" in msg and "undo each other" in msg
    assert "'out'" in msg
    assert isinstance(info.value.report, RunReport)  # type: ignore[attr-defined]
    assert len(info.value.report.applied) <= 4  # type: ignore[attr-defined]


def test_oscillation_over_many_nodes_is_detected_at_rule_boundaries():
    # Each rule rewrites all 300 nodes before the other undoes them: a cycle far longer than one step.
    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    cur = "x"
    for i in range(300):
        cur = _node(gd, f"a{i}", "Add", [cur, "x"])
    g = _graph(gd, cur)
    with pytest.raises(FixpointError, match="undo each other"):
        run_pipeline(g, [AddToAddV2(), AddV2ToAdd()])


def test_rule_undoing_itself_is_named():
    gd, out = relu_chain(1)
    g = _graph(gd, out)
    with pytest.raises(FixpointError, match="rule 't_flip_attr' undoes its own rewrites"):
        run_pipeline(g, [FlipAttr()])


def test_step_limit_names_the_busy_rule():
    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    _node(gd, "n", "Neg", ["x"])
    g = _graph(gd, "n")
    with pytest.raises(FixpointError, match=r"max_steps=50.*t_grow_neg"):
        run_pipeline(g, [GrowNeg()], max_steps=50)
    assert g.lint() == []


def test_default_step_limit_scales_with_graph_size():
    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    _node(gd, "n", "Neg", ["x"])
    g = _graph(gd, "n")
    with pytest.raises(FixpointError, match=r"max_steps=1020\b"):  # 10 * 2 nodes + 1000
        run_pipeline(g, [GrowNeg()])


def test_noop_rewrite_is_not_counted_and_does_not_loop():
    gd, out = relu_chain(3)
    g = _graph(gd, out)
    report = run_pipeline(g, [Noop()])
    assert report.counts == {} and report.stats["t_noop"].noop == 3 and report.rounds == 1


# ----------------------------------------------------------------------------- errors
def test_rule_exception_names_rule_and_node():
    gd, out = relu_chain(2)
    g = _graph(gd, out)
    with pytest.raises(RuleError, match=r"rule 't_boom' failed at node 'r0'.*ValueError: kaboom"):
        run_pipeline(g, [Boom()])


def test_ignore_errors_skips_failing_nodes_and_reports_them():
    gd, out = relu_chain(2)
    g = _graph(gd, out)
    rule = Boom()
    rule.ignore_errors = True  # type: ignore[attr-defined]
    report = run_pipeline(g, [rule, DropDoubleNeg()])
    assert len(report.ignored_errors) == 2 and "kaboom" in report.ignored_errors[0]
    assert report.stats["t_boom"].errors == 2
    assert len(g) == 3


def test_invalid_rewrite_is_refused_before_the_graph_changes():
    gd, out = relu_chain(2)
    g = _graph(gd, out)
    before = g.to_graph_def()
    with pytest.raises(RuleError, match=r"t_dangling.*'r0'.*no_such_node"):
        run_pipeline(g, [Dangling()])
    assert g.to_graph_def() == before and g.lint() == []


def test_debug_lints_after_every_rewrite_and_names_the_rule():
    gd, out = relu_chain(2)
    _node(gd, "tail", "Neg", [out])
    g = _graph(gd, "tail")
    with pytest.raises(RuleError, match=r"rule 't_make_cycle' at node 'r0' left the graph broken: .*cycle"):
        run_pipeline(g, [MakeCycle()], debug=True)


def test_run_pipeline_takes_rule_instances_only():
    gd, out = relu_chain(1)
    with pytest.raises(RuleError, match="Rule instances"):
        run_pipeline(_graph(gd, out), [CollapseRelu])  # type: ignore[list-item]


# ----------------------------------------------------------------------------- record
def test_every_rewrite_is_recorded_and_written_as_json_lines(tmp_path):
    gd, out = relu_chain(4)
    g = _graph(gd, out)
    trace = tmp_path / "trace.jsonl"
    report = run_pipeline(g, [CollapseRelu()], trace=trace)
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(lines) == 3 == len(report.applied)
    assert [x["step"] for x in lines] == [1, 2, 3]
    first = lines[0]
    assert first["rule"] == "t_collapse_relu" and first["anchor"] in {"r1", "r2", "r3"}
    assert set(first["matched"]) == {first["anchor"], f"r{int(first['anchor'][1:]) - 1}"}
    assert first["removed"] == [first["anchor"]]
    assert first["replaced"] == {f"{first['anchor']}:0": f"r{int(first['anchor'][1:]) - 1}:0"}
    table = {row["rule"]: row for row in report.table()}
    assert table["t_collapse_relu"]["applied"] == 3 and table["t_collapse_relu"]["nodes_removed"] == 3
    assert report.to_dict()["nodes_before"] == 5 and report.to_dict()["nodes_after"] == 2


def test_trace_is_written_even_when_the_run_fails(tmp_path):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        tf.raw_ops.Add(x=x, y=x, name="out")

    g = _graph(graph_def_of(build), "out")
    trace = tmp_path / "t.jsonl"
    with pytest.raises(FixpointError):
        run_pipeline(g, [AddToAddV2(), AddV2ToAdd()], trace=trace)
    rules = [json.loads(line)["rule"] for line in trace.read_text().splitlines()]
    assert rules[:2] == ["t_add_to_addv2", "t_addv2_to_add"]


def test_progress_reports_each_rule_turn():
    gd, out = relu_chain(3)
    g = _graph(gd, out)
    events = []
    run_pipeline(g, [CollapseRelu()], progress=lambda rule, status, info: events.append((rule, status, info)))
    assert events[0][:2] == ("t_collapse_relu", "start")
    done = [e for e in events if e[1] == "done"]
    assert done[-1][2]["count"] == 2 and done[-1][2]["nodes"] == 2


def test_confirm_pass_finds_nothing_the_worklist_missed():
    gd, out = relu_chain(50)
    g = _graph(gd, out)
    report = run_pipeline(g, [CollapseRelu(), DropDoubleNeg()], confirm=True)
    assert report.counts["t_collapse_relu"] == 49


# ----------------------------------------------------------------------------- compat helpers
def test_run_rule_once_is_a_single_pass():
    gd, out = relu_chain(4)
    g = _graph(gd, out)
    n = run_rule_once(g, CollapseRelu())
    assert 1 <= n <= 3 and g.lint() == []


def test_apply_replacement_removes_consumers_first_and_keeps_protected():
    gd, out = relu_chain(3)
    g = _graph(gd, out)
    removed = apply_replacement(g, Replacement(remove=["r0", "r1", "r2"]))
    assert removed == []  # r2 is the signature output: protected, so the chain above it stays
    g.signatures["serving_default"].outputs["y"].name = "x:0"
    removed = apply_replacement(g, Replacement(remove=["r0", "r1", "r2"]))
    assert removed == ["r2", "r1", "r0"] and g.lint() == []


# ----------------------------------------------------------------------------- explain
def test_explain_gives_the_reason_for_every_anchor():
    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    _node(gd, "n0", "Neg", ["x"])
    _node(gd, "n1", "Neg", ["n0"])
    _node(gd, "r", "Relu", ["n1"])
    _node(gd, "n2", "Neg", ["r"])
    g = _graph(gd, "n2")
    reasons = dict(explain(g, DropDoubleNeg()))
    assert set(reasons) == {"n0", "n1", "n2"}  # only the anchor ops
    assert reasons["n1"] is None  # would fire
    assert reasons["n0"] == "'x' is Placeholder, not Neg"
    assert reasons["n2"] == "'r' is Relu, not Neg"


def test_explain_reports_check_reasons():
    class OnlyBig(DropDoubleNeg):
        name = "t_only_big"

        def check(self, m: Match) -> str | None:
            return f"{m['outer'].name!r} is too small"

    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    _node(gd, "n0", "Neg", ["x"])
    _node(gd, "n1", "Neg", ["n0"])
    g = _graph(gd, "n1")
    assert dict(explain(g, OnlyBig()))["n1"] == "'n1' is too small"


class ReluWhenNoNeg(Rule):
    """Replaces ``Relu(x)`` by ``Relu6(x)`` once the graph has no ``Neg`` (a condition far from the anchor)."""

    name = "t_relu_when_no_neg"
    anchors = frozenset({"Relu"})
    reach = 0

    def check(self, m: Match) -> str | None:
        return "the graph still has a Neg" if m.graph.nodes_by_op("Neg") else None

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(update=[_set_op(m.anchor, "Relu6")])


def test_confirmation_pass_catches_matches_outside_the_neighbourhood():
    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    _node(gd, "r", "Relu", ["x"])
    cur = "r"
    for i in range(6):  # the Negs sit far below the Relu, beyond any reach
        cur = _node(gd, f"m{i}", "Mul", [cur, "x"])
    _node(gd, "n0", "Neg", [cur])
    _node(gd, "n1", "Neg", ["n0"])
    plain = _graph(gd, "n1")
    report = run_pipeline(plain, [ReluWhenNoNeg(), DropDoubleNeg()])
    assert plain.node("r").op == "Relu" and report.missed == 0  # the worklist alone does not see it
    confirmed = _graph(gd, "n1")
    report = run_pipeline(confirmed, [ReluWhenNoNeg(), DropDoubleNeg()], confirm=True)
    assert confirmed.node("r").op == "Relu6" and report.missed == 1


class FarConv(Rule):
    """Looks 4 edges either way from a ``Conv2D`` (never in these graphs) and rewrites nothing."""

    name = "t_far_conv"
    anchors = frozenset({"Conv2D"})
    reach = 4

    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Match | str:
        return "never"


class LookAtNeg(Rule):
    """Visits every ``Neg`` it is given and rewrites none (its visits count the worklist's marks)."""

    name = "t_look_at_neg"
    anchors = frozenset({"Neg"})
    reach = 0

    def check(self, m: Match) -> str | None:
        return "only looking"


def test_worklist_reach_counts_only_rules_whose_anchor_ops_the_graph_holds():
    """x -> Relu -> Relu -> six Negs. Collapsing the Relus marks the Negs below as far as the stage's rules
    look; a far-reaching rule with no anchor in the graph must not make that further."""
    def visits(rules: list[Rule]) -> int:
        gd = graph_pb2.GraphDef()
        cur = _node(gd, "x", "Placeholder")
        cur = _node(gd, "r1", "Relu", [_node(gd, "r0", "Relu", [cur])])
        for i in range(6):
            cur = _node(gd, f"n{i}", "Neg", [cur])
        g = _graph(gd, cur)
        report = run_pipeline(g, rules)
        assert report.counts == {"t_collapse_relu": 1}
        return report.stats["t_look_at_neg"].visited

    near = visits([LookAtNeg(), CollapseRelu()])
    assert near == 6 + 2  # the first full pass, then the consumer of the collapsed Relu and one below
    assert visits([LookAtNeg(), CollapseRelu(), FarConv()]) == near


class SquareToAbs(Rule):
    """Replaces ``Square(x)`` by ``Abs(x)``: makes the anchor op of :class:`AbsOverSqrtRelu` appear mid-run."""

    name = "t_square_to_abs"
    pattern = Op("Square", bind="sq")

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(update=[_set_op(m.anchor, "Abs")])


class AbsOverSqrtRelu(Rule):
    """Replaces ``Abs`` by ``Relu`` when its one consumer is a ``Sqrt`` whose one consumer is a ``Relu``: its own
    match looks two edges down from the anchor."""

    name = "t_abs_over_sqrt_relu"
    anchors = frozenset({"Abs"})
    reach = 2

    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Match | str:
        name = node.name
        for want in ("Sqrt", "Relu"):
            users = graph.consumers(name)
            if len(users) != 1 or graph.node(users[0][0]).op != want:
                return f"no {want} below"
            name = users[0][0]
        return Match(graph, node, {"anchor": node}, dict(self.args))

    def rewrite(self, m: Match) -> Replacement:
        return Replacement(update=[_set_op(m.anchor, "Relu")])


def test_rule_whose_anchor_op_appears_mid_run_gets_the_worklist_reach_it_needs():
    """x -> Square -> Sqrt -> Neg -> Neg -> Relu. The Square becomes an Abs (the first Abs of the graph); the
    Negs go later, which puts the Relu two edges below the Abs: the Abs must be marked then (two edges above
    the change), though no rule with reach that far had an anchor in the graph at the start."""
    gd = graph_pb2.GraphDef()
    _node(gd, "x", "Placeholder")
    _node(gd, "p1", "Relu", [_node(gd, "p0", "Relu", ["x"])])  # collapsed first: the worklist's first marks
    _node(gd, "a", "Square", ["x"])
    _node(gd, "q", "Sqrt", ["a"])
    _node(gd, "n0", "Neg", ["q"])
    _node(gd, "n1", "Neg", ["n0"])
    _node(gd, "r", "Relu", ["n1"])
    _node(gd, "out", "AddV2", ["p1", "r"])
    g = _graph(gd, "out")
    report = run_pipeline(g, [CollapseRelu(), SquareToAbs(), AbsOverSqrtRelu(), DropDoubleNeg()], confirm=True)
    assert [(n.name, n.op) for n in g] == [("x", "Placeholder"), ("p0", "Relu"), ("a", "Relu"), ("q", "Sqrt"),
                                           ("r", "Relu"), ("out", "AddV2")]
    assert report.counts == {"t_collapse_relu": 1, "t_square_to_abs": 1, "t_drop_double_neg": 1,
                             "t_abs_over_sqrt_relu": 1}
    assert report.missed == 0  # found by the worklist, not by the confirmation pass
    assert g.lint() == []


class _Recording(Pass):
    """Records ``ctx.incremental`` for each run and ``ctx.all_applied`` for each ``applied`` call; on its first
    run returns an invalid replacement (an input naming no node) when ``bad`` is set."""

    name = "t_recording"

    def __init__(self, bad: bool = False, **kw: object) -> None:
        super().__init__(**kw)
        self.bad, self.runs, self.applies = bad, [], []

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        self.runs.append(ctx.incremental)
        if self.bad and len(self.runs) == 1:
            return [Replacement(update=[_replace_inputs(graph.node("out"), ["nope"])])]
        return []

    def applied(self, graph: Graph, ctx: Context) -> None:
        self.applies.append(ctx.all_applied)


def test_passes_learn_when_they_may_rely_on_their_last_run_and_whether_it_was_applied():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        tf.nn.relu(tf.nn.relu(x), name="out")

    gd = graph_def_of(build)
    rec = _Recording()
    run_pipeline(_graph(gd, "out"), [rec, CollapseRelu()])
    assert rec.runs == [False, True] and rec.applies == [True, True]  # the second run: after CollapseRelu's
    rec = _Recording()
    report = run_pipeline(_graph(gd, "out"), [rec, CollapseRelu()], confirm=True)
    assert rec.runs == [False, True, False]  # the confirmation pass is a full one
    assert report.missed == 0
    rec = _Recording(bad=True)
    rec.ignore_errors = True  # type: ignore[attr-defined]
    report = run_pipeline(_graph(gd, "out"), [rec, CollapseRelu()])
    assert rec.applies[0] is False and rec.applies[1:] == [True] * (len(rec.applies) - 1)
    assert report.stat("t_recording").errors == 1


def test_signatures_edited_by_hand_after_a_run_are_seen_even_when_the_run_failed():
    # During a run the graph answers signature questions from an index; afterwards it reads the signatures again.
    gd, out = relu_chain(2)
    g = _graph(gd, out)
    run_pipeline(g, [CollapseRelu()])
    g.signatures["serving_default"].outputs["y"].name = "x:0"
    assert g.is_protected("x") and not g.is_protected(out) and g.signature_uses(out) == []

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3, 4], name="x")
        tf.raw_ops.Add(x=x, y=x, name="out")

    g = _graph(graph_def_of(build), "out")
    with pytest.raises(FixpointError):
        run_pipeline(g, [AddToAddV2(), AddV2ToAdd()])
    g.signatures["serving_default"].outputs["y"].name = "x:0"
    assert not g.is_protected("out") and g.signature_uses("out") == []
