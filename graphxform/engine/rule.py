"""Rules: local rewrites, each a pattern (or a ``match``), a ``check`` and a ``rewrite``.

A rule is a pattern (or a ``match`` method) finding a candidate from an anchor node, a ``check`` that returns
``None`` or the reason it does not apply, and a ``rewrite`` that returns a :class:`Replacement`, built with the
public node builder (:mod:`graphxform.core.nodes`). Rules never mutate the graph: the runner applies the
replacement through :class:`~graphxform.core.graph.Graph` methods. Whole-graph work (strip what is unused,
merge duplicates, fold constants) is a :class:`~graphxform.engine.passes.Pass`. A user rule, in a file loaded
with ``--rules my_rules.py``::

    from graphxform import Any, Match, Op, Replacement, Rule, register

    @register
    class DropDoubleNeg(Rule):
        \"\"\"Replaces ``Neg(Neg(x))`` by ``x``.\"\"\"
        name = "drop_double_neg"
        pattern = Op("Neg", Op("Neg", Any(bind="x"), bind="inner"), bind="outer")

        def rewrite(self, m: Match) -> Replacement:
            return Replacement(replace={m.tensor("outer"): m.tensor("x")}, remove=[m["outer"].name, m["inner"].name])
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tensorflow.core.framework import node_def_pb2

from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.core.names import tensor_name
from graphxform.engine.context import Context
from graphxform.engine.pattern import Pattern, anchors_of, depth_of

#: How far (edges, both ways) from a change the runner looks for anchors of a rule with its own ``match``.
DEFAULT_REACH = 3
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Param:
    """A typed rule parameter: ``Param(int, 1024, "minimum elements")``.

    ``type`` is ``int``, ``float``, ``bool``, ``str`` or ``list`` (a list of
    strings; GTT passes ``"a,b"`` or repeats the parameter). ``split=False``
    keeps each given value of a list whole (GTT's repeated
    ``shape_for_name="1,2"``) instead of splitting it at commas.
    """

    type: type
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    split: bool = True

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
            elif self.type is list and not self.split:
                out = [value] if isinstance(value, str) else [str(v) for v in value]
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
    """Where a rule matched: the anchor node, named bindings, the graph, the rule's params, the run's context."""

    graph: Graph
    anchor: node_def_pb2.NodeDef
    nodes: dict[str, node_def_pb2.NodeDef] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, str] = field(default_factory=dict)
    #: The rule's caches for this run (:class:`~graphxform.engine.context.Context`); the runner sets it.
    ctx: Context = field(default_factory=Context)

    def __getitem__(self, key: str) -> node_def_pb2.NodeDef:
        return self.nodes[key]

    def __contains__(self, key: str) -> bool:
        return key in self.nodes

    def matched(self, node: node_def_pb2.NodeDef, name: str) -> list[str]:
        """The names of the nodes bound and of the visited ``node`` (called ``name``), sorted."""
        bound = self.nodes
        if len(bound) == 1 and next(iter(bound.values())) is node:  # (the anchor alone: a one-op pattern)
            return [name]
        return sorted({n.name for n in bound.values() if n is not node} | {name})

    def tensor(self, key: str) -> str:
        """The tensor (``"node:port"``) the pattern consumed where it bound ``key``."""
        if key in self.tensors:
            return self.tensors[key]
        return f"{self.nodes[key].name}:0"

    def input(self, key: str, index: int) -> str:
        """Data input ``index`` of the node bound to ``key``, as ``"node:port"``."""
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
       ``remove_all``: the rule promises every node of ``remove`` goes (none
       protected, every use of each moved by ``replace`` / ``replace_control``
       to nodes not in ``remove``); their uses of one another then go with them
       instead of moving first. A promise not kept is an invalid rewrite.

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
    remove_all: bool = False

    def is_empty(self) -> bool:
        return not (self.add or self.update or self.replace or self.replace_control or self.remove)


class BaseRule:
    """What rules and passes share: a registry name, aliases, typed parameters, a docstring.

    Class attributes: ``name`` (registry name), ``aliases`` (other names: GTT names), ``params``
    (``{name: Param}``), ``final`` (run in a stage of its own after the other rules reached their fixpoint,
    e.g. quantization, whose output constant folding would undo). The docstring's first line is
    ``before -> after``.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[dict[str, Param]] = {}
    final: ClassVar[bool] = False
    #: True for passes (whole-graph work), False for rules (local rewrites).
    whole_graph: ClassVar[bool] = False

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

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring (``before -> after``)."""
        doc = cls.doc()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, aliases, parameters (type, default, help, choices) and docstring, JSON-friendly."""
        anchors = getattr(cls, "anchors", None)
        return {
            "name": cls.name,
            "aliases": [a for a in cls.aliases if a != cls.name],
            "global": cls.whole_graph,
            "final": cls.final,
            "anchors": sorted(anchors) if anchors is not None else None,
            "params": {
                key: {"type": p.type.__name__, "default": p.default, "help": p.help,
                      "choices": list(p.choices) if p.choices is not None else None}
                for key, p in cls.params.items()
            },
            "summary": cls.summary(),
            "doc": cls.doc(),
            "module": cls.__module__,
        }


