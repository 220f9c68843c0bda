"""Ports of ``tensorflow/tools/graph_transforms/set_device_test.cc`` (``SetDeviceTest``).

GTT's ``set_device(device=, if_default=false)`` sets every node's device (only
the empty ones with ``if_default=true``). The C++ tests set their parameters directly; written as a
transform string, a device name must be quoted (``device="/device:CPU:0"``): GTT's parser, like graphxform's,
takes only letters, digits and ``-._/`` unquoted.
"""
from __future__ import annotations

from .conftest import transform, tree_graph


def _device_graph():
    return tree_graph(mul_node1={"device": "/device:CPU:0"}, add_node2={"device": "/device:GPU:1"})


def test_set_device():
    """SetDeviceTest.TestSetDevice: ``set_device(device=/device:CPU:0)`` sets every node's device."""
    out = transform(_device_graph(), [], ["mul_node1"], 'set_device(device="/device:CPU:0")')
    assert {n.name: n.device for n in out.node} == {n.name: "/device:CPU:0" for n in _device_graph().node}


def test_set_device_if_default():
    """SetDeviceTest.TestSetDeviceIfDefault: with ``if_default=true`` only nodes without a device get it."""
    out = transform(_device_graph(), [], ["mul_node1"], 'set_device(device="/device:GPU:0", if_default=true)')
    assert {n.name: n.device for n in out.node} == {
        "mul_node1": "/device:CPU:0", "add_node2": "/device:GPU:1", "add_node3": "/device:GPU:0",
        "const_node1": "/device:GPU:0", "const_node2": "/device:GPU:0", "const_node3": "/device:GPU:0",
        "add_node4": "/device:GPU:0"}
