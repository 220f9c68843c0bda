"""``sparsify_gather`` (GTT): a ``Gather`` of a mostly-zero ``[N, 1]`` embedding as a hash-table lookup."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from graphxform import Context, NodeDef, Param, Pass, Replacement, const, copy_node, make_node, parse_input, register
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.nodes import tensor_proto_to_array

from ._graph_edits import replacement_for

log = logging.getLogger(__name__)

#: Values below this (in magnitude) are dropped from the table (GTT: 1e-5).
THRESHOLD = 1.0e-5
_WEIGHT_OPS = ("Const", "Variable", "VariableV2")
#: Nodes left with a single input after losing one are removed too (GTT's list).
_ONE_INPUT_USELESS = ("Assign", "Reshape", "Equal", "Mean", "ScalarSummary")


@dataclass
class _Gather:
    gather: NodeDef
    identity: NodeDef
    weights: NodeDef


def _monolithic_key(name: str) -> str:
    """``w/part_1`` -> ``w``: the checkpoint key of a partitioned variable (GTT's ``GetMonolithicTensorKey``)."""
    parts = name.split("/")
    return "/".join(parts[:-1]) if len(parts) > 1 and parts[-1].startswith("part_") else name


def _slice_spec(nodes: dict[str, NodeDef], variable: str) -> str:
    """The ``shape_and_slices`` entry the saver restores ``variable`` with (GTT's ``ObtainTensorSlice``)."""
    restore = next((parse_input(n.input[1])[0] for n in nodes.values()
                    if len(n.name.split("/")) == 2 and n.name.split("/")[0].startswith("save")
                    and n.name.split("/")[1].startswith("Assign") and len(n.input) > 1 and n.input[0] == variable), None)
    node = nodes.get(restore or "")
    if node is None or node.op != "RestoreV2" or len(node.input) < 3:
        raise RuleError(f"rule 'sparsify_gather': no save/Assign restores variable {variable!r} from a RestoreV2")
    names, specs = (nodes.get(parse_input(node.input[i])[0]) for i in (1, 2))
    if names is None or specs is None or names.op != "Const" or specs.op != "Const":
        raise RuleError(f"rule 'sparsify_gather': the RestoreV2 {restore!r} of {variable!r} has no constant "
                        "tensor names / slices")
    keys = [k.decode() for k in tensor_proto_to_array(names.attr["value"].tensor).reshape(-1)]
    if _monolithic_key(variable) not in keys:
        raise RuleError(f"rule 'sparsify_gather': unable to find the RestoreV2 entry for variable {variable!r}")
    return tensor_proto_to_array(specs.attr["value"].tensor).reshape(-1)[keys.index(_monolithic_key(variable))].decode()


def _read_checkpoint(prefix: str, variable: str, spec: str) -> np.ndarray:
    """``variable`` (its slice ``spec``, e.g. ``"4 1 0,2:0,1"``) from the checkpoint ``prefix``."""
    if spec:  # a slice that covers the whole tensor is read whole, as GTT does
        parts = spec.split(" ")
        full = [int(d) for d in parts[:-1]]
        sizes = [full[i] if s == "-" else int(s.split(",")[1]) for i, s in enumerate(parts[-1].split(":"))]
        spec = "" if sizes == full else spec
    g = tf.Graph()
    with g.as_default():
        t = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[_monolithic_key(variable)], shape_and_slices=[spec],
                                 dtypes=[tf.float32])
    try:
        with tf.compat.v1.Session(graph=g) as s:
            return np.asarray(s.run(t)[0])
    except tf.errors.OpError as exc:
        raise RuleError(f"rule 'sparsify_gather': cannot read {_monolithic_key(variable)!r} from checkpoint "
                        f"{prefix}: {exc.message.splitlines()[0]}") from None


