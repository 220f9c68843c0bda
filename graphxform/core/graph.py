"""The ``Graph``: a ``GraphDef`` and a ``networkx.MultiDiGraph`` view kept in step.

Nodes are ``NodeDef`` protos held by name. The view has one networkx node per
``NodeDef`` (attribute ``op``) and one edge per input, carrying ``src_port``,
``dst_port`` and ``control`` (:mod:`graphxform.core.view` builds and edits
it). Every mutation goes through a method here, so the proto and the view
never disagree; :meth:`Graph.lint` checks that they do not. The read-only
questions (producers, consumers, protection, values) are
:class:`~graphxform.core.queries.GraphQueries`.

Tensor names follow TensorFlow (:mod:`graphxform.core.names`).
"""
from __future__ import annotations

import copy as _copy
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Set as AbstractSet
from typing import TYPE_CHECKING, Any

import networkx as nx
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2, versions_pb2

from graphxform.core import memory, view
from graphxform.core.collector import gc_paused
from graphxform.core.errors import GraphError
from graphxform.core.indexes import NodeIndexes
from graphxform.core.names import input_string, parse_input
from graphxform.core.queries import GraphQueries
from graphxform.core.signature import follow_placeholder

if TYPE_CHECKING:  # pragma: no cover
    from graphxform.core.signature import Signature

log = logging.getLogger(__name__)

#: Nodes with more inputs than this have their input list kept as a Python list (see ``Graph._input_list``).
_HUB_INPUTS = 32
#: :meth:`Graph.remove_group` removes a group of at least 1/``_BULK_SHARE`` of the nodes in bulk.
_BULK_SHARE = 4


class Delta:
    """What the mutations of a :class:`Graph` changed while it was :meth:`~Graph.recording`.

    ``before``: every node added, updated or removed, with its ``NodeDef`` before the first change (``None``
    for a node that did not exist), in the order they were first changed. ``touched``: nodes that gained or
    lost a consumer (the producers of inputs that appeared or disappeared). ``renamed``: whether a signature
    now names another tensor. The mutators know all three, so nobody has to snapshot nodes or diff inputs.
    """

    __slots__ = ("_graph", "_outer", "before", "renamed", "touched")

    def __init__(self, graph: Graph | None = None) -> None:
        self.before: dict[str, node_def_pb2.NodeDef | None] = {}
        self.touched: set[str] = set()
        self.renamed = False
        self._graph, self._outer = graph, None

    def __enter__(self) -> Delta:  # (a context manager of its own: Graph.recording is called once per rewrite)
        graph = self._graph
        assert graph is not None
        self._outer, graph._delta = graph._delta, self  # noqa: SLF001
        return self

    def __exit__(self, *exc: object) -> None:
        self._graph._delta = self._outer  # type: ignore[union-attr]  # noqa: SLF001


