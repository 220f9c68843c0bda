"""``strip_unused``: remove every node that no signature, init op, table or asset needs.

GTT name: ``strip_unused_nodes``, with GTT's parameters: an input that is not a
``Placeholder`` becomes one (``type``/``shape``, or ``name`` + ``type_for_name``/
``shape_for_name``) and what only it needed goes.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2

from graphxform import (
    Context,
    NodeDef,
    Param,
    Pass,
    Replacement,
    colocation,
    make_node,
    parse_input,
    register,
    with_attrs,
    with_inputs,
)
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.opdefs import FEED_OPS

from ._graph_edits import consumers_first

log = logging.getLogger(__name__)


def _roots(graph: Graph, extra: list[str]) -> dict[str, str]:
    """{node: why it must stay}: signature tensors, protected nodes (init op, tables, assets), ``extra`` (keep=)."""
    roots: dict[str, str] = {}
    for sig in graph.signatures.values():
        for kind, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for key, spec in specs.items():
                for t in spec.tensor_names():
                    roots.setdefault(parse_input(t)[0], f"signature {sig.key!r} {kind} {key!r}")
    for name in sorted(graph.protected):
        roots.setdefault(name, "protected (init op, table initializer, asset or listed by the user)")
    for name in extra:
        roots.setdefault(parse_input(name)[0], "listed in keep=")
    return roots


class _Needs:
    """Which root (or colocating node) first reaches each needed node, walking inputs backwards: O(graph)."""

    def __init__(self, graph: Graph, roots: dict[str, str], cut: frozenset[str] = frozenset()) -> None:
        self.roots = roots
        self.cut = cut  # inputs that become Placeholders: what is above them is not needed through them
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
                if name not in self.cut:
                    stack.extend(parse_input(i)[0] for i in graph.node(name).input)
        return added

    def reason(self, name: str) -> str | None:
        """Why ``name`` is kept, or ``None`` when it is unused."""
        if name in self.cut:
            return None
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


def _needed(graph: Graph, roots: Iterable[str], cut: frozenset[str] = frozenset()) -> set[str]:
    """The set of nodes :class:`_Needs` finds needed (without saying why): ``roots``, everything they depend on
    (not above ``cut``), the colocation targets of what is needed and what those depend on. Walks the view's
    producer dicts (no input string is parsed) and the graph's colocation index."""
    pred = graph.adjacency()[1]
    known = set(graph.node_names)
    needed: set[str] = set()

    def walk(stack: list[str]) -> None:
        while stack:
            name = stack.pop()
            if name in needed or name not in known:
                continue
            needed.add(name)
            if name not in cut:
                stack.extend(pred[name])

    walk([r for r in roots if r in known])
    colocated = graph.colocation_index()
    grew = bool(colocated)
    while grew:  # kept nodes' colocation targets stay, with what they need
        grew = False
        for target, users in colocated.items():
            if target not in needed and target in known and not users.isdisjoint(needed):
                walk([target])
                grew = True
    return needed


def needed_nodes(graph: Graph, ctx: Context | None = None) -> set[str] | None:
    """The nodes the signatures, the protected nodes and their ancestors need (``None``: the graph has neither,
    so nothing can be told unused). What ``fold_constants`` keeps, as GTT's ``RemoveUnusedNodes``. Read only
    (shared through ``ctx`` with ``strip_unused`` run just before on the same graph)."""
    roots = _roots(graph, [])
    return _shared_needed(graph, roots, frozenset(), ctx) if roots else None


def _shared_needed(graph: Graph, roots: dict[str, str], cut: frozenset[str], ctx: Context | None) -> set[str]:
    """:func:`_needed`, kept in ``ctx`` until the graph changes (read only)."""
    if ctx is None:
        return _needed(graph, roots, cut)
    return ctx.per_graph_state(("needed", frozenset(roots), cut), lambda: _needed(graph, roots, cut))


