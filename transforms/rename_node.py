"""``rename_node`` (GTT): give one node another name, and every reference to it."""
from __future__ import annotations

from graphxform import Context, Param, Pass, Replacement, register
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph

from ._graph_edits import rename_replacement


@register
class RenameNode(Pass):
    """Replaces node ``old_node_name`` by the same node named ``new_node_name`` (every input, ``^control``
    input, colocation entry and signature tensor naming it follows).

    GTT's ``rename_node(old_node_name=super/deep/output, new_node_name=output)``. A name already taken is an
    error, as in GTT. A protected node that is not a signature tensor (the init op, a table initializer, an
    asset path) is not renamed: the SavedModel names it. A missing ``old_node_name`` renames nothing. Runs after
    the other rules, in the order given with the other GTT one-shot transforms (``final``).
    """

    name = "rename_node"
    final = True
    idempotent = True
    params = {
        "old_node_name": Param(str, None, "the node to rename"),
        "new_node_name": Param(str, None, "its new name"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if not self.args["old_node_name"] or not self.args["new_node_name"]:
            raise RuleError(f"rule {self.name!r} needs old_node_name and new_node_name, e.g. "
                            "rename_node(old_node_name=super/deep/output, new_node_name=output)")

    def _reason(self, graph: Graph) -> str | None:
        old, new = self.args["old_node_name"], self.args["new_node_name"]
        if old not in graph:
            return f"no node is named {old!r}"
        if old == new:
            return f"{old!r} already has that name"
        if old in graph.protected and not graph.signature_uses(old):
            return f"{old!r} is protected (init op, table initializer or asset): the SavedModel names it"
        return None

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        old, new = self.args["old_node_name"], self.args["new_node_name"]
        if self._reason(graph) is not None:
            return []
        if new in graph:
            raise RuleError(f"rule {self.name!r}: cannot rename {old!r} to {new!r}: a node of that name exists")
        return [rename_replacement(graph, {old: new})]

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        old = self.args["old_node_name"]
        return {old: self._reason(graph)} if old in graph else {}


__all__ = ["RenameNode"]
