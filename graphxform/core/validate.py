"""Checking every ``NodeDef`` against its ``OpDef`` before a model is written, as TensorFlow's C++ loader does.

TensorFlow's C++ SavedModel loader (TF Serving's) validates each node of
the graph and of every library function when it creates the session
(``ValidateNodeDef`` in ``tensorflow/core/framework/node_def_util.cc``);
one bad node and the whole model is refused. Python's loaders are more
lenient, so a model can pass every Python check and still not be servable.
:func:`validate_graph` applies the same rules, so the exporter refuses such a
graph before writing a byte:

- every attr the op declares, present on the node, holds a value of the
  declared type (``AttrValue missing value with expected type 'bool'`` is
  what a ``node.attr["transpose_b"]`` read leaves behind: indexing a protobuf
  map inserts an empty entry);
- ``type`` attrs are valid, non-reference dtypes within the op's allowed
  values; ``string`` attrs within theirs; ``int`` and list attrs at least their
  minimum;
- attrs the op does not declare are left alone, as TensorFlow leaves them
  (it logs them and ignores them: a newer producer may have added one), and
  so are attrs starting with ``_`` (internal);
- every attr without a default is set. Attrs *with* a default may be absent:
  the exporter writes ``stripped_default_attrs = true``, so every loader fills
  them from the op registry (the ``stripped_op_list`` written beside the
  graph carries the same defaults);
- a graph node has as many data inputs as its op's inputs add up to.

Function-call nodes (the op is a library function) and ops this TensorFlow
does not register are not checked here. Attrs that refer to a function's own
attrs (``placeholder``) are left to TensorFlow at instantiation.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2

from graphxform.core.opdefs import op_def

log = logging.getLogger(__name__)

#: AttrValue oneof field of each scalar OpDef attr type.
_FIELD = {"string": "s", "int": "i", "float": "f", "bool": "b", "type": "type", "shape": "shape",
          "tensor": "tensor", "func": "func"}
_TYPE_NAME = {v: k for k, v in _FIELD.items()}  # AttrValue field -> TensorFlow's name of its type
_LIST_FIELDS = ("s", "i", "f", "b", "type", "shape", "tensor", "func")
_REF_OFFSET = 100  # DT_FLOAT_REF = DT_FLOAT + 100
_VALID_DTYPES = frozenset(t for t in types_pb2.DataType.values() if 0 < t < _REF_OFFSET)


@dataclass(frozen=True)
class Violation:
    """A node TensorFlow's C++ loader would refuse, and why (in TensorFlow's words where it has them)."""

    node: str
    op: str
    message: str
    function: str | None = None  # the library function holding the node; None for the graph

    @property
    def where(self) -> str:
        return f"node {self.node!r} ({self.op})" + (f" in function {self.function!r}" if self.function else "")

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class _AttrSpec:
    name: str
    type: str
    field: str | None  # scalar field, or the list element field for list(...) types
    is_list: bool
    allowed: frozenset[Any] | None
    minimum: int | None
    kind: str | None  # the AttrValue oneof a valid value has ("list" for list types)
    simple: bool  # any value of the right kind is valid (no dtype, allowed-values or minimum check)
    required: bool


@dataclass(frozen=True)
class _OpSpec:
    attrs: dict[str, _AttrSpec]
    required: frozenset[str]
    inputs: tuple[tuple[str, str], ...]  # (number_attr, type_list_attr) per input arg ("" when not set)
    fixed_inputs: int | None  # the number of data inputs when no attr decides it


@lru_cache(maxsize=None)
def _spec(op: str) -> _OpSpec | None:
    d = op_def(op)
    if d is None:
        return None
    attrs: dict[str, _AttrSpec] = {}
    for a in d.attr:
        is_list = a.type.startswith("list(")
        inner = a.type[5:-1] if is_list else a.type
        allowed: frozenset[Any] | None = None
        if a.HasField("allowed_values"):
            lv = a.allowed_values.list
            if inner == "type" and lv.type:
                allowed = frozenset(lv.type)
            elif inner == "string" and lv.s:
                allowed = frozenset(lv.s)
        field = _FIELD.get(inner)
        minimum = int(a.minimum) if a.has_minimum else None
        attrs[a.name] = _AttrSpec(a.name, a.type, field, is_list, allowed, minimum,
                                  "list" if is_list else field,
                                  allowed is None and minimum is None and inner != "type",
                                  not a.HasField("default_value"))
    required = frozenset(a.name for a in d.attr if not a.HasField("default_value"))
    inputs = tuple((arg.number_attr, arg.type_list_attr) for arg in d.input_arg)
    fixed = None if any(n or t for n, t in inputs) else len(inputs)
    return _OpSpec(attrs, required, inputs, fixed)


def _fast_ok(node: node_def_pb2.NodeDef, spec: _OpSpec, count_inputs: bool) -> bool:
    """True when ``node`` certainly passes (the common case, checked cheaply); False: look closer."""
    attrs = spec.attrs
    required = 0
    for name, value in node.attr.items():
        if name[0] == "_":
            continue
        a = attrs.get(name)
        if a is None:
            continue
        kind = value.WhichOneof("value")
        if kind != a.kind:
            if kind != "placeholder":
                return False
        elif not a.simple:
            if a.field == "type" and not a.is_list:
                if value.type not in _VALID_DTYPES or (a.allowed is not None and value.type not in a.allowed):
                    return False
            elif _check_attr(value, a) is not None:
                return False
        required += a.required
    if required != len(spec.required):
        return False
    if count_inputs:
        if spec.fixed_inputs is None:
            return False
        inputs = node.input
        if inputs and inputs[-1][:1] == "^":
            return False
        if len(inputs) != spec.fixed_inputs:
            return False
    return True


def _dtype_name(t: int) -> str:
    try:
        return types_pb2.DataType.Name(t)
    except ValueError:
        return f"enum {t}"


def _check_attr(value: Any, spec: _AttrSpec) -> str | None:
    """TensorFlow's ``ValidateAttrValue`` for one attr: ``None`` when it is valid, else why not."""
    kind = value.WhichOneof("value")
    if kind == "placeholder":
        return None
    if kind is None:
        return f"AttrValue missing value with expected type '{spec.type}' for attr '{spec.name}'"
    if spec.is_list:
        if kind != "list":
            return (f"AttrValue had value with type '{_TYPE_NAME.get(kind, kind)}' when '{spec.type}' expected "
                    f"for attr '{spec.name}'")
        lv = value.list
        set_fields = [f for f in _LIST_FIELDS if len(getattr(lv, f))]
        if len(set_fields) > 1 or (set_fields and spec.field is not None and set_fields[0] != spec.field):
            got = _TYPE_NAME.get(set_fields[0], set_fields[0]) if len(set_fields) == 1 else "…"
            return (f"AttrValue had value with type 'list({got})' "
                    f"when '{spec.type}' expected for attr '{spec.name}'")
        items = list(getattr(lv, spec.field)) if spec.field else []
        if spec.minimum is not None and len(items) < spec.minimum:
            return f"Length for attr '{spec.name}' of {len(items)} must be at least minimum {spec.minimum}"
    else:
        if kind != spec.field:
            return (f"AttrValue had value with type '{_TYPE_NAME.get(kind, kind)}' when '{spec.type}' expected "
                    f"for attr '{spec.name}'")
        items = [getattr(value, kind)]
        if spec.minimum is not None and spec.field == "i" and value.i < spec.minimum:
            return f"Value for attr '{spec.name}' of {value.i} must be at least minimum {spec.minimum}"
    if spec.field == "type":
        for t in items:
            if t not in _VALID_DTYPES:
                return f"attr '{spec.name}' holds an invalid or reference DataType ({_dtype_name(t)})"
    if spec.allowed is not None:
        for item in items:
            if item not in spec.allowed:
                shown = _dtype_name(item) if spec.field == "type" else repr(item)
                return f"Value for attr '{spec.name}' of {shown} is not in the list of allowed values"
    return None


