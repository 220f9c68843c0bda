"""The public ``NodeDef`` builder: what a rule uses to make, copy and read nodes without touching protos.

>>> node = make_node("BiasAdd", "conv/bias_add", ["conv", "conv/bias"], attrs={"T": tf.float32})  # doctest: +SKIP
>>> bias = const("conv/bias", np.zeros(16, np.float32))                                          # doctest: +SKIP
>>> wider = with_inputs(consumer, [*consumer.input, "^init"])                                    # doctest: +SKIP

Every function returns a NEW ``NodeDef``: a node the graph holds is never edited (the graph stores a new one on
every change, and a :class:`~graphxform.engine.rule.Replacement` hands the new ones over). Attribute values
are given as Python values (see :func:`attr_value_of`) and never leave an empty ``AttrValue``, which
TensorFlow's C++ loader would refuse; :func:`attr` reads one without inserting it.
"""
from __future__ import annotations

import functools
import math

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, node_def_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from graphxform.core.errors import GraphError
from graphxform.core.memory import tensor_elements
from graphxform.core.opdefs import attr_value

NodeDef = node_def_pb2.NodeDef
_OPAQUE = (types_pb2.DT_STRING, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT)
_LIST_FIELDS = {bool: "b", int: "i", float: "f", str: "s", bytes: "s"}


# --------------------------------------------------------------------------- tensors
def tensor_proto(value: Any, dtype: Any = None) -> tensor_pb2.TensorProto:
    """A ``TensorProto`` holding ``value`` (array-like; ``dtype``: anything ``tf.as_dtype`` takes).

    Numbers are stored as ``tensor_content`` (raw bytes, no per-element fields); strings as TensorFlow writes them.
    """
    if isinstance(value, tensor_pb2.TensorProto):
        return value
    np_dtype = tf.as_dtype(dtype).as_numpy_dtype if dtype is not None else None
    array = np.asarray(value, dtype=np_dtype)
    if array.dtype.kind in "OSU":
        return tf.make_tensor_proto(array, dtype=dtype)
    return raw_tensor_proto(dtype if dtype is not None else array.dtype, array.shape,
                            np.ascontiguousarray(array).tobytes())


def raw_tensor_proto(dtype: Any, shape: Iterable[int], content: bytes) -> tensor_pb2.TensorProto:
    """A ``TensorProto`` of ``dtype`` and ``shape`` whose ``tensor_content`` is ``content`` (the element bytes).

    For a big value, pass bytes the caller then lets go (``content = array.tobytes(); del array``): a weight then
    has two copies at most alive at once while it becomes a proto, not three."""
    proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(dtype).as_datatype_enum)
    for d in shape:
        proto.tensor_shape.dim.add(size=int(d))
    proto.tensor_content = content
    return proto


@functools.lru_cache(maxsize=None)
def _numpy_dtype(dtype_enum: int) -> np.dtype:
    return np.dtype(tf.as_dtype(dtype_enum).as_numpy_dtype)


@functools.lru_cache(maxsize=None)
def dtype_itemsize(dtype: int) -> int | None:
    """Bytes of one element of ``DataType`` enum ``dtype``; ``None`` for strings, resources and variants (their
    elements have no fixed size) and for an enum TensorFlow does not know."""
    try:
        d = tf.as_dtype(dtype)
    except (TypeError, ValueError):
        return None
    if d.base_dtype in (tf.string, tf.resource, tf.variant):
        return None
    return int(d.size)


def tensor_nbytes(tensor: tensor_pb2.TensorProto) -> int:
    """Bytes of a numeric ``TensorProto``'s value, told from its dtype and shape (``tensor_content`` is a new copy
    of the bytes at each read, ``ByteSize()`` a serialization); a string or other opaque tensor: the size of its
    serialization."""
    itemsize = dtype_itemsize(tensor.dtype)
    if itemsize is None:
        return tensor.ByteSize()
    return tensor_elements(tensor) * itemsize


