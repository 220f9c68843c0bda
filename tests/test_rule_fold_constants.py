"""fold_constants: batched evaluation, what must not fold, size budget, errors, strings, signatures."""
from __future__ import annotations

import contextlib
import logging
import resource
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, control_flow_v1, graph_def_of, run
from graphxform.transforms.fold_constants import FoldConstants
from tensorflow.core.framework import types_pb2

import graphxform.tf.session as tfrun
from graphxform.tf import constfold
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.explain import explain
from graphxform.engine.passes import Pass
from graphxform.engine.registry import get_rule
from graphxform.engine.rule import Replacement
from graphxform.engine.runner import run_pipeline
from graphxform.model.model import Model, Signature

X = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)


def _ph(shape=(2, 3), name="x", dtype=tf.float32):
    return tf.compat.v1.placeholder(dtype, list(shape), name=name)


def _explain(graph: Graph, rule: FoldConstants, name: str) -> str | None:
    return dict(explain(graph, rule))[name]


@contextlib.contextmanager
def count_session_runs(monkeypatch):
    """The fetches of every ``session.run``."""
    calls: list[list[str]] = []
    real = tfrun.GraphSession.run

    def counting(self, feeds, fetches):
        fetches = list(fetches)
        calls.append(fetches)
        return real(self, feeds, fetches)

    monkeypatch.setattr(tfrun.GraphSession, "run", counting)
    yield calls


@contextlib.contextmanager
def count_evaluations(monkeypatch):
    """The fetches of every evaluation of the frontier (one batch: without a session run when TensorFlow computes
    them all so, else one ``session.run``), and the fetches of each ``session.run`` among them."""
    calls: list[list[str]] = []
    real = constfold._Evaluator._fetch  # noqa: SLF001

    def counting(self, todo, needed):
        calls.append([f"{n}:{p}" for n, ports in todo.items() for p in ports])
        return real(self, todo, needed)

    monkeypatch.setattr(constfold._Evaluator, "_fetch", counting)  # noqa: SLF001
    with count_session_runs(monkeypatch) as runs:
        yield calls, runs


def _model(gd, outputs: dict[str, str], inputs: dict[str, str] | None = None) -> Model:
    inputs = {"x": "x:0"} if inputs is None else inputs
    sig = Signature(
        "serving_default", "tensorflow/serving/predict",
        inputs={k: TensorSpec(t, types_pb2.DT_FLOAT, [2, 3]) for k, t in inputs.items()},
        outputs={k: TensorSpec(t, types_pb2.DT_FLOAT, None) for k, t in outputs.items()},
    )
    return Model(Graph(gd), {"serving_default": sig}, source=None, format="graph_def")  # type: ignore[arg-type]


def test_registered_under_gtt_name_with_params():
    cls = get_rule("fold_constants")
    assert cls is FoldConstants and issubclass(cls, Pass)
    rule = cls(ignore_errors="true", max_constant_size_in_bytes="1024", clear_output_shapes="false")
    assert rule.args == {"ignore_errors": True, "max_constant_size_in_bytes": 1024, "clear_output_shapes": False,
                         "exclude_op": [], "exclude_node": []}
    assert FoldConstants.doc().startswith("Replaces ")
    with pytest.raises(RuleError, match="no parameter"):
        cls(bogus=1)


def test_add_of_consts_becomes_one_const():
    def build():
        x = _ph()
        s = tf.add(tf.constant(2.0, name="a"), tf.constant(3.0, name="b"), name="s")
        tf.multiply(x, s, name="y")

    gd = graph_def_of(build)
    g = Graph(gd)
    report = run_pipeline(g, [FoldConstants()])
    assert g.lint() == []
    assert report.counts == {"fold_constants": 1}
    assert g.node("s").op == "Const" and g.const_value("s") == 5.0
    assert "a" not in g and "b" not in g  # the constant subgraph behind the fold is gone
    assert g.input_nodes("y") == ["x", "s"]
    assert_close(run(g, {"x:0": X}, ["y:0"]), run(gd, {"x:0": X}, ["y:0"]))


def test_chain_folds_fully_in_one_round_with_one_evaluation_and_no_session(monkeypatch):
    def build():
        x = _ph()
        c = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3), name="c")
        v = tf.sqrt(c * 2.0 + 1.0)
        v = tf.reshape(tf.concat([v, tf.cast(tf.range(6), tf.float32)[None, :3] + v], axis=0), [2, 2, 3])
        v = tf.reduce_mean(v, axis=0, name="chain_end")
        w = tf.square(tf.tile(tf.constant([[1.0], [2.0], [3.0]]), [1, 2]), name="other_end")
        tf.add(x, v, name="y")
        tf.matmul(x, w, name="z")

    gd = graph_def_of(build)
    g = Graph(gd)
    n_before = len(g)
    with count_evaluations(monkeypatch) as (calls, runs):
        report = run_pipeline(g, [FoldConstants()])
    assert g.lint() == []
    assert len(calls) == 1, calls  # both frontier tensors, one evaluation, in round 1
    assert sorted(calls[0]) == ["chain_end:0", "other_end:0"]
    assert runs == []  # a few small values: computed without starting a session
    assert report.counts == {"fold_constants": 2} and report.rounds == 2  # round 2 found nothing
    assert sorted(n.op for n in g) == ["AddV2", "Const", "Const", "MatMul", "Placeholder"]
    assert len(g) < n_before
    assert_close(run(g, {"x:0": X}, ["y:0", "z:0"]), run(gd, {"x:0": X}, ["y:0", "z:0"]))


