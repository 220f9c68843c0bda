"""``graphxform rules``: every rule with its aliases, parameters and before -> after."""
from __future__ import annotations

import re
from typing import Any

import click

from graphxform.cli.common import StageProgress, console, emit_json, json_option

#: ``literal``, :role:`target` and :role:`~dotted.target` in docstrings (reStructuredText, as the rules are written).
_RST_LITERAL = re.compile(r"``(?P<lit>.+?)``|:[a-z]+:`~?(?P<ref>[^`]+)`")
LITERAL_STYLE = "bold cyan"


def rst_text(text: str, styled: bool | None = None) -> Any:
    """``text`` (a docstring) as a rich Text: double-backtick literals and :role:`refs` shown as code — styled on a
    terminal, in single backticks (as Markdown writes code) otherwise (``styled`` decides; default: whether
    stdout is a terminal)."""
    from rich.text import Text

    if styled is None:
        styled = console.is_terminal
    out = Text()
    pos = 0
    for m in _RST_LITERAL.finditer(text):
        out.append(text[pos:m.start()])
        lit = m.group("lit")
        if lit is None:
            ref = m.group("ref")
            lit = ref.rsplit(".", 1)[-1] if m.group(0).count("~") else ref
        out.append(lit, style=LITERAL_STYLE) if styled else out.append(f"`{lit}`")
        pos = m.end()
    out.append(text[pos:])
    return out


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
    with StageProgress() as progress:  # importing the rules imports TensorFlow: seconds
        progress.update("loading the rules")
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
    from rich.markup import escape
    from rich.padding import Padding
    from rich.text import Text

    from graphxform.cli.common import new_table, print_line

    if not names:
        for info in infos:
            head = f"[bold]{escape(info['name'])}[/bold]"
            if info["aliases"]:
                head += f"  (aliases: {escape(', '.join(info['aliases']))})"
            if info["default_pipeline"]:
                head += "  [dim]default pipeline[/dim]"
            console.print(head, highlight=False)
            console.print(Padding(rst_text(info["summary"] or "(no description)"), (0, 0, 0, 4), expand=False),
                          highlight=False)
            if info["params"]:
                params = "; ".join(f"{k}: {p['type']} = {_default(p['default'])}" for k, p in info["params"].items())
                console.print(Padding(Text.assemble(("parameters: ", "dim"), params), (0, 0, 0, 4), expand=False),
                              highlight=False)
        console.print()
        if NOOP_TRANSFORMS:
            print_line("GTT transforms accepted as no-ops: " + ", ".join(sorted(NOOP_TRANSFORMS)), markup=False)
        for name, reason in sorted(REFUSED_GTT.items()):
            print_line(f"GTT transform refused: {name} ({reason})", markup=False)
        print_line("default pipeline: " + " ".join(DEFAULT_PIPELINE), markup=False)
        print_line("details: graphxform rules NAME", markup=False)
        return
    for info in infos:
        console.rule(f"[bold]{escape(info['name'])}[/bold]" + (f" (aliases: {escape(', '.join(info['aliases']))})"
                                                              if info["aliases"] else ""))
        console.print(rst_text(info["doc"] or "(no description)"), highlight=False)
        kind = "pass (runs over the whole graph, once per round)" if info["global"] else \
            f"starts from: {', '.join(info['anchors']) if info['anchors'] else 'any node'}"
        print_line(f"[dim]{escape(kind)}; module {escape(info['module'])}[/dim]")
        if info["params"]:
            table = new_table(None, ("parameter", "word"), ("type", "word"), "default", "help")
            for key, p in info["params"].items():
                help_text = p["help"] + (f" (one of: {', '.join(map(str, p['choices']))})" if p["choices"] else "")
                table.add_row(escape(key), p["type"], escape(_default(p["default"])), rst_text(help_text))
            console.print(table)
