"""The networkx view of a :class:`~graphxform.core.graph.Graph`, built and edited in step with its nodes.

One networkx node per ``NodeDef`` (attribute ``op``; ``None`` for a name an input refers to that is not in the
graph) and one edge per input, carrying ``src_port``, ``dst_port`` (``-1`` for a control input) and
``control``. The functions here write the dicts ``MultiDiGraph.add_edge`` would build (``_succ`` and
``_pred`` sharing one key dict per node pair, keys 0, 1, … per pair) without its per-call cost, and edit only
the edges that change: a node gathering hundreds of control dependencies sees one replaced at a time, and
rebuilding all its edges each time would be quadratic. Only :mod:`graphxform.core.graph` calls them; with
this module it is the only code that touches networkx's internals.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Set as AbstractSet

import networkx as nx
from tensorflow.core.framework import node_def_pb2

from graphxform.core.errors import GraphError
from graphxform.core.names import parse_input


#: The view's edge and node attribute dicts, one per distinct value, shared by every edge or node that has it
#: (a 1M-node graph holds two million of them otherwise). Never modified: an edge that moves gets another.
_EDGE_DATA: dict[tuple[int, int, bool], dict] = {}
_NODE_ATTRS: dict[str | None, dict] = {}


#: Key of the view's graph attribute telling whether a control edge was ever made in it (absent: unknown).
_CONTROL_SEEN = "graphxform.control_edges"


def may_have_control_edges(g: nx.MultiDiGraph) -> bool:
    """``False`` only when no control edge was ever made in ``g`` (then none is there): a graph without control
    inputs, the common large one, answers "which nodes have control inputs" without a look at its edges."""
    return g.graph.get(_CONTROL_SEEN, True)


def _control_made(g: nx.MultiDiGraph) -> None:
    g.graph[_CONTROL_SEEN] = True


def edge_data(src_port: int, dst_port: int, control: bool) -> dict:
    """The (shared, read-only) attribute dict of an edge ``src:src_port -> dst`` input ``dst_port``."""
    key = (src_port, dst_port, control)
    data = _EDGE_DATA.get(key)
    if data is None:
        data = _EDGE_DATA[key] = {"src_port": src_port, "dst_port": dst_port, "control": control}
    return data


def node_attrs(op: str | None) -> dict:
    """The (shared, read-only) attribute dict of a node of the view running ``op`` (``None``: a dangling name)."""
    attrs = _NODE_ATTRS.get(op)
    if attrs is None:
        attrs = _NODE_ATTRS[op] = {"op": op}
    return attrs


def _link(succ: dict, pred: dict, src: str, dst: str, data: dict) -> None:
    """Add edge ``src -> dst`` with ``data`` as ``add_edge`` does (one key dict shared by ``succ[src][dst]`` and
    ``pred[dst][src]``, the lowest free key); the caller clears networkx's cache once after a batch."""
    keys = pred[dst].get(src)
    if keys is None:
        keys = pred[dst][src] = succ[src][dst] = {}
    key = len(keys)
    while key in keys:
        key += 1
    keys[key] = data