def node_violations(node: node_def_pb2.NodeDef, *, function: str | None = None,
                    count_inputs: bool = True) -> list[Violation]:
    """What is wrong with ``node`` by its ``OpDef`` (empty for valid nodes, function calls and unknown ops)."""
    spec = _spec(node.op)
    if spec is None or _fast_ok(node, spec, count_inputs):
        return []
    out: list[Violation] = []
    attr = node.attr
    for name in attr:
        if name.startswith("_"):
            continue
        a = spec.attrs.get(name)
        if a is None:  # TensorFlow ignores it (with a log line)
            continue
        problem = _check_attr(attr[name], a)
        if problem:
            out.append(Violation(node.name, node.op, problem, function))
    missing = [a for a in spec.required if a not in attr]
    if missing:
        out.append(Violation(node.name, node.op, f"NodeDef missing attr{'s' if len(missing) > 1 else ''} "
                             + ", ".join(f"'{m}'" for m in sorted(missing)) + " (no default in the OpDef)",
                             function))
    if count_inputs and not out:
        want = 0
        for number_attr, list_attr in spec.inputs:
            if number_attr:
                want += int(attr[number_attr].i) if number_attr in attr else 0
            elif list_attr:
                want += len(attr[list_attr].list.type) if list_attr in attr else 0
            else:
                want += 1
        have = sum(1 for i in node.input if not i.startswith("^"))
        if have != want:
            out.append(Violation(node.name, node.op, f"has {have} data inputs; Op<name={node.op}> takes {want}",
                                 function))
    return out


