"""The keys of ``merge_duplicates``: a node's op, device, inputs (mapped to their survivors) and attributes.

A ``Const`` is keyed by its value's bytes whatever their encoding (:func:`const_bytes`); every other node by the
bytes of its serialization after its inputs (:func:`attrs_tail`).
``NodeDef`` fields serialize in field-number order (name 1, op 2, input 3, device 4, attr 5,
experimental_debug_info 6, experimental_type 7), a map's entries sorted by key when deterministic. So the bytes
after the last input are the node's device, attributes and type, equal exactly when each of them is (the
attribute-by-attribute key they replace compared the same serializations, one call per attribute). The offset of
those bytes follows from the lengths of the name, op and inputs. What the key leaves out (``_output_shapes``
hints, debug info) is cleared from a copy first; such nodes are few (and frozen graphs seldom carry either).
"""
from __future__ import annotations

import math
import struct
from collections.abc import Hashable

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from graphxform import NodeDef, parse_input

#: Shape hints, not semantics: two nodes that differ only here compute the same thing (the exporter drops them
#: anyway, so ignoring them makes a second run find nothing the first one left).
HINT_ATTRS = frozenset({"_output_shapes"})
_HINT = "_output_shapes"  # (the one hint: looked up by name, iterating the attributes would cost more)
_OPAQUE_DTYPES = frozenset({types_pb2.DT_STRING, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT})
#: dtype -> (TensorProto field, numpy dtype) for reading scalar constants quickly.
_SCALAR_FIELDS = {
    types_pb2.DT_FLOAT: ("float_val", np.float32), types_pb2.DT_DOUBLE: ("double_val", np.float64),
    types_pb2.DT_INT32: ("int_val", np.int32), types_pb2.DT_INT64: ("int64_val", np.int64),
    types_pb2.DT_BOOL: ("bool_val", np.bool_),
}

#: dtype -> the packing of a scalar's value into the bytes numpy gives it (little-endian), without an array.
_PACK = {t: struct.Struct(f).pack for t, f in ((types_pb2.DT_FLOAT, "<f"), (types_pb2.DT_DOUBLE, "<d"),
         (types_pb2.DT_INT32, "<i"), (types_pb2.DT_INT64, "<q"), (types_pb2.DT_BOOL, "<?"))}


def _field_size(text: str) -> int:
    """Bytes of a string field holding ``text`` (tag, length varint, UTF-8 bytes; fields 1-15 have 1-byte tags)."""
    n = len(text) if text.isascii() else len(text.encode())
    return 1 + (1 if n < 0x80 else 2 if n < 0x4000 else 3 if n < 0x200000 else 4 if n < 0x10000000 else 5) + n


def attrs_tail(node: NodeDef, name: str, op: str, inputs: list[str]) -> bytes:
    """``node``'s device, attributes (but :data:`HINT_ATTRS`) and ``experimental_type`` as bytes, equal for two
    nodes exactly when those are; ``name``, ``op`` and ``inputs`` are the node's own (already read)."""
    if _HINT in node.attr or node.HasField("experimental_debug_info") or not name or not op:
        return stripped_tail(node)
    data = node.SerializeToString(deterministic=True)
    joined = name + op + "".join(inputs)
    if joined.isascii() and len(joined) < 0x80:  # (the usual node: every length fits in one byte)
        return data[len(joined) + 2 * (2 + len(inputs)):]
    return data[_field_size(name) + _field_size(op) + sum(map(_field_size, inputs)):]


def stripped_tail(node: NodeDef) -> bytes:
    """:func:`attrs_tail` the slow way: a copy of ``node`` without name, op, inputs, hints and debug info."""
    copy = NodeDef()
    copy.CopyFrom(node)
    for field in ("name", "op", "input", "experimental_debug_info"):
        copy.ClearField(field)
    for key in HINT_ATTRS:
        if key in copy.attr:
            del copy.attr[key]
    return copy.SerializeToString(deterministic=True)


def const_bytes(tensor: tensor_pb2.TensorProto) -> bytes:
    """The exact value bytes of a ``TensorProto`` whatever its encoding (``tensor_content`` or ``*_val``).

    Numeric tensors give their little-endian element bytes, so a splat
    ``float_val: 0`` and an all-zero ``tensor_content`` compare equal; string
    and other opaque tensors give their deterministic serialization.
    """
    if tensor.dtype in _OPAQUE_DTYPES:
        return tensor.SerializeToString(deterministic=True)
    content = tensor.tensor_content  # (read once: each read is a new copy of the bytes)
    if content:
        return content
    data = None if tensor.tensor_shape.dim else _scalar_bytes(tensor, tensor.dtype)
    if data is not None:
        return data
    try:
        return tf.make_ndarray(tensor).tobytes()
    except (TypeError, ValueError):
        return tensor.SerializeToString(deterministic=True)


