"""Constant folding engine: the values of the constant frontier, from ONE batched TensorFlow run.

Used by the ``fold_constants`` pass (``transforms/fold_constants.py``). Which nodes are constant, and which
of them form the frontier (the ones whose outputs non-constant nodes or signatures read), is
:mod:`graphxform.tf.constant_analysis`.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2, tensor_pb2

from graphxform.core import memory
from graphxform.core.errors import GraphxformError, RuleError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.nodes import tensor_nbytes, tensor_proto
from graphxform.core.opdefs import output_dtypes
from graphxform.savedmodel.wire import field_prefix
from graphxform.tf.constant_analysis import ConstantAnalysis, duplicate_reason, pass_through_source, reshaped_const
from graphxform.tf.session import GraphSession

log = logging.getLogger(__name__)

#: The dtypes ``tf.make_tensor_proto`` writes as ``tensor_content`` when a value has more than one element.
_CONTENT_DTYPES = frozenset(np.dtype(t) for t in ("float16", "float32", "float64", "int32", "uint8", "int16", "int8",
                                                  "int64"))

_NODE_IN_MESSAGE = re.compile(r"\{\{node ([^}]+)\}\}")
#: Outputs bigger than this (or than the budget, if larger) are never evaluated.
EVAL_LIMIT_BYTES = 256 * 1024 * 1024
#: At most this many fetches of this many bytes in all are evaluated without a session run, from at most this many
#: nodes whose constants hold this many bytes in all.
QUICK_FETCHES = 64
QUICK_BYTES = 64 * 1024
QUICK_NODES = 256
QUICK_INPUT_BYTES = 1024 * 1024


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


def _value_nbytes(value: np.ndarray) -> int:
    if value.dtype == object:
        return int(sum(len(v) for v in value.flat)) + 8 * value.size
    return int(value.nbytes)


def _static_nbytes(dtype: tf.DType, shape: list[int | None] | None) -> int | None:
    """Bytes of a tensor from its static shape, ``None`` when unknown (or a string)."""
    if shape is None or None in shape or dtype.name == "string":
        return None
    count = 1
    for d in shape:
        count *= d
    return count * dtype.size


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
                 kept: Mapping[str, str] | None) -> None:
        self.graph = graph
        self.max_bytes = max_bytes
        self.eval_limit = max(max_bytes, EVAL_LIMIT_BYTES)
        self.ignore_errors = ignore_errors
        self.excluded: dict[str, str] = dict(excluded or {})
        self.kept: dict[str, str] = dict(kept or {})
        self.values: dict[str, tensor_pb2.TensorProto] = {}
        self.session: Any = None
        self.session_nodes: set[str] = set()
        self.session_runs = 0
        self.log_level: int | None = None  # None: warnings for failures, info for size refusals

    # ---------------------------------------------------------------- helpers
    def _analyse(self) -> tuple[ConstantAnalysis, dict[str, list[int]]]:
        analysis = ConstantAnalysis(self.graph, self.excluded, self.kept)
        return analysis, analysis.frontier()

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

    def _subgraph(self, names: set[str]) -> bytes:
        """The serialized ``GraphDef`` of ``names`` (in the graph's order), as :mod:`graphxform.savedmodel.wire`
        writes one: node by node, a node copied only when attributes must go."""
        chunks = []
        for name in self.graph.node_names:  # keep the graph's order
            if name not in names:
                continue
            node = self.graph.node(name)
            if node.device or "_class" in node.attr or "_output_shapes" in node.attr:
                clean = node_def_pb2.NodeDef()
                clean.CopyFrom(node)
                clean.device = ""  # evaluate on this machine's CPU
                for attr in ("_class", "_output_shapes"):  # colocation targets may be absent; shapes may be stale
                    if attr in clean.attr:
                        del clean.attr[attr]
                node = clean
            data = node.SerializeToString()
            chunks.append(field_prefix(1, len(data)))
            chunks.append(data)
        if self.graph.library.function:
            data = self.graph.library.SerializeToString()
            chunks.append(field_prefix(2, len(data)) + data)
        data = self.graph.versions.SerializeToString()
        chunks.append(field_prefix(4, len(data)) + data)
        return b"".join(chunks)

    def _open_session(self, names: set[str]) -> bool:
        """Import ``names`` into one session; on refusal drop the culprit and return False."""
        self.close()
        try:
            self.session = GraphSession(self._subgraph(names), optimize=False, c_api=True)
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
            for port in range(self.session.num_outputs(name)):
                dtype, shape = self.session.static_shape(f"{name}:{port}")
                nbytes = _static_nbytes(dtype, shape)
                if nbytes is None:
                    continue
                if nbytes <= self.max_bytes or nbytes <= self.eval_limit and port not in todo.get(name, ()):
                    continue
                what = f"output {name}:{port} {tf.TensorShape(shape)} {dtype.name} would be {nbytes} bytes"
                if nbytes > self.eval_limit:
                    self._too_big(name, f"{what}: too big to evaluate (limit: max(max_constant_size_in_bytes, "
                                        f"{EVAL_LIMIT_BYTES}) = {self.eval_limit})", evaluate=False)
                else:
                    self._too_big(name, f"{what}, over max_constant_size_in_bytes={self.max_bytes}", evaluate=True)
                ok = False
                break
        return ok

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
            self.session_nodes = set()
            memory.trim()  # the session's graph and buffers went back to the heap: give them to the system

    # ---------------------------------------------------------------- driver
    def _todo(self, frontier: Mapping[str, list[int]]) -> dict[str, list[int]] | None:
        """Frontier outputs still to fetch; ``None`` when the frontier changed (an Identity was kept)."""
        todo: dict[str, list[int]] = {}
        for name, ports in frontier.items():
            node = self.graph.node(name)
            src = pass_through_source(self.graph, node)
            if src is not None and "value" in src.attr:
                reason = duplicate_reason(self.graph, node)
                if reason:
                    self.kept[name] = reason
                    return None
                self.values.setdefault(f"{name}:0", src.attr["value"].tensor)
                continue
            if node.op == "Reshape" and f"{name}:0" not in self.values:  # (a weight reshaped: no session for it)
                value = reshaped_const(self.graph, node, self.max_bytes)  # (one over the budget: not even copied)
                if value is not None:
                    self.values[f"{name}:0"] = value
            missing = [p for p in ports if f"{name}:{p}" not in self.values]
            if missing:
                todo[name] = missing
        return todo

    def _fetch(self, todo: Mapping[str, list[int]], needed: set[str]) -> bool:
        """Every tensor in ``todo``, evaluated at once (without a session when :meth:`_evaluated` can, else what is
        left in one ``session.run``); False if something dropped out."""
        fetch_names = [f"{n}:{p}" for n, ports in todo.items() for p in ports]
        try:
            fetched = self._evaluated(fetch_names, needed)
            rest = [t for t, v in zip(fetch_names, fetched, strict=True) if v is None]
            if rest:
                self.session_runs += 1
                values = iter(self.session.run({}, rest))
                fetched = [next(values) if v is None else v for v in fetched]
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
            same = dtype is None or dtype.as_numpy_dtype == value.dtype
            if value.size > 1 and value.dtype in _CONTENT_DTYPES and same:  # the proto make_tensor_proto writes
                self.values[tname] = tensor_proto(value)  # (tensor_content), without its per-call checks
            else:
                self.values[tname] = tf.make_tensor_proto(value, dtype=dtype)
        return ok

    def _evaluated(self, fetch_names: list[str], needed: set[str]) -> list[np.ndarray | None]:
        """The values TensorFlow computes without a session run (``None`` for the others): only when the fetches
        are few and small, as the folds of shape vectors and small constants are (a session starts TensorFlow's
        runtime: its thread pools and buffers cost more than such values, in time and memory), and so is what
        they are computed from (``needed``: each fetch's constant subgraph is evaluated on its own)."""
        none: list[np.ndarray | None] = [None] * len(fetch_names)
        if len(fetch_names) > QUICK_FETCHES or len(needed) > QUICK_NODES:
            return none
        if sum(tensor_nbytes(n.attr["value"].tensor) for n in map(self.graph.node, needed)
               if n.op == "Const" and "value" in n.attr) > QUICK_INPUT_BYTES:
            return none
        total = 0
        for t in fetch_names:
            nbytes = _static_nbytes(*self.session.static_shape(t))
            if nbytes is None or (total := total + nbytes) > QUICK_BYTES:
                return none
        return [self.session.evaluate_constant(t) for t in fetch_names]

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
                    if fetch and not self._fetch(todo, needed):
                        continue  # something dropped out: re-analyse
                    # (with nothing dropped out the analysis stands, and every frontier value is there now)
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
) -> FoldResult:
    """Values of every frontier tensor of ``graph``.

    One ``session.run`` in the usual case; more only when a node fails or
    turns out to be over budget after evaluation. Raises :class:`RuleError`
    naming the node when evaluation fails and ``ignore_errors`` is false.
    ``excluded``/``kept`` carry what an earlier round found (not retried).
    """
    return _Evaluator(graph, max_bytes=max_bytes, ignore_errors=ignore_errors, excluded=excluded, kept=kept).run()


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
    ev = _Evaluator(graph, max_bytes=max_bytes, ignore_errors=True, excluded=excluded, kept=kept)
    ev.log_level = logging.DEBUG  # explaining is not folding: no warnings about what would be skipped
    return ev.run(fetch=False).analysis


__all__ = ["EVAL_LIMIT_BYTES", "FoldResult", "evaluate_frontier", "static_analysis"]
