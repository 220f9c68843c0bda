"""Rewrite rules: the ``Rule`` base class, its ``Match`` and ``Replacement``, and the registry.

A rule is a pattern (or a ``match`` method), a ``check`` that returns
``None`` or the reason it does not apply, and a ``rewrite`` that returns a
:class:`Replacement`. Rules never mutate the graph: the runner applies the
replacement through :class:`~graphxform.graph.Graph` methods.

A user rule, in a file loaded with ``--rules my_rules.py``::

    from graphxform.rule import Rule, Replacement, register
    from graphxform.pattern import Op, Const

    @register
    class DropDoubleNeg(Rule):
        \"\"\"Replaces ``Neg(Neg(x))`` by ``x``.\"\"\"
        name = "drop_double_neg"
        pattern = Op("Neg", Op("Neg", bind="inner"), bind="outer")

        def rewrite(self, match):
            x = match.graph.data_inputs(match["inner"].name)[0]
            return Replacement(replace={f"{match['outer'].name}:0": x})
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tensorflow.core.framework import node_def_pb2

from graphxform.errors import RuleError
from graphxform.graph import Graph

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Param:
    """A typed rule parameter: ``Param(int, 1024, "minimum elements")``.

    ``type`` is ``int``, ``float``, ``bool``, ``str`` or ``list`` (a list of
    strings; GTT passes ``"a,b"`` or repeats the parameter).
    """

    type: type
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None

    def convert(self, rule: str, name: str, value: Any) -> Any:
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    out: Any = value
                elif str(value).lower() in _TRUE:
                    out = True
                elif str(value).lower() in _FALSE:
                    out = False
                else:
                    raise ValueError(value)
            elif self.type is list:
                if isinstance(value, str):
                    out = [v for v in value.split(",") if v]
                else:
                    out = []
                    for v in value:
                        out.extend(x for x in str(v).split(",") if x)
            elif self.type in (int, float):
                out = self.type(value[-1] if isinstance(value, list) else value)
            else:
                out = self.type(value[-1] if isinstance(value, list) else value)
        except (TypeError, ValueError):
            raise RuleError(
                f"rule {rule!r}: parameter {name}={value!r} is not a valid {self.type.__name__}"
            ) from None
        if self.choices is not None and out not in self.choices:
            raise RuleError(f"rule {rule!r}: parameter {name}={out!r} must be one of {list(self.choices)}")
        return out


@dataclass
class Match:
    """Where a rule matched: the anchor node, named bindings, the graph, the rule's params."""

    graph: Graph
    anchor: node_def_pb2.NodeDef
    nodes: dict[str, node_def_pb2.NodeDef] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> node_def_pb2.NodeDef:
        return self.nodes[key]

    def __contains__(self, key: str) -> bool:
        return key in self.nodes


@dataclass
class Replacement:
    """What a rewrite asks the runner to do, applied in this order:

    1. ``add``: new ``NodeDef`` s (fresh names: use ``graph.unique_name``);
    2. ``update``: ``NodeDef`` s replacing existing nodes of the same name;
    3. ``replace``: ``{old_tensor: new_tensor}`` — every data use of ``old``
       (and signature tensors) moves to ``new``;
    4. ``replace_control``: ``{old_node: [new_nodes]}`` — ``^old`` users
       depend on the new nodes instead;
    5. ``remove``: node names to delete once nothing uses them (nodes that
       are still consumed or protected are kept, and the runner says so at
       debug level). Nodes left without consumers by the rewrite are not
       removed unless listed: dead code is ``strip_unused``'s business.
    """

    add: list[node_def_pb2.NodeDef] = field(default_factory=list)
    update: list[node_def_pb2.NodeDef] = field(default_factory=list)
    replace: dict[str, str] = field(default_factory=dict)
    replace_control: dict[str, list[str]] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.add or self.update or self.replace or self.replace_control or self.remove)


