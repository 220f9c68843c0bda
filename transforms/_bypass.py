"""Shared by the rules that make a node's consumers read another tensor (``x * 1 -> x``, ``Transpose`` pairs ...).

:func:`bypass_reason` says why ``node:0`` may not be replaced by ``new`` everywhere (``None``: it may);
:func:`placement_reason` why a node must stay where it is; :func:`bypass` is the replacement. Not a rule:
nothing is registered here.
"""
from __future__ import annotations

from graphxform import Graph, Match, NodeDef, Replacement, canon, parse_input
from graphxform.core.opdefs import CONTROL_FLOW_OPS


def bypass_reason(match: Match, node: NodeDef, new: str) -> str | None:
    """Why every use of ``node:0`` (consumers and signatures) may not read ``new`` instead, ``None`` if it may."""
    graph, name = match.graph, node.name
    new = canon(new)
    if name in graph.protected:
        return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
    if graph.control_inputs(name):
        return f"{name!r} has control inputs: its consumers would no longer wait for them"
    reason = placement_reason(match, node)
    if reason:
        return reason
    src = graph.get(parse_input(new)[0])
    if src is not None and src.op in CONTROL_FLOW_OPS:
        return f"{new!r} comes from control-flow op {src.op}"
    for dst in graph.consumer_nodes(name):
        if graph.node(dst).op in CONTROL_FLOW_OPS:
            return f"{name!r} feeds control-flow op {dst!r}"
    return signature_reason(graph, name, new)


def placement_reason(match: Match, node: NodeDef) -> str | None:
    """Why ``node`` must stay where it is (a colocation constraint of its own or on it, a TF1 control-flow
    frame), ``None`` if nothing ties it there."""
    name = node.name
    if "_class" in node.attr:
        return f"{name!r} has a colocation constraint (_class)"
    facts = match.ctx.frame_facts(match.graph, [name])
    if name in facts.colocated_with:
        return f"{', '.join(facts.colocated_with[name][:3])} colocate with {name!r}"
    if name in facts.in_frame:
        return f"{name!r} is inside a TF1 control-flow frame (while_loop/cond)"
    return None


def signature_reason(graph: Graph, name: str, new: str) -> str | None:
    """Why the signatures naming ``name:0`` cannot name ``new`` instead (``None``: they can)."""
    for sig, side, key, _ in graph.signature_uses(name):
        if side == "input":
            return f"{name!r} is signature {sig.key!r} input {key!r} (a feed point)"
        if any(canon(t) == new for spec in sig.inputs.values() for t in spec.tensor_names()):
            return f"signature {sig.key!r} output {key!r} would name its own input {new!r}"
        for other, spec in sig.outputs.items():
            if other != key and any(canon(t) == new for t in spec.tensor_names()):
                return f"signature {sig.key!r} outputs {key!r} and {other!r} would both name {new!r}"
    return None


def bypass(graph: Graph, node: NodeDef, new: str, remove: list[str] | None = None) -> Replacement:
    """Every use of ``node:0`` reads ``new``; ``^node`` users wait for ``new`` 's producer; ``node`` (and
    ``remove``) go once nothing reads them."""
    name = node.name
    rep = Replacement(replace={f"{name}:0": canon(new)}, remove=[name, *(remove or ())])
    if graph.control_consumers(name):
        rep.replace_control[name] = [parse_input(new)[0]]
    return rep


__all__ = ["bypass", "bypass_reason", "placement_reason", "signature_reason"]