def build(g: nx.MultiDiGraph, nodes: Mapping[str, node_def_pb2.NodeDef]) -> dict[str, dict[str, None]]:
    """Fill the (empty) view ``g`` from ``nodes`` in one pass: a third of the load time of a large graph saved.
    Returns ``{op: {name: None}}`` (the Graph's op index: each node's op is read once, here).

    The edge loop is :func:`_link` and :func:`~graphxform.core.names.parse_input` inlined, with the common
    input (a bare node name: output 0) split without a call: a fifth of the build of a 1M-node graph."""
    node_attr, succ, pred = g._node, g._succ, g._pred  # noqa: SLF001
    by_op: dict[str, dict[str, None]] = {}
    shared = _NODE_ATTRS
    for name, node in nodes.items():
        op = node.op
        attrs = shared.get(op)
        node_attr[name] = attrs if attrs is not None else node_attrs(op)
        succ[name] = {}
        pred[name] = {}
        same_op = by_op.get(op)
        if same_op is None:
            same_op = by_op[op] = {}
        same_op[name] = None
    first = [edge_data(0, port, False) for port in range(8)]  # (the common edges: output 0 to input 0..7)
    any_control = False
    for name, node in nodes.items():
        inputs = node.input
        if not inputs:
            continue
        producers = pred[name]
        for dst_port, inp in enumerate(inputs):
            if ":" in inp or inp[:1] == "^":
                src, src_port, control = parse_input(inp)
                any_control = any_control or control
            else:
                src, src_port, control = inp, 0, False
            if src not in node_attr:  # dangling; lint reports it
                node_attr[src] = node_attrs(None)
                succ[src] = {}
                pred[src] = {}
            data = (first[dst_port] if src_port == 0 and dst_port < 8 and not control
                    else edge_data(src_port, -1 if control else dst_port, control))
            keys = producers.get(src)
            if keys is None:
                producers[src] = succ[src][name] = {0: data}
                continue
            key = len(keys)
            while key in keys:
                key += 1
            keys[key] = data
    if any_control or _CONTROL_SEEN not in g.graph:
        g.graph[_CONTROL_SEEN] = any_control
    nx._clear_cache(g)  # noqa: SLF001 - (networkx caches views of the adjacency)
    return by_op


def add_in_edges(g: nx.MultiDiGraph, node: node_def_pb2.NodeDef, known: Mapping[str, object], *,
                 strict: bool) -> None:
    """The edges of ``node`` 's inputs; an input naming no node of ``known`` is refused (``strict``) or dangles."""
    for dst_port, inp in enumerate(node.input):
        src, src_port, control = parse_input(inp)
        if src not in known:
            if strict:
                raise GraphError(f"node {node.name!r} input {inp!r} names no node in the graph")
            g.add_node(src, op=None)  # dangling; lint reports it
        if control:
            _control_made(g)
        g.add_edge(src, node.name, src_port=src_port, dst_port=-1 if control else dst_port, control=control)


def update_in_edges(g: nx.MultiDiGraph, previous: node_def_pb2.NodeDef, node: node_def_pb2.NodeDef) -> set[str]:
    """Change the in-edges of ``node`` from those of ``previous`` to its own: only the differing edges.

    Data inputs are compared by position, control inputs as a multiset of strings. Returns the producers
    whose edges to ``node`` changed.
    """
    def split(inputs: list[str]) -> tuple[list[str], list[str]]:
        k = next((i for i, s in enumerate(inputs) if s.startswith("^")), len(inputs))
        return inputs[:k], inputs[k:]

    old_data, old_ctrl = split(list(previous.input))
    new_data, new_ctrl = split(list(node.input))
    gone: list[tuple[str, int]] = []  # (input string, dst_port)
    came: list[tuple[str, int]] = []
    for i in range(max(len(old_data), len(new_data))):
        a = old_data[i] if i < len(old_data) else None
        b = new_data[i] if i < len(new_data) else None
        if a != b:
            if a is not None:
                gone.append((a, i))
            if b is not None:
                came.append((b, i))
    if old_ctrl != new_ctrl:
        c_old, c_new = Counter(old_ctrl), Counter(new_ctrl)
        gone.extend((s, -1) for s, c in (c_old - c_new).items() for _ in range(c))
        came.extend((s, -1) for s, c in (c_new - c_old).items() for _ in range(c))
    name = node.name
    adj = g._adj  # noqa: SLF001 - {src: {dst: {key: data}}}, read only here
    sources: set[str] = set()
    for inp, dst_port in gone:
        src, src_port, control = parse_input(inp)
        key = next(k for k, d in adj[src][name].items()
                   if d["src_port"] == src_port and d["dst_port"] == dst_port and d["control"] == control)
        g.remove_edge(src, name, key)
        drop_dangling(g, [src])
        sources.add(src)
    for inp, dst_port in came:
        src, src_port, control = parse_input(inp)
        if control:
            _control_made(g)
        g.add_edge(src, name, src_port=src_port, dst_port=dst_port, control=control)
        sources.add(src)
    return sources


def remove_in_edges(g: nx.MultiDiGraph, name: str) -> None:
    edges = list(g.in_edges(name, keys=True))
    g.remove_edges_from(edges)
    drop_dangling(g, (src for src, _, _ in edges))


