"""Pieces shared by the CLI subcommands: consoles, JSON output, tables, progress, common options, exit codes.

* :data:`console` (stdout) and :data:`err_console` (stderr) are rich consoles that :func:`use_consoles` can
  swap for a while (tests render at a fixed width, as a terminal or as a pipe). A broken pipe on either
  (``graphxform inspect MODEL | head``) silences it and ends the command with exit 0.
* :func:`emit_json` prints deterministic JSON: keys sorted, wall-clock seconds left out unless ``--timings``.
* :func:`new_table` makes tables that never cut a number or a name: names fold onto the next line, numbers
  keep their width, at any console width, on a terminal or into a pipe.
* :class:`StageProgress` shows live progress on stderr, only when stderr is a terminal.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console

#: The exit codes every command keeps (shown in every --help and in the README).
EXIT_CODES = {
    0: "success (also when stdout is a pipe closed early: `… | head`)",
    1: "verification failed (optimize keeps OUT for inspection)",
    2: "bad input or usage: one error line naming it; nothing written",
    3: "internal error, a bug (--debug shows the traceback)",
    130: "interrupted: nothing half-written; optimize removes an unverified OUT",
}
EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


class BrokenPipe(Exception):
    """Raised when stdout/stderr is a pipe whose reader went away: the command stops, and exits 0."""


class _Console(Console):
    """A rich Console whose broken pipe ends the command quietly (exit 0), not with rich's SystemExit(1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        silence_stream(self.file)
        raise BrokenPipe()


def make_console(**kw: Any) -> Console:
    """A rich Console (same arguments) whose broken pipe ends the command with exit 0 (see :class:`BrokenPipe`)."""
    return _Console(**kw)


def silence_stream(stream: Any) -> None:
    """Point ``stream``'s file descriptor at /dev/null (after a broken pipe, so that later flushes cannot fail)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _SwappableConsole:
    """Forwards to a rich Console made on first use; :func:`use_consoles` replaces it for a while."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def current(self) -> Console:
        if self._console is None:  # names and paths print verbatim: no ":code:" emoji replacement (nor its table)
            self._console = _Console(stderr=self._stderr, emoji=False)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)


console: Any = _SwappableConsole(stderr=False)
err_console: Any = _SwappableConsole(stderr=True)


@contextlib.contextmanager
def use_consoles(out: Console, err: Console | None = None) -> Iterator[None]:
    """Print through ``out`` (and ``err``) inside the block, e.g. ``Console(width=80, file=buf)`` in a test."""
    saved = console._console, err_console._console
    console._console = out
    err_console._console = err if err is not None else saved[1]
    try:
        yield
    finally:
        console._console, err_console._console = saved


# --------------------------------------------------------------------------- JSON
#: Keys holding wall-clock seconds: left out of --json unless --timings (two runs then give the same bytes).
TIMING_KEYS = frozenset({"seconds", "total_seconds"})


