"""Which nodes of a graph are constant, and for the others the root cause: the analysis behind constant folding.

A node is *constant* when it is side-effect free (not stateful, not random, not a feed point, not control flow
or a function call, produces no resource/variant/ref tensor, not protected) and every input — data and
control — comes from a constant node; ``Const`` nodes are the leaves. The *frontier* is the set of constant
nodes (other than ``Const``) whose outputs are read by non-constant nodes or are signature outputs: exactly
those get new values (:mod:`graphxform.tf.constfold` evaluates them). Nothing here runs TensorFlow.
"""
from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tensorflow.core.framework import node_def_pb2, tensor_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.memory import tensor_elements
from graphxform.core.names import parse_input
from graphxform.core.nodes import tensor_nbytes
from graphxform.core.opdefs import (
    CONTROL_OPS,
    EXTERNAL_OPS,
    FEED_OPS,
    HOST_OPS,
    PASS_THROUGH_OPS,
    is_known_op,
    is_random,
    is_stateful,
    output_dtypes,
)

_UNFOLDABLE_DTYPES = {types_pb2.DT_RESOURCE: "resource", types_pb2.DT_VARIANT: "variant"}


def _op_reason(op: str, functions: frozenset[str] | set[str]) -> str | None:
    """Why no node of op type ``op`` can be folded (``{name}`` stands for the node), or ``None``."""
    if op in FEED_OPS:
        return f"{{name}} is a {op} (a feed point)"
    if op in CONTROL_OPS:
        return f"{{name}} is control-flow op {op}"
    if op in EXTERNAL_OPS:
        return f"{{name}} is {op}; its value is not in the graph"
    if op in HOST_OPS:
        return f"{{name}} is {op}, which touches files or runs code; it is never evaluated while folding"
    if op in functions:
        return f"{{name}} calls graph function {op}"
    if is_random(op):
        return f"{{name}} is random op {op}; folding would freeze one sample"
    if not is_known_op(op):
        return f"{{name}} is op {op}, unknown to TensorFlow (treated as stateful)"
    if is_stateful(op):
        return f"{{name}} is stateful op {op}"
    return None


def own_reason(graph: Graph, node: node_def_pb2.NodeDef, feed_nodes: set[str],
               op_reasons: dict[str, str | None] | None = None) -> str | None:
    """Why ``node`` itself can never be folded (its inputs aside), or ``None``.

    ``op_reasons`` caches the part that depends on the op type alone (one
    dict for a whole pass over a graph).
    """
    name, op = node.name, node.op
    if name in feed_nodes:  # a Const named as an input too: it is fed, so nothing folds through it
        return f"{name!r} is a signature input (a feed point)"
    if op == "Const":
        return None
    if name in graph.protected:
        return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
    if op_reasons is not None and op in op_reasons:
        template = op_reasons[op]
    else:
        template = _op_reason(op, {f.signature.name for f in graph.library.function})
        if op_reasons is not None:
            op_reasons[op] = template
    if template is not None:
        return template.replace("{name}", repr(name))
    dtypes = output_dtypes(node)
    if dtypes is None:
        return f"the output types of {op} {name!r} cannot be read from its attrs"
    for port, dt in enumerate(dtypes):
        if dt in _UNFOLDABLE_DTYPES:
            return f"{name!r} output {port} is a {_UNFOLDABLE_DTYPES[dt]} tensor"
        if dt > 100:
            return f"{name!r} output {port} is a ref tensor"
    return None