def test_many_independent_folds_share_one_session_run(monkeypatch):
    n = 300

    def build():
        x = _ph()
        outs = [x * tf.exp(tf.constant(float(i) / n, name=f"k{i}"), name=f"m{i}") for i in range(n)]
        tf.add_n(outs, name="y")

    gd = graph_def_of(build)
    g = Graph(gd)
    t0 = time.perf_counter()
    with count_session_runs(monkeypatch) as calls:
        report = run_pipeline(g, [FoldConstants()])
    seconds = time.perf_counter() - t0
    assert len(calls) == 1 and len(calls[0]) == n
    assert report.counts == {"fold_constants": n}
    assert len(g.nodes_by_op("Exp")) == 0
    assert seconds < 10, seconds
    assert_close(run(g, {"x:0": X}, ["y:0"]), run(gd, {"x:0": X}, ["y:0"]), rtol=1e-5)


def test_random_stateful_and_placeholders_are_not_folded():
    def build():
        x = _ph()
        r = tf.raw_ops.RandomUniform(shape=tf.constant([2, 3]), dtype=tf.float32, seed=1, name="rnd")
        tf.add(r, tf.constant(1.0), name="r_plus")
        tf.raw_ops.StatelessRandomUniform(shape=tf.constant([2, 3]), seed=tf.constant([1, 2]), dtype=tf.float32,
                                          name="sl")
        pwd = tf.compat.v1.placeholder_with_default(tf.constant(X), [2, 3], name="pwd")
        tf.add(pwd, tf.constant(1.0), name="pwd_plus")
        tf.add(x, tf.constant(1.0) * 2.0, name="x_plus")
        v = tf.Variable(np.ones((2, 3), np.float32), name="var")
        tf.add(v.read_value(), 1.0, name="v_plus")
        tf.raw_ops.Shape(input=x, name="x_shape")
        tf.raw_ops.Shape(input=_ph((None, 3), name="x_any"), name="x_any_shape")

    gd = graph_def_of(build)
    g = Graph(gd)
    rule = FoldConstants()
    assert "random" in _explain(g, rule, "rnd")
    assert "depends on 'rnd'" in _explain(g, rule, "r_plus")
    assert "PlaceholderWithDefault" in _explain(g, rule, "pwd")
    assert "depends on 'pwd'" in _explain(g, rule, "pwd_plus")
    assert _explain(g, rule, "x_shape") is None  # x is [2, 3]: its Shape is known statically (as in GTT)
    assert "Placeholder" in _explain(g, rule, "x_any_shape")  # [?, 3]: not known
    assert "stateful" in _explain(g, rule, "var")
    assert "already a Const" in _explain(g, rule, "mul/y")
    assert _explain(g, rule, "mul") is None  # the Const*2 inside x_plus folds
    run_pipeline(g, [rule])
    assert g.lint() == []
    for name, op in [("rnd", "RandomUniform"), ("r_plus", "AddV2"), ("pwd", "PlaceholderWithDefault"),
                     ("pwd_plus", "AddV2"), ("x_plus", "AddV2"), ("x_any_shape", "Shape"), ("v_plus", "AddV2"),
                     ("x_shape", "Const")]:
        assert g.node(name).op == op, name
    assert g.node("sl").op == "Const"  # stateless random is deterministic: folded
    assert g.node(g.input_nodes("x_plus")[1]).op == "Const"
    out = run(g, {"x:0": X}, ["x_plus:0", "pwd_plus:0", "sl:0"])
    assert_close(out, run(gd, {"x:0": X}, ["x_plus:0", "pwd_plus:0", "sl:0"]))
    # the default can still be overridden: PlaceholderWithDefault was kept
    assert_close(run(g, {"pwd:0": X * 0}, ["pwd_plus:0"]), [np.ones((2, 3))])



