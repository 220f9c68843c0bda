"""Ports of ``tensorflow/tools/graph_transforms/sparsify_gather_test.cc`` (``SparsifyGatherTest``).

GTT's ``sparsify_gather(input_checkpoint=, group_init_node=group_deps)`` turns a
``Gather``/``GatherV2`` of a (mostly zero) embedding ``Const`` or variable
(read from ``input_checkpoint``, partitions and slices included) into a
``HashTable`` lookup: ``<w>/indices`` (int64) and ``<w>/values`` hold the
non-zero rows, ``<w>/InitializeTable`` fills ``<w>/HashTable`` and runs under
the ``group_init_node`` NoOp, ``<gather>/LookupTableFind`` (default
``<gather>/Const`` 0.0) and ``ExpandDims(-1)`` named ``<gather>`` replace the
gather; the variable's initializer and restore nodes go, and a ConcatV2 of the
weight loses that input (an Identity if one input is left). graphxform:
``transforms/sparsify_gather.py``.

The C++ tests use bare NodeDefs (``ids`` is a Const without a value): the
graphs are looked at, never run. The C++ TESTs loop over the combinations
(Gather/GatherV2, with/without a shared init NoOp, Const/variable weights,
kept/removed concat, default/custom init node name); the ports parametrize
them.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from .conftest import const, graph_def, node, node_map, tensor_value, transform


WEIGHTS = np.array([[0.2], [0.000001], [1.2], [0.001]], np.float32)


def _write_checkpoint(prefix, tensors, slices=None):
    """A TF checkpoint (BundleWriter's format) holding ``tensors`` ({name: array}), saved whole or as slices."""
    names = list(tensors)
    specs = [(slices or {}).get(n, "") for n in names]
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=specs,
                      tensors=[tf.constant(tensors[n]) for n in names])
    return str(prefix)


def _weights(nodes, w, test_variable):
    """``w`` as a Const, or as a VariableV2 with its zeros initializer and its save/restore nodes (appended)."""
    if not test_variable:
        nodes.append(const(w, WEIGHTS))
        return None
    nodes += [node(w, "VariableV2", dtype=tf.float32),
              node(f"{w}/Initializer/zeros/shape_as_tensor", "Const"),
              node(f"{w}/Initializer/zeros/Const", "Const"),
              node(f"{w}/Initializer/zeros", "Fill", [f"{w}/Initializer/zeros/shape_as_tensor",
                                                      f"{w}/Initializer/zeros/Const"]),
              node(f"{w}/Assign", "Assign", [w, f"{w}/Initializer/zeros"])]
    return f"{w}/Assign"


def _gather(nodes, name, gather_v2, params, indices):
    if gather_v2:
        nodes.append(const(f"{name}_axis", np.int32(0), tf.int32))
        nodes.append(node(name, "GatherV2", [params, indices, f"{name}_axis"]))
    else:
        nodes.append(node(name, "Gather", [params, indices]))


def _restore(nodes, variables, slices):
    """save/Const, save/RestoreV2 (tensor_names, shape_and_slices) and one save/Assign per variable (each reading
    ``save/RestoreV2``'s output 0, as in the C++ test)."""
    nodes += [node("save/Const", "Const"),
              const("save/RestoreV2/tensor_names", [k for _, k in variables], tf.string),
              const("save/RestoreV2/shape_and_slices", slices, tf.string),
              node("save/RestoreV2", "RestoreV2", ["save/Const", "save/RestoreV2/tensor_names",
                                                   "save/RestoreV2/shape_and_slices"])]
    for i, (w, _) in enumerate(variables):
        nodes.append(node("save/Assign" + (f"_{i}" if i else ""), "Assign", [w, "save/RestoreV2"]))