def without_timings(data: Any) -> Any:
    """``data`` with every :data:`TIMING_KEYS` key removed, at any depth."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, (list, tuple)):
        return [without_timings(v) for v in data]
    return data


def json_text(data: Any, timings: bool = False) -> str:
    """``data`` as deterministic JSON text: keys sorted, timings left out unless ``timings``."""

    def default(o: Any) -> Any:
        if hasattr(o, "item"):
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)

    return json.dumps(data if timings else without_timings(data), indent=2, sort_keys=True, default=default,
                      ensure_ascii=False) + "\n"


def emit_json(data: Any, timings: bool = False) -> None:
    """Print ``data`` as JSON on stdout (see :func:`json_text`)."""
    sys.stdout.write(json_text(data, timings))


# --------------------------------------------------------------------------- tables
def _fit_table_class() -> Any:
    from rich.measure import Measurement
    from rich.table import Table

    class FitTable(Table):
        """A rich Table that fits its columns to the console without cutting anything.

        Columns with ``no_wrap`` (numbers, short words) keep their full width. The others share what is left,
        the narrowest needs served first, never narrower than their header's longest word (or 8): their long
        words fold onto the next line. Only when even that does not fit (a very narrow console) do the
        ``no_wrap`` columns fold too. Every column folds (``overflow="fold"``): no character is ever dropped.
        """

        def __rich_console__(self, console: Any, options: Any) -> Any:
            columns = self.columns
            pads = [self._get_padding_width(i) for i in range(len(columns))]
            avail = max(options.max_width - self._extra_width - sum(pads), len(columns))
            natural, floor = [], []
            for col in columns:
                cells = [*([col.header] if self.show_header else []), *col.cells]
                sizes = [Measurement.get(console, options.update_width(10_000), c) for c in cells]
                natural.append(max([m.maximum for m in sizes] + [1]))
                head = str(col.header) if self.show_header else ""
                floor.append(min(natural[-1], max([len(w) for w in head.split()] + [8])))
            flex = [i for i, col in enumerate(columns) if not col.no_wrap and col.width is None]
            fixed = sum(natural[i] for i in range(len(columns)) if i not in flex)
            if fixed + sum(floor[i] for i in flex) > avail:  # narrow: names fold harder
                floor = [min(n, 4) for n in natural]
            wrap_all = fixed + sum(floor[i] for i in flex) > avail
            if wrap_all:  # very narrow: everything folds, numbers too
                flex, floor, fixed = list(range(len(columns))), [min(n, 3) for n in natural], 0
            widths = list(natural)
            left = avail - fixed
            if sum(natural[i] for i in flex) > left:
                for k, i in enumerate(sorted(flex, key=lambda j: natural[j])):
                    widths[i] = max(floor[i], min(natural[i], left // (len(flex) - k)))
                    left -= widths[i]
            saved = [(col.width, col.overflow, col.no_wrap) for col in columns]
            try:
                for col, w in zip(columns, widths, strict=True):
                    col.width, col.overflow, col.no_wrap = w, "fold", col.no_wrap and not wrap_all
                yield from super().__rich_console__(console, options)
            finally:
                for col, (w, overflow, no_wrap) in zip(columns, saved, strict=True):
                    col.width, col.overflow, col.no_wrap = w, overflow, no_wrap

    return FitTable


_FIT_TABLE: Any = None


def fit_table(**kw: Any) -> Any:
    """A :class:`rich.table.Table` (same arguments) whose cells are never cut (see ``FitTable``)."""
    global _FIT_TABLE
    if _FIT_TABLE is None:
        _FIT_TABLE = _fit_table_class()
    return _FIT_TABLE(**kw)


def new_table(title: str | None = None, *columns: str | tuple[str, str], **kw: Any) -> Any:
    """A table whose cells are never cut (:func:`fit_table`).

    ``columns`` are names, or ``(name, kind)`` with kind ``"text"`` (default: wraps at spaces, folds long words
    such as node names), ``"num"`` (right-aligned, never wrapped: numbers keep every digit) or ``"word"``
    (never wrapped: short words such as dtypes and statuses). A header may hold ``\n`` to take two lines.
    """
    table = fit_table(title=title, title_justify="left", **kw)
    for col in columns:
        name, kind = (col, "text") if isinstance(col, str) else col
        if kind == "num":
            table.add_column(name, justify="right", no_wrap=True)
        elif kind == "word":
            table.add_column(name, no_wrap=True)
        else:
            table.add_column(name, overflow="fold")
    return table


def print_line(text: str, *, markup: bool = True, err: bool = False) -> None:
    """Print one line of prose, not wrapped by rich (the terminal wraps it; a pipe gets it whole)."""
    (err_console if err else console).print(text, markup=markup, highlight=False, soft_wrap=True)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 round"``, ``"2 rounds"``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


# --------------------------------------------------------------------------- progress
class StageProgress:
    """Live progress on stderr while a job runs: a spinner naming the current step, a line when a stage ends.

    Shown only when stderr is a terminal (never in a pipe, a log file or --json's stdout). Jobs call it as
    ``progress(stage, status, info)`` (status ``"start"``, ``"done"``, ``"failed"``, ``"step"`` or
    ``"summary"``); ``labels`` maps stage names to words. Use it as a context manager.
    """

    def __init__(self, labels: dict[str, str] | None = None, *, enabled: bool = True) -> None:
        self.labels = labels or {}
        self.enabled = enabled and err_console.is_terminal
        self.status: Any = None
        self.started = time.perf_counter()

    def __enter__(self) -> StageProgress:
        if self.enabled:
            self.status = err_console.status("starting…")
            self.status.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def update(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def __call__(self, stage: str, status: str, info: dict[str, Any]) -> None:
        if self.status is None:
            return
        if stage.startswith("rule:"):
            name = stage[5:]
            if status == "start":
                self.update(f"round {info.get('round', '?')}: {name}…")
            elif status == "done":
                self.update(f"round {info.get('round', '?')}: {name} ({plural(info.get('count', 0), 'rewrite')}, "
                            f"{info.get('nodes', '?')} nodes)")
            return
        label = info.get("label") or self.labels.get(stage, stage)
        if status in ("start", "step"):
            self.update(f"{label}…")
        elif status == "done" and stage in self.labels:
            self.done_line(stage, info)

    def done_line(self, stage: str, info: dict[str, Any]) -> None:
        extra = []
        if "nodes" in info:
            extra.append(f"{info['nodes']} nodes")
        if info.get("kept"):
            extra.append(f"{info['kept']} variables kept")
        if "bytes" in info:
            extra.append(human_bytes(int(info["bytes"])))
        if "source" in info:
            extra.append(str(info["source"]))
        if "ok" in info:
            extra.append("ok" if info["ok"] else "[red]differs[/red]")
        secs = info.get("seconds") or 0.0
        err_console.print(f"[green]✓[/green] {stage:<10} {secs:7.2f} s  " + ", ".join(extra), highlight=False)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------- options
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print machine-readable JSON on stdout (keys sorted; two runs give the same bytes).")
timings_option = click.option("--timings", is_flag=True,
                              help="With --json: include wall-clock seconds (left out so that runs compare equal).")
tags_option = click.option("--tags", default=None, help="MetaGraph tag set, comma separated (default: serve).")
npz_inputs_option = click.option(
    "--inputs", "inputs", type=click.Path(exists=True, dir_okay=False), metavar="FILE.npz",
    help="Inputs to run the models on, as .npz: keys '<signature>/<input>', or '<input>' for every signature "
         "with that input. Every key must name an input; every input needs a value (see --synthesize-missing). "
         "Default: synthesized.")
synthesize_missing_option = click.option(
    "--synthesize-missing", is_flag=True,
    help="With --inputs/--examples: synthesize the inputs they leave out (reported) instead of refusing (exit 2).")


def deprecated_alias(old: str, new: str) -> Any:
    """A hidden option ``old`` still accepted for ``new``, with a note on stderr when used."""
    def note(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            print_line(f"[yellow]note:[/yellow] {old} is deprecated here; use {new} (same meaning)", err=True)
        return value
    return click.option(old, old.lstrip("-").replace("-", "_") + "_deprecated", default=None, hidden=True,
                        expose_value=True, callback=note)


__all__ = ["EXIT_CODES", "EXIT_CODES_HELP", "BrokenPipe", "StageProgress", "console", "deprecated_alias",
           "emit_json", "err_console", "fit_table", "human_bytes", "json_option", "json_text", "make_console",
           "new_table", "npz_inputs_option", "plural", "print_line", "silence_stream", "synthesize_missing_option",
           "tags_option", "timings_option", "use_consoles", "without_timings"]