def test_explain_names_the_first_input_that_is_not_constant_and_a_missing_one():
    """The root cause of a non-constant node is found through its first input (in input order) that is not
    constant: a placeholder, or an input naming no node."""
    from tensorflow.core.framework import graph_pb2

    from graphxform.core.nodes import const, make_node

    f32 = {"T": tf.float32}
    gd = graph_pb2.GraphDef()
    gd.node.extend([
        make_node("Placeholder", "x", attrs={"dtype": tf.float32, "shape": tf.TensorShape([2]).as_proto()}),
        const("c", tf.make_tensor_proto(np.float32(2.0))),
        make_node("Mul", "b", ["c", "x"], attrs=f32),
        make_node("AddV2", "a", ["c", "ghost:1"], attrs=f32),
        make_node("AddV2", "d", ["b", "a"], attrs=f32),
        make_node("AddV2", "e", ["a", "b"], attrs=f32),
        make_node("Neg", "n", ["^e", "c"], attrs=f32),
        make_node("Neg", "k", ["c"], attrs=f32),
    ])
    g = Graph(gd)  # (a dangling input is kept: lint reports it)
    rule = FoldConstants()
    assert _explain(g, rule, "a") == "input 'ghost:1' of 'a' names no node"
    assert _explain(g, rule, "d") == "'d' depends on 'x', which is not constant: 'x' is a Placeholder (a feed point)"
    assert _explain(g, rule, "e").startswith("'e' depends on 'a', which is not constant: input 'ghost:1'")
    assert _explain(g, rule, "n").startswith("'n' depends on 'a'")  # (through its control input)
    assert _explain(g, rule, "k") is None

def test_huge_fill_refused_from_static_shape_without_allocating(monkeypatch):
    def build():
        x = _ph()
        big = tf.fill(tf.constant([100000, 100000]), 1.0, name="big")  # 40 GB if it were evaluated
        s = tf.reduce_sum(big, name="big_sum")
        tf.add(x, s, name="y")
        tf.add(x, tf.constant(1.0) + 1.0, name="small")

    g = Graph(graph_def_of(build))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with count_evaluations(monkeypatch) as (calls, _):
        report = run_pipeline(g, [FoldConstants()])
    seconds = time.perf_counter() - t0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    assert seconds < 1.0, seconds
    assert grown_kib < 200_000, grown_kib  # peak RSS grew by less than 200 MB
    assert report.counts == {"fold_constants": 1}  # only `small`
    assert len(calls) == 1 and all("big" not in f for f in calls[0])
    assert g.node("big").op == "Fill" and g.node("big_sum").op == "Sum"
    reason = _explain(g, FoldConstants(), "big")
    assert "40000000000 bytes" in reason and "max_constant_size_in_bytes" in reason
    assert "depends on 'big'" in _explain(g, FoldConstants(), "big_sum")


def test_size_budget_parameter():
    def build():
        x = _ph((2000, 2000))
        tf.add(x, tf.fill([2000, 2000], 0.5, name="f"), name="y")  # 16 MB

    gd = graph_def_of(build)
    g = Graph(gd)
    run_pipeline(g, [FoldConstants()])
    assert g.node("f").op == "Fill"
    assert "16000000 bytes" in _explain(g, FoldConstants(), "f")
    run_pipeline(g, [FoldConstants(max_constant_size_in_bytes=32 * 1024 * 1024)])
    assert g.node("f").op == "Const" and g.const_value("f").shape == (2000, 2000)
    assert g.lint() == []


def test_unknown_shape_checked_after_evaluation(caplog):
    def build():
        x = _ph((None,), dtype=tf.int32)
        u = tf.unique(tf.constant(np.arange(4000) % 3000, dtype=np.int32), name="u")  # static shape [?]
        tf.add(x[:1], tf.reduce_sum(u.y), name="y")
        tf.concat([x, u.y], 0, name="cat")

    gd = graph_def_of(build)
    g = Graph(gd)
    rule = FoldConstants(max_constant_size_in_bytes=4096)
    with caplog.at_level(logging.INFO, logger="graphxform.tf.constfold"):
        run_pipeline(g, [rule])  # u.y turns out to be 12000 bytes
    assert g.node("u").op == "Unique"  # kept as is ...
    assert any("not folding u: " in r.getMessage() and "is 12000 bytes, over max_constant_size_in_bytes=4096"
               in r.getMessage() for r in caplog.records)
    assert g.node(g.input_nodes("y")[1]).op == "Const"  # ... but the (scalar) sum of it still folded
    feeds = {"x:0": np.array([5, 6], np.int32)}
    assert_close(run(g, feeds, ["y:0", "cat:0"]), run(gd, feeds, ["y:0", "cat:0"]))


