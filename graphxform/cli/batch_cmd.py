"""``graphxform batch MODEL... --out OUTDIR``: optimize many models, locally or on Apache Beam."""
from __future__ import annotations

import sys
from typing import Any

import click

from graphxform.cli.common import console, emit_json, err_console, human_bytes, json_option, new_table, print_line, \
    tags_option, timings_option


class _Progress:
    """Models done / failed / left on stderr (a rich progress bar), and one line per failed model."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err_console.current, transient=False,
                            disable=not err_console.is_terminal)  # a bar only on a terminal, as every command
        self.task: Any = None

    def start(self, total: int | None = None) -> None:
        self.bar.start()
        self.task = self.bar.add_task("optimizing", total=total)

    def __call__(self, rec: dict[str, Any], counts: dict[str, int]) -> None:
        total = counts["ok"] + counts["skipped"] + counts["failed"] + counts["left"]
        self.bar.update(self.task, total=total, completed=total - counts["left"],
                        description=f"done {counts['ok'] + counts['skipped']} ({counts['skipped']} skipped) · "
                                    f"failed {counts['failed']} · left {counts['left']}")
        if self.bar.disable:  # no terminal (a log file, a pipe): one plain line per model instead of a bar
            print_line(f"{rec['name']}: {rec['status']}; done {counts['ok'] + counts['skipped']} "
                       f"({counts['skipped']} skipped) · failed {counts['failed']} · left {counts['left']}",
                       markup=False, err=True)
        if rec["status"] not in ("ok", "skipped"):
            self.bar.console.print(f"[red]✗[/red] {rec['name']}: {rec.get('error') or rec['status']}",
                                   highlight=False, markup=True)

    def stop(self) -> None:
        self.bar.stop()


def _fmt_bytes(n: Any) -> str:
    return human_bytes(n) if isinstance(n, int) else "—"


def print_summary(summary: Any) -> None:
    from rich.markup import escape

    table = new_table(f"batch → {escape(str(summary.out))} ({summary.runner})", "model", ("status", "word"),
                      "size", "nodes", ("max rel diff", "num"), ("seconds", "num"))
    colour = {"ok": "green", "skipped": "cyan", "verification_failed": "yellow", "failed": "red"}
    for r in summary.records:
        nodes = r.get("nodes") or {}
        v = r.get("verification") or {}
        rel = v.get("max_rel_diff")
        table.add_row(escape(r["name"]), f"[{colour.get(r['status'], 'white')}]{r['status']}[/]",
                      f"{_fmt_bytes(r.get('size_before'))} → {_fmt_bytes(r.get('size_after'))}"
                      if r.get("size_after") is not None else "—",
                      f"{nodes.get('loaded', '—')} → {nodes.get('after', '—')}" if nodes else "—",
                      f"{rel:.1e}" if isinstance(rel, (int, float)) else "—", f"{r.get('seconds', 0):.1f}")
    console.print(table)
    for r in summary.records:
        if r.get("error"):
            print_line(f"[red]{escape(r['name'])}[/red]: {escape(str(r['error']))}")
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in summary.counts.items())
    print_line(f"{counts} in {summary.seconds:.1f} s; report: {summary.out}/batch_report.jsonl", markup=False)


@click.command("batch")
@click.argument("models", metavar="MODEL...", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", "out", required=True, type=click.Path(file_okay=False),
              help="Directory that receives OUTDIR/<model name> for every model and batch_report.jsonl.")
@click.option("--runner", type=click.Choice(["local", "beam"]), default="local", show_default=True,
              help="local: a process pool on this machine; beam: an Apache Beam pipeline (pip install "
                   "'graphxform[beam]'), Beam's DirectRunner unless --beam-options name another.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="local runner: worker processes (default: the number of CPUs).")
@click.option("--beam-options", "beam_options", multiple=True, metavar="FLAGS",
              help='beam runner: pipeline options, e.g. "--runner=FlinkRunner --flink_master=host:8081" '
                   "(shell-quoted; repeatable).")
@click.option("--quantize", type=click.Choice(["int8", "float16", "none"]), default="int8", show_default=True,
              help="Weight storage type, as for optimize.")
@click.option("--transforms", default=None, help="Rules to run instead of the default pipeline, as for optimize.")
@tags_option
@click.option("--no-verify", "no_verify", is_flag=True, help="Skip verifying each output against its input.")
@click.option("--loaders", "loaders", default="c++,tf2,tf1", show_default=True,
              help="TensorFlow loaders that must load every output (c++, tf2, tf1).")
@click.option("--rtol", type=float, default=1e-5, show_default=True, help="Relative tolerance (float pipeline).")
@click.option("--atol", type=float, default=1e-6, show_default=True, help="Absolute tolerance (float pipeline).")
@click.option("--keep-variables/--no-keep-variables", "keep_variables", default=None,
              help="As for optimize (default: keep variables only for a model whose frozen graph would pass 2 GiB).")
@click.option("--keep-min-bytes", type=click.IntRange(min=0), default=None, metavar="BYTES",
              help="With --keep-variables: smallest variable kept (default 1048576).")
@click.option("--force", is_flag=True, help="Optimize every model again, even those whose output is complete.")
@json_option
@timings_option
def batch_cmd(models: tuple[str, ...], out: str, runner: str, jobs: int | None, beam_options: tuple[str, ...],
              quantize: str, transforms: str | None, tags: str | None, no_verify: bool, loaders: str, rtol: float,
              atol: float, keep_variables: bool | None, keep_min_bytes: int | None, force: bool,
              as_json: bool, timings: bool) -> None:
    """Optimize every MODEL into OUTDIR/<model name>, as `graphxform optimize` does (verification included).

    A MODEL is a SavedModel directory or .pb/.pbtxt file, a directory holding models (at any depth), or a text
    file listing paths (one a line; # comments). Names that clash (TF Serving's a/1, b/1) become a-1, b-1.
    A model that fails is recorded and the others go on. OUTDIR/batch_report.jsonl gets one line per model:
    input, output, status (ok, skipped, verification_failed, failed), sizes, nodes, verification figures,
    error. A re-run skips a model whose output is complete for the same input files (SHA-256) and options.
    Exit code: the worst of the models' optimize exit codes (0 all ok or skipped, 1 a verification failed,
    2 a model could not be optimized); 2 also when no model is found.

    \b
    Examples:
      graphxform batch models/ --out optimized/ --jobs 2
      graphxform batch models.txt --out optimized/ --quantize none --json
      graphxform batch models/ --out optimized/ --runner beam
      graphxform batch /shared/models --out /shared/optimized --runner beam \\
          --beam-options "--runner=FlinkRunner --flink_master=flink:8081 --environment_type=PROCESS"
    """
    from graphxform.jobs.batch import batch

    progress = _Progress()
    progress.start()
    try:
        summary = batch(list(models), out, runner=runner, jobs=jobs, beam_options=beam_options, force=force,
                        progress=progress, quantize=quantize, transforms=transforms, tags=tags, verify=not no_verify,
                        rtol=rtol, atol=atol, loaders=[x.strip() for x in loaders.split(",") if x.strip()],
                        keep_variables=keep_variables, keep_min_bytes=keep_min_bytes)
    finally:
        progress.stop()
    if as_json:
        emit_json(summary.to_dict(), timings)
    else:
        print_summary(summary)
    if summary.exit_code:
        sys.exit(summary.exit_code)