def tensor_proto_to_array(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """Value of a ``TensorProto``; a read-only view over the bytes of ``tensor_content`` when it is set (read once:
    each read of the field is a new copy)."""
    shape = [d.size for d in tensor.tensor_shape.dim]
    content = tensor.tensor_content if tensor.dtype not in _OPAQUE else b""
    if content:
        dtype = _numpy_dtype(tensor.dtype)
        count = math.prod(shape)  # (not np.prod: this is asked of every small constant a rule reads)
        if len(content) != count * dtype.itemsize:
            raise GraphError(
                f"tensor_content holds {len(content)} bytes but shape {shape} of {dtype} needs "
                f"{count * dtype.itemsize}; the constant is corrupt, re-export the model"
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape)
    return tf.make_ndarray(tensor)


# --------------------------------------------------------------------------- attrs
def attr_value_of(value: Any) -> attr_value_pb2.AttrValue:
    """An ``AttrValue`` holding ``value``: ``bool`` → b, ``int`` → i, ``float`` → f, ``str``/``bytes`` → s,
    a dtype (``tf.float32``, ``np.float32``) → type, ``TensorProto`` → tensor, ``TensorShapeProto`` → shape,
    a list of those → list, an ``AttrValue`` → a copy. (A ``DataType`` enum is an ``int``: pass
    ``tf.as_dtype(enum)`` for a type attr.)"""
    out = attr_value_pb2.AttrValue()
    if isinstance(value, attr_value_pb2.AttrValue):
        out.CopyFrom(value)
    elif isinstance(value, np.generic) and not isinstance(value, np.dtype):
        out.CopyFrom(attr_value_of(value.item()))  # a numpy scalar: as the Python value it holds
    elif isinstance(value, bool):
        out.b = value
    elif isinstance(value, int):
        out.i = value
    elif isinstance(value, float):
        out.f = value
    elif isinstance(value, str):
        out.s = value.encode()
    elif isinstance(value, bytes):
        out.s = value
    elif isinstance(value, tensor_pb2.TensorProto):
        out.tensor.CopyFrom(value)
    elif isinstance(value, tensor_shape_pb2.TensorShapeProto):
        out.shape.CopyFrom(value)
    elif isinstance(value, attr_value_pb2.AttrValue.ListValue):
        out.list.CopyFrom(value)
    elif isinstance(value, (list, tuple)):
        out.list.SetInParent()  # an empty list is a value too
        for item in value:
            _append(out.list, item)
    else:
        try:
            out.type = tf.as_dtype(value).as_datatype_enum
        except TypeError:
            raise GraphError(f"attr value {value!r} of type {type(value).__name__} has no AttrValue form") from None
    return out


def _append(lst: attr_value_pb2.AttrValue.ListValue, item: Any) -> None:
    if isinstance(item, np.generic) and not isinstance(item, np.dtype):
        item = item.item()  # a numpy scalar: the Python value it holds
    field = _LIST_FIELDS.get(type(item))
    if field is not None:
        getattr(lst, field).append(item.encode() if isinstance(item, str) else item)
    elif isinstance(item, tensor_shape_pb2.TensorShapeProto):
        lst.shape.add().CopyFrom(item)
    elif isinstance(item, tensor_pb2.TensorProto):
        lst.tensor.add().CopyFrom(item)
    else:
        lst.type.append(tf.as_dtype(item).as_datatype_enum)


def set_attrs(node: node_def_pb2.NodeDef, attrs: Mapping[str, Any]) -> node_def_pb2.NodeDef:
    """Set ``attrs`` on ``node`` in place (a node the caller made, never one the graph holds); ``None`` removes."""
    for key, value in attrs.items():
        if value is None:
            if key in node.attr:
                del node.attr[key]
        else:
            node.attr[key].CopyFrom(attr_value_of(value))
    return node


def attr(node: node_def_pb2.NodeDef, key: str, default: Any = None) -> Any:
    """Attr ``key`` of ``node`` as a Python value, without ever inserting it: the node's value, else the op's
    default, else ``default``. Strings come back as ``bytes``, types as ``tf.DType`` s (what :func:`make_node`
    takes back), lists as lists."""
    value = attr_value(node, key)
    kind = value.WhichOneof("value") if value is not None else None
    if kind is None:
        return default
    if kind == "type":
        return tf.as_dtype(value.type)
    if kind == "list":
        lst = value.list
        if len(lst.type):
            return [tf.as_dtype(t) for t in lst.type]
        for field in ("s", "i", "f", "b", "shape", "tensor", "func"):
            if len(getattr(lst, field)):
                return list(getattr(lst, field))
        return []
    return getattr(value, kind)


# --------------------------------------------------------------------------- nodes
def make_node(op: str, name: str, inputs: Iterable[str] = (), *, attrs: Mapping[str, Any] | None = None,
              device: str = "") -> node_def_pb2.NodeDef:
    """A new ``NodeDef``: ``op`` named ``name`` reading ``inputs`` (``"x:1"``, ``"^ctrl"``) with ``attrs``."""
    node = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs), device=device)
    return set_attrs(node, attrs or {})