def test_evaluation_errors_raise_or_are_ignored(caplog):
    def build():
        x = _ph((None,))
        bad = tf.raw_ops.StringToNumber(string_tensor=tf.constant(["1.5", "abc"]), name="parse")  # fails at run time
        tf.add(x, tf.reduce_sum(bad), name="y1")
        ok = tf.add(tf.constant([1.0, 2.0]), 1.0, name="ok")
        tf.add(x, ok, name="y2")

    gd = graph_def_of(build)
    with pytest.raises(RuleError, match="StringToNumber node 'parse'.*ignore_errors=true"):
        run_pipeline(Graph(gd), [FoldConstants()])
    g = Graph(gd)
    rule = FoldConstants(ignore_errors=True)
    with caplog.at_level(logging.WARNING, logger="graphxform.tf.constfold"):
        report = run_pipeline(g, [rule])
    assert g.lint() == []
    assert g.node("parse").op == "StringToNumber" and g.node("ok").op == "Const"
    assert report.counts == {"fold_constants": 1} and report.rounds == 2
    # The run's context remembers why: the second round does not evaluate 'parse' again.
    failures = [r for r in caplog.records if "not folding parse" in r.getMessage()]
    assert len(failures) == 1 and "evaluation failed" in failures[0].getMessage()
    x = np.array([1.0, 2.0], np.float32)
    assert_close(run(g, {"x:0": x}, ["y2:0"]), run(gd, {"x:0": x}, ["y2:0"]))


def test_import_time_error_folds_what_it_can():
    def build():
        x = _ph((None,))
        v = tf.add(tf.constant([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 1.0, name="v")
        tf.add(x, tf.constant(2.0) * 3.0, name="y")
        tf.identity(v, name="keep_v_alive")

    gd = graph_def_of(build)
    # A Reshape TensorFlow refuses when it infers shapes (6 elements into [4]); tf refuses to build it itself.
    node = gd.node.add()
    node.name, node.op = "bad_reshape", "Reshape"
    node.input.extend(["v", "shape4"])
    node.attr["T"].type = types_pb2.DT_FLOAT
    node.attr["Tshape"].type = types_pb2.DT_INT32
    shape = gd.node.add()
    shape.name, shape.op = "shape4", "Const"
    shape.attr["dtype"].type = types_pb2.DT_INT32
    shape.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array([4], np.int32)))
    consumer = gd.node.add()
    consumer.name, consumer.op = "y_bad", "AddV2"
    consumer.input.extend(["x", "bad_reshape"])
    consumer.attr["T"].type = types_pb2.DT_FLOAT

    with pytest.raises(RuleError, match="Reshape node 'bad_reshape'"):
        run_pipeline(Graph(gd), [FoldConstants()])
    g = Graph(gd)
    run_pipeline(g, [FoldConstants(ignore_errors=True)])
    assert g.lint() == []
    assert g.node("bad_reshape").op == "Reshape"
    assert g.node("v").op == "Const" and list(g.const_value("v")) == [2, 3, 4, 5, 6, 7]  # its input still folded
    assert g.node(g.input_nodes("y")[1]).op == "Const"
    assert "refused" in _explain(g, FoldConstants(), "bad_reshape")


def test_string_constants_fold():
    def build():
        x = tf.compat.v1.placeholder(tf.string, [None], name="x")
        j = tf.strings.join([tf.constant(["ab", "c"]), tf.constant("-"), tf.constant(["x", "yz"])], name="j")
        u = tf.strings.upper(tf.strings.substr(j, 0, 3), name="u")
        tf.strings.join([x, u], separator="|", name="y")

    gd = graph_def_of(build)
    g = Graph(gd)
    run_pipeline(g, [FoldConstants()])
    assert g.lint() == []
    assert g.node("u").op == "Const" and "j" not in g
    assert list(g.const_value("u")) == [b"AB-", b"C-Y"]
    feeds = {"x:0": np.array([b"p", b"q"])}
    assert list(run(g, feeds, ["y:0"])[0]) == list(run(gd, feeds, ["y:0"])[0]) == [b"p|AB-", b"q|C-Y"]


def test_signature_outputs_multi_output_and_protected_nodes():
    def build():
        x = _ph((None,), dtype=tf.float32)
        u = tf.unique(tf.constant([3.0, 1.0, 3.0, 2.0]), name="u")  # outputs y (port 0), idx (port 1)
        tf.add(x, tf.cast(u.idx, tf.float32)[:1], name="use_idx")
        tf.add(tf.constant(1.0, name="one"), 1.0, name="two")  # a signature output, folded in place
        tf.multiply(tf.constant(2.0), 4.0, name="guarded")  # protected: never folded
        tf.constant(7.0, name="const_out")

    gd = graph_def_of(build)
    model = _model(gd, {"idx": "u:1", "two": "two:0", "c": "const_out:0", "g": "guarded:0", "sum": "use_idx:0"},
                   inputs={"x": "x:0"})
    g = model.graph
    g.protected.add("guarded")
    feeds = {"x:0": np.array([10.0], np.float32)}
    before = run(gd, feeds, ["u:1", "two:0", "const_out:0", "guarded:0", "use_idx:0"])
    run_pipeline(g, [FoldConstants()])
    assert g.lint() == []
    sig = model.signatures["serving_default"]
    assert sig.outputs["two"].name == "two:0" and g.node("two").op == "Const"
    new_idx = sig.outputs["idx"].name
    assert new_idx == "u/output_1:0" and g.node("u/output_1").op == "Const"
    assert "u" not in g  # port 0 was not used: the Unique is gone
    assert g.node("guarded").op == "Mul" and "protected" in _explain(g, FoldConstants(), "guarded")
    assert g.node("const_out").op == "Const"
    after = run(g, feeds, [new_idx, "two:0", "const_out:0", "guarded:0", "use_idx:0"])
    assert_close(after, before)


