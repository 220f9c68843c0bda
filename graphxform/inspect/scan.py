"""Ops that touch files or run code (``saved_model_cli scan`` and more), in a graph and its functions.

Nothing is run: the ops are read from the graph. Checkpoint ops count only outside the model's saver, where
they belong; ops TensorFlow does not know are reported too (running them needs a custom op library).
"""
from __future__ import annotations

from typing import Any

from tensorflow.core.protobuf import saver_pb2

from graphxform.core.names import parse_input
from graphxform.core.opdefs import CHECKPOINT_OPS, RISKY_OPS, SAVED_MODEL_CLI_DENYLIST, is_known_op
from graphxform.model.model import Model


def _saver_scope(model: Model) -> tuple[set[str], set[str]]:
    """(top-graph nodes, functions) that belong to the checkpoint saver."""
    g = model.graph
    roots: list[str] = []
    raw = model.variables.saver_def if model.variables is not None else None
    raw = raw or model.meta_info.get("saver_def")
    if raw:
        sd = saver_pb2.SaverDef.FromString(raw)
        roots = [parse_input(t)[0] for t in (sd.save_tensor_name, sd.restore_op_name) if t]
    nodes = g.ancestors([r for r in roots if r in g])
    for n in g:
        first = n.name.split("/", 1)[0]
        if (first == "save" or (first.startswith("save_") and first[5:].isdigit())) and "/" in n.name:
            nodes.add(n.name)
        elif first in roots:
            nodes.add(n.name)
    fnames = {f.signature.name for f in g.library.function
              if "_traced_save" in f.signature.name or "_traced_restore" in f.signature.name}
    for name in nodes:
        node = g.get(name)
        if node is not None and "f" in node.attr and node.attr["f"].func.name:
            fnames.add(node.attr["f"].func.name)
    return nodes, fnames


def scan_warnings(model: Model) -> list[dict[str, Any]]:
    """Ops that touch files or run code (``saved_model_cli scan`` and more), in the graph and its functions.

    Each warning: ``op``, ``node``, ``where`` (``graph`` or
    ``function:<name>``), ``reason``, and ``denylisted`` when
    ``saved_model_cli scan`` would flag it too. Checkpoint ops count only
    outside the saver; ops TensorFlow does not know are reported as well.
    """
    saver_nodes, saver_fns = _saver_scope(model)
    fn_names = {f.signature.name for f in model.graph.library.function}
    out = []

    def check(node: Any, where: str, in_saver: bool) -> None:
        reason = RISKY_OPS.get(node.op)
        if reason is None and node.op in CHECKPOINT_OPS and not in_saver:
            reason = "reads or writes checkpoint files outside the model's saver"
        if reason is None and node.op not in fn_names and not is_known_op(node.op):
            reason = "op unknown to this TensorFlow (custom op library needed to run it)"
        if reason is not None:
            out.append({"op": node.op, "node": node.name, "where": where, "reason": reason,
                        "denylisted": node.op in SAVED_MODEL_CLI_DENYLIST})

    for n in model.graph:
        check(n, "graph", n.name in saver_nodes)
    for f in model.graph.library.function:
        for n in f.node_def:
            check(n, f"function:{f.signature.name}", f.signature.name in saver_fns)
    return out


__all__ = ["scan_warnings"]
