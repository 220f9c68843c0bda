"""Whole-graph facts that rules check before moving nodes: TF1 control-flow frames and colocation targets.

A TF1 ``while_loop`` frame runs from its ``Enter`` s to its ``Exit`` s, a
``cond`` branch from a ``Switch`` to its ``Merge`` s; nodes inside must stay
where they are. A node named in another node's ``_class`` (``loc:@name``)
is a colocation target.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from graphxform.core.graph import Graph

_LOOP_OPENERS, _LOOP_CLOSERS = frozenset({"Enter", "RefEnter"}), frozenset({"Exit", "RefExit"})
_COND_OPENERS = frozenset({"Switch", "RefSwitch"})
_COND_CLOSERS = frozenset({"Merge", "RefMerge", "Exit", "RefExit"})


@dataclass
class FrameFacts:
    """Computed once per pass: the nodes it was computed on, TF1 frame members and colocation targets."""

    known: set[str]
    in_frame: set[str] = field(default_factory=set)
    colocated_with: dict[str, list[str]] = field(default_factory=dict)  # target -> nodes naming it


def frame_facts(graph: Graph) -> FrameFacts:
    """The :class:`FrameFacts` of ``graph`` as it is now."""
    facts = FrameFacts(known=set(graph.node_names))
    loop_starts, cond_starts = [], []
    for node in graph:
        if node.op in _LOOP_OPENERS:
            loop_starts.append(node.name)
        elif node.op in _COND_OPENERS:
            cond_starts.append(node.name)
        if "_class" in node.attr:
            for loc in node.attr["_class"].list.s:
                if loc.startswith(b"loc:@"):
                    facts.colocated_with.setdefault(loc[5:].decode(errors="replace"), []).append(node.name)
    # Everything forward of an Enter up to its Exits; then of a Switch (not already in a loop) up to its Merges.
    _flood(graph, loop_starts, _LOOP_CLOSERS, facts.in_frame)
    _flood(graph, [n for n in cond_starts if n not in facts.in_frame], _COND_CLOSERS, facts.in_frame)
    return facts


def _flood(graph: Graph, starts: list[str], closers: frozenset[str], seen: set[str]) -> None:
    """Add to ``seen`` every node reachable from ``starts`` (data or control), not going past ``closers``."""
    stack = list(starts)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if graph.nx.nodes[name].get("op") not in closers:
            stack.extend(graph.nx.successors(name))


__all__ = ["FrameFacts", "frame_facts"]
