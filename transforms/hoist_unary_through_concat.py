"""``hoist_unary_through_concat``: apply an element-wise unary op once, after a concat, not on every input.

Grappler's arithmetic optimizer does the same (``HoistCWiseUnaryChainsStage``,
the concat half); a chain ``f(g(x))`` is hoisted one op per rewrite, the
fixpoint doing the rest. No GTT name.
"""
from __future__ import annotations

import logging
from typing import ClassVar

from graphxform import Graph, Match, NodeDef, Op, Param, Replacement, Rule, make_node, parse_input, register
from graphxform.core.opdefs import CONTROL_FLOW_OPS, FUSED_BATCH_NORM_OPS

log = logging.getLogger(__name__)

#: Element-wise unary ops whose output dtype is their input dtype, so ``f(concat(a, b)) == concat(f(a), f(b))``
#: holds element for element and the concat keeps its ``T``. Grappler's ``IsUnaryElementWise`` list less the
#: dtype-changing ops (``ComplexAbs``, ``Isinf``, ``Isnan``, ``Isfinite``), plus ``LeakyRelu`` (its ``alpha``
#: is compared like every other attr).
UNARY_ELEMENTWISE_OPS = frozenset({
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Conj", "Cos", "Cosh", "Digamma", "Elu",
    "Erf", "Erfc", "Exp", "Expm1", "Floor", "Inv", "Invert", "LeakyRelu", "Lgamma", "Log", "Log1p", "LogicalNot",
    "Neg", "Reciprocal", "Relu", "Relu6", "Rint", "Round", "Rsqrt", "Selu", "Sigmoid", "Sign", "Sin", "Sinh",
    "Softplus", "Softsign", "Sqrt", "Square", "Tan", "Tanh",
})
CONCAT_OPS = frozenset({"ConcatV2", "Concat"})
#: Activations TensorFlow's remapper fuses into the op before them (``_FusedConv2D``/``_FusedMatMul``/
#: ``_FusedBatchNormEx``) when they read one of ``_FUSABLE_PRODUCERS``.
_FUSABLE_ACTIVATIONS = frozenset({"Relu", "Relu6"})
_FUSABLE_PRODUCERS = FUSED_BATCH_NORM_OPS | {"BiasAdd"}
#: Attrs that describe a node, not what it computes: not compared, not copied to another node (``_class``
#: colocation is checked on its own: a node with it is never hoisted).
_NODE_ATTRS = frozenset({"_output_shapes", "_has_manual_control_dependencies", "_class"})


def _concat_parts(node: NodeDef, data: list[str]) -> tuple[list[str], str, int] | str:
    """(values, axis input, index of the first value in ``data``) of a ``ConcatV2``/``Concat``, or what is wrong."""
    if "N" not in node.attr:
        return f"{node.op} {node.name!r} has no N attr"
    n = node.attr["N"].i
    if len(data) != n + 1:
        return f"{node.op} {node.name!r} has {len(data)} data inputs, expected N + 1 = {n + 1}"
    if node.op == "Concat":  # axis first
        return data[1:], data[0], 1
    return data[:-1], data[-1], 0


def _compared_attrs(node: NodeDef) -> dict[str, bytes]:
    return {k: v.SerializeToString(deterministic=True) for k, v in node.attr.items() if k not in _NODE_ATTRS}


