"""What TensorFlow's op registry says about a node: output dtypes, statefulness."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from tensorflow.core.framework import node_def_pb2


@lru_cache(maxsize=None)
def op_def(op: str) -> Any | None:
    """The registered ``OpDef`` of ``op``, or ``None`` for unknown ops and function calls."""
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op)


def is_known_op(op: str) -> bool:
    return op_def(op) is not None


def is_stateful(op: str) -> bool:
    """True for stateful ops and for ops TF does not know (treated as stateful to be safe)."""
    d = op_def(op)
    return True if d is None else bool(d.is_stateful)


def output_dtypes(node: node_def_pb2.NodeDef) -> list[int] | None:
    """The ``DataType`` enums of every output of ``node``, or ``None`` when unknown."""
    d = op_def(node.op)
    if d is None:
        if "Tout" in node.attr:
            return list(node.attr["Tout"].list.type)
        return None
    out: list[int] = []
    for arg in d.output_arg:
        if arg.type_list_attr:
            types = list(node.attr[arg.type_list_attr].list.type)
        elif arg.type_attr:
            if arg.type_attr not in node.attr:
                return None
            types = [node.attr[arg.type_attr].type]
        else:
            types = [arg.type]
        if arg.number_attr:
            types = types * int(node.attr[arg.number_attr].i)
        out.extend(types)
    return out
