"""Compatibility with TensorFlow's old Graph Transform Tool (``transform_graph``).

* :func:`parse_transforms` reads a ``--transforms`` string exactly as
  ``ParseTransformParameters`` in ``tensorflow/tools/graph_transforms/
  transform_graph.cc`` did: transforms separated by whitespace (newlines
  included), each ``name`` or ``name(param=value, param2="a,b", param=v2)``;
  unquoted values are letters, digits and ``-._/``; quoted values run to the
  next unescaped ``"`` (the backslashes stay in the value, as in GTT); a
  repeated parameter accumulates its values into a list. Two leniencies:
  whitespace is allowed before ``)`` and around ``=``, and a missing ``)``
  is an error instead of silently dropping the transform.
* :func:`TransformGraph` is a drop-in for
  ``tensorflow.tools.graph_transforms.TransformGraph(graph_def, inputs,
  outputs, transforms)``: it returns a new ``GraphDef``.

GTT names are aliases of our rules (``remove_nodes`` → ``remove_identity``,
``merge_duplicate_nodes`` → ``merge_duplicates``, ``strip_unused_nodes`` →
``strip_unused``, ``fold_old_batch_norms`` → ``fold_batch_norms``); see
:mod:`graphxform.engine.pipeline` for the no-op and unsupported GTT transforms.
Unlike GTT, which ran each transform once in order, all rules run together
to a fixpoint (quantization last), so their order does not matter.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from graphxform.core.errors import GraphError, RuleError

log = logging.getLogger(__name__)

#: Characters of a transform or parameter name (Scanner::LETTER_DIGIT_UNDERSCORE).
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
#: Characters of an unquoted value (Scanner::LETTER_DIGIT_DASH_DOT_SLASH_UNDERSCORE).
_VALUE_CHARS = _NAME_CHARS | frozenset("-./")

ParsedTransform = tuple[str, dict[str, Any]]


def _context(text: str, i: int) -> str:
    rest = text[i:i + 30]
    return repr(rest + ("…" if len(text) > i + 30 else "")) if rest else "the end of the string"


def parse_transforms(text: str) -> list[ParsedTransform]:
    """``"a b(x=1, y=\\"p,q\\", x=2)"`` → ``[("a", {}), ("b", {"x": ["1", "2"], "y": "p,q"})]``.

    A parameter given once maps to its string; given several times, to the
    list of its strings. Raises :class:`RuleError` naming the position.
    """
    out: list[ParsedTransform] = []
    n = len(text)
    i = 0

    def skip_space(j: int) -> int:
        while j < n and text[j].isspace():
            j += 1
        return j

    def scan(j: int, chars: frozenset[str]) -> int:
        while j < n and text[j] in chars:
            j += 1
        return j

    def fail(what: str, j: int) -> RuleError:
        return RuleError(f"cannot parse transforms {text!r}: looking for {what} at position {j}, found {_context(text, j)}")

    while True:
        i = skip_space(i)
        if i >= n:
            return out
        end = scan(i, _NAME_CHARS)
        if end == i:
            raise fail("a transform name", i)
        name = text[i:end]
        i = end
        values: dict[str, list[str]] = {}
        if i < n and text[i] == "(":
            i += 1
            while True:
                i = skip_space(i)
                if i >= n:
                    raise RuleError(f"cannot parse transforms {text!r}: {name}( is missing its closing ')'")
                if text[i] == ")":
                    i += 1
                    break
                if text[i] == ",":
                    i = skip_space(i + 1)
                end = scan(i, _NAME_CHARS)
                if end == i:
                    raise fail(f"a parameter name of {name}", i)
                param = text[i:end]
                i = skip_space(end)
                if i >= n or text[i] != "=":
                    raise fail(f"'=' after {name}({param}", i)
                i = skip_space(i + 1)
                if i < n and text[i] == '"':
                    j = i + 1
                    while j < n and text[j] != '"':
                        j += 2 if text[j] == "\\" else 1
                    if j >= n:
                        raise RuleError(f"cannot parse transforms {text!r}: the quoted value of {name}({param}=...) "
                                        "has no closing '\"'")
                    value = text[i + 1:j]
                    i = j + 1
                else:
                    end = scan(i, _VALUE_CHARS)
                    if end == i:
                        raise fail(f"a value for {name}({param}=...)", i)
                    value = text[i:end]
                    i = end
                values.setdefault(param, []).append(value)
                # GTT eats a stray trailing quote of either kind.
                if i < n and text[i] == '"':
                    i += 1
                if i < n and text[i] == "'":
                    i += 1
        out.append((name, {k: v[0] if len(v) == 1 else v for k, v in values.items()}))


def format_transform(name: str, params: dict[str, Any]) -> str:
    """The GTT string for one transform (values quoted when needed)."""
    if not params:
        return name
    parts = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            v = str(v).lower() if isinstance(v, bool) else str(v)
            parts.append(f"{key}={v}" if v and set(v) <= _VALUE_CHARS else f'{key}="{v}"')
    return f"{name}({', '.join(parts)})"


def TransformGraph(
    graph_def: Any,
    inputs: Sequence[str] | str,
    outputs: Sequence[str] | str,
    transforms: Sequence[str] | str,
) -> Any:
    """Drop-in for ``tensorflow.tools.graph_transforms.TransformGraph``: returns a new ``GraphDef``.

    ``inputs``/``outputs`` are node names (``"x"``, ``"x:0"`` accepted); they
    are protected — kept, with their names — and every other node that the
    outputs do not need may go. ``transforms`` is a list of transform strings
    (each may hold several, with parameters) as the original took. The input
    ``graph_def`` is not modified.
    """
    from tensorflow.core.framework import graph_pb2

    from graphxform.core.graph import Graph, parse_input
    from graphxform.model.model import METHOD_PREDICT, Signature, TensorSpec
    from graphxform.engine.pipeline import build_pipeline
    from graphxform.engine.runner import run_pipeline

    if isinstance(graph_def, (bytes, bytearray)):
        gd = graph_pb2.GraphDef()
        gd.ParseFromString(bytes(graph_def))
        graph_def = gd
    if not isinstance(graph_def, graph_pb2.GraphDef):
        if hasattr(graph_def, "SerializeToString"):  # a GraphDef from another protobuf module copy
            gd = graph_pb2.GraphDef()
            gd.ParseFromString(graph_def.SerializeToString())
            graph_def = gd
        else:
            raise GraphError(f"TransformGraph takes a GraphDef, got {type(graph_def).__name__}")
    in_names = [parse_input(n)[0] for n in ([inputs] if isinstance(inputs, str) else inputs) if n]
    out_names = [parse_input(n)[0] for n in ([outputs] if isinstance(outputs, str) else outputs) if n]
    text = transforms if isinstance(transforms, str) else " ".join(transforms)
    rules = build_pipeline(text)
    if not rules:
        log.warning("TransformGraph: no transform to run in %r; returning the graph unchanged", text)
    graph = Graph(graph_def)
    missing = [n for n in in_names + out_names if n not in graph]
    if missing:
        raise GraphError(f"TransformGraph: {', '.join(repr(m) for m in missing)} named in inputs/outputs "
                         "is not a node of the graph")

    def spec(name: str) -> TensorSpec:
        tensor = f"{name}:0"
        try:
            dtype = graph.output_dtype(tensor) or 0
        except Exception:  # noqa: BLE001 - an op unknown to this TensorFlow: dtype stays unknown
            dtype = 0
        return TensorSpec(tensor, dtype, None)

    graph.signatures = {
        "serving_default": Signature("serving_default", METHOD_PREDICT,
                                     {n: spec(n) for n in in_names}, {n: spec(n) for n in out_names})
    } if in_names or out_names else {}
    graph.protected.update(in_names + out_names)
    if rules:
        run_pipeline(graph, rules)
    _keep_output_names(graph, out_names)
    graph.signatures = {}
    return graph.take_graph_def()


def _keep_output_names(graph: Any, out_names: list[str]) -> None:
    """A rule may have moved an output to another tensor (e.g. folded it): give it its name back."""
    from tensorflow.core.framework import node_def_pb2

    from graphxform.core.graph import parse_input

    sig = graph.signatures.get("serving_default")
    if sig is None:
        return
    for name in out_names:
        tensor = sig.outputs[name].name
        if parse_input(tensor)[0] == name or name in graph:
            continue
        node = node_def_pb2.NodeDef(name=name, op="Identity", input=[tensor])
        dtype = graph.output_dtype(tensor)
        if dtype:
            node.attr["T"].type = dtype
        graph.add_node(node)
        log.info("TransformGraph: output %r was rewritten to %s; kept its name with an Identity", name, tensor)


__all__ = ["TransformGraph", "format_transform", "parse_transforms"]
