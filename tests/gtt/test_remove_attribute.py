"""Port of ``tensorflow/tools/graph_transforms/remove_attribute_test.cc`` (``RemoveAttributeTest``).

GTT's ``remove_attribute(op_name=, attribute_name=)`` (``op_name=*``: every op).
The C++ test sets its parameters directly; written as a transform string, ``*`` must be quoted
(``op_name="*"``): GTT's parser, like graphxform's, takes only letters, digits and ``-._/`` unquoted.
"""
from __future__ import annotations

from .conftest import node_map, transform, tree_graph

ATTRS = {"mul_node1": {"foo": 23, "bar": "something"},
         "add_node2": {"foo": 46, "bob": 23, "bar": "something else"}}


def test_remove_attribute():
    """RemoveAttributeTest.TestRemoveAttribute: ``op_name=*`` removes ``foo`` everywhere; ``op_name=Mul`` from the
    Mul only."""
    out = node_map(transform(tree_graph(**ATTRS), [], ["mul_node1"],
                             'remove_attribute(op_name="*", attribute_name=foo)'))
    assert set(out["mul_node1"].attr) == {"bar"}
    assert set(out["add_node2"].attr) == {"bar", "bob"}
    out = node_map(transform(tree_graph(**ATTRS), [], ["mul_node1"],
                             "remove_attribute(op_name=Mul, attribute_name=foo)"))
    assert set(out["mul_node1"].attr) == {"bar"}
    assert set(out["add_node2"].attr) == {"foo", "bar", "bob"}
