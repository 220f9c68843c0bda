"""Drawing a graph, or a node's neighbourhood, with Graphviz.

The DOT text is built here (no Python dependency), so writing ``.dot``
always works; ``.svg`` / ``.png`` run Graphviz's ``dot`` program.

>>> text = to_dot(model.graph, neighbourhood(model.graph, "conv1", 2), center="conv1")  # doctest: +SKIP
>>> render(model, "conv1.svg", around="conv1", depth=2)                                  # doctest: +SKIP

Drawing conventions: each node is labelled with its name and op; an edge
from output ``k > 0`` is labelled ``:k``; control edges are dashed; a
node with edges to nodes left out of the picture says ``… n more``.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path

from graphxform.core.errors import GraphxformError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.inspect.node import find_node
from graphxform.model.model import Model

log = logging.getLogger(__name__)

FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
DEFAULT_MAX_NODES = 500

_FILL = {
    "Placeholder": "#c8e6c9", "PlaceholderWithDefault": "#c8e6c9",
    "Const": "#eeeeee",
    "VarHandleOp": "#ffe0b2", "VariableV2": "#ffe0b2", "Variable": "#ffe0b2", "ReadVariableOp": "#fff3e0",
    "NoOp": "#ffffff",
}
_CENTER_FILL = "#fff59d"
_DOT_TIMEOUT_S = 300


class RenderError(GraphxformError):
    """The graph could not be drawn (too big, unknown format, Graphviz missing or failing)."""


def _q(s: str) -> str:
    """A DOT double-quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def neighbourhood(graph: Graph, center: str, depth: int) -> set[str]:
    """``center`` and every node within ``depth`` hops of it upstream (producers) or downstream (consumers).

    Hops follow data and control edges of the networkx view, each direction
    on its own: siblings (other consumers of a producer) are not included.
    """
    name = find_node(graph, center).name
    if depth < 0:
        raise RenderError(f"--depth must be >= 0, not {depth}")
    keep = {name}
    for step in (graph.nx.predecessors, graph.nx.successors):
        frontier = {name}
        for _ in range(depth):
            nxt = {m for n in frontier for m in step(n)} - keep
            if not nxt:
                break
            keep |= nxt
            frontier = nxt
    return keep


