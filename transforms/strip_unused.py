"""``strip_unused``: remove every node that no signature, init op, table or asset needs.

GTT name: ``strip_unused_nodes``; its ``type``/``shape`` parameters set the
dtype and shape of the input placeholders.
"""
from __future__ import annotations

import logging

import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2

from graphxform import (
    Context,
    NodeDef,
    Param,
    Pass,
    Replacement,
    colocation,
    parse_input,
    register,
    with_attrs,
    with_inputs,
)
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph

log = logging.getLogger(__name__)


def _roots(graph: Graph, extra: list[str]) -> dict[str, str]:
    """{node: why it must stay}: signature tensors, protected nodes (init op, tables, assets), ``extra``."""
    roots: dict[str, str] = {}
    for sig in graph.signatures.values():
        for kind, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for key, spec in specs.items():
                for t in spec.tensor_names():
                    roots.setdefault(parse_input(t)[0], f"signature {sig.key!r} {kind} {key!r}")
    for name in sorted(graph.protected):
        roots.setdefault(name, "protected (init op, table initializer, asset or listed by the user)")
    for name in extra:
        roots.setdefault(parse_input(name)[0], "listed in name=")
    return roots


class _Needs:
    """Which root (or colocating node) first reaches each needed node, walking inputs backwards: O(graph)."""

    def __init__(self, graph: Graph, roots: dict[str, str]) -> None:
        self.roots = roots
        #: needed node -> (the root, or the colocation target, that needs it; whether it is a colocation target)
        self.why: dict[str, tuple[str, bool]] = {}
        self.colocated_by: dict[str, str] = {}  # colocation target -> a kept node with _class loc:@target
        frontier = self._walk(graph, [(r, (r, False)) for r in roots if r in graph])
        while frontier:  # kept nodes' colocation targets stay, with what they need
            targets = []
            for n in frontier:
                for t in colocation(graph.node(n)):
                    if t not in self.why and t in graph and t not in self.colocated_by:
                        self.colocated_by[t] = n
                        targets.append((t, (t, True)))
            frontier = self._walk(graph, targets)

    def _walk(self, graph: Graph, starts: list[tuple[str, tuple[str, bool]]]) -> list[str]:
        added: list[str] = []
        for start, label in starts:
            stack = [start]
            while stack:
                name = stack.pop()
                if name in self.why or name not in graph:
                    continue
                self.why[name] = label
                added.append(name)
                stack.extend(parse_input(i)[0] for i in graph.node(name).input)
        return added

    def reason(self, name: str) -> str | None:
        """Why ``name`` is kept, or ``None`` when it is unused."""
        if name in self.roots:
            return f"{name!r} is {self.roots[name]}"
        if name not in self.why:
            return None
        label, colocation = self.why[name]
        if not colocation:
            return f"{name!r} is needed by {label!r} ({self.roots[label]})"
        if label == name:
            return f"{name!r} is a colocation target: kept node {self.colocated_by[name]!r} has _class loc:@{name}"
        return f"{name!r} is needed by colocation target {label!r}"


def parse_shape(dims: list[str]) -> tensor_shape_pb2.TensorShapeProto:
    """GTT's shape strings, already split: ``["1", "224", "224", "3"]``; ``-1`` or ``?`` is an unknown dim."""
    shape = tensor_shape_pb2.TensorShapeProto()
    for d in dims:
        d = d.strip()
        shape.dim.add().size = -1 if d in ("?", "-1") else int(d)
    return shape


