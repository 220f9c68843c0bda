"""Indexes of a :class:`~graphxform.core.graph.Graph` 's nodes, kept up to date by its mutators.

* the **op index**: ``{op: {node name: None}}``, so that "which nodes run op X" and "does any node run one of
  these ops" cost what the answer holds, not a loop over every node (rules and passes ask it at every full pass:
  a rule whose anchor ops the graph does not hold has nothing to do);
* the **colocation index**: ``{target: nodes naming it in their _class attr (loc:@target)}``.

The op index is built with the Graph's view, as the nodes are loaded (each node's op is read once, there); the
colocation index on first use (one loop over the nodes). Both are then followed by :meth:`NodeIndexes._index_added`,
``_index_removed`` and ``_index_updated``, which the ``Graph`` calls for every node it stores or lets go (a change
of inputs alone leaves both unchanged). :meth:`NodeIndexes.index_problems` compares them with the nodes
(``Graph.lint`` reports a difference), and also checks the view's control flag (``core/view.py``: no control edge
ever made, so "which nodes have control inputs" is answered without a look).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx
from tensorflow.core.framework import node_def_pb2

from graphxform.core import view
from graphxform.core.nodes import colocation


class NodeIndexes:
    """The op and colocation indexes of the ``Graph`` (which holds ``_nodes``)."""

    _nodes: dict[str, node_def_pb2.NodeDef]
    nx: nx.MultiDiGraph
    _colocation: dict[str, set[str]] | None = None  # built on first use, then kept up to date
    _by_op: dict[str, dict[str, None]]  # built with the view (_adopt_op_index), then kept up to date
    _op_kinds: int = 0  # counts the changes of the set of ops the graph holds (see op_kinds)

    # ------------------------------------------------------------------ queries
    def has_op(self, *ops: str) -> bool:
        """Whether some node runs one of ``ops``; O(len(ops))."""
        by_op = self._op_index()
        return any(op in by_op for op in ops)

    def op_kinds(self) -> int:
        """A number that changes whenever an op appears in the graph or its last node goes (equal numbers: the
        same set of ops, so answers of :meth:`has_op` may be kept until it changes)."""
        self._op_index()
        return self._op_kinds

    def names_by_op(self, op: str) -> Iterable[str]:
        """The names of the nodes running ``op``, in no promised order (see :meth:`nodes_by_op` for graph order);
        read only, and not to be held across a change of the graph."""
        return self._op_index().get(op, {}).keys()

    def colocation_index(self) -> Mapping[str, set[str]]:
        """``{target: nodes naming it in their _class attr (loc:@target)}``. Read only.

        Built on the first call, then kept up to date by the mutators (a rule asking before every rewrite
        would otherwise scan every node each time)."""
        if self._colocation is None:
            self._colocation = {}
            # (most nodes have no _class: only those are indexed, the others told apart without a call each)
            for node in [node for node in self._nodes.values() if "_class" in node.attr]:
                self._index_colocation(node, add=True)
        return self._colocation

    def _adopt_op_index(self, by_op: dict[str, dict[str, None]]) -> None:
        """Take ``by_op`` (built with the nodes, in their order) as the op index."""
        self._by_op = by_op
        self._op_kinds += 1

    def _op_index(self) -> dict[str, dict[str, None]]:
        return self._by_op

    def index_problems(self) -> list[str]:
        """Where a built index disagrees with the nodes (a mutation that did not tell it)."""
        problems = []
        expected: dict[str, set[str]] = {}
        for name, node in self._nodes.items():
            expected.setdefault(node.op, set()).add(name)
        if expected != {op: set(names) for op, names in self._by_op.items()}:
            problems.append("the op index disagrees with the nodes")
        if self._colocation is not None:
            coloc: dict[str, set[str]] = {}
            for node in self._nodes.values():
                for target in colocation(node):
                    coloc.setdefault(target, set()).add(node.name)
            if coloc != self._colocation:
                problems.append("the colocation index disagrees with the nodes")
        if not view.may_have_control_edges(self.nx) and any(
                i[:1] == "^" for node in self._nodes.values() for i in node.input):
            problems.append("the view says no control edge was made, but a node has a control input")
        return problems

    # ------------------------------------------------------------------ upkeep (called by the Graph's mutators)
    def _index_added(self, node: node_def_pb2.NodeDef) -> None:
        self._index_added_op(node.op, node.name)
        if self._colocation is not None:
            self._index_colocation(node, add=True)

    def _index_removed(self, node: node_def_pb2.NodeDef, name: str) -> None:
        """``node``, called ``name``, is gone."""
        self._index_removed_op(node, name)
        if self._colocation:  # (empty: no node colocates, the removed one neither; its _class is not read)
            self._index_colocation(node, add=False)

    def _index_updated(self, previous: node_def_pb2.NodeDef, stored: node_def_pb2.NodeDef) -> None:
        """``stored`` replaced ``previous`` (same name; op and attrs may have changed)."""
        if previous.op != stored.op:
            self._index_removed_op(previous, previous.name)
            self._index_added_op(stored.op, stored.name)
        if self._colocation is not None:
            if self._colocation:
                self._index_colocation(previous, add=False)
            self._index_colocation(stored, add=True)

    def _index_added_op(self, op: str, name: str) -> None:
        by_op = self._by_op
        names = by_op.get(op)
        if names is None:
            by_op[op] = names = {}
            self._op_kinds += 1
        names[name] = None

    def _index_removed_op(self, node: node_def_pb2.NodeDef, name: str) -> None:
        op = node.op
        names = self._by_op[op]
        del names[name]
        if not names:
            del self._by_op[op]
            self._op_kinds += 1

    def _index_colocation(self, node: node_def_pb2.NodeDef, *, add: bool) -> None:
        index = self._colocation
        assert index is not None
        for target in colocation(node):
            users = index.setdefault(target, set())
            users.add(node.name) if add else users.discard(node.name)
            if not users:
                del index[target]

    def _empty_indexes(self) -> None:
        """The indexes of a Graph without nodes (before its nodes are loaded, after they are taken)."""
        self._colocation = None
        self._by_op = {}
        self._op_kinds += 1


__all__ = ["NodeIndexes"]
