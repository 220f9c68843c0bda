"""The Graph's op and colocation indexes (``graphxform/core/indexes.py``) and the scans that use them: built at load
(the op index) or on first use (colocation), followed through every mutation, reported by ``lint`` when stale; and the frame facts, ``strip_unused``'s
needed set, ``remove_neutral_arithmetic``'s and ``fold_batch_norms``' candidates giving what a look at every node
gives."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import control_flow_v1, graph_def_of

from graphxform.core.frames import frame_facts
from graphxform.core import indexes
from graphxform.core.graph import Graph
from graphxform.core.nodes import const, make_node, with_colocation, with_inputs
from graphxform.core.signature import Signature, TensorSpec
from graphxform.engine.pipeline import build_pipeline
from graphxform.engine.runner import run_pipeline
from graphxform.transforms.fold_batch_norms import FoldBatchNorms
from graphxform.transforms.remove_neutral_arithmetic import RemoveNeutralArithmetic, _may_match
from graphxform.transforms.strip_unused import _needed, _Needs, _roots

F32 = tf.float32


def _scanned_ops(g: Graph) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node in g:
        out.setdefault(node.op, set()).add(node.name)
    return out


def _indexed_ops(g: Graph) -> dict[str, set[str]]:
    return {op: set(g.names_by_op(op)) for op in _scanned_ops(g) | {"Gone": set()} if g.has_op(op)}


def _graph(neutral: float = 2.0) -> Graph:
    g = Graph()
    g.add_nodes([
        make_node("Placeholder", "x", attrs={"dtype": F32, "shape": tf.TensorShape([2]).as_proto()}),
        const("c", tf.make_tensor_proto(np.float32(neutral))),  # (float_val: read without an array)
        make_node("Mul", "mul", ["x", "c"], attrs={"T": F32}),
        make_node("AddV2", "add", ["mul", "c"], attrs={"T": F32}),
        make_node("Identity", "out", ["add"], attrs={"T": F32}),
    ])
    g.signatures = {"serving_default": Signature(
        "serving_default", "tensorflow/serving/predict", {"x": TensorSpec("x:0", 1, [2])},
        {"y": TensorSpec("out:0", 1, [2])})}
    return g


def test_op_index_follows_every_mutation_and_lint_reports_a_stale_one():
    g = _graph()
    assert g.has_op("Mul") and not g.has_op("Conv2D", "Enter")
    assert _indexed_ops(g) == _scanned_ops(g)
    g.add_nodes([make_node("Neg", "neg", ["add"], attrs={"T": F32})])  # added
    g.update_node(make_node("Relu", "neg", ["add"], attrs={"T": F32}))  # op changed
    g.replace_all_uses("add:0", "mul:0")  # inputs changed (the consumers are new NodeDefs, same ops)
    g.remove_node("neg")
    g.remove_unread(["add"])
    assert not g.has_op("Neg", "Relu", "AddV2")
    assert _indexed_ops(g) == _scanned_ops(g)
    g.update_node(make_node("Neg", "mul", ["x"], attrs={"T": F32}))  # op changed: last in the Neg index, not in
    g.add_nodes([make_node("Neg", "neg2", ["out"], attrs={"T": F32})])  # the graph
    assert [n.name for n in g.nodes_by_op("Neg", "Placeholder", "Gone")] == ["x", "mul", "neg2"]
    assert [n.name for n in g.nodes_by_op("Identity")] == ["out"] and g.nodes_by_op("Gone") == []
    assert g.lint() == []
    g._by_op["Neg"]["ghost"] = None  # noqa: SLF001 - what a mutation that forgot the index would leave
    assert "the op index disagrees with the nodes" in g.lint()


def test_op_kinds_changes_exactly_when_an_op_appears_or_goes_and_nodes_among_follows_the_index():
    g = _graph()
    kinds = g.op_kinds()
    g.add_nodes([make_node("Mul", "mul2", ["x", "c"], attrs={"T": F32})])  # one more Mul: same set of ops
    g.update_node(make_node("Mul", "mul2", ["mul", "c"], attrs={"T": F32}))
    assert g.op_kinds() == kinds
    g.update_node(make_node("Neg", "mul2", ["mul"], attrs={"T": F32}))  # Neg appears
    assert g.op_kinds() != kinds
    kinds = g.op_kinds()
    g.remove_node("mul2")  # the last Neg goes
    assert g.op_kinds() != kinds and not g.has_op("Neg")
    names = ["out", "ghost", "mul", "x", "add", "mul"]  # in the caller's order, unknown names skipped
    assert [n.name for n in g.nodes_among(names, {"Mul", "Identity"})] == ["out", "mul", "mul"]
    assert [n.name for n in g.nodes_among(names, {"AddV2"})] == ["add"]
    assert g.nodes_among(names, {"Conv2D"}) == []
    g.update_node(make_node("Relu", "add", ["mul"], attrs={"T": F32}))  # op changed: the index follows
    assert g.nodes_among(names, {"AddV2"}) == [] and [n.name for n in g.nodes_among(names, {"Relu"})] == ["add"]
    loaded = Graph(g.to_graph_def())  # the index a load builds with the view
    assert _indexed_ops(loaded) == _scanned_ops(loaded) and loaded.index_problems() == []
    assert [n.name for n in loaded.nodes_by_op("Relu", "Mul")] == ["mul", "add"]  # graph order


def test_nodes_with_control_inputs_are_found_in_the_view_in_graph_order():
    g = _graph()
    assert g.nodes_with_control_inputs() == []
    g.update_node(make_node("Identity", "out", ["add", "^c"], attrs={"T": F32}))
    g.add_nodes([make_node("NoOp", "init", ["^x", "^mul"])])
    g.update_node(make_node("Mul", "mul", ["x", "c", "^x"], attrs={"T": F32}))  # (an earlier node, updated)
    assert [n.name for n in g.nodes_with_control_inputs()] == ["mul", "out", "init"]
    assert [n.name for n in g.nodes_with_control_inputs()] == [n.name for n in g if any(
        i.startswith("^") for i in n.input)]
    g.replace_control_uses("x", ["c"])  # (control edges moved, not dropped)
    g.update_node(make_node("Mul", "mul", ["x", "c"], attrs={"T": F32}))
    assert [n.name for n in g.nodes_with_control_inputs()] == ["out", "init"]


def test_a_graph_without_control_edges_is_known_as_such_until_one_is_made():
    from graphxform.core import view

    def fresh():
        g = _graph()
        assert not view.may_have_control_edges(g.nx) and g.index_problems() == []
        return g

    g = fresh()  # a control input stored by an update
    g.update_node(make_node("Identity", "out", ["add", "^c"], attrs={"T": F32}))
    assert [n.name for n in g.nodes_with_control_inputs()] == ["out"]
    g = fresh()  # by an added node
    g.add_nodes([make_node("NoOp", "init", ["^x"])])
    assert [n.name for n in g.nodes_with_control_inputs()] == ["init"]
    loaded = Graph(g.to_graph_def())  # a load sees control inputs
    assert view.may_have_control_edges(loaded.nx) and [n.name for n in loaded.nodes_with_control_inputs()] == ["init"]
    g = fresh()  # control uses moved onto a node that had none
    g.add_nodes([make_node("NoOp", "a", []), make_node("NoOp", "b", ["^a"])])
    g2 = Graph(g.to_graph_def())
    g2.replace_control_uses("a", ["x"])
    assert [n.name for n in g2.nodes_with_control_inputs()] == ["b"] and g2.node("b").input == ["^x"]
    # a stale flag is a problem lint reports
    g = fresh()
    g.nx.graph[view._CONTROL_SEEN] = False  # noqa: SLF001
    g._nodes["add"] = with_inputs(g.node("add"), [*g.node("add").input, "^x"])  # noqa: SLF001 - behind the view
    assert any("control" in p for p in g.index_problems())


def test_colocation_index_follows_updates_and_is_checked_by_lint():
    g = _graph()
    assert g.colocation_index() == {}
    g.update_node(with_colocation(g.node("mul"), ["c"]))
    assert g.colocation_index() == {"c": {"mul"}}
    g.update_node(with_colocation(g.node("mul"), []))
    assert g.colocation_index() == {} and g.lint() == []
    g._colocation["x"] = {"out"}  # noqa: SLF001 - stale
    assert "the colocation index disagrees with the nodes" in g.lint()


def test_colocation_index_follows_removals_and_reads_no_class_when_empty(monkeypatch):
    g = _graph()
    g.add_nodes([with_colocation(make_node("Neg", "neg", ["add"], attrs={"T": F32}), ["c"])])
    assert g.colocation_index() == {"c": {"neg"}}
    g.remove_node("neg")  # the only colocating node: the index empties
    assert g.colocation_index() == {} and g.lint() == []
    g.add_nodes([with_colocation(make_node("Neg", "neg", ["add"], attrs={"T": F32}), ["x"])])
    g.update_node(with_colocation(g.node("neg"), ["c"]))
    assert g.colocation_index() == {"c": {"neg"}}
    g.remove_unread(["neg"])
    assert g.colocation_index() == {} and g.lint() == []
    # Empty index: no node colocates, so removing or updating one reads no _class of the node that goes.
    read: list[str] = []
    real = indexes.colocation
    monkeypatch.setattr(indexes, "colocation", lambda node: read.append(node.name) or real(node))
    g.update_node(make_node("Relu", "out", ["add"], attrs={"T": F32}))
    g.add_nodes([make_node("Neg", "neg", ["out"], attrs={"T": F32})])
    g.remove_unread(["neg"])
    assert read == ["out", "neg"]  # (the new NodeDefs only)
    assert g.colocation_index() == {} and g.lint() == []


def test_op_index_stays_right_through_a_pipeline_run():
    """Many rewrites (identities removed, constants folded, duplicates merged): the index (built by the first
    rule's questions) still says what a scan says, and debug runs lint it after every rewrite."""

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [4], name="x")
        a = tf.identity(x) * (tf.constant(2.0) + tf.constant(1.0))
        b = tf.identity(x) * (tf.constant(2.0) + tf.constant(1.0))
        tf.identity(a + b * tf.constant(1.0), name="out")

    g = Graph(graph_def_of(build))
    g.protected.update({"x", "out"})
    g.has_op("Const")  # built before the run
    run_pipeline(g, build_pipeline("remove_identity merge_duplicates fold_constants remove_neutral_arithmetic "
                                   "strip_unused"), debug=True)
    assert _indexed_ops(g) == _scanned_ops(g) and g.index_problems() == []


