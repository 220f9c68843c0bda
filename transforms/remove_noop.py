"""``remove_noop``: a ``NoOp`` that only relays control edges goes; its users wait for what it waited for.

Grappler's dependency optimizer does the same (``BypassingNodeIsBeneficial``): a ``NoOp`` is bypassed when that
does not add control edges (``inputs x users <= inputs + users``). No GTT name.
"""
from __future__ import annotations

from graphxform import Match, Op, Replacement, Rule, register
from graphxform.transforms._bypass import placement_reason


@register
class RemoveNoop(Rule):
    """Replaces ``y(^noop)``, ``noop = NoOp(^a, ^b)`` by ``y(^a, ^b)`` (a ``NoOp`` without inputs: by ``y``).

    Done when it does not add control edges: with ``n`` control inputs and
    ``m`` users, ``n * m <= n + m`` (a ``NoOp`` without inputs always goes).
    Not done: a protected ``NoOp`` (the init op, ``main_op``,
    ``legacy_init_op``, a table initializer group, a node the user listed),
    a ``NoOp`` with no users (it may be run by name; ``strip_unused`` removes
    dead code), inside a TF1 control-flow frame, with a ``_class``
    colocation constraint or colocated with, or with a data input.
    """

    name = "remove_noop"
    pattern = Op("NoOp", bind="noop")

    def check(self, match: Match) -> str | None:
        graph, node = match.graph, match.anchor
        name = node.name
        if name in graph.protected:
            return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
        if graph.data_inputs(name):
            return f"{name!r} has data inputs"
        users = graph.control_consumers(name)
        if not users:
            return f"{name!r} has no users: it may be run by name (strip_unused removes dead code)"
        reason = placement_reason(match, node)
        if reason:
            return reason
        n, m = len(graph.control_inputs(name)), len(users)
        if n * m > n + m:
            return (f"bypassing {name!r} would turn {n} + {m} control edges into {n} x {m} = {n * m} "
                    f"(users: {', '.join(users[:3])})")
        return None

    def rewrite(self, match: Match) -> Replacement:
        graph, name = match.graph, match.anchor.name
        return Replacement(replace_control={name: list(graph.control_inputs(name))}, remove=[name])


__all__ = ["RemoveNoop"]
