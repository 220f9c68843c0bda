"""Runs rules over a graph to a fixpoint and applies their replacements.

``apply_replacement`` is the one place a rule's :class:`Replacement` turns
into :class:`Graph` mutations. ``run_pipeline`` is the engine:

* **Worklist.** The first time a rule runs it visits every candidate node
  (its anchor ops). Afterwards it only revisits nodes *near a change*: nodes
  added or updated by any rewrite, their consumers up to the rule's
  ``reach`` (how far above its anchor a pattern looks), and the producers
  whose consumer set changed (with their consumers when only one or two are
  left, so ``single_use`` conditions are seen). Changes are appended to one
  shared log; every rule keeps a cursor into it, so a mark costs O(1) and no
  candidate list is rebuilt per step. Global rules (``global_rule=True``) run
  once per round, and only when the graph changed since they last started
  (their own rewrites included, so a rule that does part of its work per call
  still reaches its fixpoint).
* **Rounds.** A round runs every rule in order; rounds repeat until one
  applies nothing. Rules marked ``final`` (quantization) run afterwards, each
  in a stage of its own, so the other rules cannot undo them.
* **Termination.** A hard step limit (default ``10 * len(graph) + 1000``
  rewrites) raises :class:`FixpointError` naming the busiest rules. An
  incremental fingerprint of the graph — the XOR of a hash of every node,
  updated only for the nodes a rewrite touches — detects a graph that
  returns to an earlier state (rules undoing each other); the error names
  the rules and shows where they fired.
* **Record.** Every applied rewrite is kept in the :class:`RunReport`
  (rule, anchor, nodes matched/added/updated/removed, replaced tensors),
  with per-rule counts and seconds; :meth:`RunReport.write_trace` writes it
  as JSON lines. ``debug=True`` lints the graph after every rewrite and
  names the rule that broke it.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tensorflow.core.framework import node_def_pb2

from graphxform.core.errors import FixpointError, GraphError, GraphxformError, RuleError
from graphxform.core.graph import Graph, parse_input, tensor_name
from graphxform.engine.rule import Match, Replacement, Rule

log = logging.getLogger(__name__)

#: ``progress(rule_name, status, info)``; status is ``"start"`` or ``"done"``.
ProgressFn = Callable[[str, str, dict[str, Any]], None]

#: Default reach (both directions) of a rule that defines its own ``match`` (no pattern to measure).
DEFAULT_REACH = 3
#: Producers left with at most this many consumers after a change have their consumers revisited.
_FEW_CONSUMERS = 2
#: Per-step fingerprints kept for oscillation detection between rule boundaries.
_WINDOW = 512
_NONE: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- records
@dataclass(slots=True)
class AppliedRewrite:
    """One applied rewrite: which rule, where, and the nodes it matched, added, updated and removed."""

    rule: str
    anchor: str
    matched: Sequence[str]
    added: Sequence[str]
    removed: Sequence[str]
    replaced: dict[str, str]
    updated: Sequence[str] = ()
    step: int = 0
    round: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (one line of the trace)."""
        return {"step": self.step, "round": self.round, "rule": self.rule, "anchor": self.anchor,
                "matched": list(self.matched), "added": list(self.added), "updated": list(self.updated),
                "removed": list(self.removed), "replaced": dict(self.replaced)}


@dataclass
class RuleStats:
    """Per-rule figures of a run."""

    applied: int = 0
    seconds: float = 0.0
    visited: int = 0
    added: int = 0
    removed: int = 0
    noop: int = 0
    errors: int = 0


