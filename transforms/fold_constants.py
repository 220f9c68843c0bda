"""``fold_constants``: evaluate every side-effect-free subgraph fed only by ``Const`` s, once, in one batch.

GTT name: ``fold_constants`` (same parameters: ``ignore_errors``,
``clear_output_shapes``, ``max_constant_size_in_bytes``, ``exclude_op``,
``exclude_node``). As GTT's, it folds ``Shape``/``Size``/``Rank`` of tensors
whose shape is statically known and removes what no output needs.
The evaluation engine lives in :mod:`graphxform.tf.constfold`. A later run
first checks, from what changed since the last one, whether it could find
anything (``transforms/_fold_state.py``): usually not, and then it costs
little.
"""
from __future__ import annotations

import logging

from graphxform import Context, Param, Pass, Replacement, const, register, with_inputs
from graphxform.core.frames import colocation_targets
from graphxform.core.graph import Graph
from graphxform.tf.constfold import FoldResult, evaluate_frontier, static_analysis

from ._fold_state import FoldState, facts_key
from ._graph_edits import consumers_first, held_nodes
from ._static_shapes import copy_with, static_shape_folds
from .strip_unused import needed_nodes

log = logging.getLogger(__name__)

MiB = 1024 * 1024


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
            shapes = {"_output_shapes": [value.tensor_shape]} if output_shapes else None
            if port == 0:
                rep.update.append(const(name, value, device=node.device, attrs=shapes))
            else:
                new = graph.unique_name(f"{name}/output_{port}")
                rep.add.append(const(new, value, device=node.device, attrs=shapes))
                rep.replace[f"{name}:{port}"] = f"{new}:0"
        if 0 not in ports:  # nothing keeps the name: the node goes (Const has no side effects to order after)
            if graph.control_consumers(name):
                rep.replace_control[name] = []
            rep.remove.append(name)
        reps.append(rep)
    if not reps:
        return reps
    behind = result.analysis.constant_ancestors(result.frontier) - set(result.frontier)
    behind -= colocation_targets(graph, behind | set(result.frontier)) | graph.protected_nodes()
    order = {n: i for i, n in enumerate(result.analysis.order)}
    last = reps[-1]
    for name in sorted(behind, key=lambda n: -order[n]):  # consumers first
        if graph.control_consumers(name):
            last.replace_control[name] = []
        last.remove.append(name)
    return reps


