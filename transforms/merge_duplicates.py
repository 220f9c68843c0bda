"""``merge_duplicates``: common-subexpression elimination over whole nodes.

GTT name: ``merge_duplicate_nodes``. Two nodes are duplicates when they have
the same op, device, attributes (``Const`` values compared byte for byte;
``_output_shapes`` hints ignored),
the same data inputs in the same order and the same control inputs (as a
set). The later one's consumers move to the first. One pass in topological
order with inputs mapped to their survivors collapses whole chains of
duplicates, so a single round reaches the fixpoint. Later runs look only at
the nodes changed since (``transforms/_merge_state.py``), and scan the whole
graph again only when that cannot tell the full scan's result.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

from tensorflow.core.framework import attr_value_pb2

from graphxform import Context, NodeDef, Pass, Replacement, colocation, parse_input, register
from graphxform.core.collector import gc_paused
from graphxform.core.graph import Graph
from graphxform.core.opdefs import CONTROL_FLOW_OPS, FEED_OPS, is_stateful

from ._merge_keys import HINT_ATTRS, const_bytes, scan_key
from ._merge_keys import cheap_key as _cheap_key, exact_attrs as _exact_attrs  # noqa: F401 - (tests use the latter)
from ._merge_state import MergeState, Scan as _Scan

log = logging.getLogger(__name__)

#: Never merged: feed points (two placeholders are two inputs) and TF1 control flow.
NEVER_MERGE = FEED_OPS | CONTROL_FLOW_OPS


# ----------------------------------------------------------------- equality
def _attr_key(node: NodeDef, key: str, value: attr_value_pb2.AttrValue) -> Hashable:
    if node.op == "Const" and key == "value" and value.HasField("tensor"):
        t = value.tensor
        return (t.dtype, tuple(d.size for d in t.tensor_shape.dim), hash(const_bytes(t)))
    return value.SerializeToString(deterministic=True)


def _attr_digest(node: NodeDef) -> int:
    """A hash of ``node``'s attributes: a bucket key only; equality is decided by :func:`node_difference`."""
    return hash(tuple((k, _attr_key(node, k, node.attr[k])) for k in sorted(node.attr) if k not in HINT_ATTRS))


def _node_key(node: NodeDef, data: list[tuple[str, int]], ctrl: list[str],
              survivor_of: dict[str, str]) -> tuple[bool, Hashable]:
    """``(True, key)``, equal only for duplicates, or ``(False, bucket key)`` for a large Const (its bucket's
    members are compared); inputs are mapped to their survivors (``data``, ``ctrl``: read again from ``node``)."""
    return scan_key(node, node.name, node.op, list(node.input), survivor_of)


def attr_difference(a: NodeDef, b: NodeDef) -> str | None:
    """``None`` when ``a`` and ``b`` have equal attributes (exact), else which attribute differs."""
    keys_a, keys_b = set(a.attr) - HINT_ATTRS, set(b.attr) - HINT_ATTRS
    if keys_a != keys_b:
        return f"attributes differ: {sorted(keys_a ^ keys_b)}"
    for key in sorted(keys_a):
        va, vb = a.attr[key], b.attr[key]
        if a.op == "Const" and key == "value" and va.HasField("tensor") and vb.HasField("tensor"):
            ta, tb = va.tensor, vb.tensor
            if ta.dtype != tb.dtype:
                return "Const dtypes differ"
            if [d.size for d in ta.tensor_shape.dim] != [d.size for d in tb.tensor_shape.dim]:
                return "Const shapes differ"
            if const_bytes(ta) != const_bytes(tb):
                return "Const values differ"
        elif va != vb:
            return f"attribute {key!r} differs"
    if a.experimental_type != b.experimental_type:
        return "experimental_type differs"
    return None


def node_difference(graph: Graph, a: NodeDef, b: NodeDef,
                    rep: Callable[[str], str] = lambda n: n) -> str | None:
    """``None`` when ``a`` and ``b`` compute the same thing; else the first difference found."""
    if a.op != b.op:
        return f"ops differ ({a.op} vs {b.op})"
    if a.device != b.device:
        return f"devices differ ({a.device or '<none>'} vs {b.device or '<none>'})"
    ka, kb = _input_key(a, rep), _input_key(b, rep)
    if ka[0] != kb[0]:
        return "data inputs differ"
    if ka[1] != kb[1]:
        return "control inputs differ"
    return attr_difference(a, b)


