"""``rename_attribute`` (GTT): rename one attribute of the nodes of one op type (or all)."""
from __future__ import annotations

from graphxform import Match, Param, Replacement, Rule, copy_node, register
from graphxform.core.errors import RuleError


@register
class RenameAttribute(Rule):
    """Replaces ``node{attr: {old_attribute_name: v}}`` by ``node{attr: {new_attribute_name: v}}`` for ``op_name``
    nodes (``*``: every op).

    GTT's ``rename_attribute(op_name=Mul, old_attribute_name=foo, new_attribute_name=bar)``: the value moves to
    the new key (replacing a value the new key had). Runs after the other rules (``final``).
    """

    name = "rename_attribute"
    final = True
    params = {
        "op_name": Param(str, "*", "the op type whose nodes are changed (* for every op)"),
        "old_attribute_name": Param(str, None, "the attribute to rename"),
        "new_attribute_name": Param(str, None, "its new name"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if not self.args["old_attribute_name"] or not self.args["new_attribute_name"]:
            raise RuleError(f"rule {self.name!r} needs old_attribute_name and new_attribute_name, e.g. "
                            "rename_attribute(op_name=Mul, old_attribute_name=foo, new_attribute_name=bar)")
        if self.args["op_name"] != "*":
            self.anchors = frozenset({self.args["op_name"]})  # type: ignore[misc]

    def check(self, match: Match) -> str | None:
        old, new = self.args["old_attribute_name"], self.args["new_attribute_name"]
        if old == new:
            return f"old_attribute_name and new_attribute_name are both {old!r}"
        return None if old in match.anchor.attr else f"{match.anchor.name!r} has no attribute {old!r}"

    def rewrite(self, match: Match) -> Replacement:
        old, new = self.args["old_attribute_name"], self.args["new_attribute_name"]
        node = copy_node(match.anchor)
        node.attr[new].CopyFrom(node.attr[old])
        del node.attr[old]
        return Replacement(update=[node])


__all__ = ["RenameAttribute"]
