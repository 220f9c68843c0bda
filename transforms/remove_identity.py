"""``remove_identity``: drop pass-through ops (``Identity`` and friends), rewiring their consumers.

GTT name: ``remove_nodes(op=Identity, op=CheckNumerics)``.
"""
from __future__ import annotations

import logging

from tensorflow.core.framework import types_pb2

from graphxform import Match, NodeDef, Op, Param, Replacement, Rule, canon, parse_input, register, with_inputs
from graphxform.core.graph import Graph
from graphxform.core.opdefs import CONTROL_FLOW_OPS, FORWARDING_OPS
from graphxform.engine.context import Context

log = logging.getLogger(__name__)

_UNREMOVABLE_DTYPES = {types_pb2.DT_RESOURCE: "resource", types_pb2.DT_VARIANT: "variant"}


@register
class RemoveIdentity(Rule):
    """Replaces ``Identity(x) -> y`` by ``x -> y`` (control inputs of the Identity move to its consumers).

    ``IdentityN`` output ``i`` is replaced by its input ``i``. Also handles the
    other pass-through ops given in ``op`` (``Snapshot``, ``StopGradient``,
    ``CheckNumerics``, ``PreventGradient``), and, as GTT's ``remove_nodes``,
    any other op with 1..``max_inputs`` data inputs whose output 0 alone is
    read: it is replaced by its first input (``op=FakeQuantWithMinMaxVars,
    max_inputs=3``); not when that would change the dtype. An Identity that is a signature
    output is removed by pointing the signature at its input. Not removed:
    nodes inside TF1 control-flow frames or next to control-flow ops,
    colocation targets and nodes with a ``_class`` naming other nodes than their inputs (a variable's
    ``read`` Identity, colocated with the variable it reads, goes: its consumers read the variable's ref
    output, which TensorFlow dereferences), resource/variant tensors, signature inputs, protected nodes
    (init op, tables), signature outputs that carry control dependencies, and dangling pass-throughs with
    no consumer (they may be fetched by name).
    """

    name = "remove_identity"
    aliases = ("remove_nodes",)
    # check and rewrite read the anchor, its producers (op, and for GTT removal output dtypes and which are Consts),
    # its consumers (op, inputs) and its out-edges, the signatures, graph.protected and the frame facts.
    batch = True
    pattern = Op("Identity", bind="identity")
    params = {
        "op": Param(list, ["Identity"], "ops to remove: pass-through ops (" + ", ".join(sorted(FORWARDING_OPS))
                    + ") forward input i to output i; any other op (GTT) is replaced by its first input"),
        "max_inputs": Param(int, 1, "GTT: remove an op that is not pass-through only when it has at most this "
                                    "many data inputs"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.pattern = Op("|".join(dict.fromkeys(self.args["op"])), bind="identity")  # type: ignore[misc]
        self.anchors = self.pattern.op_set  # type: ignore[misc]

    def check(self, match: Match) -> str | None:
        graph, node = match.graph, match.anchor
        name, op, inputs = node.name, node.op, node.input[:]  # (read once: a proto field read is not free; a slice
        # copies the field twice as fast as list())
        data = inputs if len(inputs) == 1 and inputs[0][:1] != "^" else [i for i in inputs if i[:1] != "^"]
        if not data:
            return f"{op} {name!r} has no data input"
        if op not in FORWARDING_OPS:
            reason = _generic_reason(graph, node, self.args["max_inputs"])
            if reason:
                return reason
        if name in graph.protected:
            return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
        attr = node.attr  # (fetched once)
        if "_class" in attr and not _colocated_with_input(node, data):
            locs = b", ".join(attr["_class"].list.s).decode(errors="replace")
            return f"{name!r} has a colocation constraint _class=[{locs}]"
        facts = match.ctx.frame_facts_at(graph, name)
        if name in facts.colocated_with:
            others = facts.colocated_with[name]
            return f"{', '.join(others[:3])} colocate with {name!r} (_class loc:@{name}); removing it breaks them"
        if name in facts.in_frame:
            return f"{name!r} is inside a TF1 control-flow frame (while_loop/cond); frame pivots must stay"
        get = graph.get
        flow = _has_control_flow(match.ctx, graph)  # (none in the graph: no producer or consumer op is read for it)
        for inp in data:
            src = get(inp if ":" not in inp else parse_input(inp)[0])
            if src is None:
                src = graph.node(parse_input(inp)[0])  # (raises the error naming the missing producer)
            if flow and src.op in CONTROL_FLOW_OPS:
                return f"input {inp!r} of {name!r} comes from control-flow op {src.op}"
        # The out-edges, read once from the view's adjacency ({consumer: {key: edge data}}), no Edge objects.
        out = graph.adjacency()[0].get(name) or {}
        for dst in out if flow else ():
            if (get(dst) or graph.node(dst)).op in CONTROL_FLOW_OPS:  # (the first in name order is named)
                dst = next(d for d in sorted(out) if graph.node(d).op in CONTROL_FLOW_OPS)
                return f"{name!r} feeds control-flow op {dst!r} ({graph.node(dst).op})"
        t_attr = attr.get("T")  # (indexing a proto map would insert the key)
        types = [] if t_attr is None else list(t_attr.list.type) if op == "IdentityN" else [t_attr.type]
        for t in types:
            if t in _UNREMOVABLE_DTYPES:
                return f"{name!r} passes a {_UNREMOVABLE_DTYPES[t]} tensor through; it may need a distinct op"
        uses = graph.signature_uses(name)
        for sig, side, key, _ in uses:
            if side == "input":
                return f"{name!r} is signature {sig.key!r} input {key!r} (a feed point)"
        sig_out = [(sig, key, port) for sig, _, key, port in uses]
        ports: set[int] = set()
        ctrl_set: set[str] = set()
        for dst, edges in out.items():
            for d in edges.values():
                if d["control"]:
                    ctrl_set.add(dst)
                else:
                    ports.add(d["src_port"])
        ctrl_users = sorted(ctrl_set)
        if not ports and not sig_out and not ctrl_users:
            return (f"{name!r} has no consumers: it may be a graph output fetched by name "
                    "(strip_unused removes dead code)")
        ctrl = [i[1:] for i in inputs if i[:1] == "^"] if data is not inputs else []
        if sig_out and ctrl:
            return (f"{name!r} is a signature output with control dependencies "
                    f"({', '.join(ctrl[:3])}); fetching its input would skip them")
        # What the rewrite needs, found on the way (the graph does not change between check and rewrite).
        used = ports | {port for _, _, port in sig_out} if sig_out else ports
        match.extra["remove_identity"] = (node, data, ctrl, used, ctrl_users, op)
        for sig, key, port in sig_out:
            new = canon(data[port])
            if any(canon(t) == new for spec in sig.inputs.values() for t in spec.tensor_names()):
                return f"signature {sig.key!r} output {key!r} would name its own input {new!r}"
            for other_key, spec in sig.outputs.items():
                if other_key != key and any(canon(t) == new for t in spec.tensor_names()):
                    return (f"signature {sig.key!r} outputs {key!r} and {other_key!r} would both name {new!r}; "
                            f"the {node.op} gives {key!r} a distinct tensor")
        return None

    def rewrite(self, match: Match) -> Replacement:
        graph, node = match.graph, match.anchor
        name = node.name
        found = match.extra.get("remove_identity")
        if found is not None and found[0] is node:
            _, data, ctrl, ports, ctrl_users, op = found
        else:
            data, ctrl, ctrl_users = graph.data_inputs(name), graph.control_inputs(name), graph.control_consumers(name)
            ports = graph.output_ports(name) | {port for _, side, _, port in graph.signature_uses(name)
                                                if side == "output"}
            op = node.op
        # (``canon`` of each input, the common ``"node"`` form, output 0, without parsing it)
        rep = Replacement(replace={f"{name}:{port}": canon(data[port]) if ":" in data[port] else data[port] + ":0"
                                   for port in sorted(ports)}, remove=[name])
        forwarding = op in FORWARDING_OPS
        if ctrl:  # data consumers keep the ordering the Identity gave them
            for dst in sorted({d for d, _ in graph.consumers(name)}):
                consumer = graph.node(dst)
                have = {parse_input(i)[0] for i in consumer.input if parse_input(i)[0] != name}
                extra = [c for c in ctrl if c not in have and c != dst]
                if extra:
                    rep.update.append(with_inputs(consumer, [*consumer.input, *("^" + c for c in extra)]))
        if ctrl_users:
            sources = [parse_input(t)[0] for t in data]
            rep.replace_control[name] = list(dict.fromkeys([*(sources if forwarding else sources[:1]), *ctrl]))
        if not forwarding:  # GTT drops the other inputs; here the Consts nothing else reads go
            rep.remove.extend(n for n in graph.input_nodes(name)[1:] if graph.node(n).op == "Const")
        return rep


def _has_control_flow(ctx: Context, graph: Graph) -> bool:
    """Whether some node of ``graph`` runs a control-flow op (the op index answers; kept in ``ctx`` until the set of
    ops the graph holds changes: :meth:`~graphxform.core.graph.Graph.op_kinds`)."""
    kinds = graph.op_kinds()
    kept = ctx.get("remove_identity.control_flow")
    if kept is None or kept[0] is not graph or kept[1] != kinds:
        kept = (graph, kinds, graph.has_op(*CONTROL_FLOW_OPS))
        ctx.set("remove_identity.control_flow", kept)
    return kept[2]


def _colocated_with_input(node: NodeDef, data: list[str]) -> bool:
    """Whether ``node`` 's ``_class`` only colocates it with the producers of its own data inputs (a TF1 variable's
    ``read`` Identity: ``_class: loc:@w``, reading ``w``): its consumers then read the tensor where it is anyway."""
    return set(node.attr["_class"].list.s) <= {b"loc:@" + parse_input(i)[0].encode() for i in data}


def _generic_reason(graph: Graph, node: NodeDef, max_inputs: int) -> str | None:
    """Why an op that is not pass-through cannot be replaced by its first input (GTT's ``remove_nodes``), or
    ``None``: it needs 1..``max_inputs`` data inputs, only its output 0 may be read, and that output must have
    the first input's dtype."""
    name, data = node.name, graph.data_inputs(node.name)
    if len(data) > max_inputs:
        return f"{node.op} {name!r} has {len(data)} data inputs, more than max_inputs={max_inputs}"
    used = graph.output_ports(name) | {port for _, side, _, port in graph.signature_uses(name) if side == "output"}
    if used - {0}:
        return f"outputs {sorted(used - {0})} of {name!r} are read; only output 0 can become its first input"
    out_type, in_type = graph.output_dtype(f"{name}:0"), graph.output_dtype(data[0])
    if out_type is not None and in_type is not None and out_type != in_type:
        return f"{name!r} outputs {types_pb2.DataType.Name(out_type)} but reads {types_pb2.DataType.Name(in_type)}"
    return None


__all__ = ["RemoveIdentity"]