class Rule(BaseRule):
    """A local rewrite: a pattern (or :meth:`match`), a :meth:`check` and a :meth:`rewrite`.

    Class attributes (besides :class:`BaseRule` 's): ``pattern``, a pattern of
    :mod:`graphxform.engine.pattern` (or override :meth:`match`); ``anchors``, the op types a match can start
    from (derived from the pattern; ``None``: every node); ``reach``, how many edges above its anchor a match
    looks (derived from the pattern; the runner revisits the consumers of a change up to this distance);
    ``batch``, see below.
    """

    anchors: ClassVar[frozenset[str] | None] = None
    pattern: ClassVar[Any] = None
    reach: ClassVar[int | None] = None
    #: Whether the runner may apply the rewrites of a full pass together (:mod:`graphxform.engine.batch`). Set it
    #: only when match, check and rewrite at an anchor read nothing but the content (op, attrs, inputs) of the
    #: anchor, of the nodes the match binds (producers above the anchor, up to the pattern's depth; for a rule
    #: with its own ``match``, up to its ``reach``), of the producers of their inputs and of their consumers;
    #: the consumer sets of the anchor and the bound nodes; and what holds for the whole pass (signatures,
    #: ``graph.protected``, the context's frame facts, static shapes). The runner then applies together rewrites that cannot see each other's changes; the
    #: result and the report are those of one rewrite at a time. Off under ``debug`` (it lints every rewrite).
    batch: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("global_rule") or "run_global" in cls.__dict__:
            raise RuleError(f"rule class {cls.__name__}: whole-graph rules are passes now — subclass "
                            "graphxform.Pass and define run(graph, ctx) -> [Replacement] instead of run_global")
        pattern = cls.__dict__.get("pattern")
        if isinstance(pattern, Pattern):
            if "anchors" not in cls.__dict__:
                cls.anchors = anchors_of(pattern)
            if "reach" not in cls.__dict__:
                cls.reach = depth_of(pattern)

    # ---- what a rule defines
    def match(self, graph: Graph, node: node_def_pb2.NodeDef) -> Match | str:
        """A :class:`Match` anchored at ``node``, or the reason there is none."""
        return self._match_with(graph, node, Context())

    def _match_with(self, graph: Graph, node: node_def_pb2.NodeDef, ctx: Context) -> Match | str:
        if self.pattern is None:
            return Match(graph, node, {"anchor": node}, dict(self.args), ctx=ctx)
        out = self.pattern.match_full(graph, node)
        if isinstance(out, str):
            return out
        return Match(graph, node, out[0], dict(self.args), tensors=out[1], ctx=ctx)

    def check(self, match: Match) -> str | None:
        """``None`` when the rewrite may be applied, else the reason it may not."""
        return None

    def rewrite(self, match: Match) -> Replacement:
        raise NotImplementedError(f"rule {self.name!r} defines no rewrite")

    # ---- what the runner asks
    def match_in(self, graph: Graph, node: node_def_pb2.NodeDef, ctx: Context) -> Match | str:
        """:meth:`match` with ``ctx`` as the match's context (for the pattern's own match, given as the
        :class:`Match` is made: no default context is built and thrown away at every visit)."""
        if type(self).match is not Rule.match:
            m = self.match(graph, node)
            if not isinstance(m, str):
                m.ctx = ctx
            return m
        return self._match_with(graph, node, ctx)

    def candidates(self, graph: Graph, names: Iterable[str] | None = None) -> list[node_def_pb2.NodeDef]:
        """The anchor nodes to visit: every one (``names`` is ``None``), or those a change to ``names`` may
        have made match (by default: those of ``names`` that are anchors)."""
        if self.anchors is not None:  # (the Graph's op index: no node's op is read)
            if names is None:
                return graph.nodes_by_op(*sorted(self.anchors))
            return graph.nodes_among(names, self.anchors)
        nodes = graph if names is None else (graph.get(n) for n in names)
        return [n for n in nodes if n is not None]

    def neighbourhood(self) -> tuple[int, int]:
        """``(below, above)``: how many edges below and above a change an anchor that may now match can be.

        A pattern looks upwards from its anchor, so only nodes below a change (its consumers, to the
        pattern's depth) can start a new match. A rule with its own ``match`` may look either way
        (``fold_batch_norms`` walks down from the convolution): both directions, ``reach`` or
        :data:`DEFAULT_REACH` edges far.
        """
        if self.pattern is not None and type(self).match is Rule.match:
            return (depth_of(self.pattern) if self.reach is None else int(self.reach)), 0
        reach = DEFAULT_REACH if self.reach is None else int(self.reach)
        return reach, reach


__all__ = ["DEFAULT_REACH", "BaseRule", "Match", "Param", "Replacement", "Rule"]