@register
class SparsifyGather(Pass):
    """Replaces ``Gather(Identity(w), ids)`` of a ``[N, 1]`` float embedding ``w`` (a ``Const``, or a variable read
    from ``input_checkpoint``) by ``ExpandDims(LookupTableFind(HashTable(nonzero rows of w), ids, 0.0), -1)``.

    GTT's ``sparsify_gather(input_checkpoint=, group_init_node=group_deps)``: only the non-zero rows (|v| >= 1e-5)
    are kept, in ``<w>/indices`` (int64) and ``<w>/values``; ``<w>/InitializeTable`` fills ``<w>/HashTable`` and
    runs under the ``group_init_node`` NoOp (created if missing; name your SavedModel's init op there so the
    loader fills the table); the ``ExpandDims`` takes the gather's name. ``GatherV2`` over axis 0 too. As GTT,
    the weights, their ``Identity``, initializer and restore ``Assign`` s go, every input naming them is dropped
    (a ``ConcatV2`` of the weights loses that input; left with one, it becomes an ``Identity``), and what is left
    unreferenced goes. Unlike GTT, which fails on them, gathers of other shapes, dtypes or axes are left alone,
    and several gathers of one embedding share its table. Runs once, after the other rules (``final``).
    """

    name = "sparsify_gather"
    final = True
    idempotent = True
    params = {
        "input_checkpoint": Param(str, "", "checkpoint prefix to read gathered variables from"),
        "group_init_node": Param(str, "group_deps", "the NoOp that runs the new table initializers"),
    }

    def _matches(self, nodes: dict[str, NodeDef], op: str) -> list[_Gather]:
        out = []
        for gather in [n for n in nodes.values() if n.op == op]:
            data = [i for i in gather.input if not i.startswith("^")]
            if len(data) != (3 if op == "GatherV2" else 2):
                continue
            identity = nodes.get(parse_input(data[0])[0])
            if identity is None or identity.op != "Identity":
                continue
            idata = [i for i in identity.input if not i.startswith("^")]
            weights = nodes.get(parse_input(idata[0])[0]) if len(idata) == 1 else None
            if weights is None or weights.op not in _WEIGHT_OPS:
                continue
            reason = self._reason(nodes, gather, weights, data)
            if reason:
                log.info("sparsify_gather: %s", reason)
                continue
            out.append(_Gather(gather, identity, weights))
        return out

    @staticmethod
    def _reason(nodes: dict[str, NodeDef], gather: NodeDef, weights: NodeDef, data: list[str]) -> str | None:
        if gather.op == "GatherV2":
            axis = nodes.get(parse_input(data[2])[0])
            if axis is None or axis.op != "Const":
                return f"the axis of {gather.name!r} is not a Const"
            if int(np.asarray(tensor_proto_to_array(axis.attr["value"].tensor)).reshape(-1)[0]) != 0:
                return f"{gather.name!r} does not gather along axis 0"
        if "dtype" in weights.attr and weights.attr["dtype"].type != tf.float32.as_datatype_enum:
            return f"{weights.name!r} is not float"
        if weights.op == "Const":
            shape = [d.size for d in weights.attr["value"].tensor.tensor_shape.dim]
            if len(shape) != 2 or shape[1] != 1:
                return f"{weights.name!r} has shape {shape}, not [N, 1]"
        return None

    def _weights(self, nodes: dict[str, NodeDef], weights: NodeDef) -> np.ndarray | None:
        if weights.op == "Const":
            return np.asarray(tensor_proto_to_array(weights.attr["value"].tensor))
        prefix = self.args["input_checkpoint"]
        if not prefix:
            raise RuleError(f"rule 'sparsify_gather': {weights.name!r} is a variable: pass its checkpoint as "
                            "input_checkpoint=")
        value = _read_checkpoint(str(Path(prefix).expanduser()), weights.name, _slice_spec(nodes, weights.name))
        if value.ndim != 2 or value.shape[1] != 1:
            log.info("sparsify_gather: %s has shape %s, not [N, 1]", weights.name, list(value.shape))
            return None
        return value

    def _table(self, nodes: dict[str, NodeDef], w: str, value: np.ndarray) -> str:
        flat = value.reshape(-1)
        keep = np.flatnonzero(np.abs(flat) >= THRESHOLD)
        indices, values = (keep.astype(np.int64), flat[keep]) if keep.size else (np.zeros(1, np.int64),
                                                                               np.zeros(1, np.float32))
        for node in (const(f"{w}/indices", indices, tf.int64), const(f"{w}/values", values.astype(np.float32)),
                     make_node("HashTable", f"{w}/HashTable", attrs={"key_dtype": tf.int64, "value_dtype": tf.float32}),
                     make_node("InitializeTable", f"{w}/InitializeTable",
                               [f"{w}/HashTable", f"{w}/indices", f"{w}/values"],
                               attrs={"Tkey": tf.int64, "Tval": tf.float32})):
            nodes[node.name] = node
        return f"{w}/InitializeTable"

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        state: dict = ctx.cached("sparsify_gather", dict)
        if state.get("done"):
            return []
        state["done"] = True
        keep = set(graph.protected) | {parse_input(t)[0] for t in graph.signature_tensors()}
        nodes = {n.name: copy_node(n) for n in graph}
        count = 0
        for op in ("Gather", "GatherV2"):
            count += self._sparsify(nodes, op, keep)
        if not count:
            return []
        log.info("sparsify_gather: %d gathers became table lookups", count)
        return [replacement_for(graph, nodes.values())]

    def _sparsify(self, nodes: dict[str, NodeDef], op: str, keep: set[str]) -> int:
        matches = self._matches(nodes, op)
        tables: dict[str, str] = {}
        removed: list[str] = []
        for m in matches:
            w, gname = m.weights.name, m.gather.name
            if w not in tables:
                value = self._weights(nodes, m.weights)
                if value is None:
                    continue
                tables[w] = self._table(nodes, w, value)
            ids = [i for i in m.gather.input if not i.startswith("^")][1]
            for node in (make_node("LookupTableFind", f"{gname}/LookupTableFind",
                                   [f"{w}/HashTable", ids, f"{gname}/Const"],
                                   attrs={"Tin": tf.int64, "Tout": tf.float32}),
                         const(f"{gname}/Const", np.float32(0.0)),
                         const(f"{gname}/ExpandDims/Const", np.int32(-1)),
                         make_node("ExpandDims", gname, [f"{gname}/LookupTableFind", f"{gname}/ExpandDims/Const"],
                                   device=m.gather.device, attrs={"T": tf.float32})):
                nodes[node.name] = node
            if m.gather.op == "GatherV2":
                removed.append(parse_input([i for i in m.gather.input if not i.startswith("^")][2])[0])
            removed += [w, m.identity.name]
        if not tables:
            return 0
        init = nodes.get(self.args["group_init_node"])
        if init is not None and init.op != "NoOp":
            raise RuleError(f"rule 'sparsify_gather': group_init_node={init.name} is a {init.op}, not a NoOp; name "
                            "the NoOp that should run the table initializers")
        if init is None:
            init = make_node("NoOp", self.args["group_init_node"])
        nodes[init.name] = init
        init.input.extend(f"^{t}" for t in tables.values())
        _remove_cascade(nodes, removed, keep)
        return len(tables)