class Graph(GraphQueries, NodeIndexes):
    """A mutable TensorFlow graph: ``NodeDef`` s by name plus a networkx view.

    ``protected`` names nodes a rule may not remove (signature tensors are, through :attr:`signatures`).

    The Graph keeps the ``NodeDef`` s of the ``graph_def`` it is built from
    instead of copying them, and never modifies a node it holds: every change
    stores a new ``NodeDef``. So ``graph_def`` is left as it was, and must not
    be modified while the Graph is in use (pass a copy if it will be).
    """

    def __init__(
        self,
        graph_def: graph_pb2.GraphDef | None = None,
        *,
        signatures: dict[str, Signature] | None = None,
        protected: Iterable[str] = (),
    ) -> None:
        graph_def = graph_def if graph_def is not None else graph_pb2.GraphDef()
        self.versions = versions_pb2.VersionDef()
        self.versions.CopyFrom(graph_def.versions)
        self.library = function_pb2.FunctionDefLibrary()
        self.library.CopyFrom(graph_def.library)
        self.signatures: dict[str, Signature] = signatures if signatures is not None else {}
        self.protected: set[str] = set(protected)
        self._set_nodes({})
        self.nx = nx.MultiDiGraph()
        self._name_counter: Counter[str] = Counter()
        self._delta: Delta | None = None
        self._input_lists: dict[str, tuple[node_def_pb2.NodeDef, list[str]]] = {}
        self._empty_indexes()  # (the op index comes with the view, the colocation index on first use: core/indexes.py)
        with gc_paused():  # (millions of long-lived objects for a large graph: core/collector.py)
            held = graph_def.node[:]  # kept, not copied (see the class docstring); a slice: every wrapper in one call
            names = [node.name for node in held]
            nodes = self._set_nodes(dict(zip(names, held)))
            if len(nodes) < len(names):
                duplicates = [name for name, node in zip(names, held) if nodes[name] is not node]
                raise GraphError(
                    f"duplicate node names in GraphDef: {', '.join(sorted(set(duplicates))[:5])}; "
                    "node names must be unique — the graph is corrupt"
                )
            self._adopt_op_index(view.build(self.nx, nodes))

    def _set_nodes(self, nodes: dict[str, node_def_pb2.NodeDef]) -> dict[str, node_def_pb2.NodeDef]:
        """Hold ``nodes`` as the node dict; :meth:`get` becomes that dict's own ``get`` (asked millions of times on
        a large graph: a call into C instead of a Python frame each, ~0.2 s of a 1M-node run)."""
        self._nodes = nodes
        self.get = nodes.get  # type: ignore[method-assign]
        return nodes

    def __repr__(self) -> str:
        return f"<Graph {len(self)} nodes, {len(self.library.function)} functions>"

    def has_consumers(self, name: str) -> bool:
        """Whether any node reads ``name`` (by data or control edge); O(1)."""
        return view.has_consumers(self.nx, name)

    def adjacency(self) -> tuple[Mapping[str, Mapping[str, Any]], Mapping[str, Mapping[str, Any]]]:
        """``({node: {consumer: edges}}, {node: {producer: edges}})``, each edge a dict with ``src_port``,
        ``dst_port`` and ``control``: the view's own dicts, for loops over many nodes at a time (the runner's
        worklist). Read only: never modify them."""
        return self.nx._succ, self.nx._pred  # noqa: SLF001

    # -------------------------------------------------------------- mutation
    def recording(self) -> Delta:
        """``with graph.recording() as delta:`` records what the mutations in the block change (:class:`Delta`)."""
        return Delta(self)

    def unique_name(self, base: str) -> str:
        """A node name starting with ``base`` that is not used yet."""
        if base not in self._nodes and base not in self.nx:
            return base
        while True:
            self._name_counter[base] += 1
            cand = f"{base}_{self._name_counter[base]}"
            if cand not in self._nodes and cand not in self.nx:
                return cand

    def add_node(self, node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef:
        """Add a node whose inputs already exist. Returns the stored ``NodeDef``."""
        return self.add_nodes([node])[0]

    def add_nodes(self, nodes: Iterable[node_def_pb2.NodeDef], *, adopt: bool = False) -> list[node_def_pb2.NodeDef]:
        """Add several nodes at once; they may refer to each other in any order.

        The nodes are copied, unless ``adopt``: then the Graph keeps the given
        objects, which the caller must not modify any more (no copy of a large
        constant).
        """
        stored = []
        for src in nodes:
            if src.name in self._nodes:
                raise GraphError(f"cannot add node {src.name!r}: a node of that name exists")
            if not src.name or not src.op:
                raise GraphError(f"cannot add a node without name and op: {src!r}")
            if adopt:
                node = src
            else:
                node = node_def_pb2.NodeDef()
                node.CopyFrom(src)
            self._nodes[node.name] = node
            if node.name in self.nx:  # was a dangling reference
                self.nx._node[node.name] = view.node_attrs(node.op)  # noqa: SLF001 - (shared: never modified)
            else:
                self.nx.add_node(node.name, op=node.op)
            stored.append(node)
        try:
            for node in stored:
                for inp in node.input:
                    if parse_input(inp)[0] not in self._nodes:
                        raise GraphError(f"node {node.name!r} input {inp!r} names no node in the graph")
        except GraphError:
            for node in stored:
                del self._nodes[node.name]
                self.nx.remove_node(node.name)
            raise
        for node in stored:
            view.add_in_edges(self.nx, node, self._nodes, strict=True)
        if self._delta is not None:
            for node in stored:
                self._delta.before.setdefault(node.name, None)
        for node in stored:
            self._index_added(node)
        return stored

    def update_node(self, node: node_def_pb2.NodeDef, *, adopt: bool = False) -> node_def_pb2.NodeDef:
        """Replace the ``NodeDef`` of the same name (op, attrs and inputs may change).

        ``node`` is copied, unless ``adopt`` (see :meth:`add_nodes`).
        """
        if node.name not in self._nodes:
            raise GraphError(f"cannot update node {node.name!r}: no such node")
        for inp in node.input:
            if parse_input(inp)[0] not in self._nodes:
                raise GraphError(f"node {node.name!r} input {inp!r} names no node in the graph")
        stored = node if adopt else node_def_pb2.NodeDef()
        if not adopt:
            stored.CopyFrom(node)
        previous = self._nodes[node.name]
        self._nodes[node.name] = stored
        self.nx._node[node.name] = view.node_attrs(stored.op)  # noqa: SLF001 - (shared: never modified)
        sources = view.update_in_edges(self.nx, previous, stored) if previous.input != stored.input else ()
        if self._delta is not None:
            self._delta.before.setdefault(node.name, previous)
            self._delta.touched.update(sources)
        self._index_updated(previous, stored)
        if stored.op == "Placeholder" and self.signatures:
            follow_placeholder(self.signatures.values(), previous, stored)
        return stored

    def remove_node(self, name: str, *, force: bool = False) -> None:
        """Remove a node. Refused while it has consumers or is protected, unless ``force``."""
        if name not in self._nodes:
            raise GraphError(f"cannot remove node {name!r}: no such node")
        if not force:
            users = self.consumer_nodes(name)
            if users:
                raise GraphError(
                    f"cannot remove node {name!r}: still consumed by {', '.join(users[:5])}"
                    + (" …" if len(users) > 5 else "")
                )
            if self.is_protected(name):
                raise GraphError(
                    f"cannot remove node {name!r}: it is protected (signature tensor, init op or table); "
                    "use replace_all_uses to move the signature first"
                )
        if view.has_consumers(self.nx, name):  # consumers now dangle (force); lint reports them
            self._forget(name, self.nx._pred[name])  # noqa: SLF001 - (its producers: the view knows them)
            view.remove_in_edges(self.nx, name)
            self.nx._node[name] = view.node_attrs(None)  # noqa: SLF001 - (shared: never modified)
        else:
            self._forget(name, view.remove_unread(self.nx, name))
        self.protected.discard(name)

    def remove_unread(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """Remove those of ``names`` nothing reads and nobody protects, readers first: ``(removed in order, kept)``."""
        pending = [n for n in dict.fromkeys(names) if n in self._nodes]
        return view.sweep_unread(self.nx, pending, self.protected_nodes(), self._forget)

    def remove_group(self, names: list[str]) -> None:
        """Remove ``names`` in that order: nodes nothing but each other reads, none protected (merged duplicates
        reading one another: their edges between them go with them instead of moving first)."""
        group, succ, nodes, keep = set(names), self.nx._succ, self._nodes, self.protected_nodes()  # noqa: SLF001
        for name in names:
            if name not in nodes or name in keep:
                raise GraphError(f"cannot remove node {name!r}: " + ("it is protected" if name in nodes else "no such node"))
            out = succ[name]
            if out and not group.issuperset(out):
                users = sorted(set(out) - group)
                raise GraphError(f"cannot remove node {name!r}: still consumed by {', '.join(users[:5])}")
        if len(names) * _BULK_SHARE < len(nodes):
            view.unlink_group(self.nx, names, self._forget)
            return
        # A large share of the graph (merged duplicates of a 1M-node graph: most of it): what stays is kept in
        # bulk, the same dicts in the same order as removing the nodes one by one leaves.
        sources = view.cut_group(self.nx, names, group)
        removed = [nodes[name] for name in names]
        if self._delta is not None:
            before = self._delta.before
            for name, node in zip(names, removed):
                before.setdefault(name, node)
            self._delta.touched.update(sources)
        for name, node in zip(names, removed):
            self._index_removed(node, name)
        kept = {name: node for name, node in nodes.items() if name not in group}
        nodes.clear()
        nodes.update(kept)
        for name in [n for n in self._input_lists if n in group]:
            del self._input_lists[name]

    def _forget(self, name: str, sources: Iterable[str]) -> None:
        """Drop the ``NodeDef`` of ``name`` (which read ``sources``) and its bookkeeping; the view is the caller's."""
        node = self._nodes.pop(name)
        self._input_lists.pop(name, None)
        self._index_removed(node, name)
        if self._delta is not None:
            self._delta.before.setdefault(name, node)
            self._delta.touched.update(sources)

    def reorder(self, names: Iterable[str]) -> None:
        """List the nodes in the order of ``names`` (every node once): the order the ``GraphDef`` is written in."""
        order = list(names)
        if len(order) != len(self._nodes) or set(order) != self._nodes.keys():
            raise GraphError("reorder: the names must list every node of the graph exactly once")
        self._set_nodes({n: self._nodes[n] for n in order})

    def remove_nodes(self, names: Iterable[str]) -> None:
        """Remove a set of nodes that only consume each other (any order): :meth:`remove_group`."""
        self.remove_group(list(dict.fromkeys(names)))

    def replace_all_uses(self, old: str, new: str) -> int:
        """Make every data consumer of tensor ``old`` read tensor ``new``.

        Signature inputs/outputs naming ``old`` are rewritten to ``new``.
        Returns the number of inputs rewritten.
        """
        return self.replace_uses({old: new})

    def replace_uses(self, mapping: dict[str, str], skip: AbstractSet[str] = frozenset()) -> int:
        """:meth:`replace_all_uses` for many ``{old: new}`` tensors at once (each consumer copied once).

        The same as calling :meth:`replace_all_uses` for each pair in order;
        when a ``new`` is also an ``old`` (a chain, where the order matters)
        that is what it does. Returns the number of inputs rewritten. Consumers in ``skip`` (nodes removed
        right after) keep their inputs.
        """
        by_node: dict[str, dict[int, tuple[str, int, str]]] = {}
        targets: dict[str, tuple[str, int, str]] = {}  # (many olds may share a new: each is parsed once)
        for old, new in mapping.items():
            old_node, old_port, c1 = parse_input(old)
            target = targets.get(new)
            if target is None:
                new_node, new_port, c2 = parse_input(new)
                if c1 or c2:
                    raise GraphError("replace_all_uses takes tensors; use replace_control_uses for control edges")
                if new_node not in self._nodes:
                    raise GraphError(f"cannot replace {old!r} by {new!r}: no node named {new_node!r}")
                target = targets[new] = (new_node, new_port, input_string(new_node, new_port))
            elif c1:
                raise GraphError("replace_all_uses takes tensors; use replace_control_uses for control edges")
            if old_node == target[0] and old_port == target[1]:
                continue
            by_node.setdefault(old_node, {})[old_port] = target
        # (a target that is no old at all settles it without a look at every pair: a merge maps many to few)
        if len(mapping) > 1 and any(port in by_node.get(node, ()) for node, port, _ in targets.values()):
            for ports in by_node.values():
                for new_node, new_port, _ in ports.values():
                    if new_port in by_node.get(new_node, ()):
                        return sum(self.replace_uses({old: new}, skip) for old, new in mapping.items())
        # Edges move in the view, then each consumer is copied once with its inputs rewritten (no re-validation).
        count = 0
        delta = self._delta
        edits, moved = view.move_data_edges(self.nx, by_node, skip)
        for dst, changes in edits.items():
            previous = self._nodes[dst]
            node = node_def_pb2.NodeDef()
            node.CopyFrom(previous)
            inputs = node.input
            for index, new_inp in changes:
                inputs[index] = new_inp
            count += len(changes)
            self._nodes[dst] = node
            if delta is not None:
                delta.before.setdefault(dst, previous)
        if delta is not None:  # (producers that lost a consumer or gained one)
            delta.touched.update(moved)
        named, renames = self._sig_index or set(self._signature_nodes()), {}
        special = not (by_node.keys().isdisjoint(named) and by_node.keys().isdisjoint(self.protected))
        for old_node, ports in by_node.items() if special else ():
            for old_port, (new_node, new_port, _) in ports.items():
                if old_node in named:
                    renames[f"{old_node}:{old_port}"] = f"{new_node}:{new_port}"
                if old_node in self.protected and old_port == 0:
                    self.protected.discard(old_node)
                    self.protected.add(new_node)
        for sig in self.signatures.values() if renames else ():
            for spec in (*sig.inputs.values(), *sig.outputs.values()):
                spec.rename_tensors(renames)
        if renames and delta is not None:
            delta.renamed = True
        if renames and self._sig_index is not None:
            self.index_signatures()
        return count

    def replace_control_uses(self, old_node: str, new_nodes: Iterable[str], skip: AbstractSet[str] = frozenset()) -> None:
        """Nodes with ``^old_node`` depend on each of ``new_nodes`` instead (but those in ``skip``)."""
        new_nodes = list(dict.fromkeys(new_nodes))
        for n in new_nodes:
            if n not in self._nodes:
                raise GraphError(f"cannot add control dependency on {n!r}: no such node")
        old_input = "^" + old_node
        delta = self._delta
        for dst in self.control_consumers(old_node):
            if dst in skip:
                continue
            current = self._nodes[dst]
            extra = view.move_control_edges(self.nx, old_node, dst, new_nodes)
            inputs = self._input_list(dst, current)
            gone = [k for k, i in enumerate(inputs) if i == old_input]
            node = node_def_pb2.NodeDef()
            node.CopyFrom(current)
            for k in reversed(gone):  # (deleting by index: the other inputs are not converted to str and back)
                del node.input[k]
            node.input.extend(extra)
            self._nodes[dst] = node
            if len(inputs) > _HUB_INPUTS:
                kept = list(inputs)
                for k in reversed(gone):
                    del kept[k]
                self._input_lists[dst] = (node, kept + extra)
            if delta is not None:
                delta.before.setdefault(dst, current)
                delta.touched.add(old_node)
                delta.touched.update(e[1:] for e in extra)
        view.drop_dangling(self.nx, [old_node])

    def _input_list(self, name: str, node: node_def_pb2.NodeDef) -> list[str]:
        """``list(node.input)``; kept for nodes with many inputs (a ``NoOp`` gathering hundreds of control
        dependencies, edited once per dependency moved) while ``node`` is the one stored. Read only."""
        entry = self._input_lists.get(name)
        if entry is not None and entry[0] is node:
            return entry[1]
        inputs = list(node.input)
        if len(inputs) > _HUB_INPUTS:
            self._input_lists[name] = (node, inputs)
        return inputs

    # ----------------------------------------------------------------- export
    def to_graph_def(self) -> graph_pb2.GraphDef:
        """A new ``GraphDef`` holding a copy of every node, the library and versions."""
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(self.versions)
        gd.library.CopyFrom(self.library)
        gd.node.extend(self._nodes.values())
        return gd

    def take_graph_def(self, trimmer: memory.Trimmer | None = None) -> graph_pb2.GraphDef:
        """Move the nodes into a new ``GraphDef``, leaving this Graph empty.

        Like :meth:`to_graph_def`, but each node is let go as soon as it is copied (``trimmer``, by default a
        :class:`~graphxform.core.memory.Trimmer`, hears of it), so memory grows by about one node, not the graph.
        """
        self.nx.clear()  # first: the view is not needed to copy the nodes
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(self.versions)
        gd.library.CopyFrom(self.library)
        nodes, add = self._nodes, gd.node.add
        trimmer = trimmer or memory.Trimmer()  # weights let go leave pages the output's (mmapped) blocks do not reuse
        for name in list(nodes):
            add().CopyFrom(trimmer.passing(nodes.pop(name)))
        self._input_lists.clear()
        self._empty_indexes()
        self.protected.clear()
        return gd

    def copy(self) -> Graph:
        """A deep copy (signatures are copied too)."""
        return Graph(self.to_graph_def(), signatures=_copy.deepcopy(self.signatures), protected=set(self.protected))


__all__ = ["Graph"]
