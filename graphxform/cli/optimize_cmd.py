"""``graphxform optimize IN OUT``: load, freeze, run the default pipeline, export a servable, verify it."""
from __future__ import annotations

from typing import Any

import click

from graphxform.cli.common import console, emit_json, err_console, json_option, tags_option

STAGE_LABELS = {"load": "loading", "inputs": "preparing verification inputs", "freeze": "freezing variables",
                "transform": "running rules", "variables": "writing the kept variables", "export": "exporting",
                "verify": "verifying against the input"}


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


class _Progress:
    """Shows what ``optimize`` is doing on stderr: a spinner while a stage runs, a line when it is done."""

    def __init__(self) -> None:
        self.status = err_console.status("starting…")
        self.status.start()

    def __call__(self, stage: str, status: str, info: dict[str, Any]) -> None:
        secs = info.get("seconds")
        if stage.startswith("rule:"):
            name = stage[5:]
            if status == "start":
                self.status.update(f"round {info.get('round', '?')}: {name}…")
            elif status == "done":
                self.status.update(f"round {info.get('round', '?')}: {name} ({info.get('count', 0)} rewrites, "
                                   f"{info.get('nodes', '?')} nodes)")
            elif status == "summary":
                err_console.print(f"    [cyan]{name:<22}[/cyan] {info.get('count', 0):>5} rewrites"
                                  + (f"  {secs:7.3f} s" if secs is not None else ""), highlight=False)
            return
        if status == "start":
            self.status.update(STAGE_LABELS.get(stage, stage) + "…")
            return
        extra = []
        if "nodes" in info:
            extra.append(f"{info['nodes']} nodes")
        if info.get("kept"):
            extra.append(f"{info['kept']} variables kept")
        if "bytes" in info:
            extra.append(_human_bytes(int(info["bytes"])))
        if "source" in info:
            extra.append(str(info["source"]))
        if "ok" in info:
            extra.append("ok" if info["ok"] else "[red]beyond tolerance[/red]")
        if status == "failed":  # the one-line error that follows says what failed
            return
        err_console.print(f"[green]✓[/green] {stage:<10} {secs or 0:7.2f} s  " + ", ".join(extra), highlight=False)

    def stop(self) -> None:
        self.status.stop()


def print_report(report: Any) -> None:
    from rich.table import Table

    from graphxform.cli.verify_cmd import comparison_table, loader_table, print_loader_problems

    summary = Table(title=f"{report.input} → {report.output}", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    summary.add_row("size on disk", f"{_human_bytes(report.size_before)} → {_human_bytes(report.size_after)} "
                                    f"({report.size_ratio:.2f}×)")
    summary.add_row("nodes", f"{report.nodes_loaded} loaded, {report.nodes_frozen} frozen → {report.nodes_after}")
    summary.add_row("transforms", " ".join(report.transforms))
    summary.add_row("signatures", ", ".join(report.signatures))
    if report.kept_variables:
        kept = report.kept_variables
        summary.add_row("kept variables", f"{len(kept)} in variables/, {_human_bytes(sum(k['bytes'] for k in kept))} "
                                          f"({', '.join(sorted({k['dtype'] for k in kept}))})")
    summary.add_row("time", ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items()))
    console.print(summary)
    rules = Table(title="rules")
    rules.add_column("rule")
    rules.add_column("rewrites", justify="right")
    rules.add_column("seconds", justify="right")
    for name, st in report.rules.items():
        rules.add_row(name, str(st.count), f"{st.seconds:.3f}")
    console.print(rules)
    changes = report.op_changes()
    if changes:
        console.print("op changes: " + ", ".join(f"{op} {d:+d}" for op, d in sorted(changes.items(),
                                                                                   key=lambda kv: kv[1])))
    v = report.verification
    if v is None:
        console.print("[yellow]not verified[/yellow]: " + ("; ".join(report.notes) or "--no-verify"))
        return
    console.print(comparison_table(v, title=f"verification (inputs: {v.inputs_source}; "
                                            + ("lossy: differences reported" if v.lossy else
                                               f"rtol={v.rtol:g}, atol={v.atol:g}") + ")"))
    if v.loaders:
        console.print(loader_table(v, title=f"{report.output} in TensorFlow's loaders"))
    print_loader_problems(v)
    for m in v.missing:
        console.print(f"[red]missing:[/red] {m}")
    verdict = "[green]PASS[/green]" if v.ok else "[red]FAIL[/red]"
    console.print(f"{verdict}: {v.summary()}")


@click.command("optimize")
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
@click.option("--inputs", "inputs", type=click.Path(exists=True, dir_okay=False),
              help="Verification inputs (.npz, keys '<signature>/<input>' or '<input>'); default: synthesized.")
@click.option("--input-names", default=None,
              help="Frozen .pb/.pbtxt input: its input tensors, comma separated (makes a serving_default signature).")
@click.option("--output-names", default=None, help="Frozen .pb/.pbtxt input: its output tensors, comma separated.")
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
def optimize_cmd(in_path: str, out_path: str, quantize: str, transforms: str | None, tags: str | None, force: bool,
                 no_verify: bool, inputs: str | None, input_names: str | None, output_names: str | None,
                 allow_no_signatures: bool, loaders: str, rtol: float, atol: float, keep_variables: bool | None,
                 keep_min_bytes: int | None, do_bisect: bool, as_json: bool) -> None:
    """Optimize the model IN into a servable SavedModel OUT and check it against IN.

    Loads IN (SavedModel or frozen .pb/.pbtxt), freezes it, runs remove_identity, merge_duplicates,
    strip_unused, fold_constants, fold_batch_norms and quantize_weights (unless --quantize none),
    writes OUT atomically (OUT ending in .pb/.pbtxt gives a frozen GraphDef), then loads OUT with each
    of TensorFlow's loaders (TF Serving's C++ LoadSavedModel, tf.saved_model.load, the TF1 loader) and
    runs every signature through each on the same inputs as IN. Exit code 0 on success; 1 when a loader
    refuses OUT, a float pipeline (--quantize none) is beyond tolerance or a quantized one gives broken
    outputs — OUT is kept for inspection; 2 on errors (nothing written), including a SavedModel OUT
    without signatures (see --allow-no-signatures).

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

    progress = _Progress()
    try:
        report = optimize(in_path, out_path, quantize=quantize, transforms=transforms, tags=tags, force=force,
                          verify=not no_verify, inputs=inputs, rtol=rtol, atol=atol, progress=progress,
                          graph_inputs=input_names, graph_outputs=output_names,
                          allow_no_signatures=allow_no_signatures,
                          loaders=[x.strip() for x in loaders.split(",") if x.strip()],
                          keep_variables=keep_variables, keep_min_bytes=keep_min_bytes)
    finally:
        progress.stop()
    if as_json:
        emit_json(report.to_dict())
    else:
        print_report(report)
    if not report.ok:
        assert report.verification is not None
        culprit = ""
        if do_bisect:
            from graphxform.jobs.bisect import bisect

            with err_console.status("bisecting: replaying the pipeline…"):
                found = bisect(in_path, transforms, quantize=quantize, inputs=inputs, rtol=rtol, atol=atol,
                               lossy=report.lossy, tags=tags, graph_inputs=input_names, graph_outputs=output_names)
            if not as_json:
                console.print(found.summary(), highlight=False, markup=False)
            culprit = "; " + found.summary()
        raise VerificationError(
            report.verification.failure_message()
            + f" — {out_path} was written; inspect it, or use --quantize none / fewer --transforms" + culprit)