def drop_dangling(g: nx.MultiDiGraph, names: Iterable[str]) -> None:
    """Remove from the view the names that only stood for missing inputs and have no edge left."""
    node_attr, succ, pred = g._node, g._succ, g._pred  # noqa: SLF001 - asked once per removed node: no views
    for src in names:
        attr = node_attr.get(src)
        if attr is not None and attr.get("op") is None and not succ[src] and not pred[src]:
            del node_attr[src], succ[src], pred[src]
    nx._clear_cache(g)  # noqa: SLF001


def _unlink(g: nx.MultiDiGraph, name: str) -> list[str]:
    """Remove node ``name``, which nothing reads, and its in-edges from the view's dicts (one edit instead of
    ``remove_node``'s views and checks; the caller drops dangling inputs and clears the cache). Returns the
    producers it read (each once), those already removed included (a group removed together)."""
    succ = g._succ  # noqa: SLF001
    sources = list(g._pred.pop(name))  # noqa: SLF001
    del succ[name], g._node[name]  # noqa: SLF001
    for src in sources:
        out = succ.get(src)
        if out is not None:
            del out[name]
    return sources


def remove_unread(g: nx.MultiDiGraph, name: str) -> list[str]:
    """Remove node ``name``, which nothing reads, and its in-edges; inputs left dangling go too. Returns the
    producers it read (each once)."""
    sources = _unlink(g, name)
    drop_dangling(g, sources)
    return sources


def sweep_unread(g: nx.MultiDiGraph, names: list[str], keep: Container[str],
                 forget: Callable[[str, list[str]], None]) -> tuple[list[str], list[str]]:
    """Remove each of ``names`` (nodes of the graph) not in ``keep`` once nothing reads it, readers first, calling
    ``forget(name, producers)`` for each; returns ``(removed in order, kept)``."""
    succ = g._succ  # noqa: SLF001
    removed: list[str] = []
    sources: list[str] = []
    pending = names
    while pending:
        left = []
        for name in pending:
            if name in keep or succ[name]:
                left.append(name)
                continue
            producers = _unlink(g, name)
            forget(name, producers)
            sources.extend(producers)
            removed.append(name)
        if len(left) == len(pending):
            break
        pending = left
    drop_dangling(g, sources)
    return removed, pending


def unlink_group(g: nx.MultiDiGraph, names: list[str], forget: Callable[[str, list[str]], None]) -> None:
    """Remove ``names`` in that order, nodes nothing but each other reads, with their in-edges (an edge between two
    of them goes with the first one removed), calling ``forget(name, producers)`` for each."""
    sources: list[str] = []
    for name in names:
        producers = _unlink(g, name)
        forget(name, producers)
        sources.extend(producers)
    drop_dangling(g, sources)


def cut_group(g: nx.MultiDiGraph, names: list[str], group: AbstractSet[str]) -> list[str]:
    """:func:`unlink_group` for a group that is a large share of the view (``group``: the set of ``names``), in
    bulk: the producers outside the group lose their edges to it, then each of the view's dicts keeps what stays
    (one filter, in order, instead of a deletion per node). Returns the producers each removed node read
    (each node's once, in order; those in the group included); the caller forgets the nodes."""
    node_attr, succ, pred = g._node, g._succ, g._pred  # noqa: SLF001
    sources: list[str] = []
    for name in names:
        sources.extend(pred[name])
    outside = set(sources)
    outside.difference_update(group)
    for src in outside:
        out = succ.get(src)
        if out:
            for dst in [d for d in out if d in group]:
                del out[dst]
    for table in (node_attr, succ, pred):
        kept = {k: v for k, v in table.items() if k not in group}
        table.clear()
        table.update(kept)
    drop_dangling(g, outside)
    return sources


