"""Candidate inputs and outputs of a graph without signatures (a bare GraphDef), as ``summarize_graph`` gave them.

``inspect`` lists them; an export that would write a SavedModel nobody can call names them in its error.
"""
from __future__ import annotations

from typing import Any

from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.opdefs import NOT_OUTPUT_OPS, VARIABLE_OPS, attr_type, output_dtypes
from graphxform.core.signature import dtype_name, shape_list, shape_str


def candidate_inputs(graph: Graph) -> list[dict[str, Any]]:
    """Placeholders (with dtype and shape), the likely inputs of a bare ``GraphDef``."""
    out = []
    for n in graph.nodes_by_op("Placeholder", "PlaceholderWithDefault"):
        shape = shape_list(n.attr["shape"].shape) if "shape" in n.attr else None
        d = {"name": n.name, "op": n.op, "dtype": dtype_name(attr_type(n, "dtype")), "shape": shape,
             "shape_str": shape_str(shape)}
        out.append(d)
    return sorted(out, key=lambda d: d["name"])


def candidate_outputs(graph: Graph) -> list[dict[str, Any]]:
    """Nodes nothing consumes that are not bookkeeping (NoOp, Assert, saver, summaries…): likely outputs."""
    out = []
    for n in graph:
        if n.op in NOT_OUTPUT_OPS or graph.has_consumers(n.name):
            continue
        if n.op == "ReadVariableOp" and all(_op(graph, parse_input(i)[0]) in VARIABLE_OPS
                                            for i in n.input if not i.startswith("^")):
            continue  # a variable read nothing uses (TF2 exports leave one per variable)
        try:
            dtypes = output_dtypes(n)
        except Exception:  # noqa: BLE001 - malformed attrs: still list the node
            dtypes = None
        if dtypes == []:
            continue  # no outputs at all: an op run for its effect
        out.append({"name": n.name, "op": n.op, "dtypes": [dtype_name(t) for t in dtypes] if dtypes else None})
    return sorted(out, key=lambda d: d["name"])


def _op(graph: Graph, name: str) -> str | None:
    node = graph.get(name)
    return node.op if node is not None else None


__all__ = ["candidate_inputs", "candidate_outputs"]
