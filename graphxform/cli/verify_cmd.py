"""``graphxform verify A B``: run two models on the same inputs and compare every signature output."""
from __future__ import annotations

from typing import Any

import click

from graphxform.cli.common import console, emit_json, err_console, json_option, tags_option


def format_number(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def comparison_table(report: Any, title: str | None = None) -> Any:
    """A rich table of a :class:`~graphxform.verify.VerifyReport` (one row per signature output)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col, kw in (("signature", {}), ("output", {}), ("dtype", {}), ("shape", {}),
                    ("max abs diff", {"justify": "right"}), ("max rel diff", {"justify": "right"}),
                    ("class agreement", {"justify": "right"}), ("status", {})):
        table.add_column(col, **kw)
    for c in report.outputs:
        if c.broken or (not report.lossy and not c.within_tolerance):
            status = f"[red]FAIL[/red] {c.note}".rstrip()
        elif not c.within_tolerance:
            status = "[yellow]differs[/yellow]"
        else:
            status = "[green]ok[/green]"
        agree = "-" if c.class_agreement is None else f"{100 * c.class_agreement:.1f}%"
        diff_abs = format_number(c.max_abs_diff) if c.max_abs_diff is not None else (
            f"{c.mismatches}/{c.size} differ" if c.mismatches else "equal")
        table.add_row(c.signature, c.output, c.dtype, "x".join(map(str, c.shape)) or "scalar", diff_abs,
                      format_number(c.max_rel_diff), agree, status)
    return table


def print_report(report: Any) -> None:
    console.print(comparison_table(report, title=f"{report.reference} → {report.candidate} "
                                                 f"(inputs: {report.inputs_source})"))
    for m in report.missing:
        console.print(f"[red]missing:[/red] {m}")
    verdict = "[green]PASS[/green]" if report.ok else "[red]FAIL[/red]"
    mode = "lossy" if report.lossy else f"rtol={report.rtol:g} atol={report.atol:g}"
    console.print(f"{verdict} ({mode}): {report.summary()}")


@click.command("verify")
@click.argument("reference", type=click.Path(exists=True))
@click.argument("candidate", type=click.Path(exists=True))
@click.option("--inputs", "inputs", type=click.Path(exists=True, dir_okay=False),
              help="Inputs as .npz; keys '<signature_key>/<input_key>' or '<input_key>' (for every signature).")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False),
              help="A TFRecord of serialized tf.Example, fed to every input the graph parses as examples.")
@click.option("--signature", "signatures", multiple=True, help="Compare only this signature (repeatable).")
@click.option("--rtol", type=float, default=1e-5, show_default=True, help="Relative tolerance.")
@click.option("--atol", type=float, default=1e-6, show_default=True, help="Absolute tolerance.")
@click.option("--lossy", is_flag=True,
              help="Quantized candidate: report differences, fail only on broken outputs (shape, NaN, class flips).")
@click.option("--batch", type=int, default=4, show_default=True, help="Batch size of synthesized inputs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of synthesized inputs.")
@tags_option
@click.option("--bisect", "do_bisect", is_flag=True,
              help="On a mismatch, replay the pipeline on REFERENCE to name the first rewrite that changed the "
                   "outputs (give the pipeline that made CANDIDATE with --transforms/--rules).")
@click.option("--transforms", default=None,
              help="With --bisect: the rules that made CANDIDATE (default: the default pipeline; with --lossy, "
                   "quantize_weights too).")
@click.option("--rules", "rules_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="With --bisect: a Python file of custom rules named in --transforms (repeatable).")
@json_option
def verify_cmd(reference: str, candidate: str, inputs: str | None, examples: str | None, signatures: tuple[str, ...],
               rtol: float, atol: float, lossy: bool, batch: int, seed: int, tags: str | None, do_bisect: bool,
               transforms: str | None, rules_files: tuple[str, ...], as_json: bool) -> None:
    """Run REFERENCE and CANDIDATE on the same inputs and compare every output of every signature.

    Without --inputs/--examples, inputs are synthesized from REFERENCE's signatures (serialized
    tf.Example inputs are built from its parse op's features and vocabularies). Exit code 0 when every
    output is within tolerance, 1 when not.

    \b
    Examples:
      graphxform verify fixtures/estimator_dnn /tmp/dnn_opt
      graphxform verify model/ opt/ --inputs samples.npz --signature serving_default --json
      graphxform verify model/ out/ --bisect --rules my_rules.py --transforms "remove_identity my_rule"
    """
    from graphxform.errors import VerificationError
    from graphxform.verify import verify

    tag_list = [t for t in tags.split(",") if t] if tags else None
    if not as_json:
        with err_console.status("running both models…"):
            report = verify(reference, candidate, inputs=inputs, examples=examples,
                            signatures=list(signatures) or None, rtol=rtol, atol=atol, lossy=lossy, tags=tag_list,
                            batch=batch, seed=seed)
        print_report(report)
    else:
        report = verify(reference, candidate, inputs=inputs, examples=examples, signatures=list(signatures) or None,
                        rtol=rtol, atol=atol, lossy=lossy, tags=tag_list, batch=batch, seed=seed)
    if not report.ok and do_bisect:
        from graphxform.bisection import bisect

        with err_console.status("bisecting: replaying the pipeline on the reference…"):
            found = bisect(reference, transforms, rules_files=rules_files, quantize="int8" if lossy else "none",
                           inputs=inputs, rtol=rtol, atol=atol, lossy=lossy, tags=tag_list)
        if as_json:
            emit_json({**report.to_dict(), "bisect": found.to_dict()})
        else:
            console.print(found.summary(), highlight=False, markup=False)
        raise VerificationError(report.failure_message() + "; " + found.summary())
    if as_json:
        emit_json(report.to_dict())
    if not report.ok:
        raise VerificationError(report.failure_message())
