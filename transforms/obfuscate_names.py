"""``obfuscate_names`` (GTT): short generated names for every node but the inputs and outputs."""
from __future__ import annotations

import logging

from graphxform import Context, Pass, Replacement, parse_input, register
from graphxform.core.graph import Graph

from ._graph_edits import rename_replacement

log = logging.getLogger(__name__)

_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _short_name(index: int) -> str:
    """GTT's names: ``index`` written in base 62 (``0``-``9``, ``a``-``z``, ``A``-``Z``)."""
    out = ""
    while True:
        index, rest = divmod(index, len(_CHARS))
        out = _CHARS[rest] + out
        if index <= 0:
            return out


@register
class ObfuscateNames(Pass):
    """Replaces every node name by a short generated one (``0``, ``1``, ..., ``a``, ..., ``10``, ...), except the
    inputs and outputs.

    GTT's ``obfuscate_names``: hides the model's structure and shrinks the file. Kept: signature inputs and
    outputs (``--inputs``/``--outputs`` of a frozen graph) and every protected node (init op, table
    initializers, asset paths), so the SavedModel still names them; generated names never clash with a kept
    one. Inputs, control inputs and ``_class`` colocation entries follow. Runs once, after the other rules
    (``final``).
    """

    name = "obfuscate_names"
    final = True

    @staticmethod
    def _kept(graph: Graph) -> set[str]:
        return set(graph.protected) | {parse_input(t)[0] for t in graph.signature_tensors()}

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        state: dict = ctx.cached("obfuscate_names", dict)
        if state.get("pending"):  # second step: the temporary names get their final ones
            return [rename_replacement(graph, state.pop("pending"))]
        if state.get("done"):  # one-shot: a second run would rename the generated names again
            return []
        state["done"] = True
        kept = self._kept(graph)
        renames: dict[str, str] = {}
        index = 0
        for name in graph.node_names:
            if name in kept:
                continue
            new = _short_name(index)
            index += 1
            while new in kept:
                new = _short_name(index)
                index += 1
            renames[name] = new
        log.info("obfuscate_names: %d nodes renamed, %d kept", len(renames), len(kept))
        # A generated name that another (renamed) node still holds is reached through a temporary name.
        later = {}
        for old, new in renames.items():
            if new in graph and new != old:
                tmp = graph.unique_name(f"__obfuscate_names__/{new}")
                later[tmp] = new
                renames[old] = tmp
        state["pending"] = later
        return [rename_replacement(graph, renames)] if renames else []

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        kept = self._kept(graph)
        return {n: "an input, output or protected node keeps its name" if n in kept else None
                for n in graph.node_names}


__all__ = ["ObfuscateNames"]
