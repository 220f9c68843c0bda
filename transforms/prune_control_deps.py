"""``prune_control_deps``: drop control edges that only order pure computations (Grappler's dependency optimizer).

A control edge ``y(..., ^c)`` makes ``y`` wait for ``c``. When neither ``c`` nor anything ``c`` depends on has a
side effect (no stateful op, no check that may stop the run, no control flow), waiting changes nothing that can be
observed: the edge goes. Frozen Keras models carry one such edge per weight (``^Const`` on the function's
``NoOp``); TF2 functions flattened into a graph hold every node of the function by control edges, so a node a
rule rewired away stays alive until they go (then ``strip_unused`` removes it). No GTT name.
"""
from __future__ import annotations

import logging

from graphxform import Context, NodeDef, Pass, Replacement, parse_input, register, with_inputs
from graphxform.core.graph import Graph
from graphxform.core.opdefs import CONTROL_OPS, HOST_OPS, is_random, is_stateful

log = logging.getLogger(__name__)

#: Stateless ops whose point is to stop the run when a condition fails: a control edge from one is a guard.
CHECK_OPS = frozenset({"CheckNumerics", "CheckNumericsV2", "EnsureShape", "Assert", "Print", "PrintV2"})


def impurity(graph: Graph, node: NodeDef) -> str | None:
    """Why running ``node`` may have an effect beyond computing its outputs (``None``: it is pure)."""
    op = node.op
    if op in CONTROL_OPS:
        return f"{node.name!r} is control flow or a function call ({op})"
    if op in CHECK_OPS:
        return f"{node.name!r} is a check ({op}) that may stop the run"
    if op in HOST_OPS:
        return f"{node.name!r} touches the host ({op})"
    if is_stateful(op) or is_random(op):
        return f"{node.name!r} is stateful ({op})"
    if node.name in graph.protected:
        return f"{node.name!r} is protected (init op, table initializer, asset or listed by the user)"
    return None


class Purity:
    """Which nodes are pure with everything they depend on (data and control), computed when asked, memoized."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.reason: dict[str, str | None] = {}  # node -> why it (or an ancestor) is impure; None: pure

    def why_impure(self, name: str) -> str | None:
        if name in self.reason:
            return self.reason[name]
        graph = self.graph
        # Iterative post-order over inputs; a node met again while on the stack is on a cycle (a TF1 loop).
        stack: list[tuple[str, bool]] = [(name, False)]
        on_stack: set[str] = set()
        while stack:
            n, expanded = stack.pop()
            if n in self.reason:
                continue
            node = graph.get(n)
            if node is None:
                self.reason[n] = f"{n!r} is missing"
                continue
            if expanded:
                on_stack.discard(n)
                why = impurity(graph, node)
                if why is None:
                    for inp in node.input:
                        src = parse_input(inp)[0]
                        up = self.reason.get(src, f"{src!r} is on a cycle")
                        if up is not None:
                            why = up
                            break
                self.reason[n] = why
                continue
            own = impurity(graph, node)
            if own is not None:  # no need to look further up
                self.reason[n] = own
                continue
            on_stack.add(n)
            stack.append((n, True))
            for inp in node.input:
                src = parse_input(inp)[0]
                if src not in self.reason and src not in on_stack:
                    stack.append((src, False))
        return self.reason[name]


def _plan(graph: Graph) -> dict[str, tuple[list[str], dict[str, str]]]:
    """{node: (control inputs it keeps, {dropped control input: why})} for every node that loses one."""
    purity = Purity(graph)
    out: dict[str, tuple[list[str], dict[str, str]]] = {}
    for node in graph.nodes_with_control_inputs():
        inputs = node.input
        data_srcs = {parse_input(i)[0] for i in inputs if i[:1] != "^"}
        keep: list[str] = []
        dropped: dict[str, str] = {}
        for inp in inputs:
            if inp[:1] != "^":
                continue
            src = inp[1:]
            if src in data_srcs:
                dropped[src] = f"{node.name!r} already reads {src!r} by a data edge"
            elif purity.why_impure(src) is None:
                dropped[src] = f"{src!r} and everything it depends on are pure: waiting for it changes nothing"
            else:
                keep.append(src)
        if dropped:
            out[node.name] = (keep, dropped)
    return out


@register
class PruneControlDeps(Pass):
    """Replaces ``y(..., ^c)`` by ``y(...)`` when ``c`` and all it depends on are pure.

    Pure: registered, stateless, not random, not control flow or a function
    call, not a check that may stop the run (``Assert``, ``CheckNumerics``,
    ``EnsureShape``), not an op that touches the host, not protected (init
    op, table initializers, assets) — and the same for every node ``c``
    depends on, by data or control edge. So a ``Const`` or a ``NoOp`` of
    constants goes, while an edge that orders a table lookup, a variable
    read or update, an assert, a table initializer or the init op stays.
    Also dropped: ``^c`` when ``y`` already reads ``c`` by a data edge.
    Nodes are never removed here: a node left without consumers is
    ``strip_unused`` 's to remove.
    """

    name = "prune_control_deps"
    idempotent = True

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        plan = _plan(graph)
        if not plan:
            return []
        rep = Replacement()
        for name, (keep, _) in plan.items():
            node = graph.node(name)
            data = [i for i in node.input if i[:1] != "^"]
            rep.update.append(with_inputs(node, [*data, *("^" + k for k in keep)]))
        log.debug("prune_control_deps: %d control edges dropped on %d nodes",
                  sum(len(d) for _, d in plan.values()), len(plan))
        return [rep]

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        """``{"y <- ^c": None (dropped) or why the edge stays}`` for every control edge."""
        plan = _plan(graph)
        purity = Purity(graph)
        out: dict[str, str | None] = {}
        for node in graph:
            dropped = plan.get(node.name, ([], {}))[1]
            for inp in node.input:
                if inp[:1] == "^":
                    src = inp[1:]
                    out[f"{node.name} <- ^{src}"] = None if src in dropped else f"kept: {purity.why_impure(src)}"
        return out


__all__ = ["CHECK_OPS", "PruneControlDeps", "Purity", "impurity"]