def _input_key(node: NodeDef, rep: Callable[[str], str]) -> tuple[tuple, frozenset]:
    data, ctrl = [], set()
    for inp in node.input:
        src, port, control = parse_input(inp)
        if control:
            ctrl.add(rep(src))
        else:
            data.append((rep(src), port))
    return tuple(data), frozenset(ctrl)


# ----------------------------------------------------------------- graph facts
class _Facts:
    """What makes a node unmergeable or unremovable, computed once per graph."""

    def __init__(self, graph: Graph, colocated_with: dict[str, list[str]] | None = None) -> None:
        self.signature_inputs = {parse_input(t)[0] for s in graph.signatures.values()
                                 for spec in s.inputs.values() for t in spec.tensor_names()}
        self.signature_ports: dict[str, set[int]] = {}
        for t in graph.signature_tensors():
            n, p, _ = parse_input(t)
            self.signature_ports.setdefault(n, set()).add(p)
        if colocated_with is None:  # (a pass's state keeps it up to date between runs)
            colocated_with = {}
            for node in graph if graph.colocation_index() else ():  # (the graph's index: often no colocation)
                for target in colocation(node):
                    colocated_with.setdefault(target, []).append(node.name)
        self.colocated_with = colocated_with  # target -> the nodes colocated with it
        self.mergeable_ops: set[str] = set()  # ops seen neither stateful nor control flow

    def key(self, graph: Graph) -> Hashable:
        """What the facts depend on besides the nodes' colocation constraints."""
        return frozenset(self.signature_inputs), frozenset(graph.protected)

    def unmergeable(self, node: NodeDef) -> str | None:
        if node.op in self.mergeable_ops:
            return f"{node.name!r} is a signature input (a feed point)" if node.name in self.signature_inputs else None
        if node.op in NEVER_MERGE:
            return f"{node.name!r} is a {node.op}: feed points and control-flow ops are never merged"
        if is_stateful(node.op):
            return f"{node.name!r} is {node.op}, stateful or unknown to TensorFlow: every instance runs separately"
        self.mergeable_ops.add(node.op)
        if node.name in self.signature_inputs:
            return f"{node.name!r} is a signature input (a feed point)"
        return None

    def unremovable(self, graph: Graph, name: str) -> str | None:
        if name in graph.protected:
            return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
        if self.colocated_with.get(name):
            return f"{self.colocated_with[name][0]!r} colocates with {name!r} (_class loc:@{name})"
        return None


def merge_replacement(graph: Graph, dup: str, survivor: str, signature_ports: set[int] = frozenset(),
                      uses: tuple[set[int], bool] | None = None) -> Replacement:
    """Move every use of ``dup`` (all output ports, control uses, signatures) to ``survivor``; remove ``dup``.

    ``uses`` is ``(ports read, has control consumers)`` when already known.
    """
    rep = Replacement(remove=[dup])
    if uses is None:
        uses = (graph.output_ports(dup), bool(graph.control_consumers(dup)))
    for port in sorted(uses[0] | set(signature_ports)):
        rep.replace[f"{dup}:{port}"] = f"{survivor}:{port}"
    if uses[1]:
        rep.replace_control[dup] = [survivor]
    return rep