def validate_nodes(nodes: Iterable[node_def_pb2.NodeDef], library: Any = None) -> list[Violation]:
    """Violations of ``nodes`` (graph nodes) and of every function body in ``library`` (a FunctionDefLibrary)."""
    out: list[Violation] = []
    for node in nodes:
        out.extend(node_violations(node))
    if library is not None:
        for f in library.function:
            for node in f.node_def:
                out.extend(node_violations(node, function=f.signature.name, count_inputs=False))
    return out


def validate_graph(graph: Any) -> list[Violation]:
    """Violations of every node of ``graph`` (a :class:`~graphxform.core.graph.Graph` or ``GraphDef``) and its library."""
    nodes = graph.node if isinstance(graph, graph_pb2.GraphDef) else graph
    return validate_nodes(nodes, graph.library)


def provenance(node: str, function: str | None, history: Sequence[Any] | None) -> str:
    """Which rule produced ``node``, from the applied rewrites of a run (``RunReport.applied``)."""
    if function is not None:
        return (f"function {function!r} was not written by a rule (rules rewrite the graph, not function bodies): "
                "it came from the input as loaded or from freezing")
    if history is None:
        return "no rewrite history was given (rules run with graphxform.engine.runner record one)"
    last_matched = None
    for rec in reversed(history):
        if node in rec.added or node in rec.updated:
            return f"made by rule {rec.rule!r} (step {rec.step}, at node {rec.anchor!r})"
        if last_matched is None and node in rec.matched:
            last_matched = rec
    if last_matched is not None:
        return (f"not rewritten by any rule, but matched by rule {last_matched.rule!r} (step {last_matched.step}): "
                "a rule that indexes node.attr[...] for an absent attr inserts an empty value")
    return "no rule touched it: it came from the input as loaded or from freezing"


def describe(violations: Sequence[Violation], history: Sequence[Any] | None = None, limit: int = 5) -> str:
    """One line naming the first ``limit`` violations and the rule that produced each node."""
    parts = [f"{v} — {provenance(v.node, v.function, history)}" for v in violations[:limit]]
    more = f"; … {len(violations) - limit} more" if len(violations) > limit else ""
    return "; ".join(parts) + more


__all__ = ["Violation", "describe", "node_violations", "provenance", "validate_graph", "validate_nodes"]
