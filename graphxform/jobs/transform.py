"""``transform``: load a model, freeze it, run rules to a fixpoint, optionally explain one, and write it.

>>> result = transform("frozen.pb", "out.pb", transforms="remove_nodes(op=Identity) fold_constants",
...                    inputs=["input"], outputs=["output"])                    # doctest: +SKIP
>>> result["nodes_before"], result["nodes_after"]                             # doctest: +SKIP

Rule names, parameters and ``out`` are checked before the model is loaded; ``out`` is written atomically
(:func:`graphxform.model.export.export`). The result is the JSON-ready dict ``graphxform transform --json``
prints.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from graphxform.core.errors import GraphxformError, RuleError
from graphxform.core.memory import trim
from graphxform.core.names import parse_input
from graphxform.engine.explain import explain
from graphxform.engine.pipeline import build_pipeline, describe_pipeline
from graphxform.engine.rule import BaseRule
from graphxform.engine.runner import ProgressFn, run_pipeline
from graphxform.model.export import check_target, export, no_signature_message, user_signatures
from graphxform.model.loader import load, require_assets
from graphxform.savedmodel.read import GRAPH_DEF_SUFFIXES


def explain_rule(spec: str) -> BaseRule:
    """The one rule ``spec`` names (with parameters if needed, e.g. ``quantize_weights(minimum_size=16)``)."""
    rules = build_pipeline(spec)
    if len(rules) != 1:
        raise RuleError("--explain takes one rule (with parameters if needed, e.g. "
                        f"'quantize_weights(minimum_size=16)'), got {spec!r}")
    return rules[0]


def transform(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None,
    *,
    transforms: str | None = None,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    tags: list[str] | str | None = None,
    rules_files: Iterable[str] = (),
    explain_spec: str | None = None,
    trace: str | os.PathLike[str] | None = None,
    force: bool = False,
    freeze: bool = True,
    max_steps: int | None = None,
    debug: bool = False,
    allow_no_signatures: bool = False,
    status: Callable[[str], None] = lambda text: None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Run ``transforms`` (default: the default pipeline) on the model at ``in_path`` and write it to ``out_path``.

    ``inputs``/``outputs`` (node or tensor names) are protected; for a frozen ``.pb``/``.pbtxt`` they also
    make its ``serving_default`` signature. ``explain_spec`` names a rule to explain on the result (``out_path``
    may then be ``None``: nothing is written). ``status(text)`` hears each step, ``progress`` each rule's turn.
    """
    rules = build_pipeline(transforms, rules_files=rules_files) if transforms is not None else \
        build_pipeline(None, rules_files=rules_files)
    explained_rule = explain_rule(explain_spec) if explain_spec else None
    t0 = time.perf_counter()
    status(f"loading {in_path}…")
    if Path(in_path).is_dir():  # a SavedModel brings its signatures: inputs/outputs only protect nodes
        model = load(in_path, tags=tags)
    else:
        model = load(in_path, tags=tags, inputs=list(inputs) or None, outputs=list(outputs) or None)
    sig = model.signatures.get("serving_default") if not Path(in_path).is_dir() else None
    for name in [*inputs, *outputs]:
        node, port, _ = parse_input(name)
        key = node if port == 0 else f"{node}_{port}"
        if node not in model.graph and sig is not None and (key in sig.inputs or key in sig.outputs):
            continue  # an output of an inlined function call: the signature names (and protects) its tensor
        if node not in model.graph:
            raise GraphxformError(f"{in_path}: --input-names/--output-names name {name!r}, which is not a node of "
                                  "the graph")
        model.graph.protected.add(node)
    if out_path is not None:
        require_assets(model)
        check_target(model, Path(out_path), force)
        if not allow_no_signatures and Path(out_path).suffix not in GRAPH_DEF_SUFFIXES and not user_signatures(model):
            raise GraphxformError(no_signature_message(model, Path(out_path)))
    frozen_now = False
    if not model.frozen and freeze:
        status("freezing variables…")
        model.freeze()
        frozen_now = True
    status("running rules…")
    report = run_pipeline(model.graph, rules, max_steps=max_steps, debug=debug, trace=trace, progress=progress)
    trim()  # what the run freed goes back to the system before the export (no gc.collect: a full collection
    # in the caller's process costs ~0.5 s when it holds a few million objects, as one that built a model does)
    explained = None
    if explained_rule is not None:
        status(f"explaining {explained_rule.name}…")
        explained = [{"node": n, "op": model.graph.get(n).op if model.graph.get(n) is not None else None,
                      "reason": r} for n, r in explain(model.graph, explained_rule)]
    written = None
    if out_path is not None:
        status(f"exporting {out_path}…")
        written = str(export(model, out_path, force=force, history=report.applied,
                             allow_no_signatures=allow_no_signatures))
    result: dict[str, Any] = {
        "input": str(in_path), "output": written, "transforms": describe_pipeline(rules), "frozen": frozen_now,
        **report.to_dict(), "total_seconds": round(time.perf_counter() - t0, 6), "trace": trace,
    }
    if explained is not None:
        result["explain"] = {"rule": repr(explained_rule), "nodes": explained}
    return result


__all__ = ["explain_rule", "transform"]
