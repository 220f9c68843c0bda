"""``remove_control_dependencies`` (GTT): drop every ``^name`` input."""
from __future__ import annotations

from graphxform import Match, Replacement, Rule, register, with_inputs
from graphxform.core.opdefs import CONTROL_FLOW_OPS


@register
class RemoveControlDependencies(Rule):
    """Replaces ``node(x, y, ^a, ^b)`` by ``node(x, y)``: every control dependency is dropped.

    GTT's ``remove_control_dependencies``, for inference graphs whose control edges only ordered training
    bookkeeping. Kept, with the reason ``--explain`` prints (GTT drops them too, and breaks the graph): the
    control inputs of nodes inside TF1 ``while_loop``/``cond`` frames and of control-flow ops (they tie a node to
    its frame), and of protected nodes that are not signature tensors — the init op and table initializers,
    whose control inputs are what they run.
    """

    name = "remove_control_dependencies"

    def check(self, match: Match) -> str | None:
        graph, node = match.graph, match.anchor
        name = node.name
        if not graph.control_inputs(name):
            return f"{name!r} has no control inputs"
        if node.op in CONTROL_FLOW_OPS:
            return f"{name!r} is control-flow op {node.op}"
        if name in graph.protected and not graph.signature_uses(name):
            return (f"{name!r} is protected (init op, table initializer or asset): its control inputs are what "
                    "it runs")
        if name in match.ctx.frame_facts(graph, [name]).in_frame:
            return f"{name!r} is inside a TF1 control-flow frame: its control inputs tie it to the frame"
        return None

    def rewrite(self, match: Match) -> Replacement:
        node = match.anchor
        return Replacement(update=[with_inputs(node, [i for i in node.input if not i.startswith("^")])])


__all__ = ["RemoveControlDependencies"]
