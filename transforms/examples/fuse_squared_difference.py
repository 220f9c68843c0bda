"""Example rule: ``Square(Sub(a, b))`` becomes one ``SquaredDifference(a, b)``, built with the node builder.

Copy it, rename the class and ``name``, and load it with ``graphxform transform IN OUT --rules my_rule.py``.
"""
from __future__ import annotations

import tensorflow as tf

from graphxform import Any, Match, Op, Replacement, Rule, attr, make_node, register

#: The types TensorFlow's SquaredDifference kernel takes (Square takes more, e.g. int8).
FUSABLE = {tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64, tf.complex64, tf.complex128}


@register
class FuseSquaredDifference(Rule):
    """Replaces ``Square(Sub(a, b))`` by ``SquaredDifference(a, b)`` (when the Sub has no other reader)."""

    name = "fuse_squared_difference"
    pattern = Op("Square", Op("Sub", Any(bind="a"), Any(bind="b"), single_use=True, bind="sub"), bind="square")

    def check(self, m: Match) -> str | None:
        dtype = attr(m["square"], "T")
        if dtype not in FUSABLE:
            return f"{m['square'].name!r} squares {dtype.name}, which SquaredDifference does not take"
        return None

    def rewrite(self, m: Match) -> Replacement:
        square, sub = m["square"], m["sub"]
        controls = [f"^{c}" for c in m.graph.control_inputs(sub.name) + m.graph.control_inputs(square.name)]
        # The new node takes the Square's name: its readers and any signature naming it are unchanged.
        fused = make_node("SquaredDifference", square.name, [m.tensor("a"), m.tensor("b"), *controls],
                          attrs={"T": attr(square, "T")}, device=square.device)
        return Replacement(update=[fused], remove=[sub.name])
