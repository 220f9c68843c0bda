"""Candidate inputs and outputs of a graph without signatures (a bare GraphDef), as ``summarize_graph`` gave them,
and its other counts (control edges, nodes per device) over the graph as it is in the file.

``inspect`` lists them; an export that would write a SavedModel nobody can call names them in its error.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from graphxform.core.errors import ModelLoadError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.opdefs import NOT_OUTPUT_OPS, VARIABLE_OPS, attr_type, output_dtypes
from graphxform.core.signature import dtype_name, shape_list, shape_str
from graphxform.model.model import Model
from graphxform.model.tf2_flatten import has_function_calls
from graphxform.savedmodel.read import read_model_file


def candidate_inputs(graph: Graph, ops: tuple[str, ...] = ("Placeholder",)) -> list[dict[str, Any]]:
    """Placeholders (with dtype and shape), the likely inputs of a bare ``GraphDef`` (``summarize_graph``'s
    "possible inputs"); ``ops=("PlaceholderWithDefault",)`` lists the inputs that have a default instead."""
    out = []
    for n in graph.nodes_by_op(*ops):
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


def file_graph(model: Model) -> Graph:
    """The graph to summarize: a bare GraphDef as it is in the file, function calls and all (as ``summarize_graph``
    shows it; the loader inlines the calls), otherwise the loaded graph."""
    if model.format != "graph_def":
        return model.graph
    try:
        kind, proto = read_model_file(Path(model.source))
    except (ModelLoadError, OSError):  # pragma: no cover - the loader has just read it
        return model.graph
    if kind != "graph_def" or not has_function_calls(proto):
        return model.graph
    return Graph(proto)


def graph_counts(graph: Graph) -> dict[str, Any]:
    """``summarize_graph``'s edge and device counts: ``control_edges`` (``^`` inputs of the graph's nodes) and
    ``devices`` ({device: nodes assigned to it}, nodes without a device left out)."""
    devices = Counter(n.device for n in graph if n.device)
    return {"control_edges": sum(i.startswith("^") for n in graph for i in n.input),
            "devices": dict(sorted(devices.items()))}


def _op(graph: Graph, name: str) -> str | None:
    node = graph.get(name)
    return node.op if node is not None else None


__all__ = ["candidate_inputs", "candidate_outputs", "file_graph", "graph_counts"]
