"""The ``Graph``: a ``GraphDef`` and a ``networkx.MultiDiGraph`` view kept in step.

Nodes are ``NodeDef`` protos held by name. The view has one networkx node per
``NodeDef`` (attribute ``op``) and one edge per input, carrying ``src_port``,
``dst_port`` and ``control``. Every mutation goes through a method here, so
the proto and the view never disagree; :meth:`Graph.lint` checks that they do
not.

Tensor names follow TensorFlow: ``"node:0"``; an input string ``"node"`` means
port 0 and ``"^node"`` is a control dependency.
"""
from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2, types_pb2, versions_pb2

from graphxform.core.errors import GraphError

if TYPE_CHECKING:  # pragma: no cover
    from graphxform.model.model import Signature

log = logging.getLogger(__name__)

#: Ops that open or close a TF1 control-flow frame; cycles through them are legal.
CONTROL_FLOW_OPS = frozenset(
    {"Enter", "RefEnter", "Exit", "RefExit", "NextIteration", "RefNextIteration", "Merge", "RefMerge",
     "Switch", "RefSwitch", "LoopCond"}
)


def parse_input(inp: str) -> tuple[str, int, bool]:
    """Split a ``NodeDef`` input string into ``(node, port, is_control)``."""
    if inp.startswith("^"):
        return inp[1:], -1, True
    name, sep, port = inp.rpartition(":")
    if sep and port.isdigit():
        return name, int(port), False
    return inp, 0, False


def tensor_name(tensor: str) -> str:
    """Canonical ``"node:port"`` form of a tensor reference."""
    node, port, control = parse_input(tensor)
    if control:
        raise GraphError(f"{tensor!r} is a control dependency, not a tensor")
    return f"{node}:{port}"


def input_string(node: str, port: int) -> str:
    """The ``NodeDef`` input string for output ``port`` of ``node``."""
    return node if port == 0 else f"{node}:{port}"


def _dtype_to_numpy(dtype_enum: int) -> np.dtype:
    import tensorflow as tf

    return np.dtype(tf.as_dtype(dtype_enum).as_numpy_dtype)


def tensor_proto_to_array(tensor: Any) -> np.ndarray:
    """Value of a ``TensorProto``; a read-only view over ``tensor_content`` when it is set."""
    shape = [d.size for d in tensor.tensor_shape.dim]
    if tensor.tensor_content and tensor.dtype not in (types_pb2.DT_STRING, types_pb2.DT_RESOURCE,
                                                      types_pb2.DT_VARIANT):
        dtype = _dtype_to_numpy(tensor.dtype)
        content = tensor.tensor_content
        count = int(np.prod(shape)) if shape else 1
        if len(content) != count * dtype.itemsize:
            raise GraphError(
                f"tensor_content holds {len(content)} bytes but shape {shape} of {dtype} needs "
                f"{count * dtype.itemsize}; the constant is corrupt, re-export the model"
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape)
    import tensorflow as tf

    return tf.make_ndarray(tensor)


def _link(succ: dict, pred: dict, src: str, dst: str, data: dict) -> None:
    """Add edge ``src -> dst`` with ``data`` to networkx ``MultiDiGraph`` adjacency dicts, as ``add_edge`` does
    (one key dict shared by ``succ[src][dst]`` and ``pred[dst][src]``, the lowest free key) minus its per-call
    cost; the caller clears networkx's cache once after a batch."""
    keys = pred[dst].get(src)
    if keys is None:
        keys = pred[dst][src] = succ[src][dst] = {}
    key = len(keys)
    while key in keys:
        key += 1
    keys[key] = data


