"""Port of ``tensorflow/tools/graph_transforms/remove_device_test.cc`` (``RemoveDeviceTest``).

GTT's ``remove_device`` clears every node's device.
graphxform: ``transforms/remove_device.py``.
"""
from __future__ import annotations

from .conftest import node_map, transform, tree_graph


def test_remove_device():
    """RemoveDeviceTest.TestRemoveDevice: every device is cleared."""
    gd = tree_graph(mul_node1={"device": "//cpu:0"}, add_node2={"device": "//device:GPU:1"})
    out = node_map(transform(gd, [], ["mul_node1"], "remove_device"))
    assert out["mul_node1"].device == "" and out["add_node2"].device == ""