def test_signature_output_port_zero_and_other_ports():
    def build():
        x = _ph((None,))
        s = tf.split(tf.constant([1.0, 2.0, 3.0, 4.0]), 2, name="sp")
        tf.add(x, s[1], name="y")

    gd = graph_def_of(build)
    model = _model(gd, {"first": "sp:0", "y": "y:0"})
    run_pipeline(model.graph, [FoldConstants()])
    g = model.graph
    assert g.lint() == [] and g.node("sp").op == "Const"
    assert model.signatures["serving_default"].outputs["first"].name == "sp:0"
    assert g.input_nodes("y")[1] == "sp/output_1"
    feeds = {"x:0": np.array([1.0, 1.0], np.float32)}
    assert_close(run(g, feeds, ["sp:0", "y:0"]), run(gd, feeds, ["sp:0", "y:0"]))


def test_control_dependencies():
    def build():
        x = _ph()
        a = tf.add(tf.constant(1.0), 2.0, name="a")
        with tf.control_dependencies([a]):
            b = tf.multiply(tf.constant(3.0), 2.0, name="b")  # constant: its control input is constant
        with tf.control_dependencies([x]):
            c = tf.identity(tf.constant(4.0), name="c")  # ordered after a Placeholder: not constant
        with tf.control_dependencies([a]):
            tf.add(x, b + c, name="y")  # a is interior (b reads it): ^a is dropped, a removed

    gd = graph_def_of(build)
    g = Graph(gd)
    rule = FoldConstants()
    assert "depends on 'x'" in _explain(g, rule, "c")
    run_pipeline(g, [rule])
    assert g.lint() == []
    assert g.node("b").op == "Const" and g.node("c").op == "Identity"
    assert "a" not in g and g.control_inputs("y") == []
    assert_close(run(g, {"x:0": X}, ["y:0"]), run(gd, {"x:0": X}, ["y:0"]))


def test_identity_of_shared_const_is_left_to_remove_identity():
    def build():
        x = _ph()
        w = tf.constant(X, name="w")
        tf.add(x, tf.identity(w, name="w_read"), name="y1")
        tf.multiply(x, w, name="y2")
        tf.subtract(x, tf.identity(tf.constant(2.0, name="k"), name="k_read"), name="y3")

    gd = graph_def_of(build)
    g = Graph(gd)
    run_pipeline(g, [FoldConstants()])
    assert g.node("w_read").op == "Identity" and "duplicate" in _explain(g, FoldConstants(), "w_read")
    assert g.node("k_read").op == "Const" and "k" not in g  # sole reader: folded, no copy
    assert_close(run(g, {"x:0": X}, ["y1:0", "y2:0", "y3:0"]), run(gd, {"x:0": X}, ["y1:0", "y2:0", "y3:0"]))


def test_tf1_control_flow_is_left_alone():
    def build():
        x = _ph()
        _, v = tf.compat.v1.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * (tf.constant(1.0) + 1.0)),
                                       [tf.constant(0), x])
        c = tf.compat.v1.cond(tf.reduce_sum(x) > 0, lambda: x + tf.constant(2.0) * 2.0, lambda: x - 1.0)
        tf.add(v, c, name="out")
        tf.add(x, tf.constant(5.0) * 2.0, name="plain")

    with control_flow_v1():
        gd = graph_def_of(build)
    g = Graph(gd)
    rule = FoldConstants()
    assert "control-flow" in _explain(g, rule, "while/Merge")
    run_pipeline(g, [rule])
    assert g.lint() == []
    assert g.node(g.input_nodes("plain")[1]).op == "Const"
    for op in ("Enter", "Exit", "Switch", "Merge", "NextIteration"):
        assert g.nodes_by_op(op), op
    for feed in (X, -X):
        assert_close(run(g, {"x:0": feed}, ["out:0", "plain:0"]), run(gd, {"x:0": feed}, ["out:0", "plain:0"]))


def test_clear_output_shapes_false_records_shapes():
    def build():
        tf.add(_ph(), tf.zeros([2, 3]) + 1.0, name="y")

    g = Graph(graph_def_of(build))
    run_pipeline(g, [FoldConstants(clear_output_shapes=False)])
    folded = g.node(g.input_nodes("y")[1])
    assert folded.op == "Const"
    assert [d.size for d in folded.attr["_output_shapes"].list.shape[0].dim] == [2, 3]