@register
class HoistUnaryThroughConcat(Rule):
    """Replaces ``Concat(f(a), f(b), ..., axis)`` by ``f(Concat(a, b, ..., axis))`` for one element-wise unary op ``f``.

    ``f`` is the same op with the same attrs and device on every concat input
    (``Relu``, ``Relu6``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``, ``Exp``, ... see
    ``UNARY_ELEMENTWISE_OPS``; never an op that changes the dtype). The concat
    node becomes ``f`` under its own name, reading a new concat
    ``<concat>/before_<f>``, so its consumers and signatures are unchanged;
    the ``f`` nodes of the inputs go (an Inception block keeps one ``Relu`` of
    four). Control inputs of the concat and of the ``f`` nodes move to the new
    concat. Chains ``Exp(Sin(x))`` are hoisted one op per rewrite. The concat
    axis need not be a constant: ``f`` acts element by element.

    Not hoisted: inputs with different ops, attrs or devices, an input that is
    not such an op, an ``f`` read by anything but this concat (another data
    consumer, a control dependency ``^f``) or that is protected or a
    signature tensor, a concat fed as a signature input, ``_class``
    colocation on or with these nodes, nodes inside TF1 control-flow frames,
    and a concat of one distinct ``f`` node (nothing would be saved).

    ``keep_fusable=true`` also leaves ``Relu``/``Relu6`` that read a
    ``BiasAdd`` or ``FusedBatchNorm``, as Grappler's own stage does: TF's
    remapper fuses those into the convolution at run time, while a hoisted
    ``Relu`` is one more pass over the concat output (InceptionV3 after
    ``fold_batch_norms``, batch 1: about +0.5 ms, under 1%; the unoptimized
    Keras graph, whose ``Relu`` s read an ``AddV2`` and are hoisted by
    Grappler at run time, pays the same).
    """

    name = "hoist_unary_through_concat"
    pattern = Op("|".join(sorted(CONCAT_OPS)), bind="concat")
    params: ClassVar[dict[str, Param]] = {
        "keep_fusable": Param(bool, False, "leave Relu/Relu6 that read a BiasAdd or FusedBatchNorm where they are: "
                              "TensorFlow's remapper fuses those into the op before them at run time (Grappler's "
                              "own hoist makes this exception); costs the nodes, saves an unfused pass"),
    }
    reach = 1  # the match looks one edge above the concat (its inputs)

    # -------------------------------------------------------------- rule
    def match(self, graph: Graph, node: NodeDef) -> Match | str:
        m = super().match(graph, node)  # the concat (the pattern)
        if isinstance(m, str):
            return m
        parts = _concat_parts(node, graph.data_inputs(node.name))
        if isinstance(parts, str):
            return parts
        values, _, _ = parts
        if len(values) < 2:
            return f"{node.op} {node.name!r} has {len(values)} input; nothing to hoist"
        for i, value in enumerate(values):
            src, port, _ = parse_input(value)
            producer = graph.node(src)
            if producer.op not in UNARY_ELEMENTWISE_OPS:
                return (f"input {i} of {node.name!r} ({src!r}) is {producer.op}, "
                        "not an element-wise unary op that keeps its dtype")
            if port != 0:
                return f"input {i} of {node.name!r} reads output {port} of {producer.op} {src!r}"
            m.nodes[f"branch{i}"] = producer
        return m

    def check(self, match: Match) -> str | None:
        graph, concat = match.graph, match["concat"]
        name = concat.name
        branches = [match[k] for k in sorted((k for k in match.nodes if k.startswith("branch")),
                                             key=lambda k: int(k[6:]))]
        first = branches[0]
        distinct = list(dict.fromkeys(b.name for b in branches))
        if len(distinct) < 2:
            return f"every input of {name!r} is the same node {first.name!r}; hoisting it would save nothing"
        facts = match.ctx.frame_facts(graph, [name, *distinct])
        if name in facts.in_frame:
            return f"{name!r} is inside a TF1 control-flow frame (while_loop/cond)"
        for t in graph.data_inputs(name):
            if graph.producer(t).op in CONTROL_FLOW_OPS:
                return f"input {t!r} of {name!r} comes from control-flow op {graph.producer(t).op}"
        if "_class" in concat.attr:
            return f"{name!r} has a colocation constraint (_class); its op would change"
        for sig in graph.signatures.values():
            for key, spec in sig.inputs.items():
                if any(parse_input(t)[0] == name for t in spec.tensor_names()):
                    return f"{name!r} is signature {sig.key!r} input {key!r} (a feed point)"
        attrs = _compared_attrs(first)
        protected = graph.protected_nodes()
        for i, b in enumerate(branches):
            if b.op != first.op:
                return (f"inputs of {name!r} apply different ops: {first.op} ({first.name!r}) and "
                        f"{b.op} ({b.name!r}, input {i})")
            if _compared_attrs(b) != attrs:
                diff = sorted(k for k in set(attrs) | set(b.attr) if k not in _NODE_ATTRS
                              and (k not in b.attr or k not in attrs
                                   or b.attr[k].SerializeToString(deterministic=True) != attrs[k]))
                return (f"{first.op} inputs of {name!r} differ in attrs {', '.join(diff)} "
                        f"({first.name!r} vs {b.name!r})")
            if b.device != concat.device:
                return (f"{b.op} {b.name!r} is on device {b.device!r}, concat {name!r} on {concat.device!r}")
        if self.args["keep_fusable"] and first.op in _FUSABLE_ACTIVATIONS:
            for b in branches:
                producer = graph.producer(graph.data_inputs(b.name)[0])
                if producer.op in _FUSABLE_PRODUCERS:
                    return (f"{b.op} {b.name!r} reads {producer.op} {producer.name!r}; the remapper fuses it at run "
                            "time (keep_fusable=true)")
        if "T" in first.attr and "T" in concat.attr and first.attr["T"].type != concat.attr["T"].type:
            return f"{first.op} {first.name!r} and {name!r} have different T"
        for b in distinct:
            node = graph.node(b)
            if b in protected:
                return f"{node.op} {b!r} is protected or a signature tensor; it would be removed"
            if b in facts.in_frame:
                return f"{node.op} {b!r} is inside a TF1 control-flow frame (while_loop/cond)"
            if "_class" in node.attr:
                return f"{node.op} {b!r} has a colocation constraint (_class)"
            if b in facts.colocated_with:
                others = facts.colocated_with[b]
                return f"{', '.join(others[:3])} colocate with {b!r} (_class loc:@{b}); removing it breaks them"
            ctrl_users = graph.control_consumers(b)
            if ctrl_users:
                return (f"{', '.join(ctrl_users[:3])} depend on {node.op} {b!r} by control edge (^{b}); "
                        "it would be removed")
            others = sorted({u for u, _ in graph.consumers(b)} - {name})
            if others:
                return (f"{node.op} {b!r} is also read by {', '.join(others[:3])}; hoisting would not remove it")
            src = graph.data_inputs(b)
            if len(src) != 1:
                return f"{node.op} {b!r} has {len(src)} data inputs, expected 1"
        return None

    def rewrite(self, match: Match) -> Replacement:
        graph, concat = match.graph, match["concat"]
        name = concat.name
        data = graph.data_inputs(name)
        values, axis, offset = _concat_parts(concat, data)  # type: ignore[misc]
        branches = [graph.producer(v) for v in values]
        first = branches[0]
        inner_name = graph.unique_name(f"{name}/before_{first.op.lower()}")

        # The new concat: the concat's attrs and device, reading what the unary ops read.
        new_values = [graph.data_inputs(b.name)[0] for b in branches]
        controls: list[str] = list(graph.control_inputs(name))
        for b in dict.fromkeys(b.name for b in branches):
            controls.extend(graph.control_inputs(b))
        inputs = [axis, *new_values] if offset else [*new_values, axis]
        inner = make_node(concat.op, inner_name, [*inputs, *("^" + c for c in dict.fromkeys(controls))],
                          attrs=dict(concat.attr), device=concat.device)

        # The concat's name now holds f(inner): consumers and signatures keep reading the same tensor.
        attrs = {k: v for k, v in first.attr.items() if k not in _NODE_ATTRS}
        if "_output_shapes" in concat.attr:
            attrs["_output_shapes"] = concat.attr["_output_shapes"]
        outer = make_node(first.op, name, [inner_name], attrs=attrs, device=concat.device)

        # the new concat sits where the old one did: outside any frame
        match.ctx.frame_facts(graph, [name]).known.add(inner_name)
        log.debug("hoisting %s out of %s (%d inputs) into %s", first.op, name, len(values), inner_name)
        return Replacement(add=[inner], update=[outer], remove=list(dict.fromkeys(b.name for b in branches)))


__all__ = ["CONCAT_OPS", "UNARY_ELEMENTWISE_OPS", "HoistUnaryThroughConcat"]
