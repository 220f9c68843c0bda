"""Rewrite rules: the ``Rule`` base class, its ``Match`` and ``Replacement``, and the registry.

A rule is a pattern (or a ``match`` method), a ``check`` that returns
``None`` or the reason it does not apply, and a ``rewrite`` that returns a
:class:`Replacement`. Rules never mutate the graph: the runner applies the
replacement through :class:`~graphxform.core.graph.Graph` methods.

A user rule, in a file loaded with ``--rules my_rules.py``::

    from graphxform.engine.rule import Rule, Replacement, register
    from graphxform.engine.pattern import Op, Const

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

from graphxform.core.errors import GraphxformError, RuleError
from graphxform.core.graph import Graph

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
                if isinstance(value, (list, tuple)) and len(value) == 1:
                    value = value[0]
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
            else:
                if isinstance(value, (list, tuple)):
                    if len(value) != 1:
                        raise RuleError(
                            f"rule {rule!r}: parameter {name} takes one value, got {len(value)}: "
                            f"{', '.join(map(str, value))}"
                        )
                    value = value[0]
                if self.type is int and isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                out = self.type(value.strip() if isinstance(value, str) and self.type is not str else value)
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
    tensors: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> node_def_pb2.NodeDef:
        return self.nodes[key]

    def __contains__(self, key: str) -> bool:
        return key in self.nodes

    def tensor(self, key: str) -> str:
        """The tensor (``"node:port"``) the pattern consumed where it bound ``key``."""
        if key in self.tensors:
            return self.tensors[key]
        return f"{self.nodes[key].name}:0"

    def input(self, key: str, index: int) -> str:
        """Data input ``index`` of the node bound to ``key``, as ``"node:port"``."""
        from graphxform.core.graph import tensor_name

        return tensor_name(self.graph.data_inputs(self.nodes[key].name)[index])


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

    The graph keeps the ``NodeDef`` objects of ``add`` and ``update`` as they
    are (a large folded constant is not copied again): make new ones for each
    replacement, never pass a node the graph holds after modifying it, and
    leave them alone once returned.
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
      ``pattern``: a :mod:`graphxform.engine.pattern` pattern, or override :meth:`match`;
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
    #: For a ``global_rule``: one :meth:`run_global` reaches the rule's own fixpoint (running it again
    #: right after finds nothing), so the runner re-runs it only when another rule changed the graph.
    idempotent: ClassVar[bool] = False
    #: How many edges above its anchor a match looks; the runner revisits the consumers of a change up
    #: to this distance. ``None``: the pattern's depth, or 2 for a rule with its own ``match``.
    reach: ClassVar[int | None] = None
    #: Run in a stage of its own after the other rules reached their fixpoint (e.g. quantization,
    #: whose output other rules such as constant folding would undo).
    final: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from graphxform.engine.pattern import Pattern, anchors_of, depth_of

        pattern = cls.__dict__.get("pattern")
        if isinstance(pattern, Pattern):
            if "anchors" not in cls.__dict__:
                cls.anchors = anchors_of(pattern)
            if "reach" not in cls.__dict__:
                cls.reach = depth_of(pattern)

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
        out = self.pattern.match_full(graph, node)
        if isinstance(out, str):
            return out
        return Match(graph, node, out[0], dict(self.args), tensors=out[1])

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
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring (``before -> after``)."""
        doc = cls.doc()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, aliases, parameters (type, default, help, choices) and docstring, JSON-friendly."""
        return {
            "name": cls.name,
            "aliases": [a for a in cls.aliases if a != cls.name],
            "global": cls.global_rule,
            "final": cls.final,
            "anchors": sorted(cls.anchors) if cls.anchors is not None else None,
            "params": {
                key: {"type": p.type.__name__, "default": p.default, "help": p.help,
                      "choices": list(p.choices) if p.choices is not None else None}
                for key, p in cls.params.items()
            },
            "summary": cls.summary(),
            "doc": cls.doc(),
            "module": cls.__module__,
        }


_REGISTRY: dict[str, type[Rule]] = {}
_ALIASES: dict[str, str] = {}
_recording: list[str] | None = None  # names registered while a rules file / plugin is imported


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
    if _recording is not None:
        _recording.append(cls.name)
    return cls


def _load_builtins() -> None:
    import graphxform.transforms  # noqa: F401  (importing registers the built-in rules)


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="graphxform.rules"):
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the built-ins
            log.warning("could not load rule plugin %s (%s): %s: %s", ep.name, ep.value, type(exc).__name__, exc)
            continue
        # An entry point may name a module (importing it registers its rules) or a Rule class.
        if isinstance(obj, type) and issubclass(obj, Rule) and _REGISTRY.get(obj.name) is not obj:
            try:
                register(obj)
            except RuleError as exc:
                log.warning("could not register rule plugin %s: %s", ep.name, exc)


def reload_plugins() -> None:
    """Load the ``graphxform.rules`` entry points again (after installing a plugin in a running session)."""
    registry()
    _load_entry_points()


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
    import sys
    from pathlib import Path

    global _recording
    p = Path(path).expanduser()
    if not p.is_file():
        raise RuleError(f"rules file {path} does not exist (pass the path of a .py file that defines rules)")
    registry()
    mod_name = f"graphxform_user_rules_{abs(hash(str(p.resolve())))}_{p.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise RuleError(f"rules file {path} is not a Python file (it should end in .py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up by name
    _recording = []
    try:
        spec.loader.exec_module(module)
    except GraphxformError as exc:
        sys.modules.pop(mod_name, None)
        raise RuleError(f"rules file {path}: {exc}") from exc
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise RuleError(f"rules file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        names, _recording = _recording, None
    if not names:
        log.warning("rules file %s registered no rule (decorate Rule subclasses with @register)", path)
    return sorted(set(names))


RuleFactory = Callable[..., Rule]