def test_explain_gives_a_reason_per_node_without_evaluating(monkeypatch):
    from graphxform.engine.explain import explain

    def build():
        x = _ph()
        tf.add(x, tf.add(tf.constant(1.0, name="a"), 2.0, name="s"), name="y")
        tf.add(x, tf.raw_ops.RandomUniform(shape=tf.constant([2, 3]), dtype=tf.float32, name="rnd"), name="y2")
        tf.add(x, tf.reduce_max(tf.fill([30000, 30000], 1.0, name="big")), name="y3")

    g = Graph(graph_def_of(build))
    with count_evaluations(monkeypatch) as (calls, runs):
        reasons = dict(explain(g, FoldConstants()))
    assert calls == runs == []  # static analysis only: one import, nothing evaluated
    assert set(reasons) == set(g.node_names)
    assert reasons["s"] is None
    assert "already a Const" in reasons["a"]
    assert "random" in reasons["rnd"] and "depends on 'x'" in reasons["y2"]
    assert "3600000000 bytes" in reasons["big"]
    assert "Placeholder" in reasons["x"]


# ----------------------------------------------------------------- later runs: only what changed since
class _EditOnce(Pass):
    """Another rule: on its first run, applies the given edit (between two runs of fold_constants)."""

    name = "t_fold_edit_once"

    def __init__(self, edit, **kw: object) -> None:
        super().__init__(**kw)
        self.edit, self.done = edit, False

    def run(self, graph: Graph, ctx) -> list[Replacement]:
        if self.done:
            return []
        self.done = True
        return [self.edit(graph)]


def _fold_then_edit(monkeypatch, build, edit, *, full: bool, rule: FoldConstants | None = None):
    """[fold_constants, edit] to the fixpoint on ``build``'s graph (outputs ``out``); ``full``: every run of
    fold_constants analyses the whole graph. Returns the model, the report and the number of analyses."""
    import graphxform.transforms.fold_constants as fc
    from graphxform.transforms._fold_state import FoldState

    analyses = []
    real = fc.evaluate_frontier
    monkeypatch.setattr(fc, "evaluate_frontier", lambda *a, **k: analyses.append(1) or real(*a, **k))
    if full:
        monkeypatch.setattr(FoldState, "quiet", lambda *a: False)
    model = _model(graph_def_of(build), {"out": "out:0"})
    report = run_pipeline(model.graph, [rule or FoldConstants(), _EditOnce(edit)])
    monkeypatch.undo()
    assert model.graph.lint() == []
    return model, report, len(analyses)


def _same(a: Graph, b: Graph) -> None:
    assert sorted(a.node_names) == sorted(b.node_names)
    for node in a:
        assert b.node(node.name) == node, node.name


def _build_two_branches():
    x = _ph()
    c = tf.constant(np.full((2, 3), 2.0, np.float32), name="c")
    k = tf.add(c, c, name="k")  # folds in the first run
    y = _ph(name="y")  # not a signature input: the edit makes it a Const
    m = tf.multiply(x, k, name="m")
    n = tf.multiply(y, 3.0, name="n")
    tf.add(m, n, name="out")


def _const_node(name: str, value: np.ndarray):
    from graphxform.core.nodes import const

    return const(name, value)


def test_later_run_is_skipped_when_nothing_foldable_changed(monkeypatch):
    def rewire(g):  # "out" reads m twice: n and y no longer reach an output (unused), nothing new is constant
        node = g.node("out")
        new = type(node)()
        new.CopyFrom(node)
        new.input[1] = "m"
        return Replacement(update=[new])

    def swap(g):  # "out" computes n + m instead: nothing becomes constant or unused
        node = g.node("out")
        new = type(node)()
        new.CopyFrom(node)
        new.input[0], new.input[1] = node.input[1], node.input[0]
        return Replacement(update=[new])

    inc, _, runs = _fold_then_edit(monkeypatch, _build_two_branches, swap, full=False)
    ref, _, ref_runs = _fold_then_edit(monkeypatch, _build_two_branches, swap, full=True)
    assert runs == 1 and ref_runs == 2  # the second run of fold_constants found, cheaply, nothing to do
    _same(inc.graph, ref.graph)
    # a node that loses its last reader must still be removed as unused, as a full run does
    inc, _, runs = _fold_then_edit(monkeypatch, _build_two_branches, rewire, full=False)
    ref, _, _ = _fold_then_edit(monkeypatch, _build_two_branches, rewire, full=True)
    assert runs == 2
    _same(inc.graph, ref.graph)
    assert not {"n", "y"} & set(inc.graph.node_names)


