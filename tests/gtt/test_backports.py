"""Ports of ``tensorflow/tools/graph_transforms/backports_test.cc`` (``BackportConcatV2Test``,
``BackportTensorArrayV3Test``).

GTT's ``backport_concatv2`` rewrites ``ConcatV2(values..., axis)`` as the old
``Concat(axis, values...)`` (no ``Tidx``); ``backport_tensor_array_v3`` turns
``TensorArrayV3`` into ``TensorArrayV2`` (its flow output replaced by a Const)
and every ``TensorArray*V3`` op into its ``V2``. graphxform implements both
(``transforms/backport_concatv2.py``, ``transforms/backport_tensor_array_v3.py``).
Bare NodeDefs, as in the C++ tests.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .conftest import const, graph_def, node, node_map, shape_proto, transform


def test_backport_concat_v2():
    """BackportConcatV2Test.TestBackportConcatV2: the ConcatV2 becomes a Concat with the axis first, no Tidx."""
    gd = graph_def(
        node("mul_node1", "Mul", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["const_node1", "const_node2"]),
        node("add_node3", "Add", ["const_node1", "const_node3"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
        node("concat_node", "ConcatV2", ["const_node1", "const_node2", "const_node3"], Tidx=tf.int32),
    )
    out = node_map(transform(gd, [], ["concat_node"], "backport_concatv2"))
    assert out["concat_node"].op == "Concat"
    assert "Tidx" not in out["concat_node"].attr
    assert list(out["concat_node"].input) == ["const_node3", "const_node1", "const_node2"]
    for name in ("const_node1", "const_node2", "const_node3"):
        assert out[name].op == "Const"


def test_backport_tensor_array_v3():
    """BackportTensorArrayV3Test.TestBackportTensorArrayV3: TensorArrayV3 -> TensorArrayV2, TensorArrayGradV3 ->
    TensorArrayGradV2, and nothing reads ``tensor_array_node:1`` (the V3 flow output) any more."""
    gd = graph_def(
        const("size_node", np.int32(1), tf.int32),
        node("tensor_array_node", "TensorArrayV3", ["size_node"], dtype=tf.float32, element_shape=shape_proto([1, 2]),
             dynamic_size=False, clear_after_read=True, tensor_array_name="some_name"),
        node("handle_output_node", "Identity", ["tensor_array_node:0"]),
        node("flow_output_node", "Identity", ["tensor_array_node:1"]),
        node("tensor_array_grad_node", "TensorArrayGradV3", ["tensor_array_node:0", "tensor_array_node:1"],
             source="foo"),
        node("grad_handle_output_node", "Identity", ["tensor_array_grad_node:0"]),
        node("grad_flow_output_node", "Identity", ["tensor_array_grad_node:1"]),
    )
    out = transform(gd, [], ["handle_output_node", "grad_handle_output_node"], "backport_tensor_array_v3")
    nodes = node_map(out)
    assert nodes["tensor_array_node"].op == "TensorArrayV2"
    assert nodes["tensor_array_grad_node"].op == "TensorArrayGradV2"
    assert all(i != "tensor_array_node:1" for n in out.node for i in n.input)


V3_OPS = ["TensorArrayWriteV3", "TensorArrayReadV3", "TensorArrayGatherV3", "TensorArrayScatterV3",
          "TensorArrayConcatV3", "TensorArraySplitV3", "TensorArraySizeV3", "TensorArrayCloseV3"]


def test_backport_tensor_array_v3_subtypes():
    """BackportTensorArrayV3Test.TestBackportTensorArrayV3Subtypes: each TensorArray*V3 op becomes its V2 (the C++
    test passes one empty output name)."""
    for v3_op in V3_OPS:
        out = node_map(transform(graph_def(node("v3_node", v3_op)), [], [""], "backport_tensor_array_v3"))
        assert out["v3_node"].op.endswith("V2"), v3_op
