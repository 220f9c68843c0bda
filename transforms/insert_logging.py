"""``insert_logging`` (GTT): a ``Print`` after every node whose outputs are read (optionally filtered)."""
from __future__ import annotations

import logging

import tensorflow as tf
from tensorflow.core.framework import types_pb2

from graphxform import Context, NodeDef, Param, Pass, Replacement, make_node, parse_input, register, with_inputs
from graphxform.core.graph import Graph
from graphxform.core.opdefs import CONTROL_FLOW_OPS, output_dtypes

log = logging.getLogger(__name__)

_UNPRINTABLE = {types_pb2.DT_RESOURCE: "resource", types_pb2.DT_VARIANT: "variant"}


@register
class InsertLogging(Pass):
    """Replaces ``x -> y`` by ``x -> Print(x) -> y`` for every node ``x`` whose outputs are read (``op=``/``prefix=``
    filter them).

    GTT's ``insert_logging(op=, prefix=, show_name=false, show_op=false, first_n=-1, summarize=1024, message=)``:
    the ``Print`` (named ``<x>__print__``) passes output 0 through and prints every output of ``x`` that is read,
    so the consumers of ``x:0`` read the Print and it runs. ``show_op``/``show_name`` put ``;<op>;`` and
    ``;<x>__print__;`` before ``message``; the ranges ``freeze_requantization_ranges`` reads are logged with
    ``insert_logging(op=RequantizationRange, show_name=true, message="__requant_min_max:")``. Not logged (with
    the reason ``--explain`` prints): nodes whose output 0 nobody reads, ref/resource/variant outputs (a Print
    would change what their readers get) and TF1 control-flow ops. GTT gives the Print every output type of the
    node; here only those of the outputs it prints, so multi-output nodes stay valid. Runs once, after the
    other rules (``final``).
    """

    name = "insert_logging"
    final = True
    idempotent = True
    params = {
        "op": Param(list, [], "only log nodes of these op types (default: every op)"),
        "prefix": Param(list, [], "only log nodes whose name starts with one of these"),
        "show_name": Param(bool, False, "put ;<name>__print__; in the message"),
        "show_op": Param(bool, False, "put ;<op>; in the message"),
        "first_n": Param(int, -1, "print only the first n times (-1: always)"),
        "summarize": Param(int, 1024, "print at most this many elements of each tensor"),
        "message": Param(str, "", "the message printed before the values"),
    }

    def _reason(self, graph: Graph, node: NodeDef) -> str | None:
        name = node.name
        ops, prefixes = self.args["op"], self.args["prefix"]
        if ops and node.op not in ops:
            return f"{name!r} is {node.op}, not one of op={','.join(ops)}"
        if prefixes and not any(name.startswith(p) for p in prefixes):
            return f"{name!r} does not start with prefix={','.join(prefixes)}"
        if 0 not in graph.output_ports(name):
            return f"nothing reads output 0 of {name!r}"
        if node.op in CONTROL_FLOW_OPS:
            return f"{name!r} is control-flow op {node.op}"
        types = output_dtypes(node)
        if not types:
            return f"the output types of {node.op} {name!r} cannot be read from its attrs"
        for port in graph.output_ports(name):
            dt = types[port] if port < len(types) else None
            if dt is None:
                return f"output {port} of {name!r} has no type its attrs tell"
            if dt > 100 or dt in _UNPRINTABLE:
                return f"output {port} of {name!r} is a {_UNPRINTABLE.get(dt, 'ref')} tensor"
        return None

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        state: dict = ctx.cached("insert_logging", dict)
        if state.get("done"):  # one-shot: the Prints' own outputs are read too
            return []
        state["done"] = True
        rep = Replacement()
        printed: dict[str, str] = {}
        for node in graph:
            if self._reason(graph, node) is not None:
                continue
            types = output_dtypes(node) or []
            ports = sorted(graph.output_ports(node.name))
            print_name = graph.unique_name(f"{node.name}__print__")
            message = (f";{node.op};" if self.args["show_op"] else "") + \
                (f";{print_name};" if self.args["show_name"] else "") + self.args["message"]
            rep.add.append(make_node("Print", print_name, [f"{node.name}:0", *(f"{node.name}:{p}" for p in ports)],
                                     device=node.device, attrs={
                                         "T": tf.as_dtype(types[0]), "U": [tf.as_dtype(types[p]) for p in ports],
                                         "message": message, "first_n": self.args["first_n"],
                                         "summarize": self.args["summarize"]}))
            printed[node.name] = print_name
        if not printed:
            return []
        # The readers of x:0 read the Print (signatures keep naming x:0, as GTT's outputs keep their names).
        readers = {dst for name in printed for dst, _ in graph.consumers(f"{name}:0")}
        for dst in sorted(readers):
            node = graph.node(dst)
            inputs = []
            for inp in node.input:
                src, port, control = parse_input(inp)
                inputs.append(printed[src] if src in printed and port == 0 and not control else inp)
            rep.update.append(with_inputs(node, inputs))
        log.info("insert_logging: %d Print nodes", len(rep.add))
        return [rep]

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        return {node.name: self._reason(graph, node) for node in graph}


__all__ = ["InsertLogging"]
