"""Batches: the rewrites of a rule's full pass applied together when none of them can see another's change.

A rule with ``batch = True`` (:attr:`graphxform.engine.rule.Rule.batch`) promises that its match, check and
rewrite at an anchor read only

* the **content** (op, attrs, inputs) of the anchor, of the nodes its match binds (producers of the anchor's
  inputs, transitively, up to the pattern's depth; for a rule with its own ``match``, up to its ``reach``), of
  the producers of their inputs and of their consumers,
* the **consumer sets** (out-edges) of the anchor and the nodes its match binds,
* and what holds for the whole pass: the signatures, ``graph.protected``, the context's frame facts and the
  run's static shapes.

That is its **read set** (:func:`reads_of`). What a :class:`~graphxform.engine.rule.Replacement` changes is its
**write set** (:func:`writes_of`): in content, the nodes it removes, updates or adds and the readers of every
tensor it replaces (data) or node it replaces (control); in consumer sets, the replaced nodes, the replacement
targets, the producers of the inputs of removed and updated nodes and the control targets. Two rewrites are
independent when neither's read or write set meets the other's write set in the same kind (two changes of one
producer's consumer set commute: they move different edges); then applying them in one batch gives the graph
applying them one after the other gives, and each one's check saw what it would have seen.

The runner (``_Engine.full_pass``) keeps the pending rewrites in a :class:`Batch`. Before it visits a candidate
it asks whether the candidate's read set meets the batch's writes; if so it applies the batch first, so every
check runs on the graph the one-at-a-time order would give it. A rewrite whose writes meet the batch's reads or
writes also applies the batch first, then starts the next one. A rewrite that renames a signature tensor or a
protected node, or adds nodes, is applied alone (it changes what every check reads).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from graphxform.core.graph import Graph
from graphxform.core.names import node_name
from graphxform.engine.apply import validate_replacement
from graphxform.engine.rule import Replacement, Rule
from graphxform.engine.worklist import mark_near

log = logging.getLogger(__name__)

Sets = tuple[set[str], set[str]]  # (content, consumer sets)

#: Rewrites applied together at most: the nodes of a small batch are still in the processor's caches when it is
#: applied (on a 1M-node chain, batches of 64-512 took 13.5-14 s, one batch of the whole pass 15.5 s).
MAX_BATCH = 256


def reads_of(graph: Graph, names: Iterable[str], up: int = 0) -> Sets:
    """The read set of a batching rule that binds ``names`` and the nodes up to ``up`` edges above them (a
    pattern's depth): ``(content, consumer sets)``."""
    succ, pred = graph.adjacency()
    bound = set(names)
    level = bound
    for _ in range(up):
        level = {p for n in level for p in pred.get(n, ())} - bound
        if not level:
            break
        bound |= level
    content = set(bound)
    for name in bound:
        content.update(pred.get(name, ()))
        content.update(succ.get(name, ()))
    return content, bound


def reads_at(graph: Graph, name: str, up: int = 0) -> Sets:
    """:func:`reads_of` of the one anchor ``name`` (a full pass asks it at every candidate)."""
    if up:
        return reads_of(graph, (name,), up)
    succ, pred = graph.adjacency()
    content = {name}
    content.update(pred.get(name, ()))
    content.update(succ.get(name, ()))
    return content, {name}


def writes_of(graph: Graph, rep: Replacement) -> Sets | None:
    """The write set of ``rep`` on ``graph`` as it stands: ``(content, consumer sets)``; ``None`` when ``rep``
    must be applied alone (it adds nodes, or renames a signature tensor or a protected node)."""
    if rep.add:
        return None
    succ, pred = graph.adjacency()
    content: set[str] = set()
    edges: set[str] = set()
    for old, new in rep.replace.items():
        node = node_name(old)
        if graph.is_protected(node):
            return None
        content.update(succ.get(node, ()))
        edges.add(node)
        edges.add(node_name(new))
    for old, news in rep.replace_control.items():
        if graph.is_protected(old):
            return None
        content.update(succ.get(old, ()))
        edges.add(old)
        edges.update(news)
    for node in rep.update:
        content.add(node.name)
        edges.update(pred.get(node.name, ()))
        edges.update(map(node_name, node.input))
    for name in rep.remove:
        content.add(name)
        edges.add(name)
        edges.update(pred.get(name, ()))
    return content, edges


class Batch:
    """Rewrites of one rule waiting to be applied together, with the union of their read and write sets."""

    __slots__ = ("items", "r_content", "r_edges", "w_content", "w_edges")

    def __init__(self) -> None:
        #: ``(replacement, anchor, matched, content it writes)`` in the order the rewrites were found.
        self.items: list[tuple[Replacement, str, list[str], set[str]]] = []
        self.r_content: set[str] = set()
        self.r_edges: set[str] = set()
        self.w_content: set[str] = set()
        self.w_edges: set[str] = set()

    def __len__(self) -> int:
        return len(self.items)

    def take(self) -> list[tuple[Replacement, str, list[str], set[str]]]:
        """The pending rewrites, leaving the batch empty."""
        items = self.items
        self.__init__()  # type: ignore[misc]
        return items

    def sees(self, reads: Sets) -> bool:
        """Whether a visit reading ``reads`` could see a change of a pending rewrite."""
        return not (self.w_content.isdisjoint(reads[0]) and self.w_edges.isdisjoint(reads[1]))

    def clashes(self, writes: Sets) -> bool:
        """Whether a rewrite writing ``writes`` changes what a pending rewrite read or writes."""
        content, edges = writes
        return not (content.isdisjoint(self.r_content) and content.isdisjoint(self.w_content)
                    and edges.isdisjoint(self.r_edges))

    def add(self, rep: Replacement, anchor: str, matched: list[str], reads: Sets, writes: Sets) -> None:
        self.items.append((rep, anchor, matched, writes[0]))
        self.r_content |= reads[0]
        self.r_edges |= reads[1]
        self.w_content |= writes[0]
        self.w_edges |= writes[1]


def merged(reps: Iterable[Replacement]) -> Replacement:
    """One replacement doing what independent ``reps`` do (their updates, replaces, control moves and removals)."""
    out = Replacement()
    for rep in reps:
        out.update.extend(rep.update)
        out.replace.update(rep.replace)
        out.replace_control.update(rep.replace_control)
        out.remove.extend(rep.remove)
    return out


def owners(items: list[tuple[Replacement, str, list[str], set[str]]]) -> tuple[dict[str, int], dict[str, int]]:
    """``({node removed by: item index}, {node whose content an item writes: item index})``."""
    removes: dict[str, int] = {}
    writes: dict[str, int] = {}
    for i, (rep, _, _, content) in enumerate(items):
        for name in rep.remove:
            removes.setdefault(name, i)
        for name in content:
            writes.setdefault(name, i)
    return removes, writes


def batched_pass(engine: Any, st: Any) -> None:
    """A full pass of ``st.rule`` (``engine``: the runner's ``_Engine``, ``st``: the rule's state) with the rewrites
    of independent anchors applied together: the same visits, checks and records as one at a time
    (``_Engine.full_pass``), fewer applications. A match may bind nodes up to the pattern's depth above its
    anchor (a rule with its own ``match``: its ``reach``); their read sets count."""
    graph, rule = engine.graph, st.rule
    get, pending, report = graph.get, Batch(), engine.report
    limit = engine.termination.max_steps
    below, above = rule.neighbourhood()
    up = below if type(rule).match is Rule.match else above  # how far above its anchor a match may bind nodes
    try:
        for node in rule.candidates(graph):
            name = node.name
            reads = reads_at(graph, name, up)
            if pending.items and pending.sees(reads):  # its visit must see the pending changes: apply them first
                apply_batch(engine, st, pending)
                reads = reads_at(graph, name, up)
            if get(name) is not node:  # removed/replaced by an earlier rewrite of this pass
                continue
            found = engine.rewrite_at(st, node, name)
            if found is None:
                continue
            rep, matched = found
            if not reads[1].issuperset(matched):  # it bound nodes beyond the region (a rule breaking the contract)
                reads = reads_of(graph, {*matched, *reads[1]})
                if pending.items and pending.sees(reads):  # it may have read a pending change: visit again
                    apply_batch(engine, st, pending)
                    report.stat(rule.name).visited -= 1
                    found = engine.rewrite_at(st, node, name) if get(name) is node else None
                    if found is None:
                        continue
                    rep, matched = found
                    reads = reads_of(graph, {*matched, *reads_at(graph, name, up)[1]})
            writes = writes_of(graph, rep)
            if writes is None:  # applied alone
                apply_batch(engine, st, pending)
                engine.apply(st, rep, name, matched)
                continue
            if pending.clashes(writes):
                apply_batch(engine, st, pending)
            pending.add(rep, name, matched, reads, writes)
            if len(pending.items) >= MAX_BATCH or (limit is not None and len(pending.items) >= limit - engine.steps):
                apply_batch(engine, st, pending)  # (max_steps is not overshot)
    finally:  # (also when a rule fails: what was found before it is applied, as one at a time would have)
        apply_batch(engine, st, pending)


def apply_merged(engine: Any, rule: str, rep: Replacement, anchors: list[str]) -> tuple[Any, list[str], int, list[str]]:
    """Apply the merged replacement ``rep`` of the rewrites at ``anchors`` (``_Engine.apply_recorded``)."""
    at = f" at nodes {', '.join(map(repr, anchors[:3]))}{' …' if len(anchors) > 3 else ''}"
    return engine.apply_recorded(rule, rep, at)


def apply_batch(engine: Any, st: Any, batch: Batch) -> None:
    """Apply the pending rewrites of ``batch`` as one replacement, each booked as ``_Engine.apply`` books it;
    one fingerprint delta, one worklist mark and one termination check for all of them."""
    items = batch.take()
    if len(items) <= 1:
        for rep, anchor, matched, _ in items:
            engine.apply(st, rep, anchor, matched)
        return
    graph, rule = engine.graph, st.rule
    rep = merged(it[0] for it in items)
    if validate_replacement(graph, rep):  # one is invalid: each on its own, to name it (or skip it)
        for one, anchor, matched, _ in items:
            engine.apply(st, one, anchor, matched)
        return
    recorded, removed, delta, changed = apply_merged(engine, rule.name, rep, [it[1] for it in items])
    touched = recorded.touched
    if recorded.renamed:  # (writes_of sends renames of signature tensors to apply alone; kept exact regardless)
        before = engine._sig_state  # noqa: SLF001
        engine._sig_state = engine._signature_state()  # noqa: SLF001
        delta ^= hash(before) ^ hash(engine._sig_state)  # noqa: SLF001
    by_remove, by_write = owners(items)
    own_removed: list[list[str]] = [[] for _ in items]
    for name in removed:
        own_removed[by_remove[name]].append(name)
    own_changed = {by_write.get(name) for name in changed}
    stat = engine.report.stat(rule.name)
    for i, (one, anchor, matched, _) in enumerate(items):
        if not own_removed[i] and i not in own_changed:
            stat.noop += 1
            log.debug("rule %s at %s: the rewrite changed nothing", rule.name, anchor)
            continue
        engine._book(rule.name, one, anchor, matched, own_removed[i])  # noqa: SLF001
    engine.fp ^= delta
    mark_near(graph, engine.log.append, changed, touched, engine.reach, engine.reach_up)
    engine._stop_if(engine.termination.after_step(engine.fp, engine.steps))  # noqa: SLF001


__all__ = ["Batch", "apply_batch", "apply_merged", "batched_pass", "merged", "owners", "reads_at", "reads_of", "writes_of"]