def test_later_run_folds_what_another_rule_made_constant(monkeypatch):
    def y_becomes_const(g):  # n = y * 3 is constant now: a stale state would leave it
        return Replacement(update=[_const_node("y", np.ones((2, 3), np.float32))])

    inc, _, runs = _fold_then_edit(monkeypatch, _build_two_branches, y_becomes_const, full=False)
    ref, _, _ = _fold_then_edit(monkeypatch, _build_two_branches, y_becomes_const, full=True)
    assert runs == 2
    _same(inc.graph, ref.graph)
    assert inc.graph.node("n").op == "Const" and "y" not in inc.graph
    x = X
    assert_close(run(inc.graph, {"x:0": x}, ["out:0"]), [x * 4.0 + 3.0])

    def k_becomes_input(g):  # the Const k (folded) is replaced by an op reading x: m stays, nothing folds
        node = _const_node("k", np.ones((2, 3), np.float32))
        node.op, node.input[:] = "Neg", ["x"]
        del node.attr["value"], node.attr["dtype"]
        node.attr["T"].type = types_pb2.DT_FLOAT
        return Replacement(update=[node])

    inc, _, runs = _fold_then_edit(monkeypatch, _build_two_branches, k_becomes_input, full=False)
    ref, _, _ = _fold_then_edit(monkeypatch, _build_two_branches, k_becomes_input, full=True)
    assert runs == 1
    _same(inc.graph, ref.graph)
    assert_close(run(inc.graph, {"x:0": X, "y:0": X}, ["out:0"]), [X * -X + X * 3.0])


def test_later_run_sees_a_new_reader_of_a_constant_kept_over_budget(monkeypatch):
    def build():
        x = _ph()
        big = tf.fill([2, 3], 1.5, name="big")  # 24 bytes: over the budget, kept as it is
        s = tf.reduce_sum(big, name="s")  # 4 bytes: folds
        tf.add(tf.multiply(x, big, name="m"), s, name="out")

    def new_reader(g):  # out = x * big + big * 2: a new (constant) reader of the kept constant node
        from graphxform.core.nodes import make_node

        two = _const_node("two", np.float32(2.0))
        extra = make_node("Mul", "extra", ["big", "two"], attrs={"T": tf.float32})
        out = make_node("AddV2", "out", ["m", "extra"], attrs={"T": tf.float32})
        return Replacement(add=[two, extra], update=[out])

    def fold():
        return FoldConstants(max_constant_size_in_bytes=16)

    inc, _, runs = _fold_then_edit(monkeypatch, build, new_reader, full=False, rule=fold())
    ref, _, _ = _fold_then_edit(monkeypatch, build, new_reader, full=True, rule=fold())
    assert runs == 2  # the kept node got a reader: a full run decides
    _same(inc.graph, ref.graph)
    assert_close(run(inc.graph, {"x:0": X}, ["out:0"]), [X * 1.5 + 3.0])


# ----------------------------------------------------------------- without a session
def test_few_small_folds_are_computed_without_a_session_exactly_as_one_would(monkeypatch):
    """Shape vectors and small constants (few fetches, 64 KiB in all at most) are computed by TensorFlow's own
    constant evaluator (``TF_TryEvaluateConstant``): no session, no runtime started, the session's values bit for
    bit. A bigger fold still runs one session."""
    def build():
        x = _ph((2, 64))
        shape = tf.concat([tf.constant([2]), tf.strided_slice(tf.constant([8, 8, 3]), [0], [2])], 0, name="shape")
        k = tf.sqrt(tf.exp(tf.constant(np.linspace(0.1, 1.0, 64, dtype=np.float32))) + 1.0, name="k")
        tf.reshape(x * k, shape, name="y")

    gd = graph_def_of(build)
    g = Graph(gd)
    g.protected.update({"x", "y"})
    with count_evaluations(monkeypatch) as (calls, runs):
        run_pipeline(g, [FoldConstants()])
    assert sorted(calls[0]) == ["k:0", "shape:0"] and runs == []
    with tfrun.GraphSession(gd, optimize=False) as s:
        want = s.run({}, ["shape:0", "k:0"])
    for name, value in zip(["shape", "k"], want, strict=True):
        assert g.node(name).op == "Const"
        got = g.const_value(name)
        assert got.dtype == value.dtype and got.tobytes() == value.tobytes()
    assert_close(run(g, {"x:0": np.ones((2, 64), np.float32)}, ["y:0"]),
                 run(gd, {"x:0": np.ones((2, 64), np.float32)}, ["y:0"]), rtol=0, atol=0)

    def big():
        x = _ph((128, 256))
        tf.add(x, tf.ones([128, 256]) * 2.0, name="y")  # a 128 KiB value: over the quick path's limit

    g = Graph(graph_def_of(big))
    g.protected.update({"x", "y"})
    with count_evaluations(monkeypatch) as (calls, runs):
        assert run_pipeline(g, [FoldConstants()]).counts == {"fold_constants": 1}
    assert len(calls) == 1 and runs == calls


