"""``set_device`` (GTT): put every node (or every node without a device) on one device."""
from __future__ import annotations

from graphxform import Match, Param, Replacement, Rule, copy_node, register


@register
class SetDevice(Rule):
    """Replaces the device of every node by ``device`` (``if_default=true``: only of nodes that have none).

    GTT's ``set_device(device=/device:GPU:0, if_default=false)``. Runs after the other rules, in the order given
    with the other GTT one-shot transforms (``final``), so nodes the other rules create get the device too.
    """

    name = "set_device"
    final = True
    params = {
        "device": Param(str, "", "the device string, e.g. /device:CPU:0 (empty: no device)"),
        "if_default": Param(bool, False, "only set it on nodes that have no device"),
    }

    def check(self, match: Match) -> str | None:
        node = match.anchor
        if node.device == self.args["device"]:
            return f"{node.name!r} is already on {node.device or 'no device'!r}"
        if self.args["if_default"] and node.device:
            return f"{node.name!r} has a device ({node.device!r}) and if_default=true"
        return None

    def rewrite(self, match: Match) -> Replacement:
        node = copy_node(match.anchor)
        node.device = self.args["device"]
        return Replacement(update=[node])


__all__ = ["SetDevice"]
