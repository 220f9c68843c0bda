"""``remove_pass_through``: ``IdentityN``, ``StopGradient`` and ``PreventGradient`` are identities at inference.

Grappler's model pruner does the same (``SplitIdentityNInputs``, ``IsTrivialOp`` + ``ForwardInputs``): an
``IdentityN`` of a ``tf.custom_gradient`` (Keras' swish) or a ``StopGradient`` (``tf.nn.moments``) costs a node
and a kernel launch for nothing. ``remove_identity`` handles ``Identity``. No GTT name (GTT's
``remove_nodes(op=IdentityN)`` is ``remove_identity``).
"""
from __future__ import annotations

from tensorflow.core.framework import types_pb2

from graphxform import Graph, Match, NodeDef, Op, Param, Replacement, Rule, canon, parse_input, register, with_inputs
from graphxform.core.errors import RuleError
from graphxform.core.opdefs import CONTROL_FLOW_OPS, FORWARDING_OPS

#: The ops this rule may remove (``IdentityN``, ``PreventGradient``, ``StopGradient``): output ``i`` of each is its
#: input ``i`` at inference. ``Identity`` is ``remove_identity`` 's; ``CheckNumerics`` checks and ``Snapshot`` copies.
PASS_THROUGH = tuple(sorted(FORWARDING_OPS - {"Identity", "CheckNumerics", "Snapshot"}))
_UNREMOVABLE = {types_pb2.DT_RESOURCE: "resource", types_pb2.DT_VARIANT: "variant"}