@register
class MergeDuplicates(Pass):
    """Replaces ``f(x, y) -> a`` and ``f(x, y) -> b`` by one ``f(x, y) -> a, b`` (identical nodes merged).

    Identical = same op, device, attributes (``Const`` values compared byte for
    byte, not by hash), data inputs in order and control inputs as a set.
    Stateful and unknown ops, placeholders and control-flow ops are never
    merged; protected nodes (init op, tables, assets) and colocation targets
    may survive a merge but are never removed by one. A signature output
    naming the removed node is pointed at the survivor.
    """

    name = "merge_duplicates"
    aliases = ("merge_duplicate_nodes",)
    idempotent = True
    removals_give_work = False

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        # Millions of small tuples: with the cyclic GC on, its full scans of the (large) graph cost ~3x.
        with gc_paused():
            state: MergeState | None = ctx.pop("merge_state")
            facts = _Facts(graph, state.colocated if ctx.incremental and state is not None else None)
            if ctx.incremental and state is not None:
                survivor_of = state.update(
                    graph, facts.key(graph), _node_key, _attr_digest, lambda a, b: attr_difference(a, b) is None,
                    facts.unmergeable, lambda n: facts.unremovable(graph, n))
                if survivor_of is not None:
                    ctx.set("merge_state", state)
                    state.pending = len(survivor_of)
                    return self._replacements(graph, facts, survivor_of)
                log.debug("merge_duplicates: the changes since the last run need a full scan")
            return self._run(graph, ctx, facts)

    def applied(self, graph: Graph, ctx: Context) -> None:
        """Record the nodes as the merges left them (the consumers of the duplicates were rewired)."""
        state: MergeState | None = ctx.get("merge_state")
        if state is None or not state.pending:
            return
        # Only this replacement changed the graph since the run, and it removes exactly the duplicates.
        if not ctx.all_applied or len(graph) != state.size - state.pending:  # refused: not the graph's state
            ctx.pop("merge_state")
            return
        state.pending = 0
        state.record(graph)

    def _run(self, graph: Graph, ctx: Context, facts: _Facts) -> list[Replacement]:
        scan = _Scan(graph)
        state = MergeState(scan.seen, facts.key(graph), facts.colocated_with, ()) if not scan.cyclic else None
        if scan.cyclic:
            log.warning("merge_duplicates: %d nodes lie on cycles not closed by NextIteration (e.g. %s); "
                        "they are left alone", len(scan.cyclic), scan.cyclic[0])
        survivor_of: dict[str, str] = {}
        # Bucket key: what is cheap to read. A bucket holds its first node alone until a second one
        # arrives; only then are attributes hashed (the hash splits the bucket; bytes decide equality).
        buckets: dict[tuple, str | dict[int, list[str]]] = {}
        # Most nodes have small attributes: their whole value is the key, and equal keys mean duplicates.
        exact: dict[tuple, str] = {}
        const_attrs: dict[bytes, Hashable | None] = {}
        maybe_weights: list[str] = []  # the Consts not keyed by their value: the only ones that may be weights
        nodes, mergeable, feeds = scan.seen, facts.mergeable_ops, facts.signature_inputs
        for name in scan.order:
            node = nodes[name]
            op = node.op
            if (op not in mergeable or name in feeds) and facts.unmergeable(node) is not None:
                if op == "Const":
                    maybe_weights.append(name)
                continue
            is_exact, key = scan_key(node, name, op, node.input[:], survivor_of, const_attrs)  # (a slice: 2x list())
            if is_exact:
                first = exact.get(key)
                if first is None:
                    exact[key] = name
                elif facts.unremovable(graph, name) is None:
                    survivor_of[name] = first
                    continue
                elif state is not None:
                    state.extras += 1
                if state is not None:
                    state.add_exact(name, key)
                continue
            if op == "Const":
                maybe_weights.append(name)
            if state is not None:
                state.add(name, False, hash(key))  # (taken back below if it is a duplicate)
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = name
                continue
            if isinstance(bucket, str):
                bucket = buckets[key] = {_attr_digest(graph.node(bucket)): [bucket]}
            members = bucket.setdefault(_attr_digest(node), [])
            if facts.unremovable(graph, name) is None:
                survivor = next((m for m in members if attr_difference(graph.node(m), node) is None), None)
                if survivor is not None:
                    survivor_of[name] = survivor
                    if state is not None:
                        state.forget(name)
                    continue
            elif state is not None and any(attr_difference(graph.node(m), node) is None for m in members):
                state.extras += 1
            members.append(name)
        if state is not None:
            # The weights among the Consts are not held; a Const keyed by its value (a small one) is.
            state.let_go(maybe_weights)
            for bucket in buckets.values():
                if isinstance(bucket, dict):
                    state.digests.update((m, d) for d, members in bucket.items() for m in members)
            state.pending = len(survivor_of)
            ctx.set("merge_state", state)
        if not survivor_of:
            return []
        return self._replacements(graph, facts, survivor_of)

    @staticmethod
    def _replacements(graph: Graph, facts: _Facts, survivor_of: dict[str, str]) -> list[Replacement]:
        """The merges as one replacement."""
        if not survivor_of:
            return []
        # One replacement for the whole pass: the runner applies it in one go (a 1M-node graph can hold
        # hundreds of thousands of duplicates; one rewrite each would cost more than finding them).
        # Survivors are never duplicates themselves, so each duplicate's uses are as the graph has them and
        # the merges do not interfere: their replacements can simply be put together.
        # Every duplicate goes (none is protected or a colocation target, each use moves to a survivor, which is
        # no duplicate): the uses of one duplicate by another need not move first, nor be named at all (on a
        # graph whose duplicates read duplicates, most uses are such).
        out = Replacement(remove=list(survivor_of), remove_all=True)
        replace, replace_control, sig_ports = out.replace, out.replace_control, facts.signature_ports
        succ = graph.adjacency()[0]
        for dup, surv in survivor_of.items():  # (what merge_replacement does, for many at once)
            ports: set[int] = set()
            control = False
            for dst, edges in succ[dup].items():  # (the ports read and whether a control edge leaves, in one loop)
                if dst in survivor_of:  # a duplicate: it goes too
                    continue
                for d in edges.values():
                    if d["control"]:
                        control = True
                    else:
                        ports.add(d["src_port"])
            if dup in sig_ports:
                ports |= sig_ports[dup]
            for port in sorted(ports) if len(ports) > 1 else ports:
                replace[f"{dup}:{port}"] = f"{surv}:{port}"
            if control:
                replace_control[dup] = [surv]
        log.info("merge_duplicates: %d duplicate nodes merged", len(survivor_of))
        return [out]

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        """For every node: why it is not merged into an identical one (``None``: it would be)."""
        index = _ExplainIndex(graph)
        return {node.name: _why_not_merged(graph, index, node) for node in graph}


