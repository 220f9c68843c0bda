"""Runs rules over a graph to a fixpoint and applies their replacements.

``apply_replacement`` is the one place a rule's :class:`Replacement` turns
into :class:`Graph` mutations.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from graphxform.errors import FixpointError, GraphError, RuleError
from graphxform.graph import Graph
from graphxform.rule import Match, Replacement, Rule

log = logging.getLogger(__name__)


@dataclass
class AppliedRewrite:
    """One applied rewrite: which rule, the nodes it matched, added and removed."""

    rule: str
    anchor: str
    matched: list[str]
    added: list[str]
    removed: list[str]
    replaced: dict[str, str]


@dataclass
class RunReport:
    """What a pipeline run did: applied rewrites in order, per-rule counts and seconds."""

    applied: list[AppliedRewrite] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rounds: int = 0

    def add(self, rec: AppliedRewrite) -> None:
        self.applied.append(rec)
        self.counts[rec.rule] = self.counts.get(rec.rule, 0) + 1


def apply_replacement(graph: Graph, rep: Replacement) -> list[str]:
    """Apply ``rep`` to ``graph``; returns the names of the nodes removed."""
    if rep.add:
        graph.add_nodes(rep.add)
    for node in rep.update:
        graph.update_node(node)
    for old, new in rep.replace.items():
        graph.replace_all_uses(old, new)
    for old, new_nodes in rep.replace_control.items():
        graph.replace_control_uses(old, new_nodes)
    removed: list[str] = []
    pending = [n for n in dict.fromkeys(rep.remove) if n in graph]
    # Remove in reverse topological order among themselves: consumers first.
    progress = True
    while pending and progress:
        progress = False
        for name in list(pending):
            if graph.consumer_nodes(name) or graph.is_protected(name):
                continue
            graph.remove_node(name)
            removed.append(name)
            pending.remove(name)
            progress = True
    for name in pending:
        log.debug("kept %s: still consumed or protected", name)
    return removed


def apply_match(graph: Graph, rule: Rule, match: Match, rep: Replacement) -> AppliedRewrite:
    matched = sorted({n.name for n in match.nodes.values()} | {match.anchor.name})
    try:
        removed = apply_replacement(graph, rep)
    except GraphError as exc:
        raise RuleError(f"rule {rule.name!r} at node {match.anchor.name!r} produced an invalid rewrite: {exc}") from exc
    return AppliedRewrite(rule.name, match.anchor.name, matched, [n.name for n in rep.add], removed,
                          dict(rep.replace))


def run_rule_once(graph: Graph, rule: Rule, report: RunReport | None = None) -> int:
    """One pass of ``rule`` over every candidate node; returns the number of rewrites."""
    report = report if report is not None else RunReport()
    count = 0
    if rule.global_rule:
        for rep in rule.run_global(graph):
            if rep.is_empty():
                continue
            removed = apply_replacement(graph, rep)
            report.add(AppliedRewrite(rule.name, "", [], [n.name for n in rep.add], removed, dict(rep.replace)))
            count += 1
        return count
    for node in rule.candidates(graph):
        if node.name not in graph or graph.node(node.name) is not node:
            continue  # removed or replaced by an earlier rewrite in this pass
        m = rule.match(graph, node)
        if isinstance(m, str):
            continue
        if rule.check(m) is not None:
            continue
        rep = rule.rewrite(m)
        if rep.is_empty():
            continue
        report.add(apply_match(graph, rule, m, rep))
        count += 1
    return count


def run_pipeline(graph: Graph, rules: Sequence[Rule], *, max_rounds: int = 100) -> RunReport:
    """Run ``rules`` in order, repeatedly, until a whole round changes nothing."""
    report = RunReport()
    for _ in range(max_rounds):
        report.rounds += 1
        changed = 0
        for rule in rules:
            t0 = time.perf_counter()
            changed += run_rule_once(graph, rule, report)
            report.seconds[rule.name] = report.seconds.get(rule.name, 0.0) + time.perf_counter() - t0
        if not changed:
            return report
    raise FixpointError(f"no fixpoint after {max_rounds} rounds of {', '.join(r.name for r in rules)}")
