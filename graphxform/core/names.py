"""Tensor and node names as TensorFlow writes them in ``NodeDef`` inputs and signatures.

``"node:1"`` is output 1 of ``node``; a bare ``"node"`` means output 0; ``"^node"`` is a control dependency
on ``node``. Inside a ``FunctionDef`` body inputs look different (``"node:out:0"``): those are not handled here.
"""
from __future__ import annotations

import re

from graphxform.core.errors import GraphError

#: TensorFlow's rule for node names (``>`` appears in names made by function instantiation).
VALID_NODE_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*$")


def parse_input(inp: str) -> tuple[str, int, bool]:
    """Split a ``NodeDef`` input string into ``(node, port, is_control)`` (port ``-1`` for a control input)."""
    if inp.startswith("^"):
        return inp[1:], -1, True
    name, sep, port = inp.rpartition(":")
    if sep and port.isdigit():
        return name, int(port), False
    return inp, 0, False


def tensor_name(tensor: str) -> str:
    """Canonical ``"node:port"`` form of a tensor reference; a control dependency is refused."""
    node, port, control = parse_input(tensor)
    if control:
        raise GraphError(f"{tensor!r} is a control dependency, not a tensor")
    return f"{node}:{port}"


def canon(ref: str) -> str:
    """Canonical form of any input string: ``"node:port"``, or ``"^node"`` for a control dependency."""
    node, port, control = parse_input(ref)
    return f"^{node}" if control else f"{node}:{port}"


def input_string(node: str, port: int) -> str:
    """The ``NodeDef`` input string for output ``port`` of ``node`` (``"node"`` for port 0)."""
    return node if port == 0 else f"{node}:{port}"


def node_name(ref: str) -> str:
    """The node an input string, tensor or control dependency names (``parse_input(ref)[0]``, without the port's
    int and the tuple: twice as fast, for loops over many references)."""
    if ref[:1] == "^":
        return ref[1:]
    name, sep, port = ref.rpartition(":")
    return name if sep and port.isdigit() else ref


__all__ = ["canon", "input_string", "node_name", "parse_input", "tensor_name"]
