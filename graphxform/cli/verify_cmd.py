"""``graphxform verify A B``: run two models on the same inputs and compare every signature output."""
from __future__ import annotations

from typing import Any

import click

from graphxform.cli.common import console, emit_json, err_console, json_option, tags_option
from graphxform.jobs.compare import BROKEN_AGREEMENT, BROKEN_REL_L2


def format_number(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def comparison_table(report: Any, title: str | None = None) -> Any:
    """A rich table of a :class:`~graphxform.jobs.verify.VerifyReport`: one row per signature output, with the worst
    comparison over the loaders that ran the candidate (``--json`` has every loader's row)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    loaders = list(dict.fromkeys(c.loader for c in report.outputs))
    several = len(loaders) > 1
    columns = [("signature", {}), ("output", {}), ("dtype", {}), ("shape", {}),
               ("max abs diff", {"justify": "right"}), ("max rel diff", {"justify": "right"}),
               ("class agreement", {"justify": "right"}), ("status", {})]
    for col, kw in columns:
        table.add_column(col, **kw)

    def failed(c: Any) -> bool:
        return bool(c.broken or (not report.lossy and not c.within_tolerance))

    groups: dict[tuple[str, str], list[Any]] = {}
    for c in report.outputs:
        groups.setdefault((c.signature, c.output), []).append(c)
    for rows in groups.values():
        bad = [c for c in rows if failed(c)]
        c = max(bad or rows, key=lambda r: (r.max_abs_diff or 0.0, r.mismatches))
        if bad:
            status = f"[red]FAIL[/red] {c.note}".rstrip()
            if several:
                status += f" ({', '.join(r.loader for r in bad)})"
        elif not c.within_tolerance:
            status = "[yellow]differs[/yellow]"
        else:
            status = "[green]ok[/green]" + (f" ×{len(rows)}" if several else "")
        agree = "-" if c.class_agreement is None else f"{100 * c.class_agreement:.1f}%"
        diff_abs = format_number(c.max_abs_diff) if c.max_abs_diff is not None else (
            f"{c.mismatches}/{c.size} differ" if c.mismatches else "equal")
        table.add_row(c.signature, c.output, c.dtype, "x".join(map(str, c.shape)) or "scalar", diff_abs,
                      format_number(c.max_rel_diff), agree, status)
    return table


def loader_table(report: Any, title: str | None = None) -> Any:
    """A rich table with one row per TensorFlow loader that ran the candidate: loaded or not, outputs, diffs."""
    from rich.table import Table

    table = Table(title=title or "candidate in TensorFlow's loaders")
    for col, kw in (("loader", {}), ("loads & runs", {}), ("outputs ok", {"justify": "right"}),
                    ("max abs diff", {"justify": "right"}), ("max rel diff", {"justify": "right"}),
                    ("seconds", {"justify": "right"})):
        table.add_column(col, **kw)
    for row in report.loader_summary():
        table.add_row(f"{row['loader']}: {row['description']}",
                      "[red]no[/red]" if row["error"] else "[green]yes[/green]",
                      f"{row['outputs_ok']}/{row['outputs']}", format_number(row["max_abs_diff"]),
                      format_number(row["max_rel_diff"]), f"{row['seconds']:.2f}")
    return table


def print_loader_problems(report: Any) -> None:
    for r in report.refused:
        console.print(f"[red]{r.key} refused:[/red] {r.error}", highlight=False)
    for m in report.extra:
        console.print(f"[red]extra:[/red] {m}", highlight=False)


def print_report(report: Any) -> None:
    console.print(comparison_table(report, title=f"{report.reference} → {report.candidate} "
                                                 f"(inputs: {report.inputs_source})"))
    if report.loaders:
        console.print(loader_table(report))
    print_loader_problems(report)
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
def verify_cmd(reference: str, candidate: str, inputs: str | None, examples: str | None, signatures: tuple[str, ...],
               rtol: float, atol: float, lossy: bool, batch: int, seed: int, tags: str | None, loaders: str,
               do_bisect: bool,
               transforms: str | None, rules_files: tuple[str, ...], as_json: bool) -> None:
    """Run REFERENCE and CANDIDATE on the same inputs and compare every output of every signature.

    REFERENCE runs once (a SavedModel through the TF1 loader). CANDIDATE is loaded by each of
    TensorFlow's loaders — TF Serving's C++ LoadSavedModel, tf.saved_model.load and the TF1 loader (a
    .pb: the C++ session, wrap_function and import_graph_def, with its .signatures.json) — and every
    signature runs through each. Without --inputs/--examples, inputs are synthesized from REFERENCE's
    signatures (serialized tf.Example inputs are built from its parse op's features and vocabularies).
    Exit code 0 when every loader loads CANDIDATE, lists exactly REFERENCE's signatures and gives outputs
    within tolerance; 1 when not (a refusal is reported with TensorFlow's message).

    \b
    Examples:
      graphxform verify fixtures/estimator_dnn /tmp/dnn_opt
      graphxform verify model/ opt/ --inputs samples.npz --signature serving_default --json
      graphxform verify model/ out/ --bisect --rules my_rules.py --transforms "remove_identity my_rule"
    """
    from graphxform.core.errors import VerificationError
    from graphxform.jobs.verify import verify

    tag_list = [t for t in tags.split(",") if t] if tags else None
    loader_list = [x.strip() for x in loaders.split(",") if x.strip()]
    if not as_json:
        with err_console.status("running both models…"):
            report = verify(reference, candidate, inputs=inputs, examples=examples,
                            signatures=list(signatures) or None, rtol=rtol, atol=atol, lossy=lossy, tags=tag_list,
                            batch=batch, seed=seed, loaders=loader_list)
        print_report(report)
    else:
        report = verify(reference, candidate, inputs=inputs, examples=examples, signatures=list(signatures) or None,
                        rtol=rtol, atol=atol, lossy=lossy, tags=tag_list, batch=batch, seed=seed, loaders=loader_list)
    if not report.ok and do_bisect:
        from graphxform.jobs.bisect import bisect

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
