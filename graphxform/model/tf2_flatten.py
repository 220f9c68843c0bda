"""Flattening TF2 graphs: function calls inlined into one plain graph.

A TF2 SavedModel's outer graph holds little more than placeholders,
variables and ``StatefulPartitionedCall`` / ``PartitionedCall`` nodes that
call into the function library (often a signature wrapper calling the real
function). :func:`inline_function_calls` replaces every such call — nested
calls too — by the function's body, so that signature inputs are
placeholders and signature outputs are tensors of real ops.

Naming: the body of a call node ``c`` is placed under ``c/`` (or under the
signature key when the call computes exactly one signature's outputs), e.g.
``serving_default/StatefulPartitionedCall/dense/MatMul``. A call node that
something depends on by name (a control input, the init/restore op) is
kept as a ``NoOp`` of the same name that waits for the whole inlined body.

Functional control flow (``If``, ``StatelessIf``, ``While``, ``Case`` …)
keeps calling its branch/body functions; the library keeps just the
functions still referenced.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tensorflow.core.framework import attr_value_pb2, function_pb2, graph_pb2, node_def_pb2

from graphxform.core.errors import GraphError
from graphxform.core.names import VALID_NODE_NAME, canon, input_string, parse_input
from graphxform.core.opdefs import CALL_OPS, attr_int, attr_list, op_def

log = logging.getLogger(__name__)


#: Inlining stops with an error past this many nodes (a library whose calls fan out exponentially).
MAX_INLINED_NODES = 2_000_000


@dataclass
class FlattenResult:
    """The flat ``GraphDef`` and how tensors of removed call nodes map to tensors of the flat graph."""

    graph_def: graph_pb2.GraphDef
    tensor_map: dict[str, str] = field(default_factory=dict)  # "call:k" -> "node:port"
    inlined: int = 0

    def resolve(self, tensor: str) -> str:
        """The flat-graph name of ``tensor`` (``"node:port"``); unchanged when it was not a call output."""
        return _resolve(self.tensor_map, canon(tensor))


def _resolve(tensor_map: Mapping[str, str], t: str) -> str:
    seen = set()
    while t in tensor_map:
        if t in seen:  # pragma: no cover - a cycle would be a bug in the inliner
            raise GraphError(f"cyclic tensor mapping at {t!r} while inlining function calls")
        seen.add(t)
        t = tensor_map[t]
    return t


def has_function_calls(graph_def: graph_pb2.GraphDef) -> bool:
    """True when the graph holds a call op that :func:`inline_function_calls` would inline."""
    lib = {f.signature.name for f in graph_def.library.function}
    return any(n.op in CALL_OPS or n.op in lib for n in graph_def.node)


def _output_offsets(node: node_def_pb2.NodeDef, lib: Mapping[str, function_pb2.FunctionDef]) -> dict[str, int]:
    """{output arg name: first flat output index} for a node inside a function body."""
    if node.op in lib:
        return {a.name: i for i, a in enumerate(lib[node.op].signature.output_arg)}
    d = op_def(node.op)
    if d is None:
        raise GraphError(f"function body node {node.name!r} has unknown op {node.op!r}; cannot inline it")
    offsets: dict[str, int] = {}
    pos = 0
    for arg in d.output_arg:
        offsets[arg.name] = pos
        if arg.number_attr:
            pos += attr_int(node, arg.number_attr)
        elif arg.type_list_attr:
            types = attr_list(node, arg.type_list_attr)
            pos += len(types.type) if types is not None else 0
        else:
            pos += 1
    return offsets


def _arg_lengths(fdef: function_pb2.FunctionDef, call: node_def_pb2.NodeDef) -> list[int]:
    lengths = []
    for arg in fdef.signature.input_arg:
        if arg.number_attr:
            lengths.append(int(fdef.attr[arg.number_attr].i) if arg.number_attr in fdef.attr
                           else attr_int(call, arg.number_attr))
        elif arg.type_list_attr:
            src = fdef.attr if arg.type_list_attr in fdef.attr else call.attr
            lengths.append(len(src[arg.type_list_attr].list.type) if arg.type_list_attr in src else 0)
        else:
            lengths.append(1)
    return lengths


def function_name(node: node_def_pb2.NodeDef, lib: Mapping[str, function_pb2.FunctionDef]) -> str | None:
    """Name of the function a call node calls (``f`` attr of call ops, or the op itself)."""
    if node.op in CALL_OPS:
        return node.attr["f"].func.name if "f" in node.attr else None
    if node.op in lib:
        return node.op
    return None


class _Inliner:
    def __init__(self, graph_def: graph_pb2.GraphDef, prefixes: Mapping[str, str], keep: Iterable[str]) -> None:
        self.lib = {f.signature.name: f for f in graph_def.library.function}
        if len(self.lib) != len(graph_def.library.function):
            seen: set[str] = set()
            dup = next(f.signature.name for f in graph_def.library.function
                       if f.signature.name in seen or seen.add(f.signature.name))  # type: ignore[func-returns-value]
            raise GraphError(f"the function library defines {dup!r} twice; the graph is corrupt")
        self.nodes: dict[str, node_def_pb2.NodeDef] = {}
        for n in graph_def.node:
            c = node_def_pb2.NodeDef()
            c.CopyFrom(n)
            self.nodes[n.name] = c
        self.used = set(self.nodes)
        self.prefixes = dict(prefixes)
        self.keep = set(keep)
        self.tensor_map: dict[str, str] = {}
        self.call_noops: set[str] = set()
        self.count = 0
        self.chain: dict[str, tuple[str, ...]] = {}  # call node -> functions it sits inside (recursion check)

    def unique(self, name: str) -> str:
        if name not in self.used:
            self.used.add(name)
            return name
        i = 1
        while f"{name}_{i}" in self.used:
            i += 1
        self.used.add(f"{name}_{i}")
        return f"{name}_{i}"

    def run(self) -> None:
        queue = deque(n.name for n in self.nodes.values() if function_name(n, self.lib))
        while queue:
            queue.extend(self.expand(queue.popleft()))
        # Rewire every data input that named a call output to the inlined tensor.
        for node in self.nodes.values():
            for i, inp in enumerate(node.input):
                if inp.startswith("^"):
                    continue
                t = _resolve(self.tensor_map, canon(inp))
                if t != canon(inp):
                    n, p, _ = parse_input(t)
                    node.input[i] = input_string(n, p)
        # Drop the stand-in NoOps nobody depends on.
        ctrl_used = {i[1:] for n in self.nodes.values() for i in n.input if i.startswith("^")}
        for name in sorted(self.call_noops):
            if name not in ctrl_used and name not in self.keep:
                del self.nodes[name]

    def expand(self, name: str) -> list[str]:
        call = self.nodes.pop(name)
        fname = function_name(call, self.lib)
        assert fname is not None
        fdef = self.lib.get(fname)
        if fdef is None:
            raise GraphError(f"node {name!r} calls function {fname!r}, which is not in the function library")
        chain = self.chain.pop(name, ())
        if fname in chain:
            raise GraphError(f"node {name!r}: function {fname!r} calls itself ({' -> '.join((*chain, fname))}); "
                             "recursive functions cannot be inlined — the graph is corrupt or hostile")
        if len(self.nodes) + len(fdef.node_def) > MAX_INLINED_NODES:
            raise GraphError(f"node {name!r}: inlining function {fname!r} would make the graph larger than "
                             f"{MAX_INLINED_NODES} nodes; its calls fan out too much to flatten")
        self.count += 1
        prefix = self.prefixes.get(name, name)
        data_in = [i for i in call.input if not i.startswith("^")]
        ctrl_in = [i for i in call.input if i.startswith("^")]
        lengths = _arg_lengths(fdef, call)
        if sum(lengths) != len(data_in):
            raise GraphError(
                f"node {name!r} passes {len(data_in)} inputs to {fname!r}, which takes {sum(lengths)}; "
                "the graph is corrupt"
            )
        args: dict[str, list[str]] = {}
        pos = 0
        for arg, n in zip(fdef.signature.input_arg, lengths):
            args[arg.name] = data_in[pos:pos + n]
            pos += n
        body = {n.name for n in fdef.node_def}
        if len(body) != len(fdef.node_def):
            dup = next(n.name for i, n in enumerate(fdef.node_def) if any(m.name == n.name for m in fdef.node_def[:i]))
            raise GraphError(f"function {fname!r} holds two body nodes named {dup!r} (duplicate names); the graph "
                             "is corrupt")
        new_names = {n.name: self.unique(f"{prefix}/{n.name}") for n in fdef.node_def}
        offsets = {n.name: _output_offsets(n, self.lib) for n in fdef.node_def}
        inlined = set(new_names.values())

        def ref(r: str) -> str:
            """A function-body reference as a graph input string."""
            if r.startswith("^"):
                src = r[1:]
                if src in body:
                    return "^" + new_names[src]
                if src in args:  # control edge on an argument: on the caller's input producer
                    return "^" + parse_input(args[src][0])[0] if args[src] else ""
                raise GraphError(f"function {fname!r}: control input {r!r} names nothing")
            parts = r.split(":")
            if parts[0] in args and len(parts) <= 2:
                idx = int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else 0 if len(parts) == 1 else -1
                if not 0 <= idx < len(args[parts[0]]):
                    raise GraphError(f"function {fname!r}: input {r!r} names no element of argument {parts[0]!r}")
                return args[parts[0]][idx]
            if len(parts) == 3 and parts[0] in body:
                off = offsets[parts[0]].get(parts[1])
                if off is None:
                    raise GraphError(f"function {fname!r}: {r!r} names no output of node {parts[0]!r}")
                return input_string(new_names[parts[0]], off + int(parts[2]))
            if len(parts) == 1 and parts[0] in body:
                return new_names[parts[0]]
            raise GraphError(f"function {fname!r}: cannot resolve input {r!r}")

        added: list[str] = []
        for src in fdef.node_def:
            node = node_def_pb2.NodeDef()
            node.CopyFrom(src)
            node.name = new_names[src.name]
            inputs = [ref(i) for i in src.input]
            inputs = [i for i in inputs if i]
            if ctrl_in and not any(parse_input(i)[0] in inlined for i in inputs):
                inputs += [c for c in ctrl_in if c not in inputs]
            del node.input[:]
            node.input.extend(inputs)
            if not node.device and call.device:
                node.device = call.device
            if "_class" in node.attr:
                locs = [s for s in node.attr["_class"].list.s]
                kept = [b"loc:@" + new_names[s[5:].decode()].encode() for s in locs
                        if s.startswith(b"loc:@") and s[5:].decode() in new_names]
                if kept:
                    node.attr["_class"].CopyFrom(attr_value_pb2.AttrValue(
                        list=attr_value_pb2.AttrValue.ListValue(s=kept)))
                else:
                    del node.attr["_class"]
            self.nodes[node.name] = node
            if function_name(node, self.lib):
                added.append(node.name)
                self.chain[node.name] = (*chain, fname)
        outs = []
        for k, arg in enumerate(fdef.signature.output_arg):
            outs.append(canon(ref(fdef.ret[arg.name])))
            self.tensor_map[f"{name}:{k}"] = outs[-1]
        # A NoOp of the caller's name stands for "the call has run" (control deps, init/restore op).
        # control_ret is a protobuf map: its iteration order changes between processes, so take the
        # signature's control_output order (then any other key, sorted) for a deterministic output.
        rets = fdef.control_ret
        keys = [k for k in fdef.signature.control_output if k in rets]
        keys += sorted(set(rets) - set(keys))
        waits = [new_names[rets[k]] for k in keys if rets[k] in new_names]
        waits += [parse_input(t)[0] for t in outs if parse_input(t)[0] in self.nodes]
        noop = node_def_pb2.NodeDef(name=name, op="NoOp", device=call.device)
        noop.input.extend("^" + w for w in dict.fromkeys(waits))
        self.nodes[name] = noop
        self.call_noops.add(name)
        return added


def used_functions(graph_def: graph_pb2.GraphDef) -> set[str]:
    """Names of the library functions the graph's nodes reach (transitively)."""
    lib = {f.signature.name: f for f in graph_def.library.function}
    grad = {g.function_name: g.gradient_func for g in graph_def.library.gradient}

    def refs(nodes: Iterable[node_def_pb2.NodeDef]) -> set[str]:
        out: set[str] = set()
        for n in nodes:
            if n.op in lib:
                out.add(n.op)
            for a in n.attr.values():
                if a.HasField("func"):
                    out.add(a.func.name)
                elif a.HasField("list"):
                    out.update(f.name for f in a.list.func)
        return out

    todo = list(refs(graph_def.node))
    seen: set[str] = set()
    while todo:
        f = todo.pop()
        if f in seen or f not in lib:
            continue
        seen.add(f)
        todo.extend(refs(lib[f].node_def))
        if f in grad:
            todo.append(grad[f])
    return seen


