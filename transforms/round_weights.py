"""``round_weights`` (GTT): float constants rounded to a few levels, so that they compress well."""
from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from graphxform import Context, Param, Pass, Replacement, register, with_attrs
from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.nodes import tensor_proto

log = logging.getLogger(__name__)

#: Constants with fewer elements are left alone (GTT: they tend to be accuracy-sensitive, and small).
MIN_ELEMENTS = 16


def round_to_steps(values: np.ndarray, num_steps: int) -> np.ndarray:
    """GTT's rounding (float32 arithmetic): ``num_steps`` buckets between min and max, each value replaced by the
    centre of its bucket; a constant tensor gets a range of ``[v, 2v]`` (or ``[v, v + 1]`` near zero)."""
    flat = np.asarray(values, np.float32)
    lo, hi = np.float32(flat.min()), np.float32(flat.max())
    if lo == hi:
        if abs(lo) < np.float32(0.000001):
            hi = lo + np.float32(1.0)
        elif lo > 0:
            hi = np.float32(2.0) * lo
        else:
            lo = np.float32(2.0) * hi
    width = (hi - lo) / np.float32(num_steps)
    bucket = np.floor((flat - lo) / width).astype(np.int32)
    return (lo + width * (bucket.astype(np.float32) + np.float32(0.5))).astype(np.float32)


@register
class RoundWeights(Pass):
    """Replaces every float ``Const`` of at least 16 elements by ``Const(round(value))``: each value becomes the
    centre of one of ``num_steps`` equal buckets between the tensor's min and max.

    GTT's ``round_weights(num_steps=256)``: the constants stay float (no new op, nothing to dequantize), but take
    at most ``num_steps`` distinct values, so a compressed model file shrinks. Lossy: values move by up to half a
    bucket. Runs once, after the other rules (``final``); GTT's range starts its max at the smallest positive
    float, so an all-negative tensor's range reaches 0 there; here it is the tensor's own range.
    """

    name = "round_weights"
    final = True
    idempotent = True
    params = {"num_steps": Param(int, 256, "how many distinct values each constant may keep")}

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if self.args["num_steps"] < 1:
            raise RuleError(f"rule {self.name!r}: num_steps={self.args['num_steps']} must be at least 1")

    @staticmethod
    def _reason(graph: Graph, name: str) -> str | None:
        node = graph.node(name)
        if node.op != "Const":
            return f"{name!r} is a {node.op}, not a Const"
        if "value" not in node.attr or node.attr["value"].tensor.dtype != tf.float32.as_datatype_enum:
            return f"{name!r} is not a float32 Const"
        size = int(np.prod([d.size for d in node.attr["value"].tensor.tensor_shape.dim]))
        if size < MIN_ELEMENTS:
            return f"{name!r} has {size} elements, fewer than {MIN_ELEMENTS}"
        return None

    def run(self, graph: Graph, ctx: Context) -> list[Replacement]:
        state: dict = ctx.cached("round_weights", dict)
        if state.get("done"):  # one-shot: rounding again would move the values again
            return []
        state["done"] = True
        rep = Replacement()
        for node in graph.nodes_by_op("Const"):
            if self._reason(graph, node.name) is not None:
                continue
            value = graph.const_value(node.name)
            rounded = round_to_steps(value, self.args["num_steps"]).reshape(value.shape)
            rep.update.append(with_attrs(node, value=tensor_proto(rounded, np.float32)))
        log.info("round_weights: %d constants rounded to %d levels", len(rep.update), self.args["num_steps"])
        return [rep] if rep.update else []

    def explain(self, graph: Graph, ctx: Context) -> dict[str, str | None]:
        return {n.name: self._reason(graph, n.name) for n in graph.nodes_by_op("Const")}


__all__ = ["RoundWeights", "round_to_steps"]