@dataclass
class ConstantAnalysis:
    """Which nodes of a graph are constant; for the others, the root cause.

    ``excluded`` ({node: reason}): nodes treated as non-constant (evaluation
    failed, too big to evaluate). ``kept`` ({node: reason}): constant nodes
    that must not become a ``Const`` (over the size budget); their readers
    count as non-constant consumers when the frontier is computed.
    """

    graph: Graph
    excluded: Mapping[str, str] = field(default_factory=dict)
    kept: Mapping[str, str] = field(default_factory=dict)
    constant: set[str] = field(init=False)
    order: list[str] = field(init=False)  # the constant nodes, producers first
    _root: dict[str, str] = field(init=False)  # non-constant node -> node that causes it
    _root_reason: dict[str, str] = field(init=False)
    #: non-constant node -> its first non-constant input (``None`` until asked), for nodes whose own reason (if
    #: any) was not asked yet: most nodes of a graph read a non-constant input, and that is all folding needs.
    _after: dict[str, str | None] = field(init=False)
    _frontier: dict[str, list[int]] | None = field(init=False, default=None)
    _explained: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        """Find the constant nodes: forward from the constant leaves (nodes without inputs), a node joining when its
        last input does. Only constant nodes and their readers are looked at (most of a graph is neither); the
        order is the one a topological walk of the whole graph gives them (a FIFO queue, the readers of a node in
        graph order), as the non-constant nodes of such a walk never make a constant node ready."""
        graph = self.graph
        self._feed_nodes = {parse_input(t)[0] for sig in graph.signatures.values()
                            for spec in sig.inputs.values() for t in spec.tensor_names()}
        self._op_reasons: dict[str, str | None] = {}
        self.constant, self.order = set(), []
        self._root, self._root_reason, self._after = {}, {}, {}
        self._explained = False
        consumers, producers = graph.adjacency()  # (inputs naming no node included: never constant)
        queue = deque(n for n in graph.node_names if not producers[n] and self._joins(n, ()))
        remaining: dict[str, int] = {}
        position: dict[str, int] | None = None
        while queue:
            name = queue.popleft()
            self.order.append(name)
            ready = []
            for dst in consumers[name]:
                left = remaining.get(dst, len(producers[dst])) - 1
                remaining[dst] = left
                if not left:
                    ready.append(dst)
            if len(ready) > 1:  # (in graph order, as the whole-graph walk queues them)
                if position is None:
                    position = {n: i for i, n in enumerate(graph.node_names)}
                ready.sort(key=position.__getitem__)
            queue.extend(dst for dst in ready if self._joins(dst, producers[dst]))

    def _joins(self, name: str, srcs: Iterable[str]) -> bool:
        """Whether ``name``, whose inputs ``srcs`` are all constant, is constant (recorded if so)."""
        if self.excluded.get(name) or own_reason(self.graph, self.graph.node(name), self._feed_nodes,
                                                  self._op_reasons):
            return False
        self.constant.add(name)
        return True

    def _explain(self) -> None:
        """Classify every node, once, for :meth:`reason`: a walk of the whole graph in topological order. A node
        that is not constant gets its root cause (itself, with a reason) or is marked as reading a non-constant
        input (which one is looked for when asked); what is left over sits on or after a cycle."""
        if self._explained:
            return
        self._explained = True
        graph = self.graph
        nodes = dict(graph.items())
        indeg: dict[str, int] = {}
        succ: dict[str, list[str]] = defaultdict(list)
        _, producers = graph.adjacency()
        for name in nodes:
            count = 0
            for src in producers[name]:
                if src in nodes:
                    succ[src].append(name)  # (consumers in graph order: the order of the queue below)
                    count += 1
            indeg[name] = count
        queue = deque(n for n, d in indeg.items() if d == 0)
        done = 0
        while queue:
            name = queue.popleft()
            done += 1
            self._classify(name, nodes[name], producers[name])
            for dst in succ.get(name, ()):
                indeg[dst] -= 1
                if indeg[dst] == 0:
                    queue.append(dst)
        if done < len(indeg):  # the rest sits on (or after) a cycle: a TF1 while loop
            for name in indeg:
                if name not in self.constant and name not in self._root and name not in self._after:
                    self._root[name] = name
                    self._root_reason[name] = (own_reason(graph, graph.node(name), self._feed_nodes)
                                               or f"{name!r} is on or after a cycle (a TF1 while loop)")

    def _classify(self, name: str, node: node_def_pb2.NodeDef, srcs: Iterable[str]) -> None:
        """Record why non-constant ``name`` is not constant. A node with an input that is missing or not constant
        is not; which input, and the root cause, are looked for only when asked (:meth:`_root_of`): most nodes
        of a graph read a non-constant input, and that is all folding needs to know of them."""
        if name in self.constant:
            return
        reason = self.excluded.get(name)
        if reason:
            self._set_root(name, reason)
            return
        constant = self.constant
        for src in srcs:
            if src not in constant:  # (a missing node is not constant either)
                self._after[name] = None
                return
        reason = own_reason(self.graph, node, self._feed_nodes, self._op_reasons)
        if not reason:
            raise AssertionError(f"{name!r} reads only constants and may be folded, but was not found constant")
        self._set_root(name, reason)

    def _first_unfolded_input(self, name: str) -> str | None:
        """The first input of non-constant ``name`` (in input order) that is not constant; ``None`` after setting
        ``name`` 's root when that input is missing (the root is then ``name`` itself)."""
        node = self.graph.node(name)
        for inp in node.input:
            src = parse_input(inp)[0]
            if src not in self.graph:
                self._set_root(name, own_reason(self.graph, node, self._feed_nodes, self._op_reasons)
                               or f"input {inp!r} of {name!r} names no node")
                return None
            if src not in self.constant:
                return src
        raise AssertionError(f"{name!r} was found non-constant but reads only constants")

    def _set_root(self, name: str, reason: str) -> None:
        self._root[name] = name
        self._root_reason[name] = reason

    def _root_of(self, name: str) -> str | None:
        """The node that makes non-constant ``name`` non-constant (``None``: not a node of the analysis)."""
        path = []
        while name not in self._root:
            if name not in self._after:
                return None
            src = self._after[name]
            if src is None:
                src = self._after[name] = self._first_unfolded_input(name)
                if src is None:  # a missing input: the root is set
                    break
            reason = own_reason(self.graph, self.graph.node(name), self._feed_nodes, self._op_reasons)
            if reason:
                self._set_root(name, reason)
                break
            path.append(name)
            name = src
        root = self._root[name]
        for n in path:
            self._root[n] = root
        return root

    def reason(self, name: str) -> str | None:
        """Why ``name`` is not folded (``None`` if it is constant and folds)."""
        if name in self.kept:
            return self.kept[name]
        if name in self.constant:
            return None
        self._explain()
        root = self._root_of(name)
        if root is None:
            return f"no node named {name!r}"
        if root == name:
            return self._root_reason[name]
        return f"{name!r} depends on {root!r}, which is not constant: {self._root_reason[root]}"

    def frontier(self) -> dict[str, list[int]]:
        """{constant non-Const node: output ports read by non-constant or kept nodes, or by signatures}.

        Sinks (no consumers at all) count with every output: they may be fetched by name.
        """
        if self._frontier is not None:
            return dict(self._frontier)
        graph = self.graph
        sig_ports: dict[str, set[int]] = defaultdict(set)
        for sig in graph.signatures.values():
            for spec in sig.outputs.values():
                for t in spec.tensor_names():
                    n, p, _ = parse_input(t)
                    sig_ports[n].add(p)
        out: dict[str, list[int]] = {}
        for name in self.order:
            if name not in self.constant or name in self.kept or graph.node(name).op == "Const":
                continue
            ports = set(sig_ports.get(name, ()))
            edges = graph.out_edges(name)
            for e in edges:
                if not e.control and (e.dst not in self.constant or e.dst in self.kept):
                    ports.add(e.src_port)
            if not edges:  # a sink: a graph output that may be fetched by name
                ports.update(range(len(output_dtypes(graph.node(name)) or ())))
            if ports:
                out[name] = sorted(ports)
        self._frontier = out
        return dict(out)

    def constant_ancestors(self, names: Iterable[str]) -> set[str]:
        """``names`` and the constant nodes they read (data or control)."""
        seen: set[str] = set()
        stack = list(names)
        while stack:
            n = stack.pop()
            if n in seen or n not in self.constant:
                continue
            seen.add(n)
            stack.extend(parse_input(i)[0] for i in self.graph.node(n).input)
        return seen


