"""The per-run context a rule or a pass keeps its caches in: the runner owns it, never the rule object.

The runner gives every rule of a run a :class:`Context`. A :class:`~graphxform.engine.rule.Rule` 's context
lasts one full pass over the graph and the visits near changes after it (a new full pass starts a new one);
a :class:`~graphxform.engine.passes.Pass` 's lasts the whole run, so what it learned in one round (a node whose
evaluation failed) holds in the next. A rule reads it as ``match.ctx``; a pass gets it as ``run(graph, ctx)``.

``version`` (rewrites applied so far in the run, set before each run of a pass) lets passes share what they
compute from the graph until it changes (:meth:`Context.per_graph_state`).

``incremental`` tells a pass whether it may rely on what it kept from its previous run: ``False`` for the first
run of a stage and for the confirmation pass (the runner's full pass that checks the worklist missed nothing),
when the pass must look at the whole graph again.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

from graphxform.core.frames import FrameFacts, frame_facts
from graphxform.core.graph import Graph
from graphxform.core.shapes import StaticShapes

T = TypeVar("T")


class Context:
    """Caches for one rule in one run: anything keyed by name (:meth:`cached`), and the graph's frame facts.

    ``run_store`` (given by the runner) is shared by every rule of the run: what holds for the whole run, such as
    the static shapes, is computed once for all of them.
    """

    def __init__(self, run_store: dict[str, Any] | None = None) -> None:
        self._store: dict[str, Any] = {}
        self._run: dict[str, Any] = run_store if run_store is not None else {}
        self.incremental = False  # set by the runner before each run of a pass
        self.version: int | None = None  # set by the runner before each run of a pass: rewrites applied so far
        self.all_applied = True  # set by the runner before Pass.applied: whether every replacement was applied

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """The value stored under ``key``, built by ``build()`` the first time it is asked for."""
        if key not in self._store:
            self._store[key] = build()
        return self._store[key]

    def per_graph_state(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()``, shared by every rule of the run until the next rewrite changes the graph (say, the nodes the
        signatures need, asked by two passes in a row). Read only. Built each time when the runner did not tell
        the run's :attr:`version`."""
        if self.version is None:
            return build()
        kept = self._run.get(("per_graph_state", key))
        if kept is None or kept[0] != self.version:
            kept = self._run[("per_graph_state", key)] = (self.version, build())  # type: ignore[index]
        return kept[1]

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._store[key] = value

    def pop(self, key: str, default: Any = None) -> Any:
        return self._store.pop(key, default)

    def frame_facts(self, graph: Graph, names: Iterable[str] = ()) -> FrameFacts:
        """TF1 control-flow frames and colocation targets of ``graph`` (:func:`graphxform.core.frames.frame_facts`),
        computed again when one of ``names`` is a node they were not computed on."""
        facts: FrameFacts | None = self._store.get("frame_facts")
        if facts is None or any(n not in facts.known for n in names):
            facts = self._store["frame_facts"] = frame_facts(graph)
        return facts

    def frame_facts_at(self, graph: Graph, name: str) -> FrameFacts:
        """:meth:`frame_facts` for one node ``name``, without building a list per call (a rule asks it at every
        anchor of a full pass)."""
        facts: FrameFacts | None = self._store.get("frame_facts")
        return facts if facts is not None and name in facts.known else self.frame_facts(graph, (name,))

    def static_shapes(self, graph: Graph) -> StaticShapes:
        """The static shapes of ``graph`` 's tensors (:class:`graphxform.core.shapes.StaticShapes`), shared by every
        rule of the run: the graph is imported into TensorFlow once, when first asked; nodes added or replaced
        since are inferred one by one. (Every rewrite keeps the value, hence the shape, of the tensors it leaves
        under their names.)"""
        shapes: StaticShapes | None = self._run.get("static_shapes")
        if shapes is None or shapes.graph is not graph:
            shapes = self._run["static_shapes"] = StaticShapes(graph)
        return shapes


__all__ = ["Context"]