@register
class FoldConstants(Pass):
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
    idempotent = True
    removals_give_work = False
    params = {
        "ignore_errors": Param(bool, False, "leave nodes whose evaluation fails unfolded instead of failing"),
        "max_constant_size_in_bytes": Param(int, 10 * MiB, "largest output (bytes) a fold may create"),
        "clear_output_shapes": Param(bool, True, "ignore _output_shapes attrs when telling static shapes; new "
                                                 "Consts get none (false: use them, and new Consts get their "
                                                 "exact shape)"),
        "exclude_op": Param(list, [], "op types never folded (GTT)"),
        "exclude_node": Param(list, [], "node names never folded (GTT)"),
    }

    @staticmethod
    def _known(graph: Graph, ctx: Context) -> tuple[dict[str, str], dict[str, str]]:
        """What evaluation dropped earlier in the run (kind "excluded" or "kept"), for the nodes still unchanged:
        they are not evaluated again."""
        excluded: dict[str, str] = {}
        kept: dict[str, str] = {}
        for name, (blob, kind, reason) in ctx.get("dropped", {}).items():
            node = graph.get(name)
            if node is not None and node.SerializeToString(deterministic=True) == blob:
                (excluded if kind == "excluded" else kept)[name] = reason
        return excluded, kept

    def _excluded_by_params(self, graph: Graph) -> dict[str, str]:
        """The nodes ``exclude_op``/``exclude_node`` keep from folding, with the reason."""
        ops, names = set(self.args["exclude_op"]), set(self.args["exclude_node"])
        if not ops and not names:
            return {}
        return {n.name: f"{n.name!r} is excluded by " + (f"exclude_op={n.op}" if n.op in ops else
                                                        f"exclude_node={n.name}")
                for n in graph if n.op in ops or n.name in names}

    @staticmethod
    def _unused(graph: Graph, ctx: Context) -> dict[str, str]:
        """Nodes no signature or protected node needs (GTT's ``RemoveUnusedNodes``): not evaluated, removed."""
        needed = needed_nodes(graph, ctx)
        if needed is None:
            return {}
        return {n: f"{n!r} is not needed by any output (fold_constants removes it)" for n in graph.node_names
                if n not in needed}

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        state: FoldState | None = ctx.pop("fold_state")
        key = facts_key(graph)
        unknown = ctx.cached("shape_ops_not_foldable", dict)
        use_output_shapes = not self.args["clear_output_shapes"]
        if ctx.incremental and state is not None and state.quiet(graph, key):
            if static_shape_folds(graph, {}, use_output_shapes=use_output_shapes, unknown=unknown) is None:
                ctx.set("fold_state", state)
                return []
        seen = held_nodes(graph)
        excluded, kept = self._known(graph, ctx)
        unused = self._unused(graph, ctx)
        skip = {**self._excluded_by_params(graph), **unused}
        excluded.update(skip)
        shapes = static_shape_folds(graph, skip, use_output_shapes=use_output_shapes, unknown=unknown)
        work = copy_with(graph, shapes) if shapes is not None else graph  # evaluated with the shapes folded
        result = evaluate_frontier(work, max_bytes=self.args["max_constant_size_in_bytes"],
                                   ignore_errors=self.args["ignore_errors"], excluded=excluded, kept=kept)
        store = ctx.cached("dropped", dict)
        for kind, dropped in (("excluded", result.excluded), ("kept", result.kept)):
            for name, reason in dropped.items():
                node = graph.get(name)
                if node is not None and name not in skip:  # parameters and unused-ness are looked at each run
                    store[name] = (node.SerializeToString(deterministic=True), kind, reason)
        reps = fold_replacements(work, result, output_shapes=not self.args["clear_output_shapes"])
        if reps:
            log.info("fold_constants: %d nodes folded (%d session runs; %d not evaluable, %d kept as they are)",
                     len(reps), result.session_runs, len(result.excluded), len(result.kept))
        if unused:  # GTT's fold_constants ends with RemoveUnusedNodes
            order, cyclic = consumers_first(graph, set(unused))
            reps.append(Replacement(update=[with_inputs(graph.node(n), []) for n in cyclic], remove=order))
            log.info("fold_constants: %d nodes no output needs are removed", len(unused))
        out = ([shapes] if shapes is not None else []) + reps
        constant = result.analysis.constant
        state = FoldState(seen, set(constant), {n for n in constant if n not in result.frontier
                                                and work.node(n).op != "Const"}, key)
        state.expect(out)
        ctx.set("fold_state", state)
        return out

    def applied(self, graph: Graph, ctx: Context) -> None:
        """Record the graph as the replacements left it (a refused replacement: the next run is a full one)."""
        state: FoldState | None = ctx.get("fold_state")
        if state is not None and state.pending and (not ctx.all_applied or not state.applied(graph)):
            ctx.pop("fold_state")

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        """For every node: why it does not fold, from the static analysis (nothing is evaluated)."""
        excluded, kept = self._known(graph, ctx)
        excluded.update({**self._excluded_by_params(graph), **self._unused(graph, ctx)})
        shapes = static_shape_folds(graph, excluded, use_output_shapes=not self.args["clear_output_shapes"])
        analysis = static_analysis(graph, max_bytes=self.args["max_constant_size_in_bytes"], excluded=excluded,
                                   kept=kept)
        frontier = analysis.frontier()
        out: dict[str, str | None] = {}
        for node in graph:
            name = node.name
            if node.op == "Const":
                out[name] = f"{name!r} is already a Const"
            elif shapes is not None and name in {n.name for n in shapes.update}:
                out[name] = None  # its input's shape is known statically
            elif (reason := analysis.reason(name)) is not None:
                out[name] = reason
            elif name not in frontier and not graph.consumers(name):
                out[name] = f"{name!r} has no outputs to fold (its control consumers need no ordering after constants)"
            else:
                out[name] = None
        return out


__all__ = ["FoldConstants", "fold_replacements"]