def move_data_edges(g: nx.MultiDiGraph, by_node: Mapping[str, Mapping[int, tuple[str, int, str]]],
                    skip: AbstractSet[str] = frozenset()) -> tuple[dict[str, list[tuple[int, str]]], set[str]]:
    """Point every data edge from ``old:port`` at ``by_node[old][port] = (new node, new port, input string)``.

    Returns ``({consumer: [(input index, new input string), ...]}, producers that lost or gained a consumer)``:
    the inputs the caller rewrites in the consumers' ``NodeDef`` s (a data edge's ``dst_port`` is the index of
    the input it stands for). No ``new`` may be an ``old`` of another port of the same mapping (the caller splits
    such chains), so an edge moves at most once. Edges to the consumers in ``skip`` stay.
    """
    succ, pred = g._succ, g._pred  # noqa: SLF001 - edges moved in the dicts networkx keeps (as in build)
    edits: dict[str, list[tuple[int, str]]] = {}
    touched: set[str] = set()
    losers: list[str] = []  # (only a node that lost an edge can be left a dangling name without edges)
    for old_node, ports in by_node.items():
        out = succ.get(old_node)
        if not out or (skip and skip.issuperset(out)):  # (read only by nodes that go: nothing moves)
            continue
        moves = [(dst, key, d) for dst, edges in out.items() for key, d in edges.items()
                 if not d["control"] and d["src_port"] in ports and dst not in skip]
        if not moves:
            continue
        touched.add(old_node)
        losers.append(old_node)
        for dst, key, d in moves:
            keys = out[dst]  # the key dict is shared by _succ[old][dst] and _pred[dst][old]
            del keys[key]
            if not keys:
                del out[dst], pred[dst][old_node]
            new_node, new_port, new_inp = ports[d["src_port"]]
            d = edge_data(new_port, d["dst_port"], False)  # (shared dicts are never modified)
            _link(succ, pred, new_node, dst, d)
            touched.add(new_node)
            found = edits.get(dst)
            if found is None:
                edits[dst] = [(d["dst_port"], new_inp)]
            else:
                found.append((d["dst_port"], new_inp))
    drop_dangling(g, losers)  # (clears networkx's cache)
    return edits, touched


def move_control_edges(g: nx.MultiDiGraph, old_node: str, dst: str, new_nodes: list[str]) -> list[str]:
    """``dst`` depends on each of ``new_nodes`` instead of ``old_node``; returns the ``"^n"`` inputs it gains
    (none for a node that already feeds ``dst``, by data or control edge, or for ``dst`` itself)."""
    adj = g._adj  # noqa: SLF001 - {src: {dst: {key: data}}}
    for key in [k for k, d in adj[old_node][dst].items() if d["control"]]:
        g.remove_edge(old_node, dst, key)
    extra: list[str] = []
    for n in new_nodes:
        if n != dst and dst not in adj[n]:
            _control_made(g)
            g.add_edge(n, dst, src_port=-1, dst_port=-1, control=True)
            extra.append("^" + n)
    return extra


def has_consumers(g: nx.MultiDiGraph, name: str) -> bool:
    return bool(g._succ.get(name))  # noqa: SLF001 - O(1), no view object


def out_edges(g: nx.MultiDiGraph, name: str) -> list[tuple[str, dict]]:
    """``[(consumer, edge data), ...]`` of the edges leaving ``name``, in the view's order (what
    ``g.out_edges(name, data=True)`` yields, without building view objects: rules ask this for every match)."""
    return [(dst, d) for dst, keys in g._succ.get(name, {}).items() for d in keys.values()]  # noqa: SLF001


def successors(g: nx.MultiDiGraph, name: str) -> list[str]:
    """The nodes with an edge from ``name`` (each once)."""
    return list(g._succ.get(name, ()))  # noqa: SLF001


def positions(items: list[str], item: str) -> list[int]:
    """The indices of ``item`` in ``items`` (scanned by ``list.index``, in C: a hub has hundreds of inputs)."""
    found: list[int] = []
    try:
        while True:
            found.append(items.index(item, found[-1] + 1 if found else 0))
    except ValueError:
        return found


__all__ = ["add_in_edges", "build", "drop_dangling", "has_consumers", "move_control_edges", "move_data_edges",
           "out_edges", "positions", "remove_in_edges", "remove_unread", "successors", "sweep_unread", "unlink_group",
           "update_in_edges"]
