"""``batch``: optimize many models — on this machine's cores or on an Apache Beam pipeline.

>>> summary = batch(["models/"], "out/", quantize="int8", jobs=2)          # doctest: +SKIP
>>> summary.counts                                                         # doctest: +SKIP
{'ok': 11, 'failed': 1}

Every model goes through the very same library call as ``graphxform optimize``
(:func:`graphxform.jobs.optimize.optimize`, verification included) into
``OUTDIR/<model dir name>``. What a MODEL may be (:func:`find_models`): a
SavedModel directory or a ``.pb``/``.pbtxt`` file; a directory that holds
models (found at any depth, without descending into a model); or a text file
that lists paths, one a line (``#`` starts a comment; relative paths are
relative to the list file).

Runners:

- ``local`` (default): a process pool of ``jobs`` workers started with the
  *spawn* method (TensorFlow is not fork-safe). A worker that dies (a crash
  inside TensorFlow) fails only its model: the pool is rebuilt and the
  others go on.
- ``beam``: one Apache Beam pipeline with one element per model
  (:mod:`graphxform.jobs.batch_beam`); DirectRunner unless ``beam_options``
  name another (``--runner=FlinkRunner …``, ``--runner=DataflowRunner …``).

State and report: each model's result is written as soon as it is known to
``OUTDIR/.graphxform-batch/<name>.json`` (atomically, by the worker that made
it, so a killed batch keeps what it finished) and, at the end,
``OUTDIR/batch_report.jsonl`` holds one line per model of the run (sorted keys): input,
output, status (``ok``, ``skipped``, ``verification_failed``, ``failed``),
sizes, nodes, verification figures, error, seconds, the SHA-256 of the input
files and of the options. A model whose previous result is ``ok`` (or
``skipped``) for the same input hash and options hash, and whose output is
still there with the size recorded, is skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from graphxform.core.errors import GraphxformError
from graphxform.jobs.fleet import (GRAPH_DEF_SUFFIXES, SAVED_MODEL_FILES, find_models, input_digest,  # noqa: F401
                                   is_model, output_names)
from graphxform.savedmodel import atomic

log = logging.getLogger(__name__)


REPORT_NAME = "batch_report.jsonl"
STATE_DIR = ".graphxform-batch"
RUNNERS = ("local", "beam")
#: Statuses a model can end in; the first two mean its output is complete.
STATUSES = ("ok", "skipped", "verification_failed", "failed")
#: ``progress(record, counts)`` is called once per model finished (counts: ok/skipped/failed/left).
BatchProgress = Callable[[dict[str, Any], dict[str, int]], None]


@dataclass
class BatchOptions:
    """What ``optimize`` is asked to do for every model (hashed: a change re-runs every model)."""

    quantize: str = "int8"
    transforms: str | None = None
    tags: str | None = None
    verify: bool = True
    rtol: float = 1e-5
    atol: float = 1e-6
    loaders: list[str] | None = None
    keep_variables: bool | None = None
    keep_min_bytes: int | None = None

    def digest(self) -> str:
        try:
            version = metadata.version("graphxform")
        except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
            version = "unknown"
        text = json.dumps({**asdict(self), "graphxform": version}, sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Task:
    """One model to optimize: where from, where to, and what the last run recorded for it."""

    input: str
    output: str
    name: str
    options: BatchOptions
    previous: dict[str, Any] | None = None
    force: bool = False
    input_hash: str | None = None  # computed once, by whoever decides whether the model is skipped


@dataclass
class BatchSummary:
    out: str
    runner: str
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        return {s: n for s in STATUSES if (n := sum(r["status"] == s for r in self.records))}

    @property
    def exit_code(self) -> int:
        """The worst of the models' ``optimize`` exit codes: 2 a model failed, 1 a verification failed, else 0."""
        return max((int(r.get("exit_code", 0)) for r in self.records), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "runner": self.runner, "counts": self.counts, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), "report": str(Path(self.out) / REPORT_NAME),
                "models": self.records}


# --------------------------------------------------------------------------- fingerprints and records
def _dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def output_complete(record: dict[str, Any] | None) -> bool:
    """The output a previous ``ok``/``skipped`` record describes is still there, whole (same size)."""
    if not record or record.get("status") not in ("ok", "skipped") or not record.get("output"):
        return False
    out = Path(record["output"])
    return is_model(out) and _dir_size(out) == record.get("size_after")


def _state_file(out_dir: Path, name: str) -> Path:
    return out_dir / STATE_DIR / f"{name}.json"


