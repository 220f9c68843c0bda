"""``optimize``: the end-to-end job — load, freeze, transform, export, verify — as one library call.

>>> report = optimize("fixtures/estimator_dnn", "/tmp/dnn_opt")            # doctest: +SKIP
>>> report.size_after / report.size_before, report.verification.ok       # doctest: +SKIP

Steps (each reported to ``progress``):

1. **load** the input (any format :func:`graphxform.load` reads);
2. **inputs**: the verification inputs are read (``inputs=``) or synthesized
   from the loaded model (:mod:`graphxform.tf.synth`) before anything changes;
3. **freeze**: variables become constants;
4. **transform**: the default pipeline (:data:`graphxform.engine.pipeline.FLOAT_PIPELINE`:
   ``prune_control_deps, remove_identity, merge_duplicates, strip_unused,
   fold_constants, fold_batch_norms`` and the other simplifications) and then
   ``quantize_weights(dtype=…)`` unless ``quantize="none"`` — or the rules
   given in ``transforms`` (GTT syntax accepted), which replace the default
   list entirely (quantization included);
5. **export** to ``out`` atomically (:func:`graphxform.model.export.export`), every
   node checked against its ``OpDef`` first (a SavedModel without signatures
   is refused unless ``allow_no_signatures``);
6. **verify**: the input runs in TensorFlow's TF1 SavedModel loader, the
   output is loaded by each of TensorFlow's loaders (TF Serving's C++
   ``LoadSavedModel``, ``tf.saved_model.load``, the TF1 loader; see
   :mod:`graphxform.tf.loaders`), and every signature runs through each on the
   same inputs. A loader refusing the output fails the verification. A float
   pipeline must stay within ``rtol``/``atol``; a quantized one is only checked
   for clearly broken outputs, and its differences and class agreement are
   reported.

A failed verification does not delete the output: the report says
``ok=False`` (the CLI prints it and exits 1), so the numbers can be inspected.
An interrupt (Ctrl-C) during verification removes the output this run wrote,
since it was not verified (:func:`discard_output`), and re-raises
``KeyboardInterrupt`` saying so; ``verify=False`` keeps an unverified output on purpose.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphxform.core.errors import ExportError, GraphxformError, RuleError, VerificationError
from graphxform.core.testhooks import pause_point
from graphxform.engine.pipeline import build_pipeline, describe_pipeline
from graphxform.engine.rule import BaseRule
from graphxform.engine.runner import run_pipeline
from graphxform.jobs.inputs import PreparedInputs, model_inputs
from graphxform.jobs.verify import VerifyReport
from graphxform.jobs.verify import verify as verify_models
from graphxform.model.export import check_target, dir_size, export, no_signature_message
from graphxform.model.freeze import freeze_model
from graphxform.model.keep import DEFAULT_KEEP_MIN_BYTES, needs_keep, plan_keep, write_kept
from graphxform.model.loader import load, require_assets
from graphxform.model.model import Model
from graphxform.savedmodel import atomic
from graphxform.savedmodel.atomic import fsync_dir, tmp_prefix
from graphxform.savedmodel.read import GRAPH_DEF_SUFFIXES

log = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("int8", "float16", "none")
QUANTIZE_RULES = frozenset({"quantize_weights"})

#: ``progress(stage, status, info)``: stage is "load", "inputs", "freeze", "transform", "export", "verify" (status
#: "start", then "done" or "failed") or "rule:<name>" (status "start"/"done" around each turn of the rule, with
#: the running count, then one "summary" per rule when the pipeline is done); info carries figures.
ProgressFn = Callable[[str, str, dict[str, Any]], None]


@dataclass
class RuleStats:
    """What one rule did in the pipeline: rewrites applied and seconds spent."""

    count: int = 0
    seconds: float = 0.0
    added: int = 0
    removed: int = 0


@dataclass
class OptimizeReport:
    """Everything ``optimize`` measured; :meth:`to_dict` gives the ``--json`` report."""

    input: str
    output: str
    quantize: str
    transforms: list[str]
    size_before: int = 0
    size_after: int = 0
    nodes_loaded: int = 0
    nodes_frozen: int = 0
    nodes_after: int = 0
    ops_before: dict[str, int] = field(default_factory=dict)
    ops_after: dict[str, int] = field(default_factory=dict)
    rules: dict[str, RuleStats] = field(default_factory=dict)
    rounds: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    verification: VerifyReport | None = None
    signatures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Variables left in the checkpoint (``keep_variables``): name, shape, stored dtype, bytes, source key.
    kept_variables: list[dict[str, Any]] = field(default_factory=list)
    #: Errors a rule's ``ignore_errors=true`` skipped (the nodes it left as they were).
    ignored_errors: list[str] = field(default_factory=list)

    @property
    def lossy(self) -> bool:
        return any(t.split("(")[0] in QUANTIZE_RULES for t in self.transforms)

    @property
    def ok(self) -> bool:
        """True unless verification ran and failed."""
        return self.verification is None or self.verification.ok

    @property
    def size_ratio(self) -> float:
        return self.size_after / self.size_before if self.size_before else 0.0

    def op_changes(self) -> dict[str, int]:
        """Per op type: nodes after minus nodes before (frozen graph vs output), zeros left out."""
        ops = set(self.ops_before) | set(self.ops_after)
        diff = {op: self.ops_after.get(op, 0) - self.ops_before.get(op, 0) for op in sorted(ops)}
        return {k: v for k, v in diff.items() if v}

    def to_dict(self) -> dict[str, Any]:
        v = self.verification
        return {
            "input": self.input,
            "output": self.output,
            "ok": self.ok,
            "quantize": self.quantize,
            "transforms": self.transforms,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "size_ratio": round(self.size_ratio, 4),
            "nodes": {"loaded": self.nodes_loaded, "frozen": self.nodes_frozen, "after": self.nodes_after},
            "op_changes": self.op_changes(),
            "rules": {k: {"count": r.count, "seconds": round(r.seconds, 4), "nodes_added": r.added,
                          "nodes_removed": r.removed} for k, r in self.rules.items()},
            "rounds": self.rounds,
            "seconds": {k: round(s, 3) for k, s in self.seconds.items()},
            "signatures": self.signatures,
            "notes": self.notes,
            "kept_variables": self.kept_variables,
            "ignored_errors": self.ignored_errors,
            "verification": v.to_dict() if v is not None else None,
        }


# --------------------------------------------------------------------------- pipeline
def build_rules(transforms: str | list[str] | None, quantize: str = "int8") -> list[BaseRule]:
    """The rules to run: the default pipeline for ``quantize``, or exactly those of ``transforms``."""
    if quantize not in QUANTIZE_CHOICES:
        raise RuleError(f"quantize={quantize!r}: choose one of {', '.join(QUANTIZE_CHOICES)}")
    if transforms is None:
        return build_pipeline(None, quantize=quantize)
    return build_pipeline(transforms)


def _run_rules(model: Model, rules: list[BaseRule], progress: ProgressFn) -> tuple[dict[str, RuleStats], int, Any]:
    """Run ``rules`` with the engine (fixpoint; quantization in a final stage); per-rule stats, rounds and the
    engine's :class:`~graphxform.engine.report.RunReport` (every applied rewrite: the exporter names the rule that made
    a node TensorFlow would refuse)."""
    def on_rule(name: str, status: str, info: dict[str, Any]) -> None:
        progress(f"rule:{name}", status, info)

    rep = run_pipeline(model.graph, rules, progress=on_rule)
    stats: dict[str, RuleStats] = {}
    for name in dict.fromkeys([*(r.name for r in rules), *rep.counts]):
        st = rep.stats.get(name)
        stats[name] = RuleStats(count=rep.counts.get(name, 0), seconds=rep.seconds.get(name, 0.0),
                                added=st.added if st else 0, removed=st.removed if st else 0)
        progress(f"rule:{name}", "summary", {"count": stats[name].count, "seconds": stats[name].seconds})
    return stats, rep.rounds, rep


# --------------------------------------------------------------------------- the job
def _quiet_progress(stage: str, status: str, info: dict[str, Any]) -> None:
    log.debug("%s %s %s", stage, status, info)


def optimize(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    quantize: str = "int8",
    transforms: str | list[str] | None = None,
    tags: list[str] | str | None = None,
    force: bool = False,
    verify: bool = True,
    inputs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    progress: ProgressFn | None = None,
    graph_inputs: list[str] | str | None = None,
    graph_outputs: list[str] | str | None = None,
    allow_no_signatures: bool = False,
    loaders: list[str] | None = None,
    keep_variables: bool | None = None,
    keep_min_bytes: int | None = None,
    synthesize_missing: bool = False,
) -> OptimizeReport:
    """Optimize the model at ``in_path`` into a servable at ``out_path``; see the module docstring.

    ``graph_inputs``/``graph_outputs`` name the input and output tensors of a
    frozen ``.pb``/``.pbtxt`` input (its ``serving_default`` signature). A
    SavedModel output without signatures is refused (:class:`ExportError`,
    naming the candidate inputs/outputs) unless ``allow_no_signatures``; then
    it is written but not verified. ``loaders`` picks which of TensorFlow's
    loaders verify the output (default: all, see :mod:`graphxform.tf.loaders`).
    ``inputs`` are checked against the input's signatures before anything is
    written; inputs they leave out are an error unless ``synthesize_missing``.

    ``keep_variables=True`` leaves resource variables of at least ``keep_min_bytes`` (default 1 MiB; 0: all)
    in the checkpoint instead of freezing them (:mod:`graphxform.model.keep`): the output restores them from
    ``variables/`` through a saver; with the default pipeline they are stored as ``quantize`` says. ``None``
    (the default) keeps them only when the frozen graph would pass protobuf's 2 GiB limit; ``False`` never.

    Raises :class:`~graphxform.core.errors.GraphxformError` on load/transform/export
    failures (nothing is written then). A failed verification is reported in
    the returned report (``report.ok`` is False), not raised.
    """
    prog = progress or _quiet_progress
    tag_list = [t for t in tags.split(",") if t] if isinstance(tags, str) else (list(tags) if tags else None)
    rules = build_rules(transforms, quantize)  # fail fast on a bad transform string, before loading
    report = OptimizeReport(str(in_path), str(out_path), quantize if transforms is None else "custom",
                            [describe_pipeline([r]) for r in rules])
    timer = _Timer(report, prog)

    names: dict[str, Any] = {}
    if graph_inputs or graph_outputs:
        names = {"inputs": graph_inputs, "outputs": graph_outputs}

    def load_input() -> Model:
        return load(in_path, tags=tag_list, **names)

    with timer("load"):
        model = load_input()
        report.nodes_loaded = len(model.graph)
        report.signatures = sorted(k for k in model.signatures if not k.startswith("__"))
        timer.info.update(nodes=report.nodes_loaded, signatures=report.signatures)
    # Refuse missing assets and a bad OUT before spending time on transforms (export checks again when it writes).
    require_assets(model)
    check_target(model, Path(out_path), force)
    if not report.signatures and not allow_no_signatures and Path(out_path).suffix not in GRAPH_DEF_SUFFIXES:
        raise ExportError(no_signature_message(model, Path(out_path)))
    report.size_before = dir_size(in_path)

    prepared: PreparedInputs | None = None
    if verify and not report.signatures:
        log.warning("%s has no signatures, so the output cannot be verified%s", in_path,
                    "; name its inputs and outputs (--input-names/--output-names)" if model.format == "graph_def"
                    else "")
        report.notes.append("the input has no signatures")
        verify = False
    if verify:
        with timer("inputs"):
            prepared = model_inputs(model, inputs, synthesize_missing=synthesize_missing)
            timer.info.update(source=prepared.source)

    kept: list[Any] = []
    source_prefix = model.variables.checkpoint_prefix if model.variables is not None else None
    if not model.frozen:
        with timer("freeze"):
            kept = _plan_keep(model, keep_variables, keep_min_bytes, report, Path(out_path))
            freeze_model(model, keep={k.node: k.key for k in kept})
            timer.info.update(nodes=len(model.graph), kept=len(kept))
    report.nodes_frozen = len(model.graph)
    report.ops_before = dict(Counter(n.op for n in model.graph))

    with timer("transform"):
        report.rules, report.rounds, run = _run_rules(model, rules, prog)
        report.ignored_errors = list(run.ignored_errors)
        problems = model.graph.lint()
        if problems:
            raise RuleError("the transformed graph is invalid: " + "; ".join(problems[:5]))
        timer.info.update(nodes=len(model.graph))
    report.nodes_after = len(model.graph)
    report.ops_after = dict(Counter(n.op for n in model.graph))

    written = False
    work = None
    try:
        if kept:
            assert source_prefix is not None
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            work = atomic.new_dir(Path(os.path.abspath(out_path)))
            with timer("variables"):
                report.kept_variables = write_kept(model, kept, source_prefix, quantize if transforms is None
                                                   else "none", work)
                timer.info.update(kept=len(report.kept_variables),
                                  bytes=sum(k["bytes"] for k in report.kept_variables))
        with timer("export"):
            export(model, out_path, force=force, history=run.applied)
            written = True
            report.size_after = dir_size(out_path)
            timer.info.update(bytes=report.size_after)
        if verify:
            _verify_output(report, model, in_path, out_path, prepared, timer, tag_list, rtol, atol, loaders, prog,
                           load_input)
    except KeyboardInterrupt:  # OUT is whole but unverified: it goes, so that no one takes it for checked
        if not (written and verify):
            raise
        discard_output(Path(out_path))
        raise KeyboardInterrupt(f"{out_path} was written but not verified, so it was removed (--no-verify "
                                "keeps an unverified output)") from None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _plan_keep(model: Model, keep: bool | None, min_bytes: int | None, report: OptimizeReport,
               out: Path) -> list[Any]:
    """The variables to keep in the checkpoint (:mod:`graphxform.model.keep`): asked for, or needed because the
    frozen graph would pass protobuf's 2 GiB limit."""
    if keep is False:
        return []
    if keep is None:
        if not needs_keep(model):
            return []
        report.notes.append("the weights would pass protobuf's 2 GiB limit frozen: large variables are kept in "
                            "variables/ (--keep-variables)")
    if out.suffix in GRAPH_DEF_SUFFIXES:
        raise ExportError(f"{out}: a GraphDef file cannot hold variables; write a SavedModel directory to keep "
                          "them (or freeze everything: --no-keep-variables)")
    limit = DEFAULT_KEEP_MIN_BYTES if min_bytes is None else int(min_bytes)
    kept = plan_keep(model, limit)
    if not kept:
        report.notes.append(f"no variable of {limit} bytes or more that the checkpoint holds whole: all frozen")
    return kept


