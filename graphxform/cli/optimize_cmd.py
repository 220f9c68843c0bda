"""``graphxform optimize IN OUT``: load, freeze, run the default pipeline, export a servable, verify it."""
from __future__ import annotations

import ast
import importlib.util
from typing import Any

import click

from graphxform.cli.common import (
    StageProgress,
    console,
    emit_json,
    human_bytes,
    json_option,
    new_table,
    npz_inputs_option,
    plural,
    print_line,
    synthesize_missing_option,
    tags_option,
    timings_option,
)

STAGE_LABELS = {"load": "loading", "inputs": "preparing verification inputs", "freeze": "freezing variables",
                "transform": "running rules", "variables": "writing the kept variables", "export": "exporting",
                "verify": "verifying against the input"}


def float_pipeline() -> tuple[str, ...]:
    """The default pipeline's rules before quantization: ``FLOAT_PIPELINE`` of :mod:`graphxform.engine.pipeline`.

    Read from that module's source when it is a literal (``optimize --help`` then needs no TensorFlow import),
    imported otherwise.
    """
    spec = importlib.util.find_spec("graphxform.engine.pipeline")
    if spec is not None and spec.origin:
        try:
            with open(spec.origin, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in tree.body:
                target = node.target if isinstance(node, ast.AnnAssign) else (
                    node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
                if isinstance(target, ast.Name) and target.id == "FLOAT_PIPELINE" and node.value is not None:
                    value = ast.literal_eval(node.value)
                    if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
                        return tuple(value)
        except (OSError, SyntaxError, ValueError):
            pass
    from graphxform.engine.pipeline import FLOAT_PIPELINE

    return tuple(FLOAT_PIPELINE)


class _OptimizeCommand(click.Command):
    """Fills the default pipeline into the help text from the code, when the help is shown."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.help and "{pipeline}" in self.help:
            self.help = self.help.replace("{pipeline}", ", ".join(float_pipeline()))
        super().format_help_text(ctx, formatter)


def print_report(report: Any) -> None:
    from rich.markup import escape

    from graphxform.cli.transform_cmd import print_ignored
    from graphxform.cli.verify_cmd import comparison_table, loader_table, print_synthesized

    summary = new_table(escape(f"{report.input} → {report.output}"), "what", "value", show_header=False)
    summary.add_row("size on disk", f"{human_bytes(report.size_before)} → {human_bytes(report.size_after)} "
                                    f"({report.size_ratio:.2f}×)")
    summary.add_row("nodes", f"{report.nodes_loaded} loaded, {report.nodes_frozen} frozen → {report.nodes_after}")
    summary.add_row("transforms", escape(" ".join(report.transforms)))
    summary.add_row("signatures", escape(", ".join(report.signatures)))
    if report.kept_variables:
        kept = report.kept_variables
        summary.add_row("kept variables", f"{len(kept)} in variables/, {human_bytes(sum(k['bytes'] for k in kept))} "
                                          f"({', '.join(sorted({k['dtype'] for k in kept}))})")
    summary.add_row("time", ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items()))
    console.print(summary)
    rules = new_table(f"rules ({plural(report.rounds, 'round')})", "rule", ("rewrites", "num"), ("seconds", "num"))
    for name, st in report.rules.items():
        rules.add_row(escape(name), str(st.count), f"{st.seconds:.3f}")
    console.print(rules)
    print_ignored(report.ignored_errors)
    changes = report.op_changes()
    if changes:
        print_line("op changes: " + ", ".join(f"{op} {d:+d}" for op, d in sorted(changes.items(),
                                                                                key=lambda kv: (kv[1], kv[0]))),
                   markup=False)
    v = report.verification
    if v is None:
        print_line("[yellow]not verified[/yellow]: " + escape("; ".join(report.notes) or "--no-verify"))
        return
    console.print(comparison_table(v, title=f"verification (inputs: {v.inputs_source}; "
                                            + ("lossy: differences reported" if v.lossy else
                                               f"rtol={v.rtol:g}, atol={v.atol:g}") + ")"))
    if v.loaders:
        console.print(loader_table(v, title=f"{report.output} in TensorFlow's loaders"))
    print_synthesized(v)
    verdict = "[green]PASS[/green]" if v.ok else "[red]FAIL[/red]"
    print_line(f"{verdict}: {escape(v.summary())}")


@click.command("optimize", cls=_OptimizeCommand)
@click.argument("in_path", metavar="IN", type=click.Path())
@click.argument("out_path", metavar="OUT", type=click.Path())
@click.option("--quantize", type=click.Choice(["int8", "float16", "none"]), default="int8", show_default=True,
              help="Weight storage type; 'none' keeps float32 and verifies with rtol/atol.")
@click.option("--transforms", default=None,
              help='Rules to run instead of the default pipeline, e.g. "remove_identity fold_constants" '
                   "(GTT syntax accepted; replaces quantization too).")
@tags_option
@click.option("--force", is_flag=True, help="Replace OUT if it exists (atomically).")
@click.option("--no-verify", "no_verify", is_flag=True, help="Skip running both models to compare outputs.")
@npz_inputs_option
@synthesize_missing_option
@click.option("--input-names", default=None, metavar="NAMES",
              help="Frozen .pb/.pbtxt input: its input tensors, comma separated (makes a serving_default signature).")
@click.option("--output-names", default=None, metavar="NAMES",
              help="Frozen .pb/.pbtxt input: its output tensors, comma separated.")
@click.option("--allow-no-signatures", is_flag=True,
              help="Write a SavedModel even when the input names no inputs/outputs (no signature: nothing can call "
                   "it; refused otherwise, exit 2).")
@click.option("--loaders", "loaders", default="c++,tf2,tf1", show_default=True,
              help="TensorFlow loaders that must load OUT and run every signature: c++ (TF Serving's "
                   "LoadSavedModel), tf2 (tf.saved_model.load), tf1 (TF1 loader).")
@click.option("--rtol", type=float, default=1e-5, show_default=True, help="Relative tolerance (float pipeline).")
@click.option("--atol", type=float, default=1e-6, show_default=True, help="Absolute tolerance (float pipeline).")
@click.option("--keep-variables/--no-keep-variables", "keep_variables", default=None,
              help="Leave variables of at least --keep-min-bytes in the checkpoint (variables/), restored by a saver, "
                   "instead of freezing them into the graph. Default: only when the frozen graph would pass "
                   "protobuf's 2 GiB limit.")
@click.option("--keep-min-bytes", type=click.IntRange(min=0), default=None, metavar="BYTES",
              help="With --keep-variables: smallest variable kept (default 1048576; 0 keeps every resource variable).")
@click.option("--bisect", "do_bisect", is_flag=True,
              help="When verification fails, replay the pipeline to name the first rewrite that changed the outputs.")
@json_option
@timings_option
def optimize_cmd(in_path: str, out_path: str, quantize: str, transforms: str | None, tags: str | None, force: bool,
                 no_verify: bool, inputs: str | None, synthesize_missing: bool, input_names: str | None,
                 output_names: str | None, allow_no_signatures: bool, loaders: str, rtol: float, atol: float,
                 keep_variables: bool | None, keep_min_bytes: int | None, do_bisect: bool, as_json: bool,
                 timings: bool) -> None:
    """Optimize the model IN into a servable SavedModel OUT and check it against IN.

    Loads IN (SavedModel or frozen .pb/.pbtxt), freezes it, runs the default pipeline — {pipeline} —
    then quantize_weights in a stage of its own (unless --quantize none), writes OUT atomically (OUT
    ending in .pb/.pbtxt gives a frozen GraphDef), then loads OUT with each of TensorFlow's loaders
    (TF Serving's C++ LoadSavedModel, tf.saved_model.load, the TF1 loader) and runs every signature
    through each on the same inputs as IN. --inputs are checked against IN's signatures before
    anything is written. Exit code 0 on success; 1 when a loader refuses OUT, a float pipeline
    (--quantize none) is beyond tolerance or a quantized one gives broken outputs — OUT is kept for
    inspection; 2 on errors (nothing written), including a SavedModel OUT without signatures (see
    --allow-no-signatures); 130 when interrupted: nothing is left half-written, and an OUT written
    but not yet verified is removed (--no-verify keeps it).

    \b
    Examples:
      graphxform optimize fixtures/estimator_dnn /tmp/dnn_opt
      graphxform optimize model/ opt/ --quantize none --json > report.json
      graphxform optimize model/ opt/ --transforms "remove_identity strip_unused" --force
      graphxform optimize frozen.pb opt/ --input-names input --output-names output
      graphxform optimize huge_model/ opt/ --keep-variables --quantize int8
    """
    from graphxform.core.errors import VerificationError
    from graphxform.jobs.optimize import optimize

    with StageProgress(STAGE_LABELS) as progress:
        report = optimize(in_path, out_path, quantize=quantize, transforms=transforms, tags=tags, force=force,
                          verify=not no_verify, inputs=inputs, rtol=rtol, atol=atol, progress=progress,
                          graph_inputs=input_names, graph_outputs=output_names,
                          allow_no_signatures=allow_no_signatures, synthesize_missing=synthesize_missing,
                          loaders=[x.strip() for x in loaders.split(",") if x.strip()],
                          keep_variables=keep_variables, keep_min_bytes=keep_min_bytes)
    if as_json and not (do_bisect and not report.ok):
        emit_json(report.to_dict(), timings)
    elif not as_json:
        print_report(report)
    if not report.ok:
        assert report.verification is not None
        culprit = ""
        if do_bisect:
            from graphxform.jobs.bisect import bisect

            with StageProgress() as progress:
                progress.update("bisecting: replaying the pipeline")
                found = bisect(in_path, transforms, quantize=quantize, inputs=inputs, rtol=rtol, atol=atol,
                               lossy=report.lossy, tags=tags, graph_inputs=input_names, graph_outputs=output_names,
                               synthesize_missing=synthesize_missing, status=progress.update)
            if as_json:
                emit_json({**report.to_dict(), "bisect": found.to_dict()}, timings)
            else:
                print_line(found.summary(), markup=False)
            culprit = "; " + found.summary()
        if report.lossy:
            advice = "inspect it, or use --quantize none / fewer --transforms"
        else:
            advice = "inspect it; " + ("" if do_bisect else "--bisect names the rewrite that changed the outputs, ") \
                + "--rtol/--atol loosen the check"
        raise VerificationError(f"{report.verification.failure_message()} — {out_path} was written; "
                                f"{advice}{culprit}")