def _check_table(out, w, gather, ids="ids"):
    assert out[f"{w}/indices"].op == "Const"
    np.testing.assert_array_equal(tensor_value(out[f"{w}/indices"]), np.array([0, 2, 3], np.int64))
    assert tensor_value(out[f"{w}/indices"]).dtype == np.int64
    assert out[f"{w}/values"].op == "Const"
    np.testing.assert_allclose(tensor_value(out[f"{w}/values"]), [0.2, 1.2, 0.001], atol=1e-5)
    assert out[f"{w}/HashTable"].op == "HashTable"
    assert out[f"{w}/InitializeTable"].op == "InitializeTable"
    assert list(out[f"{w}/InitializeTable"].input)[:3] == [f"{w}/HashTable", f"{w}/indices", f"{w}/values"]
    assert out[f"{gather}/LookupTableFind"].op == "LookupTableFind"
    assert list(out[f"{gather}/LookupTableFind"].input)[:3] == [f"{w}/HashTable", ids, f"{gather}/Const"]
    assert out[f"{gather}/Const"].op == "Const" and tensor_value(out[f"{gather}/Const"]) == pytest.approx(0.0)
    assert out[f"{gather}/ExpandDims/Const"].op == "Const"
    assert tensor_value(out[f"{gather}/ExpandDims/Const"]) == -1
    assert out[gather].op == "ExpandDims" and out[gather].input[0] == f"{gather}/LookupTableFind"


def _check_initializers_gone(out, w):
    for suffix in ("/Initializer/zeros/shape_as_tensor", "/Initializer/zeros/Const", "/Initializer/zeros",
                   "/Assign"):
        assert w + suffix not in out


SINGLE = [(v2, init, var, False, "group_deps") for var, v2, init in itertools.product((False, True), repeat=3)]
SINGLE += [(v2, True, var, False, "shared_inits") for var, v2 in itertools.product((False, True), repeat=2)]
SINGLE += [(v2, init, var, True, name) for v2, init, var, _, name in SINGLE]


@pytest.mark.parametrize("gather_v2, include_shared_init, test_variable, test_kept_concat, shared_init_name", SINGLE)
def test_single_partition(tmp_path, gather_v2, include_shared_init, test_variable, test_kept_concat,
                          shared_init_name):
    """SparsifyGatherTest.TestSinglePartition (its 24 combinations)."""
    nodes = [node("ids", "Const")]
    assign = _weights(nodes, "w/part_1", test_variable)
    params = []
    if test_variable:
        _restore(nodes, [("w/part_1", "w")], ["4 1 0,4:0,1"])
        params.append(f'input_checkpoint="{_write_checkpoint(tmp_path / "checkpoint_single", {"w": WEIGHTS})}"')
    nodes.append(node("w/read", "Identity", ["w/part_1"]))
    _gather(nodes, "gather", gather_v2, "w/read", "ids")
    if include_shared_init:
        nodes.append(node(shared_init_name, "NoOp", [f"^{assign}"] if test_variable else []))
    nodes += [node("linear/concat/axis", "Const"), node("concat/input/node", "Const")]
    if not test_kept_concat:
        nodes.append(node("concat/node", "ConcatV2", ["w/read", "concat/input/node", "linear/concat/axis"], N=2))
    else:
        nodes.append(node("concat/input/node_2", "Const"))
        nodes.append(node("concat/node", "ConcatV2", ["w/read", "concat/input/node", "concat/input/node_2",
                                                      "linear/concat/axis"], N=3))
    if shared_init_name != "group_deps":
        params.append(f"group_init_node={shared_init_name}")
    out = node_map(transform(graph_def(*nodes), ["ids"], ["gather"],
                             f"sparsify_gather({', '.join(params)})" if params else "sparsify_gather"))

    _check_initializers_gone(out, "w/part_1")
    assert out["ids"].op == "Const"
    if not test_kept_concat:
        assert "linear/concat/axis" not in out
        assert out["concat/node"].op == "Identity" and list(out["concat/node"].input) == ["concat/input/node"]
    else:
        assert out["concat/node"].op == "ConcatV2"
        assert list(out["concat/node"].input) == ["concat/input/node", "concat/input/node_2", "linear/concat/axis"]
        assert out["concat/node"].attr["N"].i == 2
    _check_table(out, "w/part_1", "gather")
    assert out[shared_init_name].op == "NoOp"
    assert list(out[shared_init_name].input) == ["^w/part_1/InitializeTable"]


