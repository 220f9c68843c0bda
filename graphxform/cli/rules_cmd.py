"""``graphxform rules``: every rule with its aliases, parameters and before -> after."""
from __future__ import annotations

from typing import Any

import click

from graphxform.cli.common import console, emit_json, json_option


def _default(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "[]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@click.command("rules")
@click.argument("names", nargs=-1)
@click.option("--rules", "rules_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Also list the rules of this Python file; may be repeated.")
@json_option
def rules_cmd(names: tuple[str, ...], rules_files: tuple[str, ...], as_json: bool) -> None:
    """List every rule: name, aliases (GTT names), parameters (type, default, help) and before -> after.

    With NAMES (rule names or aliases) show only those, with their full description.

    \b
    Examples:
      graphxform rules
      graphxform rules fold_batch_norms remove_nodes
      graphxform rules --rules my_rules.py --json
    """
    from graphxform.engine.pipeline import DEFAULT_PIPELINE, NOOP_TRANSFORMS, REFUSED_GTT
    from graphxform.engine.registry import get_rule, load_rules_file, registry

    for path in rules_files:
        load_rules_file(path)
    classes = [get_rule(n) for n in names] if names else [registry()[k] for k in sorted(registry())]
    infos = [cls.describe() for cls in classes]
    for info in infos:
        info["default_pipeline"] = info["name"] in DEFAULT_PIPELINE
    if as_json:
        emit_json({"rules": infos, "default_pipeline": list(DEFAULT_PIPELINE),
                   "gtt_noops": dict(NOOP_TRANSFORMS), "gtt_unsupported": dict(REFUSED_GTT)})
        return
    from rich.table import Table

    if not names:
        for info in infos:
            head = f"[bold cyan]{info['name']}[/bold cyan]"
            if info["aliases"]:
                head += f"  (aliases: {', '.join(info['aliases'])})"
            if info["default_pipeline"]:
                head += "  [dim]default pipeline[/dim]"
            console.print(head, highlight=False)
            console.print("    " + (info["summary"] or "(no description)"), highlight=False, markup=False)
            if info["params"]:
                params = "; ".join(f"{k}: {p['type']} = {_default(p['default'])}" for k, p in info["params"].items())
                console.print(f"    [dim]parameters:[/dim] {params}", highlight=False)
        console.print()
        console.print("GTT transforms accepted as no-ops: " + ", ".join(sorted(NOOP_TRANSFORMS)), highlight=False)
        for name, reason in sorted(REFUSED_GTT.items()):
            console.print(f"GTT transform refused: {name} ({reason})", highlight=False, markup=False)
        console.print("default pipeline: " + " ".join(DEFAULT_PIPELINE), highlight=False)
        console.print("details: graphxform rules NAME", highlight=False)
        return
    for info in infos:
        console.rule(f"[bold]{info['name']}[/bold]" + (f" (aliases: {', '.join(info['aliases'])})"
                                                      if info["aliases"] else ""))
        console.print(info["doc"] or "(no description)", highlight=False, markup=False)
        kind = "pass (runs over the whole graph, once per round)" if info["global"] else \
            f"starts from: {', '.join(info['anchors']) if info['anchors'] else 'any node'}"
        console.print(f"[dim]{kind}; module {info['module']}[/dim]", highlight=False)
        if info["params"]:
            table = Table(show_header=True)
            for col in ("parameter", "type", "default", "help"):
                table.add_column(col)
            for key, p in info["params"].items():
                help_text = p["help"] + (f" (one of: {', '.join(map(str, p['choices']))})" if p["choices"] else "")
                table.add_row(key, p["type"], _default(p["default"]), help_text)
            console.print(table)