def _scalar_bytes(tensor: tensor_pb2.TensorProto, dtype: int) -> bytes | None:
    """:func:`const_bytes` of a numeric scalar without ``tensor_content`` (read without TF), else ``None``."""
    field, np_dtype = _SCALAR_FIELDS.get(dtype, (None, None))
    values = getattr(tensor, field) if field is not None else ()
    if field is None or len(values) > 1:
        return None
    value = values[0] if values else 0
    if value == value:  # a number: packed as numpy would store it (a NaN's bits are numpy's to tell)
        return _PACK[dtype](value)
    return np.asarray(value, dtype=np_dtype).tobytes()


_EXACT_LIMIT = 64  # elements: a Const at most this large is keyed by its value itself


def exact_attrs(node: NodeDef) -> Hashable | None:
    """All of ``node``'s attributes as a hashable value that is equal only when :func:`attr_difference`
    finds no difference; ``None`` for a Const of more than ``_EXACT_LIMIT`` elements (hashed and compared
    instead). The size decides, not the encoding, so equal values always take the same path."""
    parts: list[tuple] = []
    attr = node.attr
    for key in sorted(attr):
        if key in HINT_ATTRS:
            continue
        value = attr[key]
        if key == "value" and node.op == "Const" and value.HasField("tensor"):
            t = value.tensor
            dtype, dims = t.dtype, t.tensor_shape.dim
            if dtype in _OPAQUE_DTYPES:
                return None
            shape = tuple(d.size for d in dims)
            if shape and math.prod(shape) > _EXACT_LIMIT:
                return None
            parts.append((key, dtype, shape, const_bytes(t)))  # (a scalar's bytes are read without numpy)
        elif value.WhichOneof("value") == "type":  # (the usual attr: T, dtype) its number is its value
            parts.append((key, value.type))
        else:
            parts.append((key, value.SerializeToString(deterministic=True)))
    if node.HasField("experimental_type"):
        parts.append(("", node.experimental_type.SerializeToString(deterministic=True)))
    return tuple(parts)


def cheap_key(node: NodeDef) -> Hashable:
    """Part of the bucket key that costs nothing to read: a Const's dtype and shape (its bytes are hashed later)."""
    if node.op == "Const" and "value" in node.attr:  # (indexing a proto map would insert the key)
        t = node.attr["value"].tensor
        return t.dtype, tuple(d.size for d in t.tensor_shape.dim)
    return None


_NO_CTRL: frozenset[str] = frozenset()
_MISSING = object()


def _small_const(node: NodeDef) -> bool:
    """Whether the Const ``node`` holds a numeric value of at most ``_EXACT_LIMIT`` elements (its serialization is
    small), told from its dtype and shape: ``ByteSize()`` would serialize the node, a weight's bytes copied."""
    value = node.attr.get("value")  # (one map lookup; indexing a proto map would insert the key)
    if value is None:
        return False
    t = value.tensor
    if t.dtype in _OPAQUE_DTYPES:
        return False
    dims = t.tensor_shape.dim
    return not dims or math.prod(d.size for d in dims) <= _EXACT_LIMIT  # (most constants: scalars)


def scan_key(node: NodeDef, name: str, op: str, inputs: list[str], survivor_of: dict[str, str],
             const_attrs: dict[bytes, Hashable | None] | None = None) -> tuple[bool, Hashable]:
    """``(True, key)``, equal only for duplicates, or ``(False, bucket key)`` for a large Const (its bucket's
    members are compared), with the inputs mapped to their survivors; ``node`` is called ``name``, runs ``op`` and
    has ``inputs`` (read by the caller). ``const_attrs``: the :func:`exact_attrs` of the small Consts seen so far
    by their :func:`attrs_tail` (a pure function of it: one serialization instead of reading the tensor field by
    field; most small constants repeat)."""
    get = survivor_of.get
    data = []
    ctrl: set[str] | frozenset[str] = _NO_CTRL
    for inp in inputs:
        if ":" in inp or inp[:1] == "^":
            src, port, control = parse_input(inp)
            if control:
                if ctrl is _NO_CTRL:
                    ctrl = set()
                ctrl.add(get(src, src))  # type: ignore[union-attr]
                continue
        else:  # (most inputs: output 0 of a node)
            src, port = inp, 0
        data.append((get(src, src), port))
    mapped = (tuple(data), frozenset(ctrl))
    if op != "Const":
        attrs = attrs_tail(node, name, op, inputs)
    elif const_attrs is None or not _small_const(node):  # (only a small Const's attributes are serialized)
        attrs = exact_attrs(node)
    else:
        tail = attrs_tail(node, name, op, inputs)
        attrs = const_attrs.get(tail, _MISSING)
        if attrs is _MISSING:
            attrs = const_attrs[tail] = exact_attrs(node)
    if attrs is not None:
        return True, (op, node.device, mapped, attrs)
    return False, (op, node.device, *mapped, cheap_key(node))


__all__ = ["HINT_ATTRS", "attrs_tail", "cheap_key", "const_bytes", "exact_attrs", "scan_key", "stripped_tail"]
