"""The steps of ``quantize_nodes`` besides the quantization itself, on a scratch copy of the graph's nodes.

GTT's ``quantize_nodes`` (quantize_nodes.cc) runs, in order: ``QuantizePlaceholders``, ``HoistFakeQuants``,
``ConvertFakeQuantsToRequantize``, the quantization of every float op, ``MergeAdjacentRequantizes``,
``MergeDuplicateNodes`` and ``RemoveRedundantQuantizations``. Each step here is a function on a
:class:`Scratch` (an ordered ``{name: NodeDef}`` the steps own); the pass hands the final node list to the runner
as one replacement. A match whose inner nodes other nodes still read is skipped, as GTT's
``ReplaceMatchingOpTypes`` skips an inconsistent one.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from graphxform import NodeDef, const, copy_node, make_node, parse_input
from graphxform.core.opdefs import is_stateful

QUINT8, QINT32 = tf.quint8, tf.qint32


def tensor(name: str, port: int) -> str:
    return name if port == 0 else f"{name}:{port}"


class Scratch:
    """An ordered, mutable ``{name: NodeDef}``: the graph while ``quantize_nodes`` works on it."""

    def __init__(self, nodes: Iterable[NodeDef], outputs: set[str]) -> None:
        self.nodes: dict[str, NodeDef] = {n.name: copy_node(n) for n in nodes}
        self.outputs = outputs  # nodes that must keep their names (signature tensors, protected)

    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def get(self, tensor_or_name: str) -> NodeDef | None:
        return self.nodes.get(parse_input(tensor_or_name)[0])

    def data(self, node: NodeDef) -> list[str]:
        return [i for i in node.input if not i.startswith("^")]

    def consumers(self) -> dict[str, set[str]]:
        """{node: the nodes that read it (data or control)}."""
        out: dict[str, set[str]] = {}
        for node in self.nodes.values():
            for inp in node.input:
                out.setdefault(parse_input(inp)[0], set()).add(node.name)
        return out

    def rename_inputs(self, renames: dict[str, str], skip: Iterable[str] = ()) -> None:
        """Every data input naming tensor ``"node:port"`` in ``renames`` reads the new tensor instead."""
        skipped = set(skip)
        for node in self.nodes.values():
            if node.name in skipped:
                continue
            for i, inp in enumerate(node.input):
                name, port, control = parse_input(inp)
                new = renames.get(f"{name}:{port}")
                if new is not None and not control:
                    node.input[i] = new

    def put(self, node: NodeDef) -> None:
        self.nodes[node.name] = node

    def drop(self, *names: str) -> None:
        for name in names:
            self.nodes.pop(name, None)


def _scalar(name: str, value: float) -> NodeDef:
    return const(name, np.float32(value))


def _dequantize(name: str, source: str, dtype: tf.DType = QUINT8) -> NodeDef:
    return make_node("Dequantize", name, [tensor(source, p) for p in range(3)], attrs={"T": dtype,
                                                                                       "mode": "MIN_FIRST"})


def quantize_placeholders(g: Scratch, lo: float, hi: float) -> None:
    """Every float ``Placeholder`` becomes quint8 with range ``[lo, hi]``; its readers read a ``Dequantize``."""
    renames: dict[str, str] = {}
    for node in list(g.nodes.values()):
        if node.op != "Placeholder" or ("dtype" in node.attr and node.attr["dtype"].type != tf.float32):
            continue
        prefix = f"{node.name}_eightbit"
        quantized = copy_node(node)
        quantized.attr["dtype"].type = QUINT8.as_datatype_enum
        g.put(quantized)
        g.put(_scalar(f"{prefix}/min", lo))
        g.put(_scalar(f"{prefix}/max", hi))
        g.put(make_node("Dequantize", f"{prefix}/dequantize", [node.name, f"{prefix}/min", f"{prefix}/max"],
                        attrs={"T": QUINT8, "mode": "MIN_FIRST"}))
        renames[f"{node.name}:0"] = f"{prefix}/dequantize"
    g.rename_inputs(renames, skip=list(renames.values()))  # the Dequantize itself still reads the Placeholder


def _is_const(g: Scratch, t: str) -> bool:
    node = g.get(t)
    return node is not None and node.op == "Const"


def _only_read_by(g: Scratch, users: dict[str, set[str]], name: str, reader: str) -> bool:
    return users.get(name, set()) <= {reader} and name not in g.outputs


def hoist_fake_quants(g: Scratch) -> None:
    """A ``FakeQuantWithMinMaxVars`` at the end of a chain of one-input ops moves up to the chain's start (GTT
    tries chains of 3, 2, then 1 ops): ``FQ(c(b(a(x))))`` becomes ``c'(b(FQ'(a(x))))``, the last op taking the
    FakeQuant's name and ``FQ'`` named ``<FQ>_hoisted``."""
    for depth in (3, 2, 1):
        users = g.consumers()
        for fq in [n for n in g.nodes.values() if n.op == "FakeQuantWithMinMaxVars"]:
            data = g.data(fq)
            if fq.name not in g or len(data) != 3 or not _is_const(g, data[1]) or not _is_const(g, data[2]):
                continue
            chain = _chain(g, data[0], depth)  # chain[0] feeds the FakeQuant, chain[i + 1] feeds chain[i]
            if chain is None:
                continue
            readers = [fq.name] + [n.name for n in chain[:-1]]
            if not all(_only_read_by(g, users, n.name, r) for n, r in zip(chain, readers)):
                continue
            first = chain[-1]  # the FakeQuant goes right before it
            hoisted = copy_node(fq, name=f"{fq.name}_hoisted")
            hoisted.input[0] = first.input[0]
            new_first = copy_node(first)
            new_first.input[0] = hoisted.name
            g.drop(fq.name, first.name)
            g.put(hoisted)
            if depth == 1:
                g.put(copy_node(new_first, name=fq.name))  # the op takes the FakeQuant's name
            else:
                g.put(new_first)
                g.drop(chain[0].name)
                g.put(copy_node(chain[0], name=fq.name))
            users = g.consumers()


def _chain(g: Scratch, start: str, depth: int) -> list[NodeDef] | None:
    """``depth`` nodes from ``start`` up, each with exactly one data input (read at port 0), or ``None``."""
    out: list[NodeDef] = []
    t = start
    for _ in range(depth):
        node = g.get(t)
        if node is None or parse_input(t)[1] != 0 or len(g.data(node)) != 1:
            return None
        out.append(node)
        t = g.data(node)[0]
    return out if g.get(t) is not None else None


def convert_fake_quants(g: Scratch) -> None:
    """``FakeQuantWithMinMaxVars(x, Const lo, Const hi)`` becomes ``Dequantize(Requantize(QuantizeV2(x)))`` with the
    trained range (the ``Dequantize`` takes its name)."""
    for fq in [n for n in g.nodes.values() if n.op == "FakeQuantWithMinMaxVars"]:
        data = g.data(fq)
        if len(data) != 3 or not _is_const(g, data[1]) or not _is_const(g, data[2]):
            continue
        prefix = f"{fq.name}_eightbit"
        lo, hi = data[1], data[2]
        g.put(make_node("QuantizeV2", f"{prefix}/quantize", [data[0], lo, hi], attrs={"T": QINT32, "mode": "MIN_FIRST"}))
        g.put(make_node("Requantize", f"{prefix}/requantize",
                        [*(tensor(f"{prefix}/quantize", p) for p in range(3)), lo, hi],
                        attrs={"Tinput": QINT32, "out_type": QUINT8}))
        g.put(_dequantize(fq.name, f"{prefix}/requantize"))


def merge_adjacent_requantizes(g: Scratch) -> None:
    """``Requantize(QuantizeV2(Dequantize(Requantize(op, RequantizationRange))), Const, Const)``: the dynamic
    requantization goes, the one with constant (trained) ranges reads ``op`` directly."""
    users = g.consumers()
    for outer in [n for n in g.nodes.values() if n.op == "Requantize"]:
        if outer.name not in g:
            continue
        d = g.data(outer)
        q = g.get(d[0]) if len(d) == 5 else None
        if q is None or q.op != "QuantizeV2" or any(parse_input(t)[0] != q.name for t in d[1:3]) \
                or not (_is_const(g, d[3]) and _is_const(g, d[4])):
            continue
        qd = g.data(q)
        deq = g.get(qd[0]) if len(qd) == 3 else None
        if deq is None or deq.op != "Dequantize" or not (_is_const(g, qd[1]) and _is_const(g, qd[2])):
            continue
        dd = g.data(deq)
        inner = g.get(dd[0]) if len(dd) == 3 else None
        if inner is None or inner.op != "Requantize" or any(parse_input(t)[0] != inner.name for t in dd):
            continue
        idata = g.data(inner)
        if len(idata) != 5 or any((g.get(t) is None or g.get(t).op != "RequantizationRange") for t in idata[3:]):
            continue
        source = g.get(idata[0])
        rr = {parse_input(t)[0] for t in idata[3:]}
        inside = {outer.name, q.name, deq.name, inner.name, *rr}
        if any((users.get(n, set()) - inside) or n in g.outputs for n in (q.name, deq.name, inner.name, *rr)):
            continue  # an inner node is read elsewhere: GTT leaves such a match alone
        if source is None:
            continue
        new = copy_node(outer)
        del new.input[:]
        new.input.extend([*(tensor(source.name, p) for p in range(3)), d[3], d[4]])
        g.put(new)
        g.drop(q.name, deq.name, inner.name, *rr)
        users = g.consumers()


def merge_duplicates(g: Scratch, keep_names: set[str]) -> None:
    """GTT's ``MergeDuplicateNodes``: identical stateless nodes (name aside) become one, until none is left."""
    while True:
        seen: dict[bytes, str] = {}
        renames: dict[str, str] = {}
        for node in g.nodes.values():
            if node.name in keep_names or is_stateful(node.op):
                continue
            key = copy_node(node, name="").SerializeToString(deterministic=True)
            if key in seen:
                renames[node.name] = seen[key]
            else:
                seen[key] = node.name
        if not renames:
            return
        for node in g.nodes.values():
            for i, inp in enumerate(node.input):
                name, port, control = parse_input(inp)
                if name in renames:
                    node.input[i] = f"^{renames[name]}" if control else tensor(renames[name], port)
        g.drop(*renames)


