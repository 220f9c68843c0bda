"""Shared by the rule tests: run rules on a small graph, check TensorFlow gives the same outputs, explain refusals."""
from __future__ import annotations

from pathlib import Path

from conftest import assert_close, run
from tensorflow.core.framework import types_pb2

from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.engine.runner import RunReport, run_pipeline
from graphxform.model.model import Model, Signature
from graphxform.tf.session import run_signature


def transformed(gd, feeds: dict, fetches: list[str], rules: list, protected: list[str] | None = None,
                rtol: float = 1e-6) -> tuple[Graph, RunReport]:
    """Run ``rules`` to their fixpoint on ``gd`` (the fetched nodes protected unless ``protected`` is given), check
    the graph lints clean and gives TensorFlow's outputs of before; return (graph, report)."""
    before = run(gd, feeds, fetches)
    names = protected if protected is not None else [f.split(":")[0] for f in fetches]
    g = Graph(gd, protected=names)
    report = run_pipeline(g, rules, debug=True)
    assert g.lint() == []
    assert_close(run(g, feeds, fetches), before, rtol=rtol)
    return g, report


def reason(rule, graph: Graph, name: str) -> str | None:
    """Why ``rule`` does not fire at node ``name`` (the match's or the check's reason); ``None``: it fires."""
    m = rule.match(graph, graph.node(name))
    return m if isinstance(m, str) else rule.check(m)


def model_of(gd, inputs: dict[str, str], outputs: dict[str, str]) -> Model:
    """A one-signature (``serving_default``) float model over ``gd``: {key: tensor name} for inputs and outputs."""
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={k: TensorSpec(t, types_pb2.DT_FLOAT, None) for k, t in inputs.items()},
                    outputs={k: TensorSpec(t, types_pb2.DT_FLOAT, None) for k, t in outputs.items()})
    return Model(Graph(gd), {"serving_default": sig}, Path("mem"), "graph_def")


def signature_run(model: Model, rules: list, feeds: dict) -> tuple[dict, dict]:
    """(outputs before, outputs after) of ``serving_default`` around running ``rules``; the graph lints clean."""
    before = run_signature(model, "serving_default", feeds)
    run_pipeline(model.graph, rules)
    assert model.graph.lint() == []
    return before, run_signature(model, "serving_default", feeds)


__all__ = ["model_of", "reason", "signature_run", "transformed"]
