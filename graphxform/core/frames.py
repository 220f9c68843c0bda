"""Whole-graph facts that rules check before moving nodes: TF1 control-flow frames and colocation targets.

A TF1 ``while_loop`` frame runs from its ``Enter`` s to its ``Exit`` s, a
``cond`` branch from a ``Switch`` to its ``Merge`` s; nodes inside must stay
where they are. A node named in another node's ``_class`` (``loc:@name``)
is a colocation target.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graphxform.core.graph import Graph
from graphxform.core.nodes import colocation
from graphxform.core.opdefs import COND_MERGE_OPS, COND_SWITCH_OPS, LOOP_ENTER_OPS, LOOP_EXIT_OPS


@dataclass
class FrameFacts:
    """Computed once per pass: the nodes it was computed on, TF1 frame members and colocation targets."""

    known: set[str]
    in_frame: set[str] = field(default_factory=set)
    colocated_with: dict[str, list[str]] = field(default_factory=dict)  # target -> nodes naming it


def frame_facts(graph: Graph) -> FrameFacts:
    """The :class:`FrameFacts` of ``graph`` as it is now."""
    facts = FrameFacts(known=set(graph.node_names))
    # The graph's indexes tell the usual case without a look at every node: no TF1 frame, no colocation.
    if not graph.has_op(*LOOP_ENTER_OPS, *COND_SWITCH_OPS) and not graph.colocation_index():
        return facts
    loop_starts, cond_starts = [], []
    for node in graph:
        if node.op in LOOP_ENTER_OPS:
            loop_starts.append(node.name)
        elif node.op in COND_SWITCH_OPS:
            cond_starts.append(node.name)
        for target in colocation(node):
            facts.colocated_with.setdefault(target, []).append(node.name)
    # Everything forward of an Enter up to its Exits; then of a Switch (not already in a loop) up to its Merges.
    _flood(graph, loop_starts, LOOP_EXIT_OPS, facts.in_frame)
    _flood(graph, [n for n in cond_starts if n not in facts.in_frame], COND_MERGE_OPS, facts.in_frame)
    return facts


def colocation_targets(graph: Graph, ignore: Iterable[str] = ()) -> set[str]:
    """The nodes that a node outside ``ignore`` names in its ``_class`` colocation attr."""
    skip = set(ignore)
    return {t for t, users in graph.colocation_index().items() if not users <= skip}


def _flood(graph: Graph, starts: list[str], closers: frozenset[str], seen: set[str]) -> None:
    """Add to ``seen`` every node reachable from ``starts`` (data or control), not going past ``closers``."""
    stack = list(starts)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = graph.get(name)
        if node is None or node.op not in closers:
            stack.extend(graph.consumer_nodes(name))


__all__ = ["FrameFacts", "colocation_targets", "frame_facts"]
