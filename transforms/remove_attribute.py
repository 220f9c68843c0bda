"""``remove_attribute`` (GTT): delete one attribute from the nodes of one op type (or all)."""
from __future__ import annotations

from graphxform import Match, Param, Replacement, Rule, register, with_attrs
from graphxform.core.errors import RuleError


@register
class RemoveAttribute(Rule):
    """Replaces ``node{attr: {attribute_name: v, ...}}`` by ``node{attr: {...}}`` for ``op_name`` nodes (``*``: all).

    GTT's ``remove_attribute(op_name=Mul, attribute_name=foo)``, used to strip attributes an older TensorFlow
    does not know. Removing an attribute the op requires (without a default) makes the node invalid: the
    exporter's OpDef check refuses such a SavedModel. Runs after the other rules (``final``).
    """

    name = "remove_attribute"
    final = True
    params = {
        "op_name": Param(str, "*", "the op type whose nodes lose the attribute (* for every op)"),
        "attribute_name": Param(str, None, "the attribute to delete"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if not self.args["attribute_name"]:
            raise RuleError(f"rule {self.name!r} needs attribute_name, e.g. "
                            "remove_attribute(op_name=Mul, attribute_name=foo)")
        if self.args["op_name"] != "*":
            self.anchors = frozenset({self.args["op_name"]})  # type: ignore[misc]

    def check(self, match: Match) -> str | None:
        key = self.args["attribute_name"]
        return None if key in match.anchor.attr else f"{match.anchor.name!r} has no attribute {key!r}"

    def rewrite(self, match: Match) -> Replacement:
        return Replacement(update=[with_attrs(match.anchor, **{self.args["attribute_name"]: None})])


__all__ = ["RemoveAttribute"]
