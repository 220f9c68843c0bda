"""``remove_identity``: drop pass-through ops (``Identity`` and friends), rewiring their consumers.

GTT name: ``remove_nodes(op=Identity, op=CheckNumerics)``.
"""
from __future__ import annotations

import logging
import weakref

from tensorflow.core.framework import node_def_pb2, types_pb2

from graphxform.core.errors import RuleError
from graphxform.core.frames import FrameFacts, frame_facts
from graphxform.core.graph import CONTROL_FLOW_OPS, Graph, parse_input
from graphxform.engine.rule import Match, Param, Replacement, Rule, register

log = logging.getLogger(__name__)

#: Ops whose output ``i`` is their data input ``i``, unchanged (at inference time).
PASS_THROUGH_OPS = frozenset(
    {"Identity", "IdentityN", "Snapshot", "StopGradient", "CheckNumerics", "PreventGradient"}
)
_UNREMOVABLE_DTYPES = {types_pb2.DT_RESOURCE: "resource", types_pb2.DT_VARIANT: "variant"}


def _dtype_name(dtype: int) -> str:
    return types_pb2.DataType.Name(dtype)


@register
class RemoveIdentity(Rule):
    """Replaces ``Identity(x) -> y`` by ``x -> y`` (control inputs of the Identity move to its consumers).

    ``IdentityN`` output ``i`` is replaced by its input ``i``. Also handles the
    other pass-through ops given in ``op`` (``Snapshot``, ``StopGradient``,
    ``CheckNumerics``, ``PreventGradient``). An Identity that is a signature
    output is removed by pointing the signature at its input. Not removed:
    nodes inside TF1 control-flow frames or next to control-flow ops,
    colocation targets and nodes with ``_class``, ref/resource/variant
    tensors, signature inputs, protected nodes (init op, tables), signature
    outputs that carry control dependencies, and dangling pass-throughs with
    no consumer (they may be fetched by name).
    """

    name = "remove_identity"
    aliases = ("remove_nodes",)
    anchors = frozenset({"Identity"})
    params = {
        "op": Param(list, ["Identity"], "pass-through ops to remove: " + ", ".join(sorted(PASS_THROUGH_OPS))),
        "max_inputs": Param(int, 1, "accepted for GTT compatibility; pass-through ops map input i to output i"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        bad = [op for op in self.args["op"] if op not in PASS_THROUGH_OPS]
        if bad:
            raise RuleError(
                f"rule {self.name!r}: op={','.join(bad)} is not a pass-through op; "
                f"choose from {', '.join(sorted(PASS_THROUGH_OPS))} (PlaceholderWithDefault is a feed point "
                "and is never removed)"
            )
        self.anchors = frozenset(self.args["op"])  # type: ignore[misc]
        self._facts: weakref.WeakKeyDictionary[Graph, FrameFacts] = weakref.WeakKeyDictionary()

    # -------------------------------------------------------------- facts
    def candidates(self, graph: Graph, names=None):  # type: ignore[no-untyped-def]
        if names is None:  # a full pass: recompute the whole-graph facts once
            self._facts.pop(graph, None)
        return super().candidates(graph, names)

    def _facts_for(self, graph: Graph, name: str) -> FrameFacts:
        facts = self._facts.get(graph)
        if facts is None or name not in facts.known:
            facts = self._facts[graph] = frame_facts(graph)
        return facts

    # -------------------------------------------------------------- rule
    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Match | str:
        if node.op not in self.anchors:
            return f"{node.name!r} is {node.op}, not one of {', '.join(sorted(self.anchors))}"
        return Match(graph, node, {"anchor": node}, dict(self.args))

    def check(self, match: Match) -> str | None:
        graph, node = match.graph, match.anchor
        name = node.name
        data = graph.data_inputs(name)
        if not data:
            return f"{node.op} {name!r} has no data input"
        if name in graph.protected:
            return f"{name!r} is protected (init op, table initializer, asset or listed by the user)"
        if "_class" in node.attr:
            locs = b", ".join(node.attr["_class"].list.s).decode(errors="replace")
            return f"{name!r} has a colocation constraint _class=[{locs}]"
        facts = self._facts_for(graph, name)
        if name in facts.colocated_with:
            others = facts.colocated_with[name]
            return f"{', '.join(others[:3])} colocate with {name!r} (_class loc:@{name}); removing it breaks them"
        if name in facts.in_frame:
            return f"{name!r} is inside a TF1 control-flow frame (while_loop/cond); frame pivots must stay"
        for inp in data:
            src = graph.producer(inp)
            if src.op in CONTROL_FLOW_OPS:
                return f"input {inp!r} of {name!r} comes from control-flow op {src.op}"
        ports, control_users = match.extra["uses"] = self._uses(graph, name)
        for dst in graph.nx.adj[name]:
            if graph.node(dst).op in CONTROL_FLOW_OPS:
                return f"{name!r} feeds control-flow op {dst!r} ({graph.node(dst).op})"
        t_attr = node.attr["T"] if "T" in node.attr else None  # (indexing a proto map would insert the key)
        types = [] if t_attr is None else list(t_attr.list.type) if node.op == "IdentityN" else [t_attr.type]
        for t in types:
            if t in _UNREMOVABLE_DTYPES:
                return f"{name!r} passes a {_UNREMOVABLE_DTYPES[t]} tensor through; it may need a distinct op"
        for inp in data:
            dt = graph.output_dtype(inp)
            if dt is not None and dt > 100:
                return f"input {inp!r} of {name!r} is a ref tensor ({_dtype_name(dt)}); the Identity reads it"
        for sig in graph.signatures.values():
            for key, spec in sig.inputs.items():
                for t in spec.tensor_names():
                    if parse_input(t)[0] == name:
                        return f"{name!r} is signature {sig.key!r} input {key!r} (a feed point)"
        sig_out = self._signature_outputs(graph, name)
        if not ports and not sig_out and not control_users:
            return (f"{name!r} has no consumers: it may be a graph output fetched by name "
                    "(strip_unused removes dead code)")
        if sig_out and graph.control_inputs(name):
            return (f"{name!r} is a signature output with control dependencies "
                    f"({', '.join(graph.control_inputs(name)[:3])}); fetching its input would skip them")
        for sig, key, port in sig_out:
            new = self._source(graph, name, port)
            if any(_canon(t) == new for spec in sig.inputs.values() for t in spec.tensor_names()):
                return f"signature {sig.key!r} output {key!r} would name its own input {new!r}"
            for other_key, spec in sig.outputs.items():
                if other_key != key and any(_canon(t) == new for t in spec.tensor_names()):
                    return (f"signature {sig.key!r} outputs {key!r} and {other_key!r} would both name {new!r}; "
                            f"the {node.op} gives {key!r} a distinct tensor")
        return None

    def rewrite(self, match: Match) -> Replacement:
        graph, node = match.graph, match.anchor
        name = node.name
        ctrl = graph.control_inputs(name)
        rep = Replacement()
        used, control_users = match.extra.get("uses") or self._uses(graph, name)  # (check just read them)
        ports = used | {p for _, _, p in self._signature_outputs(graph, name)}
        for port in sorted(ports):
            rep.replace[f"{name}:{port}"] = self._source(graph, name, port)
        if ctrl:  # data consumers keep the ordering the Identity gave them
            for dst in sorted({d for d, _ in graph.consumers(name)}):
                consumer = graph.node(dst)
                have = {parse_input(i)[0] for i in consumer.input if parse_input(i)[0] != name}
                extra = [c for c in ctrl if c not in have and c != dst]
                if extra:
                    new = node_def_pb2.NodeDef()
                    new.CopyFrom(consumer)
                    new.input.extend("^" + c for c in extra)
                    rep.update.append(new)
        if control_users:
            rep.replace_control[name] = list(dict.fromkeys([*graph.input_nodes(name), *ctrl]))
        rep.remove.append(name)
        return rep

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _source(graph: Graph, name: str, port: int) -> str:
        """The tensor that output ``port`` of pass-through ``name`` forwards (canonical form)."""
        src, src_port, _ = parse_input(graph.data_inputs(name)[port])
        return f"{src}:{src_port}"

    @staticmethod
    def _uses(graph: Graph, name: str) -> tuple[set[int], bool]:
        """(output ports read by data consumers, whether any node has ``^name``)."""
        ports, control = set(), False
        for edges in graph.nx.adj[name].values():
            for d in edges.values():
                if d["control"]:
                    control = True
                else:
                    ports.add(d["src_port"])
        return ports, control

    @staticmethod
    def _signature_outputs(graph: Graph, name: str) -> list[tuple[object, str, int]]:
        out = []
        for sig in graph.signatures.values():
            for key, spec in sig.outputs.items():
                for t in spec.tensor_names():
                    n, p, _ = parse_input(t)
                    if n == name:
                        out.append((sig, key, p))
        return out


def _canon(t: str) -> str:
    n, p, _ = parse_input(t)
    return f"{n}:{p}"


__all__ = ["PASS_THROUGH_OPS", "RemoveIdentity"]
