"""What graphxform knows about ops: TensorFlow's op registry (output dtypes, statefulness, attrs with their
defaults) and the op classes every layer names — each class declared here once.

Read attrs through :func:`attr_value` and its typed siblings, never by indexing ``node.attr``: indexing a
protobuf map inserts an empty ``AttrValue``, which TensorFlow's C++ loader refuses.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from tensorflow.core.framework import node_def_pb2, types_pb2
from tensorflow.python.framework import op_def_registry

# --------------------------------------------------------------------------- op classes
#: Ops that hold variables, in their resource and reference forms.
RESOURCE_VARIABLE_OPS = frozenset({"VarHandleOp"})
REF_VARIABLE_OPS = frozenset({"VariableV2", "Variable"})
VARIABLE_OPS = RESOURCE_VARIABLE_OPS | REF_VARIABLE_OPS
#: Ops that write, check or destroy a variable (see also :func:`is_variable_update`).
VARIABLE_UPDATE_OPS = frozenset({
    "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "VarIsInitializedOp", "DisableCopyOnRead",
    "DestroyResourceOp", "Assign", "AssignAdd", "AssignSub", "IsVariableInitialized", "CountUpTo",
    "ResourceCountUpTo", "StridedSliceAssign", "ResourceStridedSliceAssign", "ScatterNdUpdate",
})
_VARIABLE_UPDATE_PREFIXES = ("ResourceApply", "ResourceSparseApply", "ResourceScatter")
#: Ops that write checkpoints or read them back (the saver's).
CHECKPOINT_OPS = frozenset({"SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice",
                            "MergeV2Checkpoints"})

#: Ops that create lookup tables (their ``key_dtype``/``value_dtype`` attrs describe them).
TABLE_OPS = frozenset({
    "HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2", "MutableHashTableOfTensors",
    "MutableHashTableOfTensorsV2", "MutableDenseHashTable", "MutableDenseHashTableV2", "AnonymousHashTable",
    "AnonymousMutableHashTable", "AnonymousMutableHashTableOfTensors", "AnonymousMutableDenseHashTable",
})
#: Tables whose contents a checkpoint may hold (the saver restores them; a frozen model fills them at load).
MUTABLE_TABLE_OPS = frozenset({"MutableHashTableV2", "MutableHashTableOfTensorsV2", "MutableDenseHashTableV2"})
#: Ops that fill a table: input 0 is the table handle.
TABLE_INIT_OPS = frozenset({
    "InitializeTable", "InitializeTableV2", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "LookupTableImport", "LookupTableImportV2", "InitializeTableFromDataset",
})
#: Ops that look keys up in a table (input 0 the table, input 1 the keys).
TABLE_LOOKUP_OPS = frozenset({"LookupTableFindV2", "LookupTableFind"})

#: Feed points: their value comes from the caller, whatever their default.
FEED_OPS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"})

#: Single-input ops whose output is their input, unchanged at inference: looked through when a tensor is traced
#: back to the node that makes it (a weight to its ``Const``), and folded by copying the input ``Const``.
PASS_THROUGH_OPS = frozenset({"Identity", "Snapshot", "StopGradient", "PreventGradient"})
#: Ops whose output ``i`` is their input ``i``: the pass-through ops, ``IdentityN`` (several inputs) and
#: ``CheckNumerics`` (which also checks its input: removed only on request, by ``remove_identity(op=...)``).
FORWARDING_OPS = PASS_THROUGH_OPS | {"IdentityN", "CheckNumerics"}
#: Ops that change a tensor's shape but not its values.
RESHAPE_OPS = frozenset({"Reshape", "ExpandDims", "Squeeze"})
#: Ops a serialized ``tf.Example`` passes through between a signature input and the op that parses it.
EXAMPLE_PATH_OPS = FORWARDING_OPS | RESHAPE_OPS | {"PlaceholderWithDefault"}
#: Ops that parse serialized ``tf.Example`` s (input 0).
PARSE_EXAMPLE_OPS = frozenset({"ParseExampleV2", "ParseExample", "ParseSingleExample"})

#: TF1 control flow: ops that open or close a frame; cycles through them are legal.
CONTROL_FLOW_OPS = frozenset({"Enter", "RefEnter", "Exit", "RefExit", "NextIteration", "RefNextIteration",
                              "Merge", "RefMerge", "Switch", "RefSwitch", "LoopCond"})
#: A TF1 ``while_loop`` frame runs from its entering ops to its exits; a ``cond`` branch from a switch to its merges.
LOOP_ENTER_OPS = frozenset({"Enter", "RefEnter"})
LOOP_EXIT_OPS = frozenset({"Exit", "RefExit"})
COND_SWITCH_OPS = frozenset({"Switch", "RefSwitch"})
COND_MERGE_OPS = frozenset({"Merge", "RefMerge"}) | LOOP_EXIT_OPS
#: The back edge of a TF1 loop (``NextIteration -> Merge``): the edge a topological order leaves out.
LOOP_BACK_EDGE_OPS = frozenset({"NextIteration", "RefNextIteration"})
#: Ops that call a library function and are inlined when a TF2 graph is flattened.
CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
#: Functional ops: op -> (index of the first input passed to the functions, type-list attr, function attrs).
FUNCTIONAL_OPS: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "If": (1, "Tin", ("then_branch", "else_branch")),
    "StatelessIf": (1, "Tin", ("then_branch", "else_branch")),
    "Case": (1, "Tin", ("branches",)),
    "StatelessCase": (1, "Tin", ("branches",)),
    "While": (0, "T", ("cond", "body")),
    "StatelessWhile": (0, "T", ("cond", "body")),
    "PartitionedCall": (0, "Tin", ("f",)),
    "StatefulPartitionedCall": (0, "Tin", ("f",)),
}
WHILE_OPS = frozenset({"While", "StatelessWhile"})
#: TF1 frames, TF2 functional control flow and function calls: nothing to evaluate as a plain op.
CONTROL_OPS = CONTROL_FLOW_OPS | set(FUNCTIONAL_OPS) | {"ControlTrigger", "For", "SymbolicGradient", "RemoteCall"}

#: Sources whose value is not in the graph (memory-mapped files, function parameters, sends and receives).
EXTERNAL_OPS = frozenset({"ImmutableConst", "FakeParam", "_Arg", "_Retval", "_Recv", "_HostRecv", "_Send"})
#: Ops that read or write files, list directories, run Python or write debug dumps: never evaluated while
#: folding, even when TensorFlow calls them stateless (``ReadFile``, ``MatchingFiles``, ``PyFuncStateless``,
#: ``Debug*`` with ``debug_urls``), so transforming a model never touches the host or runs the model's code.
HOST_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "GenerateVocabRemapping", "LoadAndRemapMatrix",
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "Print", "PrintV2", "DebugIdentity", "DebugIdentityV2",
    "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2", "DecodeProtoV2",
    "EncodeProto", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
}) | CHECKPOINT_OPS
#: What ``inspect`` warns about in a model it did not make: ops that touch the serving host or run code (the
#: checkpoint ops count only outside the saver, where they belong), with the reason shown.
RISKY_OPS: dict[str, str] = {
    "ReadFile": "reads a file from the serving host",
    "WriteFile": "writes a file on the serving host",
    "MatchingFiles": "lists files on the serving host (glob)",
    "ImmutableConst": "memory-maps a file from the serving host",
    "PrintV2": "prints tensors to a log or file",
    "Print": "prints tensors to stderr",
    "PyFunc": "runs Python code (needs the exporting process; not servable)",
    "PyFuncStateless": "runs Python code (needs the exporting process; not servable)",
    "EagerPyFunc": "runs Python code (needs the exporting process; not servable)",
}
#: What ``saved_model_cli scan`` reports by default (its ``_OP_DENYLIST``).
SAVED_MODEL_CLI_DENYLIST = frozenset({"WriteFile", "ReadFile", "PrintV2"})

#: Ops that are never a model's output even when nothing consumes them (as ``summarize_graph`` had it, and more).
NOT_OUTPUT_OPS = frozenset({
    "Const", "NoOp", "Assert", "Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp",
    "AssignSubVariableOp", "VarIsInitializedOp", "IsVariableInitialized", "ScalarSummary", "HistogramSummary",
    "ImageSummary", "AudioSummary", "AudioSummaryV2", "TensorSummary", "TensorSummaryV2", "MergeSummary", "Print",
    "PrintV2", "DestroyResourceOp", "ShardedFilename", "ShardedFilespec", "StringJoin",
}) | (FEED_OPS - {"PlaceholderV2"}) | VARIABLE_OPS | CHECKPOINT_OPS | TABLE_INIT_OPS
#: Batch norms fused into one op (``FusedBatchNorm`` V1 to V3).
FUSED_BATCH_NORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})


def is_random(op: str) -> bool:
    """Random ops other than the deterministic ``Stateless*`` ones."""
    if op.startswith("Stateless"):
        return False
    return ("Random" in op or op in {"TruncatedNormal", "Multinomial", "ParameterizedTruncatedNormal"}
            or op.endswith("CandidateSampler"))


def is_variable_update(op: str) -> bool:
    """True for ops that assign, check or destroy variables (they go when the variable is frozen).

    Besides :data:`VARIABLE_UPDATE_OPS`: resource update ops (``ResourceApply*``,
    ``ResourceScatter*`` …) and ops whose first input is a reference
    (``ScatterUpdate``, ``ApplyAdam`` …), but not the ``Ref*`` control-flow ops.
    """
    if op in VARIABLE_UPDATE_OPS or op.startswith(_VARIABLE_UPDATE_PREFIXES):
        return True
    d = op_def(op)
    return bool(d and d.input_arg and d.input_arg[0].is_ref and not op.startswith("Ref"))


# --------------------------------------------------------------------------- the op registry
@lru_cache(maxsize=None)
def op_def(op: str) -> Any | None:
    """The registered ``OpDef`` of ``op``, or ``None`` for unknown ops and function calls."""
    return op_def_registry.get(op)


def is_known_op(op: str) -> bool:
    return op_def(op) is not None


def is_stateful(op: str) -> bool:
    """True for stateful ops and for ops TF does not know (treated as stateful to be safe)."""
    d = op_def(op)
    return True if d is None else bool(d.is_stateful)


def _args(op: str, which: str) -> tuple[tuple[str, str, int, str], ...] | None:
    d = op_def(op)
    if d is None:
        return None
    return tuple((a.type_list_attr, a.type_attr, a.type, a.number_attr) for a in getattr(d, which))


@lru_cache(maxsize=None)
def _output_args(op: str) -> tuple[tuple[str, str, int, str], ...] | None:
    """``(type_list_attr, type_attr, type, number_attr)`` of each output of the registered op ``op`` (read from
    its ``OpDef`` once: proto fields are slow to read)."""
    return _args(op, "output_arg")


@lru_cache(maxsize=None)
def input_args(op: str) -> tuple[tuple[str, str, int, str], ...] | None:
    """:func:`_output_args` for the inputs of ``op``."""
    return _args(op, "input_arg")


def output_dtypes(node: node_def_pb2.NodeDef) -> list[int] | None:
    """The ``DataType`` enums of every output of ``node``, or ``None`` when unknown."""
    args = _output_args(node.op)
    if args is None:
        tout = attr_list(node, "Tout")
        return list(tout.type) if tout is not None else None
    out: list[int] = []
    for type_list_attr, type_attr, fixed_type, number_attr in args:
        if type_list_attr:
            types_list = attr_list(node, type_list_attr)
            if types_list is None:
                return None
            types = list(types_list.type)
        elif type_attr:
            value = attr_value(node, type_attr)
            if value is None or value.WhichOneof("value") != "type":
                return None
            types = [value.type]
        else:
            types = [fixed_type]
        if number_attr:
            value = attr_value(node, number_attr)
            if value is None:
                return None
            types = types * int(value.i)
        out.extend(types)
    return out



def output_count(node: node_def_pb2.NodeDef) -> int | None:
    """How many outputs ``node`` has, when its op is registered and its attrs say it for sure."""
    args = _output_args(node.op)  # (the OpDef's output args, read once per op)
    if args is None:
        return None
    count = 0
    attr = node.attr
    for type_list_attr, _, _, number_attr in args:
        if number_attr:
            value = attr.get(number_attr)  # (indexing a proto map would insert the key)
            if value is None:
                return None
            count += int(value.i)
        elif type_list_attr:
            value = attr.get(type_list_attr)
            if value is None:
                return None
            count += len(value.list.type)
        else:
            count += 1
    return count

# --------------------------------------------------------------------------- reading attrs
# ``node.attr[name]`` on a NodeDef *inserts* an empty ``AttrValue`` when the key is absent (protobuf map
# semantics), and an AttrValue with no value makes TensorFlow's C++ loader refuse the whole graph
# ("AttrValue missing value with expected type 'bool' for attr 'transpose_b'"). Absent attrs are normal:
# exporters strip those equal to the op's default. Read attrs through these functions, never by indexing.
@lru_cache(maxsize=None)
def attr_defaults(op: str) -> dict[str, Any]:
    """``{attr name: default AttrValue}`` of the registered op ``op`` (empty for unknown ops and functions)."""
    d = op_def(op)
    if d is None:
        return {}
    return {a.name: a.default_value for a in d.attr if a.HasField("default_value")}


def attr_value(node: node_def_pb2.NodeDef, name: str) -> Any | None:
    """``node``'s attr ``name`` without ever inserting it: the node's value, else the op's default, else None."""
    value = node.attr.get(name)  # (one lookup; indexing would insert the key)
    if value is not None and value.WhichOneof("value") is not None:
        return value
    return attr_defaults(node.op).get(name)