@dataclass
class RunReport:
    """What a pipeline run did: applied rewrites in order, per-rule counts and seconds."""

    applied: list[AppliedRewrite] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    steps: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    stats: dict[str, RuleStats] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    ignored_errors: list[str] = field(default_factory=list)
    total_seconds: float = 0.0
    #: Rewrites only the confirmation pass (``confirm=True``) found: the worklist missed them.
    missed: int = 0

    def add(self, rec: AppliedRewrite) -> None:
        self.applied.append(rec)
        self.counts[rec.rule] = self.counts.get(rec.rule, 0) + 1
        self.steps += 1

    def stat(self, rule: str) -> RuleStats:
        st = self.stats.get(rule)
        if st is None:
            st = self.stats[rule] = RuleStats()
        return st

    def table(self) -> list[dict[str, Any]]:
        """One row per rule: applied rewrites, seconds, nodes visited, added and removed."""
        rows = []
        for name in dict.fromkeys([*self.rules, *self.counts]):
            st = self.stats.get(name, RuleStats())
            rows.append({"rule": name, "applied": self.counts.get(name, 0),
                         "seconds": round(self.seconds.get(name, 0.0), 6), "visited": st.visited,
                         "nodes_added": st.added, "nodes_removed": st.removed, "noop": st.noop,
                         "errors_ignored": st.errors})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "steps": len(self.applied), "nodes_before": self.nodes_before,
                "nodes_after": self.nodes_after, "seconds": round(self.total_seconds, 6), "rules": self.table(),
                "ignored_errors": list(self.ignored_errors)}

    def write_trace(self, path: str | os.PathLike[str] | IO[str]) -> None:
        """Write every applied rewrite as one JSON object per line (to a path or an open text file)."""
        if hasattr(path, "write"):
            _write_lines(path, self.applied)  # type: ignore[arg-type]
            return
        p = Path(path)  # type: ignore[arg-type]
        tmp = p.with_name(p.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                _write_lines(fh, self.applied)
            os.replace(tmp, p)
        except OSError as exc:
            raise GraphxformError(f"cannot write the trace to {p}: {exc.strerror or exc}") from exc


def _write_lines(fh: IO[str], records: Iterable[AppliedRewrite]) -> None:
    for rec in records:
        fh.write(json.dumps(rec.to_dict(), separators=(",", ":")))
        fh.write("\n")


# ----------------------------------------------------------------------------- applying
def validate_replacement(graph: Graph, rep: Replacement) -> str | None:
    """``None`` when ``rep`` can be applied to ``graph`` as it stands, else what is wrong (nothing is changed)."""
    added = set()
    for node in rep.add:
        if not node.name or not node.op:
            return f"an added node has no name or op ({node.name!r}, {node.op!r})"
        if node.name in graph or node.name in added:
            return f"added node {node.name!r} already exists (use graph.unique_name for new nodes)"
        added.add(node.name)

    def exists(name: str) -> bool:
        return name in added or name in graph

    for node in [*rep.add, *rep.update]:
        for inp in node.input:
            if not exists(parse_input(inp)[0]):
                return f"node {node.name!r} input {inp!r} names no node"
    for node in rep.update:
        if node.name not in graph:
            return f"updated node {node.name!r} does not exist"
    for old, new in rep.replace.items():
        o, n = parse_input(old), parse_input(new)
        if o[2] or n[2]:
            return f"replace {old!r} -> {new!r}: tensors only (control edges go in replace_control)"
        if not exists(n[0]):
            return f"replace {old!r} -> {new!r}: no node named {n[0]!r}"
    for old, news in rep.replace_control.items():
        for n in news:
            if not exists(n):
                return f"replace_control {old!r} -> {n!r}: no such node"
    return None


def apply_replacement(graph: Graph, rep: Replacement) -> list[str]:
    """Apply ``rep`` to ``graph``; returns the names of the nodes removed."""
    # The replacement's nodes are the rule's own, made for this rewrite: the graph keeps them as they are.
    if rep.add:
        graph.add_nodes(rep.add, adopt=True)
    for node in rep.update:
        graph.update_node(node, adopt=True)
    if rep.replace:
        graph.replace_uses(rep.replace)
    for old, new_nodes in rep.replace_control.items():
        graph.replace_control_uses(old, new_nodes)
    removed: list[str] = []
    if not rep.remove:
        return removed
    pending = [n for n in dict.fromkeys(rep.remove) if n in graph]
    if len(pending) == 1:
        name = pending[0]
        if not _has_consumers(graph, name) and not graph.is_protected(name):
            graph.remove_node(name, force=True)  # (checked just above)
            return [name]
        log.debug("kept %s: still consumed or protected", name)
        return removed
    protected = graph.protected_nodes()
    # Remove consumers first: a node goes once nothing reads it any more.
    progress = True
    while pending and progress:
        progress = False
        left = []
        for name in pending:
            if name in protected or _has_consumers(graph, name):
                left.append(name)
                continue
            graph.remove_node(name, force=True)  # (checked just above)
            removed.append(name)
            progress = True
        pending = left
    for name in pending:
        log.debug("kept %s: still consumed or protected", name)
    return removed


def _succ_map(graph: Graph) -> Any:
    """``{node: {consumer: edges}}`` of the networkx view (read only; O(1) lookups, no view objects)."""
    return graph.nx._succ


def _pred_map(graph: Graph) -> Any:
    """``{node: {producer: edges}}`` of the networkx view (read only)."""
    return graph.nx._pred


def _has_consumers(graph: Graph, name: str) -> bool:
    return bool(_succ_map(graph).get(name))


def _node_hash(node: node_def_pb2.NodeDef) -> int:
    return hash(node.SerializeToString(deterministic=True))


def apply_match(graph: Graph, rule: Rule, match: Match, rep: Replacement) -> AppliedRewrite:
    """Apply the replacement a rule returned for ``match`` (no fixpoint bookkeeping)."""
    matched = sorted({n.name for n in match.nodes.values()} | {match.anchor.name})
    problem = validate_replacement(graph, rep)
    if problem:
        raise RuleError(f"rule {rule.name!r} at node {match.anchor.name!r} produced an invalid rewrite: {problem}")
    try:
        removed = apply_replacement(graph, rep)
    except GraphError as exc:
        raise RuleError(f"rule {rule.name!r} at node {match.anchor.name!r} produced an invalid rewrite: {exc}") from exc
    return AppliedRewrite(rule.name, match.anchor.name, matched, [n.name for n in rep.add], removed,
                          dict(rep.replace), [n.name for n in rep.update])


def run_rule_once(graph: Graph, rule: Rule, report: RunReport | None = None) -> int:
    """One pass of ``rule`` over every candidate node (no fixpoint); returns the number of rewrites."""
    report = report if report is not None else RunReport()
    engine = _Engine(graph, [rule], report=report, max_steps=None, debug=False, progress=None, confirm=False)
    before = engine.steps
    t0 = time.perf_counter()
    state = engine.states[0]
    if rule.global_rule:
        engine.run_global(state)
    else:
        state.cursor = len(engine.log)
        for node in rule.candidates(graph):
            if graph.get(node.name) is node:
                engine.visit(state, node)
    report.seconds[rule.name] = report.seconds.get(rule.name, 0.0) + time.perf_counter() - t0
    return engine.steps - before


# ----------------------------------------------------------------------------- the engine
class _RuleState:
    __slots__ = ("cursor", "ignore_errors", "last_run", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.cursor: int | None = None  # position in the change log; None: next run is a full pass
        self.last_run: int | None = None  # step count when a global rule last started
        self.ignore_errors = bool(getattr(rule, "ignore_errors", False) or rule.args.get("ignore_errors", False))


def _rule_reach(rule: Rule) -> tuple[int, int]:
    """(down, up): how far below and above a change the anchors that may now match can be.

    A pattern looks upwards from its anchor, so only nodes below a change
    (its consumers, to the pattern's depth) can start a new match. A rule
    with its own ``match`` may look either way (``fold_batch_norms`` walks
    down from the convolution), so both directions are revisited.
    """
    reach = getattr(rule, "reach", None)
    if rule.pattern is not None and type(rule).match is Rule.match:
        from graphxform.engine.pattern import depth_of

        return (depth_of(rule.pattern) if reach is None else int(reach)), 0
    reach = DEFAULT_REACH if reach is None else int(reach)
    return reach, reach


class _Engine:
    """Fixpoint machinery shared by the stages of one run: change log, fingerprint, step count."""

    def __init__(self, graph: Graph, rules: Sequence[Rule], *, report: RunReport, max_steps: int | None,
                 debug: bool, progress: ProgressFn | None, confirm: bool) -> None:
        self.graph = graph
        self.report = report
        self.debug = debug
        self.confirm = confirm
        self.progress = progress
        self.max_steps = max_steps
        self.states = [_RuleState(r) for r in rules]
        self.log: list[str] = []
        self.steps = 0
        self.round = 0
        self.fp = 0  # XOR of node hashes, relative to the start
        self.window: deque[tuple[int, int]] = deque()
        self.window_index: dict[int, int] = {0: 0}
        self.window.append((0, 0))
        self.boundaries: dict[int, int] = {0: 0}
        self._set_reach(rules)

    def _set_reach(self, rules: Iterable[Rule]) -> None:
        reaches = [_rule_reach(r) for r in rules if not r.global_rule]
        self.reach = max((d for d, _ in reaches), default=0)
        self.reach_up = max((u for _, u in reaches), default=0)

    # ------------------------------------------------------------ rounds
    def run_stage(self, states: list[_RuleState]) -> None:
        self._set_reach(s.rule for s in states)
        self.log.clear()
        # A stage may legitimately return to a state an earlier stage had: track states per stage.
        self.window.clear()
        self.window.append((self.fp, self.steps))
        self.window_index = {self.fp: self.steps}
        self.boundaries = {self.fp: self.steps}
        for st in states:
            st.cursor = None
            st.last_run = None
        confirming = False
        while True:
            self.round += 1
            self.report.rounds += 1
            at_start = self.steps
            for st in states:
                self._run_rule(st)
            if self.steps == at_start:
                if not self.confirm or confirming:
                    return
                # Confirmation: one more full pass of every rule; anything it finds, the worklist missed.
                confirming = True
                for st in states:
                    st.cursor = None
                    st.last_run = None
                continue
            if confirming:
                log.warning("the confirmation pass found %d rewrites the worklist had missed (first: %s at %r)",
                            self.steps - at_start, self.report.applied[at_start - self.steps].rule,
                            self.report.applied[at_start - self.steps].anchor)
                self.report.missed += self.steps - at_start
                confirming = False
            self._compact_log(states)

    def _compact_log(self, states: list[_RuleState]) -> None:
        cursors = [s.cursor for s in states if s.cursor is not None and not s.rule.global_rule]
        low = min(cursors, default=len(self.log))
        if low > 0:
            del self.log[:low]
            for s in states:
                if s.cursor is not None:
                    s.cursor -= low

    def _run_rule(self, st: _RuleState) -> None:
        rule = self.report_name(st)
        t0 = time.perf_counter()
        before = self.steps
        if self.progress is not None:
            self.progress(rule, "start", {"round": self.round})
        try:
            if st.rule.global_rule:
                if st.last_run is None or st.last_run != self.steps:
                    st.last_run = self.steps  # its own rewrites count as a change: it runs again next round,
                    self.run_global(st)
                    if st.rule.idempotent:  # unless it reaches its own fixpoint in one run
                        st.last_run = self.steps
            else:
                self.run_node_rule(st)
        finally:
            dt = time.perf_counter() - t0
            self.report.seconds[rule] = self.report.seconds.get(rule, 0.0) + dt
        if self.steps != before:
            self._check_boundary(st)
        if self.progress is not None:
            self.progress(rule, "done", {"round": self.round, "count": self.report.counts.get(rule, 0),
                                         "seconds": self.report.seconds[rule], "nodes": len(self.graph)})

    @staticmethod
    def report_name(st: _RuleState) -> str:
        return st.rule.name

    def run_node_rule(self, st: _RuleState) -> None:
        graph, rule = self.graph, st.rule
        if st.cursor is None:  # first run: every candidate
            st.cursor = len(self.log)
            for node in rule.candidates(graph):
                if graph.get(node.name) is node:  # not removed/replaced by an earlier rewrite of this pass
                    self.visit(st, node)
        while st.cursor < len(self.log):
            batch = dict.fromkeys(self.log[st.cursor:])
            st.cursor = len(self.log)
            for node in rule.candidates(graph, batch):
                if graph.get(node.name) is node:
                    self.visit(st, node)

    def run_global(self, st: _RuleState) -> None:
        rule = st.rule
        try:
            reps = rule.run_global(self.graph)
        except Exception as exc:  # noqa: BLE001 - reported with the rule's name
            self._rule_failed(st, "", exc, "run_global")
            return
        for rep in reps or ():
            if rep is None or rep.is_empty():
                continue
            self.apply(st, rep, "", [])

    def visit(self, st: _RuleState, node: node_def_pb2.NodeDef) -> None:
        rule = st.rule
        stat = self.report.stat(rule.name)
        stat.visited += 1
        try:
            m = rule.match(self.graph, node)
            if isinstance(m, str):
                return
            if rule.check(m) is not None:
                return
            rep = rule.rewrite(m)
        except Exception as exc:  # noqa: BLE001 - reported with the rule's name and the node
            self._rule_failed(st, node.name, exc, "match/check/rewrite")
            return
        if rep is None or rep.is_empty():
            return
        matched = sorted({n.name for n in m.nodes.values()} | {node.name})
        self.apply(st, rep, node.name, matched)

    def _rule_failed(self, st: _RuleState, anchor: str, exc: Exception, where: str) -> None:
        at = f" at node {anchor!r}" if anchor else ""
        if isinstance(exc, FixpointError):
            raise exc
        if st.ignore_errors:
            msg = f"rule {st.rule.name!r}{at}: {type(exc).__name__}: {exc}"
            log.warning("ignoring error (ignore_errors=true): %s", msg)
            self.report.ignored_errors.append(msg)
            self.report.stat(st.rule.name).errors += 1
            return
        if isinstance(exc, GraphxformError):
            text = str(exc)
            if st.rule.name in text and (not anchor or anchor in text):
                raise exc
            raise RuleError(f"rule {st.rule.name!r} failed{at}: {text}") from exc
        raise RuleError(
            f"rule {st.rule.name!r} failed{at} in {where}: {type(exc).__name__}: {exc} — this is a bug in the "
            f"rule ({type(st.rule).__module__}); pass ignore_errors=true to skip such nodes"
        ) from exc

    # ------------------------------------------------------------ applying with bookkeeping
    def apply(self, st: _RuleState, rep: Replacement, anchor: str, matched: list[str]) -> None:
        graph, rule = self.graph, st.rule
        problem = validate_replacement(graph, rep)
        if problem:
            exc = RuleError(f"rule {rule.name!r}{f' at node {anchor!r}' if anchor else ''} produced an invalid "
                            f"rewrite: {problem}")
            if st.ignore_errors:
                self._rule_failed(st, anchor, exc, "rewrite")
                return
            raise exc
        # Snapshot the nodes this replacement can touch (Graph stores a new NodeDef on every change, so an
        # unchanged object means an untouched node).
        get = graph.get
        succ = _succ_map(graph)
        before: dict[str, node_def_pb2.NodeDef | None] = {}
        for node in rep.update:
            before[node.name] = get(node.name)
        for t in (*rep.replace, *rep.replace_control):
            for c in succ.get(parse_input(t)[0], ()):
                if c not in before:
                    before[c] = get(c)
        for name in rep.remove:
            if name not in before:
                before[name] = get(name)
        try:
            removed = apply_replacement(graph, rep)
        except GraphError as exc:
            raise RuleError(
                f"rule {rule.name!r}{f' at node {anchor!r}' if anchor else ''} produced an invalid rewrite: {exc}; "
                "the graph may be half-rewritten, start again from the input"
            ) from exc
        added_names = [n.name for n in rep.add]
        delta = 0
        changed: list[str] = []
        touched: set[str] = set()
        for name, old in before.items():
            new = get(name)
            if new is old:
                continue
            if old is None:  # added by this replacement: counted below
                continue
            h_old = _node_hash(old)
            if new is None:  # removed
                delta ^= h_old
                touched.update(old.input)
                continue
            h_new = _node_hash(new)
            if h_old == h_new:
                continue
            delta ^= h_old ^ h_new
            changed.append(name)
            if old.input != new.input:
                touched.update(set(old.input).symmetric_difference(new.input))
        for name in added_names:
            new = get(name)
            if new is not None:
                delta ^= _node_hash(new)
                changed.append(name)
        touched.update(rep.replace.values())
        if not changed and not removed and (delta == 0) and not self._moved_signature(rep):
            self.report.stat(rule.name).noop += 1
            log.debug("rule %s at %s: the rewrite changed nothing", rule.name, anchor or "<global>")
            return
        # Book the step.
        self.steps += 1
        self.fp ^= delta
        # Compact record (a 1M-node run keeps ~700k of them): empty lists share one tuple, the
        # replacement's own dict is kept (a Replacement is not reused after it was applied).
        rec = AppliedRewrite(rule.name, anchor, matched or _NONE, added_names or _NONE,  # type: ignore[arg-type]
                             removed or _NONE, rep.replace, [n.name for n in rep.update] or _NONE,  # type: ignore[arg-type]
                             self.steps, self.round)
        report = self.report
        report.applied.append(rec)
        report.counts[rule.name] = report.counts.get(rule.name, 0) + 1
        report.steps += 1
        stat = report.stat(rule.name)
        stat.applied += 1
        stat.added += len(added_names)
        stat.removed += len(removed)
        self._mark(changed, {parse_input(t)[0] for t in touched})
        if self.debug:
            problems = graph.lint()
            if problems:
                raise RuleError(
                    f"rule {rule.name!r}{f' at node {anchor!r}' if anchor else ''} left the graph broken: "
                    + "; ".join(problems[:5])
                )
            from graphxform.core.validate import validate_nodes

            bad = validate_nodes(n for n in (get(x) for x in (*changed, *(matched or ()))) if n is not None)
            if bad:
                raise RuleError(
                    f"rule {rule.name!r}{f' at node {anchor!r}' if anchor else ''} left nodes TensorFlow's C++ "
                    "loader would refuse: " + "; ".join(map(str, bad[:5])))
        if self.max_steps is not None and self.steps > self.max_steps:
            raise FixpointError(self._step_limit_message())
        self._check_window()

    def _moved_signature(self, rep: Replacement) -> bool:
        """After applying ``rep``: did it point a signature at a new tensor (a change no node shows)?"""
        if not rep.replace or not self.graph.signatures:
            return False
        now = {tensor_name(t) for t in self.graph.signature_tensors()}
        return any(tensor_name(new) in now and tensor_name(old) not in now for old, new in rep.replace.items())

    def _mark(self, changed: list[str], touched: set[str]) -> None:
        """Append to the change log the nodes whose matches ``changed``/``touched`` nodes may have enabled."""
        graph, mark = self.graph, self.log.append
        succ = _succ_map(graph)
        frontier = []
        for name in changed:
            mark(name)
            frontier.append(name)
        for name in touched:
            users = succ.get(name)
            if users is None:
                continue
            mark(name)
            if len(users) <= _FEW_CONSUMERS:
                frontier.append(name)
        if self.reach_up:
            pred = _pred_map(graph)
            up = [*changed, *touched]
            up_seen = set(up)
            get = graph.get
            for _ in range(self.reach_up):
                nxt = []
                for name in up:
                    preds = pred.get(name)
                    if not preds:
                        continue
                    # Matches look through data inputs only: a node with control inputs alone (a NoOp
                    # gathering hundreds of dependencies) enables nothing above it, and walking its
                    # predecessors at every change to it would be quadratic.
                    node = get(name)
                    mixed = False
                    if node is not None and node.input:
                        if node.input[0][:1] == "^":
                            continue
                        mixed = node.input[-1][:1] == "^"
                    for src, edges in preds.items():
                        if src in up_seen or (mixed and all(d["control"] for d in edges.values())):
                            continue
                        up_seen.add(src)
                        mark(src)
                        nxt.append(src)
                if not nxt:
                    break
                up = nxt
        seen = set(frontier)
        for _ in range(self.reach):
            nxt = []
            for name in frontier:
                for c in succ.get(name, ()):
                    if c not in seen:
                        seen.add(c)
                        mark(c)
                        nxt.append(c)
            if not nxt:
                break
            frontier = nxt

    # ------------------------------------------------------------ termination
    def _check_window(self) -> None:
        fp, step = self.fp, self.steps
        prev = self.window_index.get(fp)
        if prev is not None and prev != step:
            raise FixpointError(self._oscillation_message(prev))
        self.window.append((fp, step))
        self.window_index[fp] = step
        if len(self.window) > _WINDOW:
            old_fp, old_step = self.window.popleft()
            if self.window_index.get(old_fp) == old_step:
                del self.window_index[old_fp]

    def _check_boundary(self, st: _RuleState) -> None:
        prev = self.boundaries.get(self.fp)
        if prev is not None and prev != self.steps:
            raise FixpointError(self._oscillation_message(prev))
        self.boundaries[self.fp] = self.steps

    def _recent(self, since_step: int) -> list[AppliedRewrite]:
        out = []
        for rec in reversed(self.report.applied):
            if rec.step <= since_step:
                break
            out.append(rec)
        out.reverse()
        return out

    def _oscillation_message(self, since_step: int) -> str:
        recs = self._recent(since_step)
        counts = Counter(r.rule for r in recs)
        names = list(dict.fromkeys(r.rule for r in recs))
        examples = []
        for name in names:
            rec = next(r for r in recs if r.rule == name)
            examples.append(f"{name} at {rec.anchor!r}" if rec.anchor else f"{name} (global)")
        who = (f"rules {', '.join(repr(n) for n in names[:-1])} and {names[-1]!r} undo each other"
               if len(names) > 1 else f"rule {names[0]!r} undoes its own rewrites")
        return (f"no fixpoint: {who} — after {len(recs)} more rewrites "
                f"({', '.join(f'{n}: {c}' for n, c in counts.items())}) the graph is back to the state it had at "
                f"step {since_step} (e.g. {'; '.join(examples[:4])}). Drop one of them from the pipeline or "
                "make one rule's check refuse what the other produces.")

    def _step_limit_message(self) -> str:
        tail = self.report.applied[-1000:]
        counts = Counter(r.rule for r in tail).most_common(3)
        anchors = Counter(r.anchor for r in tail if r.anchor).most_common(3)
        return (f"no fixpoint after {self.steps} rewrites (the limit is max_steps={self.max_steps}); the last "
                f"{len(tail)} were by {', '.join(f'{n} ({c}x)' for n, c in counts)}"
                + (f", at nodes {', '.join(f'{a!r}' for a, _ in anchors)}" if anchors else "")
                + ". A rule keeps producing new matches for itself or another rule; run with --trace to see them.")


def _stages(rules: Sequence[Rule]) -> list[list[int]]:
    """Indices of ``rules`` per stage: every non-final rule together, then each final rule alone, in order."""
    main = [i for i, r in enumerate(rules) if not getattr(r, "final", False)]
    finals = [[i] for i, r in enumerate(rules) if getattr(r, "final", False)]
    return ([main] if main else []) + finals


def run_pipeline(
    graph: Graph,
    rules: Sequence[Rule],
    *,
    max_steps: int | None = None,
    debug: bool = False,
    trace: str | os.PathLike[str] | IO[str] | None = None,
    progress: ProgressFn | None = None,
    confirm: bool | None = None,
    max_rounds: int | None = None,
) -> RunReport:
    """Run ``rules`` on ``graph`` (in place) to a fixpoint; see the module docstring.

    ``max_steps``: rewrites allowed before :class:`FixpointError` (default
    ``10 * len(graph) + 1000``). ``debug``: lint after every rewrite, check the
    nodes it changed or matched against their ``OpDef`` (:mod:`graphxform.core.validate`),
    and run a confirmation full pass at the end. ``trace``: write every applied rewrite
    as JSON lines there (also when the run fails). ``progress(rule, status,
    info)`` is called before and after each rule's turn. ``confirm``: end with
    a full pass of every rule (default: ``debug``). ``max_rounds`` is accepted
    for compatibility; the step limit is what bounds a run.
    """
    for r in rules:
        if not isinstance(r, Rule):
            raise RuleError(f"run_pipeline takes Rule instances, got {r!r} (build them with graphxform.engine.pipeline)")
    report = RunReport(nodes_before=len(graph), rules=list(dict.fromkeys(r.name for r in rules)))
    limit = max_steps if max_steps is not None else 10 * len(graph) + 1000
    engine = _Engine(graph, rules, report=report, max_steps=limit, debug=debug, progress=progress,
                     confirm=debug if confirm is None else confirm)
    t0 = time.perf_counter()
    # Rewrites allocate many short-lived, acyclic objects; the cyclic GC would rescan the whole (large,
    # long-lived) graph again and again — a quarter of the run time on a 1M-node graph. Pause it for the run.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for stage in _stages(rules):
            engine.run_stage([engine.states[i] for i in stage])
    except FixpointError as exc:
        exc.report = report  # type: ignore[attr-defined]
        raise
    finally:
        if gc_was_enabled:
            gc.enable()
        report.total_seconds = time.perf_counter() - t0
        report.nodes_after = len(graph)
        if trace is not None:
            report.write_trace(trace)
    log.info("pipeline: %d rewrites in %d rounds, %d -> %d nodes, %.2fs", engine.steps, report.rounds,
             report.nodes_before, report.nodes_after, report.total_seconds)
    return report


# ----------------------------------------------------------------------------- explain
def explain(graph: Graph, rule: Rule) -> list[tuple[str, str | None]]:
    """For every node ``rule`` could start from: ``(node, reason it does not fire)``; reason ``None``: it would.

    The reason is the pattern's (or ``match``'s) or the ``check``'s. A global
    rule without a node-level ``match`` reports what ``run_global`` would do.
    """
    own_match = type(rule).match is not Rule.match or rule.pattern is not None
    if rule.global_rule and not own_match:
        reps = [r for r in (rule.run_global(graph) or []) if r is not None and not r.is_empty()]
        if not reps:
            return [("", f"global rule {rule.name!r}: nothing to do on this graph")]
        out: list[tuple[str, str | None]] = []
        for rep in reps:
            for name in rep.remove:
                out.append((name, None))
            for node in rep.update:
                out.append((node.name, None))
            for old in rep.replace:
                out.append((parse_input(old)[0], None))
        return out
    result: list[tuple[str, str | None]] = []
    for node in rule.candidates(graph):
        try:
            m = rule.match(graph, node)
            if isinstance(m, str):
                result.append((node.name, m))
                continue
            result.append((node.name, rule.check(m)))
        except Exception as exc:  # noqa: BLE001 - explain reports, it does not stop
            result.append((node.name, f"the rule raised {type(exc).__name__}: {exc}"))
    return result


__all__ = ["AppliedRewrite", "RuleStats", "RunReport", "apply_match", "apply_replacement", "explain",
           "run_pipeline", "run_rule_once", "validate_replacement"]
