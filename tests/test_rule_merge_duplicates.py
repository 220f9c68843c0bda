"""merge_duplicates: equal nodes merged (chains too), near-equal ones kept apart, stateful ops never merged."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import graphxform.transforms.merge_duplicates as md
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, assert_close, assert_same_outputs, graph_def_of, run, signature_outputs
from graphxform.transforms._graph_edits import HELD_CONST_ELEMENTS
from graphxform.transforms.merge_duplicates import MergeDuplicates
from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.context import Context
from graphxform.engine.explain import explain
from graphxform.engine.passes import Pass
from graphxform.engine.registry import get_rule
from graphxform.engine.rule import Replacement
from graphxform.engine.runner import run_pipeline, run_rule_once
from graphxform.model.model import Model, Signature

X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)



def _why(graph: Graph, name: str) -> str | None:
    """What ``--explain merge_duplicates`` says about node ``name`` (``None``: it would be merged)."""
    return MergeDuplicates().explain(graph, Context())[name]

def _const(name: str, value: np.ndarray, device: str = "") -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Const", device=device)
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
    return node


def _binary(name: str, op: str, a: str, b: str) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op=op, input=[a, b])
    node.attr["T"].type = types_pb2.DT_FLOAT
    return node


def _placeholder(name: str) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Placeholder")
    node.attr["dtype"].type = types_pb2.DT_FLOAT
    return node


def _graph_def(*nodes: node_def_pb2.NodeDef) -> graph_pb2.GraphDef:
    gd = graph_pb2.GraphDef()
    gd.node.extend(nodes)
    return gd


def test_registered_under_gtt_alias():
    assert get_rule("merge_duplicate_nodes") is MergeDuplicates


def test_equal_consts_merge_and_chains_collapse():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        w = np.arange(3, dtype=np.float32)
        a1 = tf.add(x, tf.constant(w, name="c1"), name="a1")
        a2 = tf.add(x, tf.constant(w, name="c2"), name="a2")  # duplicate of a1 once c2 -> c1
        m1 = tf.multiply(tf.nn.relu(a1, name="r1"), 2.0, name="m1")
        m2 = tf.multiply(tf.nn.relu(a2, name="r2"), 2.0, name="m2")
        tf.subtract(m1, m2, name="d")
        tf.add(m1, m2, name="s")

    gd = graph_def_of(build)
    before = run(gd, {"x:0": X}, ["d:0", "s:0"])
    g = Graph(gd, protected=["d", "s"])
    report = run_pipeline(g, [MergeDuplicates()])
    assert g.lint() == []
    assert report.rounds == 2  # everything merged in the first round; the second finds nothing
    removed = {"c2", "a2", "r2", "m2", "m2/y"}
    assert not removed & set(g.node_names)
    assert report.counts["merge_duplicates"] == 1  # all merges of a pass are one rewrite
    assert report.stat("merge_duplicates").removed == len(removed)
    assert g.data_inputs("d") == ["m1", "m1"] and g.data_inputs("s") == ["m1", "m1"]
    assert_close(run(g, {"x:0": X}, ["d:0", "s:0"]), before)


def test_equal_values_in_different_encodings_merge():
    splat = _const("splat", np.zeros(4, np.float32))
    dense = node_def_pb2.NodeDef(name="dense", op="Const")
    dense.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.zeros(4, np.float32)))
    del splat.attr["value"].tensor.float_val[:]
    splat.attr["value"].tensor.float_val.append(0.0)
    splat.attr["value"].tensor.ClearField("tensor_content")
    dense.attr["value"].tensor.tensor_content = np.zeros(4, np.float32).tobytes()
    del dense.attr["value"].tensor.float_val[:]
    dense.attr["dtype"].type = types_pb2.DT_FLOAT
    assert splat.attr["value"].tensor != dense.attr["value"].tensor
    gd = _graph_def(splat, dense, _binary("out", "AddV2", "splat", "dense"))
    g = Graph(gd, protected=["out"])
    assert run_rule_once(g, MergeDuplicates()) == 1
    assert g.lint() == [] and g.data_inputs("out") == ["splat", "splat"]
    assert_close(run(g, {}, ["out:0"]), run(gd, {}, ["out:0"]))


def test_different_bytes_never_merge_even_in_one_hash_bucket(monkeypatch):
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = np.array([1.0, 2.0, 3.0000002], np.float32)  # one ulp apart
    gd = _graph_def(_const("a", a), _const("b", b), _binary("out", "Sub", "a", "b"))
    for digest in (md._attr_digest, lambda node: 0):  # the real hash, then every node in one bucket
        monkeypatch.setattr(md, "_attr_digest", digest)
        g = Graph(gd, protected=["out"])
        assert run_rule_once(g, MergeDuplicates()) == 0
        assert {"a", "b"} <= set(g.node_names)
    assert "Const values differ" in _why(g, "b")
    assert run(g, {}, ["out:0"])[0][2] != 0


def test_constant_bucket_key_still_merges_equal_nodes(monkeypatch):
    monkeypatch.setattr(md, "_attr_digest", lambda node: 0)
    v = np.ones(3, np.float32)
    gd = _graph_def(_const("a", v), _const("b", v * 2), _const("c", v), _binary("out", "AddV2", "b", "c"))
    g = Graph(gd, protected=["out"])
    assert run_rule_once(g, MergeDuplicates()) == 1
    assert "c" not in g and g.data_inputs("out") == ["b", "a"]


def test_different_devices_or_attrs_do_not_merge():
    v = np.ones(3, np.float32)
    p = _placeholder("x")
    m1 = _binary("m1", "MatMul", "x", "x")
    m2 = _binary("m2", "MatMul", "x", "x")
    m2.attr["transpose_a"].b = True
    gd = _graph_def(p, _const("a", v, device="/device:CPU:0"), _const("b", v, device="/device:CPU:1"), m1, m2)
    g = Graph(gd)
    assert run_rule_once(g, MergeDuplicates()) == 0
    assert "devices differ" in _why(g, "b")
    assert "attributes differ" in _why(g, "m2")


def test_control_inputs_compared_as_a_set():
    v = np.ones(3, np.float32)
    na = node_def_pb2.NodeDef(name="na", op="NoOp")
    nb = node_def_pb2.NodeDef(name="nb", op="NoOp", device="/device:CPU:0")  # else na and nb merge too
    c1, c2, c3 = _const("c1", v), _const("c2", v), _const("c3", v)
    c1.input.extend(["^na", "^nb"])
    c2.input.extend(["^nb", "^na"])
    c3.input.extend(["^na"])
    gd = _graph_def(na, nb, c1, c2, c3, _binary("o", "AddV2", "c2", "c3"))
    g = Graph(gd, protected=["o"])
    assert run_rule_once(g, MergeDuplicates()) == 1
    assert "c2" not in g and "c3" in g and g.data_inputs("o") == ["c1", "c3"]
    assert g.lint() == []


def test_stateful_and_placeholders_never_merge():
    def build():
        r1 = tf.random.uniform([2, 3], seed=1, name="r1")
        r2 = tf.random.uniform([2, 3], seed=1, name="r2")
        r1s = tf.random.uniform([2, 3], seed=1, name="r1s")  # all three have identical attrs and inputs
        p1 = tf.compat.v1.placeholder(tf.float32, [2, 3], name="p1")
        p2 = tf.compat.v1.placeholder(tf.float32, [2, 3], name="p2")
        tf.add_n([r1, r2, r1s, p1, p2], name="out")

    gd = graph_def_of(build)
    ru = [n for n in gd.node if n.op == "RandomUniform"]
    assert len(ru) == 3 and ru[0].attr == ru[1].attr
    g = Graph(gd, protected=["out"])
    run_rule_once(g, MergeDuplicates())
    assert len(g.nodes_by_op("RandomUniform")) == 3 and {"p1", "p2"} <= set(g.node_names)
    assert "stateful" in _why(g, "r2/RandomUniform")
    assert g.lint() == []


def test_signature_output_moves_to_survivor_and_protected_nodes_are_not_removed():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.math.square(x, name="sq1")
        tf.math.square(x, name="sq2")
        tf.math.exp(x, name="e1")
        tf.math.exp(x, name="e2")

    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [2, 3])},
                    outputs={"a": TensorSpec("sq1:0", types_pb2.DT_FLOAT, [2, 3]),
                             "b": TensorSpec("sq2:0", types_pb2.DT_FLOAT, [2, 3]),
                             "e": TensorSpec("e1:0", types_pb2.DT_FLOAT, [2, 3])})
    model = Model(Graph(graph_def_of(build)), {"serving_default": sig}, Path("mem"), "graph_def")
    model.graph.protected.add("e2")  # e.g. a table initializer: may survive a merge, never removed by one
    run_pipeline(model.graph, [MergeDuplicates()])
    assert model.graph.lint() == []
    assert "sq2" not in model.graph and {"e1", "e2"} <= set(model.graph.node_names)
    assert {k: s.name for k, s in sig.outputs.items()} == {"a": "sq1:0", "b": "sq1:0", "e": "e1:0"}
    assert "protected" in _why(model.graph, "e2")
    out = run(model.graph, {"x:0": X}, ["sq1:0", "e1:0", "e2:0"])
    assert_close(out, [X * X, np.exp(X), np.exp(X)])


def test_survivor_is_reported_by_explain():
    v = np.ones(3, np.float32)
    g = Graph(_graph_def(_const("a", v), _const("b", v)))
    rule = MergeDuplicates()
    reasons = dict(explain(g, rule))  # what --explain prints
    assert reasons["b"] is None and "is the survivor" in reasons["a"]
    assert rule.explain(g, Context()) == reasons


def test_many_nodes_one_pass_is_fast():
    n = 10000
    templates = [_const("t", np.full(4, v, np.float32)) for v in range(100)]
    gd = _graph_def(_placeholder("x"))
    for i in range(n):
        c = gd.node.add()
        c.CopyFrom(templates[i % 100])
        c.name = f"c{i}"
        gd.node.append(_binary(f"a{i}", "AddV2", "x", f"c{i}"))
    g = Graph(gd)
    t0 = time.perf_counter()
    reps = MergeDuplicates().run(g, Context())
    elapsed = time.perf_counter() - t0
    assert len(reps) == 1 and len(reps[0].remove) == 2 * (n - 100)
    assert elapsed < 5, f"run on {len(g)} nodes took {elapsed:.1f}s"


@pytest.mark.skipif(not (FIXTURES / "estimator_linear").is_dir(), reason="fixture estimator_linear not built")
def test_on_the_estimator_linear_fixture():
    import graphxform

    model = graphxform.load(FIXTURES / "estimator_linear")
    if not model.frozen:
        model.freeze()
    before = signature_outputs(model, "estimator_linear")
    ops_before = model.graph.op_histogram()
    report = run_pipeline(model.graph, [MergeDuplicates()])
    assert model.graph.lint() == []
    ops_after = model.graph.op_histogram()
    merged = report.stat("merge_duplicates").removed
    assert merged > 10 and sum(ops_before.values()) - sum(ops_after.values()) == merged
    assert ops_after["HashTableV2"] == ops_before["HashTableV2"]  # stateful: never merged
    assert_same_outputs(before, signature_outputs(model, "estimator_linear"))


# ----------------------------------------------------------------- later runs look only at what changed
class _EditOnce(Pass):
    """Another rule: on its first run, applies the edits it is given (between two runs of merge_duplicates)."""

    name = "t_edit_once"

    def __init__(self, edits, **kw: object) -> None:
        super().__init__(**kw)
        self.edits = edits
        self.done = False

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        if self.done:
            return []
        self.done = True
        return [self.edits(graph)]


def _with_inputs(node: node_def_pb2.NodeDef, *inputs: str) -> node_def_pb2.NodeDef:
    out = node_def_pb2.NodeDef()
    out.CopyFrom(node)
    del out.input[:]
    out.input.extend(inputs)
    return out


def _merge_then_edit(gd, edits, monkeypatch, *, full: bool, protected=("out",)):
    """Run [merge_duplicates, edit] to the fixpoint; ``full``: every run of merge_duplicates scans the whole graph.
    Returns the graph, the report and how many whole-graph scans merge_duplicates made."""
    scans = []
    real_scan = md._Scan
    monkeypatch.setattr(md, "_Scan", lambda graph: scans.append(1) or real_scan(graph))
    if full:
        monkeypatch.setattr(md.MergeState, "update", lambda *a, **k: None)
    g = Graph(gd, protected=list(protected))
    report = run_pipeline(g, [MergeDuplicates(), _EditOnce(edits)])
    monkeypatch.undo()
    assert g.lint() == []
    return g, report, len(scans)


def _same_graph(a: Graph, b: Graph) -> None:
    assert sorted(a.node_names) == sorted(b.node_names)
    for node in a:
        assert b.node(node.name) == node, node.name


@pytest.mark.parametrize("op2", ["Mul", "AddV2"])
def test_later_run_merges_a_node_that_became_a_duplicate(monkeypatch, op2):
    # "late" becomes Const 1 after the first run: a duplicate of c1, and earlier in the graph, so c1 merges
    # into it (the full scan's survivor: first in its topological order). With op2 = AddV2, a1 and a2 then read
    # the same inputs: duplicates with inputs, whose order only the full scan tells.
    one, two = np.ones(3, np.float32), np.full(3, 2.0, np.float32)
    gd = _graph_def(_placeholder("x"), _const("k", two), _binary("late", "Mul", "k", "k"), _const("c1", one),
                    _binary("a1", "AddV2", "x", "c1"), _binary("a2", op2, "x", "late"),
                    _binary("out", "Sub", "a1", "a2"))
    edit = lambda g: Replacement(update=[_const("late", one)])  # noqa: E731
    inc, report, scans = _merge_then_edit(gd, edit, monkeypatch, full=False)
    ref, _, ref_scans = _merge_then_edit(gd, edit, monkeypatch, full=True)
    assert ref_scans == 2 and scans == (1 if op2 == "Mul" else 2)
    _same_graph(inc, ref)
    assert "c1" not in inc
    if op2 == "AddV2":  # the graph's order is topological: the scan's; a1 comes first, a2 merges into it
        assert "a2" not in inc and inc.data_inputs("out") == ["a1", "a1"] and inc.data_inputs("a1") == ["x", "late"]
    else:
        assert {"a1", "a2"} <= set(inc.node_names) and inc.data_inputs("a1") == ["x", "late"]
    assert report.counts["merge_duplicates"] == 1
    expected = (X[:1] + 1) - (X[:1] * 1 if op2 == "Mul" else X[:1] + 1)
    assert_close(run(inc, {"x:0": X[:1]}, ["out:0"]), [expected])


def test_later_run_does_not_trust_a_node_another_rule_changed(monkeypatch):
    # c1 (1.0) is recorded by the first run. Then c1 becomes 5.0 and c2 (2.0) becomes 1.0: c2 is now equal to
    # what c1 WAS — a stale state would merge them. And a Const equal to c1's new value must merge.
    one = np.ones(3, np.float32)
    gd = _graph_def(_placeholder("x"), _const("c1", one), _const("c2", one * 2), _const("c3", one * 5),
                    _binary("a1", "AddV2", "x", "c1"), _binary("a2", "AddV2", "x", "c2"),
                    _binary("a3", "Mul", "x", "c3"), _binary("s", "Sub", "a1", "a2"), _binary("out", "AddV2", "s", "a3"))
    edit = lambda g: Replacement(update=[_const("c1", one * 5), _const("c2", one)])  # noqa: E731
    inc, _, scans = _merge_then_edit(gd, edit, monkeypatch, full=False)
    ref, _, _ = _merge_then_edit(gd, edit, monkeypatch, full=True)
    assert scans == 1
    _same_graph(inc, ref)
    assert {"c1", "c2"} <= set(inc.node_names)  # c2 (1.0) is no duplicate of c1 (5.0 now)
    assert "c3" not in inc and inc.data_inputs("a3") == ["x", "c1"]  # c3 (5.0) merged into c1, first in the graph


def test_later_run_forgets_removed_nodes_and_scans_again_for_other_duplicates(monkeypatch):
    one = np.ones(3, np.float32)
    nodes = [_placeholder("x"), _const("c1", one), _const("c2", one * 2), _binary("m1", "Mul", "x", "c1"),
             _binary("m2", "Mul", "x", "c2"), _binary("out", "AddV2", "m1", "m2")]
    gd = _graph_def(*nodes)

    def remove_c1_then_dup(g):  # c1 goes (m1 reads c2 now): m1 and m2 become duplicates (not sources)
        return Replacement(update=[_with_inputs(g.node("m1"), "x", "c2")], remove=["c1"])

    inc, _, scans = _merge_then_edit(gd, remove_c1_then_dup, monkeypatch, full=False)
    ref, _, _ = _merge_then_edit(gd, remove_c1_then_dup, monkeypatch, full=True)
    assert scans == 2  # a duplicate with inputs: the full scan tells which one stays
    _same_graph(inc, ref)
    assert "m2" not in inc and inc.data_inputs("out") == ["m1", "m1"]

    def remove_c1_add_equal(g):  # c1 goes; a new Const equal to what c1 was must not merge into the gone c1
        return Replacement(add=[_const("c9", one)], update=[_with_inputs(g.node("m1"), "x", "c9")],
                           remove=["c1"])

    inc, _, scans = _merge_then_edit(gd, remove_c1_add_equal, monkeypatch, full=False)
    ref, _, _ = _merge_then_edit(gd, remove_c1_add_equal, monkeypatch, full=True)
    assert scans == 1
    _same_graph(inc, ref)
    assert {"c9", "c2", "m1", "m2"} <= set(inc.node_names)


def test_later_run_keeps_protected_duplicates_and_the_confirmation_pass_scans_everything(monkeypatch):
    one = np.ones(3, np.float32)
    gd = _graph_def(_placeholder("x"), _const("c0", one * 3), _const("c1", one), _const("keep", one * 2),
                    _binary("m1", "Mul", "x", "c1"), _binary("m2", "Mul", "x", "keep"),
                    _binary("m0", "Sub", "x", "c0"), _binary("s", "AddV2", "m1", "m2"),
                    _binary("out", "AddV2", "s", "m0"))
    # c0 becomes equal to c1 (earlier: c1 merges into it); "keep" becomes equal too but is protected: it stays
    edit = lambda g: Replacement(update=[_const("c0", one), _const("keep", one)])  # noqa: E731
    for protected in (("out", "keep"), ("out",)):
        inc, _, scans = _merge_then_edit(gd, edit, monkeypatch, full=False, protected=protected)
        ref, _, _ = _merge_then_edit(gd, edit, monkeypatch, full=True, protected=protected)
        kept = "keep" in protected
        assert scans == (1 if kept else 2)  # keep merged too: then m1 and m2 are duplicates with inputs
        _same_graph(inc, ref)
        assert "c1" not in inc and ("keep" in inc) == kept
        assert inc.data_inputs("s") == (["m1", "m2"] if kept else ["m1", "m1"])
    scans = []
    real_scan = md._Scan
    monkeypatch.setattr(md, "_Scan", lambda graph: scans.append(1) or real_scan(graph))
    g = Graph(gd, protected=["out", "keep"])
    report = run_pipeline(g, [MergeDuplicates(), _EditOnce(edit)], debug=True)
    assert len(scans) == 2 and report.missed == 0  # the confirmation pass is a full scan, and finds nothing


@pytest.mark.parametrize("size", [100, 2000])
def test_later_run_compares_large_constants_by_value(monkeypatch, size):
    # Consts over 64 elements are bucketed by dtype/shape and compared byte for byte; from HELD_CONST_ELEMENTS on, the
    # state does not hold them between runs (they count as changed at every run).
    assert (size >= HELD_CONST_ELEMENTS) == (size == 2000)
    big = np.arange(size, dtype=np.float32)
    gd = _graph_def(_placeholder("x"), _const("w0", big * 3), _const("w1", big), _const("w2", big * 2),
                    _binary("m0", "Sub", "x", "w0"), _binary("m1", "Mul", "x", "w1"), _binary("m2", "AddV2", "x", "w2"),
                    _binary("s", "AddV2", "m0", "m1"), _binary("out", "AddV2", "s", "m2"))
    # w0 becomes equal to w1 (and is earlier: w1 merges into it); w2 becomes one ulp off: no merge
    off = big.copy()
    off[-1] = np.nextafter(off[-1], np.float32(1000))
    edit = lambda g: Replacement(update=[_const("w0", big), _const("w2", off)])  # noqa: E731
    inc, _, scans = _merge_then_edit(gd, edit, monkeypatch, full=False)
    ref, _, _ = _merge_then_edit(gd, edit, monkeypatch, full=True)
    assert scans == 1
    _same_graph(inc, ref)
    assert "w1" not in inc and {"w0", "w2"} <= set(inc.node_names) and inc.data_inputs("m1") == ["x", "w0"]
    x = np.ones((1, size), np.float32)
    assert_close(run(inc, {"x:0": x}, ["out:0"]), [(x - big) + (x * big) + (x + off)])


def test_pass_states_hold_no_replaced_weight():
    """merge_duplicates and fold_constants keep their states for the whole run, but not the weights in them: a
    weight another rule replaced is freed at once (else every weight fold_batch_norms rescales lives twice)."""
    big = np.arange(4096, dtype=np.float32)
    gd = _graph_def(_placeholder("x"), _const("w", big), _binary("out", "Mul", "x", "w"))
    g = Graph(gd, protected=["out"])
    replaced = []

    def edit(graph: Graph) -> Replacement:
        replaced.append(graph.node("w"))
        return Replacement(update=[_const("w", big * 2)])

    class Probe(Pass):  # runs right after the edit, before either pass runs again
        name = "t_probe"
        refs: list[int] = []

        def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
            if replaced and not self.refs:
                self.refs.append(sys.getrefcount(replaced[0]))
            return []

    run_pipeline(g, [MergeDuplicates(), get_rule("fold_constants")(), _EditOnce(edit), Probe()])
    assert g.node("w") is not replaced[0]
    assert Probe.refs == [2]  # the list above and getrefcount's argument: no state holds it
    x = np.ones((1, 4096), np.float32)
    assert_close(run(g, {"x:0": x}, ["out:0"]), [x * big * 2])


def test_scalar_constant_bytes_are_numpys_whatever_the_encoding():
    """A scalar's bytes are read without an array (merge_duplicates' full scan keys every small constant by them):
    they are the bytes numpy gives, so a ``*_val`` scalar and the same value in ``tensor_content`` key alike."""
    from graphxform.core.nodes import const
    from graphxform.transforms.merge_duplicates import _exact_attrs, const_bytes

    cases = [(np.float32, [0.0, -0.0, 1.5, np.inf, -np.inf, np.nan, 3.4e38, 1e-45]), (np.float64, [0.1, -0.0, np.nan]),
             (np.int32, [0, -1, 2**31 - 1, -(2**31)]), (np.int64, [2**63 - 1, -(2**63)]), (np.bool_, [True, False])]
    for dtype, values in cases:
        for v in values:
            arr = np.asarray(v, dtype=dtype)
            vals = tf.make_tensor_proto(arr)  # a scalar goes to *_val
            content = tf.make_tensor_proto(arr)
            content.ClearField({np.float32: "float_val", np.float64: "double_val", np.int32: "int_val",
                                np.int64: "int64_val", np.bool_: "bool_val"}[dtype])
            content.tensor_content = arr.tobytes()
            assert const_bytes(vals) == const_bytes(content) == arr.tobytes(), (dtype, v)
            a, b = const("a", vals), const("b", content)
            assert _exact_attrs(a) == _exact_attrs(b), (dtype, v)
    assert _exact_attrs(const("z", tf.make_tensor_proto(np.float32(0)))) != \
        _exact_attrs(const("z", tf.make_tensor_proto(np.float32(-0.0))))


def test_merge_state_holds_the_same_nodes_told_by_the_op_index():
    """The state holds every node but the weights; told from the graph's Consts alone, it holds the same ones."""
    from graphxform.core.graph import Graph
    from graphxform.core.nodes import const, make_node
    from graphxform.transforms._merge_state import MergeState

    g = Graph()
    g.add_nodes([const("w", np.ones((HELD_CONST_ELEMENTS,), np.float32)), const("s", np.float32(2)),
                 make_node("Mul", "m", ["w", "s"], attrs={"T": tf.float32})])
    nodes = dict(zip(g.node_names, g))
    scanned, indexed = MergeState(nodes, None, {}), MergeState(nodes, None, {}, g.names_by_op("Const"))
    assert scanned.seen == indexed.seen == {"s": g.node("s"), "m": g.node("m")}
    assert scanned.unheld == indexed.unheld == {"w"} and scanned.size == indexed.size == 3
    indexed.record(g)
    assert indexed.seen == scanned.seen and indexed.unheld == {"w"}
