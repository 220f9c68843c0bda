"""Runs rules and passes over a graph to a fixpoint and applies their replacements.

* **Worklist** (:mod:`graphxform.engine.worklist`). The first time a rule runs it visits every candidate node
  (its anchor ops). Afterwards it only revisits nodes *near a change*: nodes added or updated by any rewrite,
  their consumers up to the largest ``reach`` (how far above its anchor a pattern looks) of the stage's rules
  whose anchor ops the graph holds, and the producers whose consumer set changed (with their consumers when
  only one or two are left, so ``single_use`` conditions are seen). Changes are appended to one shared log;
  every rule keeps a cursor into it, so a mark costs O(1) and no candidate list is rebuilt per step (a pass's
  rewrite that changes a quarter of the graph sends every rule to a full pass instead). Passes run once per
  round, and only when the graph changed since they last started (their own rewrites included, so a pass that
  does part of its work per call still reaches its fixpoint).
* **Rounds.** A round runs every rule in order; rounds repeat until one
  applies nothing. Rules marked ``final`` (quantization) run afterwards, each
  in a stage of its own, so the other rules cannot undo them.
* **Termination** (:mod:`graphxform.engine.fixpoint`): a hard step limit
  (default ``10 * len(graph) + 1000`` rewrites), and detection of a graph
  that returns to an earlier state (rules undoing each other), both raising
  :class:`FixpointError` naming the rules.
* **Record** (:mod:`graphxform.engine.report`): every applied rewrite is kept
  in the :class:`RunReport`, with per-rule counts and seconds;
  ``trace=`` writes it as JSON lines. ``debug=True`` lints the graph after
  every rewrite and names the rule that broke it.
* **Context** (:mod:`graphxform.engine.context`): each rule's caches live in a
  context the runner owns — a rule's for one full pass and the visits after
  it, a pass's for the whole run.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

from tensorflow.core.framework import node_def_pb2

from graphxform.core.collector import gc_paused
from graphxform.core.errors import FixpointError, GraphError, GraphxformError, RuleError
from graphxform.core.graph import Delta, Graph
from graphxform.core.names import node_name
from graphxform.core.validate import validate_nodes
from graphxform.engine.apply import apply_replacement, validate_replacement
from graphxform.engine.batch import batched_pass
from graphxform.engine.context import Context
from graphxform.engine.fixpoint import NodeHashes, Termination
from graphxform.engine.passes import Pass
from graphxform.engine.report import AppliedRewrite, RunReport
from graphxform.engine.rule import BaseRule, Replacement, Rule
from graphxform.engine.worklist import mark_near

log = logging.getLogger(__name__)

#: ``progress(rule_name, status, info)``; status is ``"start"`` or ``"done"``.
ProgressFn = Callable[[str, str, dict[str, Any]], None]

_NONE: tuple[str, ...] = ()
#: A pass's rewrite that changed or touched more than this share of the nodes sends every rule to a full pass.
_FULL_SHARE = 4


def run_rule_once(graph: Graph, rule: BaseRule, report: RunReport | None = None) -> int:
    """One pass of ``rule`` over every candidate node (no fixpoint); returns the number of rewrites."""
    report = report if report is not None else RunReport()
    engine = _Engine(graph, [rule], report=report, max_steps=None, debug=False, progress=None, confirm=False)
    before = engine.steps
    t0 = time.perf_counter()
    state = engine.states[0]
    if isinstance(rule, Pass):
        engine.run_pass(state)
    else:
        engine.full_pass(state)
    report.seconds[rule.name] = report.seconds.get(rule.name, 0.0) + time.perf_counter() - t0
    return engine.steps - before


# ----------------------------------------------------------------------------- the engine
class _RuleState:
    __slots__ = ("ctx", "cursor", "ignore_errors", "last_rewires", "last_run", "rule", "run_store")

    def __init__(self, rule: BaseRule, run_store: dict | None = None) -> None:
        self.rule = rule
        self.run_store = run_store if run_store is not None else {}  # what every rule of the run shares
        self.ctx = Context(self.run_store)  # a pass's lasts the run; a rule's is renewed with each full pass
        self.cursor: int | None = None  # position in the change log; None: next run is a full pass
        self.last_run: int | None = None  # step count when a pass last started
        self.last_rewires = -1  # the engine's count of steps that were not pure removals, then
        self.ignore_errors = bool(getattr(rule, "ignore_errors", False) or rule.args.get("ignore_errors", False))


class _Engine:
    """Fixpoint machinery shared by the stages of one run: change log, fingerprint, step count."""

    def __init__(self, graph: Graph, rules: Sequence[BaseRule], *, report: RunReport, max_steps: int | None,
                 debug: bool, progress: ProgressFn | None, confirm: bool) -> None:
        self.graph = graph
        self.report = report
        self.debug = debug
        self.confirm = confirm
        self.progress = progress
        run_store: dict = {}
        self.states = [_RuleState(r, run_store) for r in rules]
        self.log: list[str] = []
        self.steps = 0
        self.rewires = 0  # steps that did more than remove nodes
        self.round = 0
        self.fp = 0  # XOR of node hashes, relative to the start
        self.hashes = NodeHashes()
        self._sig_state = self._signature_state()  # every signature tensor; renames come through replace_uses
        self.termination = Termination(report, max_steps)
        self._set_reach(rules)

    def _set_reach(self, rules: Iterable[BaseRule]) -> None:
        self._reaches = [(r.anchors, *r.neighbourhood()) for r in rules if isinstance(r, Rule)]
        self._reach_key: int | None = None
        self._reach = (0, 0)

    def _reach_now(self) -> tuple[int, int]:
        """``(below, above)``: how far from a change the stage's rules may find a new match. A rule none of whose
        anchor ops the graph holds has no anchor a change could have enabled (a rewrite adding one marks it), so
        only the others count; kept until the set of ops in the graph changes."""
        key = self.graph.op_kinds()
        if key != self._reach_key:
            has = self.graph.has_op
            live = [(d, u) for anchors, d, u in self._reaches if anchors is None or has(*anchors)]
            self._reach = (max((d for d, _ in live), default=0), max((u for _, u in live), default=0))
            self._reach_key = key
        return self._reach

    @property
    def reach(self) -> int:
        return self._reach_now()[0]

    @property
    def reach_up(self) -> int:
        return self._reach_now()[1]

    # ------------------------------------------------------------ rounds
    def run_stage(self, states: list[_RuleState]) -> None:
        self._set_reach(s.rule for s in states)
        self.log.clear()
        self.termination.start_stage(self.fp, self.steps)
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
        cursors = [s.cursor for s in states if s.cursor is not None and isinstance(s.rule, Rule)]
        low = min(cursors, default=len(self.log))
        if low > 0:
            del self.log[:low]
            for s in states:
                if s.cursor is not None:
                    s.cursor -= low

    def _run_rule(self, st: _RuleState) -> None:
        rule = st.rule.name
        t0 = time.perf_counter()
        before = self.steps
        if self.progress is not None:
            self.progress(rule, "start", {"round": self.round})
        try:
            if isinstance(st.rule, Pass):
                if self._pass_due(st):
                    st.ctx.incremental = st.last_run is not None  # a stage's first run and confirmation: full
                    st.last_run = self.steps  # its own rewrites count as a change: it runs again next round,
                    self.run_pass(st)
                    if st.rule.idempotent:  # unless it reaches its own fixpoint in one run
                        st.last_run, st.last_rewires = self.steps, self.rewires
            else:
                self.run_node_rule(st)
        finally:
            dt = time.perf_counter() - t0
            self.report.seconds[rule] = self.report.seconds.get(rule, 0.0) + dt
        if self.steps != before:
            self._stop_if(self.termination.at_boundary(self.fp, self.steps))
        if self.progress is not None:
            self.progress(rule, "done", {"round": self.round, "count": self.report.counts.get(rule, 0),
                                         "seconds": self.report.seconds[rule], "nodes": len(self.graph)})

    def _pass_due(self, st: _RuleState) -> bool:
        """Whether a pass must run this round: first time, or the graph changed since it last started (by more
        than removals, for an idempotent pass that removals give no work)."""
        rule = st.rule
        assert isinstance(rule, Pass)
        if st.last_run is None:
            return True
        if st.last_run == self.steps:
            return False
        return rule.removals_give_work or not rule.idempotent or st.last_rewires != self.rewires

    def full_pass(self, st: _RuleState) -> None:
        """Visit every candidate of ``st.rule``, with a new context (in batches, for a rule that allows them)."""
        graph, rule = self.graph, st.rule
        assert isinstance(rule, Rule)
        st.ctx = Context(st.run_store)
        st.cursor = len(self.log)
        get = graph.get
        if rule.batch and not self.debug:
            batched_pass(self, st)
            return
        for node in rule.candidates(graph):
            name = node.name
            if get(name) is node:  # not removed/replaced by an earlier rewrite of this pass
                self.visit(st, node, name)

    def run_node_rule(self, st: _RuleState) -> None:
        graph, rule = self.graph, st.rule
        assert isinstance(rule, Rule)
        if st.cursor is None:  # first run: every candidate
            self.full_pass(st)
        while st.cursor < len(self.log):
            batch = dict.fromkeys(self.log[st.cursor:])
            st.cursor = len(self.log)
            for node in rule.candidates(graph, batch):
                name = node.name
                if graph.get(name) is node:
                    self.visit(st, node, name)

    def run_pass(self, st: _RuleState) -> None:
        rule = st.rule
        assert isinstance(rule, Pass)
        st.ctx.version = self.steps
        try:
            reps = rule.run(self.graph, st.ctx)
        except Exception as exc:  # noqa: BLE001 - reported with the rule's name
            self._rule_failed(st, "", exc, "run")
            return
        stat = self.report.stat(rule.name)
        refused = stat.errors
        for rep in reps or ():
            if rep is None or rep.is_empty():
                continue
            self.apply(st, rep, "", [])
        st.ctx.all_applied = stat.errors == refused  # (an invalid replacement is skipped under ignore_errors)
        rule.applied(self.graph, st.ctx)

    def visit(self, st: _RuleState, node: node_def_pb2.NodeDef, name: str | None = None) -> None:
        """Match, check and rewrite at ``node`` (called ``name``: a proto field read costs), and apply."""
        name = node.name if name is None else name
        found = self.rewrite_at(st, node, name)
        if found is not None:
            self.apply(st, found[0], name, found[1])

    def rewrite_at(self, st: _RuleState, node: node_def_pb2.NodeDef, name: str) -> tuple[Replacement, list[str]] | None:
        """Match, check and rewrite at ``node``: ``(replacement, matched node names)``, or ``None``."""
        rule = st.rule
        assert isinstance(rule, Rule)
        self.report.stat(rule.name).visited += 1
        try:
            m = rule.match_in(self.graph, node, st.ctx)
            if isinstance(m, str):
                return None
            if rule.check(m) is not None:
                return None
            rep = rule.rewrite(m)
        except Exception as exc:  # noqa: BLE001 - reported with the rule's name and the node
            self._rule_failed(st, name, exc, "match/check/rewrite")
            return None
        if rep is None or rep.is_empty():
            return None
        return rep, m.matched(node, name)

    def _rule_failed(self, st: _RuleState, anchor: str, exc: Exception, where: str) -> None:
        at = f" at node {anchor!r}" if anchor else ""
        if isinstance(exc, FixpointError):
            raise exc
        if st.ignore_errors:
            msg = f"rule {st.rule.name!r}{at}: {type(exc).__name__}: {exc}"
            log.info("ignoring error (ignore_errors=true): %s", msg)  # (listed in the report, which the CLI prints)
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
        sigs_before = self._sig_state
        recorded, removed, delta, changed = self.apply_recorded(rule.name, rep, f" at node {anchor!r}" if anchor else "")
        get, touched = graph.get, recorded.touched
        sigs_after = self._sig_state = self._signature_state() if recorded.renamed else sigs_before
        if sigs_after != sigs_before:  # a signature now names another tensor: a change no node shows
            delta ^= hash(sigs_before) ^ hash(sigs_after)
        if not changed and not removed and delta == 0 and sigs_after == sigs_before:
            self.report.stat(rule.name).noop += 1
            log.debug("rule %s at %s: the rewrite changed nothing", rule.name, anchor or "<global>")
            return
        self._book(rule.name, rep, anchor, matched, removed)
        self.fp ^= delta
        if isinstance(rule, Pass) and _FULL_SHARE * (len(changed) + len(touched)) > len(graph):
            for s in self.states:  # (marking most of the graph costs more than the full passes it stands for)
                s.cursor = None
        else:
            mark_near(self.graph, self.log.append, changed, touched, self.reach, self.reach_up)
        if self.debug:
            problems = graph.lint()
            if problems:
                raise RuleError(
                    f"rule {rule.name!r}{f' at node {anchor!r}' if anchor else ''} left the graph broken: "
                    + "; ".join(problems[:5])
                )
            bad = validate_nodes(n for n in (get(x) for x in (*changed, *(matched or ()))) if n is not None)
            if bad:
                raise RuleError(
                    f"rule {rule.name!r}{f' at node {anchor!r}' if anchor else ''} left nodes TensorFlow's C++ "
                    "loader would refuse: " + "; ".join(map(str, bad[:5])))
        self._stop_if(self.termination.after_step(self.fp, self.steps))

    def apply_recorded(self, rule: str, rep: Replacement, at: str) -> tuple[Delta, list[str], int, list[str]]:
        """Apply ``rep`` (rule ``rule``, ``at`` the anchor(s) for an error): ``(what it recorded, nodes removed,
        fingerprint delta, nodes changed or added)``; ``recorded.touched`` gets the replacement targets too."""
        graph = self.graph
        try:
            with graph.recording() as recorded:
                removed = apply_replacement(graph, rep)
        except GraphError as exc:
            raise RuleError(f"rule {rule!r}{at} produced an invalid rewrite: {exc}; the graph may be half-rewritten, "
                            "start again from the input") from exc
        delta, changed = self.hashes.change(recorded.before, graph.get)
        recorded.touched.update(map(node_name, set(rep.replace.values())))
        return recorded, removed, delta, changed

    def _book(self, rule: str, rep: Replacement, anchor: str, matched: list[str], removed: list[str]) -> None:
        """Count an applied rewrite and keep its record."""
        self.steps += 1
        if rep.add or rep.update or rep.replace or rep.replace_control:
            self.rewires += 1
        added_names = [n.name for n in rep.add] if rep.add else _NONE
        # Compact record (a 1M-node run keeps ~700k of them): empty lists share one tuple, the
        # replacement's own dict is kept (a Replacement is not reused after it was applied).
        rec = AppliedRewrite(rule, anchor, matched or _NONE, added_names,  # type: ignore[arg-type]
                             removed or _NONE, rep.replace,  # type: ignore[arg-type]
                             [n.name for n in rep.update] if rep.update else _NONE, self.steps, self.round)
        report = self.report
        report.applied.append(rec)
        report.counts[rule] = report.counts.get(rule, 0) + 1
        report.steps += 1
        stat = report.stat(rule)
        stat.applied += 1
        stat.added += len(added_names)
        stat.removed += len(removed)

    @staticmethod
    def _stop_if(reason: str | None) -> None:
        if reason is not None:
            raise FixpointError(reason)

    def _signature_state(self) -> tuple:
        """Every signature input/output and the tensors it names, as they are now."""
        return tuple((s.key, k, tuple(spec.tensor_names())) for s in self.graph.signatures.values()
                     for k, spec in (*s.inputs.items(), *s.outputs.items()))


def _stages(rules: Sequence[BaseRule]) -> list[list[int]]:
    """Indices of ``rules`` per stage: every non-final rule together, then each final rule alone, in order."""
    main = [i for i, r in enumerate(rules) if not r.final]
    finals = [[i] for i, r in enumerate(rules) if r.final]
    return ([main] if main else []) + finals


def run_pipeline(
    graph: Graph,
    rules: Sequence[BaseRule],
    *,
    max_steps: int | None = None,
    debug: bool = False,
    trace: str | os.PathLike[str] | IO[str] | None = None,
    progress: ProgressFn | None = None,
    confirm: bool | None = None,
) -> RunReport:
    """Run ``rules`` on ``graph`` (in place) to a fixpoint; see the module docstring.

    ``max_steps``: rewrites allowed before :class:`FixpointError` (default
    ``10 * len(graph) + 1000``). ``debug``: lint after every rewrite, check the
    nodes it changed or matched against their ``OpDef`` (:mod:`graphxform.core.validate`),
    and run a confirmation full pass at the end. ``trace``: write every applied rewrite
    as JSON lines there (also when the run fails). ``progress(rule, status,
    info)`` is called before and after each rule's turn. ``confirm``: end with
    a full pass of every rule (default: ``debug``).
    """
    for r in rules:
        if not isinstance(r, BaseRule):
            raise RuleError(f"run_pipeline takes Rule instances (rules or passes), got {r!r}: see build_pipeline")
    report = RunReport(nodes_before=len(graph), rules=list(dict.fromkeys(r.name for r in rules)))
    limit = max_steps if max_steps is not None else 10 * len(graph) + 1000
    engine = _Engine(graph, rules, report=report, max_steps=limit, debug=debug, progress=progress,
                     confirm=debug if confirm is None else confirm)
    t0 = time.perf_counter()
    # Rewrites allocate many short-lived, acyclic objects; the cyclic GC would rescan the whole (large,
    # long-lived) graph again and again — a quarter of the run time on a 1M-node graph. Paused for the run.
    graph.index_signatures()  # rules change signatures through replace_uses only, which keeps the index
    try:
        with gc_paused():
            for stage in _stages(rules):
                engine.run_stage([engine.states[i] for i in stage])
    except FixpointError as exc:
        exc.report = report  # type: ignore[attr-defined]
        raise
    finally:
        graph.index_signatures(False)
        report.total_seconds = time.perf_counter() - t0
        report.nodes_after = len(graph)
        if trace is not None:
            report.write_trace(trace)
    log.info("pipeline: %d rewrites in %d rounds, %d -> %d nodes, %.2fs", engine.steps, report.rounds,
             report.nodes_before, report.nodes_after, report.total_seconds)
    return report


__all__ = ["ProgressFn", "run_pipeline", "run_rule_once"]
