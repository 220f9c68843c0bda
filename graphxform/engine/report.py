"""What a run did: every applied rewrite (rule, anchor, nodes matched/added/updated/removed, tensors replaced),
per-rule figures, and the trace (one JSON object per rewrite), so a numeric mismatch can be traced to the rule
application that caused it (``verify --bisect``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from graphxform.core.errors import GraphxformError


@dataclass(slots=True)
class AppliedRewrite:
    """One applied rewrite: which rule, where, and the nodes it matched, added, updated and removed."""

    rule: str
    anchor: str
    matched: Sequence[str]
    added: Sequence[str]
    removed: Sequence[str]
    replaced: dict[str, str]
    updated: Sequence[str] = ()
    step: int = 0
    round: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (one line of the trace)."""
        return {"step": self.step, "round": self.round, "rule": self.rule, "anchor": self.anchor,
                "matched": list(self.matched), "added": list(self.added), "updated": list(self.updated),
                "removed": list(self.removed), "replaced": dict(self.replaced)}


@dataclass
class RuleStats:
    """Per-rule figures of a run."""

    applied: int = 0
    seconds: float = 0.0
    visited: int = 0
    added: int = 0
    removed: int = 0
    noop: int = 0
    errors: int = 0


@dataclass
class RunReport:
    """What a pipeline run did: applied rewrites in order, per-rule counts and seconds."""

    applied: list[AppliedRewrite] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    steps: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    stats: dict[str, RuleStats] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    ignored_errors: list[str] = field(default_factory=list)
    total_seconds: float = 0.0
    #: Rewrites only the confirmation pass (``confirm=True``) found: the worklist missed them.
    missed: int = 0

    def add(self, rec: AppliedRewrite) -> None:
        self.applied.append(rec)
        self.counts[rec.rule] = self.counts.get(rec.rule, 0) + 1
        self.steps += 1

    def stat(self, rule: str) -> RuleStats:
        st = self.stats.get(rule)
        if st is None:
            st = self.stats[rule] = RuleStats()
        return st

    def table(self) -> list[dict[str, Any]]:
        """One row per rule: applied rewrites, seconds, nodes visited, added and removed."""
        rows = []
        for name in dict.fromkeys([*self.rules, *self.counts]):
            st = self.stats.get(name, RuleStats())
            rows.append({"rule": name, "applied": self.counts.get(name, 0),
                         "seconds": round(self.seconds.get(name, 0.0), 6), "visited": st.visited,
                         "nodes_added": st.added, "nodes_removed": st.removed, "noop": st.noop,
                         "errors_ignored": st.errors})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "steps": len(self.applied), "nodes_before": self.nodes_before,
                "nodes_after": self.nodes_after, "seconds": round(self.total_seconds, 6), "rules": self.table(),
                "ignored_errors": list(self.ignored_errors)}

    def write_trace(self, path: str | os.PathLike[str] | IO[str]) -> None:
        """Write every applied rewrite as one JSON object per line (to a path or an open text file)."""
        if hasattr(path, "write"):
            _write_lines(path, self.applied)  # type: ignore[arg-type]
            return
        p = Path(path)  # type: ignore[arg-type]
        tmp = p.with_name(p.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                _write_lines(fh, self.applied)
            os.replace(tmp, p)
        except OSError as exc:
            raise GraphxformError(f"cannot write the trace to {p}: {exc.strerror or exc}") from exc


def _write_lines(fh: IO[str], records: Iterable[AppliedRewrite]) -> None:
    for rec in records:
        fh.write(json.dumps(rec.to_dict(), separators=(",", ":")))
        fh.write("\n")


__all__ = ["AppliedRewrite", "RuleStats", "RunReport"]
