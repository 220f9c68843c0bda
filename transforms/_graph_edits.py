"""Whole-graph edits as one :class:`~graphxform.Replacement`: a new node list, or renamed nodes.

Several GTT transforms compute a new graph in steps (``quantize_nodes``, ``sparsify_gather``) or rename nodes
(``obfuscate_names``, ``rename_node``). A pass hands such a result to the runner as one replacement: the nodes
that are new are added, the changed ones updated, the ones gone removed (consumers first, so one sweep does),
and signatures follow renamed tensors.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from graphxform import NodeDef, Replacement, colocation, copy_node, parse_input, with_colocation, with_inputs
from graphxform.core.graph import Graph
from graphxform.core.memory import const_elements


#: A ``Const`` of at least this many elements is not held by a pass's state between runs.
HELD_CONST_ELEMENTS = 1024


def held_nodes(graph: Graph) -> dict[str, NodeDef]:
    """``{name: NodeDef}`` of the nodes a pass keeps between its runs to tell, by object, which changed since.

    Weights are left out (a ``Const`` of :data:`HELD_CONST_ELEMENTS` or more, without ``_class`` or inputs): holding one
    would keep
    it alive after a rule replaced it (a whole model's weights twice, after ``fold_batch_norms``); such a node
    counts as changed at every run instead, which costs the pass a look at a few hundred nodes.
    """
    return {name: node for name, node in graph.items() if is_held(node)}


def is_held(node: NodeDef) -> bool:
    """Whether :func:`held_nodes` keeps ``node``."""
    if node.op != "Const" or "_class" in node.attr or node.input:
        return True
    return const_elements(node) < HELD_CONST_ELEMENTS  # (from the shape: reading tensor_content would copy it)


def consumers_first(graph: Graph, names: set[str]) -> tuple[list[str], list[str]]:
    """``names`` ordered consumers before producers, and those of them on cycles (at the end of the order).
    The order depends on the graph and the names alone (not on the process's string hashing, which orders a set):
    the removals a trace records are the same in every run."""
    out_deg = {n: sum(1 for c in graph.consumer_nodes(n) if c in names) for n in sorted(names)}
    ready = [n for n, d in out_deg.items() if d == 0]
    order: list[str] = []
    while ready:
        n = ready.pop()
        order.append(n)
        for src in dict.fromkeys(parse_input(i)[0] for i in graph.node(n).input):
            if src in out_deg:
                out_deg[src] -= 1
                if out_deg[src] == 0:
                    ready.append(src)
    cyclic: list[str] = []
    if len(order) < len(names):
        done = set(order)
        cyclic = sorted(n for n in names if n not in done)
    return order + cyclic, cyclic


def replacement_for(graph: Graph, nodes: Iterable[NodeDef]) -> Replacement:
    """The replacement that turns ``graph`` into ``nodes`` (a complete, consistent node list).

    Nodes of a new name are added, nodes whose ``NodeDef`` changed are updated, nodes not in ``nodes`` are
    removed (protected nodes stay: the runner never removes them).
    """
    new = {n.name: n for n in nodes}
    rep = Replacement()
    for name, node in new.items():
        old = graph.get(name)
        if old is None:
            rep.add.append(node)
        elif old != node:
            rep.update.append(node)
    gone = {n for n in graph.node_names if n not in new}
    if gone:
        rep.remove, cyclic = consumers_first(graph, gone)
        rep.update.extend(with_inputs(graph.node(n), []) for n in cyclic)  # cut dead loops so they can go
    return rep


def _renamed_input(inp: str, renames: Mapping[str, str]) -> str:
    name, port, control = parse_input(inp)
    if name not in renames:
        return inp
    new = renames[name]
    if control:
        return f"^{new}"
    return new if port == 0 and ":" not in inp else f"{new}:{port}"


def _with_renamed_refs(node: NodeDef, renames: Mapping[str, str], name: str | None = None) -> NodeDef:
    out = with_inputs(node, [_renamed_input(i, renames) for i in node.input])
    locs = colocation(node)
    if any(t in renames for t in locs):
        out = with_colocation(out, [renames.get(t, t) for t in locs])
    return copy_node(out, name=name) if name is not None else out


def rename_replacement(graph: Graph, renames: Mapping[str, str]) -> Replacement:
    """The replacement that renames nodes (``{old: new}``): every input, ``^control`` input, ``_class``
    colocation entry and signature tensor naming an old name follows. New names must be free (or freed by
    the renaming itself)."""
    renames = {old: new for old, new in renames.items() if old != new and old in graph}
    rep = Replacement()
    if not renames:
        return rep
    touched: set[str] = set()
    for old in renames:
        touched.update(graph.consumer_nodes(old))
    for node in graph:
        if node.name in renames:
            rep.add.append(_with_renamed_refs(node, renames, renames[node.name]))
        elif node.name in touched or any(t in renames for t in colocation(node)):
            new = _with_renamed_refs(node, renames)
            if new != node:
                rep.update.append(new)
    for tensor in graph.signature_tensors():  # signatures follow (the old nodes only feed each other by then)
        name, port, _ = parse_input(tensor)
        if name in renames:
            rep.replace[f"{name}:{port}"] = f"{renames[name]}:{port}"
    for name in renames:
        if name in graph.protected:
            rep.replace.setdefault(f"{name}:0", f"{renames[name]}:0")
    rep.remove, cyclic = consumers_first(graph, set(renames))
    rep.update.extend(with_inputs(graph.node(n), []) for n in cyclic)
    return rep


__all__ = ["HELD_CONST_ELEMENTS", "consumers_first", "held_nodes", "is_held", "rename_replacement", "replacement_for"]