def test_folds_from_many_nodes_or_big_constants_run_one_session(monkeypatch):
    """Each fetch's constant subgraph is evaluated on its own without a session: a small value computed from a
    big constant (or from many nodes) goes to one session run instead, which computes their shared part once."""
    def build():
        x = _ph((2, 1))
        w = tf.constant(np.ones((512, 1024), np.float32))  # 2 MiB
        tf.add(x, tf.reduce_sum(w) + tf.reduce_mean(w), name="y")

    g = Graph(graph_def_of(build))
    g.protected.update({"x", "y"})
    with count_evaluations(monkeypatch) as (calls, runs):
        assert run_pipeline(g, [FoldConstants()]).counts == {"fold_constants": 1}
    assert len(calls) == 1 and runs == calls
    assert float(g.const_value("add")) == 512 * 1024 + 1.0


def test_what_the_constant_evaluator_cannot_give_is_fetched_by_one_session_run(monkeypatch):
    def build():
        x = _ph()
        tf.add(x, tf.constant(1.0) + 2.0, name="y")
        tf.multiply(x, tf.constant(3.0) * 4.0, name="z")

    g = Graph(graph_def_of(build))
    g.protected.update({"x", "y", "z"})
    real = tfrun.CGraph.evaluate_constant
    monkeypatch.setattr(tfrun.CGraph, "evaluate_constant",
                        lambda self, t: None if t == "mul:0" else real(self, t))
    with count_evaluations(monkeypatch) as (calls, runs):
        assert run_pipeline(g, [FoldConstants()]).counts == {"fold_constants": 2}
    assert sorted(calls[0]) == ["add:0", "mul:0"] and runs == [["mul:0"]]
    assert float(g.const_value("add")) == 3.0 and float(g.const_value("mul")) == 12.0


def test_a_c_api_session_starts_only_when_a_value_needs_it():
    def build():
        tf.add(tf.constant([1, 2]), tf.constant([3, 4]), name="s")

    with tfrun.GraphSession(graph_def_of(build), optimize=False, c_api=True) as s:
        assert s.evaluate_constant("s:0").tolist() == [4, 6]
        assert s.c_graph.session is None
        assert s.run({}, ["s"])[0].tolist() == [4, 6] and s.c_graph.session is not None


def test_reshape_of_a_constant_folds_by_relabeling_its_shape(monkeypatch):
    """``Reshape(Const, Const shape)``: the constant's own tensor under the new shape (an encoding kept: a splat stays
    a splat), nothing evaluated; a shape that does not fit is TensorFlow's to refuse."""
    from graphxform.tf.constant_analysis import reshaped_const

    w = np.arange(4096, dtype=np.float32)

    def build():
        x = _ph((2, 64))
        y = tf.matmul(x, tf.reshape(tf.constant(w), [64, -1], name="w2d"))
        tf.add(y, tf.reshape(tf.constant(0.5, shape=[4, 16]), [-1], name="splat"), name="y")

    gd = graph_def_of(build)
    g = Graph(gd)
    assert reshaped_const(g, g.node("y")) is None  # not a Reshape
    g.protected.update({"x", "y"})
    with count_evaluations(monkeypatch) as (calls, runs):
        assert run_pipeline(g, [FoldConstants()]).counts == {"fold_constants": 2}
    assert calls == [] and runs == []
    w2d, splat = g.node("w2d").attr["value"].tensor, g.node("splat").attr["value"].tensor
    assert [d.size for d in w2d.tensor_shape.dim] == [64, 64] and w2d.tensor_content == w.tobytes()
    assert [d.size for d in splat.tensor_shape.dim] == [64] and list(splat.float_val) == [0.5]
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    assert_close(run(g, {"x:0": x}, ["y:0"]), run(gd, {"x:0": x}, ["y:0"]), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [[-1, -1], [3, -1], [0, -1], [-2, 8], [4, 4], 32])
def test_reshape_to_a_shape_that_does_not_fit_is_not_relabeled(shape):
    """(TensorFlow refuses such a graph when it is built: made node by node here, as a broken file would hold it.)"""
    from tensorflow.core.framework import graph_pb2

    from graphxform.core.nodes import const, make_node
    from graphxform.tf.constant_analysis import reshaped_const

    gd = graph_pb2.GraphDef()
    gd.node.extend([const("t", np.zeros(32, np.float32)), const("s", np.array(shape, np.int32)),
                    make_node("Reshape", "r", ["t", "s"], attrs={"T": tf.float32, "Tshape": tf.int32})])
    g = Graph(gd)
    assert reshaped_const(g, g.node("r")) is None
    gd.node[1].CopyFrom(const("s", np.array([4, 8], np.int32)))  # one that fits: relabeled
    assert [d.size for d in reshaped_const(Graph(gd), gd.node[2]).tensor_shape.dim] == [4, 8]
    assert [d.size for d in reshaped_const(Graph(gd), gd.node[2], 128).tensor_shape.dim] == [4, 8]  # (128 bytes)
    assert reshaped_const(Graph(gd), gd.node[2], 127) is None  # over the budget
