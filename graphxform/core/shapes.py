"""Static shapes: what TensorFlow's own shape functions infer for every tensor of a graph, without running it.

Rules that must prove a shape fact (``Mul(x, ones)`` leaves the shape of ``x`` unchanged; a ``Reshape`` target is
known up to the batch) ask :class:`StaticShapes`::

    shapes = match.ctx.static_shapes(match.graph)       # cached in the run's context
    shapes.shape("conv:0")      # (None, 56, 56, 64): a tuple, None for an unknown dimension
    shapes.shape("x:0")         # None: not even the rank is known

How: the graph is imported once into a ``TF_Graph`` through the C API (TensorFlow's C++ ``ShapeRefiner`` runs every op's shape
function on import, with the constant values and partial shapes it can see: ``Placeholder`` shapes, ``Const``
values, ``Shape -> StridedSlice -> Pack`` chains), and the shapes are read from it when asked. Large constants are
imported as ``Placeholder`` s of the same shape and dtype, so weights are never copied (their values do not
matter to a shape function). A node a rewrite added or replaced since the import is inferred on its own, from
its inputs' shapes (small constant inputs with their values), the first time it is asked about. Anything
TensorFlow cannot infer (an op it does not know, a graph it refuses) is simply unknown: callers treat an unknown
shape as "cannot prove it", never as an error.

Shapes are properties of the value a tensor holds, and every rewrite keeps the value of the tensors it leaves
under the same name, so what was inferred stays true for the run.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tensorflow.core.framework import graph_pb2, node_def_pb2

from graphxform.core.clib import ShapeGraph, ShapeGraphError
from graphxform.core.names import parse_input
from graphxform.core.nodes import tensor_nbytes
from graphxform.core.opdefs import FEED_OPS, output_count

if TYPE_CHECKING:  # pragma: no cover
    from graphxform.core.graph import Graph

log = logging.getLogger(__name__)

#: A static shape: ``None`` when even the rank is unknown, else one ``int`` (or ``None``: unknown) per dimension.
Shape = tuple[int | None, ...] | None

#: Constants with more bytes than this are imported as placeholders (shape functions need only small values:
#: shapes, axes, permutations).
SMALL_CONST_BYTES = 4096
#: Graphs with more nodes than this are not imported whole; their nodes are inferred one by one when asked.
MAX_IMPORT_NODES = 200_000
#: How far up an incremental inference follows inputs that are themselves unknown.
_MAX_DEPTH = 16
#: Attrs dropped from the copies imported: colocation ties a node to others, and ``_output_shapes`` (written by
#: exporters, possibly stale after a rewrite) would override what the shape functions infer.
_DROPPED_ATTRS = ("_class", "_output_shapes")


def _const_nbytes(node: node_def_pb2.NodeDef) -> int:
    """Bytes of a ``Const``'s value, from its dtype and shape: a weight's bytes are not copied to tell."""
    value = node.attr.get("value")  # (indexing a proto map would insert the key)
    return 0 if value is None else tensor_nbytes(value.tensor)


def _placeholder(name: str, dtype: int, shape: Shape, control: list[str] | None = None) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Placeholder")
    node.attr["dtype"].type = dtype
    if shape is None:
        node.attr["shape"].shape.unknown_rank = True
    else:
        for d in shape:
            node.attr["shape"].shape.dim.add(size=-1 if d is None else d)
    if control:
        node.input.extend(control)
    return node


def light_copy(node: node_def_pb2.NodeDef, *, keep_output_shapes: bool = False) -> node_def_pb2.NodeDef:
    """``node`` as imported for shape inference: a big ``Const`` becomes a ``Placeholder`` of its shape (weights
    are never copied), ``_class`` (and ``_output_shapes`` unless ``keep_output_shapes``) go."""
    if node.op == "Const" and _const_nbytes(node) > SMALL_CONST_BYTES:
        t = node.attr["value"].tensor
        shape = tuple(d.size for d in t.tensor_shape.dim)
        return _placeholder(node.name, t.dtype, shape, [i for i in node.input if i.startswith("^")])
    dropped = ("_class",) if keep_output_shapes else _DROPPED_ATTRS
    if not any(k in node.attr for k in dropped):
        return node
    copy = node_def_pb2.NodeDef()
    copy.CopyFrom(node)
    for k in dropped:
        if k in copy.attr:
            del copy.attr[k]
    return copy


class StaticShapes:
    """The static shapes of ``graph`` 's tensors (see the module docstring); build once per run, ask often."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._imported: ShapeGraph | None = None  # the graph, once imported
        self._snapshot: dict[str, node_def_pb2.NodeDef] = {}  # what was imported, by name
        self._tried = False
        self._extra: dict[str, tuple[node_def_pb2.NodeDef, list[Shape]]] = {}  # inferred one by one

    # ------------------------------------------------------------------ queries
    def shape(self, tensor: str) -> Shape:
        """The static shape of ``tensor`` (``"node:port"``); ``None`` when not even the rank is known."""
        name, port, control = parse_input(tensor)
        if control:
            return None
        shapes = self._shapes(name, 0)
        return shapes[port] if shapes is not None and port < len(shapes) else None

    def rank(self, tensor: str) -> int | None:
        s = self.shape(tensor)
        return None if s is None else len(s)

    def is_fully_defined(self, tensor: str) -> bool:
        s = self.shape(tensor)
        return s is not None and all(d is not None for d in s)

    def same_shape(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` provably have the same shape (fully known and equal, or the same tensor)."""
        if a == b:
            return True
        sa, sb = self.shape(a), self.shape(b)
        return sa is not None and sa == sb and all(d is not None for d in sa)

    # ------------------------------------------------------------------ inference
    def _shapes(self, name: str, depth: int) -> list[Shape] | None:
        node = self.graph.get(name)
        if node is None:
            return None
        self._import_once()
        if self._snapshot.get(name) is node and self._imported is not None:
            return self._imported.shapes(name)
        known = self._extra.get(name)
        if known is not None and known[0] is node:
            return known[1]
        shapes = self._infer_one(node, depth)
        if shapes is not None:
            self._extra[name] = (node, shapes)
        return shapes

    def _import_once(self) -> None:
        if self._tried:
            return
        self._tried = True
        graph = self.graph
        if len(graph) > MAX_IMPORT_NODES:
            log.debug("static shapes: %d nodes, inferring node by node when asked", len(graph))
            return
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(graph.versions)
        gd.library.CopyFrom(graph.library)
        snapshot = {}
        for node in graph:
            gd.node.append(light_copy(node))
            snapshot[node.name] = node
        try:
            g = ShapeGraph(gd)
        except ShapeGraphError as exc:  # any refusal: shapes are inferred node by node instead
            log.debug("static shapes: TensorFlow refused the graph (%s); inferring node by node",
                      " ".join(str(exc).split())[:200])
            return
        self._imported, self._snapshot = g, snapshot

    def _infer_one(self, node: node_def_pb2.NodeDef, depth: int) -> list[Shape] | None:
        """Shapes of ``node`` 's outputs from its inputs' shapes (imported on its own), or ``None``."""
        graph = self.graph
        if node.op == "Const" and "value" in node.attr:
            return [tuple(d.size for d in node.attr["value"].tensor.tensor_shape.dim)]
        if node.op in FEED_OPS and "shape" in node.attr:
            s = node.attr["shape"].shape
            return [None if s.unknown_rank else tuple(None if d.size < 0 else d.size for d in s.dim)]
        if depth >= _MAX_DEPTH:
            return None

        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(graph.versions)
        gd.library.CopyFrom(graph.library)
        inputs: list[str] = []
        for i, inp in enumerate(node.input):
            src, port, control = parse_input(inp)
            if control:
                continue
            producer = graph.get(src)
            if producer is None:
                return None
            stand_in = f"{node.name}/shape_input_{i}"
            if producer.op == "Const" and port == 0 and _const_nbytes(producer) <= SMALL_CONST_BYTES:
                copy = node_def_pb2.NodeDef()
                copy.CopyFrom(producer)
                copy.name = stand_in
                del copy.input[:]
                gd.node.append(copy)
            else:
                dtype = graph.output_dtype(inp)
                if dtype is None:
                    return None
                shapes = self._shapes(src, depth + 1)
                shape = shapes[port] if shapes is not None and port < len(shapes) else None
                gd.node.append(_placeholder(stand_in, dtype, shape))
            inputs.append(stand_in)
        copy = node_def_pb2.NodeDef()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(inputs)
        for k in _DROPPED_ATTRS:
            if k in copy.attr:
                del copy.attr[k]
        gd.node.append(copy)
        try:
            with ShapeGraph(gd) as g:
                return g.shapes(node.name)
        except ShapeGraphError as exc:  # unknown to TensorFlow: unknown shapes
            log.debug("static shapes: cannot infer %r on its own: %s", node.name, " ".join(str(exc).split())[:200])
            count = output_count(node)
            return None if count is None else [None] * count


def broadcast_shape(a: Shape, b: Shape) -> Shape:
    """The static shape of ``a`` and ``b`` broadcast together (numpy rules), ``None`` when it cannot be told.

    An unknown dimension against a known ``d > 1`` gives ``d`` only if the op would fail otherwise, so it is
    reported as unknown; against ``1`` it stays unknown.
    """
    if a is None or b is None:
        return None
    out: list[int | None] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None or y is None:
            out.append(None)
        elif x == y:
            out.append(x)
        else:
            return None
    return tuple(reversed(out))


def same_size_shapes_equal(a: Shape, b: Shape) -> bool:
    """Whether two tensors known to hold the same number of elements (a ``Reshape`` 's input and output) have
    the same shape: equal ranks, equal known dimensions, and unknown dimensions at one position only (the known
    ones, none of them 0, then fix it)."""
    if a is None or b is None or len(a) != len(b):
        return False
    unknown = [i for i in range(len(a)) if a[i] is None or b[i] is None]
    if any(a[i] != b[i] for i in range(len(a)) if i not in unknown):
        return False
    if not unknown:
        return True
    return len(unknown) == 1 and all(d != 0 for i, d in enumerate(a) if i not in unknown)


def broadcast_keeps(shape: Shape, other: tuple[int, ...]) -> bool:
    """Whether broadcasting a tensor of static ``shape`` with a constant of shape ``other`` leaves ``shape``
    unchanged for every value the unknown dimensions may take: ``other`` has no more dimensions, and each of its
    dimensions is 1 or equals the (known) dimension it meets."""
    if len(other) == 0 or all(d == 1 for d in other) and shape is not None and len(other) <= len(shape):
        return True
    if shape is None or len(other) > len(shape):
        return False
    for i in range(1, len(other) + 1):
        d = other[-i]
        if d != 1 and shape[-i] != d:
            return False
    return True


__all__ = ["MAX_IMPORT_NODES", "SMALL_CONST_BYTES", "Shape", "StaticShapes", "broadcast_keeps", "broadcast_shape", "light_copy",
           "same_size_shapes_equal"]