def _dtype(rule: str, value: str) -> int:
    try:
        return tf.as_dtype(value).as_datatype_enum
    except TypeError:
        raise RuleError(f"rule {rule!r}: type {value!r} is not a TensorFlow dtype (use e.g. float, int32, "
                        "string)") from None


def _shape(rule: str, dims: list[str]) -> tensor_shape_pb2.TensorShapeProto:
    try:
        return parse_shape(dims)
    except ValueError:
        raise RuleError(f"rule {rule!r}: shape {','.join(dims)!r} is not a shape; write it as \"1,224,224,3\" "
                        "(-1 for an unknown dimension)") from None


@register
class StripUnused(Pass):
    """Replaces ``graph`` by ``ancestors(signature tensors + init op + tables + assets + keep=)`` (dead nodes removed).

    Kept: every node a signature input or output of any signature needs, the
    protected nodes (init op, table initializers, asset path tensors) and
    everything they need — so lookup tables and their initializers stay even
    when only the init op uses them — plus nodes listed in ``keep`` and
    colocation targets of kept nodes. A signature input (GTT: a node named in
    ``inputs``) that is not a ``Placeholder`` or ``PlaceholderWithDefault`` is
    replaced by a ``Placeholder`` and what only it needed goes (GTT's
    ``type``/``shape``, ``name`` + ``type_for_name``/``shape_for_name``; by
    default its own dtype, else float, and the signature's shape, else a
    scalar). ``placeholder_type``/``placeholder_shape`` retype the existing
    Placeholders that feed signature inputs. A graph with no signatures and
    nothing protected is left alone (with a warning).
    """

    name = "strip_unused"
    aliases = ("strip_unused_nodes",)
    idempotent = True
    params = {
        "type": Param(str, None, "dtype of the Placeholders that replace inputs that are not Placeholders "
                                 "(GTT; default: the input's own dtype, else float)"),
        "shape": Param(list, None, 'shape of those Placeholders, e.g. "1,224,224,3" (-1: unknown; GTT; default: '
                                   "the signature's shape, else a scalar)"),
        "name": Param(list, [], "GTT: the inputs that type_for_name / shape_for_name apply to, in order"),
        "type_for_name": Param(list, [], "GTT: the dtype of the Placeholder replacing each name= input"),
        "shape_for_name": Param(list, [], 'GTT: the shape ("1,2") of the Placeholder replacing each name= input',
                                split=False),
        "keep": Param(list, [], "extra nodes to keep (and everything they need)"),
        "placeholder_type": Param(str, None, "set the dtype of the existing Placeholders feeding signature inputs"),
        "placeholder_shape": Param(list, None, "set the shape of the existing Placeholders feeding signature "
                                               'inputs, e.g. "1,224,224,3" (-1: unknown)'),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        a = self.args
        self._dtype = _dtype(self.name, a["placeholder_type"]) if a["placeholder_type"] is not None else None
        self._shape = _shape(self.name, a["placeholder_shape"]) if a["placeholder_shape"] is not None else None
        self._cut_dtype = _dtype(self.name, a["type"]) if a["type"] is not None else None
        self._cut_shape = _shape(self.name, a["shape"]) if a["shape"] is not None else None
        for key in ("type_for_name", "shape_for_name"):
            if a[key] and len(a[key]) != len(a["name"]):
                raise RuleError(f"rule {self.name!r}: pass one {key} for every name (e.g. strip_unused_nodes("
                                'name=foo, type_for_name=float, shape_for_name="1,2", name=bar, ...)); got '
                                f"{len(a['name'])} name and {len(a[key])} {key}")
        self._for_name = {n: (_dtype(self.name, t) if t else None, _shape(self.name, sh.split(",")) if sh else None)
                          for n, t, sh in zip(a["name"], a["type_for_name"] or [""] * len(a["name"]),
                                              a["shape_for_name"] or [""] * len(a["name"]))}

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        missing = [n for n in self.args["keep"] if parse_input(n)[0] not in graph]
        if missing:
            raise RuleError(f"rule {self.name!r}: keep={','.join(missing)} names no node in the graph")
        roots = _roots(graph, self.args["keep"])
        if not roots:
            log.warning("strip_unused: the graph has no signatures, protected nodes or keep= entries, so every "
                        "node looks unused; nothing removed. Pass keep=<output node> to say what to keep.")
            return []
        cut = _cut_inputs(graph)
        keep = _shared_needed(graph, roots, frozenset(cut), ctx)
        rep = Replacement(update=self._placeholder_updates(graph) + [self._placeholder_for(graph, n) for n in cut])
        dead = {n for n in graph.node_names if n not in keep} if len(keep) < len(graph) else set()  # (keep: nodes)
        if dead:
            rep.remove, cyclic = consumers_first(graph, dead)
            # Dead TF1 loops are cycles (NextIteration -> Merge): cut their inputs so they can go one by one.
            rep.update.extend(with_inputs(graph.node(name), []) for name in cyclic)
            log.info("strip_unused: %d of %d nodes are unused", len(dead), len(graph))
        return [] if rep.is_empty() else [rep]

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        """For every node: why it is kept (``None``: it is unused and would be removed, or an input that would
        become a Placeholder)."""
        needs = _Needs(graph, _roots(graph, self.args["keep"]), frozenset(_cut_inputs(graph)))
        if not needs.roots:
            return {n: "the graph has no signatures, protected nodes or keep= entries; nothing is stripped"
                    for n in graph.node_names}
        return {n: needs.reason(n) for n in graph.node_names}

    def _placeholder_for(self, graph: Graph, name: str) -> NodeDef:
        """GTT's Placeholder for input ``name``: type_for_name/shape_for_name, else type/shape, else its own
        dtype (float when unknown) and its signature's shape (a scalar when unknown)."""
        dtype, shape = self._for_name.get(name, (None, None))
        if name in self._for_name and (dtype is None or shape is None):
            raise RuleError(f"rule {self.name!r}: input {name!r} becomes a Placeholder, so name={name} needs a "
                            "type_for_name and a shape_for_name (GTT requires both)")
        if dtype is None:
            dtype = self._cut_dtype or graph.output_dtype(f"{name}:0") or tf.float32.as_datatype_enum
        if shape is None:
            shape = self._cut_shape
        if shape is None:
            known = next((sp.shape for sig in graph.signatures.values() for sp in sig.inputs.values()
                          if sp.name and parse_input(sp.name)[:2] == (name, 0) and sp.shape is not None), None)
            shape = parse_shape(["-1" if d is None else str(d) for d in known]) if known is not None \
                else tensor_shape_pb2.TensorShapeProto()
        node = graph.node(name)
        return make_node("Placeholder", name, device=node.device, attrs={"dtype": tf.as_dtype(dtype), "shape": shape})

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
                        log.info("strip_unused: signature input %s is a %s, not a Placeholder; placeholder_type/"
                                 "placeholder_shape not set", t, node.op)
                        continue
                    changes = {"dtype": tf.as_dtype(self._dtype)} if self._dtype is not None else {}
                    if self._shape is not None:
                        changes["shape"] = self._shape
                    new = with_attrs(node, **changes)
                    if new != node:
                        out.append(new)
        return out


def _cut_inputs(graph: Graph) -> list[str]:
    """Signature inputs that are not feed ops (GTT: ``inputs`` that are not Placeholders): they become
    Placeholders. Left as they are: an input read at another port than 0 (a Placeholder has one output)."""
    out: list[str] = []
    for sig in graph.signatures.values():
        for spec in sig.inputs.values():
            for t in spec.tensor_names():
                name, port, _ = parse_input(t)
                node = graph.get(name)
                if node is None or node.op in FEED_OPS or name in out:
                    continue
                if port != 0 or graph.output_ports(name) - {0}:
                    log.info("strip_unused: input %s is output %d of a %s; it stays as it is", t, port, node.op)
                    continue
                out.append(name)
    return out


__all__ = ["StripUnused", "needed_nodes", "parse_shape"]
