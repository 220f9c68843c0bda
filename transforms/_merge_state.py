"""What ``merge_duplicates`` keeps between its runs, and the run that looks only at what changed since the last
(plus :class:`Scan`, the full scan's single pass over every node).

After a run, no two nodes of the graph are duplicates (but for the ones a merge may not remove). Two nodes can
become duplicates only when one of them changes (its op, attributes, device or inputs) or when their inputs are
merged, so the next run keys only the nodes changed since (told by their ``NodeDef`` objects: the Graph stores a
new one for every change; weights are not held, see ``held_nodes``: they count as changed) and the consumers of
what it merges, and looks their keys up among the keys the earlier runs recorded.

The survivor of a group is the first of its nodes in the topological order of the full scan (:class:`Scan`: the
graph's own order when it is topological). That order is cheap to tell for two nodes without inputs (the ``Const`` s
``fold_constants`` makes, the usual new duplicates): the one first in the graph comes first. For any other
duplicate found, and whenever what decides mergeability changed (signature inputs, protected nodes, colocation
constraints on a kept duplicate), the incremental run gives up and the pass scans the whole graph again, so the
result is always the full scan's.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping

from graphxform import NodeDef, colocation, parse_input
from graphxform.core.graph import Graph
from graphxform.core.opdefs import LOOP_BACK_EDGE_OPS

from ._graph_edits import is_held

#: ``key(node, data, ctrl, survivor_of) -> (exact, key)``: exact keys are equal only for duplicates; the
#: others (large Consts) put nodes in buckets whose members are compared.
KeyFn = Callable[[NodeDef, list, list, dict], tuple[bool, Hashable]]


def mapped_inputs(data: list[tuple[str, int]], ctrl: list[str], survivor_of: dict[str, str]) -> tuple[tuple, frozenset]:
    """The inputs of a node as its key holds them: data inputs in order, control inputs as a set, each mapped to
    its survivor."""
    return (tuple((survivor_of.get(s, s), p) for s, p in data),
            frozenset(survivor_of.get(c, c) for c in ctrl) if ctrl else frozenset())


def lookup_hash(op: str, device: str, inputs: tuple, attrs_hash: int) -> int:
    """What an exact key is recorded under: the key with its attributes hashed (so that a node whose inputs
    change is keyed again without reading its attributes)."""
    return hash((op, device, inputs, attrs_hash))


def split_inputs(node: NodeDef) -> tuple[list[tuple[str, int]], list[str]]:
    """``(data inputs as (node, port), control input nodes)`` of ``node``."""
    data: list[tuple[str, int]] = []
    ctrl: list[str] = []
    for inp in node.input:
        src, port, control = parse_input(inp)
        if control:
            ctrl.append(src)
        else:
            data.append((src, port))
    return data, ctrl


class Scan:
    """Every node in a topological order: the graph's own order when it is one (the usual GraphDef: a third of the
    cost of sorting), else producers first, a node's consumers in graph order, ready nodes first come first served
    (Kahn's algorithm over the graph's own view: nothing parsed)."""

    def __init__(self, graph: Graph) -> None:
        names = graph.node_names
        self.seen: dict[str, NodeDef] = dict(zip(names, graph))  # (what the pass saw, kept by its state)
        seen = self.seen
        succ, pred = graph.adjacency()
        if len(succ) == len(seen) and not graph.has_op(*LOOP_BACK_EDGE_OPS) and _in_order(names, pred):
            self.order: list[str] = list(names)
            self.cyclic: list[str] = []
            return
        indeg = {n: len(pred[n]) for n in names}  # (producers, each once: a consumer is ready after its last)
        # TF1 loop back edges (NextIteration -> Merge) and inputs naming no node: not ordered by.
        skip = {name for op in LOOP_BACK_EDGE_OPS for name in graph.names_by_op(op)}  # (the graph's op index)
        if len(succ) > len(seen):
            skip.update(n for n in succ if n not in seen)
        for src in skip:
            for child in succ[src]:
                indeg[child] -= 1
        order = self.order = [n for n in names if not indeg[n]]
        position: dict[str, int] | None = None
        i = 0
        while i < len(order):
            name = order[i]
            i += 1
            kids = succ[name]
            if name in skip or not kids:
                continue
            if len(kids) > 1:  # in graph order (the view keeps edges in the order they were made)
                if position is None:
                    position = dict(zip(names, range(len(names))))
                kids = sorted(kids, key=position.__getitem__)
            for child in kids:
                d = indeg[child] - 1
                indeg[child] = d
                if not d:
                    order.append(child)
        self.cyclic = [n for n, d in indeg.items() if d > 0] if len(order) < len(names) else []


def _in_order(names: Iterable[str], pred: Mapping[str, Mapping[str, object]]) -> bool:
    """Whether every node of ``names`` comes after its producers (``pred``: the view's ``{node: {producer: ...}}``)."""
    done: set[str] = set()
    for name in names:
        producers = pred[name]
        if producers and not done.issuperset(producers):
            return False
        done.add(name)
    return True


class MergeState:
    """The keys of the nodes the last run saw, by node and by key (hashes: a lookup that finds one is checked
    against the node's full key), and the ``NodeDef`` objects as that run's merges left them."""

    def __init__(self, seen: dict[str, NodeDef], facts_key: Hashable, colocated: dict[str, list[str]],
                 consts: Iterable[str] | None = None) -> None:
        self.seen: dict[str, NodeDef] = {}
        self.unheld: set[str] = set()  # the nodes not held in seen (weights: see held_nodes)
        self.size = 0  # nodes in the graph the last run saw
        self._hold(seen, consts)
        self.facts_key = facts_key
        self.colocated = colocated  # colocation target -> the nodes colocated with it (their _class attrs)
        self.key_of: dict[str, int] = {}  # node keyed exactly -> its lookup_hash
        self.attrs_of: dict[str, int] = {}  # node keyed exactly -> hash of its attributes, while it is unchanged
        self.groups: dict[int, str | list[str]] = {}  # key hash -> node(s) with it, first in topological order first
        self.bkey_of: dict[str, int] = {}  # large Const (bucket) -> hash of its bucket key
        self.bgroups: dict[int, list[str]] = {}  # bucket key hash -> its nodes
        self.digests: dict[str, int] = {}  # attribute digests of bucket nodes, while the node is unchanged
        self.extras = 0  # duplicates kept because a merge may not remove them (protected, colocation targets)
        self.pending = 0  # how many duplicates the last run's replacement removes

    # ------------------------------------------------------------------ bookkeeping
    def record(self, graph: Graph) -> None:
        """Take the graph's nodes as they are now as the ones seen (after this pass's own replacement, which
        removed duplicates and gave their readers new inputs: a node with inputs is held, so the weights not held
        are the ones not held before, less the removed)."""
        self._hold(dict(graph.items()), [n for n in self.unheld if n in graph])

    def _hold(self, nodes: dict[str, NodeDef], consts: Iterable[str] | None = None) -> None:
        """Hold ``nodes`` but the weights (``is_held``); ``consts``: the names of the nodes among them that may be
        weights (the ``Const`` s; then the others are not looked at)."""
        if consts is None:
            self.seen = {n: node for n, node in nodes.items() if is_held(node)}
            self.unheld = set(nodes).difference(self.seen)
        else:
            self.seen = dict(nodes)
            self.unheld = {n for n in consts if not is_held(nodes[n])}
            for n in self.unheld:
                del self.seen[n]
        self.size = len(nodes)

    def let_go(self, consts: Iterable[str]) -> None:
        """Stop holding the weights (``is_held``) among ``consts``, names of held nodes (the ones that may be)."""
        seen = self.seen
        for n in [n for n in consts if not is_held(seen[n])]:
            del seen[n]
            self.unheld.add(n)

    def add_exact(self, name: str, key: tuple) -> None:
        """Record ``name`` under exact key ``key`` (op, device, inputs, attributes), after the nodes there."""
        attrs_hash = self.attrs_of[name] = hash(key[3])
        self.add(name, True, lookup_hash(key[0], key[1], key[2], attrs_hash))

    def add(self, name: str, exact: bool, h: int, *, first: bool = False) -> None:
        """Record ``name`` under hash ``h`` (``first``: before the nodes already there)."""
        if not exact:
            self.bkey_of[name] = h
            members = self.bgroups.setdefault(h, [])
            members.insert(0, name) if first else members.append(name)
            return
        self.key_of[name] = h
        group = self.groups.get(h)
        if group is None:
            self.groups[h] = name
        elif isinstance(group, str):
            self.groups[h] = [name, group] if first else [group, name]
        else:
            group.insert(0, name) if first else group.append(name)

    def forget(self, name: str) -> None:
        """Drop every record of ``name``."""
        h = self.key_of.pop(name, None)
        if h is not None:
            group = self.groups[h]
            if isinstance(group, str):
                del self.groups[h]
            else:
                group.remove(name)
                if len(group) == 1:
                    self.groups[h] = group[0]
        h = self.bkey_of.pop(name, None)
        if h is not None:
            members = self.bgroups[h]
            members.remove(name)
            if not members:
                del self.bgroups[h]
        self.digests.pop(name, None)

    def drop(self, name: str) -> None:
        """Drop ``name`` (removed, or changed): its records and its attribute hash."""
        self.forget(name)
        self.attrs_of.pop(name, None)

    def digest(self, graph: Graph, name: str, digest_fn: Callable[[NodeDef], int]) -> int:
        d = self.digests.get(name)
        if d is None:
            d = self.digests[name] = digest_fn(graph.node(name))
        return d

    # ------------------------------------------------------------------ the incremental run
    def update(self, graph: Graph, facts_key: Hashable, key_fn: KeyFn, digest_fn: Callable[[NodeDef], int],
               same: Callable[[NodeDef, NodeDef], bool], unmergeable: Callable[[NodeDef], object],
               unremovable: Callable[[str], object]) -> dict[str, str] | None:
        """``{duplicate: survivor}`` for the graph as it is now, looking only at what changed since the last
        run; ``None`` when only a full scan can tell (the state is then no longer valid)."""
        if facts_key != self.facts_key:
            return None
        names = graph.node_names
        seen, unheld = self.seen, self.unheld
        changed = [n for n, node in zip(names, graph) if seen.get(n) is not node]  # (graph order)
        added = sum(1 for n in changed if n not in seen)
        moved = False  # a colocation constraint came or went: a kept duplicate may be removable now
        if len(seen) + added > len(names):
            get = graph.get  # (the node dict's own: no Python frame per name, and seen holds ~every node)
            for n in [n for n in seen if get(n) is None]:
                moved = self._colocate(n, seen.pop(n), None) or moved
                self.drop(n)
        for n in [n for n in unheld if n not in graph]:
            unheld.discard(n)
            self.drop(n)
        for n in changed:
            node = graph.node(n)
            moved = self._colocate(n, seen.get(n), node) or moved
            self.drop(n)
            if is_held(node):
                seen[n] = node
                unheld.discard(n)
            else:
                seen.pop(n, None)
                unheld.add(n)
        self.size = len(names)
        if moved and self.extras:
            return None
        survivor_of: dict[str, str] = {}
        position: dict[str, int] = {}
        queue = deque(changed)
        while queue:
            name = queue.popleft()
            node = graph.get(name)
            if node is None or name in survivor_of:
                continue
            self.forget(name)  # (keyed again: a consumer of a merged node)
            if unmergeable(node) is not None:
                continue
            data, ctrl = split_inputs(node)
            attrs_hash = self.attrs_of.get(name)
            if attrs_hash is not None:  # unchanged but for its inputs: its attributes need not be read again
                exact, key = True, None
                h = lookup_hash(node.op, node.device, mapped_inputs(data, ctrl, survivor_of), attrs_hash)
            else:
                exact, key = key_fn(node, data, ctrl, survivor_of)
                if exact:
                    attrs_hash = self.attrs_of[name] = hash(key[3])
                    h = lookup_hash(key[0], key[1], key[2], attrs_hash)
                else:
                    h = hash(key)
            other = self._equal(graph, name, node, exact, key, h, key_fn, digest_fn, same, survivor_of)
            if other is None:
                self.add(name, exact, h)
                continue
            if other == "":  # more than one candidate, or a hash collision: a full scan decides
                return None
            other_node = graph.node(other)
            if node.input or other_node.input:  # their order is the full scan's to tell
                return None
            if not position:
                position = {n: i for i, n in enumerate(names)}
            first, dup = (name, other) if position[name] < position[other] else (other, name)
            if unremovable(dup) is not None:  # both stay, the first one first
                if dup == other:
                    self.forget(other)
                    self.add(name, exact, h, first=True)
                    self.add(other, exact, h)
                else:
                    self.add(name, exact, h)
                self.extras += 1
                continue
            survivor_of[dup] = first
            self.drop(dup)
            if dup == other:
                self.add(name, exact, h, first=True)
            queue.extend(graph.consumer_nodes(dup))
        return survivor_of

    def _colocate(self, name: str, old: NodeDef | None, new: NodeDef | None) -> bool:
        """Follow the colocation constraints of ``name`` from ``old`` to ``new``; whether they changed."""
        before = colocation(old) if old is not None else []
        after = colocation(new) if new is not None else []
        if before == after:
            return False
        for t in before:
            users = self.colocated.get(t, [])
            if name in users:
                users.remove(name)
            if not users:
                self.colocated.pop(t, None)
        for t in after:
            self.colocated.setdefault(t, []).append(name)
        return True

    def _equal(self, graph: Graph, name: str, node: NodeDef, exact: bool, key: Hashable | None, h: int, key_fn: KeyFn,
               digest_fn: Callable[[NodeDef], int], same: Callable[[NodeDef, NodeDef], bool],
               survivor_of: dict[str, str]) -> str | None:
        """The one recorded node ``node`` duplicates (``None``: none; ``""``: not for this run to tell)."""
        if exact:
            group = self.groups.get(h)
            if group is None:
                return None
            if not isinstance(group, str):
                return ""
            candidates = [group]
        else:
            members = self.bgroups.get(h)
            if not members:
                return None
            d = self.digests[name] = digest_fn(node)
            candidates = [m for m in members if self.digest(graph, m, digest_fn) == d and same(graph.node(m), node)]
            if not candidates:
                return None
            if len(candidates) > 1:
                return ""
        other = candidates[0]
        other_node = graph.node(other)
        if key is None:
            key = key_fn(node, *split_inputs(node), survivor_of)[1]
        if key_fn(other_node, *split_inputs(other_node), survivor_of)[1] != key:
            return "" if exact else None
        return other


__all__ = ["MergeState", "Scan", "lookup_hash", "mapped_inputs", "split_inputs"]
