"""Example rule: ``Mul(x, 1)`` is ``x``. A pattern, a check that gives its reason, a rewrite.

Copy it, rename the class and ``name``, and load it with ``graphxform transform IN OUT --rules my_rule.py``.
"""
from __future__ import annotations

from graphxform import Any, Const, Match, Op, Replacement, Rule, register


@register
class DropMultiplyByOne(Rule):
    """Replaces ``Mul(x, Const 1)`` by ``x`` (a scalar 1, on either side)."""

    name = "drop_multiply_by_one"
    # A scalar constant broadcasts to x's shape, so Mul(x, 1) has x's shape and dtype: x can stand for it.
    pattern = Op("Mul", Any(bind="x"), Const(rank=0, bind="one"), commutative=True, bind="mul")

    def check(self, m: Match) -> str | None:
        one = m.graph.const_value(m["one"].name)
        if one != 1:
            return f"{m['one'].name!r} is {one}, not 1"
        if m.graph.control_inputs(m["mul"].name):
            return f"{m['mul'].name!r} has control inputs: its consumers would no longer wait for them"
        return None  # None: the rewrite applies; a string: why not (`--explain drop_multiply_by_one`)

    def rewrite(self, m: Match) -> Replacement:
        # Every reader of the Mul (and a signature naming it) reads x; the Mul goes once nothing reads it.
        return Replacement(replace={m.tensor("mul"): m.tensor("x")}, remove=[m["mul"].name])
