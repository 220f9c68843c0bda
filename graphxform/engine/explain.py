"""``--explain``: for every node a rule or pass could start from, why it does not fire (``None``: it would)."""
from __future__ import annotations

from graphxform.core.graph import Graph
from graphxform.engine.context import Context
from graphxform.engine.passes import Pass
from graphxform.engine.rule import BaseRule, Rule


def explain(graph: Graph, rule: BaseRule) -> list[tuple[str, str | None]]:
    """``[(node, reason it does not fire)]``; reason ``None``: it would.

    A rule: every candidate node, with the pattern's (or ``match``'s) or the ``check``'s reason. A pass: what
    its :meth:`~graphxform.engine.passes.Pass.explain` says. Nothing is changed.
    """
    ctx = Context()
    if isinstance(rule, Pass):
        reasons = rule.explain(graph, ctx)
        if not reasons:
            return [("", f"pass {rule.name!r}: nothing to do on this graph")]
        return list(reasons.items())
    assert isinstance(rule, Rule)
    result: list[tuple[str, str | None]] = []
    for node in Rule.candidates(rule, graph):  # every anchor (a rule's own candidates() may skip hopeless ones)
        try:
            m = rule.match(graph, node)
            if isinstance(m, str):
                result.append((node.name, m))
                continue
            m.ctx = ctx
            result.append((node.name, rule.check(m)))
        except Exception as exc:  # noqa: BLE001 - explain reports, it does not stop
            result.append((node.name, f"the rule raised {type(exc).__name__}: {exc}"))
    return result


__all__ = ["explain"]