def const(name: str, value: Any, dtype: Any = None, *, device: str = "", control_inputs: Iterable[str] = (),
          attrs: Mapping[str, Any] | None = None) -> node_def_pb2.NodeDef:
    """A ``Const`` holding ``value`` (array-like or ``TensorProto``), run after ``control_inputs`` if any."""
    tensor = tensor_proto(value, dtype)
    node = make_node("Const", name, [f"^{c}" for c in control_inputs], device=device)
    node.attr["dtype"].type = tensor.dtype
    node.attr["value"].tensor.CopyFrom(tensor)
    return set_attrs(node, attrs or {})


def copy_node(node: node_def_pb2.NodeDef, *, name: str | None = None, op: str | None = None) -> node_def_pb2.NodeDef:
    """A copy of ``node`` to change and hand over (optionally under another name or op)."""
    out = node_def_pb2.NodeDef()
    out.CopyFrom(node)
    if name is not None:
        out.name = name
    if op is not None:
        out.op = op
    return out


def with_inputs(node: node_def_pb2.NodeDef, inputs: Iterable[str]) -> node_def_pb2.NodeDef:
    """A copy of ``node`` reading ``inputs`` instead of its own (data inputs first, then ``"^control"`` s)."""
    out = copy_node(node)
    del out.input[:]
    out.input.extend(inputs)
    return out


def with_attrs(node: node_def_pb2.NodeDef, **attrs: Any) -> node_def_pb2.NodeDef:
    """A copy of ``node`` with ``attrs`` set (``None`` removes one)."""
    if not any(key in node.attr for key in attrs):
        return set_attrs(copy_node(node), attrs)
    # Copied without the attrs being replaced: a message keeps what it once held until it is freed, so a
    # copy whose large "value" is then overwritten would carry the old weights along, unused.
    out = node_def_pb2.NodeDef()
    for field, value in node.ListFields():
        if field.name != "attr":
            out.MergeFrom(node_def_pb2.NodeDef(**{field.name: value}))
    for key, value in node.attr.items():  # (in their order)
        new = attrs.get(key, value)
        if isinstance(new, tensor_pb2.TensorProto):  # straight in: no AttrValue copy of a big tensor on the way
            out.attr[key].tensor.CopyFrom(new)
        elif new is not None:
            out.attr[key].CopyFrom(value if new is value else attr_value_of(new))
    return set_attrs(out, {k: v for k, v in attrs.items() if k not in node.attr})


def colocation(node: node_def_pb2.NodeDef) -> list[str]:
    """The nodes ``node`` must be placed with (its ``_class`` attr, ``loc:@name`` entries)."""
    if "_class" not in node.attr:  # (indexing a proto map would insert the key)
        return []
    return [loc[5:].decode(errors="replace") for loc in node.attr["_class"].list.s if loc.startswith(b"loc:@")]


def with_colocation(node: node_def_pb2.NodeDef, targets: Iterable[str]) -> node_def_pb2.NodeDef:
    """A copy of ``node`` colocated with ``targets`` (none: the ``_class`` attr goes); other ``_class`` entries stay."""
    out = copy_node(node)
    others = [s for s in out.attr["_class"].list.s if not s.startswith(b"loc:@")] if "_class" in out.attr else []
    locs = list(dict.fromkeys(b"loc:@" + t.encode() for t in targets))
    return set_attrs(out, {"_class": [*others, *locs] if others or locs else None})


__all__ = ["NodeDef", "attr", "attr_value_of", "colocation", "const", "copy_node", "dtype_itemsize", "make_node",
           "set_attrs", "tensor_nbytes", "tensor_proto", "tensor_proto_to_array", "with_attrs", "with_colocation",
           "with_inputs"]
