"""``add_default_attributes`` (GTT): every attr the op's OpDef defaults written into the NodeDef."""
from __future__ import annotations

from graphxform import Match, Replacement, Rule, copy_node, register
from graphxform.core.opdefs import op_def


def _missing(node):  # -> list of the op's attr defs with a default that the node lacks
    d = op_def(node.op)
    if d is None:
        return []
    return [a for a in d.attr if a.HasField("default_value") and a.name not in node.attr]


@register
class AddDefaultAttributes(Rule):
    """Replaces ``node{}`` by ``node{attr: <the OpDef's default>, ...}`` for every defaulted attr it lacks.

    GTT's ``add_default_attributes``: for code that reads NodeDef attrs directly (TensorFlow's importer fills
    the defaults itself). Attrs the node sets are kept; ops TensorFlow does not register and function calls are
    left alone. A SavedModel written afterwards still says ``stripped_default_attrs`` (true of any subset of
    the defaults). Runs once, after the other rules (``final``).
    """

    name = "add_default_attributes"
    final = True

    def check(self, match: Match) -> str | None:
        node = match.anchor
        if op_def(node.op) is None:
            return f"{node.op} {node.name!r} is not an op TensorFlow registers (a function call or a custom op)"
        return None if _missing(node) else f"{node.name!r} already has every defaulted attr of {node.op}"

    def rewrite(self, match: Match) -> Replacement:
        node = copy_node(match.anchor)
        for a in _missing(match.anchor):
            node.attr[a.name].CopyFrom(a.default_value)
        return Replacement(update=[node])


__all__ = ["AddDefaultAttributes"]
