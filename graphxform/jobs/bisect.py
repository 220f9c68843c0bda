"""``--bisect``: name the first rule application that changed a model's outputs.

When ``verify`` finds that a transformed model disagrees with its input, the
pipeline is replayed on the input to find the culprit:

1. the input is loaded, the verification inputs are read (or synthesized)
   before anything changes, and the model is frozen — this frozen, untouched
   graph gives the *reference* outputs;
2. the pipeline runs once in full, recording every applied rewrite
   (:attr:`graphxform.engine.report.RunReport.applied`): ``N`` rewrites;
3. a binary search over ``k`` in ``[0, N]``: a fresh copy of the frozen model is
   rewritten with the run capped at ``k`` rewrites (the runner's step limit),
   its signatures are run in TensorFlow on the same inputs, and compared with
   the reference (exact within ``rtol``/``atol``, or ``lossy`` checks for
   quantized pipelines). The first ``k`` whose outputs differ names rewrite
   ``k``: its rule, its anchor node, the nodes it matched, added, updated and
   removed, and the tensors it replaced.

The runner is deterministic for a given graph and rule list, so the capped
runs apply exactly the first ``k`` rewrites of the full run; each capped run
checks this against the recorded trace and refuses to guess when it does not
hold. About ``log2(N) + 2`` evaluations are made.

>>> result = bisect("fixtures/keras_bn", "remove_identity my_rule", rules_files=["my_rules.py"])  # doctest: +SKIP
>>> result.first_bad.rule, result.first_bad.anchor                                             # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphxform.core.errors import FixpointError, GraphxformError
from graphxform.engine.pipeline import build_pipeline, describe_pipeline
from graphxform.engine.report import AppliedRewrite
from graphxform.engine.rule import BaseRule
from graphxform.engine.runner import run_pipeline
from graphxform.jobs.compare import compare_arrays
from graphxform.jobs.inputs import verification_inputs
from graphxform.model.loader import load
from graphxform.model.model import Model
from graphxform.tf.runners import ModelRunner

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """The outputs after the first ``k`` rewrites, compared with the untransformed model."""

    k: int
    bad: bool
    failures: list[str] = field(default_factory=list)


@dataclass
class BisectResult:
    """What the bisection found: the first rewrite after which the outputs differ (``None`` if none does)."""

    source: str
    transforms: str
    steps: int
    first_bad: AppliedRewrite | None = None
    failures: list[str] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    @property
    def found(self) -> bool:
        return self.first_bad is not None

    def summary(self) -> str:
        """One line naming the culprit (or saying that none was found)."""
        if self.first_bad is None:
            return f"bisect: no rewrite of {self.transforms!r} changes the outputs of {self.source}" + (
                f" ({self.note})" if self.note else "")
        r = self.first_bad
        parts = [f"rule {r.rule!r}" + (f" at node {r.anchor!r}" if r.anchor else " (global)")]
        for label, names in (("matched", r.matched), ("added", r.added), ("updated", r.updated),
                             ("removed", r.removed)):
            if names:
                parts.append(f"{label} {_names(names)}")
        if r.replaced:
            parts.append("replaced " + ", ".join(f"{a} -> {b}" for a, b in list(r.replaced.items())[:4]))
        return (f"bisect: rewrite {r.step} of {self.steps} changed the outputs: " + "; ".join(parts)
                + (f" — {'; '.join(self.failures[:3])}" if self.failures else ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "transforms": self.transforms,
            "steps": self.steps,
            "first_bad": self.first_bad.to_dict() if self.first_bad is not None else None,
            "failures": list(self.failures),
            "evaluations": [{"k": e.k, "bad": e.bad, "failures": e.failures[:5]} for e in self.evaluations],
            "seconds": round(self.seconds, 3),
            "note": self.note,
        }


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', …' if len(names) > limit else ''}]"




class _Replayer:
    """Runs the first ``k`` rewrites of the pipeline on a copy of the frozen model and compares its outputs."""

    def __init__(self, frozen: Model, rules: list[BaseRule], feeds: Mapping[str, Mapping[str, Any]], *, rtol: float,
                 atol: float, lossy: bool) -> None:
        self.frozen = frozen
        self.rules = rules
        self.feeds = feeds
        self.rtol, self.atol, self.lossy = rtol, atol, lossy
        self.reference = self._outputs(frozen.copy(), "the untransformed model")
        self.trace: list[AppliedRewrite] = []
        self.cache: dict[int, Evaluation] = {}

    def _outputs(self, model: Model, what: str) -> dict[tuple[str, str], Any]:
        runner = ModelRunner(model, label=what)
        try:
            out: dict[tuple[str, str], Any] = {}
            for key, values in self.feeds.items():
                if key in runner.signatures:
                    for name, value in runner.run(key, values).items():
                        out[(key, name)] = value
            return out
        finally:
            runner.close()

    def rewrite(self, k: int | None) -> tuple[Model, list[AppliedRewrite]]:
        """A copy of the frozen model after the first ``k`` rewrites (all of them for ``None``)."""
        model = self.frozen.copy()
        if k == 0:
            return model, []
        try:
            report = run_pipeline(model.graph, self.rules, max_steps=None if k is None else k - 1)
            applied = report.applied
        except FixpointError as exc:
            report = getattr(exc, "report", None)
            if report is None or k is None or len(report.applied) != k:
                raise
            applied = report.applied
        return model, list(applied)

    def evaluate(self, k: int) -> Evaluation:
        if k in self.cache:
            return self.cache[k]
        model, applied = self.rewrite(k)
        expected = self.trace[:k]
        same = len(applied) == len(expected) and all(
            (a.rule, a.anchor, a.removed, a.added) == (b.rule, b.anchor, b.removed, b.added)
            for a, b in zip(applied, expected))
        if not same:
            raise GraphxformError(
                f"bisect: replaying {k} rewrites did not repeat the recorded run (rewrite {len(applied)} differs); "
                "a rule is not deterministic, so the culprit cannot be named — run with --trace and compare")
        failures: list[str] = []
        try:
            got = self._outputs(model, f"{self.frozen.source} after {k} rewrites")
        except GraphxformError as exc:
            failures.append(f"the model no longer runs: {exc}")
            got = {}
        for (key, name), ref in self.reference.items():
            if failures and not got:
                break
            if (key, name) not in got:
                failures.append(f"{key}/{name} is missing")
                continue
            c = compare_arrays(key, name, ref, got[(key, name)], rtol=self.rtol, atol=self.atol, lossy=self.lossy)
            bad = c.broken if self.lossy else (c.broken or not c.within_tolerance)
            if bad:
                detail = c.note or (f"max abs diff {c.max_abs_diff:.3g}, max rel diff {c.max_rel_diff:.3g}"
                                    if c.max_abs_diff is not None else f"{c.mismatches}/{c.size} values differ")
                failures.append(f"{key}/{name}: {detail}")
        ev = Evaluation(k, bool(failures), failures)
        self.cache[k] = ev
        log.info("bisect: after %d rewrites: %s", k, "; ".join(failures) if failures else "outputs match")
        return ev


def bisect(
    source: Model | str | os.PathLike[str],
    transforms: str | list[str] | None = None,
    *,
    rules_files: Iterable[str | os.PathLike[str]] = (),
    quantize: str = "none",
    inputs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    lossy: bool = False,
    tags: list[str] | str | None = None,
    graph_inputs: list[str] | str | None = None,
    graph_outputs: list[str] | str | None = None,
    synthesize_missing: bool = False,
    status: Callable[[str], None] | None = None,
) -> BisectResult:
    """Find the first rewrite of ``transforms`` (default: the default pipeline for ``quantize``) that changes the
    outputs of ``source`` (a path or a loaded :class:`Model`, which is not modified).

    ``rules_files`` are imported first, so user rules can be named in ``transforms``. ``inputs`` are the
    verification inputs (``.npz`` path or ``{signature: {input: array}}``); by default they are synthesized from the
    model; inputs they leave out are an error unless ``synthesize_missing``. ``status(text)`` hears each step
    (loading, replaying, each evaluation). Raises :class:`GraphxformError` when the model has no signatures or
    cannot be run.
    """
    t0 = time.perf_counter()
    say = status or (lambda text: None)
    rules = (build_pipeline(transforms, rules_files=[str(p) for p in rules_files]) if transforms is not None
             else build_pipeline(None, quantize=quantize, rules_files=[str(p) for p in rules_files]))
    if isinstance(source, Model):
        model = source.copy()
    else:
        names: dict[str, Any] = {}
        if graph_inputs or graph_outputs:
            names = {"inputs": graph_inputs, "outputs": graph_outputs}
        say(f"bisect: loading {source}")
        model = load(source, tags=tags, **names)
    label = str(model.source)
    if not [k for k in model.signatures if not k.startswith("__")]:
        raise GraphxformError(f"{label}: has no signatures, so there are no outputs to compare; name the inputs "
                              "and outputs of a frozen graph (--input-names/--output-names)")
    say("bisect: preparing inputs")
    feeds = verification_inputs(model, inputs, synthesize_missing=synthesize_missing)
    if not model.frozen:
        say("bisect: freezing variables")
        model.freeze()
    result = BisectResult(label, describe_pipeline(rules), 0)
    replayer = _Replayer(model, rules, feeds, rtol=rtol, atol=atol, lossy=lossy)
    say("bisect: running the pipeline once to record its rewrites")
    _, replayer.trace = replayer.rewrite(None)
    n = result.steps = len(replayer.trace)
    say(f"bisect: running the model before the first of {n} rewrites")
    start = replayer.evaluate(0)
    if start.bad:
        raise GraphxformError(f"{label}: two runs of the untransformed model disagree ({'; '.join(start.failures)}); "
                              "its outputs are not deterministic (random ops?), so bisect cannot work")
    say(f"bisect: running the model after all {n} rewrites")
    end = replayer.evaluate(n)
    if not end.bad:
        result.note = (f"after all {n} rewrites the outputs still match; the difference comes from elsewhere "
                       "(export, the inputs, or another pipeline)")
    else:
        lo, hi = 0, n  # outputs match after lo rewrites, differ after hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            say(f"bisect: the first change is between rewrites {lo + 1} and {hi} of {n}; running after {mid}")
            if replayer.evaluate(mid).bad:
                hi = mid
            else:
                lo = mid
        result.first_bad = replayer.trace[hi - 1]
        result.failures = replayer.evaluate(hi).failures
    result.evaluations = [replayer.cache[k] for k in sorted(replayer.cache)]
    result.seconds = time.perf_counter() - t0
    log.info(result.summary())
    return result


__all__ = ["BisectResult", "Evaluation", "bisect"]