def remove_redundant_quantizations(g: Scratch) -> None:
    """``QuantizeV2(Dequantize(q), Min, Max)``: readers of the ``QuantizeV2`` read ``q`` and its range directly, so
    adjacent eight-bit ops stay eight-bit; the ``Dequantize`` stays only when a float op or an output reads it."""
    users = g.consumers()
    renames: dict[str, str] = {}
    gone: list[str] = []
    for q in [n for n in g.nodes.values() if n.op == "QuantizeV2"]:
        qd = g.data(q)
        if len(qd) != 3:
            continue
        deq, lo, hi = g.get(qd[0]), g.get(qd[1]), g.get(qd[2])
        if deq is None or deq.op != "Dequantize" or lo is None or lo.op != "Min" or hi is None or hi.op != "Max":
            continue
        if len(g.data(deq)) != 3 or deq.attr["T"].type != q.attr["T"].type:
            continue
        for p in range(3):
            renames[f"{q.name}:{p}"] = g.data(deq)[p]
        outside = users.get(deq.name, set()) - {q.name, lo.name, hi.name}
        if not outside and deq.name not in g.outputs:
            gone.extend([deq.name, lo.name, hi.name])
        if q.name not in g.outputs:
            gone.append(q.name)
    g.rename_inputs(renames)
    g.drop(*gone)


def prune(g: Scratch, original: set[str]) -> None:
    """Drop the nodes this pass made that nothing reads any more (the ranges of removed quantizations)."""
    while True:
        users = g.consumers()
        dead = [n for n in g.nodes if n not in original and n not in users and n not in g.outputs]
        if not dead:
            return
        g.drop(*dead)


__all__ = ["QINT32", "QUINT8", "Scratch", "convert_fake_quants", "hoist_fake_quants", "merge_adjacent_requantizes",
           "merge_duplicates", "prune", "quantize_placeholders", "remove_redundant_quantizations", "tensor"]
