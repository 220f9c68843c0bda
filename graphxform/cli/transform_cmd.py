"""``graphxform transform IN OUT --transforms "..."``: run rewrite rules (GTT syntax accepted) and write the result."""
from __future__ import annotations

from typing import Any

import click

from graphxform.cli.common import (
    StageProgress,
    console,
    deprecated_alias,
    emit_json,
    json_option,
    new_table,
    plural,
    print_line,
    tags_option,
    timings_option,
)


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def print_ignored(messages: list[str]) -> None:
    """Each error a rule's ``ignore_errors=true`` skipped, once."""
    from rich.markup import escape

    for msg in messages[:20]:
        print_line(f"[yellow]ignored:[/yellow] {escape(msg)}")
    if len(messages) > 20:
        print_line(f"[yellow]ignored:[/yellow] … {len(messages) - 20} more (see --json)")


def _print_table(result: dict[str, Any]) -> None:
    from rich.markup import escape

    if not result["rules"]:
        print_line(f"no rules ran; nodes: {result['nodes_before']}")
        return
    table = new_table(escape(f"{result['input']} → {result['output'] or '(not written)'}"), "rule",
                      ("applied", "num"), ("seconds", "num"), ("visited", "num"), ("nodes −", "num"),
                      ("nodes +", "num"))
    for row in result["rules"]:
        table.add_row(escape(row["rule"]), str(row["applied"]), f"{row['seconds']:.3f}", str(row["visited"]),
                      str(row["nodes_removed"]), str(row["nodes_added"]))
    console.print(table)
    print_line(f"nodes {result['nodes_before']} → {result['nodes_after']}, {plural(result['rounds'], 'round')}, "
               f"{plural(result['steps'], 'rewrite')}, {result['seconds']:.2f} s"
               + (f"; trace: {escape(str(result['trace']))}" if result.get("trace") else ""))
    print_ignored(result.get("ignored_errors", []))


def _print_explain(rule: str, rows: list[dict[str, Any]]) -> None:
    from rich.markup import escape

    if not rows:
        print_line(f"{escape(rule)}: the graph has no node it could start from")
        return
    table = new_table(escape(f"why {rule} does not fire"), "node", "op", "reason")
    for row in rows:
        reason = escape(row["reason"]) if row["reason"] is not None else "[green]would fire[/green]"
        table.add_row(escape(row["node"]), escape(row["op"] or ""), reason)
    console.print(table)


@click.command("transform")
@click.argument("in_path", metavar="IN", type=click.Path())
@click.argument("out_path", metavar="OUT", required=False, type=click.Path())
@click.option("-t", "--transforms", default=None,
              help='Rules to run, e.g. "remove_nodes(op=Identity) fold_constants(ignore_errors=true)" '
                   "(GTT syntax and names accepted). Default: the default pipeline.")
@click.option("--input-names", default=None, metavar="NAMES",
              help="Input nodes/tensors, comma separated: kept (protected); for a frozen .pb/.pbtxt they also make "
                   "the serving_default signature. (--inputs, the old spelling, is accepted.)")
@click.option("--output-names", default=None, metavar="NAMES",
              help="Output nodes/tensors, comma separated (like --input-names; --outputs is accepted).")
@deprecated_alias("--inputs", "--input-names")
@deprecated_alias("--outputs", "--output-names")
@tags_option
@click.option("--rules", "rules_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A Python file of custom rules (@register'ed Rule classes); may be repeated.")
@click.option("--explain", "explain_spec", default=None, metavar="RULE",
              help="After the pipeline ran, say for every node RULE could start from why it does not fire.")
@click.option("--trace", type=click.Path(dir_okay=False), default=None,
              help="Write every applied rewrite as JSON lines to this file.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (atomically).")
@click.option("--no-freeze", is_flag=True, help="Run the rules on the graph with its variables (most rules "
                                                  "then find little: weights are not constants).")
@click.option("--max-steps", type=int, default=None, help="Rewrite limit (default 10 × nodes + 1000).")
@click.option("--allow-no-signatures", is_flag=True,
              help="Write a SavedModel OUT even when the model has no signatures (refused otherwise, exit 2).")
@json_option
@timings_option
@click.pass_context
def transform_cmd(ctx: click.Context, in_path: str, out_path: str | None, transforms: str | None,
                  input_names: str | None, output_names: str | None, inputs_deprecated: str | None,
                  outputs_deprecated: str | None, tags: str | None, rules_files: tuple[str, ...],
                  explain_spec: str | None, trace: str | None, force: bool, no_freeze: bool, max_steps: int | None,
                  allow_no_signatures: bool, as_json: bool, timings: bool) -> None:
    """Run rewrite rules on the model IN and write it to OUT.

    IN is a SavedModel directory or a frozen .pb/.pbtxt; OUT a SavedModel directory, or a frozen GraphDef when
    it ends in .pb/.pbtxt. The model is frozen first (unless --no-freeze), the rules run together to a fixpoint
    (quantize_weights last), and OUT is written atomically. OUT may be left out with --explain. Prints a table
    per rule: rewrites applied, seconds, nodes visited, removed and added (--json: the same as JSON).

    --explain RULE runs after the pipeline, on its result: it answers "why is this node still here?". Use
    --transforms "" to explain on the loaded (frozen) graph as it is.

    \b
    Examples:
      graphxform transform in.pb out.pb --input-names x --output-names y \\
          --transforms "remove_nodes(op=Identity) fold_constants(ignore_errors=true) fold_batch_norms"
      graphxform transform model/ out/ --rules my_rules.py -t "drop_double_neg strip_unused"
      graphxform transform model/ -t "fold_constants" --explain fold_batch_norms
    """
    from graphxform.core.memory import keep_mmap_threshold
    from graphxform.jobs.transform import transform

    keep_mmap_threshold()  # the command owns its process: freed tensors go back to the system (core/memory.py)
    if out_path is None and explain_spec is None:
        raise click.UsageError("missing OUT (it may be left out only with --explain)")
    for new, old, flag in ((input_names, inputs_deprecated, "--inputs"), (output_names, outputs_deprecated,
                                                                          "--outputs")):
        if new is not None and old is not None:
            raise click.UsageError(f"{flag} and {flag[:-1]}-names say the same thing: give only {flag[:-1]}-names")
    ins = _names(input_names if input_names is not None else inputs_deprecated)
    outs = _names(output_names if output_names is not None else outputs_deprecated)
    with StageProgress() as progress:
        result = transform(in_path, out_path, transforms=transforms, inputs=ins, outputs=outs,
                           tags=tags, rules_files=rules_files, explain_spec=explain_spec, trace=trace, force=force,
                           freeze=not no_freeze, max_steps=max_steps, debug=bool((ctx.obj or {}).get("debug")),
                           allow_no_signatures=allow_no_signatures, status=progress.update,
                           progress=lambda rule, status, info: progress(f"rule:{rule}", status, info))
    if as_json:
        emit_json(result, timings)
        return
    _print_table(result)
    if "explain" in result:
        _print_explain(result["explain"]["rule"], result["explain"]["nodes"])
