"""``sort_by_execution_order`` (GTT): the GraphDef lists every node after its inputs -> nodes in execution order.

GTT's ``SortByExecutionOrder``: nodes without inputs are ready; the last one made ready is written next, and
a node becomes ready once all its inputs (data and control) are written — a ``Merge`` once one data input and
all its control inputs are. TensorFlow's importers accept any order; tools that read a GraphDef front to back
(and diffs between two runs) get one.
"""
from __future__ import annotations

import logging

from graphxform import Context, Pass, Replacement, parse_input, register
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph

log = logging.getLogger(__name__)


def execution_order(graph: Graph) -> list[str]:
    """The node names in GTT's execution order (a cycle is an error naming how many nodes it holds)."""
    names = graph.node_names
    index = {n: i for i, n in enumerate(names)}
    pending: list[int] = []
    outputs: list[list[int]] = [[] for _ in names]
    ready: list[int] = []
    for i, name in enumerate(names):
        inputs = list(graph.node(name).input)
        controls = sum(1 for s in inputs if s.startswith("^"))
        pending.append(controls + 1 if graph.node(name).op in ("Merge", "RefMerge") else len(inputs))
        if not inputs:
            ready.append(i)
        for s in inputs:
            outputs[index[parse_input(s)[0]]].append(i)
    order: list[str] = []
    while ready:
        o = ready.pop()
        order.append(names[o])
        for out in outputs[o]:
            pending[out] -= 1
            if pending[out] == 0:
                ready.append(out)
    if len(order) < len(names):
        raise RuleError(f"sort_by_execution_order: {len(names) - len(order)} nodes in a cycle")
    return order


@register
class SortByExecutionOrder(Pass):
    """Writes every node after its inputs, in GTT's order (``sort_by_execution_order``).

    Changes no node, only the order the GraphDef lists them in. Runs once, after the other rules (``final``).
    """

    name = "sort_by_execution_order"
    final = True

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        order = execution_order(graph)
        if order != list(graph.node_names):
            graph.reorder(order)
            log.info("sort_by_execution_order: %d nodes in execution order", len(order))
        return []

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        return {n: None for n in graph.node_names}


__all__ = ["SortByExecutionOrder", "execution_order"]
