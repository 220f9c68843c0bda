"""Port of ``tensorflow/tools/graph_transforms/rename_op_test.cc`` (``RenameOpTest``).

GTT's ``rename_op(old_op_name=, new_op_name=)`` changes the op of every node of
one type. graphxform: ``transforms/rename_op.py``. The graph is bare NodeDefs, as in C++.
"""
from __future__ import annotations

from .conftest import node_map, transform, tree_graph


def test_rename_op():
    """RenameOpTest.TestRenameOp: ``rename_op(old_op_name=Mul, new_op_name=Multiply)`` changes the Mul's op only."""
    out = node_map(transform(tree_graph(), [], ["mul_node1"], "rename_op(old_op_name=Mul, new_op_name=Multiply)"))
    assert out["mul_node1"].op == "Multiply"
    for name in ("add_node2", "add_node3", "add_node4"):
        assert out[name].op == "Add"
    for name in ("const_node1", "const_node2", "const_node3"):
        assert out[name].op == "Const"