def to_dot(graph: Graph, nodes: Iterable[str] | None = None, *, center: str | None = None,
           title: str | None = None) -> str:
    """DOT text of ``graph`` restricted to ``nodes`` (all nodes by default)."""
    names = set(graph.nx.nodes) if nodes is None else set(nodes)
    sig_outputs = {parse_input(t)[0] for s in graph.signatures.values() for spec in s.outputs.values()
                   for t in spec.tensor_names()}
    sig_inputs = {parse_input(t)[0] for s in graph.signatures.values() for spec in s.inputs.values()
                  for t in spec.tensor_names()}
    lines = ["digraph G {"]
    if title:
        lines.append(f"  label={_q(title)}; labelloc=t;")
    lines.append("  rankdir=TB;")
    lines.append('  node [shape=box, style="rounded,filled", fillcolor="#e3f2fd", fontname="Helvetica", fontsize=10];')
    lines.append('  edge [fontname="Helvetica", fontsize=9, color="#555555"];')
    order = [n for n in graph.nx.nodes if n in names]  # stable: insertion order of the graph
    for name in order:
        op = graph.nx.nodes[name].get("op")
        hidden = sum(1 for m in graph.nx.predecessors(name) if m not in names) + \
            sum(1 for m in graph.nx.successors(name) if m not in names)
        label = f"{name}\n{op if op is not None else '(missing)'}"
        if hidden:
            label += f"\n… {hidden} more"
        attrs = [f"label={_q(label)}"]
        if op is None:
            attrs.append('style="dashed"')
            attrs.append('color="red"')
        elif name == center:
            attrs.append(f'fillcolor="{_CENTER_FILL}"')
            attrs.append("penwidth=2")
        elif op in _FILL:
            attrs.append(f'fillcolor="{_FILL[op]}"')
        if op == "Const":
            attrs.append('shape=note')
        if name in sig_inputs or name in sig_outputs:
            attrs.append("peripheries=2")
        if hidden:
            attrs.append("tooltip=" + _q(f"{hidden} edges to nodes not drawn"))
        lines.append(f"  {_q(name)} [{', '.join(attrs)}];")
    for src, dst, data in graph.nx.edges(data=True):
        if src not in names or dst not in names:
            continue
        attrs = []
        if data.get("control"):
            attrs.append("style=dashed")
            attrs.append('color="#999999"')
            attrs.append("arrowhead=odot")
        elif data.get("src_port", 0):
            attrs.append(f"label={_q(':' + str(data['src_port']))}")
        lines.append(f"  {_q(src)} -> {_q(dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_program() -> str:
    """Path of Graphviz's ``dot``, or :class:`RenderError` saying how to get it."""
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(
            "Graphviz's `dot` program was not found on PATH; install Graphviz "
            "(`apt-get install graphviz` or `brew install graphviz`) or write a .dot file instead (-o out.dot)"
        )
    return exe


def output_format(out: str | os.PathLike[str]) -> str:
    """``svg`` / ``png`` / ``dot`` from the file suffix, or :class:`RenderError`."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(f"{out}: unknown picture format {suffix or '(no suffix)'!r}; use .svg, .png or .dot")
    return FORMATS[suffix]


def select_nodes(graph: Graph, *, around: str | None = None, depth: int = 2,
                 max_nodes: int = DEFAULT_MAX_NODES) -> set[str]:
    """The nodes to draw: the whole graph, or ``around``'s neighbourhood; refuses more than ``max_nodes``."""
    if around is None:
        if len(graph) > max_nodes:
            raise RenderError(
                f"the graph has {len(graph):,} nodes, more than --max-nodes {max_nodes}; draw a part of it with "
                "--around NODE --depth N (see `graphxform inspect MODEL` for node names) or raise --max-nodes"
            )
        return set(graph.node_names)
    nodes = neighbourhood(graph, around, depth)
    if len(nodes) > max_nodes:
        raise RenderError(
            f"{len(nodes):,} nodes lie within {depth} hops of {around!r}, more than --max-nodes {max_nodes}; "
            "use a smaller --depth or raise --max-nodes"
        )
    return nodes


def write_picture(dot_text: str, out: str | os.PathLike[str]) -> Path:
    """Write ``dot_text`` to ``out`` as DOT or, through Graphviz, as SVG/PNG (atomically: temp file + rename)."""
    out = Path(out)
    fmt = output_format(out)
    exe = None if fmt == "dot" else dot_program()
    if not out.parent.is_dir():
        raise RenderError(f"{out}: the directory {out.parent} does not exist")
    # Not mkstemp: its 0600 mode would stick to the picture; this file gets the umask's mode.
    tmp = out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if exe is None:
            tmp.write_text(dot_text)
        else:
            try:
                proc = subprocess.run([exe, f"-T{fmt}", "-o", str(tmp)], input=dot_text, text=True,
                                      capture_output=True, timeout=_DOT_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise RenderError(f"{out}: Graphviz took more than {_DOT_TIMEOUT_S} s; draw fewer nodes "
                                  "(--around NODE --depth N)") from None
            if proc.returncode != 0:
                msg = (proc.stderr or "").strip().splitlines()
                raise RenderError(f"{out}: Graphviz `dot -T{fmt}` failed: {msg[-1] if msg else proc.returncode}; "
                                  "write .dot instead to look at the input")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def render(model: Model | Graph, out: str | os.PathLike[str], *, around: str | None = None, depth: int = 2,
           max_nodes: int = DEFAULT_MAX_NODES) -> dict[str, object]:
    """Draw ``model`` (or the neighbourhood of node ``around``) into ``out`` (.svg, .png or .dot).

    Returns what was drawn: ``{"output", "format", "nodes", "edges"}``.
    """
    graph = model.graph if isinstance(model, Model) else model
    fmt = output_format(out)
    if fmt != "dot":
        dot_program()  # fail before the work when Graphviz is missing
    center = None
    if around is not None:
        center = find_node(graph, around, model.source if isinstance(model, Model) else None).name
    nodes = select_nodes(graph, around=center, depth=depth, max_nodes=max_nodes)
    title = None
    if isinstance(model, Model):
        title = f"{model.source}" + (f" — {depth} hops around {center}" if center else "")
    text = to_dot(graph, nodes, center=center, title=title)
    path = write_picture(text, out)
    edges = sum(1 for s, d in graph.nx.edges() if s in nodes and d in nodes)
    log.info("wrote %s (%d nodes, %d edges)", path, len(nodes), edges)
    return {"output": str(path), "format": fmt, "nodes": len(nodes), "edges": edges}


__all__ = ["RenderError", "dot_program", "neighbourhood", "output_format", "render", "select_nodes", "to_dot",
           "write_picture"]
