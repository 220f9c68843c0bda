"""Freezing inside functions: copies of library functions that take a variable's value instead of its handle.

Functional control flow (``If``, ``While``, ``Case``, calls inside their bodies) that receives a variable handle
gets a specialised copy of its functions: the handle argument becomes a value of the variable's dtype, and the
body reads it directly (``ReadVariableOp`` → ``Identity``, ``ResourceGather`` → ``GatherV2`` …).
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import function_pb2, node_def_pb2, types_pb2

from graphxform.core.errors import GraphError
from graphxform.core.opdefs import FUNCTIONAL_OPS, WHILE_OPS, attr_int, attr_type


class Library:
    """The graph's function library, with copies specialised to take values instead of handles."""

    def __init__(self, library: function_pb2.FunctionDefLibrary) -> None:
        self.library = library
        self.funcs = {f.signature.name: f for f in library.function}
        self.cache: dict[tuple[str, tuple[tuple[int, int], ...]], str] = {}

    def specialise(self, fname: str, args: Mapping[int, int], *, passthrough_ok: bool = False) -> str:
        """Name of a copy of ``fname`` whose arguments ``args`` ({index: dtype}) are values, not handles."""
        key = (fname, tuple(sorted(args.items())))
        if key in self.cache:
            return self.cache[key]
        src = self.funcs.get(fname)
        if src is None:
            raise GraphError(f"function {fname!r} is not in the library; cannot freeze the variables it reads")
        f = function_pb2.FunctionDef()
        f.CopyFrom(src)
        base = re.sub(r"_frozen(_\d+)?$", "", fname) + "_frozen"
        name, i = base, 1
        while name in self.funcs:
            name = f"{base}_{i}"
            i += 1
        f.signature.name = name
        self.cache[key] = name
        handles: dict[str, int] = {}  # body reference -> dtype of the value it now carries
        for idx, dtype in args.items():
            arg = f.signature.input_arg[idx]
            arg.type = dtype
            arg.ClearField("handle_data")
            handles[arg.name] = dtype
        _drop_handle_annotations(f, args)
        _devar_body(f, handles, self, passthrough_ok=passthrough_ok)
        self.funcs[name] = f
        self.library.function.append(f)
        return name


def _drop_handle_annotations(f: function_pb2.FunctionDef, args: Iterable[int]) -> None:
    """Forget what ``f`` says about arguments ``args`` as resource handles: they carry values now.

    A handle is a scalar; the value it stood for is not. ``tf.saved_model.load``
    builds each function's placeholders from its ``_input_shapes`` attr and
    the arguments' ``_output_shapes``, so a stale scalar shape fails shape
    inference in the body ("Shape must be rank 2 but is rank 0"). The entries
    become unknown shapes; ``_handle_dtypes``/``_handle_shapes`` and the
    resource-aliasing ids (``resource_arg_unique_id``) go.
    """
    args = list(args)
    if "_input_shapes" in f.attr:
        shapes = f.attr["_input_shapes"].list.shape
        for idx in args:
            if idx < len(shapes):
                shapes[idx].Clear()
                shapes[idx].unknown_rank = True
    for idx in args:
        if idx in f.arg_attr:
            attrs = f.arg_attr[idx].attr
            for k in [k for k in attrs if k.startswith(("_handle", "_output_shapes", "_read_only"))]:
                del attrs[k]
        if idx in f.resource_arg_unique_id:
            del f.resource_arg_unique_id[idx]


def _devar_body(f: function_pb2.FunctionDef, handles: dict[str, int], lib: Library, *, passthrough_ok: bool) -> None:
    """Rewrite the nodes of ``f`` that use the handles in ``handles`` (body references) to use values."""
    nodes = {n.name: n for n in f.node_def}
    renamed: dict[str, str] = {}  # "n:value:0" -> "n:output:0"
    body_names = set(nodes)

    def key(ref: str) -> str:
        parts = ref.split(":")
        if len(parts) == 2 and parts[1] == "0" and parts[0] in handles:
            return parts[0]
        return ref

    work = deque(handles)
    done: set[str] = set()
    while work:
        h = work.popleft()
        if h in done:
            continue
        done.add(h)
        dtype = handles[h]
        for node in list(f.node_def):
            idxs = [i for i, inp in enumerate(node.input) if not inp.startswith("^") and key(inp) == h]
            if not idxs:
                continue
            op = node.op
            if op == "ReadVariableOp":
                node.op = "Identity"
                del node.attr["dtype"]
                node.attr["T"].type = dtype
                renamed[f"{node.name}:value:0"] = f"{node.name}:output:0"
            elif op == "Identity" and attr_type(node, "T") == types_pb2.DT_RESOURCE:
                node.attr["T"].type = dtype
                if "_output_shapes" in node.attr:
                    del node.attr["_output_shapes"]
                handles[f"{node.name}:output:0"] = dtype
                work.append(f"{node.name}:output:0")
            elif op in ("ResourceGather", "ResourceGatherNd") and idxs == [0]:
                gather_to_value(node, dtype, lambda base: _unique_body_name(base, body_names), f)
            elif op == "VariableShape":
                node.op = "Shape"
                del node.attr["dtype"]
                node.attr["T"].type = dtype
            elif op in FUNCTIONAL_OPS or op in lib.funcs:
                outs = specialise_call(node, idxs, dtype, lib)
                for port in outs:
                    ref = f"{node.name}:output:{port}"
                    handles[ref] = dtype
                    work.append(ref)
            else:
                raise GraphError(
                    f"cannot freeze: node {node.name!r} ({op}) in function {f.signature.name!r} uses a variable "
                    "in a way graphxform cannot rewrite to a constant"
                )
    if renamed:
        for node in f.node_def:
            for i, inp in enumerate(node.input):
                if inp in renamed:
                    node.input[i] = renamed[inp]
        for k, v in list(f.ret.items()):
            if v in renamed:
                f.ret[k] = renamed[v]
    for pos, arg in enumerate(f.signature.output_arg):
        ref = f.ret[arg.name]
        if key(ref) in handles and arg.type == types_pb2.DT_RESOURCE:
            if not passthrough_ok:
                raise GraphError(
                    f"cannot freeze: function {f.signature.name!r} returns variable handle {arg.name!r}"
                )
            arg.type = handles[key(ref)]


