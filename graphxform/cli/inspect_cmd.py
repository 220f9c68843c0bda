"""``graphxform inspect MODEL``: signatures, ops, parameters, tables, assets and warnings — or one node."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphxform.cli.common import (
    StageProgress,
    console,
    emit_json,
    fit_table,
    json_option,
    tags_option,
)

_TOP_OPS_COLUMNS = 3


def _fmt_count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _table(title: str | None = None) -> Any:
    """A table whose cells fold rather than being cut (columns added with :func:`_col`)."""
    return fit_table(title=title, title_justify="left")


def _col(table: Any, name: str, kind: str = "text") -> None:
    """``kind``: ``"text"`` folds long names onto the next line; ``"num"`` right-aligned, never cut."""
    if kind == "num":
        table.add_column(name, justify="right", no_wrap=True)
    else:
        table.add_column(name, overflow="fold")


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.7g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{a}={_fmt_value(b)}" for a, b in v.items())
    return str(v)


def _shape(shape: list[int] | None) -> str:
    from graphxform.core.signature import shape_str

    return shape_str(shape)


def signature_text(summary: dict[str, Any]) -> str:
    """The signatures in the layout of ``saved_model_cli show --all`` (same dtype names and shape notation)."""
    lines: list[str] = []
    if summary["format"] == "saved_model":
        tags = ", ".join(summary["tags"])
        lines.append(f"MetaGraphDef with tag-set: '{tags}' contains the following SignatureDefs:")
    else:
        lines.append("Signatures:")
    if not summary["signatures"]:
        lines.append("")
        lines.append("  (none: a bare GraphDef; see the possible inputs and outputs below)")
    for sig in summary["signatures"]:
        lines.append("")
        note = "  # in the file only; the loader keeps it as the init op" if sig.get("file_only") else ""
        lines.append(f"signature_def['{sig['key']}']:{note}")
        for side, word in (("inputs", "input(s)"), ("outputs", "output(s)")):
            lines.append(f"  The given SavedModel SignatureDef contains the following {word}:")
            for t in sig[side]:
                lines.append(f"    {side}['{t['key']}'] tensor_info:")
                lines.append(f"        dtype: {t['dtype']}")
                lines.append(f"        shape: {t['shape_str']}")
                if t.get("components"):
                    comps = ", ".join(f"{k}={v}" for k, v in t["components"].items())
                    lines.append(f"        sparse: {comps}")
                lines.append(f"        name: {t['name']}")
                if t.get("file_name"):
                    lines.append(f"        name in the file: {t['file_name']}")
        lines.append(f"  Method name is: {sig['method_name']}")
    return "\n".join(lines)


def print_summary(s: dict[str, Any], top: int) -> None:

    from graphxform.inspect.summary import human_bytes

    kind = "SavedModel" if s["format"] == "saved_model" else "GraphDef"
    if s["format"] == "saved_model" and s["saved_model_version"]:
        kind += f" (TF{s['saved_model_version']} graph)"
    frozen = "frozen" if s["frozen"] else "variables in a checkpoint"
    console.print(f"[bold]{s['source']}[/bold]: {kind}, {frozen}", highlight=False)
    if s["tag_sets"]:
        console.print("Tag sets: " + "; ".join("'" + ", ".join(t) + "'" for t in s["tag_sets"]), highlight=False)
    fn_nodes = sum(f["node_count"] for f in s["functions"])
    fns = f" + {len(s['functions'])} library functions ({fn_nodes:,} nodes)" if s["functions"] else ""
    edges = f", {s['control_edges']:,} control edges" if s["control_edges"] else ""
    console.print(f"Nodes: {s['node_count']:,}{fns}{edges}", highlight=False)
    if s["devices"]:
        console.print("Devices: " + ", ".join(f"{d} ({n:,} nodes)" for d, n in s["devices"].items()), highlight=False)
    if s["init_op"]:
        console.print(f"Init op: {s['init_op']}", highlight=False)
    click.echo("")
    click.echo(signature_text(s))
    click.echo("")

    # op histogram, several (op, count) column pairs side by side
    ops = list(s["op_histogram"].items())
    table = _table(f"Op histogram ({len(ops)} op types)")
    cols = min(_TOP_OPS_COLUMNS, max(1, len(ops)))
    for _ in range(cols):
        _col(table, "op")
        _col(table, "count", "num")
    rows = (len(ops) + cols - 1) // cols
    for r in range(rows):
        cells: list[str] = []
        for c in range(cols):
            i = c * rows + r
            cells += [ops[i][0], str(ops[i][1])] if i < len(ops) else ["", ""]
        table.add_row(*cells)
    console.print(table)
    if s["function_op_histogram"]:
        fops = ", ".join(f"{op} {n}" for op, n in list(s["function_op_histogram"].items())[:15])
        more = len(s["function_op_histogram"]) - 15
        console.print(f"Ops in library functions: {fops}" + (f", … {more} more" if more > 0 else ""), highlight=False)

    p = s["parameters"]
    counted = "tensors the signatures and init ops use" if p["counted"] == "served" else "every Const and variable"
    console.print(f"[italic]Parameters[/italic]: {_fmt_count(p['count'])} elements, {human_bytes(p['bytes'])} "
                  f"({counted})", highlight=False)
    table = _table()
    for col in ("dtype", "tensors", "elements", "bytes"):
        _col(table, col, "text" if col == "dtype" else "num")
    for dt, b in p["by_dtype"].items():
        table.add_row(dt, str(b["tensors"]), _fmt_count(b["count"]), human_bytes(b["bytes"]))
    table.add_row("[dim]constants[/dim]", str(p["constants"]["tensors"]), _fmt_count(p["constants"]["count"]),
                  human_bytes(p["constants"]["bytes"]))
    table.add_row("[dim]variables[/dim]", str(p["variables"]["tensors"]), _fmt_count(p["variables"]["count"]),
                  human_bytes(p["variables"]["bytes"]))
    console.print(table)
    if p["unused"]["tensors"]:
        console.print(f"[dim]Not counted: {p['unused']['tensors']} tensors ({_fmt_count(p['unused']['count'])} "
                      f"elements, {human_bytes(p['unused']['bytes'])}) no signature uses (saver, initializers, "
                      "duplicate handles).[/dim]", highlight=False)
    unknown = p["unknown_size"]
    if unknown:
        console.print(f"[yellow]{unknown} variables have an unknown shape; their size is not counted.[/yellow]")

    if s["largest"]:
        table = _table(f"Largest {len(s['largest'])} constants/variables")
        _col(table, "name")
        for col in ("kind", "dtype", "shape"):
            _col(table, col)
        _col(table, "elements", "num")
        _col(table, "bytes", "num")
        for r in s["largest"]:
            table.add_row(r["name"], r["kind"], r["dtype"], _shape(r["shape"]), _fmt_count(r["count"]),
                          human_bytes(r["bytes"]))
        console.print(table)

    if s["functions"]:
        table = _table(f"Library functions ({len(s['functions'])})")
        _col(table, "name")
        _col(table, "nodes", "num")
        _col(table, "in/out", "num")
        _col(table, "main ops")
        shown = s["functions"][: max(top, 20)]
        for f in shown:
            main = ", ".join(f"{op} {n}" for op, n in list(f["ops"].items())[:4])
            table.add_row(f["name"], str(f["node_count"]), f"{f['inputs']}/{f['outputs']}", main)
        console.print(table)
        if len(s["functions"]) > len(shown):
            console.print(f"[dim]… {len(s['functions']) - len(shown)} more functions (see --json)[/dim]")

    if s["tables"]:
        table = _table("Lookup tables")
        for col in ("table", "op", "key → value", "filled by"):
            _col(table, col)
        for t in s["tables"]:
            inits = []
            for i in t["initializers"]:
                src = i.get("asset") and f"asset {i['asset']}" or i.get("filename") and f"file {i['filename']}" \
                    or i.get("filename_from") or (f"{i['size']} keys" if i.get("size") is not None else "")
                inits.append(f"{i['op']} {src}".strip() + (f" (table {i['table']})" if i.get("table") else ""))
            name = t["name"] or "[dim](created elsewhere)[/dim]"
            if t.get("object"):
                name += f" [dim](object {t['object']})[/dim]"
            if t["where"] != "graph":
                name += f" [dim]in {t['where']}[/dim]"
            kv = f"{t['key_dtype']} → {t['value_dtype']}" if t["key_dtype"] else ""
            table.add_row(name, t["op"] or "", kv, "\n".join(inits) or "[yellow]no initializer found[/yellow]")
        console.print(table)

    if s.get("objects"):
        table = _table("Variables and tables by object path (TF2 object graph, as tf.saved_model.load binds them)")
        for col in ("graph node", "op", "object path", "in the checkpoint", "saver"):
            _col(table, col)
        for o in s["objects"]:
            key = o["checkpoint_key"]
            if isinstance(key, list):  # a table: keys and values
                key = "contents" if key[0].startswith(o["object"] + "/.ATTRIBUTES/") else "\n".join(key)
            elif key:
                key = "value" if key == o["object"] + "/.ATTRIBUTES/VARIABLE_VALUE" else key
            table.add_row(o["node"], o["op"], o["object"], key or "[dim]-[/dim]",
                          "restores" if o["restored_by_saver"] else "[yellow]does not[/yellow]" if key else "-")
        console.print(table)
    bad = s.get("bound_only_by_object_graph")
    if bad:
        console.print(f"[bold yellow]Not servable as it is[/bold yellow]: the signatures read {len(bad)} variables/"
                      f"tables the saver does not restore ({', '.join(bad[:3])}{', …' if len(bad) > 3 else ''}); "
                      "TF Serving's loader and the TF1 loader fail on it ('Could not find variable'). "
                      "`graphxform optimize` writes a servable copy.", highlight=False)

    if s["assets"]:
        table = _table("Assets")
        _col(table, "file")
        _col(table, "size", "num")
        _col(table, "path tensor")
        for a in s["assets"]:
            size = "[red]missing[/red]" if a["size"] is None else human_bytes(a["size"])
            table.add_row(a["filename"], size, a["tensor"])
        console.print(table)

    if s["format"] != "saved_model" or not s["signatures"]:
        table = _table("Possible inputs (Placeholders)")
        for col in ("name", "dtype", "shape"):
            _col(table, col)
        for i in s["candidate_inputs"] + s["inputs_with_default"]:
            table.add_row(i["name"] + (" [dim](with default)[/dim]" if i["op"] != "Placeholder" else ""),
                          i["dtype"], i["shape_str"])
        console.print(table)
        table = _table("Possible outputs (nodes nothing consumes)")
        for col in ("name", "op", "dtypes"):
            _col(table, col)
        for o in s["candidate_outputs"]:
            table.add_row(o["name"], o["op"], ", ".join(o["dtypes"]) if o["dtypes"] else "?")
        console.print(table)
        if s["candidate_inputs"] or s["candidate_outputs"]:
            ins = ",".join(i["name"] for i in s["candidate_inputs"])
            outs = ",".join(o["name"] for o in s["candidate_outputs"])
            console.print(f"[dim]e.g. graphxform transform {s['source']} OUT --input-names {ins} --output-names "
                          f"{outs} …[/dim]", highlight=False, soft_wrap=True)  # a command to copy: never wrapped

    if s["warnings"]:
        for w in s["warnings"]:
            deny = " [saved_model_cli scan denylist]" if w["denylisted"] else ""
            console.print(f"[bold yellow]WARNING[/bold yellow]: {w['op']} node {w['node']!r} in {w['where']} "
                          f"{w['reason']}{deny}", highlight=False)
    else:
        console.print("[green]No ops that touch files or run code[/green] "
                      "(ReadFile, WriteFile, PrintV2, PyFunc, … and checkpoint ops outside the saver).")


def print_node(info: dict[str, Any]) -> None:

    from graphxform.inspect.summary import human_bytes

    console.print(f"[bold]{info['name']}[/bold]  op: [cyan]{info['op']}[/cyan]  device: {info['device'] or '-'}",
                  highlight=False)
    if info["output_dtypes"] is not None:
        console.print("outputs: " + (", ".join(f"{i}: {t}" for i, t in enumerate(info["output_dtypes"])) or "none"),
                      highlight=False)
    if info["signatures"]:
        console.print("used by signatures: " + ", ".join(info["signatures"]), highlight=False)
    if info["protected"]:
        console.print("[dim]protected: rules may not remove it[/dim]")
    if info["attrs"]:
        table = _table("attrs")
        _col(table, "attr")
        _col(table, "value")
        for k, v in info["attrs"].items():
            table.add_row(k, _fmt_value(v))
        console.print(table)
    if info["inputs"]:
        table = _table(f"inputs ({len(info['inputs'])})")
        for col in ("#", "input", "producer op"):
            _col(table, col)
        for i in info["inputs"]:
            table.add_row("^" if i["control"] else str(i["index"]), i["input"], i["op"] or "[red]missing[/red]")
        console.print(table)
    else:
        console.print("inputs: none", highlight=False)
    if info["consumers"]:
        table = _table(f"consumers ({len(info['consumers'])})")
        for col in ("node", "op", "reads"):
            _col(table, col)
        for c in info["consumers"]:
            reads = "control" if c["control"] else f"output {c['port']} as input {c['input_index']}"
            table.add_row(c["node"], c["op"] or "?", reads)
        console.print(table)
    else:
        console.print("consumers: none" + (" (a signature output)" if info["signatures"] else ""), highlight=False)
    if "value" in info:
        v = info["value"]
        console.print(f"value: {v['dtype']} {v['shape_str']}, {human_bytes(v['bytes'])}", highlight=False)
        table = _table("value statistics")
        _col(table, "stat")
        _col(table, "value")
        for k, val in v["stats"].items():
            table.add_row(k, _fmt_value(val))
        console.print(table)


@click.command("inspect")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@tags_option
@json_option
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the largest constants/variables to list.")
@click.option("--node", "node_name", default=None, metavar="NAME",
              help="Show one node: op, attrs, inputs, consumers and, for a Const, value statistics.")
def inspect_cmd(model_path: Path, tags: str | None, as_json: bool, top: int, node_name: str | None) -> None:
    """Show what a model holds: tag sets, signatures (as saved_model_cli show), op histogram,
    parameters, largest tensors, functions, tables, assets, possible inputs/outputs and warnings
    about ops that touch files or run code.

    \b
    Examples:
      graphxform inspect fixtures/estimator_dnn
      graphxform inspect fixtures/tf1_frozen_bn.pb --json | jq .candidate_inputs
      graphxform inspect fixtures/tf1_frozen_bn.pb --node conv1/kernel
    """
    from graphxform.inspect.node import node_info
    from graphxform.inspect.summary import load_for_inspect, summarize

    with StageProgress() as progress:
        progress.update(f"loading {model_path}")
        model = load_for_inspect(model_path, tags)
    if node_name is not None:
        info = node_info(model, node_name)
        if as_json:
            emit_json(info)
        else:
            print_node(info)
        return
    with StageProgress() as progress:
        progress.update("summarizing")
        summary = summarize(model, top=top)
    if as_json:
        emit_json(summary)
    else:
        print_summary(summary, top)
