"""The ``graphxform`` command line.

Subcommands live in their own modules and are imported only when run, so
``graphxform --help`` answers without importing TensorFlow. Errors raised as
:class:`~graphxform.core.errors.GraphxformError` print one line and exit 2 (1 for
a failed verification); ``--debug`` (anywhere on the command line) prints the
traceback before that line, with the same exit code.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

import click

#: command name -> "module:function" (a click.Command)
COMMANDS = {
    "inspect": "graphxform.cli.inspect_cmd:inspect_cmd",
    "render": "graphxform.cli.render_cmd:render_cmd",
    "transform": "graphxform.cli.transform_cmd:transform_cmd",
    "rules": "graphxform.cli.rules_cmd:rules_cmd",
    "optimize": "graphxform.cli.optimize_cmd:optimize_cmd",
    "verify": "graphxform.cli.verify_cmd:verify_cmd",
    "batch": "graphxform.cli.batch_cmd:batch_cmd",
}

HELP = {
    "inspect": "Show signatures, ops, parameters, tables and assets of a model, or one node.",
    "render": "Draw the graph or a node's neighbourhood with Graphviz (.svg/.png/.dot).",
    "transform": "Run rewrite rules (GTT syntax accepted) and write the result.",
    "rules": "List every rule with its aliases, parameters and before -> after.",
    "optimize": "Load, freeze, run the default pipeline, export a servable and verify it.",
    "verify": "Run two models on the same inputs and compare every signature output.",
    "batch": "Optimize many models (a process pool or an Apache Beam pipeline), with a report and re-run skips.",
}


#: Commands whose own process needs no TensorFlow (``batch`` runs it in its workers; a re-run with nothing to do
#: starts none).
NO_TENSORFLOW = frozenset({"batch"})


def _debug_first(args: list[str]) -> list[str]:
    """``args`` with every ``--debug`` (before a ``--``) moved to the front: it is accepted anywhere."""
    cut = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:cut] if a != "--debug"]
    if len(head) == cut:
        return list(args)
    return ["--debug", *head, *args[cut:]]


class LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _debug_first(list(args)))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:  # pragma: no cover - packaging error
            raise click.ClickException(f"command {name!r} is unavailable: {exc}") from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, HELP.get(n, "")) for n in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="graphxform")
@click.option("--debug", is_flag=True, help="Show tracebacks and lint the graph after every rule (accepted "
                                             "anywhere on the command line).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug logs).")
@click.option("--load-ops", "load_ops", multiple=True, metavar="MODULE",
              help="Import this Python module (or load this op library .so) first, for models with custom ops; "
                   "repeatable. Known libraries such as tensorflow_text are loaded when a graph needs them.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, load_ops: tuple[str, ...]) -> None:
    """graphxform: SavedModel -> graph transforms -> servable SavedModel.

    \b
    Examples:
      graphxform inspect fixtures/estimator_dnn
      graphxform optimize fixtures/estimator_dnn /tmp/dnn_opt
      graphxform --load-ops tensorflow_text inspect text_model/
      graphxform transform in.pb out.pb --inputs x --outputs y \\
          --transforms "remove_nodes(op=Identity) fold_constants(ignore_errors=true)"
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if not verbose and not {"-h", "--help"} & set(sys.argv[1:]) and ctx.invoked_subcommand not in NO_TENSORFLOW:
        _quiet_tensorflow_import()
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        # TensorFlow logs some errors it recovers from with a traceback (an unreadable fingerprint.pb while
        # tf.saved_model.load goes on): -v shows them; what graphxform cannot recover from is its error line.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        logging.getLogger("tensorflow").setLevel(logging.CRITICAL)
        logging.getLogger("absl").setLevel(logging.CRITICAL)
    if load_ops:
        from graphxform.core.oplibs import load_op_modules

        load_op_modules(load_ops)


def _quiet_tensorflow_import() -> None:
    """Import TensorFlow with file descriptor 2 silenced: its C++ start-up banner bypasses every log level."""
    if "tensorflow" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded use)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
        except Exception:  # noqa: BLE001 - re-raised below with stderr restored
            os.dup2(saved, 2)
            raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and maps errors to exit codes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args[: args.index("--") if "--" in args else len(args)]
    try:
        cli.main(args=argv, prog_name="graphxform", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001
        from graphxform.core.errors import GraphxformError

        if debug:  # the traceback, then the same error line and exit code as without --debug
            import traceback

            traceback.print_exc()
        if isinstance(exc, GraphxformError):
            click.echo(f"error: {one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        hint = "" if debug else " (run with --debug for the traceback)"
        click.echo(f"error: {type(exc).__name__}: {one_line(str(exc))}{hint}", err=True)
        sys.exit(3)
    sys.exit(0)


#: Lines of a TensorFlow error that open a stack trace: they and the indented lines after them are dropped.
_TRACE_HEADS = ("Original stack trace", "Detected at node", "Traceback (most recent call last)")
#: Longest error line printed (the full message is shown with --debug).
MAX_ERROR_CHARS = 2000


def one_line(message: str) -> str:
    """``message`` on one line: stack traces inside TensorFlow's multi-line errors are dropped, the rest joined."""
    kept: list[str] = []
    in_trace = False
    for raw in message.splitlines():
        line = raw.strip()
        if line.startswith(_TRACE_HEADS):
            in_trace = True
            continue
        if in_trace and (raw[:1].isspace() or line.startswith("File ") or not line):
            continue
        in_trace = False
        if line and not line.startswith("[[{{node"):
            kept.append(line)
    text = " ".join(kept) or " ".join(message.split())
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS].rstrip() + " … (run with --debug for the full message)"
    return text
