"""Port of ``tensorflow/tools/graph_transforms/rename_attribute_test.cc`` (``RenameAttributeTest``).

GTT's ``rename_attribute(op_name=, old_attribute_name=, new_attribute_name=)``
(``op_name=*``: every op). The C++ test sets its parameters directly; written as a transform
string, ``*`` must be quoted (``op_name="*"``): GTT's parser, like graphxform's, takes only letters,
digits and ``-._/`` unquoted.
"""
from __future__ import annotations

from .conftest import node_map, transform, tree_graph

ATTRS = {"mul_node1": {"foo": 23, "bar": "something"},
         "add_node2": {"foo": 46, "bob": 23, "bar": "something else"}}


def test_rename_attribute():
    """RenameAttributeTest.TestRenameAttribute: ``op_name=*`` renames ``foo`` to ``baz`` on every node;
    ``op_name=Mul`` on the Mul only."""
    out = node_map(transform(tree_graph(**ATTRS), [], ["mul_node1"],
                             'rename_attribute(op_name="*", old_attribute_name=foo, new_attribute_name=baz)'))
    assert set(out["mul_node1"].attr) == {"baz", "bar"}
    assert set(out["add_node2"].attr) == {"baz", "bar", "bob"}
    out = node_map(transform(tree_graph(**ATTRS), [], ["mul_node1"],
                             "rename_attribute(op_name=Mul, old_attribute_name=foo, new_attribute_name=baz)"))
    assert set(out["mul_node1"].attr) == {"baz", "bar"}
    assert set(out["add_node2"].attr) == {"foo", "bar", "bob"}
