"""``freeze_requantization_ranges`` (GTT): logged ranges instead of ``RequantizationRange`` ops."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from graphxform import Context, Param, Pass, Replacement, const, register
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph

log = logging.getLogger(__name__)

_PRINT_SUFFIX = "__print__"
_PREFIX = "__requant_min_max:"


def _float(text: str) -> float | None:
    """``safe_strtof``: the whole string is one number (no Python-only ``_`` separators)."""
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def min_max_records(text: str) -> list[tuple[str, float, float]]:
    """``(node, min, max)`` for every well-formed ``...;<node>__print__;__requant_min_max:[min][max]`` line (GTT's
    ``ExtractMinMaxRecords``: other lines, and lines with a number that does not parse, are skipped)."""
    out = []
    for line in text.split("\n"):
        if f"{_PRINT_SUFFIX};{_PREFIX}" not in line:
            continue
        parts = line.split(";")
        index = max((i for i in range(1, len(parts)) if parts[i].startswith(_PREFIX)), default=None)
        if index is None:
            continue
        pieces = parts[index].split("[")
        if len(pieces) != 3 or pieces[0] != _PREFIX:
            continue
        lo_parts, hi_parts = pieces[1].split("]"), pieces[2].split("]")
        if len(lo_parts) != 2 or len(hi_parts) != 2:
            continue
        lo, hi = _float(lo_parts[0]), _float(hi_parts[0])
        name = parts[index - 1]
        if lo is None or hi is None or not name.endswith(_PRINT_SUFFIX):
            continue
        out.append((name[: -len(_PRINT_SUFFIX)], lo, hi))
    return out


def _round(x: float) -> int:
    """``std::round``: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


@register
class FreezeRequantizationRanges(Pass):
    """Replaces ``RequantizationRange(x)`` by ``Const(<name>/frozen_min)``, ``Const(<name>/frozen_max)``: the ranges
    logged while running the graph on representative inputs.

    GTT's ``freeze_requantization_ranges(min_max_log_file=, min_percentile=5, max_percentile=5)``. The log is what
    ``insert_logging(op=RequantizationRange, show_name=true, message="__requant_min_max:")`` prints (lines
    ``;<node>__print__;__requant_min_max:[min][max]``; other lines are skipped). For each node the min is the
    ``min_percentile`` th smallest logged min and the max the ``max_percentile`` th largest logged max. As in GTT,
    a logged node that is not in the graph, or that is not a ``RequantizationRange``, is an error, and so is a
    log without records. Runs once, after the other rules (``final``), e.g. after ``quantize_nodes``.
    """

    name = "freeze_requantization_ranges"
    final = True
    idempotent = True
    params = {
        "min_max_log_file": Param(str, "", "the log written by the graph with insert_logging's Print nodes"),
        "min_percentile": Param(float, 5.0, "percentile of the logged mins to use"),
        "max_percentile": Param(float, 5.0, "percentile (from the top) of the logged maxes to use"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if not self.args["min_max_log_file"]:
            raise RuleError(f"rule {self.name!r}: pass the log file, e.g. "
                            'freeze_requantization_ranges(min_max_log_file="/tmp/min_max.log")')

    def _ranges(self) -> dict[str, tuple[float, float]]:
        path = Path(self.args["min_max_log_file"]).expanduser()
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise RuleError(f"rule {self.name!r}: cannot read min_max_log_file {path}: {exc.strerror}") from None
        by_node: dict[str, list[tuple[float, float]]] = {}
        for name, lo, hi in min_max_records(text):
            by_node.setdefault(name, []).append((lo, hi))
        if not by_node:
            raise RuleError(f"rule {self.name!r}: no min/max range logs were found in {path} (log them with "
                            'insert_logging(op=RequantizationRange, show_name=true, message="__requant_min_max:"))')
        out = {}
        for name, pairs in by_node.items():
            mins = sorted(p[0] for p in pairs)
            maxs = sorted(p[1] for p in pairs)
            lo_i = min(max(_round(len(mins) * self.args["min_percentile"] / 100.0), 0), len(mins) - 1)
            hi_i = min(max(_round(len(maxs) * (1.0 - self.args["max_percentile"] / 100.0)), 0), len(maxs) - 1)
            out[name] = (mins[lo_i], maxs[hi_i])
        return out

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        state: dict = ctx.cached("freeze_requantization_ranges", dict)
        if state.get("done"):  # one-shot: the logged nodes are gone after it
            return []
        state["done"] = True
        ranges = self._ranges()
        missing = sorted(n for n in ranges if n not in graph)
        if missing:
            raise RuleError(f"rule {self.name!r}: nodes in {self.args['min_max_log_file']} are not in the graph: "
                            f"{', '.join(missing[:5])} (was the log written by this graph?)")
        rep = Replacement()
        for name, (lo, hi) in sorted(ranges.items()):
            node = graph.node(name)
            if node.op != "RequantizationRange":
                raise RuleError(f"rule {self.name!r}: logged node {name!r} is a {node.op}, not a "
                                "RequantizationRange")
            for port, (suffix, value) in enumerate((("frozen_min", lo), ("frozen_max", hi))):
                c = const(graph.unique_name(f"{name}/{suffix}"), np.float32(value), device=node.device)
                rep.add.append(c)
                rep.replace[f"{name}:{port}"] = f"{c.name}:0"
            rep.remove.append(name)
        log.info("freeze_requantization_ranges: %d ranges frozen", len(ranges))
        return [rep]


__all__ = ["FreezeRequantizationRanges", "min_max_records"]
