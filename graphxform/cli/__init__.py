"""The ``graphxform`` command line.

Subcommands live in their own modules and are imported only when run, so
``graphxform --help`` answers without importing TensorFlow. Every command keeps one exit-code contract
(:data:`graphxform.cli.common.EXIT_CODES`): 0 success, 1 a failed verification, 2 bad input or usage (a one-line
error, nothing written), 3 an internal error (a bug), 130 interrupted; a broken pipe on stdout is not an error.
``--debug`` (anywhere on the command line) prints the traceback before the error line, with the same exit code.
"""
from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys

import click

from graphxform.cli.common import EXIT_CODES_HELP, BrokenPipe, silence_stream

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

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                          list[str]]:
        name = click.utils.make_str(args[0])
        if name not in COMMANDS and not name.startswith("-"):
            close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else f" Commands: {', '.join(COMMANDS)}."
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:  # click would exit 1 on it: the reader went away, which is no error here
            raise BrokenPipe() from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        try:
            command: click.Command = getattr(importlib.import_module(module), attr)
        except ImportError as exc:  # pragma: no cover - packaging error
            raise click.ClickException(f"command {name!r} is unavailable: {exc}") from exc
        if not command.epilog:  # every command's --help ends with the exit codes they all keep
            command.epilog = EXIT_CODES_HELP
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, HELP.get(n, "")) for n in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True,
             no_args_is_help=False, epilog=EXIT_CODES_HELP)
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
      graphxform transform in.pb out.pb --input-names x --output-names y \\
          --transforms "remove_nodes(op=Identity) fold_constants(ignore_errors=true)"
    """
    if ctx.invoked_subcommand is None:  # a bare `graphxform`: the help, and exit 0
        click.echo(ctx.get_help())
        ctx.exit(0)
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
    """Console-script entry point: runs the CLI and maps every outcome to the exit codes of ``EXIT_CODES``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args[: args.index("--") if "--" in args else len(args)]
    try:
        try:
            cli.main(args=argv, prog_name="graphxform", standalone_mode=False)
            sys.stdout.flush()
        except click.exceptions.Abort as exc:  # click turns Ctrl-C into Abort (the interrupt is its cause)
            _interrupted(exc.__cause__ if isinstance(exc.__cause__, KeyboardInterrupt) else None)
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except (BrokenPipe, BrokenPipeError):
            raise
        except Exception as exc:  # noqa: BLE001
            _error(exc, debug)
    except (BrokenPipe, BrokenPipeError):  # `graphxform inspect MODEL | head`: the reader has what it wanted
        silence_stream(sys.stdout)
        sys.exit(0)
    sys.exit(0)


def _interrupted(exc: KeyboardInterrupt | None) -> None:
    detail = str(exc) if exc is not None and exc.args else ""
    click.echo("interrupted" + (f": {detail}" if detail else ""), err=True)
    sys.exit(130)


def _error(exc: Exception, debug: bool) -> None:
    """One line on stderr for ``exc`` (after its traceback with --debug) and its exit code."""
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
    if len(text) > MAX_ERROR_CHARS:  # cut between words, never inside one
        cut = text.rfind(" ", 0, MAX_ERROR_CHARS + 1)
        text = text[:cut if cut > MAX_ERROR_CHARS // 2 else MAX_ERROR_CHARS].rstrip() + \
            " … (run with --debug for the full message)"
    return text
