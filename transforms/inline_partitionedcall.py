"""``inline_partitionedcall`` (GTT): every ``PartitionedCall`` replaced by its function's body."""
from __future__ import annotations

import logging

from graphxform import Match, NodeDef, Replacement, Rule, canon, colocation, copy_node, parse_input, register
from graphxform.core.opdefs import CALL_OPS, attr_int, op_def

log = logging.getLogger(__name__)


def _output_offsets(node: NodeDef, lib: dict) -> dict[str, int] | str:
    """{output arg: first flat output index} of a body node, or why they cannot be told."""
    if node.op in lib:
        return {a.name: i for i, a in enumerate(lib[node.op].signature.output_arg)}
    d = op_def(node.op)
    if d is None:
        return f"body node {node.name!r} has op {node.op!r}, unknown to TensorFlow"
    offsets, pos = {}, 0
    for arg in d.output_arg:
        offsets[arg.name] = pos
        if arg.number_attr:
            pos += attr_int(node, arg.number_attr)
        elif arg.type_list_attr:
            pos += len(node.attr[arg.type_list_attr].list.type) if arg.type_list_attr in node.attr else 0
        else:
            pos += 1
    return offsets


class _Body:
    """A call's function body, renamed under ``prefix`` and wired to the call's inputs."""

    def __init__(self, call: NodeDef, fdef: object, prefix: str, lib: dict) -> None:
        self.call, self.fdef, self.prefix = call, fdef, prefix
        self.names = {n.name: f"{prefix}/{n.name}" for n in fdef.node_def}  # type: ignore[attr-defined]
        data = [i for i in call.input if not i.startswith("^")]
        self.args = {a.name: data[k] for k, a in enumerate(fdef.signature.input_arg)}  # type: ignore[attr-defined]
        self.offsets = {n.name: _output_offsets(n, lib) for n in fdef.node_def}  # type: ignore[attr-defined]

    def ref(self, r: str) -> str:
        """A body reference (``x``, ``node:out:i``, ``^node``) as a graph input string."""
        if r.startswith("^"):
            src = r[1:]
            return "^" + (self.names[src] if src in self.names else parse_input(self.args[src])[0])
        parts = r.split(":")
        if parts[0] in self.args:
            return self.args[parts[0]]
        if len(parts) == 1:
            return self.names[parts[0]]
        offsets = self.offsets[parts[0]]
        assert isinstance(offsets, dict)
        port = offsets[parts[1]] + int(parts[2]) if len(parts) == 3 else int(parts[1])
        return self.names[parts[0]] if port == 0 else f"{self.names[parts[0]]}:{port}"


def _reason(match: Match) -> str | None:
    graph, call = match.graph, match.anchor
    if "f" not in call.attr or not call.attr["f"].HasField("func"):
        return f"{call.name!r} names no function (no f attr)"
    fname = call.attr["f"].func.name
    lib = {f.signature.name: f for f in graph.library.function}
    fdef = lib.get(fname)
    if fdef is None:
        return f"{call.name!r} calls {fname!r}, which is not in the graph's function library"
    if any(a.number_attr or a.type_list_attr for a in fdef.signature.input_arg):
        return f"function {fname!r} takes list arguments"
    if len(fdef.signature.input_arg) != len(graph.data_inputs(call.name)):
        return f"{call.name!r} passes {len(graph.data_inputs(call.name))} inputs to {fname!r}, which takes " \
               f"{len(fdef.signature.input_arg)}"
    for n in fdef.node_def:
        if any(v.placeholder for v in n.attr.values()):
            return f"function {fname!r} is polymorphic (attr placeholders in {n.name!r})"
        offsets = _output_offsets(n, lib)
        if isinstance(offsets, str):
            return offsets
    if graph.is_protected(call.name) and not graph.signature_uses(call.name):
        return f"{call.name!r} is protected (init op, table initializer or asset): the SavedModel names it"
    return None


@register
class InlinePartitionedCall(Rule):
    """Replaces ``PartitionedCall[f](x, y)`` (and ``StatefulPartitionedCall``) by the body of ``f``, its nodes named
    ``<call>/<node>`` and reading ``x``, ``y``.

    GTT's ``inline_partitionedcall``. graphxform's loader already inlines the calls of a SavedModel or a GraphDef
    file it loads; this transform inlines the calls of a ``GraphDef`` handed to ``TransformGraph``, and calls
    nested in inlined bodies (the next round inlines those). Control consumers of the call wait for the whole
    inlined body; the call's control inputs come before it. Left alone (``--explain`` says why): calls of
    functions missing from the library, polymorphic functions, functions with list arguments, protected calls
    (an init op). GTT also misnumbers the outputs of multi-output body ops (``node:out:1`` as port 1 of the node);
    here output args map to the right ports. The library keeps the functions (as GTT).
    """

    name = "inline_partitionedcall"
    anchors = CALL_OPS

    def check(self, match: Match) -> str | None:
        return _reason(match)

    def rewrite(self, match: Match) -> Replacement:
        graph, call = match.graph, match.anchor
        lib = {f.signature.name: f for f in graph.library.function}
        fdef = lib[call.attr["f"].func.name]
        prefix = call.name
        if any(f"{prefix}/{n.name}" in graph for n in fdef.node_def):
            prefix = graph.unique_name(f"{call.name}_inlined")
        body = _Body(call, fdef, prefix, lib)
        control = [i for i in call.input if i.startswith("^")]
        rep = Replacement()
        for src in fdef.node_def:
            inputs = [body.ref(i) for i in src.input]
            reads_args = any(parse_input(i)[0] in body.args for i in src.input)
            if control and (not src.input or reads_args):  # everything in the body runs after the call's controls
                inputs += [c for c in control if c not in inputs]
            node = copy_node(src, name=body.names[src.name])
            del node.input[:]
            node.input.extend(inputs)
            locs = colocation(src)
            if locs:
                del node.attr["_class"].list.s[:]
                node.attr["_class"].list.s.extend(f"loc:@{body.names.get(t, t)}".encode() for t in locs)
            rep.add.append(node)
        for k, arg in enumerate(fdef.signature.output_arg):
            rep.replace[f"{call.name}:{k}"] = canon(body.ref(fdef.ret[arg.name]))
        if graph.control_consumers(call.name):  # they waited for the call: now for every node of its body
            reached = {parse_input(i)[0] for n in rep.add for i in n.input}
            rep.replace_control[call.name] = [n.name for n in rep.add if n.name not in reached]
        rep.remove.append(call.name)
        log.info("inline_partitionedcall: inlined %s (%d nodes) under %s/", call.name, len(rep.add), prefix)
        return rep


__all__ = ["InlinePartitionedCall"]
