"""Streamed protobuf encoding: a ``GraphDef`` (and the ``SavedModel`` around it) written a node at a time.

Writing a model must not cost a second copy of its weights: :class:`GraphWriter` holds the graph's own
``NodeDef`` s and yields the bytes protobuf would write for the whole ``GraphDef``, node by node
(``saved_model_chunks`` puts them inside the ``SavedModel`` message). The bytes equal
``SerializeToString(deterministic=True)`` of the full message. Protobuf cannot hold a message of 2 GiB or
more: :func:`check_proto_size` refuses one from its computed size, before anything is serialized.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2, tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from graphxform.core.errors import ExportError
from graphxform.savedmodel.read import MAX_PROTO_BYTES
from graphxform.savedmodel.stream import varint


def proto_size(message: Any) -> int:
    return int(message.ByteSize())


def check_proto_size(message: Any, out: Path, what: str) -> None:
    """Raise :class:`ExportError` when ``message`` is too big for protobuf (2 GiB), before serializing it."""
    size = proto_size(message)
    if size > MAX_PROTO_BYTES:
        raise ExportError(
            f"{out}: the {what} would be {size / 1024**3:.2f} GiB, over protobuf's 2 GiB limit; nothing was written "
            "(keep the large variables in the checkpoint: optimize --keep-variables, or transform with --no-freeze)")


def field_prefix(number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field (a message or bytes)."""
    return varint(number << 3 | 2) + varint(length)


def _item_bytes(dtype: int) -> int | None:
    """Bytes of an element of numeric ``dtype`` (``None`` for strings, resources, variants, refs)."""
    if dtype in (types_pb2.DT_INVALID, types_pb2.DT_STRING, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT) \
            or dtype > 100:
        return None
    try:
        return int(tf.as_dtype(dtype).size)
    except TypeError:
        return None


def _output_shapes_size(node: node_def_pb2.NodeDef) -> int:
    """Bytes the ``_output_shapes`` entry takes in ``node``'s serialization (0 without one), computed, not copied."""
    if "_output_shapes" not in node.attr:
        return 0
    key = b"_output_shapes"
    value = node.attr["_output_shapes"].ByteSize()
    # the map entry {1: key, 2: value}
    entry = len(field_prefix(1, len(key))) + len(key) + len(field_prefix(2, value)) + value
    return len(field_prefix(5, entry)) + entry  # NodeDef.attr is field 5


