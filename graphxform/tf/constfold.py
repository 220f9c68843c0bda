"""Constant folding engine: which nodes are constant, and their values from ONE batched TensorFlow run.

Used by the ``fold_constants`` rule (``transforms/fold_constants.py``).

A node is *constant* when it is side-effect free (not stateful, not random,
not a feed point, not control flow or a function call, produces no
resource/variant/ref tensor, not protected) and every input — data and
control — comes from a constant node; ``Const`` nodes are the leaves. The
*frontier* is the set of constant nodes (other than ``Const``) whose outputs
are read by non-constant nodes or are signature outputs: exactly those get
new values. Everything else in the constant subgraph is folded away with them.

:func:`evaluate_frontier` imports the constant ancestry of the frontier into
one ``tf.Graph`` and fetches every frontier tensor with one ``session.run``.
Before running, the static shapes TensorFlow infers on import are checked
against the size budget, so ``Fill([100000, 100000], 1.0)`` is refused
without allocating anything. Two ways a node drops out:

* *excluded* — TensorFlow refused it (at import or at run time), or an
  output is too big even to evaluate (``max(budget, 256 MiB)``): it is
  treated as non-constant, so nothing after it folds;
* *kept* — it can be evaluated but must not become a ``Const`` (an output
  over ``max_constant_size_in_bytes``, or an ``Identity`` of a shared
  ``Const``): it stays as it is, its constant inputs become frontier nodes
  and its constant consumers (e.g. a ``Sum`` of it) still fold.

Either way the frontier is recomputed and the missing tensors are fetched
from the same session.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tensorflow.core.framework import graph_pb2, node_def_pb2, tensor_pb2, types_pb2

from graphxform.core.errors import GraphxformError, RuleError
from graphxform.core.graph import CONTROL_FLOW_OPS, Graph, parse_input
from graphxform.core.opdefs import is_known_op, is_stateful, output_dtypes

log = logging.getLogger(__name__)

#: Feed points: their value comes from the caller, whatever their default.
FEED_OPS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})
#: TF1 frames and TF2 functional control flow / function calls.
CONTROL_OPS = CONTROL_FLOW_OPS | frozenset(
    {"ControlTrigger", "If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase", "For",
     "PartitionedCall", "StatefulPartitionedCall", "SymbolicGradient", "RemoteCall"}
)
#: Sources whose value is not in the graph (memory-mapped files, function parameters).
EXTERNAL_OPS = frozenset({"ImmutableConst", "FakeParam", "_Arg", "_Retval", "_Recv", "_HostRecv", "_Send"})
#: Ops that read or write files, list directories, run Python or write debug dumps: never evaluated while
#: folding, even when TensorFlow calls them stateless (``ReadFile``, ``MatchingFiles``, ``PyFuncStateless``,
#: ``Debug*`` with ``debug_urls``), so transforming a model never touches the host or runs the model's code.
HOST_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "GenerateVocabRemapping", "LoadAndRemapMatrix",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "Print", "PrintV2", "DebugIdentity", "DebugIdentityV2",
    "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2", "DecodeProtoV2",
    "EncodeProto", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "Save", "SaveV2", "SaveSlices",
    "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
})
#: Pass-through ops folded without TensorFlow: the new Const is a copy of the input Const.
PASS_THROUGH_OPS = frozenset({"Identity", "Snapshot", "StopGradient", "PreventGradient"})

_UNFOLDABLE_DTYPES = {types_pb2.DT_RESOURCE: "resource", types_pb2.DT_VARIANT: "variant"}
_NODE_IN_MESSAGE = re.compile(r"\{\{node ([^}]+)\}\}")
#: Outputs bigger than this (or than the budget, if larger) are never evaluated.
EVAL_LIMIT_BYTES = 256 * 1024 * 1024


def is_random(op: str) -> bool:
    """Random ops other than the deterministic ``Stateless*`` ones."""
    if op.startswith("Stateless"):
        return False
    return ("Random" in op or op in {"TruncatedNormal", "Multinomial", "ParameterizedTruncatedNormal"}
            or op.endswith("CandidateSampler"))


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
    if op == "Const":
        return None
    if name in graph.protected:
        return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
    if name in feed_nodes:
        return f"{name!r} is a signature input (a feed point)"
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
    order: list[str] = field(init=False)  # processed nodes, producers first
    _root: dict[str, str] = field(init=False)  # non-constant node -> node that causes it
    _root_reason: dict[str, str] = field(init=False)
    _frontier: dict[str, list[int]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        graph = self.graph
        feed_nodes = {parse_input(t)[0] for sig in graph.signatures.values()
                      for spec in sig.inputs.values() for t in spec.tensor_names()}
        indeg: dict[str, int] = {}
        succ: dict[str, list[str]] = defaultdict(list)
        for node in graph:
            count = 0
            for inp in node.input:
                src = parse_input(inp)[0]
                if src in graph:
                    succ[src].append(node.name)
                    count += 1
            indeg[node.name] = count
        queue = deque(n for n, d in indeg.items() if d == 0)
        self.constant, self.order, self._root, self._root_reason = set(), [], {}, {}
        self._op_reasons: dict[str, str | None] = {}
        while queue:
            name = queue.popleft()
            self.order.append(name)
            self._classify(graph.node(name), feed_nodes)
            for dst in succ.get(name, ()):
                indeg[dst] -= 1
                if indeg[dst] == 0:
                    queue.append(dst)
        if len(self.order) < len(indeg):  # the rest sits on (or after) a cycle: a TF1 while loop
            for name in indeg:
                if name not in self.constant and name not in self._root:
                    self._root[name] = name
                    self._root_reason[name] = (own_reason(graph, graph.node(name), feed_nodes)
                                               or f"{name!r} is on or after a cycle (a TF1 while loop)")

    def _classify(self, node: node_def_pb2.NodeDef, feed_nodes: set[str]) -> None:
        name = node.name
        reason = self.excluded.get(name) or own_reason(self.graph, node, feed_nodes, self._op_reasons)
        if reason:
            self._root[name] = name
            self._root_reason[name] = reason
            return
        for inp in node.input:
            src = parse_input(inp)[0]
            if src not in self.graph:
                self._root[name] = name
                self._root_reason[name] = f"input {inp!r} of {name!r} names no node"
                return
            if src not in self.constant:
                self._root[name] = self._root[src]
                return
        self.constant.add(name)

    def reason(self, name: str) -> str | None:
        """Why ``name`` is not folded (``None`` if it is constant and folds)."""
        if name in self.kept:
            return self.kept[name]
        if name in self.constant:
            return None
        root = self._root.get(name)
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
            edges = graph.nx.out_edges(name, data=True)
            for _, dst, d in edges:
                if not d["control"] and (dst not in self.constant or dst in self.kept):
                    ports.add(d["src_port"])
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


@dataclass
class FoldResult:
    """What :func:`evaluate_frontier` found.

    ``values``: {``"node:port"``: ``TensorProto``} for every frontier output;
    ``frontier``: {node: ports}; ``analysis``: the final constant analysis;
    ``excluded`` / ``kept``: the nodes that dropped out, with reasons (see
    :class:`ConstantAnalysis`); ``session_runs``: ``session.run`` calls made.
    """

    values: dict[str, tensor_pb2.TensorProto]
    frontier: dict[str, list[int]]
    analysis: ConstantAnalysis
    excluded: dict[str, str]
    kept: dict[str, str]
    session_runs: int = 0


def _pass_through_source(graph: Graph, node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef | None:
    if node.op not in PASS_THROUGH_OPS:
        return None
    data = graph.data_inputs(node.name)
    if len(data) != 1:
        return None
    src, port, _ = parse_input(data[0])
    src_node = graph.get(src)
    return src_node if src_node is not None and src_node.op == "Const" and port == 0 else None


def duplicate_reason(graph: Graph, node: node_def_pb2.NodeDef) -> str | None:
    """Why folding pass-through ``node`` (an ``Identity`` of a ``Const``) would copy the constant, or ``None``."""
    src = _pass_through_source(graph, node)
    if src is None:
        return None
    others = [u for u, _ in graph.consumers(src.name) if u != node.name]
    if not others:
        return None
    return (f"{node.op} of Const {src.name!r}, which {others[0]!r} also reads: folding would duplicate the "
            "constant (remove_identity handles it)")


def _value_nbytes(value: np.ndarray) -> int:
    if value.dtype == object:
        return int(sum(len(v) for v in value.flat)) + 8 * value.size
    return int(value.nbytes)


def _static_nbytes(tensor: Any) -> int | None:
    """Bytes of a ``tf.Tensor`` from its static shape, ``None`` when unknown (or a string)."""
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined() or tensor.dtype.name == "string":
        return None
    return int(np.prod(shape.as_list(), dtype=np.int64)) * tensor.dtype.size


def _failing_node(exc: BaseException, candidates: set[str]) -> str | None:
    op = getattr(exc, "op", None)
    if op is not None and getattr(op, "name", None) in candidates:
        return op.name
    for name in _NODE_IN_MESSAGE.findall(str(exc)):
        if name in candidates:
            return name
    return None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = getattr(exc, "message", None) or str(exc)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Evaluator:
    def __init__(self, graph: Graph, *, max_bytes: int, ignore_errors: bool, excluded: Mapping[str, str] | None,
                 kept: Mapping[str, str] | None, only: Iterable[str] | None) -> None:
        self.graph = graph
        self.max_bytes = max_bytes
        self.eval_limit = max(max_bytes, EVAL_LIMIT_BYTES)
        self.ignore_errors = ignore_errors
        self.excluded: dict[str, str] = dict(excluded or {})
        self.kept: dict[str, str] = dict(kept or {})
        self.only = set(only) if only is not None else None
        self.values: dict[str, tensor_pb2.TensorProto] = {}
        self.session: Any = None
        self.session_nodes: set[str] = set()
        self.session_runs = 0
        self.log_level: int | None = None  # None: warnings for failures, info for size refusals

    # ---------------------------------------------------------------- helpers
    def _analyse(self) -> tuple[ConstantAnalysis, dict[str, list[int]]]:
        analysis = ConstantAnalysis(self.graph, self.excluded, self.kept)
        frontier = analysis.frontier()
        if self.only is not None:
            frontier = {n: p for n, p in frontier.items() if n in self.only}
        return analysis, frontier

    def _fail(self, name: str, reason: str) -> None:
        """``name`` cannot be evaluated: raise, or (``ignore_errors``) treat it as non-constant."""
        if not self.ignore_errors:
            node = self.graph.node(name)
            raise RuleError(
                f"fold_constants: evaluating {node.op} node {name!r} failed: {reason}. Fix the graph, or run "
                "fold_constants(ignore_errors=true) to leave the node unfolded"
            )
        log.log(self.log_level or logging.WARNING, "fold_constants: not folding %s: %s", name, reason)
        self.excluded[name] = reason

    def _too_big(self, name: str, reason: str, *, evaluate: bool) -> None:
        log.log(self.log_level or logging.INFO, "fold_constants: not folding %s: %s", name, reason)
        (self.kept if evaluate else self.excluded)[name] = reason

    def _subgraph(self, names: set[str]) -> graph_pb2.GraphDef:
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(self.graph.versions)
        if self.graph.library.function:
            gd.library.CopyFrom(self.graph.library)
        for name in self.graph.node_names:  # keep the graph's order
            if name not in names:
                continue
            node = gd.node.add()
            node.CopyFrom(self.graph.node(name))
            node.device = ""  # evaluate on this machine's CPU
            for attr in ("_class", "_output_shapes"):  # colocation targets may be absent; shapes may be stale
                if attr in node.attr:
                    del node.attr[attr]
        return gd

    def _open_session(self, names: set[str]) -> bool:
        """Import ``names`` into one session; on refusal drop the culprit and return False."""
        from graphxform.tf.session import GraphSession

        self.close()
        try:
            self.session = GraphSession(self._subgraph(names), optimize=False)
        except GraphxformError as exc:
            culprit = _failing_node(exc, names)
            if culprit is None:
                if not self.ignore_errors:
                    raise RuleError(f"fold_constants: TensorFlow refused the constant subgraph: {_short(exc)}. "
                                    "Run fold_constants(ignore_errors=true) to skip folding") from exc
                for name in names:
                    if self.graph.node(name).op != "Const":
                        self.excluded[name] = f"TensorFlow refused the constant subgraph: {_short(exc)}"
                return False
            self._fail(culprit, f"TensorFlow refused it: {_short(exc)}")
            return False
        self.session_nodes = set(names)
        return True

    def _check_static_sizes(self, names: set[str], todo: Mapping[str, list[int]]) -> bool:
        """Drop nodes whose statically known outputs are too big; True if none was."""
        ok = True
        for name in names:
            if self.graph.node(name).op == "Const" or name in self.excluded or name in self.kept:
                continue
            op = self.session.tf_graph.get_operation_by_name(name)
            for port, t in enumerate(op.outputs):
                nbytes = _static_nbytes(t)
                if nbytes is None:
                    continue
                what = f"output {t.name} {t.shape} {t.dtype.name} would be {nbytes} bytes"
                if nbytes > self.eval_limit:
                    self._too_big(name, f"{what}: too big to evaluate (limit: max(max_constant_size_in_bytes, "
                                        f"{EVAL_LIMIT_BYTES}) = {self.eval_limit})", evaluate=False)
                elif port in todo.get(name, ()) and nbytes > self.max_bytes:
                    self._too_big(name, f"{what}, over max_constant_size_in_bytes={self.max_bytes}", evaluate=True)
                else:
                    continue
                ok = False
                break
        return ok

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
            self.session_nodes = set()

    # ---------------------------------------------------------------- driver
    def _todo(self, frontier: Mapping[str, list[int]]) -> dict[str, list[int]] | None:
        """Frontier outputs still to fetch; ``None`` when the frontier changed (an Identity was kept)."""
        todo: dict[str, list[int]] = {}
        for name, ports in frontier.items():
            node = self.graph.node(name)
            src = _pass_through_source(self.graph, node)
            if src is not None and "value" in src.attr:
                reason = duplicate_reason(self.graph, node)
                if reason:
                    self.kept[name] = reason
                    return None
                self.values.setdefault(f"{name}:0", src.attr["value"].tensor)
                continue
            missing = [p for p in ports if f"{name}:{p}" not in self.values]
            if missing:
                todo[name] = missing
        return todo

    def _fetch(self, todo: Mapping[str, list[int]], needed: set[str]) -> bool:
        """One ``session.run`` for every tensor in ``todo``; False if something dropped out."""
        import tensorflow as tf

        fetch_names = [f"{n}:{p}" for n, ports in todo.items() for p in ports]
        try:
            self.session_runs += 1
            fetched = self.session.run({}, fetch_names)
        except tf.errors.OpError as exc:
            culprit = _failing_node(exc, needed)
            if culprit is not None:
                self._fail(culprit, f"evaluation failed: {_short(exc)}")
                return False
            if not self.ignore_errors:
                raise RuleError(f"fold_constants: evaluating the constant subgraph failed: {_short(exc)}. "
                                "Run fold_constants(ignore_errors=true) to skip folding") from exc
            for n in todo:
                self.excluded[n] = f"evaluation failed: {_short(exc)}"
            return False
        ok = True
        for tname, value in zip(fetch_names, fetched, strict=True):
            value = np.asarray(value)
            name, port, _ = parse_input(tname)
            nbytes = _value_nbytes(value)
            if nbytes > self.max_bytes:
                self._too_big(name, f"output {tname} is {nbytes} bytes, over max_constant_size_in_bytes="
                                    f"{self.max_bytes}", evaluate=True)
                ok = False
                continue
            dtypes = output_dtypes(self.graph.node(name)) or []
            dtype = tf.as_dtype(dtypes[port]) if port < len(dtypes) else None
            self.values[tname] = tf.make_tensor_proto(value, dtype=dtype)
        return ok

    def run(self, *, fetch: bool = True) -> FoldResult:
        """Evaluate the frontier (``fetch=False``: only the static checks, no ``session.run``)."""
        try:
            while True:
                analysis, frontier = self._analyse()
                todo = self._todo(frontier)
                if todo is None:
                    continue
                if todo:
                    needed = analysis.constant_ancestors(todo)
                    if not needed <= self.session_nodes and not self._open_session(needed):
                        continue
                    if not self._check_static_sizes(needed, todo):
                        continue
                    if fetch:
                        self._fetch(todo, needed)
                        continue  # re-analyse; with nothing dropped out, every frontier value is there now
                values = {t: v for t, v in self.values.items() if parse_input(t)[0] in frontier}
                return FoldResult(values, frontier, analysis, dict(self.excluded), dict(self.kept),
                                  self.session_runs)
        finally:
            self.close()


def evaluate_frontier(
    graph: Graph,
    *,
    max_bytes: int,
    ignore_errors: bool = False,
    excluded: Mapping[str, str] | None = None,
    kept: Mapping[str, str] | None = None,
    only: Iterable[str] | None = None,
) -> FoldResult:
    """Values of every frontier tensor of ``graph`` (or of the frontier nodes in ``only``).

    One ``session.run`` in the usual case; more only when a node fails or
    turns out to be over budget after evaluation. Raises :class:`RuleError`
    naming the node when evaluation fails and ``ignore_errors`` is false.
    ``excluded``/``kept`` carry what an earlier round found (not retried).
    """
    return _Evaluator(graph, max_bytes=max_bytes, ignore_errors=ignore_errors, excluded=excluded, kept=kept,
                      only=only).run()


def static_analysis(
    graph: Graph,
    *,
    max_bytes: int,
    excluded: Mapping[str, str] | None = None,
    kept: Mapping[str, str] | None = None,
) -> ConstantAnalysis:
    """The constant analysis after every check that needs no evaluation (one import, no ``session.run``).

    Nodes TensorFlow refuses on import and outputs statically over budget
    get their reasons, as in :func:`evaluate_frontier`; used by ``--explain``.
    """
    ev = _Evaluator(graph, max_bytes=max_bytes, ignore_errors=True, excluded=excluded, kept=kept, only=None)
    ev.log_level = logging.DEBUG  # explaining is not folding: no warnings about what would be skipped
    return ev.run(fetch=False).analysis


def const_node(name: str, value: tensor_pb2.TensorProto, *, device: str = "",
               output_shapes: bool = False) -> node_def_pb2.NodeDef:
    """A ``Const`` ``NodeDef`` holding ``value``."""
    node = node_def_pb2.NodeDef(name=name, op="Const", device=device)
    node.attr["dtype"].type = value.dtype
    node.attr["value"].tensor.CopyFrom(value)
    if output_shapes:
        node.attr["_output_shapes"].list.shape.add().CopyFrom(value.tensor_shape)
    return node


__all__ = ["CONTROL_OPS", "EVAL_LIMIT_BYTES", "FEED_OPS", "PASS_THROUGH_OPS", "ConstantAnalysis", "FoldResult",
           "const_node", "duplicate_reason", "evaluate_frontier", "is_random", "own_reason", "static_analysis"]
