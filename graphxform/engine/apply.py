"""Turning a :class:`~graphxform.engine.rule.Replacement` into :class:`~graphxform.core.graph.Graph` mutations.

:func:`validate_replacement` says what is wrong with a replacement before anything changes;
:func:`apply_replacement` applies one, in the order the replacement documents (add, update, replace,
replace_control, remove). This is the one place a rule's rewrite becomes a change of the graph.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.engine.rule import Replacement

log = logging.getLogger(__name__)


def validate_replacement(graph: Graph, rep: Replacement) -> str | None:
    """``None`` when ``rep`` can be applied to ``graph`` as it stands, else what is wrong (nothing is changed)."""
    if not rep.add and not rep.update:  # (most rewrites: a bypass; checked without the general machinery)
        return _check_rewiring(graph, rep, graph.__contains__)
    added = set()
    for node in rep.add:
        if not node.name or not node.op:
            return f"an added node has no name or op ({node.name!r}, {node.op!r})"
        if node.name in graph or node.name in added:
            return f"added node {node.name!r} already exists (use graph.unique_name for new nodes)"
        added.add(node.name)

    def exists(name: str) -> bool:
        return name in added or name in graph

    for node in [*rep.add, *rep.update]:
        for inp in node.input:
            if not exists(parse_input(inp)[0]):
                return f"node {node.name!r} input {inp!r} names no node"
    for node in rep.update:
        if node.name not in graph:
            return f"updated node {node.name!r} does not exist"
    return _check_rewiring(graph, rep, exists)


def _check_rewiring(graph: Graph, rep: Replacement, exists: Callable[[str], bool]) -> str | None:
    """What is wrong with ``rep.replace`` and ``rep.replace_control`` (``exists``: whether a node will be there)."""
    seen = set()  # (a merge maps thousands of tensors to a few)
    for old, new in rep.replace.items():
        if old[:1] == "^" or new[:1] == "^":
            return f"replace {old!r} -> {new!r}: tensors only (control edges go in replace_control)"
        if new in seen:
            continue
        node = parse_input(new)[0]
        if not exists(node):
            return f"replace {old!r} -> {new!r}: no node named {node!r}"
        seen.add(new)
    for old, news in rep.replace_control.items():
        for n in news:
            if not exists(n):
                return f"replace_control {old!r} -> {n!r}: no such node"
    return None


def apply_replacement(graph: Graph, rep: Replacement) -> list[str]:
    """Apply ``rep`` to ``graph``; returns the names of the nodes removed."""
    # The replacement's nodes are the rule's own, made for this rewrite: the graph keeps them as they are.
    if rep.add:
        graph.add_nodes(rep.add, adopt=True)
    for node in rep.update:
        graph.update_node(node, adopt=True)
    # Nodes removed for certain (the rule's promise) keep their inputs from one another: they go with them.
    group = list(dict.fromkeys(rep.remove)) if rep.remove_all and len(rep.remove) > 1 else None
    skip = set(group) if group else frozenset()
    if rep.replace:
        graph.replace_uses(rep.replace, skip)
    for old, new_nodes in rep.replace_control.items():
        graph.replace_control_uses(old, new_nodes, skip)
    if group:
        graph.remove_group(group)  # (refused, before any removal, when the promise does not hold)
        return group
    removed: list[str] = []
    if not rep.remove:
        return removed
    get = graph.get  # (the node dict's own: no Python frame per name)
    pending = [n for n in dict.fromkeys(rep.remove) if get(n) is not None]
    if len(pending) == 1:
        name = pending[0]
        if not graph.has_consumers(name) and not graph.is_protected(name):
            graph.remove_node(name, force=True)  # (checked just above)
            return [name]
        log.debug("kept %s: still consumed or protected", name)
        return removed
    # Consumers first: a node goes once nothing reads it any more.
    removed, kept = graph.remove_unread(pending)
    for name in kept:
        log.debug("kept %s: still consumed or protected", name)
    return removed


__all__ = ["apply_replacement", "validate_replacement"]