def without_output_shapes(node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef:
    if "_output_shapes" not in node.attr:
        return node
    clean = node_def_pb2.NodeDef()
    clean.CopyFrom(node)
    del clean.attr["_output_shapes"]
    return clean


#: A tensor attr at least this big (from its shape) is written from its ``tensor_content`` bytes: protobuf's
#: serializer would hold the node's bytes twice over (its growing buffer, then the returned copy).
BIG_TENSOR_BYTES = 64 * 1024
_TENSOR_HEAD_FIELDS = ("dtype", "tensor_shape", "version_number")


def _big_tensor_attr(node: node_def_pb2.NodeDef) -> str | None:
    """The attr of ``node`` holding a numeric tensor of :data:`BIG_TENSOR_BYTES` or more whose only value field
    is ``tensor_content`` (a ``Const``'s ``value``), or ``None``."""
    for key in node.attr:
        if node.attr[key].WhichOneof("value") != "tensor":
            continue
        tensor = node.attr[key].tensor
        count = _item_bytes(tensor.dtype)
        if count is None:
            continue
        for d in tensor.tensor_shape.dim:
            count *= max(d.size, 0)
        if count < BIG_TENSOR_BYTES:
            continue
        if any(len(getattr(tensor, f.name)) for f in tensor.DESCRIPTOR.fields if f.number > 4):
            return None  # values in *_val fields too: serialized as they are
        return key
    return None


def node_pieces(node: node_def_pb2.NodeDef) -> list[bytes]:
    """The bytes of ``node`` without ``_output_shapes`` (those of ``SerializeToString(deterministic=True)``), in
    pieces: a big tensor's ``tensor_content`` is one of them, the only copy of it made."""
    big = _big_tensor_attr(node)
    if big is None:
        return [without_output_shapes(node).SerializeToString(deterministic=True)]
    head = node_def_pb2.NodeDef(name=node.name, op=node.op, input=node.input, device=node.device)
    tail = node_def_pb2.NodeDef()
    for field in ("experimental_debug_info", "experimental_type"):
        if node.HasField(field):
            getattr(tail, field).CopyFrom(getattr(node, field))
    pieces = [head.SerializeToString(deterministic=True)]
    for key in sorted(node.attr):  # deterministic: map entries by key
        if key == "_output_shapes":
            continue
        if key != big:
            one = node_def_pb2.NodeDef()
            one.attr[key].CopyFrom(node.attr[key])
            pieces.append(one.SerializeToString(deterministic=True))
            continue
        tensor = node.attr[key].tensor
        skeleton = tensor_pb2.TensorProto()
        for field in _TENSOR_HEAD_FIELDS:  # fields 1-3; tensor_content is 4, nothing follows it
            if field == "tensor_shape":
                skeleton.tensor_shape.CopyFrom(tensor.tensor_shape)
            else:
                setattr(skeleton, field, getattr(tensor, field))
        tensor_head = skeleton.SerializeToString(deterministic=True)
        content = tensor.tensor_content
        content_head = field_prefix(4, len(content)) if content else b""
        tensor_size = len(tensor_head) + len(content_head) + len(content)
        value_head = field_prefix(8, tensor_size)  # AttrValue.tensor
        name = key.encode()
        entry_size = len(field_prefix(1, len(name))) + len(name) + len(field_prefix(2, len(value_head) + tensor_size)) \
            + len(value_head) + tensor_size
        pieces.append(field_prefix(5, entry_size) + field_prefix(1, len(name)) + name
                      + field_prefix(2, len(value_head) + tensor_size) + value_head + tensor_head + content_head)
        if content:
            pieces.append(content)
    pieces.append(tail.SerializeToString(deterministic=True))
    return pieces


def node_size(node: node_def_pb2.NodeDef) -> int:
    """Bytes of ``node`` as written (without ``_output_shapes``), with no more than one copy of a big tensor."""
    if _big_tensor_attr(node) is None:
        return node.ByteSize() - _output_shapes_size(node)
    return sum(len(p) for p in node_pieces(node))


def ops_used(nodes: Iterable[node_def_pb2.NodeDef], library: function_pb2.FunctionDefLibrary) -> set[str]:
    """The op types ``nodes`` and the library's function bodies use (calls to library functions left out)."""
    ops = {n.op for n in nodes}
    for f in library.function:
        ops.update(n.op for n in f.node_def)
    return ops - {f.signature.name for f in library.function}


class GraphWriter:
    """The model's ``GraphDef`` as written, serialized node by node: never a second copy of the graph.

    ``nodes`` starts as the graph's own nodes (shared, not copied; the
    exporter may add or replace entries, never edit a node). ``_output_shapes``
    hints are dropped: they are optional, and a rewrite that keeps a stale one
    makes TensorFlow refuse the whole graph at import ("``_output_shapes``
    attribute inconsistent with the GraphDef"); TF2's own writer leaves them
    out too. The bytes are those of ``to_graph_def().SerializeToString(
    deterministic=True)``.
    """

    def __init__(self, graph: Any) -> None:
        self.nodes: dict[str, node_def_pb2.NodeDef] = {n.name: n for n in graph}
        self.versions = graph.versions
        self.library = function_pb2.FunctionDefLibrary()
        self.library.CopyFrom(graph.library)
        for f in self.library.function:
            for node in f.node_def:
                if "_output_shapes" in node.attr:
                    del node.attr["_output_shapes"]

    def op_names(self) -> set[str]:
        return ops_used(self.nodes.values(), self.library)

    def ByteSize(self) -> int:  # noqa: N802 - what check_proto_size asks of a message
        size = 0
        for node in self.nodes.values():
            n = node_size(node)
            size += len(field_prefix(1, n)) + n
        for message, number in self._messages():
            size += len(field_prefix(number, message.ByteSize())) + message.ByteSize()
        return size

    def _messages(self) -> list[tuple[Any, int]]:
        """The GraphDef's other fields as written: ``library`` (2) when it holds anything, ``versions`` (4)."""
        return [(self.library, 2)] * bool(self.library.ByteSize()) + [(self.versions, 4)]

    def chunks(self) -> Iterator[bytes]:
        """The serialized ``GraphDef``, a node at a time (fields in number order, as protobuf writes them)."""
        for node in self.nodes.values():
            pieces = node_pieces(node)
            yield field_prefix(1, sum(len(p) for p in pieces))
            while pieces:  # (yielded as they are, not joined: no second copy of a big tensor's bytes)
                yield pieces.pop(0)
        for message, number in self._messages():
            data = message.SerializeToString(deterministic=True)
            yield field_prefix(number, len(data)) + data

    def to_graph_def(self) -> graph_pb2.GraphDef:
        gd = graph_pb2.GraphDef()
        gd.versions.CopyFrom(self.versions)
        if self.library.ByteSize():
            gd.library.CopyFrom(self.library)
        for node in self.nodes.values():
            gd.node.add().CopyFrom(without_output_shapes(node))
        return gd


def saved_model_chunks(sm: saved_model_pb2.SavedModel, graph: GraphWriter) -> Iterator[bytes]:
    """The bytes of ``sm`` (one meta graph, ``graph_def`` empty) with ``graph`` as its ``graph_def``.

    Equal to the deterministic serialization of the full proto, without ever
    holding the graph's bytes, or a copy of its nodes, all at once.
    """
    (mg,) = sm.meta_graphs
    rest = meta_graph_pb2.MetaGraphDef()
    rest.CopyFrom(mg)
    rest.ClearField("meta_info_def")
    info = mg.meta_info_def.SerializeToString(deterministic=True)
    tail = rest.SerializeToString(deterministic=True)
    graph_size = graph.ByteSize()
    head_info = (field_prefix(1, len(info)) + info) if mg.HasField("meta_info_def") else b""
    graph_head = field_prefix(2, graph_size)
    mg_size = len(head_info) + len(graph_head) + graph_size + len(tail)
    top = saved_model_pb2.SavedModel(saved_model_schema_version=sm.saved_model_schema_version)
    yield top.SerializeToString(deterministic=True) + field_prefix(2, mg_size) + head_info + graph_head
    yield from graph.chunks()
    yield tail


__all__ = ["BIG_TENSOR_BYTES", "GraphWriter", "check_proto_size", "field_prefix", "node_pieces", "node_size",
           "ops_used", "proto_size", "saved_model_chunks", "varint", "without_output_shapes"]
