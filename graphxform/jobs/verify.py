"""``verify``: run two models on the same inputs and compare every signature output.

The reference runs once (:mod:`graphxform.tf.runners`): a SavedModel directory through TensorFlow's TF1 loader
in a session (variables restored, init op run, assets fed — what serving does; ``tf.saved_model.load`` for a
TF2 model the TF1 loader cannot run), a :class:`~graphxform.model.model.Model` or a ``.pb``/``.pbtxt`` in one
session (frozen first if it keeps variables). A candidate path is loaded by each of TensorFlow's loaders
(:mod:`graphxform.tf.loaders`), and every signature runs through each on the same inputs
(:mod:`graphxform.jobs.inputs`); each output is compared as :mod:`graphxform.jobs.compare` says.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphxform.core.errors import GraphxformError, ModelLoadError, SignatureError, VerificationError
from graphxform.jobs.compare import DEFAULT_ATOL, DEFAULT_RTOL, OutputComparison, compare_arrays
from graphxform.jobs.inputs import batch_of, prepare_inputs
from graphxform.model.loader import load
from graphxform.model.model import Model
from graphxform.savedmodel.read import is_saved_model_dir
from graphxform.tf.loaders import LOADER_KEYS, LoaderResult, open_loaders
from graphxform.tf.loaders import SAVED_MODEL_LOADERS as LOADER_NAMES
from graphxform.tf.runners import (
    ModelRunner,
    Runner,
    SavedModelRunner,
    TF2SavedModelRunner,
    load_op_libraries,
    needs_object_graph,
)

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """All comparisons of a verification run; ``ok`` tells whether it passed in its mode."""

    reference: str
    candidate: str
    rtol: float
    atol: float
    lossy: bool
    inputs_source: str
    outputs: list[OutputComparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    batch: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: One entry per loader that ran the candidate (graphxform.tf.loaders.LoaderResult).
    loaders: list[Any] = field(default_factory=list)
    #: Signatures a loader lists for the candidate that the reference does not have.
    extra: list[str] = field(default_factory=list)
    #: Inputs the given inputs left out that were synthesized (asked for with synthesize_missing).
    synthesized: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failures(self) -> list[OutputComparison]:
        if self.lossy:
            return [c for c in self.outputs if c.broken]
        return [c for c in self.outputs if not c.within_tolerance or c.broken]

    @property
    def refused(self) -> list[Any]:
        """The loaders that refused the candidate (or failed running one of its signatures)."""
        return [r for r in self.loaders if r.error]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.failures and not self.refused and not self.extra

    def loader_summary(self) -> list[dict[str, Any]]:
        """Per loader: loaded or not, TensorFlow's message, outputs compared and their largest differences."""
        rows = []
        for r in self.loaders:
            mine = [c for c in self.outputs if c.loader == r.key]
            abs_ = [c.max_abs_diff for c in mine if c.max_abs_diff is not None]
            rel = [c.max_rel_diff for c in mine if c.max_rel_diff is not None]
            bad = [c for c in mine if c.broken or (not self.lossy and not c.within_tolerance)]
            rows.append({**r.to_dict(), "outputs": len(mine), "outputs_ok": len(mine) - len(bad),
                         "max_abs_diff": max(abs_) if abs_ else None, "max_rel_diff": max(rel) if rel else None,
                         "ok": not r.error and not bad})
        return rows

    @property
    def max_abs_diff(self) -> float:
        vals = [c.max_abs_diff for c in self.outputs if c.max_abs_diff is not None]
        return max(vals) if vals else 0.0

    @property
    def max_rel_diff(self) -> float:
        vals = [c.max_rel_diff for c in self.outputs if c.max_rel_diff is not None]
        return max(vals) if vals else 0.0

    @property
    def min_class_agreement(self) -> float | None:
        vals = [c.class_agreement for c in self.outputs if c.class_agreement is not None]
        return min(vals) if vals else None

    def summary(self) -> str:
        n_out = len({(c.signature, c.output) for c in self.outputs})
        loaders = [r.key for r in self.loaders if not r.error]
        n_sig = len({c.signature for c in self.outputs})
        parts = [f"{n_out} output{'s' * (n_out != 1)} of {n_sig} signature{'s' * (n_sig != 1)}"
                 + (f" × {len(loaders)} loader{'s' * (len(loaders) != 1)} ({', '.join(loaders)})"
                    if self.loaders else ""),
                 f"max abs diff {self.max_abs_diff:.3g}", f"max rel diff {self.max_rel_diff:.3g}"]
        if self.min_class_agreement is not None:
            parts.append(f"class agreement ≥ {100 * self.min_class_agreement:.1f}%")
        return ", ".join(parts)

    def failure_message(self) -> str:
        what = [f"{r.description} failed: {r.error}" for r in self.refused]
        what.extend(self.extra)
        what.extend(self.missing)
        grouped: dict[tuple[str, str, str], list[str]] = {}  # the same failure in several loaders: said once
        for c in self.failures:
            detail = c.note or (f"max abs diff {c.max_abs_diff:.3g}, max rel diff {c.max_rel_diff:.3g}"
                                if c.max_abs_diff is not None else f"{c.mismatches}/{c.size} values differ")
            grouped.setdefault((c.signature, c.output, detail), []).append(c.loader)
        n_loaders = len([r for r in self.loaders if not r.error])
        for (sig, out, detail), names in grouped.items():
            where = f" [{', '.join(names)}]" if any(names) and len(names) < max(n_loaders, 2) else ""
            what.append(f"{sig}/{out}{where}: {detail}")
        mode = "lossy checks" if self.lossy else f"rtol={self.rtol:g}, atol={self.atol:g}"
        return (f"{self.candidate} disagrees with {self.reference} ({mode}): " + "; ".join(what[:8])
                + (f"; … {len(what) - 8} more" if len(what) > 8 else ""))

    def hint(self) -> str:
        """What to try next, when it is clear: ``--lossy`` when only tolerances failed in exact mode."""
        if self.lossy or self.refused or self.extra or self.missing or not self.failures:
            return ""
        if all(not c.broken for c in self.failures):
            return ("if the candidate's weights are quantized (optimize's default --quantize int8, or float16), "
                    "compare with --lossy; otherwise loosen --rtol/--atol or find the rewrite with --bisect")
        return ""

    def raise_for_failure(self) -> None:
        """Raise :class:`VerificationError` unless the report passed."""
        if not self.ok:
            raise VerificationError(self.failure_message())

    def _order(self, c: OutputComparison) -> tuple[str, str, int]:
        keys = [r.key for r in self.loaders]
        return c.signature, c.output, keys.index(c.loader) if c.loader in keys else len(keys)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: outputs sorted by signature, output and loader."""
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "ok": self.ok,
            "mode": "lossy" if self.lossy else "exact",
            "rtol": self.rtol,
            "atol": self.atol,
            "inputs": self.inputs_source,
            "batch": self.batch,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "min_class_agreement": self.min_class_agreement,
            "missing": self.missing,
            "extra": self.extra,
            "synthesized": self.synthesized,
            "loaders": self.loader_summary(),
            "outputs": [c.to_dict() for c in sorted(self.outputs, key=self._order)],
            "seconds": round(self.seconds, 3),
        }


def open_runner(model: Model | str | os.PathLike[str], tags: list[str] | None = None) -> Runner:
    """A runner for a Model object, a SavedModel directory or a ``.pb``/``.pbtxt`` file."""
    if isinstance(model, Model):
        return ModelRunner(model)
    path = Path(model)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    if is_saved_model_dir(path):
        load_op_libraries(path, tags)
        if needs_object_graph(path, tags):
            return TF2SavedModelRunner(path, tags)
        return SavedModelRunner(path, tags)
    return ModelRunner(load(path, tags=tags), label=str(path))



def _reference_model(reference: Model | str | os.PathLike[str], runner: Runner,
                     tags: list[str] | None) -> Model | None:
    if isinstance(reference, Model):
        return reference
    if runner.model is not None:
        return runner.model
    try:
        return load(reference, tags=tags)
    except (GraphxformError, ImportError) as exc:
        log.warning("%s: could not be loaded for input synthesis: %s", reference, exc)
        return None


def verify(
    reference: Model | str | os.PathLike[str],
    candidate: Model | str | os.PathLike[str],
    *,
    inputs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    examples: str | os.PathLike[str] | None = None,
    signatures: Iterable[str] | str | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    lossy: bool = False,
    tags: list[str] | None = None,
    batch: int = 4,
    seed: int = 0,
    synthesis_model: Model | None = None,
    loaders: Iterable[str] | None = None,
    synthesize_missing: bool = False,
    progress: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> VerifyReport:
    """Run ``reference`` and ``candidate`` on the same inputs; compare every output of every signature.

    ``reference``/``candidate`` are :class:`Model` s or paths (SavedModel
    directory, ``.pb``/``.pbtxt``). The reference runs once (a SavedModel
    through the TF1 loader, anything else through :mod:`graphxform.tf.session`). A
    candidate *path* is loaded by each of TensorFlow's loaders
    (:mod:`graphxform.tf.loaders`: ``c++`` — TF Serving's ``LoadSavedModel``,
    ``tf2`` — ``tf.saved_model.load``, ``tf1`` — the TF1 loader; or their
    GraphDef counterparts), every signature runs through each on the same
    inputs, and a loader that refuses the model or a signature fails the
    verification with TensorFlow's message. ``loaders`` picks a subset. A
    candidate :class:`Model` runs through :mod:`graphxform.tf.session` only.
    ``synthesis_model`` is the model whose graph is read to synthesize inputs
    (default: the reference). Given ``inputs``/``examples`` are checked against
    the reference's signatures first; inputs they leave out are an error unless
    ``synthesize_missing`` (:func:`graphxform.jobs.inputs.prepare_inputs`).
    ``progress(stage, status, info)`` hears each step (``info["label"]`` says it
    in words): loading each model, and each signature in each loader.
    Returns a :class:`VerifyReport`; call ``raise_for_failure()`` to turn a
    failed comparison into :class:`VerificationError`.
    """
    t0 = time.perf_counter()

    def step(stage: str, label: str) -> None:
        if progress is not None:
            progress(stage, "step", {"label": label})

    wanted_loaders = list(loaders) if loaders is not None else list(LOADER_KEYS)
    unknown_loaders = [k for k in wanted_loaders if k not in LOADER_KEYS]
    if unknown_loaders:
        raise GraphxformError(f"unknown loader {', '.join(unknown_loaders)}; choose from {', '.join(LOADER_KEYS)}")
    step("verify:reference", f"loading {reference if not isinstance(reference, Model) else 'the reference'}")
    ref_runner = open_runner(reference, tags)
    cands: list[tuple[Any, Runner | None]] = []
    try:
        label_a = ref_runner.label
        keys = sorted(ref_runner.signatures)
        if signatures is not None:
            wanted = [signatures] if isinstance(signatures, str) else list(signatures)
            unknown = [k for k in wanted if k not in ref_runner.signatures]
            if unknown:
                raise SignatureError(f"{label_a}: no signature {', '.join(map(repr, unknown))}; it has "
                                     f"{', '.join(sorted(ref_runner.signatures))}")
            keys = sorted(dict.fromkeys(wanted))
        if not keys:
            raise SignatureError(f"{label_a}: has no signatures, so there is nothing to compare; a frozen GraphDef "
                                 "needs its inputs and outputs named (graphxform.load(path, inputs=…, outputs=…))")
        cache: list[Model | None] = []

        def model() -> Model | None:  # loaded only when inputs must be synthesized or examples routed
            if not cache:
                cache.append(synthesis_model if synthesis_model is not None
                             else _reference_model(reference, ref_runner, tags))
            return cache[0]

        # The inputs are checked before the candidate is loaded: a bad --inputs file fails fast.
        step("verify:inputs", "preparing inputs")
        prepared = prepare_inputs(ref_runner.signatures, keys, model=model, inputs=inputs, examples=examples,
                                  batch=batch, seed=seed, synthesize_missing=synthesize_missing)
        if isinstance(candidate, Model):
            runner = ModelRunner(candidate)
            cands = [(LoaderResult("graphxform", "graphxform.tf.session (import_graph_def + Session)", True,
                                   signatures=sorted(runner.signatures)), runner)]
        else:
            if not Path(candidate).exists():
                raise ModelLoadError(f"{candidate}: no such file or directory")
            for key in wanted_loaders:  # one at a time, so that progress can name each
                step(f"verify:load:{key}", f"loading the candidate with {key} ({LOADER_NAMES.get(key, key)})")
                cands.extend(open_loaders(candidate, tags, [key]))
        label_b = str(candidate) if not isinstance(candidate, Model) else (cands[0][1].label if cands[0][1] else "")
        report = VerifyReport(label_a, label_b, rtol, atol, lossy, prepared.source)
        report.synthesized = prepared.synthesized
        report.loaders = [result for result, _ in cands]
        _compare(report, ref_runner, cands, keys, prepared.feeds, step)
        report.seconds = time.perf_counter() - t0
        return report
    finally:
        ref_runner.close()
        for _, runner in cands:
            if runner is not None:
                runner.close()


def _compare(report: VerifyReport, ref_runner: Runner, cands: list[tuple[Any, Runner | None]], keys: list[str],
             feeds: dict[str, dict[str, Any]], step: Callable[[str, str], None]) -> None:
    """Run every signature of ``keys`` in the reference and in each loaded candidate; fill ``report``."""
    label_a, label_b = report.reference, report.candidate
    loaded = [(result, runner) for result, runner in cands if runner is not None]
    present = [k for k in keys if any(k in runner.signatures for _, runner in loaded)] or keys

    def where(names: list[str]) -> str:  # which loaders, unless it is all that loaded
        return "" if len(names) == len(loaded) else f" ({', '.join(names)})"

    for k in keys:
        lacking = [result.key for result, runner in loaded if k not in runner.signatures]
        if lacking:
            report.missing.append(f"signature {k!r} is missing in {label_b}{where(lacking)}")
    for result, runner in loaded:
        listed = result.signatures or sorted(runner.signatures)
        report.extra.extend(f"{result.description} lists signature {k!r}, which {label_a} does not have"
                            for k in listed if k not in ref_runner.signatures)
    for key in present:
        values = feeds[key]
        report.batch[key] = batch_of(values) or 1
        step(f"verify:run:{key}", f"signature {key}: running the reference")
        try:
            ref_out = ref_runner.run(key, values)
        except (ValueError, TypeError) as exc:  # TensorFlow refusing a feed: the inputs do not fit
            raise GraphxformError(f"{label_a}: signature {key!r} cannot run on the {report.inputs_source} "
                                  f"inputs: {exc}") from exc
        lacking_out: dict[str, list[str]] = {}
        for result, runner in loaded:
            if key not in runner.signatures or result.error:
                continue
            cand_sig = runner.signatures[key]
            extra = set(cand_sig.inputs) - set(values)
            if extra:
                report.missing.extend(f"{label_b}: signature {key!r} has input {k!r}, which {label_a}'s has not"
                                      for k in sorted(extra))
                continue
            t1 = time.perf_counter()
            step(f"verify:run:{key}:{result.key}", f"signature {key}: running the candidate in {result.key} "
                                                   f"({result.description})")
            try:
                got = runner.run(key, {k: v for k, v in values.items() if k in cand_sig.inputs})
            except GraphxformError as exc:
                result.error = f"signature {key!r}: {exc}"
                continue
            finally:
                result.seconds += time.perf_counter() - t1
            for out_key in sorted(ref_out):
                if out_key not in got:
                    lacking_out.setdefault(out_key, []).append(result.key)
                    continue
                c = compare_arrays(key, out_key, ref_out[out_key], got[out_key], rtol=report.rtol,
                                   atol=report.atol, lossy=report.lossy)
                c.loader = result.key
                report.outputs.append(c)
        report.missing.extend(f"output {key}/{out_key} is missing in {label_b}{where(names)}"
                              for out_key, names in sorted(lacking_out.items()))


__all__ = ["VerifyReport", "open_runner", "verify"]
