"""``graphxform transform IN OUT --transforms "..."``: run rewrite rules (GTT syntax accepted) and write the result."""
from __future__ import annotations

from typing import Any

import click

from graphxform.cli.common import (
    console,
    emit_json,
    err_console,
    json_option,
    tags_option,
)


class _Status:
    """A spinner on stderr saying which rule runs (nothing is printed when stderr is not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.status = err_console.status("loading…") if enabled and err_console.is_terminal else None
        if self.status is not None:
            self.status.start()

    def update(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def __call__(self, rule: str, status: str, info: dict[str, Any]) -> None:
        if status == "start":
            self.update(f"round {info.get('round', '?')}: {rule}…")
        else:
            self.update(f"round {info.get('round', '?')}: {rule} — {info.get('count', 0)} rewrites, "
                        f"{info.get('nodes', '?')} nodes")

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _print_table(result: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not result["rules"]:
        console.print(f"no rules ran; nodes: {result['nodes_before']}", highlight=False)
        return
    table = Table(title=escape(f"{result['input']} → {result['output'] or '(not written)'}"))
    for col, just in (("rule", "left"), ("applied", "right"), ("seconds", "right"), ("visited", "right"),
                      ("nodes −", "right"), ("nodes +", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in result["rules"]:
        table.add_row(row["rule"], str(row["applied"]), f"{row['seconds']:.3f}", str(row["visited"]),
                      str(row["nodes_removed"]), str(row["nodes_added"]))
    console.print(table)
    console.print(f"nodes {result['nodes_before']} → {result['nodes_after']}, {result['rounds']} rounds, "
                  f"{result['steps']} rewrites, {result['seconds']:.2f} s" +
                  (f"; trace: {result['trace']}" if result.get("trace") else ""), highlight=False)
    for msg in result.get("ignored_errors", [])[:20]:
        console.print(f"[yellow]ignored:[/yellow] {escape(msg)}", highlight=False)


def _print_explain(rule: str, rows: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not rows:
        console.print(f"{rule}: the graph has no node it could start from")
        return
    table = Table(title=f"why {rule} does not fire")
    table.add_column("node")
    table.add_column("op")
    table.add_column("reason")
    for row in rows:
        reason = escape(row["reason"]) if row["reason"] is not None else "[green]would fire[/green]"
        table.add_row(escape(row["node"]), row["op"] or "", reason)
    console.print(table)


@click.command("transform")
@click.argument("in_path", metavar="IN", type=click.Path())
@click.argument("out_path", metavar="OUT", required=False, type=click.Path())
@click.option("-t", "--transforms", default=None,
              help='Rules to run, e.g. "remove_nodes(op=Identity) fold_constants(ignore_errors=true)" '
                   "(GTT syntax and names accepted). Default: the default pipeline.")
@click.option("--inputs", default=None, help="Input nodes/tensors, comma separated: kept (protected); for a "
                                              "frozen .pb/.pbtxt they also make the serving_default signature.")
@click.option("--outputs", default=None, help="Output nodes/tensors, comma separated (like --inputs).")
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
@click.pass_context
def transform_cmd(ctx: click.Context, in_path: str, out_path: str | None, transforms: str | None,
                  inputs: str | None, outputs: str | None, tags: str | None, rules_files: tuple[str, ...],
                  explain_spec: str | None, trace: str | None, force: bool, no_freeze: bool, max_steps: int | None,
                  allow_no_signatures: bool, as_json: bool) -> None:
    """Run rewrite rules on the model IN and write it to OUT.

    IN is a SavedModel directory or a frozen .pb/.pbtxt; OUT a SavedModel directory, or a frozen GraphDef when
    it ends in .pb/.pbtxt. The model is frozen first (unless --no-freeze), the rules run together to a fixpoint
    (quantize_weights last), and OUT is written atomically. OUT may be left out with --explain. Prints a table
    per rule: rewrites applied, seconds, nodes visited, removed and added (--json: the same as JSON).

    --explain RULE runs after the pipeline, on its result: it answers "why is this node still here?". Use
    --transforms "" to explain on the loaded (frozen) graph as it is.

    \b
    Examples:
      graphxform transform in.pb out.pb --inputs x --outputs y \\
          --transforms "remove_nodes(op=Identity) fold_constants(ignore_errors=true) fold_batch_norms"
      graphxform transform model/ out/ --rules my_rules.py -t "drop_double_neg strip_unused"
      graphxform transform model/ -t "fold_constants" --explain fold_batch_norms
    """
    from graphxform.jobs.transform import transform

    if out_path is None and explain_spec is None:
        raise click.UsageError("missing OUT (it may be left out only with --explain)")
    status = _Status(enabled=True)
    try:
        result = transform(in_path, out_path, transforms=transforms, inputs=_names(inputs), outputs=_names(outputs),
                           tags=tags, rules_files=rules_files, explain_spec=explain_spec, trace=trace, force=force,
                           freeze=not no_freeze, max_steps=max_steps, debug=bool((ctx.obj or {}).get("debug")),
                           allow_no_signatures=allow_no_signatures, status=status.update, progress=status)
    finally:
        status.stop()
    if as_json:
        emit_json(result)
        return
    _print_table(result)
    if "explain" in result:
        _print_explain(result["explain"]["rule"], result["explain"]["nodes"])