def prune_library(graph_def: graph_pb2.GraphDef) -> int:
    """Drop library functions no node reaches; returns how many were dropped (in place)."""
    keep = used_functions(graph_def)
    funcs = [f for f in graph_def.library.function if f.signature.name in keep]
    grads = [g for g in graph_def.library.gradient if g.function_name in keep]
    dropped = len(graph_def.library.function) - len(funcs)
    if dropped:
        lib = function_pb2.FunctionDefLibrary()
        lib.function.extend(funcs)
        lib.gradient.extend(grads)
        graph_def.library.CopyFrom(lib)
    return dropped


def inline_function_calls(
    graph_def: graph_pb2.GraphDef,
    *,
    prefixes: Mapping[str, str] | None = None,
    keep: Iterable[str] = (),
) -> FlattenResult:
    """Inline every ``StatefulPartitionedCall``/``PartitionedCall`` (and direct function call) in ``graph_def``.

    ``prefixes`` maps a call node to the name scope its body gets (default: the
    call node's name); ``keep`` lists call nodes whose name must survive (as a
    ``NoOp`` waiting for the inlined body) even when nothing depends on them.
    Returns the new ``GraphDef`` (library pruned to what is still called) and the
    mapping from the call nodes' output tensors to the inlined tensors.
    """
    prefixes = {k: v for k, v in (prefixes or {}).items() if VALID_NODE_NAME.match(v)}
    inl = _Inliner(graph_def, prefixes, keep)
    # A prefix must not collide with an existing node name or scope.
    scopes = {n.split("/")[0] for n in inl.nodes}
    inl.prefixes = {k: v for k, v in inl.prefixes.items() if v not in scopes or v == k}
    try:
        inl.run()
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # a library no TF exporter would write
        raise GraphError(f"cannot inline the function calls: the function library is corrupt "
                         f"({type(exc).__name__}: {exc})") from exc
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    out.node.extend(inl.nodes.values())
    dropped = prune_library(out)
    log.debug("inlined %d function calls, dropped %d library functions", inl.count, dropped)
    return FlattenResult(out, inl.tensor_map, inl.count)