def test_frame_facts_shortcut_and_recompute_after_a_frame_appears():
    g = _graph()
    facts = frame_facts(g)
    assert facts.in_frame == set() and facts.colocated_with == {} and facts.known == set(g.node_names)
    g.update_node(with_colocation(g.node("add"), ["c"]))
    assert frame_facts(g).colocated_with == {"c": ["add"]}  # the index says there is one: the full look

    def loop():
        x = tf.compat.v1.placeholder(tf.float32, [], name="x")
        tf.compat.v1.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0), [0, x])

    with control_flow_v1():
        lg = Graph(graph_def_of(loop))
    assert lg.has_op("Enter")
    in_frame = frame_facts(lg).in_frame
    assert {n for n in lg.names_by_op("Merge")} <= in_frame and "x" not in in_frame


def test_needed_set_is_the_walks():
    g = _graph()
    g.add_nodes([const("dead_c", np.float32(3)), make_node("Neg", "dead", ["dead_c"], attrs={"T": F32}),
                 const("target", np.float32(1)), make_node("Neg", "above_target", ["target"], attrs={"T": F32})])
    g.update_node(with_colocation(g.node("mul"), ["above_target"]))  # a kept node colocates with it: it stays
    roots = _roots(g, [])
    assert _needed(g, roots) == set(_Needs(g, roots).why) == set(g.node_names) - {"dead", "dead_c"}
    cut = frozenset({"mul"})  # what is above a cut input is needed only through other paths
    assert _needed(g, roots, cut) == set(_Needs(g, roots, cut).why)