def _why_not_merged(graph: Graph, index: _ExplainIndex, node: NodeDef) -> str | None:
    peers = [p for p in index.buckets.get(_loose_key(node), ()) if p != node.name and p in graph]
    if not peers:
        what = " and dtype/shape" if node.op == "Const" else ""
        return f"no other {node.op} node has the same data inputs{what} as {node.name!r}"
    same = [p for p in peers if index.digest(graph, p) == index.digest(graph, node.name)
            and node_difference(graph, graph.node(p), node) is None]
    if not same:
        first = peers[0]
        return f"no duplicate of {node.name!r}: {first!r} differs: {node_difference(graph, graph.node(first), node)}"
    survivor = min(same, key=index.position.__getitem__)
    if index.position[node.name] < index.position[survivor]:
        return f"{node.name!r} is the survivor: its duplicate {survivor!r} merges into it"
    for n in (graph.node(survivor), node):
        reason = index.facts.unmergeable(n)
        if reason:
            return reason
    return index.facts.unremovable(graph, node.name)


def _loose_key(node: NodeDef) -> Hashable:
    """Op, data inputs and (for Const) dtype/shape: nodes that could be duplicates share it."""
    data = tuple(parse_input(i)[:2] for i in node.input if not i.startswith("^"))
    return node.op, data, _cheap_key(node)


class _ExplainIndex:
    """For --explain on one graph: the facts, node positions, nodes by :func:`_loose_key`, attr digests."""

    def __init__(self, graph: Graph) -> None:
        self.facts = _Facts(graph)
        self.position = {n: i for i, n in enumerate(graph.node_names)}
        self.buckets: dict[Hashable, list[str]] = {}
        for node in graph:
            self.buckets.setdefault(_loose_key(node), []).append(node.name)
        self._digests: dict[str, int] = {}

    def digest(self, graph: Graph, name: str) -> int:
        if name not in self._digests:
            self._digests[name] = _attr_digest(graph.node(name))
        return self._digests[name]


__all__ = ["MergeDuplicates", "NEVER_MERGE", "attr_difference", "const_bytes", "merge_replacement", "node_difference"]