def _verify_output(report: OptimizeReport, model: Model, in_path: str | os.PathLike[str],
                   out_path: str | os.PathLike[str], prepared: PreparedInputs | None, timer: _Timer,
                   tag_list: list[str] | None, rtol: float, atol: float, loaders: list[str] | None,
                   prog: ProgressFn, load_input: Callable[[], Model]) -> None:
    """The verify stage: OUT in each of TensorFlow's loaders against IN, on ``prepared`` inputs."""
    # OUT is loaded by each of TensorFlow's loaders (a GraphDef file with its signatures sidecar); a GraphDef
    # input is run as loaded with its names (TensorFlow's SavedModel loader runs SavedModel directories).
    reference: Any = in_path if model.format == "saved_model" else load_input()
    with timer("verify"):
        try:
            assert prepared is not None
            report.verification = verify_models(reference, out_path, inputs=prepared.feeds, rtol=rtol, atol=atol,
                                                lossy=report.lossy, tags=tag_list, loaders=loaders, progress=prog)
        except GraphxformError as exc:
            if isinstance(exc, VerificationError):
                raise
            # OUT is complete; say so, and exit like a failed verification (1: OUT kept), not 2.
            raise VerificationError(f"{out_path} was written but could not be verified: {exc}; check it "
                                    "with `graphxform verify`, or pass --no-verify") from exc
        report.verification.reference = str(in_path)
        report.verification.candidate = str(out_path)
        report.verification.inputs_source = prepared.source
        report.verification.synthesized = prepared.synthesized
        timer.info.update(ok=report.verification.ok)