class Graph:
    """A mutable TensorFlow graph: ``NodeDef`` s by name plus a networkx view.

    ``protected`` names nodes a rule may not remove (signature tensors are
    protected automatically through :attr:`signatures`).

    The Graph keeps the ``NodeDef`` s of the ``graph_def`` it is built from
    instead of copying them, and never modifies a node it holds: every change
    stores a new ``NodeDef``. So ``graph_def`` is left as it was, and must not
    be modified while the Graph is in use (pass a copy if it will be).
    """

    def __init__(
        self,
        graph_def: graph_pb2.GraphDef | None = None,
        *,
        signatures: dict[str, Signature] | None = None,
        protected: Iterable[str] = (),
    ) -> None:
        graph_def = graph_def if graph_def is not None else graph_pb2.GraphDef()
        self.versions = versions_pb2.VersionDef()
        self.versions.CopyFrom(graph_def.versions)
        self.library = function_pb2.FunctionDefLibrary()
        self.library.CopyFrom(graph_def.library)
        self.signatures: dict[str, Signature] = signatures if signatures is not None else {}
        self.protected: set[str] = set(protected)
        self._nodes: dict[str, node_def_pb2.NodeDef] = {}
        self.nx = nx.MultiDiGraph()
        self._name_counter: Counter[str] = Counter()
        duplicates = []
        # Millions of long-lived, acyclic objects: the cyclic GC would rescan them again and again
        # (~40% of the build time of a 300k-node graph). Paused while building.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            # The nodes are kept, not copied: a Graph never modifies a NodeDef it holds (every change
            # stores a new one), so sharing them costs no memory and leaves ``graph_def`` as it was.
            nodes = self._nodes
            for node in graph_def.node:
                name = node.name
                if name in nodes:
                    duplicates.append(name)
                    continue
                nodes[name] = node
            if duplicates:
                raise GraphError(
                    f"duplicate node names in GraphDef: {', '.join(sorted(set(duplicates))[:5])}; "
                    "node names must be unique — the graph is corrupt"
                )
            self._build_view()
        finally:
            if gc_was_enabled:
                gc.enable()

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[node_def_pb2.NodeDef]:
        return iter(list(self._nodes.values()))

    def __repr__(self) -> str:
        return f"<Graph {len(self)} nodes, {len(self.library.function)} functions>"

    @property
    def node_names(self) -> list[str]:
        return list(self._nodes)

    def node(self, name: str) -> node_def_pb2.NodeDef:
        """The ``NodeDef`` called ``name`` (``"x:0"`` and ``"^x"`` are accepted too)."""
        key = parse_input(name)[0] if name not in self._nodes else name
        try:
            return self._nodes[key]
        except KeyError:
            raise GraphError(f"no node named {key!r} in the graph") from None

    def get(self, name: str) -> node_def_pb2.NodeDef | None:
        return self._nodes.get(name)

    def nodes_by_op(self, *ops: str) -> list[node_def_pb2.NodeDef]:
        """All nodes whose op is one of ``ops``."""
        wanted = set(ops)
        return [n for n in self._nodes.values() if n.op in wanted]

    def op_histogram(self) -> Counter[str]:
        return Counter(n.op for n in self._nodes.values())

    # ------------------------------------------------------------- edges/view
    def _build_view(self) -> None:
        """Fill the (empty) networkx view from the nodes in one pass.

        Writes the dicts ``MultiDiGraph.add_node``/``add_edge`` would build
        (``_node``, ``_succ``/``_adj``, ``_pred``; one key dict shared by both
        directions; keys 0, 1, ... per node pair) without their per-call cost,
        a third of the load time of a large graph.
        """
        g = self.nx
        node_attr, succ, pred = g._node, g._succ, g._pred  # noqa: SLF001
        for name, node in self._nodes.items():
            node_attr[name] = {"op": node.op}
            succ[name] = {}
            pred[name] = {}
        for name, node in self._nodes.items():
            for dst_port, inp in enumerate(node.input):
                src, src_port, control = parse_input(inp)
                if src not in node_attr:  # dangling; lint reports it
                    node_attr[src] = {"op": None}
                    succ[src] = {}
                    pred[src] = {}
                _link(succ, pred, src, name, {"src_port": src_port, "dst_port": -1 if control else dst_port,
                                              "control": control})
        nx._clear_cache(g)  # noqa: SLF001 - (networkx caches views of the adjacency)

    def _add_edges(self, node: node_def_pb2.NodeDef, *, strict: bool) -> None:
        for dst_port, inp in enumerate(node.input):
            src, src_port, control = parse_input(inp)
            if src not in self._nodes:
                if strict:
                    raise GraphError(f"node {node.name!r} input {inp!r} names no node in the graph")
                self.nx.add_node(src, op=None)  # dangling; lint reports it
            self.nx.add_edge(src, node.name, src_port=src_port, dst_port=-1 if control else dst_port,
                             control=control)

    def _update_in_edges(self, previous: node_def_pb2.NodeDef, node: node_def_pb2.NodeDef) -> None:
        """Change the in-edges of ``node`` from those of ``previous`` to its own: only the differing edges.

        A node with many inputs (a ``NoOp`` gathering hundreds of control
        dependencies) changes one input at a time; rebuilding all its edges
        each time would be quadratic. Data inputs are compared by position,
        control inputs as a multiset of strings.
        """
        def split(inputs: list[str]) -> tuple[list[str], list[str]]:
            k = next((i for i, s in enumerate(inputs) if s.startswith("^")), len(inputs))
            return inputs[:k], inputs[k:]

        old_data, old_ctrl = split(list(previous.input))
        new_data, new_ctrl = split(list(node.input))
        gone: list[tuple[str, int]] = []  # (input string, dst_port)
        came: list[tuple[str, int]] = []
        for i in range(max(len(old_data), len(new_data))):
            a = old_data[i] if i < len(old_data) else None
            b = new_data[i] if i < len(new_data) else None
            if a != b:
                if a is not None:
                    gone.append((a, i))
                if b is not None:
                    came.append((b, i))
        if old_ctrl != new_ctrl:
            c_old, c_new = Counter(old_ctrl), Counter(new_ctrl)
            gone.extend((s, -1) for s, c in (c_old - c_new).items() for _ in range(c))
            came.extend((s, -1) for s, c in (c_new - c_old).items() for _ in range(c))
        name = node.name
        adj = self.nx._adj  # noqa: SLF001 - {src: {dst: {key: data}}}, read only here
        for inp, dst_port in gone:
            src, src_port, control = parse_input(inp)
            key = next(k for k, d in adj[src][name].items()
                       if d["src_port"] == src_port and d["dst_port"] == dst_port and d["control"] == control)
            self.nx.remove_edge(src, name, key)
            self._drop_dangling([src])
        for inp, dst_port in came:
            src, src_port, control = parse_input(inp)
            self.nx.add_edge(src, name, src_port=src_port, dst_port=dst_port, control=control)

    def _remove_in_edges(self, name: str) -> None:
        edges = list(self.nx.in_edges(name, keys=True))
        self.nx.remove_edges_from(edges)
        self._drop_dangling(src for src, _, _ in edges)

    def _drop_dangling(self, names: Iterable[str]) -> None:
        """Remove from the view the names that only stood for missing inputs and have no edge left."""
        for src in names:
            if src in self.nx and self.nx.nodes[src].get("op") is None and self.nx.degree(src) == 0:
                self.nx.remove_node(src)

    def producer(self, tensor: str) -> node_def_pb2.NodeDef:
        """The node that produces ``tensor`` (``"x:1"``, ``"x"`` or ``"^x"``)."""
        return self.node(parse_input(tensor)[0])

    def consumers(self, tensor_or_node: str) -> list[tuple[str, int]]:
        """Data consumers as ``(node, input_index)``.

        ``"x:1"`` gives the consumers of that output only; a bare node name
        gives the consumers of any of its outputs.
        """
        name, port, _ = parse_input(tensor_or_node)
        only_port = port if ":" in tensor_or_node else None
        out = []
        for _, dst, data in self.nx.out_edges(name, data=True):
            if data["control"]:
                continue
            if only_port is None or data["src_port"] == only_port:
                out.append((dst, data["dst_port"]))
        return sorted(set(out))

    def control_consumers(self, name: str) -> list[str]:
        """Nodes with a control dependency ``^name``."""
        return sorted({dst for _, dst, d in self.nx.out_edges(name, data=True) if d["control"]})

    def consumer_nodes(self, name: str) -> list[str]:
        """Every node that reads ``name`` by data or control edge."""
        return sorted(set(self.nx.successors(name))) if name in self.nx else []

    def input_nodes(self, name: str) -> list[str]:
        """Producers of the data inputs of ``name``, in input order."""
        return [parse_input(i)[0] for i in self.node(name).input if not i.startswith("^")]

    def data_inputs(self, name: str) -> list[str]:
        return [i for i in self.node(name).input if not i.startswith("^")]

    def control_inputs(self, name: str) -> list[str]:
        return [i[1:] for i in self.node(name).input if i.startswith("^")]

    # ------------------------------------------------------------- protection
    def signature_tensors(self) -> set[str]:
        out: set[str] = set()
        for sig in self.signatures.values():
            for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
                out.update(spec.tensor_names())
        return out

    def _signature_nodes(self) -> Iterator[str]:
        """The producer of every signature tensor (repeats included)."""
        for sig in self.signatures.values():
            for spec in (*sig.inputs.values(), *sig.outputs.values()):
                for t in spec.tensor_names():
                    yield parse_input(t)[0]

    def protected_nodes(self) -> set[str]:
        """Nodes that may not be removed: :attr:`protected` plus signature tensors' producers."""
        return self.protected | set(self._signature_nodes())

    def is_protected(self, name: str) -> bool:
        """``name in protected_nodes()``, without building the set (asked once per removed node)."""
        return name in self.protected or any(n == name for n in self._signature_nodes())

    # -------------------------------------------------------------- mutation
    def unique_name(self, base: str) -> str:
        """A node name starting with ``base`` that is not used yet."""
        if base not in self._nodes and base not in self.nx:
            return base
        while True:
            self._name_counter[base] += 1
            cand = f"{base}_{self._name_counter[base]}"
            if cand not in self._nodes and cand not in self.nx:
                return cand

    def add_node(self, node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef:
        """Add a node whose inputs already exist. Returns the stored ``NodeDef``."""
        return self.add_nodes([node])[0]

    def add_nodes(self, nodes: Iterable[node_def_pb2.NodeDef], *, adopt: bool = False) -> list[node_def_pb2.NodeDef]:
        """Add several nodes at once; they may refer to each other in any order.

        The nodes are copied, unless ``adopt``: then the Graph keeps the given
        objects, which the caller must not modify any more (no copy of a large
        constant).
        """
        stored = []
        for src in nodes:
            if src.name in self._nodes:
                raise GraphError(f"cannot add node {src.name!r}: a node of that name exists")
            if not src.name or not src.op:
                raise GraphError(f"cannot add a node without name and op: {src!r}")
            if adopt:
                node = src
            else:
                node = node_def_pb2.NodeDef()
                node.CopyFrom(src)
            self._nodes[node.name] = node
            if node.name in self.nx:  # was a dangling reference
                self.nx.nodes[node.name]["op"] = node.op
            else:
                self.nx.add_node(node.name, op=node.op)
            stored.append(node)
        try:
            for node in stored:
                for inp in node.input:
                    if parse_input(inp)[0] not in self._nodes:
                        raise GraphError(f"node {node.name!r} input {inp!r} names no node in the graph")
        except GraphError:
            for node in stored:
                del self._nodes[node.name]
                self.nx.remove_node(node.name)
            raise
        for node in stored:
            self._add_edges(node, strict=True)
        return stored

    def update_node(self, node: node_def_pb2.NodeDef, *, adopt: bool = False) -> node_def_pb2.NodeDef:
        """Replace the ``NodeDef`` of the same name (op, attrs and inputs may change).

        ``node`` is copied, unless ``adopt`` (see :meth:`add_nodes`).
        """
        if node.name not in self._nodes:
            raise GraphError(f"cannot update node {node.name!r}: no such node")
        for inp in node.input:
            if parse_input(inp)[0] not in self._nodes:
                raise GraphError(f"node {node.name!r} input {inp!r} names no node in the graph")
        if adopt:
            stored = node
        else:
            stored = node_def_pb2.NodeDef()
            stored.CopyFrom(node)
        previous = self._nodes[node.name]
        self._nodes[node.name] = stored
        self.nx.nodes[node.name]["op"] = stored.op
        if previous.input != stored.input:
            self._update_in_edges(previous, stored)
        if stored.op == "Placeholder" and self.signatures:
            self._sync_signature_inputs(previous, stored)
        return stored

    def _sync_signature_inputs(self, previous: node_def_pb2.NodeDef, node: node_def_pb2.NodeDef) -> None:
        """A signature input fed by Placeholder ``node`` follows a change of its ``dtype``/``shape`` attrs."""
        changed = [k for k in ("dtype", "shape") if (k in node.attr) and (k not in previous.attr
                                                                          or previous.attr[k] != node.attr[k])]
        if not changed:
            return
        shape: list[int | None] | None = None
        if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
            shape = [None if d.size < 0 else d.size for d in node.attr["shape"].shape.dim]
        tensor = f"{node.name}:0"
        for sig in self.signatures.values():
            for spec in sig.inputs.values():
                if spec.name and tensor_name(spec.name) == tensor:
                    if "dtype" in changed:
                        spec.dtype = node.attr["dtype"].type
                    if "shape" in changed:
                        spec.shape = shape

    def set_inputs(self, name: str, inputs: Iterable[str]) -> None:
        """Replace the input list of node ``name``."""
        node = node_def_pb2.NodeDef()
        node.CopyFrom(self.node(name))
        del node.input[:]
        node.input.extend(inputs)
        self.update_node(node)

    def remove_node(self, name: str, *, force: bool = False) -> None:
        """Remove a node. Refused while it has consumers or is protected, unless ``force``."""
        if name not in self._nodes:
            raise GraphError(f"cannot remove node {name!r}: no such node")
        if not force:
            users = self.consumer_nodes(name)
            if users:
                raise GraphError(
                    f"cannot remove node {name!r}: still consumed by {', '.join(users[:5])}"
                    + (" …" if len(users) > 5 else "")
                )
            if self.is_protected(name):
                raise GraphError(
                    f"cannot remove node {name!r}: it is protected (signature tensor, init op or table); "
                    "use replace_all_uses to move the signature first"
                )
        del self._nodes[name]
        if self.nx._succ[name]:  # noqa: SLF001 - consumers now dangle (force); lint reports them
            self._remove_in_edges(name)
            self.nx.nodes[name]["op"] = None
        else:
            sources = list(self.nx._pred[name])  # noqa: SLF001
            self.nx.remove_node(name)  # and its in-edges
            self._drop_dangling(sources)
        self.protected.discard(name)

    def remove_nodes(self, names: Iterable[str]) -> None:
        """Remove a set of nodes that only consume each other (any order)."""
        names = set(names)
        for name in names:
            outside = set(self.consumer_nodes(name)) - names
            if outside:
                raise GraphError(f"cannot remove node {name!r}: still consumed by {', '.join(sorted(outside)[:5])}")
            if self.is_protected(name):
                raise GraphError(f"cannot remove node {name!r}: it is protected")
        for name in names:
            self._remove_in_edges(name)
        for name in names:
            del self._nodes[name]
            self.nx.remove_node(name)
            self.protected.discard(name)

    def replace_all_uses(self, old: str, new: str) -> int:
        """Make every data consumer of tensor ``old`` read tensor ``new``.

        Signature inputs/outputs naming ``old`` are rewritten to ``new``.
        Returns the number of inputs rewritten.
        """
        return self.replace_uses({old: new})

    def replace_uses(self, mapping: dict[str, str]) -> int:
        """:meth:`replace_all_uses` for many ``{old: new}`` tensors at once (each consumer copied once).

        The same as calling :meth:`replace_all_uses` for each pair in order;
        when a ``new`` is also an ``old`` (a chain, where the order matters)
        that is what it does. Returns the number of inputs rewritten.
        """
        by_node: dict[str, dict[int, tuple[str, int, str]]] = {}
        for old, new in mapping.items():
            old_node, old_port, c1 = parse_input(old)
            new_node, new_port, c2 = parse_input(new)
            if c1 or c2:
                raise GraphError("replace_all_uses takes tensors; use replace_control_uses for control edges")
            if new_node not in self._nodes:
                raise GraphError(f"cannot replace {old!r} by {new!r}: no node named {new_node!r}")
            if old_node == new_node and old_port == new_port:
                continue
            by_node.setdefault(old_node, {})[old_port] = (new_node, new_port, input_string(new_node, new_port))
        if len(mapping) > 1:
            for ports in by_node.values():
                for new_node, new_port, _ in ports.values():
                    if new_port in by_node.get(new_node, ()):
                        return sum(self.replace_uses({old: new}) for old, new in mapping.items())
        # Edit the consumers' inputs and edges in place of a generic update_node (no re-validation, one
        # copy per consumer): a data edge's dst_port is the index of the input it stands for.
        succ = self.nx._succ  # noqa: SLF001 - read here, edited through networkx below
        edits: dict[str, list[tuple[str, int, int, str, int, str]]] = {}
        for old_node, ports in by_node.items():
            for dst, edges in succ.get(old_node, {}).items():
                for key, d in edges.items():
                    if not d["control"] and d["src_port"] in ports:
                        new_node, new_port, new_inp = ports[d["src_port"]]
                        edits.setdefault(dst, []).append((old_node, key, d["dst_port"], new_node, new_port, new_inp))
        count = 0
        pred = self.nx._pred  # noqa: SLF001 - edges moved in the dicts networkx keeps (as in _build_view)
        for dst, items in edits.items():
            node = node_def_pb2.NodeDef()
            node.CopyFrom(self._nodes[dst])
            preds = pred[dst]
            for old_node, key, dst_port, new_node, new_port, new_inp in items:
                node.input[dst_port] = new_inp
                keys = succ[old_node][dst]  # the key dict is shared by _succ[old][dst] and _pred[dst][old]
                del keys[key]
                if not keys:
                    del succ[old_node][dst]
                    del preds[old_node]
                _link(succ, pred, new_node, dst, {"src_port": new_port, "dst_port": dst_port, "control": False})
                count += 1
            self._nodes[dst] = node
        nx._clear_cache(self.nx)  # noqa: SLF001
        renames: dict[str, str] = {}
        self._drop_dangling(by_node)
        for old_node, ports in by_node.items():
            for old_port, (new_node, new_port, _) in ports.items():
                renames[f"{old_node}:{old_port}"] = f"{new_node}:{new_port}"
                if old_node in self.protected and old_port == 0:
                    self.protected.discard(old_node)
                    self.protected.add(new_node)
        for sig in self.signatures.values():
            for spec in (*sig.inputs.values(), *sig.outputs.values()):
                spec.rename_tensors(renames)
        return count

    def _rewrite_signatures(self, old: str, new: str) -> None:
        if not self.signatures:
            return
        for sig in self.signatures.values():
            for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
                spec.rename_tensor(old, new)

    def replace_control_uses(self, old_node: str, new_nodes: Iterable[str]) -> None:
        """Nodes with ``^old_node`` depend on each of ``new_nodes`` instead."""
        new_nodes = [n for n in dict.fromkeys(new_nodes)]
        for n in new_nodes:
            if n not in self._nodes:
                raise GraphError(f"cannot add control dependency on {n!r}: no such node")
        # Only the control edges change: edit them directly (a NoOp gathering hundreds of control
        # dependencies sees one replaced at a time; a generic update would be quadratic).
        old_input = "^" + old_node
        adj = self.nx._adj  # noqa: SLF001 - {src: {dst: {key: data}}}
        for dst in self.control_consumers(old_node):
            current = self._nodes[dst]
            for key in [k for k, d in adj[old_node][dst].items() if d["control"]]:
                self.nx.remove_edge(old_node, dst, key)
            extra: list[str] = []
            for n in new_nodes:
                if n != dst and dst not in adj[n]:  # (n already feeds dst by a data or control edge)
                    self.nx.add_edge(n, dst, src_port=-1, dst_port=-1, control=True)
                    extra.append("^" + n)
            node = node_def_pb2.NodeDef()
            node.CopyFrom(current)
            del node.input[:]
            node.input.extend([i for i in current.input if i != old_input] + extra)
            self._nodes[dst] = node
        self._drop_dangling([old_node])

    def rename(self, old: str, new: str) -> None:
        """Rename node ``old`` to ``new``, rewriting consumers and signatures."""
        if new in self._nodes:
            raise GraphError(f"cannot rename {old!r} to {new!r}: the name is taken")
        node = node_def_pb2.NodeDef()
        node.CopyFrom(self.node(old))
        users = self.consumer_nodes(old)
        ports = {d["src_port"] for _, _, d in self.nx.out_edges(old, data=True) if not d["control"]}
        for sig in self.signatures.values():
            for spec in list(sig.inputs.values()) + list(sig.outputs.values()):
                for t in spec.tensor_names():
                    if parse_input(t)[0] == old:
                        ports.add(parse_input(t)[1])
        node.name = new
        self.add_nodes([node])
        for p in ports:
            self.replace_all_uses(f"{old}:{p}", f"{new}:{p}")
        self.replace_control_uses(old, [new])
        was_protected = old in self.protected
        self.remove_node(old, force=True)
        assert not users or not self.consumer_nodes(old) if old in self.nx else True
        if was_protected:
            self.protected.add(new)

    # ---------------------------------------------------------------- queries
    def const_value(self, name: str) -> np.ndarray:
        """The numpy value of ``Const`` node ``name`` (a read-only view, no copy, where possible)."""
        node = self.node(name)
        if node.op != "Const":
            raise GraphError(f"node {name!r} is a {node.op}, not a Const")
        if "value" not in node.attr:  # (indexing a proto map would insert the key)
            raise GraphError(f"Const {name!r} has no value attr; the graph is corrupt")
        return tensor_proto_to_array(node.attr["value"].tensor)

    def is_const(self, tensor_or_node: str) -> bool:
        node = self.get(parse_input(tensor_or_node)[0])
        return node is not None and node.op == "Const"

    def topological_order(self) -> list[str]:
        """Node names, producers first. Raises :class:`GraphError` on a cycle."""
        try:
            return list(nx.topological_sort(self.nx.subgraph(self._nodes)))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(self.nx)
            raise GraphError(
                "the graph has a cycle: " + " -> ".join(e[0] for e in cycle[:8])
            ) from None

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """``names`` and every node they depend on (data or control)."""
        seen: set[str] = set()
        stack = [parse_input(n)[0] for n in names]
        while stack:
            n = stack.pop()
            if n in seen or n not in self._nodes:
                continue
            seen.add(n)
            stack.extend(parse_input(i)[0] for i in self._nodes[n].input)
        return seen

    def output_dtype(self, tensor: str) -> int | None:
        """The ``DataType`` enum of ``tensor`` from the producer's attrs, when it can be read."""
        from graphxform.core.opdefs import output_dtypes

        name, port, _ = parse_input(tensor)
        dtypes = output_dtypes(self.node(name))
        return dtypes[port] if dtypes and port < len(dtypes) else None

    # ----------------------------------------------------------------- export
    def to_graph_def(self) -> graph_pb2.GraphDef:
        """A new ``GraphDef`` holding a copy of every node, the library and versions."""
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(self.versions)
        gd.library.CopyFrom(self.library)
        gd.node.extend(self._nodes.values())
        return gd

    def take_graph_def(self) -> graph_pb2.GraphDef:
        """Move the nodes into a new ``GraphDef``, leaving this Graph empty.

        Like :meth:`to_graph_def`, but each node is let go as soon as it is
        copied, so memory grows by about one node rather than by the graph.
        """
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(self.versions)
        gd.library.CopyFrom(self.library)
        nodes, add = self._nodes, gd.node.add
        for name in list(nodes):
            add().CopyFrom(nodes.pop(name))
        self.nx.clear()
        self.protected.clear()
        return gd

    def copy(self) -> Graph:
        """A deep copy (signatures are copied too)."""
        import copy as _copy

        return Graph(self.to_graph_def(), signatures=_copy.deepcopy(self.signatures), protected=set(self.protected))

    # ------------------------------------------------------------------- lint
    def lint(self) -> list[str]:
        """Problems found: dangling inputs, view/proto mismatch, cycles, missing signature tensors."""
        problems: list[str] = []
        for node in self._nodes.values():
            for inp in node.input:
                if parse_input(inp)[0] not in self._nodes:
                    problems.append(f"node {node.name!r} input {inp!r} names no node")
        view_nodes = {n for n, d in self.nx.nodes(data=True) if d.get("op") is not None}
        if view_nodes != set(self._nodes):
            diff = view_nodes.symmetric_difference(self._nodes)
            problems.append(f"view and proto disagree on nodes: {sorted(diff)[:5]}")
        expected = Counter()
        for node in self._nodes.values():
            for dst_port, inp in enumerate(node.input):
                src, src_port, control = parse_input(inp)
                expected[(src, node.name, src_port, -1 if control else dst_port, control)] += 1
        actual = Counter(
            (s, d, a["src_port"], a["dst_port"], a["control"]) for s, d, a in self.nx.edges(data=True)
        )
        if expected != actual:
            diff = (expected - actual) + (actual - expected)
            problems.append(f"view and proto disagree on edges: {list(diff)[:3]}")
        sub = self.nx.subgraph(self._nodes)
        if not nx.is_directed_acyclic_graph(sub):
            ops = nx.get_node_attributes(sub, "op")
            cf = {n for n, o in ops.items() if o in CONTROL_FLOW_OPS}
            acyclic = sub.subgraph(set(sub) - cf)
            if not nx.is_directed_acyclic_graph(acyclic):
                cycle = nx.find_cycle(acyclic)
                problems.append("cycle outside control-flow frames: " + " -> ".join(e[0] for e in cycle[:8]))
        for t in self.signature_tensors():
            if parse_input(t)[0] not in self._nodes:
                problems.append(f"signature tensor {t!r} names no node")
        for p in self.protected:
            if p not in self._nodes:
                problems.append(f"protected node {p!r} is missing")
        return problems

    def check(self) -> None:
        """Raise :class:`GraphError` listing what :meth:`lint` found."""
        problems = self.lint()
        if problems:
            raise GraphError("graph lint failed: " + "; ".join(problems[:10]))
