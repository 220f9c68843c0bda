"""Deprecated: the rule API's old home. Import from ``graphxform`` instead (``from graphxform import Rule``).

Kept so rules files written against earlier releases keep working; it only re-exports.
"""
from graphxform.engine.registry import get_rule, load_rules_file, register, registry  # noqa: F401
from graphxform.engine.rule import Match, Param, Replacement, Rule  # noqa: F401

__all__ = ["Match", "Param", "Replacement", "Rule", "get_rule", "load_rules_file", "register", "registry"]
