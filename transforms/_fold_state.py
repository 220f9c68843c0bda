"""What ``fold_constants`` keeps between its runs: enough to tell, from what changed since, that a run would find
nothing (no node became foldable, no constant node got a non-constant reader, no node became unused).

After a run (and its replacements), the graph is at the pass's fixpoint. Which nodes are constant changes only
where nodes changed (told by their ``NodeDef`` objects: the Graph stores a new one for every change; weights are
not held, see ``held_nodes``: they count as changed) and below;
a constant node joins the frontier only when its readers change; a node becomes unused only when it, or a node
below it, loses a reader. So the next run looks at the changed nodes, their inputs, the nodes that lost a reader
and the readers of new ``Const`` s; when any of them may give work, or the signatures, protected nodes, graph
functions or colocation constraints changed, the pass runs in full — the same run as without this state.
"""
from __future__ import annotations

from collections.abc import Hashable

from graphxform import NodeDef, Replacement, parse_input
from graphxform.core.graph import Graph
from graphxform.tf.constant_analysis import own_reason

from ._graph_edits import held_nodes, is_held


def facts_key(graph: Graph) -> Hashable:
    """What folding depends on besides the nodes: signature tensors, protected nodes, graph functions."""
    sigs = tuple((s.key, k, tuple(spec.tensor_names())) for s in graph.signatures.values()
                 for k, spec in (*s.inputs.items(), *s.outputs.items()))
    return sigs, frozenset(graph.protected), frozenset(f.signature.name for f in graph.library.function)


def _sources(node: NodeDef) -> set[str]:
    return {parse_input(i)[0] for i in node.input}


class FoldState:
    """The nodes as the last run left them, which of them were constant, and which constant nodes are not
    ``Const`` s (kept over the size budget, or read only by constant nodes)."""

    def __init__(self, seen: dict[str, NodeDef], constant: set[str], inner: set[str], key: Hashable) -> None:
        self.seen = seen
        self.constant = constant
        self.inner = inner
        self.key = key
        self.expected: list[tuple[str, NodeDef]] = []  # the nodes the last run's replacements add or update
        self.pending = False  # whether the last run returned replacements

    def expect(self, reps: list[Replacement]) -> None:
        """Remember the nodes ``reps`` add or update (the graph keeps those very objects)."""
        self.expected = [(n.name, n) for rep in reps for n in (*rep.add, *rep.update)]
        self.pending = bool(reps)

    def applied(self, graph: Graph) -> bool:
        """Record the graph as the last run's replacements left it; False if they were not all applied."""
        if any(graph.get(name) is not node for name, node in self.expected):
            return False
        self.constant.update(name for name, node in self.expected if node.op == "Const")
        self.inner = {n for n in self.inner if n in graph and graph.node(n).op != "Const"}
        self.expected, self.pending = [], False
        self.seen = held_nodes(graph)
        return True

    def quiet(self, graph: Graph, key: Hashable) -> bool:
        """True when a run would find nothing to fold or remove because nothing it depends on changed since the
        last run (which is then recorded as seen); False when the pass must run in full."""
        if key != self.key:
            return False
        seen = self.seen
        changed = {n: node for n, node in graph.items() if seen.get(n) is not node}  # (name: its NodeDef now)
        added = [n for n in changed if n not in seen]
        get = graph.get  # (the node dict's own: no Python frame per name)
        removed = [n for n in seen if get(n) is None] if len(seen) + len(added) > len(graph) else []
        inner, constant = self.inner, self.constant
        lost: set[str] = set()  # nodes that lost a reader
        for n in removed:
            old = seen[n]
            if "_class" in old.attr or n in inner:
                return False
            lost |= _sources(old)
        producers = graph.adjacency()[1]  # (the nodes' inputs, as _sources parses them, without parsing)
        sources = {n: set(producers[n]) for n in changed}
        for n, node in changed.items():
            old = seen.get(n)
            if n in inner or "_class" in node.attr or (old is not None and "_class" in old.attr):
                return False
            if old is not None and old.input != node.input:  # (same inputs: same sources, none lost)
                lost |= _sources(old) - sources[n]
        if lost & inner:  # a constant node that lost a reader may be a frontier (or unused) now
            return False
        feeds = {parse_input(t)[0] for s in graph.signatures.values() for spec in s.inputs.values()
                 for t in spec.tensor_names()}
        reasons: dict[str, str | None] = {}
        new_consts = set()
        for n, node in changed.items():
            if node.op == "Const":
                if node.input:
                    return False
                if own_reason(graph, node, feeds, reasons) is None:
                    new_consts.add(n)
        gone = changed.keys() | removed
        now_constant = (constant - gone) | new_consts if gone & constant or new_consts else constant

        def foldable(node: NodeDef, srcs: set[str]) -> bool:  # every input constant, nothing of its own against it
            return srcs <= now_constant and own_reason(graph, node, feeds, reasons) is None

        get = graph.node
        for n, node in changed.items():
            if node.op == "Const":
                continue
            srcs = sources[n]
            if foldable(node, srcs) or not srcs.isdisjoint(inner):  # newly constant, or a constant node's reader
                return False
            if n in constant and any(c in inner or get(c).op == "Const" for c in graph.consumer_nodes(n)):
                return False  # no longer constant: a constant node it feeds is not any more either
        for n in new_consts - constant:  # readers of a new Const may have become constant
            for c in graph.consumer_nodes(n):
                if c not in changed and foldable(get(c), set(producers[c])):
                    return False
        if not self._still_needed(graph, [n for n in lost if n in graph] + added):
            return False
        for n in removed:
            del seen[n]
        for n, node in changed.items():
            if is_held(node):
                seen[n] = node
            else:
                seen.pop(n, None)
        self.constant = now_constant
        return True

    @staticmethod
    def _still_needed(graph: Graph, nodes: list[str]) -> bool:
        """True when every node of ``nodes`` still reaches a signature tensor or protected node through its
        readers (followed first reader first; a dead end or a loop gives False: the full run will tell)."""
        if not nodes:
            return True
        succ = graph.adjacency()[0]
        known = graph.protected_nodes()
        if not known:  # nothing is needed by anything: fold_constants removes nothing as unused
            return True
        for start in nodes:
            path: list[str] = []
            on_path: set[str] = set()
            n = start
            while n not in known:
                if n in on_path:
                    return False
                path.append(n)
                on_path.add(n)
                readers = succ.get(n)
                if not readers:
                    return False
                n = next(iter(readers))
            known.update(path)
        return True


__all__ = ["FoldState", "facts_key"]
