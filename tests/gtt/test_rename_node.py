"""Ports of ``tensorflow/tools/graph_transforms/rename_node_test.cc`` (``RenameNodeTest``).

GTT's ``rename_node(old_node_name=, new_node_name=)`` renames one node and every
input naming it (ports and ``^`` kept); a name already taken is an error.
graphxform: ``transforms/rename_node.py``.
"""
from __future__ import annotations

import pytest

from graphxform.core.errors import GraphxformError

from .conftest import graph_def, node, node_map, transform


def _splitter():
    return graph_def(
        node("input", "Placeholder"),
        node("splitter", "Split"),
        node("adder", "Add", ["splitter", "splitter:1"]),
    )


def test_rename():
    """RenameNodeTest.Rename: ``rename_node(old_node_name=splitter, new_node_name=demux)`` renames the node and every
    input naming it, ports kept."""
    out = node_map(transform(_splitter(), [], ["adder"], "rename_node(old_node_name=splitter, new_node_name=demux)"))
    assert "demux" in out and "adder" in out and "splitter" not in out
    assert list(out["adder"].input) == ["demux", "demux:1"]


def test_fail_when_name_already_exists():
    """RenameNodeTest.FailWhenNameAlreadyExists: renaming ``splitter`` to the existing ``adder`` is an error."""
    transform(_splitter(), [], ["adder"], "rename_node(old_node_name=splitter, new_node_name=demux)")  # it exists
    with pytest.raises(GraphxformError, match="adder"):
        transform(_splitter(), [], ["adder"], "rename_node(old_node_name=splitter, new_node_name=adder)")
