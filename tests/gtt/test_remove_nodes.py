"""Ports of ``tensorflow/tools/graph_transforms/remove_nodes_test.cc`` (``RemoveNodesTest``).

GTT's ``remove_nodes(op=..., max_inputs=1)`` replaces every node of the given
op types that has 1..``max_inputs`` inputs by its first input, except the
graph's inputs and outputs; any op type may be named. graphxform's
``remove_nodes`` (``remove_identity``) removes pass-through ops only
(``Identity``, ``IdentityN``, ``Snapshot``, ``StopGradient``, ``CheckNumerics``,
``PreventGradient``) and moves control inputs to the consumers instead of
dropping them.

The C++ tests use bare NodeDefs (no attrs, Consts without values); so do the
ports: the graphs are only looked at, never run.
"""
from __future__ import annotations

import pytest

from graphxform.core.errors import GraphError

from .conftest import graph_def, node, node_map, transform


def test_remove_nodes():
    """RemoveNodesTest.TestRemoveNodes: the Identity nodes go, their consumers read the Consts.

    Deliberate difference: ``identity_node3``, which no node reads and which is not an output, stays (graphxform's
    ``remove_identity`` leaves dangling pass-throughs, which may be fetched by name; ``strip_unused_nodes`` removes
    dead code). GTT removes it.
    """
    gd = graph_def(
        node("add_node1", "Add", ["add_node2", "add_node3"]),
        node("add_node2", "Add", ["identity_node1", "identity_node2"]),
        node("add_node3", "Add", ["identity_node1", "const_node3"]),
        node("identity_node1", "Identity", ["const_node1"]),
        node("identity_node2", "Identity", ["const_node2"]),
        node("identity_node3", "Identity", ["const_node3"]),
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
        node("add_node4", "Add", ["add_node2", "add_node3"]),
    )
    out = node_map(transform(gd, [], ["add_node1"], "remove_nodes(op=Identity)"))
    assert list(out["add_node1"].input) == ["add_node2", "add_node3"]
    assert list(out["add_node2"].input) == ["const_node1", "const_node2"]
    assert list(out["add_node3"].input) == ["const_node1", "const_node3"]
    assert list(out["add_node4"].input) == ["add_node2", "add_node3"]
    assert "identity_node1" not in out and "identity_node2" not in out
    assert list(out["identity_node3"].input) == ["const_node3"]  # GTT: removed
    for name in ("const_node1", "const_node2", "const_node3"):
        assert out[name].op == "Const"


def test_remove_output_nodes():
    """RemoveNodesTest.TestRemoveOutputNodes: an Identity that is a graph output stays, reading ``add_node``."""
    gd = graph_def(
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("add_node", "Add", ["const_node1", "const_node2"]),
        node("identity_node", "Identity", ["add_node"]),
    )
    out = node_map(transform(gd, [], ["identity_node"], "remove_nodes(op=Identity)"))
    assert list(out["add_node"].input) == ["const_node1", "const_node2"]
    assert list(out["identity_node"].input) == ["add_node"]


def _chain():
    return graph_def(
        node("const_node1", "Const"),
        node("identity_node1", "Identity", ["const_node1"]),
        node("identity_node2", "Identity", ["identity_node1"]),
        node("identity_node3", "Identity", ["identity_node2"]),
        node("const_node2", "Const"),
        node("add_node", "Add", ["identity_node3", "const_node2"]),
    )


def test_remove_chained_nodes():
    """RemoveNodesTest.TestRemoveChainedNodes: a chain of three Identity nodes collapses; ``add_node`` reads
    ``const_node1``.

    Deliberate difference: the C++ test names ``identity_node``, a node that does not exist, as the output; GTT's
    ``remove_nodes`` ignores it, graphxform refuses unknown input/output names with a clear error. The chain is
    then checked with ``add_node`` as the output.
    """
    with pytest.raises(GraphError, match="'identity_node' named in inputs/outputs is not a node"):
        transform(_chain(), [], ["identity_node"], "remove_nodes(op=Identity)")
    out = node_map(transform(_chain(), [], ["add_node"], "remove_nodes(op=Identity)"))
    assert list(out["add_node"].input) == ["const_node1", "const_node2"]
    for name in ("identity_node1", "identity_node2", "identity_node3"):
        assert name not in out


def test_remove_multiple_inputs():
    """RemoveNodesTest.TestRemoveMultipleInputs: ``remove_nodes(op=FakeQuantWithMinMaxVars, max_inputs=3)`` replaces
    the 3-input FakeQuant by its first input."""
    gd = graph_def(
        node("const_node1", "Const"),
        node("const_node2", "Const"),
        node("const_node3", "Const"),
        node("const_node4", "Const"),
        node("fake_quant_node", "FakeQuantWithMinMaxVars", ["const_node1", "const_node2", "const_node3"]),
        node("add_node", "Add", ["fake_quant_node", "const_node4"]),
    )
    out = node_map(transform(gd, [], ["add_node"], "remove_nodes(op=FakeQuantWithMinMaxVars, max_inputs=3)"))
    assert "const_node1" in out and "const_node4" in out
    assert "fake_quant_node" not in out
    assert list(out["add_node"].input) == ["const_node1", "const_node4"]
