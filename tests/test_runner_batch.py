"""Batches: a rule's full pass applies the rewrites of independent anchors together, with the result and the
report of one rewrite at a time; anchors that could see each other's change are never in one batch."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, graph_def_of, run
from graphxform.transforms.remove_identity import RemoveIdentity
from graphxform.transforms.remove_pass_through import RemovePassThrough
from tensorflow.core.framework import types_pb2

import graphxform.engine.batch as batch_mod
from graphxform.core.errors import FixpointError, RuleError
from graphxform.core.graph import Graph
from graphxform.core.names import canon
from graphxform.core.signature import Signature, TensorSpec
from graphxform.engine.pattern import Op
from graphxform.engine.rule import Match, Replacement, Rule
from graphxform.engine.runner import run_pipeline, run_rule_once

X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5


class OneAtATime(RemoveIdentity):
    """remove_identity applied one rewrite at a time (the reference)."""

    batch = False


def _graph(build, outputs: list[str]) -> Graph:
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    {"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [2, 3])},
                    {o: TensorSpec(f"{o}:0", types_pb2.DT_FLOAT, [2, 3]) for o in outputs})
    return Graph(graph_def_of(build), signatures={"serving_default": sig})


@pytest.fixture
def applications(monkeypatch):
    """The number of rewrites in each merged replacement the batches applied."""
    sizes: list[int] = []
    real = batch_mod.apply_merged

    def counting(engine, rule, rep, anchors):
        sizes.append(len(rep.remove))
        return real(engine, rule, rep, anchors)

    monkeypatch.setattr(batch_mod, "apply_merged", counting)
    return sizes


def _records(report) -> list[tuple]:
    return [(r.rule, r.anchor, tuple(r.matched), tuple(r.removed), dict(r.replaced), tuple(r.updated), r.step)
            for r in report.applied]


def _nodes(g: Graph) -> list[tuple[str, bytes]]:
    return [(n.name, n.SerializeToString(deterministic=True)) for n in g]


def _same_as_one_at_a_time(build, outputs: list[str], **kw) -> tuple[Graph, object]:
    """Run remove_identity batched and one at a time on the graph ``build`` makes: same graph, same records, same
    signatures, same outputs in TensorFlow; returns the batched graph and report."""
    fetches = [f"{o}:0" for o in outputs]
    before = run(graph_def_of(build), {"x:0": X}, fetches)
    g, ref = _graph(build, outputs), _graph(build, outputs)
    report = run_pipeline(g, [RemoveIdentity()], **kw)
    ref_report = run_pipeline(ref, [OneAtATime()], **kw)
    assert _nodes(g) == _nodes(ref)
    assert _records(report) == _records(ref_report)
    assert report.counts == ref_report.counts and report.stats["remove_identity"].noop == 0
    assert {k: s.tensor_names() for k, s in g.signatures["serving_default"].outputs.items()} == \
           {k: s.tensor_names() for k, s in ref.signatures["serving_default"].outputs.items()}
    assert g.lint() == []
    outs = [g.signatures["serving_default"].outputs[o].name for o in outputs]
    assert_close(run(g, {"x:0": X}, outs), before)
    return g, report


def test_independent_identities_are_applied_as_one(applications):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        for i in range(6):  # every Identity reads x: their producer's consumer set changes, but nobody reads it
            tf.nn.relu(tf.identity(tf.nn.relu(x, name=f"r{i}") if i % 2 else x, name=f"id{i}"), name=f"y{i}")

    g, report = _same_as_one_at_a_time(build, [f"y{i}" for i in range(6)])
    assert applications == [6]  # one merged replacement
    assert report.counts == {"remove_identity": 6} and not any(n.op == "Identity" for n in g)
    assert sorted(r.anchor for r in report.applied) == [f"id{i}" for i in range(6)]
    assert all(list(r.removed) == [r.anchor] for r in report.applied)
    assert [r.step for r in report.applied] == list(range(1, 7))


def test_batches_are_cut_at_max_batch(applications, monkeypatch):
    monkeypatch.setattr(batch_mod, "MAX_BATCH", 2)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        for i in range(5):
            tf.nn.relu(tf.identity(x, name=f"id{i}"), name=f"y{i}")

    _same_as_one_at_a_time(build, [f"y{i}" for i in range(5)])
    assert applications == [2, 2]  # (the fifth alone, through the engine's own apply)


def test_chain_of_identities_is_never_one_batch(applications):
    """id1 -> id2 -> id3: each is a producer or consumer of the next. Batched blindly, the merged replacement
    would keep id1 (read through id2's replacement) while the record says it went."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.nn.relu(tf.identity(tf.identity(tf.identity(x, name="id1"), name="id2"), name="id3"), name="y")

    g, report = _same_as_one_at_a_time(build, ["y"])
    assert applications == []  # each one alone
    assert sorted(r.anchor for r in report.applied) == ["id1", "id2", "id3"]
    assert g.input_nodes("y") == ["x"]


def test_one_full_pass_leaves_what_one_at_a_time_leaves():
    """A single pass (no worklist): id2 was rewired by id1's rewrite, so the pass skips it, as one at a time."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.nn.relu(tf.identity(tf.identity(x, name="id1"), name="id2"), name="y")
        tf.nn.relu(tf.identity(x, name="id3"), name="z")

    g, ref = _graph(build, ["y", "z"]), _graph(build, ["y", "z"])
    assert run_rule_once(g, RemoveIdentity()) == run_rule_once(ref, OneAtATime()) == 2
    assert _nodes(g) == _nodes(ref)
    assert "id2" in g and "id1" not in g and "id3" not in g and g.input_nodes("id2") == ["x"]


def test_identities_reading_one_tensor_and_feeding_one_consumer():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        a, b = tf.identity(x, name="a"), tf.identity(x, name="b")
        tf.add(a, b, name="y")  # both write y's inputs: not one batch
        tf.nn.relu(tf.identity(a, name="c"), name="z")  # c reads a candidate

    g, _ = _same_as_one_at_a_time(build, ["y", "z"])
    assert g.input_nodes("y") == ["x", "x"]


def test_control_dependencies_and_signature_outputs_as_one_at_a_time():
    """Identities with control inputs update their consumers; control consumers move; an Identity that is a
    signature output renames the signature (applied alone); one that is not removable stays."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        r = tf.nn.relu(x, name="r")
        with tf.control_dependencies([r]):
            g1 = tf.identity(x, name="g1")
        with tf.control_dependencies([tf.identity(r, name="ctl")]):
            n = tf.negative(g1, name="n")
        tf.nn.relu(tf.identity(n, name="p"), name="y")
        tf.identity(tf.nn.relu(n, name="q"), name="out")  # signature output
        tf.add(tf.identity(r, name="s1"), tf.identity(n, name="s2"), name="z")

    g, report = _same_as_one_at_a_time(build, ["y", "out", "z"])
    assert g.signatures["serving_default"].outputs["out"].name == "q:0"
    assert {r.anchor for r in report.applied} == {"g1", "ctl", "p", "out", "s1", "s2"}


def test_tf1_frame_identities_stay(applications):
    from conftest import control_flow_v1

    def build():
        with control_flow_v1():
            x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
            w = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, tf.identity(v * 2.0, name="inner")),
                              [tf.constant(0), tf.identity(x, name="pre")])
            tf.identity(tf.nn.relu(w[1], name="y0"), name="y")

    g, report = _same_as_one_at_a_time(build, ["y"])
    assert any(n.name.endswith("inner") for n in g) and "pre" in g and "y" not in g  # (pre feeds Enter)


