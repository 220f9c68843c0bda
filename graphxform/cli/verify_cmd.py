"""``graphxform verify A B``: run two models on the same inputs and compare every signature output."""
from __future__ import annotations

from typing import Any

import click

from graphxform.cli.common import (
    StageProgress,
    console,
    emit_json,
    json_option,
    new_table,
    npz_inputs_option,
    print_line,
    synthesize_missing_option,
    tags_option,
    timings_option,
)
from graphxform.jobs.compare import BROKEN_AGREEMENT, BROKEN_REL_L2


def format_number(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def comparison_table(report: Any, title: str | None = None) -> Any:
    """A rich table of a :class:`~graphxform.jobs.verify.VerifyReport`: a section per signature (sorted), a row per
    output with the worst comparison over the loaders that ran the candidate (``--json`` has every loader's row).
    What failed is said by the error line that follows a failure, not here."""
    from rich.markup import escape

    table = new_table(title and escape(title), "signature / output", "type", ("max abs\ndiff", "num"),
                      ("max rel\ndiff", "num"), ("class\nagreement", "num"), "status")
    several = len({c.loader for c in report.outputs}) > 1

    def failed(c: Any) -> bool:
        return bool(c.broken or (not report.lossy and not c.within_tolerance))

    groups: dict[str, dict[str, list[Any]]] = {}
    for c in report.outputs:
        groups.setdefault(c.signature, {}).setdefault(c.output, []).append(c)
    for signature, outputs in sorted(groups.items()):
        table.add_row(f"[bold]{escape(signature)}[/bold]", "", "", "", "", "")
        for i, (output, rows) in enumerate(sorted(outputs.items())):
            bad = [c for c in rows if failed(c)]
            c = max(bad or rows, key=lambda r: (r.max_abs_diff or 0.0, r.mismatches))
            if bad:
                status = "[red]FAIL[/red]" + (f" {', '.join(r.loader for r in bad)}" if several else "")
            elif not c.within_tolerance:
                status = "[yellow]differs[/yellow]"
            else:
                status = "[green]ok[/green]" + (f" ×{len(rows)}" if several else "")
            agree = "-" if c.class_agreement is None else f"{100 * c.class_agreement:.1f}%"
            diff_abs = format_number(c.max_abs_diff) if c.max_abs_diff is not None else (
                f"{c.mismatches}/{c.size} differ" if c.mismatches else "equal")
            table.add_row(f"  {escape(output)}", f"{c.dtype} {'x'.join(map(str, c.shape)) or 'scalar'}", diff_abs,
                          format_number(c.max_rel_diff), agree, status, end_section=i == len(outputs) - 1)
    return table


def loader_table(report: Any, title: str | None = None) -> Any:
    """A rich table with one row per TensorFlow loader that ran the candidate: loaded or not, outputs, diffs."""
    from rich.markup import escape

    table = new_table(escape(title or "candidate in TensorFlow's loaders"), ("loader", "word"), "what",
                      ("loads", "word"), ("outputs\nok", "num"), ("max abs\ndiff", "num"), ("max rel\ndiff", "num"),
                      ("seconds", "num"))
    for row in report.loader_summary():
        table.add_row(escape(row["loader"]), escape(row["description"]),
                      "[red]no[/red]" if row["error"] else "[green]yes[/green]",
                      f"{row['outputs_ok']}/{row['outputs']}", format_number(row["max_abs_diff"]),
                      format_number(row["max_rel_diff"]), f"{row['seconds']:.2f}")
    return table


def print_synthesized(report: Any) -> None:
    for key, names in sorted(report.synthesized.items()):
        print_line(f"[yellow]synthesized[/yellow] (--synthesize-missing): signature {key}: {', '.join(names)}",
                   markup=True)


def print_report(report: Any) -> None:
    """The tables and the verdict; what failed is said once, by the error line that follows a failure."""
    console.print(comparison_table(report, title=f"{report.reference} → {report.candidate} "
                                                 f"(inputs: {report.inputs_source})"))
    if report.loaders:
        console.print(loader_table(report))
    print_synthesized(report)
    verdict = "[green]PASS[/green]" if report.ok else "[red]FAIL[/red]"
    mode = "lossy" if report.lossy else f"rtol={report.rtol:g} atol={report.atol:g}"
    print_line(f"{verdict} ({mode}): {report.summary()}")


def failure_line(report: Any) -> str:
    """The error line of a failed verification: what failed, and the obvious next step when there is one."""
    hint = report.hint()
    return report.failure_message() + (f" — {hint}" if hint else "")


VERIFY_LABELS = {"verify": "verifying"}


@click.command("verify")
@click.argument("reference", type=click.Path(exists=True))
@click.argument("candidate", type=click.Path(exists=True))
@npz_inputs_option
@click.option("--examples", type=click.Path(exists=True, dir_okay=False), metavar="FILE.tfrecord",
              help="A TFRecord of serialized tf.Example, fed to every input the graph parses as examples.")
@synthesize_missing_option
@click.option("--signature", "signatures", multiple=True, help="Compare only this signature (repeatable).")
@click.option("--rtol", type=float, default=1e-5, show_default=True, help="Relative tolerance.")
@click.option("--atol", type=float, default=1e-6, show_default=True, help="Absolute tolerance.")
@click.option("--lossy", is_flag=True,
              help="Quantized candidate: report differences, fail only on broken outputs: shape or dtype changed, "
                   f"new NaN/Inf, relative L2 error above {BROKEN_REL_L2:g}, or top-1 (class/row) agreement below "
                   f"{100 * BROKEN_AGREEMENT:g}% (limits set from TFLite's dynamic-range quantization, see README).")
@click.option("--batch", type=int, default=4, show_default=True, help="Batch size of synthesized inputs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of synthesized inputs.")
@tags_option
@click.option("--loaders", "loaders", default="c++,tf2,tf1", show_default=True,
              help="TensorFlow loaders that load and run CANDIDATE: c++ (TF Serving's LoadSavedModel), tf2 "
                   "(tf.saved_model.load), tf1 (TF1 loader); for a .pb, their GraphDef counterparts.")
@click.option("--bisect", "do_bisect", is_flag=True,
              help="On a mismatch, replay the pipeline on REFERENCE to name the first rewrite that changed the "
                   "outputs (give the pipeline that made CANDIDATE with --transforms/--rules).")
@click.option("--transforms", default=None,
              help="With --bisect: the rules that made CANDIDATE (default: the default pipeline; with --lossy, "
                   "quantize_weights too).")
@click.option("--rules", "rules_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="With --bisect: a Python file of custom rules named in --transforms (repeatable).")
@json_option
@timings_option
def verify_cmd(reference: str, candidate: str, inputs: str | None, examples: str | None, synthesize_missing: bool,
               signatures: tuple[str, ...], rtol: float, atol: float, lossy: bool, batch: int, seed: int,
               tags: str | None, loaders: str, do_bisect: bool, transforms: str | None, rules_files: tuple[str, ...],
               as_json: bool, timings: bool) -> None:
    """Run REFERENCE and CANDIDATE on the same inputs and compare every output of every signature.

    REFERENCE runs once (a SavedModel through the TF1 loader). CANDIDATE is loaded by each of
    TensorFlow's loaders — TF Serving's C++ LoadSavedModel, tf.saved_model.load and the TF1 loader (a
    .pb: the C++ session, wrap_function and import_graph_def, with its .signatures.json) — and every
    signature runs through each. Without --inputs/--examples, inputs are synthesized from REFERENCE's
    signatures (serialized tf.Example inputs are built from its parse op's features and vocabularies).
    Given inputs are checked first: an npz key that names no input, a value of the wrong dtype or shape,
    or an input left out (unless --synthesize-missing) is an error (exit 2) naming the key and signature.
    Exit code 0 when every loader loads CANDIDATE, lists exactly REFERENCE's signatures and gives outputs
    within tolerance; 1 when not (a refusal is reported with TensorFlow's message).

    \b
    Examples:
      graphxform verify fixtures/estimator_dnn /tmp/dnn_opt
      graphxform verify model/ opt/ --inputs samples.npz --signature serving_default --json
      graphxform verify model/ model_int8/ --lossy
      graphxform verify model/ out/ --bisect --rules my_rules.py --transforms "remove_identity my_rule"
    """
    from graphxform.core.errors import VerificationError
    from graphxform.jobs.verify import verify

    tag_list = [t for t in tags.split(",") if t] if tags else None
    loader_list = [x.strip() for x in loaders.split(",") if x.strip()]
    with StageProgress(VERIFY_LABELS) as progress:
        report = verify(reference, candidate, inputs=inputs, examples=examples, signatures=list(signatures) or None,
                        rtol=rtol, atol=atol, lossy=lossy, tags=tag_list, batch=batch, seed=seed, loaders=loader_list,
                        synthesize_missing=synthesize_missing, progress=progress)
    if not as_json:
        print_report(report)
    if not report.ok and do_bisect:
        from graphxform.jobs.bisect import bisect

        with StageProgress() as progress:
            progress.update("bisecting: replaying the pipeline on the reference")
            found = bisect(reference, transforms, rules_files=rules_files, quantize="int8" if lossy else "none",
                           inputs=inputs, rtol=rtol, atol=atol, lossy=lossy, tags=tag_list,
                           synthesize_missing=synthesize_missing, status=progress.update)
        if as_json:
            emit_json({**report.to_dict(), "bisect": found.to_dict()}, timings)
        else:
            print_line(found.summary(), markup=False)
        raise VerificationError(report.failure_message() + "; " + found.summary())
    if as_json:
        emit_json(report.to_dict(), timings)
    if not report.ok:
        raise VerificationError(failure_line(report))