def _rna_scan(g: Graph) -> list[str]:
    return [n.name for n in g if n.op in RemoveNeutralArithmetic.anchors and _may_match(g, n)]


def test_neutral_arithmetic_candidates_are_the_scans():
    rule = RemoveNeutralArithmetic()
    assert [n.name for n in rule.candidates(_graph(2.0))] == _rna_scan(_graph(2.0)) == []
    assert [n.name for n in rule.candidates(_graph(1.0))] == _rna_scan(_graph(1.0)) == ["mul"]  # not add: 1 + x
    assert [n.name for n in rule.candidates(_graph(0.0))] == _rna_scan(_graph(0.0)) == ["add"]  # not mul: 0 * x
    g = _graph(1.0)
    g.update_node(with_inputs(g.node("mul"), ["c", "x"]))  # either side of a Mul
    assert [n.name for n in rule.candidates(g)] == ["mul"]


def test_fold_batch_norm_candidates_without_an_anchor_op():
    rule = FoldBatchNorms()
    g = _graph()
    assert rule.candidates(g) == [] and rule.candidates(g, ["mul", "c"]) == []
    g.add_nodes([const("w", np.ones((2, 2), np.float32)),
                 make_node("MatMul", "mm", ["out", "w"], attrs={"T": F32})])
    assert [n.name for n in rule.candidates(g)] == ["mm"]


def test_context_frame_facts_at_one_node_is_kept_until_a_node_it_has_not_seen():
    from graphxform.engine.context import Context

    g = _graph()
    ctx = Context()
    facts = ctx.frame_facts_at(g, "add")
    assert ctx.frame_facts_at(g, "x") is facts and ctx.frame_facts(g, ["add"]) is facts  # one cache for both
    g.add_node(with_colocation(make_node("Identity", "later", ["x"], attrs={"T": F32}), ["c"]))
    again = ctx.frame_facts_at(g, "later")  # not seen when computed: computed again, on the graph as it is now
    assert again is not facts and "later" in again.known and again.colocated_with == {"c": ["later"]}
    assert ctx.frame_facts(g, ["later"]) is again