@register
class StripUnused(Pass):
    """Replaces ``graph`` by ``ancestors(signature tensors + init op + tables + assets + name=)`` (dead nodes removed).

    Kept: every node a signature input or output of any signature needs, the
    protected nodes (init op, table initializers, asset path tensors) and
    everything they need — so lookup tables and their initializers stay even
    when only the init op uses them — plus nodes listed in ``name`` and
    colocation targets of kept nodes. ``type``/``shape`` (GTT) set the dtype
    and shape of the Placeholders that feed signature inputs. A graph with
    no signatures and nothing protected is left alone (with a warning).
    """

    name = "strip_unused"
    aliases = ("strip_unused_nodes",)
    idempotent = True
    params = {
        "type": Param(str, None, "dtype for the signature input placeholders, e.g. float, int32"),
        "shape": Param(list, None, 'shape for the signature input placeholders, e.g. "1,224,224,3" (-1: unknown)'),
        "name": Param(list, [], "extra nodes to keep (and everything they need)"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._dtype: int | None = None
        self._shape: tensor_shape_pb2.TensorShapeProto | None = None
        if self.args["type"] is not None:
            try:
                self._dtype = tf.as_dtype(self.args["type"]).as_datatype_enum
            except TypeError:
                raise RuleError(f"rule {self.name!r}: type={self.args['type']!r} is not a TensorFlow dtype "
                                "(use e.g. float, int32, string)") from None
        if self.args["shape"] is not None:
            try:
                self._shape = parse_shape(self.args["shape"])
            except ValueError:
                raise RuleError(f"rule {self.name!r}: shape={','.join(self.args['shape'])!r} is not a shape; "
                                'write it as "1,224,224,3" (-1 for an unknown dimension)') from None

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        missing = [n for n in self.args["name"] if parse_input(n)[0] not in graph]
        if missing:
            raise RuleError(f"rule {self.name!r}: name={','.join(missing)} names no node in the graph")
        roots = _roots(graph, self.args["name"])
        if not roots:
            log.warning("strip_unused: the graph has no signatures, protected nodes or name= entries, so every "
                        "node looks unused; nothing removed. Pass name=<output node> to say what to keep.")
            return []
        keep = _Needs(graph, roots).why
        rep = Replacement(update=self._placeholder_updates(graph))
        dead = {n for n in graph.node_names if n not in keep}
        if dead:
            rep.remove, cyclic = _consumers_first(graph, dead)
            # Dead TF1 loops are cycles (NextIteration -> Merge): cut their inputs so they can go one by one.
            rep.update.extend(with_inputs(graph.node(name), []) for name in cyclic)
            log.info("strip_unused: %d of %d nodes are unused", len(dead), len(graph))
        return [] if rep.is_empty() else [rep]

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        """For every node: why it is kept (``None``: it is unused and would be removed)."""
        needs = _Needs(graph, _roots(graph, self.args["name"]))
        if not needs.roots:
            return {n: "the graph has no signatures, protected nodes or name= entries; nothing is stripped"
                    for n in graph.node_names}
        return {n: needs.reason(n) for n in graph.node_names}

    def _placeholder_updates(self, graph: Graph) -> list[NodeDef]:
        if self._dtype is None and self._shape is None:
            return []
        out = []
        seen: set[str] = set()
        for sig in graph.signatures.values():
            for spec in sig.inputs.values():
                for t in spec.tensor_names():
                    name = parse_input(t)[0]
                    node = graph.get(name)
                    if node is None or name in seen:
                        continue
                    seen.add(name)
                    if node.op != "Placeholder":
                        log.info("strip_unused: signature input %s is a %s, not a Placeholder; type/shape not set",
                                 t, node.op)
                        continue
                    changes = {"dtype": tf.as_dtype(self._dtype)} if self._dtype is not None else {}
                    if self._shape is not None:
                        changes["shape"] = self._shape
                    new = with_attrs(node, **changes)
                    if new != node:
                        out.append(new)
        return out


def _consumers_first(graph: Graph, names: set[str]) -> tuple[list[str], list[str]]:
    """``names`` ordered consumers before producers, and those of them on cycles (at the end of the order)."""
    out_deg = {n: sum(1 for c in graph.consumer_nodes(n) if c in names) for n in names}
    ready = [n for n, d in out_deg.items() if d == 0]
    order: list[str] = []
    while ready:
        n = ready.pop()
        order.append(n)
        for src in {parse_input(i)[0] for i in graph.node(n).input}:
            if src in out_deg:
                out_deg[src] -= 1
                if out_deg[src] == 0:
                    ready.append(src)
    cyclic: list[str] = []
    if len(order) < len(names):
        done = set(order)
        cyclic = sorted(n for n in names if n not in done)
    return order + cyclic, cyclic


__all__ = ["StripUnused", "parse_shape"]
