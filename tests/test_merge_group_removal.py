"""Removing merged duplicates as a group (``Replacement.remove_all``): the uses of one duplicate by another are
not moved first, and the result is the one of moving every use and then removing (graph, report, signatures)."""
from __future__ import annotations

from pathlib import Path

import graphxform.transforms.merge_duplicates as md
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, graph_def_of, run
from graphxform.transforms.merge_duplicates import MergeDuplicates
from tensorflow.core.framework import types_pb2

from graphxform.core.errors import GraphError, RuleError
from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.rule import Replacement
from graphxform.engine.runner import run_pipeline
from graphxform.model.model import Model, Signature

X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
OUTPUTS = {"n2d": "n2d:0", "a1": "a1:0", "n1": "n1:0", "s1d": "s1d:0", "t": "t:0"}


def _build() -> None:
    """Duplicates reading duplicates (``m1d`` reads ``c1d``; ``n2d``, of another group, reads ``m1d``), a
    duplicate named by a signature output (``n2d``), control consumers that are duplicates (``s1d``) and not
    (``n1``), and a node reading duplicates that is none (``a1``)."""
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    c1 = tf.constant(2.0, name="c1")
    c1d = tf.constant(2.0, name="c1d")
    m1 = tf.math.multiply(x, c1, name="m1")
    m1d = tf.math.multiply(x, c1d, name="m1d")
    tf.math.add(m1d, c1d, name="a1")
    with tf.control_dependencies([c1d]):
        tf.math.negative(m1d, name="n1")
    tf.math.negative(m1, name="n2")
    tf.math.negative(m1d, name="n2d")
    with tf.control_dependencies([c1]):
        s1 = tf.math.subtract(m1, x, name="s1")
    with tf.control_dependencies([c1d]):
        s1d = tf.math.subtract(m1d, x, name="s1d")
    tf.math.add(s1, s1d, name="t")


def _model() -> Model:
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [2, 3])},
                    outputs={k: TensorSpec(t, types_pb2.DT_FLOAT, [2, 3]) for k, t in OUTPUTS.items()})
    return Model(Graph(graph_def_of(_build)), {"serving_default": sig}, Path("mem"), "graph_def")


def _without_group_removal(**kw: object) -> Replacement:
    return Replacement(**{**kw, "remove_all": False})  # type: ignore[arg-type]


@pytest.mark.parametrize("group", [True, False])
def test_merge_gives_the_same_graph_report_and_outputs_with_and_without_group_removal(group, monkeypatch):
    reference = _model()
    before = run(reference.graph, {"x:0": X}, list(OUTPUTS.values()))
    monkeypatch.setattr(md, "Replacement", _without_group_removal)  # every use moved, then the duplicates removed
    ref_report = run_pipeline(reference.graph, [MergeDuplicates()])
    monkeypatch.undo()

    model = _model()
    if not group:  # the rule's own replacement, but applied the general way: the two must agree
        monkeypatch.setattr(md, "Replacement", _without_group_removal)
    report = run_pipeline(model.graph, [MergeDuplicates()])
    assert model.graph.to_graph_def().SerializeToString(deterministic=True) == \
        reference.graph.to_graph_def().SerializeToString(deterministic=True)
    assert [(a.rule, list(a.removed), list(a.replaced.items())) for a in report.applied] == \
        [(a.rule, list(a.removed), list(a.replaced.items())) for a in ref_report.applied]
    assert report.applied[0].removed == ["c1d", "m1d", "n2d", "s1d"]
    outputs = {k: s.name for k, s in model.signatures["serving_default"].outputs.items()}
    assert outputs == {"n2d": "n2:0", "a1": "a1:0", "n1": "n1:0", "s1d": "s1:0", "t": "t:0"}
    assert model.graph.lint() == []
    g = model.graph
    assert list(g.node("a1").input) == ["m1", "c1"] and list(g.node("n1").input) == ["m1", "^c1"]
    assert list(g.node("t").input) == ["s1", "s1"]
    assert_close(run(g, {"x:0": X}, [outputs[k] for k in OUTPUTS]), before)


