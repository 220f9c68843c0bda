"""The Graph Transform Tool's ``--transforms`` syntax: parsed as ``transform_graph`` parsed it, and written back.

:func:`parse_transforms` reads a string exactly as ``ParseTransformParameters`` in
``tensorflow/tools/graph_transforms/transform_graph.cc`` did: transforms separated by whitespace (newlines
included), each ``name`` or ``name(param=value, param2="a,b", param=v2)``; unquoted values are letters,
digits and ``-._/``; quoted values run to the next unescaped ``"`` (the backslashes stay in the value, as in
GTT); a repeated parameter accumulates its values into a list. Two leniencies: whitespace is allowed before
``)`` and around ``=``, and a missing ``)`` is an error instead of silently dropping the transform.
:func:`format_transform` writes one transform back.
"""
from __future__ import annotations

from typing import Any

from graphxform.core.errors import RuleError

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


__all__ = ["ParsedTransform", "format_transform", "parse_transforms"]