class Rule:
    """Base class of every rule (built-in and user).

    Class attributes:
      ``name``: registry name; ``aliases``: other names (GTT names);
      ``anchors``: op types a match can start from (``None``: every node);
      ``pattern``: a :mod:`graphxform.pattern` pattern, or override :meth:`match`;
      ``params``: ``{name: Param}``;
      ``global_rule``: when True the runner calls :meth:`run_global` once per
      round instead of matching node by node (e.g. ``strip_unused``).
    The docstring's first line is ``before -> after``.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    anchors: ClassVar[frozenset[str] | None] = None
    pattern: ClassVar[Any] = None
    params: ClassVar[dict[str, Param]] = {}
    global_rule: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.args: dict[str, Any] = {}
        for key, value in params.items():
            if key not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise RuleError(f"rule {self.name!r} has no parameter {key!r} (parameters: {known})")
            self.args[key] = self.params[key].convert(self.name, key, value)
        for key, spec in self.params.items():
            self.args.setdefault(key, spec.default)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items() if v != self.params[k].default)
        return f"{self.name}({args})"

    # ---- what a rule defines
    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Match | str:
        """A :class:`Match` anchored at ``node``, or the reason there is none."""
        if self.pattern is None:
            return Match(graph, node, {"anchor": node}, dict(self.args))
        bindings = self.pattern.match(graph, node)
        if isinstance(bindings, str):
            return bindings
        return Match(graph, node, bindings, dict(self.args))

    def check(self, match: Match) -> str | None:
        """``None`` when the rewrite may be applied, else the reason it may not."""
        return None

    def rewrite(self, match: Match) -> Replacement:
        raise NotImplementedError(f"rule {self.name!r} defines no rewrite")

    def run_global(self, graph: Graph) -> list[Replacement]:
        """For ``global_rule`` s: the replacements for the whole graph this round."""
        raise NotImplementedError

    # ---- helpers for the runner
    def candidates(self, graph: Graph, names: Iterable[str] | None = None) -> list[node_def_pb2.NodeDef]:
        nodes = graph if names is None else (graph.get(n) for n in names)
        return [n for n in nodes if n is not None and (self.anchors is None or n.op in self.anchors)]

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip()


_REGISTRY: dict[str, type[Rule]] = {}
_ALIASES: dict[str, str] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator: add ``cls`` to the registry under its name and aliases."""
    if not cls.name:
        raise RuleError(f"rule class {cls.__name__} has no name")
    for key in (cls.name, *cls.aliases):
        owner = _REGISTRY.get(key) or (_REGISTRY.get(_ALIASES[key]) if key in _ALIASES else None)
        if owner is not None and owner.__qualname__ != cls.__qualname__:
            raise RuleError(f"rule name {key!r} of {cls.__qualname__} is taken by {owner.__qualname__}")
    _REGISTRY[cls.name] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls


def _load_builtins() -> None:
    import transforms  # noqa: F401  (importing registers the built-in rules)


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="graphxform.rules"):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not hide the built-ins
            log.warning("could not load rule plugin %s: %s", ep.name, exc)


_loaded = False


def registry() -> dict[str, type[Rule]]:
    """Every registered rule by name (built-ins and entry points loaded on first use)."""
    global _loaded
    if not _loaded:
        _loaded = True
        _load_builtins()
        _load_entry_points()
    return dict(_REGISTRY)


def aliases() -> dict[str, str]:
    registry()
    return dict(_ALIASES)


def get_rule(name: str) -> type[Rule]:
    """The rule class registered as ``name`` (or alias)."""
    reg = registry()
    key = _ALIASES.get(name, name)
    if key not in reg:
        import difflib

        close = difflib.get_close_matches(name, list(reg) + list(_ALIASES), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise RuleError(f"unknown rule {name!r}.{hint} `graphxform rules` lists them all.")
    return reg[key]


def load_rules_file(path: str) -> list[str]:
    """Import a Python file of user rules; returns the names it registered."""
    import importlib.util
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise RuleError(f"rules file {path} does not exist")
    registry()
    before = set(_REGISTRY)
    spec = importlib.util.spec_from_file_location(f"graphxform_user_rules_{p.stem}", p)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise RuleError(f"rules file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return sorted(set(_REGISTRY) - before)


RuleFactory = Callable[..., Rule]