def _refs(nodes: dict[str, NodeDef]) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in nodes.values():
        for inp in node.input:
            name = parse_input(inp)[0]
            out[name] = out.get(name, 0) + 1
    return out


def _remove_cascade(nodes: dict[str, NodeDef], removed: list[str], keep: set[str]) -> None:
    """GTT's clean-up: delete the removed nodes and every input naming them; a ``ConcatV2`` loses that input (an
    ``Identity`` when one value is left), a node left without inputs (or an ``Assign``/``Reshape``/... with one)
    goes, and so does whatever ends up unreferenced. ``RestoreV2`` and ``keep`` (inputs, outputs, protected
    nodes) stay."""
    refs = _refs(nodes)
    todo = list(dict.fromkeys(removed))
    while todo:
        name = todo.pop()
        node = nodes.get(name)
        if node is not None and node.op != "RestoreV2" and name not in keep:
            del nodes[name]
            for inp in node.input:
                src = parse_input(inp)[0]
                refs[src] = refs.get(src, 0) - 1
                if refs[src] == 0 and src not in keep:
                    todo.append(src)
        elif node is not None:
            continue
        for other in list(nodes.values()):
            kept = [i for i in other.input if parse_input(i)[0] != name]
            if len(kept) == len(other.input):
                continue
            del other.input[:]
            other.input.extend(kept)
            data = [i for i in kept if not i.startswith("^")]
            if other.op == "ConcatV2":
                if len(data) > 2:
                    other.attr["N"].i = len(data) - 1
                elif len(data) == 2:
                    axis = parse_input(data[1])[0]
                    other.input.remove(data[1])
                    refs[axis] = refs.get(axis, 0) - 1
                    if refs[axis] == 0:
                        todo.append(axis)
                    for key in ("N", "Tidx"):
                        if key in other.attr:
                            del other.attr[key]
                    other.op = "Identity"
            if (other.op in _ONE_INPUT_USELESS and len(other.input) == 1) or not other.input:
                todo.append(other.name)


__all__ = ["SparsifyGather"]
