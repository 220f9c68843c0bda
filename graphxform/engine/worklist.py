"""The worklist: after a rewrite, which nodes a rule must look at again.

A pattern looks upwards from its anchor, so a change can enable new matches only at nodes below it (its
consumers, to the depth of the stage's deepest pattern); a rule with its own ``match`` may look either way.
Producers whose consumer set changed are marked too, with their consumers when only one or two are left, so
``single_use`` conditions are seen. The runner keeps the marks in one change log with a cursor per rule.
"""
from __future__ import annotations

from collections.abc import Callable

from graphxform.core.graph import Graph

#: Producers left with at most this many consumers after a change have their consumers revisited.
_FEW_CONSUMERS = 2


def mark_near(graph: Graph, mark: Callable[[str], None], changed: list[str], touched: set[str], reach: int,
              reach_up: int) -> None:
    """``mark`` the nodes whose matches ``changed`` nodes (added or updated) and ``touched`` nodes (producers
    whose consumers changed) may have enabled: consumers up to ``reach`` edges below, producers up to
    ``reach_up`` edges above (through data inputs)."""
    succ, pred = graph.adjacency()
    frontier = []
    for name in changed:
        mark(name)
        frontier.append(name)
    for name in touched:
        users = succ.get(name)
        if users is None:
            continue
        mark(name)
        if len(users) <= _FEW_CONSUMERS:
            frontier.append(name)
    if reach_up:
        up = [*changed, *touched]
        up_seen = set(up)
        get = graph.get
        for _ in range(reach_up):
            nxt = []
            for name in up:
                preds = pred.get(name)
                if not preds:
                    continue
                # Matches look through data inputs only: a node with control inputs alone (a NoOp
                # gathering hundreds of dependencies) enables nothing above it, and walking its
                # predecessors at every change to it would be quadratic.
                node = get(name)
                mixed = False
                if node is not None and node.input:
                    if node.input[0][:1] == "^":
                        continue
                    mixed = node.input[-1][:1] == "^"
                for src, edges in preds.items():
                    if src in up_seen or (mixed and all(d["control"] for d in edges.values())):
                        continue
                    up_seen.add(src)
                    mark(src)
                    nxt.append(src)
            if not nxt:
                break
            up = nxt
    seen = set(frontier)
    for _ in range(reach):
        nxt = []
        for name in frontier:
            for c in succ.get(name, ()):
                if c not in seen:
                    seen.add(c)
                    mark(c)
                    nxt.append(c)
        if not nxt:
            break
        frontier = nxt


__all__ = ["mark_near"]