def _save_record(task: Task, record: dict[str, Any]) -> None:
    path = _state_file(Path(task.output).parent, task.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.new_file(path)
    try:
        atomic.write_bytes(tmp, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _verification_figures(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"ok": v.ok, "max_abs_diff": v.max_abs_diff, "max_rel_diff": v.max_rel_diff,
            "min_class_agreement": v.min_class_agreement,
            "loaders": {x["loader"]: bool(x.get("loaded")) and bool(x.get("ok", True))
                        for x in v.loader_summary()}}


def skip_record(task: Task) -> dict[str, Any] | None:
    """The record of a model that needs no work (its previous output is complete for the same input files and
    options), else ``None``; fills ``task.input_hash``. Needs no TensorFlow."""
    t0 = time.perf_counter()
    try:
        task.input_hash = input_digest(task.input)
    except OSError:
        return None  # (run_task records why)
    prev = task.previous
    if task.force or not prev or not output_complete(prev) or prev.get("input_hash") != task.input_hash \
            or prev.get("options_hash") != task.options.digest() or prev.get("input") != task.input:
        return None
    rec = {**prev, "status": "skipped", "seconds": round(time.perf_counter() - t0, 3)}
    _save_record(task, rec)
    return rec


def run_task(task: Task) -> dict[str, Any]:
    """Optimize one model; never raises: a failure is the record's ``status``/``error``. Runs in a worker (a pool
    process or a Beam worker) and saves its record under OUTDIR before returning."""
    from graphxform.core.errors import VerificationError
    from graphxform.jobs.optimize import optimize

    t0 = time.perf_counter()
    rec: dict[str, Any] = {"input": task.input, "output": task.output, "name": task.name,
                           "options_hash": task.options.digest(), "error": None, "exit_code": 0}
    try:
        rec["input_hash"] = task.input_hash or input_digest(task.input)
    except OSError as exc:
        rec.update(status="failed", error=f"{task.input}: cannot read the model ({exc.strerror or exc})",
                   exit_code=2, input_hash=None)
    if "status" not in rec:
        o = task.options
        try:
            report = optimize(task.input, task.output, quantize=o.quantize, transforms=o.transforms, tags=o.tags,
                              force=True, verify=o.verify, rtol=o.rtol, atol=o.atol, loaders=o.loaders,
                              keep_variables=o.keep_variables, keep_min_bytes=o.keep_min_bytes)
            rec.update(status="ok" if report.ok else "verification_failed", exit_code=0 if report.ok else 1,
                       size_before=report.size_before, size_after=report.size_after,
                       nodes={"loaded": report.nodes_loaded, "frozen": report.nodes_frozen,
                              "after": report.nodes_after},
                       kept_variables=report.kept_variables,
                       verification=_verification_figures(report.verification))
            if not report.ok and report.verification is not None:
                rec["error"] = report.verification.failure_message()
        except GraphxformError as exc:
            status = "verification_failed" if isinstance(exc, VerificationError) else "failed"
            rec.update(status=status, error=" ".join(str(exc).split()), exit_code=exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - one model's crash must not stop the others
            log.debug("optimizing %s failed", task.input, exc_info=True)
            rec.update(status="failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}", exit_code=3)
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    _save_record(task, rec)
    return rec


def _worker_init() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


# --------------------------------------------------------------------------- runners
def _run_local(tasks: list[Task], jobs: int, on_done: Callable[[dict[str, Any]], None]) -> None:
    """A spawn-context process pool; a task whose worker died is retried once in a fresh pool, then failed."""
    attempts = {t.name: 0 for t in tasks}
    todo = list(tasks)
    ctx = get_context("spawn")
    while todo:
        broken: list[Task] = []
        with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(todo))), mp_context=ctx,
                                 initializer=_worker_init) as pool:
            futures: dict[Future[dict[str, Any]], Task] = {pool.submit(run_task, t): t for t in todo}
            for fut in as_completed(futures):
                task = futures[fut]
                try:
                    on_done(fut.result())
                except BrokenProcessPool:
                    attempts[task.name] += 1
                    if attempts[task.name] < 2:
                        broken.append(task)
                        continue
                    rec = {"input": task.input, "output": task.output, "name": task.name, "status": "failed",
                           "exit_code": 3, "options_hash": task.options.digest(),
                           "error": "the worker process optimizing this model died (a crash inside TensorFlow, or "
                                    "out of memory); run `graphxform optimize` on it alone to see why"}
                    _save_record(task, rec)
                    on_done(rec)
        todo = broken