def attr_bool(node: node_def_pb2.NodeDef, name: str, default: bool = False) -> bool:
    v = attr_value(node, name)
    return bool(v.b) if v is not None and v.WhichOneof("value") == "b" else default


def attr_int(node: node_def_pb2.NodeDef, name: str, default: int = 0) -> int:
    v = attr_value(node, name)
    return int(v.i) if v is not None and v.WhichOneof("value") == "i" else default


def attr_float(node: node_def_pb2.NodeDef, name: str, default: float = 0.0) -> float:
    v = attr_value(node, name)
    return float(v.f) if v is not None and v.WhichOneof("value") == "f" else default


def attr_str(node: node_def_pb2.NodeDef, name: str, default: str = "") -> str:
    """A string attr decoded as UTF-8 (invalid bytes replaced)."""
    v = attr_value(node, name)
    return v.s.decode("utf-8", errors="replace") if v is not None and v.WhichOneof("value") == "s" else default


def attr_type(node: node_def_pb2.NodeDef, name: str, default: int = 0) -> int:
    """A ``type`` attr as its ``DataType`` enum (``default``, DT_INVALID, when absent)."""
    v = attr_value(node, name)
    return int(v.type) if v is not None and v.WhichOneof("value") == "type" else default


def attr_list(node: node_def_pb2.NodeDef, name: str) -> Any | None:
    """A ``list`` attr's ``ListValue`` (``None`` when absent); read-only: copy it before changing it."""
    v = attr_value(node, name)
    return v.list if v is not None and v.WhichOneof("value") == "list" else None


def dtype_label(dtype: int) -> str:
    """``float``, ``int32`` … for a ``DataType`` enum, as error messages name it (``enum N`` when unknown)."""
    try:
        return types_pb2.DataType.Name(dtype)[3:].lower()
    except ValueError:
        return f"enum {dtype}"
