"""Passes: whole-graph work — strip what is unused, merge duplicates, fold constants — as the runner runs it.

A pass looks at the whole graph at once and returns the replacements for it (``run(graph, ctx)``); the
runner applies them as it applies a rule's, runs the pass once per round, and only when the graph changed
since it last ran. ``explain(graph, ctx)`` says, for every node the pass considers, why it leaves it alone
(``None``: it would change it): what ``graphxform transform --explain`` prints. Caches live in ``ctx``, the
run's :class:`~graphxform.engine.context.Context`, never on the pass object.

A pass may keep what it learned about the graph in ``ctx`` and, on its next run, look again only at what changed
since (``ctx.incremental`` says when it may). The runner calls :meth:`Pass.applied` once its replacements are
applied, so the pass can record the graph as its own rewrites left it. What changed is told by the ``NodeDef``
objects themselves: the Graph stores a new one for every change, so a node whose object is the one the pass saw
is unchanged.
"""
from __future__ import annotations

from typing import ClassVar

from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.engine.context import Context
from graphxform.engine.rule import BaseRule, Replacement


class Pass(BaseRule):
    """Whole-graph work: :meth:`run` returns the replacements for the graph as it is; :meth:`explain` says why
    each node it considers is left alone.

    ``idempotent``: one :meth:`run` reaches the pass's own fixpoint (running it again right after finds
    nothing), so the runner runs it again only when another rule changed the graph.

    ``removals_give_work``: whether removing nodes, with nothing else changed (what ``strip_unused`` does), can
    give the pass something new to do. When ``False``, an idempotent pass is not run again after rounds in
    which the other rules only removed nodes: no two nodes become duplicates, and no node becomes constant,
    because other nodes went away. (What a removal alone can free — a colocation constraint or a second reader
    of a constant gone — waits for the next run another change causes: at worst a node left that could have gone, never a wrong result.)
    """

    whole_graph: ClassVar[bool] = True
    idempotent: ClassVar[bool] = False
    removals_give_work: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        """The replacements for the whole graph this round (empty: nothing to do)."""
        raise NotImplementedError(f"pass {self.name!r} defines no run")

    def applied(self, graph: Graph, ctx: Context) -> None:
        """Called by the runner after the replacements of :meth:`run` were applied; ``ctx.all_applied`` is false
        when one was refused (invalid, skipped under ``ignore_errors``). Does nothing by default."""

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        """``{node: reason it is left alone, or None}``; by default the nodes :meth:`run` would change."""
        out: dict[str, str | None] = {}
        for rep in self.run(graph, ctx) or ():
            if rep is None or rep.is_empty():
                continue
            for name in [*rep.remove, *(n.name for n in rep.update), *(parse_input(t)[0] for t in rep.replace)]:
                out[name] = None
        return out


__all__ = ["Pass"]
