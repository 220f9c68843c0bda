"""``remove_device`` (GTT): clear every node's device."""
from __future__ import annotations

from graphxform import Match, Replacement, Rule, copy_node, register


@register
class RemoveDevice(Rule):
    """Replaces the device of every node by none (``device: ""``), leaving placement to TensorFlow.

    GTT's ``remove_device``. Runs after the other rules, in the order given with the other GTT one-shot
    transforms (``final``).
    """

    name = "remove_device"
    final = True

    def check(self, match: Match) -> str | None:
        return None if match.anchor.device else f"{match.anchor.name!r} has no device"

    def rewrite(self, match: Match) -> Replacement:
        node = copy_node(match.anchor)
        node.device = ""
        return Replacement(update=[node])


__all__ = ["RemoveDevice"]
