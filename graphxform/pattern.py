"""Deprecated: the pattern language's old home. Import from ``graphxform`` instead (``from graphxform import Op``).

Kept so rules files written against earlier releases keep working; it only re-exports.
"""
from graphxform.engine.pattern import Any, Const, OneOf, Op, Pattern  # noqa: F401

__all__ = ["Any", "Const", "OneOf", "Op", "Pattern"]