def batch(models: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, runner: str = "local",
          jobs: int | None = None, beam_options: Iterable[str] = (), force: bool = False,
          progress: BatchProgress | None = None, **options: Any) -> BatchSummary:
    """Optimize every model named by ``models`` into ``out/<name>``; see the module docstring.

    ``options`` are :class:`BatchOptions` fields (``quantize``, ``transforms``, ``tags``, ``verify``, ``rtol``,
    ``atol``, ``loaders``, ``keep_variables``, ``keep_min_bytes``). ``force`` optimizes models again even when
    their output is complete. Raises :class:`GraphxformError` when no model is found or ``runner`` is unknown;
    a model's failure is in its record, never raised.
    """
    if runner not in RUNNERS:
        raise GraphxformError(f"runner {runner!r}: choose one of {', '.join(RUNNERS)}")
    t0 = time.perf_counter()
    opts = BatchOptions(**options)
    out_dir = Path(out).expanduser().absolute()
    found = find_models(models)
    # OUTDIR inside a directory of models (`batch models/ --out models/optimized`): its outputs are not models to
    # optimize on a re-run.
    paths = [p for p in found if out_dir not in Path(os.path.abspath(p)).parents]
    if len(paths) < len(found):
        log.info("not optimizing %d model(s) under %s, the output directory", len(found) - len(paths), out_dir)
    if not paths:
        raise GraphxformError("no models to optimize: name models, directories of models or a text file listing them")
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = read_records(out_dir)
    tasks = [Task(str(Path(os.path.abspath(p))), str(out_dir / name), name, opts, previous.get(name), force)
             for p, name in zip(paths, output_names(paths))]
    for t in tasks:
        if Path(os.path.abspath(t.input)) == Path(t.output) or Path(t.output) in Path(t.input).parents:
            raise GraphxformError(f"{out_dir}: the output of {t.input} would be the model itself; choose another "
                                  "OUTDIR")
    summary = BatchSummary(str(out_dir), runner)
    counts = {"ok": 0, "skipped": 0, "failed": 0, "left": len(tasks)}

    def on_done(rec: dict[str, Any]) -> None:
        summary.records.append(rec)
        counts["left"] -= 1
        counts["ok" if rec["status"] == "ok" else "skipped" if rec["status"] == "skipped" else "failed"] += 1
        if progress is not None:
            progress(rec, dict(counts))

    workers = jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as hashing:  # (hashlib lets go of the GIL)
        skipped = list(hashing.map(skip_record, tasks))
    todo = [t for t, rec in zip(tasks, skipped) if rec is None]
    for rec in skipped:
        if rec is not None:
            on_done(rec)
    if todo and runner == "local":
        _run_local(todo, workers, on_done)
    elif todo:
        from graphxform.jobs.batch_beam import run_beam

        run_beam(todo, beam_options_list(beam_options), on_done, run_task,
                 lambda t: _state_file(Path(t.output).parent, t.name))
    summary.records.sort(key=lambda r: r["name"])
    summary.seconds = time.perf_counter() - t0
    write_report(out_dir, {r["name"]: r for r in summary.records})
    return summary


def beam_options_list(values: Iterable[str]) -> list[str]:
    """``["--runner=FlinkRunner --flink_master=h:8081", …]`` → one flag a string (shell quoting honoured)."""
    return [flag for v in values for flag in shlex.split(v)]


def read_records(out_dir: Path) -> dict[str, dict[str, Any]]:
    """{name: record} from ``batch_report.jsonl`` and, newer, the per-model state files a killed run left."""
    records: dict[str, dict[str, Any]] = {}
    report = out_dir / REPORT_NAME
    sources = [report] if report.is_file() else []
    sources += sorted((out_dir / STATE_DIR).glob("*.json")) if (out_dir / STATE_DIR).is_dir() else []
    for src in sources:
        for line in src.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: skipping a line that is not JSON", src)
                continue
            if isinstance(rec, dict) and isinstance(rec.get("name"), str):
                records[rec["name"]] = rec
    return records


def write_report(out_dir: Path, records: dict[str, dict[str, Any]]) -> Path:
    """``OUTDIR/batch_report.jsonl``: one line per model (sorted by name, keys sorted), written atomically."""
    path = out_dir / REPORT_NAME
    tmp = atomic.new_file(path)
    try:
        lines = [json.dumps(records[k], sort_keys=True) + "\n" for k in sorted(records)]
        atomic.write_bytes(tmp, "".join(lines).encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


__all__ = ["BatchOptions", "BatchSummary", "Task", "batch", "find_models", "input_digest", "output_names",
           "read_records", "run_task", "skip_record"]
