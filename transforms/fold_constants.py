"""``fold_constants``: evaluate every side-effect-free subgraph fed only by ``Const`` s, once, in one batch.

GTT name: ``fold_constants`` (same parameters: ``ignore_errors``,
``clear_output_shapes``; ``max_constant_size_in_bytes`` is ours).
The evaluation engine lives in :mod:`graphxform.tf.constfold`.
"""
from __future__ import annotations

import logging
import weakref

from tensorflow.core.framework import node_def_pb2

from graphxform.tf.constfold import ConstantAnalysis, FoldResult, const_node, evaluate_frontier, static_analysis
from graphxform.core.graph import Graph
from graphxform.engine.rule import Match, Param, Replacement, Rule, register

log = logging.getLogger(__name__)

MiB = 1024 * 1024


def _colocation_targets(graph: Graph, ignore: set[str]) -> set[str]:
    """Nodes that a node outside ``ignore`` names in its ``_class`` colocation attr."""
    out: set[str] = set()
    for node in graph:
        if node.name not in ignore and "_class" in node.attr:  # (indexing a proto map would insert the key)
            out.update(loc[5:].decode() for loc in node.attr["_class"].list.s if loc.startswith(b"loc:@"))
    return out


def fold_replacements(graph: Graph, result: FoldResult, *, output_shapes: bool = False) -> list[Replacement]:
    """The replacements that put ``result`` 's values into the graph: one per frontier node.

    Output 0 of a frontier node becomes a ``Const`` of the same name (consumers,
    control consumers, signatures and fetch-by-name keep working); any other
    used output ``p`` becomes a new ``Const`` ``<name>/output_<p>`` and its
    consumers (and signatures) move to it. The last replacement also removes
    the constant subgraph behind the frontier (nodes still read elsewhere,
    protected or colocation targets stay) and drops control edges from it
    (it has no side effects, so nothing needs ordering after it).
    """
    reps: list[Replacement] = []
    for name, ports in result.frontier.items():
        node = graph.node(name)
        rep = Replacement()
        for port in ports:
            value = result.values[f"{name}:{port}"]
            if port == 0:
                rep.update.append(const_node(name, value, device=node.device, output_shapes=output_shapes))
            else:
                new = graph.unique_name(f"{name}/output_{port}")
                rep.add.append(const_node(new, value, device=node.device, output_shapes=output_shapes))
                rep.replace[f"{name}:{port}"] = f"{new}:0"
        if 0 not in ports:  # nothing keeps the name: the node goes (Const has no side effects to order after)
            if graph.control_consumers(name):
                rep.replace_control[name] = []
            rep.remove.append(name)
        reps.append(rep)
    if not reps:
        return reps
    behind = result.analysis.constant_ancestors(result.frontier) - set(result.frontier)
    behind -= _colocation_targets(graph, behind | set(result.frontier)) | graph.protected_nodes()
    order = {n: i for i, n in enumerate(result.analysis.order)}
    last = reps[-1]
    for name in sorted(behind, key=lambda n: -order[n]):  # consumers first
        if graph.control_consumers(name):
            last.replace_control[name] = []
        last.remove.append(name)
    return reps


def _fingerprint(graph: Graph) -> tuple[int, ...]:
    """Changes whenever a node is added, removed or replaced (Graph stores a new NodeDef on every change)."""
    return tuple(id(n) for n in graph)