def discard_output(out: Path) -> None:
    """Remove the output ``out`` (and a GraphDef file's sidecar): renamed aside first, so that it disappears at
    once; what a second interrupt leaves aside is a temporary name the next export to ``out`` removes."""
    for path in (out, out.with_name(out.name + ".signatures.json") if out.suffix in GRAPH_DEF_SUFFIXES else None):
        if path is None or not (path.exists() or path.is_symlink()):
            continue
        aside = Path(tempfile.mkdtemp(prefix=tmp_prefix(path, "tmp") + "unverified-", dir=path.parent))
        aside.rmdir()
        os.rename(path, aside)
        fsync_dir(path.parent)
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


class _Timer:
    """``with timer("stage"):`` reports start/done to progress and records seconds in the report."""

    def __init__(self, report: OptimizeReport, progress: ProgressFn) -> None:
        self.report = report
        self.progress = progress
        self.info: dict[str, Any] = {}

    def __call__(self, stage: str) -> _Timer:
        self.stage = stage
        return self

    def __enter__(self) -> _Timer:
        self.info = {}
        self.t0 = time.perf_counter()
        self.progress(self.stage, "start", {})
        pause_point(f"optimize:{self.stage}")
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        secs = time.perf_counter() - self.t0
        self.report.seconds[self.stage] = secs
        if exc_type is None:
            self.progress(self.stage, "done", {"seconds": secs, **self.info})
        else:
            self.progress(self.stage, "failed", {"seconds": secs, "error": str(exc)})


__all__ = ["OptimizeReport", "RuleStats", "build_rules", "discard_output", "optimize"]