def _unique_body_name(base: str, used: set[str]) -> str:
    name, i = base, 1
    while name in used:
        name = f"{base}_{i}"
        i += 1
    used.add(name)
    return name


def gather_to_value(
    node: node_def_pb2.NodeDef, dtype: int, unique: Callable[[str], str], f: function_pb2.FunctionDef | None
) -> str | None:
    """``ResourceGather`` → ``GatherV2`` / ``ResourceGatherNd`` → ``GatherNd`` (in place).

    Returns the name of the axis ``Const`` that must be added (graph case) or
    adds it to function ``f`` itself.
    """
    if node.op == "ResourceGatherNd":
        node.op = "GatherNd"
        del node.attr["dtype"]
        node.attr["Tparams"].type = dtype
        return None
    batch_dims = attr_int(node, "batch_dims")
    node.op = "GatherV2"
    for a in ("dtype", "validate_indices"):
        if a in node.attr:
            del node.attr[a]
    node.attr["Tparams"].type = dtype
    node.attr["Taxis"].type = types_pb2.DT_INT32
    node.attr["batch_dims"].i = batch_dims
    axis = axis_const(unique(f"{node.name}/axis"), batch_dims)
    data = [i for i in node.input if not i.startswith("^")]
    ctrl = [i for i in node.input if i.startswith("^")]
    del node.input[:]
    if f is not None:
        f.node_def.append(axis)
        node.input.extend(data[:2] + [f"{axis.name}:output:0"] + ctrl)
        return None
    node.input.extend(data[:2] + [axis.name] + ctrl)
    return axis.name


def axis_const(name: str, value: int) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = types_pb2.DT_INT32
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.int32(value)))
    return node


def specialise_call(node: node_def_pb2.NodeDef, input_idxs: list[int], dtype: int, lib: Library) -> list[int]:
    """Point functional op ``node`` (in place) at function copies taking values; returns output ports now values."""
    if node.op in lib.funcs:  # a direct function call: the op is the function
        node.op = lib.specialise(node.op, {i: dtype for i in input_idxs})
        return []
    first, type_attr, fattrs = FUNCTIONAL_OPS[node.op]
    args = {i - first: dtype for i in input_idxs if i >= first}
    if len(args) != len(input_idxs):
        raise GraphError(f"cannot freeze: node {node.name!r} ({node.op}) takes a variable as its condition")
    types = node.attr[type_attr].list.type
    for i in args:
        types[i] = dtype
    is_while = node.op in WHILE_OPS
    for a in fattrs:
        if node.attr[a].HasField("func"):
            fn = node.attr[a].func
            fn.name = lib.specialise(fn.name, args, passthrough_ok=is_while and a == "body")
        else:
            for fn in node.attr[a].list.func:
                fn.name = lib.specialise(fn.name, args)
    if is_while:  # the loop variables that were handles are values now: their shapes are not scalars
        for attr in ("output_shapes", "_output_shapes"):
            if attr in node.attr:
                shapes = node.attr[attr].list.shape
                for i in args:
                    if i < len(shapes):
                        shapes[i].Clear()
                        shapes[i].unknown_rank = True
    if "_input_shapes" in node.attr:  # (per input, as on the function: the handles' scalar shapes are stale)
        shapes = node.attr["_input_shapes"].list.shape
        for i in input_idxs:
            if i < len(shapes):
                shapes[i].Clear()
                shapes[i].unknown_rank = True
    if "_read_only_resource_inputs" in node.attr:
        ro = [i for i in node.attr["_read_only_resource_inputs"].list.i if i not in input_idxs]
        node.attr["_read_only_resource_inputs"].list.ClearField("i")
        node.attr["_read_only_resource_inputs"].list.i.extend(ro)
    return sorted(args) if is_while else []


__all__ = ["Library", "axis_const", "gather_to_value", "specialise_call"]