def test_a_rule_without_the_flag_is_applied_one_at_a_time(applications, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("batched_pass called for a rule that did not ask for it")

    monkeypatch.setattr("graphxform.engine.runner.batched_pass", fail)

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        for i in range(3):
            tf.nn.relu(tf.identity(x, name=f"id{i}"), name=f"y{i}")

    g = _graph(build, ["y0", "y1", "y2"])
    assert run_pipeline(g, [OneAtATime()]).counts == {"remove_identity": 3}
    assert applications == []


def test_debug_applies_one_rewrite_at_a_time(applications):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        for i in range(4):
            tf.nn.relu(tf.identity(x, name=f"id{i}"), name=f"y{i}")

    g, _ = _same_as_one_at_a_time(build, [f"y{i}" for i in range(4)], debug=True)
    assert applications == []  # every rewrite went through the engine's own apply, linted after each


def test_max_steps_is_not_overshot_and_names_the_rule(applications):
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        for i in range(10):
            tf.nn.relu(tf.identity(x, name=f"id{i}"), name=f"y{i}")

    g = _graph(build, [f"y{i}" for i in range(10)])
    with pytest.raises(FixpointError, match=r"no fixpoint after 5 rewrites.*max_steps=4.*remove_identity") as info:
        run_pipeline(g, [RemoveIdentity()], max_steps=4)
    report = info.value.report  # type: ignore[attr-defined]
    assert report.steps == 5 and applications == [4]  # as one at a time: the step past the limit raises
    assert g.lint() == []


# ----------------------------------------------------------------------------- a rule whose rewrite may be invalid
class BypassNeg(Rule):
    """Neg(x) -> x (a test rule; refuses nothing). At ``bad`` the rewrite names a node that does not exist."""

    name = "t_bypass_neg"
    pattern = Op("Neg", bind="neg")
    batch = True
    bad = "n3"

    def rewrite(self, m: Match) -> Replacement:
        node = m["neg"]
        target = "no_such_node:0" if node.name == self.bad else canon(node.input[0])
        return Replacement(replace={f"{node.name}:0": target}, remove=[node.name])


def _negs() -> Graph:
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        for i in range(6):
            tf.nn.relu(tf.negative(x, name=f"n{i}"), name=f"y{i}")

    return _graph(build, [f"y{i}" for i in range(6)])


def test_invalid_rewrite_in_a_batch_is_named_and_nothing_else_of_the_batch_is_lost():
    g = _negs()
    with pytest.raises(RuleError, match=r"t_bypass_neg.*'n3'.*no_such_node"):
        run_pipeline(g, [BypassNeg()])
    assert [n for n in ("n0", "n1", "n2", "n3", "n4", "n5") if n in g] == ["n3", "n4", "n5"]  # as one at a time
    assert g.lint() == []


def test_ignore_errors_skips_the_invalid_rewrite_and_applies_the_others(applications):
    g = _negs()
    rule = BypassNeg()
    rule.ignore_errors = True  # type: ignore[attr-defined]
    report = run_pipeline(g, [rule])
    assert report.counts == {"t_bypass_neg": 5} and report.stats["t_bypass_neg"].errors == 1
    assert [n.name for n in g if n.op == "Neg"] == ["n3"] and len(report.ignored_errors) == 1
    assert applications == []  # the merged replacement was refused: each rewrite applied on its own
    assert_close(run(g, {"x:0": X}, ["y3:0", "y0:0"]), [np.maximum(-X, 0), np.maximum(X, 0)])


def test_read_and_write_sets():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.nn.relu(tf.identity(x, name="a"), name="y")
        tf.identity(tf.nn.relu(x, name="r"), name="out")

    g = _graph(build, ["y", "out"])
    assert batch_mod.reads_of(g, ["a"]) == ({"a", "x", "y"}, {"a"})
    assert batch_mod.writes_of(g, Replacement(replace={"a:0": "x:0"}, remove=["a"])) == ({"a", "y"}, {"a", "x"})
    assert batch_mod.writes_of(g, Replacement(replace={"out:0": "r:0"}, remove=["out"])) is None  # a signature
    for name in ["x", "a", "y", "r", "out", "not_a_node"]:  # the one-anchor read set is the general one's
        for up in (0, 1, 2):
            assert batch_mod.reads_at(g, name, up) == batch_mod.reads_of(g, [name], up), (name, up)


def test_batch_joins_only_rewrites_that_cannot_see_each_other():
    pending = batch_mod.Batch()
    pending.add(Replacement(remove=["a"]), "a", ["a"], ({"a", "x", "y"}, {"a"}), ({"a", "y"}, {"a", "x"}))
    assert not pending.sees(({"b", "x", "z"}, {"b"}))  # reads x's content; only x's consumer set changes
    assert pending.sees(({"c", "y"}, {"c"}))  # reads y, whose inputs change
    assert pending.sees(({"x"}, {"x"}))  # reads x's consumers
    assert not pending.clashes(({"b", "z"}, {"b", "x"}))  # both move edges of x: they commute
    assert pending.clashes(({"x"}, set()))  # changes x, which a pending check read
    assert pending.clashes((set(), {"a"}))  # changes a's consumers, which its check read
    assert pending.clashes(({"y"}, set()))  # both write y


class PassThroughOneAtATime(RemovePassThrough):
    batch = False


def test_remove_pass_through_batched_as_one_at_a_time(applications):
    """IdentityN (Keras' swish), StopGradient (moments) and PreventGradient: consumers, control dependencies,
    a signature output port that stays, nodes sharing an input and a consumer."""
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        r = tf.nn.relu(x, name="r")
        for i in range(4):
            tf.nn.relu(tf.stop_gradient(x, name=f"sg{i}"), name=f"y{i}")
        a, b = tf.raw_ops.IdentityN(input=[x, r], name="idn")
        tf.add(a, b, name="z")
        with tf.control_dependencies([r]):
            pg = tf.raw_ops.PreventGradient(input=x, name="pg")
        tf.negative(pg, name="w")
        s1 = tf.stop_gradient(tf.stop_gradient(r, name="c1"), name="c2")  # a chain
        tf.add(s1, tf.stop_gradient(r, name="c3"), name="v")
        tf.raw_ops.IdentityN(input=[x, r], name="out")

    outputs = [*(f"y{i}" for i in range(4)), "z", "w", "v"]
    fetches = [f"{o}:0" for o in outputs]
    before = run(graph_def_of(build), {"x:0": X}, fetches)
    g, ref = _graph(build, outputs + ["out"]), _graph(build, outputs + ["out"])
    report, ref_report = run_pipeline(g, [RemovePassThrough()]), run_pipeline(ref, [PassThroughOneAtATime()])
    assert _nodes(g) == _nodes(ref) and _records(report) == _records(ref_report)
    assert max(applications) >= 4  # the StopGradients of x went in one replacement
    assert "out" in g and not any(n.op in ("StopGradient", "PreventGradient") for n in g) and "idn" not in g
    assert g.lint() == []
    assert_close(run(g, {"x:0": X}, fetches), before)


def test_write_set_names_nodes_as_parse_input_does():
    """writes_of takes node names with node_name, which must name the node parse_input names (ports, controls,
    names with colons that are not ports)."""
    from hypothesis import given
    from hypothesis import strategies as st

    from graphxform.core.names import node_name, parse_input

    for ref in ("a", "a:0", "a:12", "^a", "^a:1", "a:b", "a:", ":", "", "a:1:2", "a:x1", "^", "a:١"):
        assert node_name(ref) == parse_input(ref)[0], ref

    @given(st.text(alphabet="ab:^0129/٣", max_size=8))
    def same(ref: str) -> None:
        assert node_name(ref) == parse_input(ref)[0]

    same()


def test_fingerprint_of_a_node_changed_then_removed_is_that_of_removing_the_original():
    """NodeHashes.change: a removed node counts with the hash it was stored under (or its original's), and its
    cached hash goes; an original node stored again unchanged is no change."""
    from tensorflow.core.framework import node_def_pb2

    from graphxform.engine.fixpoint import NodeHashes

    a = node_def_pb2.NodeDef(name="a", op="Identity", input=["x"])
    a2 = node_def_pb2.NodeDef(name="a", op="Identity", input=["y"])
    same = node_def_pb2.NodeDef()
    same.CopyFrom(a)
    hashes = NodeHashes()
    d_change, changed = hashes.change({"a": a}, {"a": a2}.get)
    d_remove, removed = hashes.change({"a": a2}, {}.get)
    assert changed == ["a"] and removed == []
    original_removed, _ = NodeHashes().change({"a": a}, {}.get)
    assert d_change ^ d_remove == original_removed != 0
    assert hashes.change({"a": a}, {"a": same}.get) == (0, [])
    assert hashes._cache == {}  # noqa: SLF001


def test_node_hash_of_a_big_const_tells_its_value_and_every_other_field():
    """A big Const is hashed from its value's bytes and the rest of the node, not a serialization of it whole: equal
    nodes hash alike whatever object holds them, and a change of the value, of another tensor field, of an
    attribute or of the name is seen. A small one is hashed as its serialization."""
    import numpy as np
    from tensorflow.core.framework import node_def_pb2

    from graphxform.core.nodes import const, with_attrs
    from graphxform.engine.fixpoint import BIG_CONST_BYTES, node_hash

    w = np.arange(BIG_CONST_BYTES // 4, dtype=np.float32).reshape(64, -1)
    a = const("w", w)
    same = node_def_pb2.NodeDef()
    same.CopyFrom(a)
    assert node_hash(same) == node_hash(a) == node_hash(const("w", w.copy()))
    other_value = w.copy()
    other_value[-1, -1] += 1
    versioned = node_def_pb2.NodeDef()
    versioned.CopyFrom(a)
    versioned.attr["value"].tensor.version_number = 2
    variants = [const("w", other_value), const("w", w.reshape(-1)), const("v", w), versioned,
                with_attrs(a, _class=["loc:@x"]), const("w", w, control_inputs=["c"])]
    hashes = {node_hash(n) for n in variants}
    assert len(hashes) == len(variants) and node_hash(a) not in hashes
    small = const("s", np.float32(2.0))
    assert node_hash(small) == hash(small.SerializeToString(deterministic=True))
