"""``rename_op`` (GTT): change the op type of every node of one type."""
from __future__ import annotations

from graphxform import Match, Param, Replacement, Rule, copy_node, register
from graphxform.core.errors import RuleError


@register
class RenameOp(Rule):
    """Replaces the op ``old_op_name`` of every node by ``new_op_name`` (inputs, attrs and names unchanged).

    GTT's ``rename_op(old_op_name=Mul, new_op_name=Multiply)``: used to move a graph to a custom kernel with the
    same interface. The new op is not checked against TensorFlow's registry (it may be a custom op the serving
    binary links in); the exporter's OpDef check refuses a SavedModel whose ops TensorFlow does not know. Runs
    after the other rules, in the order given with the other GTT one-shot transforms (``final``).
    """

    name = "rename_op"
    final = True
    params = {
        "old_op_name": Param(str, None, "the op type to rename"),
        "new_op_name": Param(str, None, "the op type it becomes"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if not self.args["old_op_name"] or not self.args["new_op_name"]:
            raise RuleError(f"rule {self.name!r} needs old_op_name and new_op_name, e.g. "
                            "rename_op(old_op_name=Mul, new_op_name=Multiply)")
        self.anchors = frozenset({self.args["old_op_name"]})  # type: ignore[misc]

    def check(self, match: Match) -> str | None:
        if self.args["old_op_name"] == self.args["new_op_name"]:
            return f"old_op_name and new_op_name are both {self.args['old_op_name']!r}"
        return None

    def rewrite(self, match: Match) -> Replacement:
        return Replacement(update=[copy_node(match.anchor, op=self.args["new_op_name"])])


__all__ = ["RenameOp"]
