"""Ports of ``tensorflow/tools/graph_transforms/obfuscate_names_test.cc`` (``ObfuscateNamesTest``).

GTT's ``obfuscate_names`` gives every node but the inputs and outputs a short
generated name, without clashes. graphxform: ``transforms/obfuscate_names.py``. Bare NodeDefs, as
in the C++ tests.
"""
from __future__ import annotations

from .conftest import graph_def, node, node_map, transform



def test_simple_tree():
    """ObfuscateNamesTest.TestSimpleTree: only the input ``const_node1`` and the output ``add_node1`` keep their
    names."""
    gd = graph_def(
        node("add_node1", "Add", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["const_node1", "const_node2"]),
        node("add_node3", "Add", ["const_node3", "const_node4"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
        node("const_node4", "Const"),
    )
    out = node_map(transform(gd, ["const_node1"], ["add_node1"], "obfuscate_names"))
    assert "add_node1" in out and "const_node1" in out
    for name in ("add_node2", "add_node3", "const_node2", "const_node3", "const_node4"):
        assert name not in out


def test_many_nodes():
    """ObfuscateNamesTest.TestManyNodes: 1000 Consts; the input and the output keep their names, the others not."""
    gd = graph_def(*(node(f"const_node{i}", "Const") for i in range(1000)))
    out = node_map(transform(gd, ["const_node0"], ["const_node999"], "obfuscate_names"))
    assert "const_node0" in out and "const_node999" in out and "const_node500" not in out


def test_name_clashes():
    """ObfuscateNamesTest.TestNameClashes: 1000 nodes named ``1<i>``; the generated names never clash with the
    kept ``10`` and ``19``."""
    gd = graph_def(*(node(f"1{i}", "Const") for i in range(1000)))
    out = transform(gd, ["10"], ["19"], "obfuscate_names")
    names = [n.name for n in out.node]
    assert "10" in names and "19" in names
    assert len(names) == len(set(names))
