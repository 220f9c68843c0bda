"""Read-only questions about a :class:`~graphxform.core.graph.Graph`: producers, consumers, protection, values.

Rules ask these instead of reading ``NodeDef`` inputs or networkx's edge dicts themselves. Tensor references
follow TensorFlow (:mod:`graphxform.core.names`): ``"x:1"`` is output 1 of node ``x``, ``"x"`` output 0 and
``"^x"`` a control dependency. :meth:`GraphQueries.lint` checks the whole graph.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, ItemsView, Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import networkx as nx
import numpy as np
from tensorflow.core.framework import node_def_pb2

from graphxform.core import view
from graphxform.core.errors import GraphError
from graphxform.core.names import parse_input
from graphxform.core.nodes import tensor_proto_to_array
from graphxform.core.opdefs import CONTROL_FLOW_OPS, output_dtypes

if TYPE_CHECKING:  # pragma: no cover
    from graphxform.core.signature import Signature


class Edge(NamedTuple):
    """One input of ``dst``: output ``src_port`` of ``src`` (``-1`` and ``control`` for a ``^src`` input) read
    as input ``dst_port`` (``-1`` for a control input)."""

    src: str
    dst: str
    src_port: int
    dst_port: int
    control: bool


class GraphQueries:
    """The read-only half of :class:`~graphxform.core.graph.Graph` (which holds ``_nodes``, ``nx``,
    ``signatures`` and ``protected``)."""

    _nodes: dict[str, node_def_pb2.NodeDef]
    nx: nx.MultiDiGraph
    signatures: dict[str, Signature]
    protected: set[str]
    _op_index: Callable[[], dict[str, dict[str, None]]]  # (the Graph's: core/indexes.py)
    #: ``{node: signature_uses(node)}`` while :meth:`index_signatures` is on (``None``: scan the signatures).
    _sig_index: dict[str, list[tuple[Signature, str, str, int]]] | None = None

    # ------------------------------------------------------------------ nodes
    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[node_def_pb2.NodeDef]:
        return iter(list(self._nodes.values()))

    @property
    def node_names(self) -> list[str]:
        return list(self._nodes)

    def items(self) -> ItemsView[str, node_def_pb2.NodeDef]:
        """``(name, NodeDef)`` pairs in graph order, without a copy: for one loop over every node that changes
        nothing while it runs (mutating the graph during the loop raises, as for any dict)."""
        return self._nodes.items()

    def node(self, name: str) -> node_def_pb2.NodeDef:
        """The ``NodeDef`` called ``name`` (``"x:0"`` and ``"^x"`` are accepted too)."""
        key = parse_input(name)[0] if name not in self._nodes else name
        try:
            return self._nodes[key]
        except KeyError:
            raise GraphError(f"no node named {key!r} in the graph") from None

    def get(self, name: str) -> node_def_pb2.NodeDef | None:
        """The ``NodeDef`` called ``name``, or ``None`` (a ``Graph`` answers with its node dict's own ``get``)."""
        return self._nodes.get(name)

    def nodes_by_op(self, *ops: str) -> list[node_def_pb2.NodeDef]:
        """All nodes whose op is one of ``ops``, in graph order (no node's op is read: the Graph's op index)."""
        by_op = self._op_index()
        names = [n for op in dict.fromkeys(ops) for n in by_op.get(op, ())]
        nodes = self._nodes
        if len(names) <= 1:
            return [nodes[n] for n in names]
        wanted = set(names)
        return [nodes[n] for n in nodes if n in wanted]

    def nodes_among(self, names: Iterable[str], ops: Collection[str]) -> list[node_def_pb2.NodeDef]:
        """The nodes of ``names`` (in that order; names not in the graph are skipped) whose op is one of ``ops``
        (the op index: no node's op is read)."""
        by_op = self._op_index()
        held = [by_op[op] for op in ops if op in by_op]
        nodes = self._nodes
        if not held:
            return []
        if len(held) == 1:
            only = held[0]
            return [nodes[n] for n in names if n in only]
        return [nodes[n] for n in names if any(n in h for h in held)]

    def op_histogram(self) -> Counter[str]:
        return Counter(n.op for n in self._nodes.values())

    # ------------------------------------------------------------------ edges
    def producer(self, tensor: str) -> node_def_pb2.NodeDef:
        """The node that produces ``tensor`` (``"x:1"``, ``"x"`` or ``"^x"``)."""
        return self.node(parse_input(tensor)[0])

    def out_edges(self, name: str) -> list[Edge]:
        """Every edge leaving node ``name`` (data and control), in the view's order."""
        return [Edge(name, dst, d["src_port"], d["dst_port"], d["control"]) for dst, d in view.out_edges(self.nx, name)]

    def consumers(self, tensor_or_node: str) -> list[tuple[str, int]]:
        """Data consumers as ``(node, input_index)``.

        ``"x:1"`` gives the consumers of that output only; a bare node name
        gives the consumers of any of its outputs.
        """
        name, port, _ = parse_input(tensor_or_node)
        if ":" not in tensor_or_node:
            return sorted({(dst, d["dst_port"]) for dst, d in view.out_edges(self.nx, name) if not d["control"]})
        return sorted({(dst, d["dst_port"]) for dst, d in view.out_edges(self.nx, name)
                       if not d["control"] and d["src_port"] == port})

    def output_ports(self, name: str) -> set[int]:
        """The outputs of ``name`` that some node reads (by data edge)."""
        return {d["src_port"] for _, d in view.out_edges(self.nx, name) if not d["control"]}

    def control_consumers(self, name: str) -> list[str]:
        """Nodes with a control dependency ``^name``."""
        return sorted({dst for dst, d in view.out_edges(self.nx, name) if d["control"]})

    def consumer_nodes(self, name: str) -> list[str]:
        """Every node that reads ``name`` by data or control edge."""
        return sorted(view.successors(self.nx, name))

    def input_nodes(self, name: str) -> list[str]:
        """Producers of the data inputs of ``name``, in input order."""
        return [parse_input(i)[0] for i in self.node(name).input if not i.startswith("^")]

    def data_inputs(self, name: str) -> list[str]:
        return [i for i in self.node(name).input if not i.startswith("^")]

    def nodes_with_control_inputs(self) -> list[node_def_pb2.NodeDef]:
        """The nodes with at least one control input, in graph order: found in the view (reading every node's
        inputs would cost about three times as much), then only those nodes are read; none without a look when no
        control edge was ever made in the view."""
        if not view.may_have_control_edges(self.nx):  # type: ignore[attr-defined]  # (the Graph's)
            return []
        found = set()
        for name, producers in self.adjacency()[1].items():  # type: ignore[attr-defined]  # (the Graph's)
            for edges in producers.values():
                for d in edges.values():
                    if d["control"]:
                        found.add(name)
        nodes = self._nodes
        return [nodes[n] for n in nodes if n in found] if found else []

    def control_inputs(self, name: str) -> list[str]:
        return [i[1:] for i in self.node(name).input if i.startswith("^")]

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """``names`` and every node they depend on (data or control)."""
        seen: set[str] = set()
        stack = [parse_input(n)[0] for n in names]
        while stack:
            n = stack.pop()
            if n in seen or n not in self._nodes:
                continue
            seen.add(n)
            stack.extend(parse_input(i)[0] for i in self._nodes[n].input)
        return seen

    # ------------------------------------------------------------- protection
    def signature_tensors(self) -> set[str]:
        out: set[str] = set()
        for sig in self.signatures.values():
            for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
                out.update(spec.tensor_names())
        return out

    def signature_uses(self, name: str) -> list[tuple[Signature, str, str, int]]:
        """Where node ``name`` is a signature tensor: ``(signature, "input"|"output", key, port)``."""
        if self._sig_index is not None:
            return list(self._sig_index.get(name, ()))
        return self._scan_signature_uses(name)

    def index_signatures(self, on: bool = True) -> None:
        """Answer :meth:`signature_uses` and :meth:`is_protected` from an index of the signatures (kept up to date
        by the renames of ``replace_uses``) while ``on``. For a run of rules, which change signatures through
        ``replace_uses`` only: a signature edited by hand meanwhile goes unseen."""
        self._sig_index = None
        if on:
            index: dict[str, list[tuple[Signature, str, str, int]]] = {}
            for name in dict.fromkeys(self._signature_nodes()):
                index[name] = self._scan_signature_uses(name)
            self._sig_index = index

    def _scan_signature_uses(self, name: str) -> list[tuple[Signature, str, str, int]]:
        out = []
        for sig in self.signatures.values():
            for side, specs in (("input", sig.inputs), ("output", sig.outputs)):
                for key, spec in specs.items():
                    for t in spec.tensor_names():
                        node, port, _ = parse_input(t)
                        if node == name:
                            out.append((sig, side, key, port))
        return out

    def _signature_nodes(self) -> Iterator[str]:
        """The producer of every signature tensor (repeats included, unless indexed)."""
        if self._sig_index is not None:
            yield from self._sig_index
            return
        for sig in self.signatures.values():
            for spec in (*sig.inputs.values(), *sig.outputs.values()):
                for t in spec.tensor_names():
                    yield parse_input(t)[0]

    def protected_nodes(self) -> set[str]:
        """Nodes that may not be removed: :attr:`protected` plus signature tensors' producers."""
        return self.protected | set(self._signature_nodes())

    def is_protected(self, name: str) -> bool:
        """``name in protected_nodes()``, without building the set (asked once per removed node)."""
        if self._sig_index is not None:
            return name in self.protected or name in self._sig_index
        return name in self.protected or any(n == name for n in self._signature_nodes())

    # ----------------------------------------------------------------- values
    def const_value(self, name: str) -> np.ndarray:
        """The numpy value of ``Const`` node ``name``: where possible a read-only view over one copy of its
        ``tensor_content`` (protobuf gives a new copy of the bytes at each read of the field; nothing more is
        copied or converted)."""
        node = self.node(name)
        if node.op != "Const":
            raise GraphError(f"node {name!r} is a {node.op}, not a Const")
        if "value" not in node.attr:  # (indexing a proto map would insert the key)
            raise GraphError(f"Const {name!r} has no value attr; the graph is corrupt")
        return tensor_proto_to_array(node.attr["value"].tensor)

    def output_dtype(self, tensor: str) -> int | None:
        """The ``DataType`` enum of ``tensor`` from the producer's attrs, when it can be read."""
        name, port, _ = parse_input(tensor)
        dtypes = output_dtypes(self.node(name))
        return dtypes[port] if dtypes and port < len(dtypes) else None

    # ------------------------------------------------------------------- lint
    def lint(self) -> list[str]:
        """Problems found: dangling inputs, view/proto mismatch, cycles, missing signature tensors."""
        problems: list[str] = []
        for node in self._nodes.values():
            for inp in node.input:
                if parse_input(inp)[0] not in self._nodes:
                    problems.append(f"node {node.name!r} input {inp!r} names no node")
        view_nodes = {n for n, d in self.nx.nodes(data=True) if d.get("op") is not None}
        if view_nodes != set(self._nodes):
            diff = view_nodes.symmetric_difference(self._nodes)
            problems.append(f"view and proto disagree on nodes: {sorted(diff)[:5]}")
        wrong_op = [n for n, d in self.nx.nodes(data=True) if n in self._nodes and d.get("op") != self._nodes[n].op]
        if wrong_op:
            problems.append(f"view and proto disagree on the op of {wrong_op[:5]}")
        expected: Counter[tuple[str, str, int, int, bool]] = Counter()
        for node in self._nodes.values():
            for dst_port, inp in enumerate(node.input):
                src, src_port, control = parse_input(inp)
                expected[(src, node.name, src_port, -1 if control else dst_port, control)] += 1
        actual = Counter((s, d, a["src_port"], a["dst_port"], a["control"]) for s, d, a in self.nx.edges(data=True))
        if expected != actual:
            diff = (expected - actual) + (actual - expected)
            problems.append(f"view and proto disagree on edges: {list(diff)[:3]}")
        sub = self.nx.subgraph(self._nodes)
        if not nx.is_directed_acyclic_graph(sub):
            ops = nx.get_node_attributes(sub, "op")
            acyclic = sub.subgraph({n for n, o in ops.items() if o not in CONTROL_FLOW_OPS})
            if not nx.is_directed_acyclic_graph(acyclic):
                cycle = nx.find_cycle(acyclic)
                problems.append("cycle outside control-flow frames: " + " -> ".join(e[0] for e in cycle[:8]))
        for t in self.signature_tensors():
            if parse_input(t)[0] not in self._nodes:
                problems.append(f"signature tensor {t!r} names no node")
        for p in self.protected:
            if p not in self._nodes:
                problems.append(f"protected node {p!r} is missing")
        index_problems = getattr(self, "index_problems", None)  # (the Graph's indexes: core/indexes.py)
        if index_problems is not None:
            problems.extend(index_problems())
        return problems

    def check(self) -> None:
        """Raise :class:`GraphError` listing what :meth:`lint` found."""
        problems = self.lint()
        if problems:
            raise GraphError("graph lint failed: " + "; ".join(problems[:10]))


__all__ = ["Edge", "GraphQueries"]
