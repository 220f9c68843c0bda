"""Pieces shared by the CLI subcommands: console, JSON output, common options."""
from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (numpy scalars and paths become plain values)."""

    def default(o: Any) -> Any:
        if hasattr(o, "item"):
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)

    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
tags_option = click.option("--tags", default=None, help="MetaGraph tag set, comma separated (default: serve).")
