"""The ``beam`` runner of :mod:`graphxform.jobs.batch`: one Apache Beam pipeline, one element per model.

The pipeline is ``Create(tasks) | Reshuffle() | Map(run_task)``: the reshuffle spreads the models over the
runner's workers (a plain ``Create`` would keep them in one bundle). With no options it runs on Beam's
DirectRunner in this process; the same pipeline runs on Flink, Spark or Dataflow when ``flags`` name that
runner and its options (``--runner=FlinkRunner --flink_master=host:8081 --environment_type=…``). Workers
need graphxform installed (``--setup_file``, ``--requirements_file`` or a custom container), and every model
path and OUTDIR must be reachable by the workers under the same name (a shared filesystem).

Each worker writes its model's record to ``OUTDIR/.graphxform-batch/<name>.json`` (see
:func:`graphxform.jobs.batch.run_task`, which :mod:`graphxform.jobs.batch` hands over with the tasks); this
process watches those files for the progress display and collects them when the pipeline is done, so nothing
has to travel back through the runner.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphxform.core.errors import GraphxformError

log = logging.getLogger(__name__)

#: Seconds between two looks at the records the workers wrote.
POLL_SECONDS = 0.5


def _import_beam() -> Any:
    try:
        import apache_beam as beam
    except ImportError:
        raise GraphxformError("--runner beam needs Apache Beam: pip install 'graphxform[beam]' (or use --runner "
                              "local)") from None
    return beam


class _Watcher:
    """Calls ``on_done`` once per task whose record file was (re)written since the watcher started."""

    def __init__(self, tasks: list[Any], record_file: Callable[[Any], Path],
                 on_done: Callable[[dict[str, Any]], None]) -> None:
        self.on_done = on_done
        self.files = {t.name: record_file(t) for t in tasks}
        self.before = {n: self._stamp(f) for n, f in self.files.items()}
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="graphxform-batch-watch", daemon=True)

    @staticmethod
    def _stamp(path: Path) -> int | None:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return None

    def sweep(self) -> None:
        with self.lock:
            for name, path in self.files.items():
                if name in self.seen or self._stamp(path) in (None, self.before[name]):
                    continue
                try:
                    rec = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError):
                    continue  # being replaced right now: next look
                self.seen.add(name)
                self.on_done(rec)

    def _loop(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            self.sweep()

    def __enter__(self) -> _Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.sweep()


def build_pipeline(beam: Any, pipeline: Any, tasks: list[Any], run: Callable[[Any], dict[str, Any]]) -> Any:
    """Add the batch's transforms to ``pipeline``; returns the PCollection of records."""
    return (pipeline
            | "Models" >> beam.Create(tasks)
            | "Spread" >> beam.Reshuffle()
            | "Optimize" >> beam.Map(run))


def run_beam(tasks: list[Any], flags: list[str], on_done: Callable[[dict[str, Any]], None],
             run: Callable[[Any], dict[str, Any]], record_file: Callable[[Any], Path]) -> None:
    """Run ``run`` over ``tasks`` as a Beam pipeline with ``flags`` as its pipeline options (DirectRunner by
    default); ``record_file(task)`` is where the worker leaves the task's record."""
    beam = _import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        options = PipelineOptions(flags)
        runner = options.get_all_options().get("runner") or "DirectRunner"
    except (SystemExit, ValueError) as exc:  # argparse exits on a malformed flag
        raise GraphxformError(f"--beam-options {' '.join(flags)!r}: Beam refused them ({exc})") from None
    log.info("running %d models on Beam's %s", len(tasks), runner)
    with _Watcher(tasks, record_file, on_done) as watcher:
        try:
            with beam.Pipeline(options=options) as p:
                build_pipeline(beam, p, tasks, run)
        except Exception as exc:  # noqa: BLE001 - the runner's own failure (not a model's: run_task never raises)
            raise GraphxformError(f"the Beam pipeline failed on {runner}: {' '.join(str(exc).split())[:500]}") \
                from exc
    for t in tasks:
        if t.name not in watcher.seen:
            on_done({"input": t.input, "output": t.output, "name": t.name, "status": "failed", "exit_code": 3,
                     "options_hash": t.options.digest(),
                     "error": f"no result came back from the Beam worker ({runner}) for this model"})


__all__ = ["build_pipeline", "run_beam"]
