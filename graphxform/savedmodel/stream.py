"""Reading a binary ``GraphDef`` file a node at a time: every big ``NodeDef`` a message of its own.

A ``GraphDef`` parsed whole keeps all its nodes in one protobuf arena, so a node the rules drop (a weight
replaced by its folded value) is freed only with the whole graph, and parsing holds the file's bytes and the
parsed graph at once. Read field by field, each big node (a weight) is a message of its own, freed as soon as
nothing holds it (the small ones share one arena, as in a whole parse), and only one node's bytes are in memory at
a time. :func:`read_graph_def_nodes` returns a :class:`NodeListGraphDef`: the nodes in file order, and the
``GraphDef``'s other fields (``library``, ``versions``, ...) parsed into a ``GraphDef`` without nodes. What it
holds equals a whole parse of the file.
"""
from __future__ import annotations

import logging
from pathlib import Path

from google.protobuf import message
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2, versions_pb2

log = logging.getLogger(__name__)

#: Bytes read from the file at a time (a node bigger than this is read on its own).
BLOCK_BYTES = 1 << 20
#: Nodes of at least this many bytes are messages of their own; smaller ones share one arena.
OWN_MESSAGE_BYTES = 4096
_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5


class NodeListGraphDef:
    """A ``GraphDef`` as :func:`read_graph_def_nodes` read it: ``node`` (a list of ``NodeDef`` s, the big ones
    messages of their own), ``library`` and ``versions`` (those of :attr:`rest`, the ``GraphDef`` of every other field).

    It reads like a ``GraphDef`` (``Graph(...)`` takes it and keeps its nodes); :meth:`to_graph_def` gives a
    real one (a copy) to code that needs a protobuf message.
    """

    __slots__ = ("node", "rest")

    def __init__(self, nodes: list[node_def_pb2.NodeDef], rest: graph_pb2.GraphDef) -> None:
        self.node = nodes
        self.rest = rest

    @property
    def library(self) -> function_pb2.FunctionDefLibrary:
        return self.rest.library

    @property
    def versions(self) -> versions_pb2.VersionDef:
        return self.rest.versions

    def to_graph_def(self) -> graph_pb2.GraphDef:
        gd = graph_pb2.GraphDef()
        gd.CopyFrom(self.rest)
        gd.node.extend(self.node)
        return gd


class _Reader:
    """A file read in blocks, with the varints and length-delimited fields of the protobuf wire format."""

    def __init__(self, f, size: int) -> None:  # noqa: ANN001 - a binary file object
        self.f = f
        self.left = size  # bytes of the file not read yet
        self.buf = b""
        self.view = memoryview(self.buf)
        self.pos = 0

    def _fill(self) -> bool:
        if self.left <= 0:
            return False
        data = self.f.read(min(BLOCK_BYTES, self.left))
        if not data:
            return False
        self.left -= len(data)
        self.buf = self.buf[self.pos:] + data
        self.view = memoryview(self.buf)
        self.pos = 0
        return True

    def node_in_block(self) -> memoryview | None:
        """The next field's bytes when it is a node (field 1) lying whole in the block, else ``None`` (nothing
        read): the common case, without a call per varint."""
        buf, pos = self.buf, self.pos
        end = len(buf)
        if pos + 2 > end or buf[pos] != 0x0A:  # the key of field 1, length-delimited
            return None
        length = shift = 0
        i = pos + 1
        while i < end:
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        else:
            return None
        if i + length > end:
            return None
        self.pos = i + length
        return self.view[i:i + length]

    def at_end(self) -> bool:
        return self.pos >= len(self.buf) and not self._fill()

    def read_varint(self) -> int | None:
        result = shift = 0
        while True:
            if self.pos >= len(self.buf) and not self._fill():
                return None
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 63:
                return None

    def take(self, n: int) -> bytes | memoryview | None:
        """The next ``n`` bytes (a view into the block when they are in it)."""
        have = len(self.buf) - self.pos
        if n <= have:
            view = memoryview(self.buf)[self.pos:self.pos + n]
            self.pos += n
            return view
        if n - have > self.left:
            return None
        data = self.buf[self.pos:] + self.f.read(n - have)
        self.left -= n - have
        self.buf, self.pos = b"", 0
        return data if len(data) == n else None


def read_graph_def_nodes(path: Path) -> NodeListGraphDef | None:
    """The binary ``GraphDef`` in ``path`` read a node at a time, or ``None`` when the file is no well-formed
    binary ``GraphDef`` with nodes (the caller then parses it whole, and reports why it is not one)."""
    nodes: list[node_def_pb2.NodeDef] = []
    small = graph_pb2.GraphDef()  # the arena of the small nodes (each keeps it alive)
    rest = bytearray()  # every field but the nodes, as in the file (parsed once, at the end)
    with open(path, "rb") as f:
        reader = _Reader(f, path.stat().st_size)
        add_small, append = small.node.add, nodes.append
        while True:
            data = reader.node_in_block()
            if data is not None:
                node = node_def_pb2.NodeDef() if len(data) >= OWN_MESSAGE_BYTES else add_small()
                try:
                    node.ParseFromString(data)
                except message.DecodeError:
                    return None
                append(node)
                continue
            if reader.at_end():
                break
            key = reader.read_varint()
            if key is None:
                return None
            number, wire = key >> 3, key & 7
            if wire == _WIRE_LEN:
                length = reader.read_varint()
                data = reader.take(length) if length is not None else None
                if data is None:
                    return None
                if number == 1:
                    # A big node (a weight) gets a message of its own, freed with it; the small ones share one
                    # arena (a message of its own costs ~1 KiB more than a node of a GraphDef).
                    node = node_def_pb2.NodeDef() if length >= OWN_MESSAGE_BYTES else small.node.add()
                    try:
                        node.ParseFromString(data)
                    except message.DecodeError:
                        return None
                    nodes.append(node)
                    continue
                rest += varint(key) + varint(length) + data
            elif wire == _WIRE_VARINT:
                value = reader.read_varint()
                if value is None:
                    return None
                rest += varint(key) + varint(value)
            elif wire in (_WIRE_I64, _WIRE_I32):
                data = reader.take(8 if wire == _WIRE_I64 else 4)
                if data is None:
                    return None
                rest += varint(key) + data
            else:  # groups: no GraphDef field is one
                return None
    if not nodes:
        return None
    gd = graph_pb2.GraphDef()
    try:
        gd.ParseFromString(bytes(rest))
    except message.DecodeError:
        return None
    return NodeListGraphDef(nodes, gd)


def varint(value: int) -> bytes:
    """``value`` encoded as a protobuf varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


__all__ = ["BLOCK_BYTES", "OWN_MESSAGE_BYTES", "NodeListGraphDef", "read_graph_def_nodes", "varint"]