def pass_through_source(graph: Graph, node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef | None:
    if node.op not in PASS_THROUGH_OPS:
        return None
    data = graph.data_inputs(node.name)
    if len(data) != 1:
        return None
    src, port, _ = parse_input(data[0])
    src_node = graph.get(src)
    return src_node if src_node is not None and src_node.op == "Const" and port == 0 else None


def reshaped_const(graph: Graph, node: node_def_pb2.NodeDef,
                   max_bytes: int | None = None) -> tensor_pb2.TensorProto | None:
    """The value of ``Reshape(Const, Const shape)`` without evaluating it: the constant's tensor under the new shape
    (a reshape moves no element; a splat stays one). ``None`` for any other node, a shape that does not fit
    (TensorFlow then says why) or a value over ``max_bytes`` (told before the constant is copied)."""
    if node.op != "Reshape":
        return None
    data = graph.data_inputs(node.name)
    if len(data) != 2:
        return None
    src, shape = (graph.get(n) if p == 0 else None for n, p, _ in map(parse_input, data))
    if src is None or shape is None or src.op != "Const" or shape.op != "Const" or "value" not in src.attr:
        return None
    value = graph.const_value(shape.name)
    if value.ndim != 1:
        return None
    dims = [int(d) for d in value]
    elements = tensor_elements(src.attr["value"].tensor)
    known = math.prod(d for d in dims if d != -1)
    if dims.count(-1) > 1 or any(d < -1 for d in dims) or (-1 in dims and (known == 0 or elements % known)):
        return None
    dims = [elements // known if d == -1 else d for d in dims]
    if math.prod(dims) != elements or (max_bytes is not None and tensor_nbytes(src.attr["value"].tensor) > max_bytes):
        return None
    value = tensor_pb2.TensorProto()  # (a copy: the constant may have other consumers)
    value.CopyFrom(src.attr["value"].tensor)
    del value.tensor_shape.dim[:]
    for d in dims:
        value.tensor_shape.dim.add(size=d)
    return value


def duplicate_reason(graph: Graph, node: node_def_pb2.NodeDef) -> str | None:
    """Why folding pass-through ``node`` (an ``Identity`` of a ``Const``) would copy the constant, or ``None``."""
    src = pass_through_source(graph, node)
    if src is None:
        return None
    others = [u for u, _ in graph.consumers(src.name) if u != node.name]
    if not others:
        return None
    return (f"{node.op} of Const {src.name!r}, which {others[0]!r} also reads: folding would duplicate the "
            "constant (remove_identity handles it)")


__all__ = ["ConstantAnalysis", "duplicate_reason", "own_reason", "pass_through_source", "reshaped_const"]