@register
class RemovePassThrough(Rule):
    """Replaces ``IdentityN(x0, x1, ...)[i]`` by ``x_i``, ``StopGradient(x)`` and ``PreventGradient(x)`` by ``x``.

    Every data consumer of output ``i`` reads input ``i`` instead; the node
    goes once nothing reads it. Outputs that are signature tensors stay (the
    node stays for them, its other outputs are still forwarded). Control
    inputs of the node move to the consumers, and ``^node`` users wait for
    its inputs' producers instead, only when that does not add edges (``n``
    control inputs, ``m`` users: ``n * m <= n + m``, Grappler's rule).

    Not done: protected nodes (init op, tables, assets, listed by the user),
    signature inputs, ``_class`` colocation on or with the node, TF1
    control-flow frames and control-flow producers or consumers (a
    ``Switch`` output, a ``Merge``), resource/variant/ref tensors, and a
    node nothing reads (it may be fetched by name; ``strip_unused`` removes
    dead code).
    """

    name = "remove_pass_through"
    pattern = Op("|".join(PASS_THROUGH), bind="node")
    # match, check and rewrite read the node, its producers (op, output dtypes), its consumers (op, inputs) and
    # its out-edges, besides the signatures, graph.protected and the frame facts.
    batch = True
    params = {"op": Param(list, list(PASS_THROUGH), "which of " + ", ".join(PASS_THROUGH) + " to remove")}

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        bad = [op for op in self.args["op"] if op not in PASS_THROUGH]
        if bad:
            raise RuleError(f"rule {self.name!r}: op={','.join(bad)} is not one of {', '.join(PASS_THROUGH)} "
                            "(Identity is remove_identity's; CheckNumerics and Snapshot stay: they check or copy)")
        self.pattern = Op("|".join(dict.fromkeys(self.args["op"])), bind="node")  # type: ignore[misc]
        self.anchors = self.pattern.op_set  # type: ignore[misc]

    def match(self, graph: Graph, node: NodeDef) -> Match | str:
        m = super().match(graph, node)
        if isinstance(m, str):
            return m
        name = node.name
        sig_ports = set()
        for sig, side, key, port in graph.signature_uses(name):
            if side == "input":
                return f"{name!r} is signature {sig.key!r} input {key!r} (a feed point)"
            sig_ports.add(port)
        # the consumers that will read the inputs instead (a signature tensor's readers keep reading it)
        data_users = sorted({e.dst for e in graph.out_edges(name) if not e.control and e.src_port not in sig_ports})
        m.extra.update(sig_ports=sig_ports, data_users=data_users, ctrl_users=graph.control_consumers(name),
                       ctrl=graph.control_inputs(name))
        return m

    def check(self, match: Match) -> str | None:
        graph, node = match.graph, match.anchor
        name, ex = node.name, match.extra
        data = graph.data_inputs(name)
        if not data:
            return f"{node.op} {name!r} has no data input"
        if name in graph.protected:
            return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
        if "_class" in node.attr:
            return f"{name!r} has a colocation constraint (_class)"
        facts = match.ctx.frame_facts(graph, [name])
        if name in facts.colocated_with:
            return f"{', '.join(facts.colocated_with[name][:3])} colocate with {name!r}; removing it breaks them"
        if name in facts.in_frame:
            return f"{name!r} is inside a TF1 control-flow frame (while_loop/cond)"
        for inp in data:
            src = graph.producer(inp)
            if src.op in CONTROL_FLOW_OPS:
                return f"input {inp!r} of {name!r} comes from control-flow op {src.op}"
            dt = graph.output_dtype(inp)
            if dt in _UNREMOVABLE:
                return f"{name!r} passes a {_UNREMOVABLE[dt]} tensor through"
            if dt is not None and dt > 100:
                return f"input {inp!r} of {name!r} is a ref tensor"
        for dst in graph.consumer_nodes(name):
            if graph.node(dst).op in CONTROL_FLOW_OPS:
                return f"{name!r} feeds control-flow op {dst!r} ({graph.node(dst).op})"
        n = len(ex["ctrl"])
        if not ex["data_users"]:
            if not ex["ctrl_users"] and not ex["sig_ports"]:
                return f"{name!r} has no consumers: it may be fetched by name (strip_unused removes dead code)"
            if ex["sig_ports"]:
                return f"outputs {sorted(ex['sig_ports'])} of {name!r} are signature tensors; they stay"
            if not self._removable(match):
                m, k = len(ex["ctrl_users"]), len(self._sources(match))
                return (f"{name!r} is only used by control edges ({m}); moving them to its {k} inputs would add "
                        f"edges ({k} x {m} > {k} + {m})")
        users = len(ex["data_users"])
        if users and n and n * users > n + users:
            return (f"{name!r} has {n} control inputs and {users} consumers: moving them would add edges "
                    f"({n} x {users} > {n} + {users})")
        return None

    @staticmethod
    def _sources(match: Match) -> list[str]:
        """What ``^node`` users wait for instead: the inputs' producers and the node's control inputs."""
        graph, name = match.graph, match.anchor.name
        return list(dict.fromkeys([*graph.input_nodes(name), *match.extra["ctrl"]]))

    def _removable(self, match: Match) -> bool:
        """Whether the node can go once its data consumers read its inputs."""
        ex = match.extra
        if ex["sig_ports"]:
            return False
        m = len(ex["ctrl_users"])
        k = len(self._sources(match))
        return k * m <= k + m

    def rewrite(self, match: Match) -> Replacement:
        graph, node = match.graph, match.anchor
        name, ex = node.name, match.extra
        data = graph.data_inputs(name)
        rep = Replacement()
        for port in sorted(graph.output_ports(name) - ex["sig_ports"]):
            rep.replace[f"{name}:{port}"] = canon(data[port])
        if ex["ctrl"]:  # data consumers keep the ordering the node gave them
            for dst in ex["data_users"]:
                consumer = graph.node(dst)
                have = {parse_input(i)[0] for i in consumer.input}
                extra = [c for c in ex["ctrl"] if c not in have and c != dst]
                if extra:
                    rep.update.append(with_inputs(consumer, [*consumer.input, *("^" + c for c in extra)]))
        if self._removable(match):
            if ex["ctrl_users"]:
                rep.replace_control[name] = self._sources(match)
            rep.remove.append(name)
        return rep


__all__ = ["PASS_THROUGH", "RemovePassThrough"]