def test_group_removal_leaves_the_inputs_of_removed_duplicates_alone():
    g = _model().graph
    m1d = g.node("m1d")
    with g.recording() as delta:
        g.replace_uses({"c1d:0": "c1:0", "m1d:0": "m1:0", "n2d:0": "n2:0"}, skip={"c1d", "m1d", "n2d"})
        g.replace_control_uses("c1d", ["c1"], skip={"c1d", "m1d", "n2d"})
        g.remove_group(["c1d", "m1d", "n2d"])
    assert delta.before["m1d"] is m1d  # never copied with a new input: it went as it was
    assert {"c1d", "m1d", "n2d"}.isdisjoint(g.node_names) and g.lint() == []
    assert list(g.node("a1").input) == ["m1", "c1"]  # a reader outside the group was rewired
    assert list(g.node("n1").input) == ["m1", "^c1"] and list(g.node("s1d").input) == ["m1", "x", "^c1"]


def test_group_removal_refuses_a_node_read_from_outside_the_group_before_removing_any():
    g = _model().graph
    with pytest.raises(GraphError, match="'c1d': still consumed by a1, n1, s1d"):
        g.remove_group(["c1d", "m1d", "n2d"])
    assert {"c1d", "m1d", "n2d"} <= set(g.node_names)
    g.protected.add("n2d")
    with pytest.raises(GraphError, match="'n2d': it is protected"):
        g.remove_group(["n2d"])


@pytest.mark.parametrize("broken", ["unmoved use", "protected"])
def test_a_promise_not_kept_is_an_invalid_rewrite(broken):
    g = _model().graph
    # n2d also reads m1d, but a1, n1 and s1d read it and are not moved: m1d cannot go.
    rep = Replacement(remove=["c1d", "m1d"], replace={"c1d:0": "c1:0"}, remove_all=True)
    if broken == "protected":
        g.protected.add("c1d")
        rep = Replacement(remove=["c1d", "x"], replace={"c1d:0": "c1:0"}, replace_control={"c1d": ["c1"]},
                          remove_all=True)

    class Bad(MergeDuplicates):
        name = "bad_merge"

        def run(self, graph, ctx):
            return [rep]

    with pytest.raises(RuleError, match="bad_merge.*invalid rewrite.*cannot remove node"):
        run_pipeline(g, [Bad()])


def test_without_the_promise_nodes_still_read_are_kept():
    g = _model().graph
    run_pipeline(g, [_OneReplacement(Replacement(remove=["c1d", "m1d"], replace={"c1d:0": "c1:0"}))])
    assert "c1d" in g and "m1d" in g and g.lint() == []  # (c1d is still read by control edges)


class _OneReplacement(MergeDuplicates):
    name = "one_replacement"

    def __init__(self, rep: Replacement) -> None:
        super().__init__()
        self.rep = rep

    def run(self, graph, ctx):
        return [self.rep] if self.rep.remove[0] in graph else []


def test_uses_of_a_duplicate_by_duplicates_are_not_named_in_the_replacement():
    """``cd`` is read only by ``md`` and ``md`` only by ``nd``, all three duplicates: only ``nd`` 's use by ``out``
    is moved (named in the replacement); the graph is the one moving every use gives."""
    def build() -> None:
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        m = tf.math.multiply(x, tf.constant(2.0, name="c"), name="m")
        md = tf.math.multiply(x, tf.constant(2.0, name="cd"), name="md")
        tf.math.add(tf.math.negative(m, name="n"), tf.math.negative(md, name="nd"), name="out")

    g = Graph(graph_def_of(build))
    before = run(g, {"x:0": X}, ["out:0"])
    report = run_pipeline(g, [MergeDuplicates()])
    (rec,) = report.applied
    assert list(rec.removed) == ["cd", "md", "nd"] and dict(rec.replaced) == {"nd:0": "n:0"}
    assert list(g.node("out").input) == ["n", "n"] and g.lint() == []
    assert_close(run(g, {"x:0": X}, ["out:0"]), before)