MULTI = [(v2, init, var, "group_deps") for var, v2, init in itertools.product((False, True), repeat=3)]
MULTI += [(v2, True, var, "shared_inits") for var, v2 in itertools.product((False, True), repeat=2)]


@pytest.mark.parametrize("gather_v2, include_shared_init, test_variable, shared_init_name", MULTI)
def test_multi_partition(tmp_path, gather_v2, include_shared_init, test_variable, shared_init_name):
    """SparsifyGatherTest.TestMultiPartition (its 12 combinations): two weights, one ``ids`` for both gathers."""
    nodes = [node("ids", "Const")]
    params = []
    assigns = [_weights(nodes, f"{w}/part_1", test_variable) for w in ("w1", "w2")]
    if test_variable:
        _restore(nodes, [("w1/part_1", "w1"), ("w2/part_1", "w2")], ["4 1 0,4:0,1", "4 1 0,4:0,1"])
        ckpt = _write_checkpoint(tmp_path / "checkpoint_multiple", {"w1": WEIGHTS, "w2": WEIGHTS})
        params.append(f'input_checkpoint="{ckpt}"')
    for w in ("w1", "w2"):
        nodes.append(node(f"{w}/part_1/read", "Identity", [f"{w}/part_1"]))
    _gather(nodes, "gather1", gather_v2, "w1/part_1/read", "ids")
    _gather(nodes, "gather2", gather_v2, "w2/part_1/read", "ids")
    nodes += [node("linear/concat/axis", "Const"),
              node("concat/node", "ConcatV2", ["w1/part_1/read", "w2/part_1/read", "linear/concat/axis"], N=2)]
    if include_shared_init:
        nodes.append(node(shared_init_name, "NoOp", [f"^{a}" for a in assigns] if test_variable else []))
    if shared_init_name != "group_deps":
        params.append(f"group_init_node={shared_init_name}")
    out = node_map(transform(graph_def(*nodes), ["ids"], ["gather1", "gather2"],
                             f"sparsify_gather({', '.join(params)})" if params else "sparsify_gather"))

    for w in ("w1/part_1", "w2/part_1"):
        _check_initializers_gone(out, w)
    assert out["ids"].op == "Const"
    assert out[shared_init_name].op == "NoOp"
    _check_table(out, "w1/part_1", "gather1")
    _check_table(out, "w2/part_1", "gather2")
    assert "linear/concat/axis" not in out and "concat/node" not in out
    assert sorted(out[shared_init_name].input) == ["^w1/part_1/InitializeTable", "^w2/part_1/InitializeTable"]


def test_tensor_slice(tmp_path):
    """SparsifyGatherTest.TestTensorSlice (the C++ test calls the internal ``ReadTensorFromCheckpoint`` on
    ``w/part_0`` with the slice spec ``4 1 0,2:0,1``; here a variable restored from that slice of a checkpoint
    that holds only rows 0-1 of ``w``): the table holds the slice's values."""
    part = WEIGHTS[:2]
    ckpt = _write_checkpoint(tmp_path / "checkpoint_slice", {"w": part}, slices={"w": "4 1 0,2:0,1"})
    nodes = [node("ids", "Const")]
    _weights(nodes, "w/part_0", True)
    _restore(nodes, [("w/part_0", "w")], ["4 1 0,2:0,1"])
    nodes.append(node("w/part_0/read", "Identity", ["w/part_0"]))
    _gather(nodes, "gather", True, "w/part_0/read", "ids")
    out = node_map(transform(graph_def(*nodes), ["ids"], ["gather"], f'sparsify_gather(input_checkpoint="{ckpt}")'))
    np.testing.assert_array_equal(tensor_value(out["w/part_0/indices"]), [0])
    np.testing.assert_allclose(tensor_value(out["w/part_0/values"]), [0.2], atol=1e-7)