@register
class FoldConstants(Rule):
    """Replaces ``Add(Const a, Const b)`` (any stateless subgraph fed only by Consts) by ``Const(a + b)``.

    Every node whose inputs (data and control) all come, transitively, from
    ``Const`` s is evaluated — all of them in ONE TensorFlow ``session.run``
    per round — and each output that a non-constant node or a signature reads
    becomes a ``Const`` (output 0 keeps the node's name; output ``p`` becomes
    ``<name>/output_<p>``). The constant subgraph behind them is removed.
    Never folded: stateful, random and unknown ops, Placeholders (incl.
    ``PlaceholderWithDefault``) and signature inputs, TF1/TF2 control flow and
    function calls, resource/variant/ref producers, protected nodes (init op,
    tables, assets), nodes on a TF1 loop cycle, and outputs bigger than
    ``max_constant_size_in_bytes`` — known from TensorFlow's static shape
    inference before anything is evaluated, so ``Fill([100000, 100000])`` is
    refused without allocating it. An ``Identity`` of a ``Const`` that other
    nodes also read is left to ``remove_identity`` (folding would copy it).
    With ``ignore_errors=true`` a node that TensorFlow refuses is left as is;
    otherwise the rule fails naming it.
    """

    name = "fold_constants"
    aliases = ("fold_constants",)
    global_rule = True
    idempotent = True
    params = {
        "ignore_errors": Param(bool, False, "leave nodes whose evaluation fails unfolded instead of failing"),
        "max_constant_size_in_bytes": Param(int, 10 * MiB, "largest output (bytes) a fold may create"),
        "clear_output_shapes": Param(bool, True, "GTT compatibility: new Consts get no _output_shapes attr "
                                                 "(false: they get their exact shape)"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        # {graph: {node: (serialized NodeDef, kind, reason)}}: what evaluation dropped (kind "excluded" or
        # "kept"); not retried while the node is unchanged.
        self._dropped: weakref.WeakKeyDictionary[Graph, dict[str, tuple[bytes, str, str]]] = \
            weakref.WeakKeyDictionary()
        self._analysis: weakref.WeakKeyDictionary[Graph, tuple[tuple[int, ...], ConstantAnalysis]] = \
            weakref.WeakKeyDictionary()

    def _known(self, graph: Graph) -> tuple[dict[str, str], dict[str, str]]:
        excluded: dict[str, str] = {}
        kept: dict[str, str] = {}
        for name, (blob, kind, reason) in self._dropped.get(graph, {}).items():
            node = graph.get(name)
            if node is not None and node.SerializeToString(deterministic=True) == blob:
                (excluded if kind == "excluded" else kept)[name] = reason
        return excluded, kept

    def _remember(self, graph: Graph, result: FoldResult) -> None:
        store = self._dropped.setdefault(graph, {})
        for kind, dropped in (("excluded", result.excluded), ("kept", result.kept)):
            for name, reason in dropped.items():
                node = graph.get(name)
                if node is not None:
                    store[name] = (node.SerializeToString(deterministic=True), kind, reason)

    def _fold(self, graph: Graph, only: set[str] | None = None) -> list[Replacement]:
        excluded, kept = self._known(graph)
        result = evaluate_frontier(
            graph,
            max_bytes=self.args["max_constant_size_in_bytes"],
            ignore_errors=self.args["ignore_errors"],
            excluded=excluded,
            kept=kept,
            only=only,
        )
        self._remember(graph, result)
        reps = fold_replacements(graph, result, output_shapes=not self.args["clear_output_shapes"])
        if reps:
            log.info("fold_constants: %d nodes folded (%d session runs; %d not evaluable, %d kept as they are)",
                     len(reps), result.session_runs, len(result.excluded), len(result.kept))
        return reps

    def run_global(self, graph: Graph) -> list[Replacement]:
        return self._fold(graph)

    # ---- node-by-node view, used by --explain
    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Match | str:
        """Every node is a candidate; :meth:`check` says whether (and why not) it folds."""
        return Match(graph, node, {"anchor": node}, dict(self.args))

    def _analysis_for(self, graph: Graph) -> ConstantAnalysis:
        """The static analysis (no evaluation) of the graph as it is, cached until it changes."""
        key = (len(self._dropped.get(graph, {})), *_fingerprint(graph))
        cached = self._analysis.get(graph)
        if cached is None or cached[0] != key:
            excluded, kept = self._known(graph)
            analysis = static_analysis(graph, max_bytes=self.args["max_constant_size_in_bytes"],
                                       excluded=excluded, kept=kept)
            cached = self._analysis[graph] = (key, analysis)
        return cached[1]

    def check(self, match: Match) -> str | None:
        graph, node = match.graph, match.anchor
        name = node.name
        if node.op == "Const":
            return f"{name!r} is already a Const"
        analysis = self._analysis_for(graph)
        reason = analysis.reason(name)
        if reason:
            return reason
        if name not in analysis.frontier() and not graph.consumers(name):
            return f"{name!r} has no outputs to fold (its control consumers need no ordering after constants)"
        return None

    def rewrite(self, match: Match) -> Replacement:
        """Fold the anchor alone (the batched path is :meth:`run_global`)."""
        reps = self._fold(match.graph, only={match.anchor.name})
        out = Replacement()
        for rep in reps:
            out.add += rep.add
            out.update += rep.update
            out.replace.update(rep.replace)
            out.replace_control.update(rep.replace_control)
            out.remove += rep.remove
        return out


__all__ = ["FoldConstants", "fold_replacements"]
