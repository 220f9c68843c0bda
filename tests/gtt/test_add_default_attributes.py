"""Port of ``tensorflow/tools/graph_transforms/add_default_attributes_test.cc`` (``AddDefaultAttributesTest``).

GTT's ``add_default_attributes`` writes every attr the OpDef defaults into the
NodeDefs. graphxform: ``transforms/add_default_attributes.py``.
"""
from __future__ import annotations

import pytest
import tensorflow as tf

from .conftest import graph_def, node, node_map, transform

DEFAULTS = {"depth_radius": 5, "bias": 1.0, "alpha": 1.0, "beta": 0.5}
SET = {"depth_radius": 7, "bias": 2.0, "alpha": 2.0, "beta": 1.0}


def test_add_default_attributes():
    """AddDefaultAttributesTest.TestAddDefaultAttributes: ``lrn_node1`` (no attrs) gets LRN's defaults
    (depth_radius 5, bias 1, alpha 1, beta 0.5), ``lrn_node2`` keeps its own.

    (The C++ test's LRNs have no input; here they read a Placeholder so that TensorFlow can import them.)
    """
    gd = graph_def(
        node("x", "Placeholder", dtype=tf.float32),
        node("lrn_node1", "LRN", ["x"]),
        node("lrn_node2", "LRN", ["x"], **SET),
    )
    out = node_map(transform(gd, [], [], "add_default_attributes"))
    for name, expected in (("lrn_node1", DEFAULTS), ("lrn_node2", SET)):
        attrs = out[name].attr
        assert attrs["depth_radius"].i == expected["depth_radius"]
        for key in ("bias", "alpha", "beta"):
            assert attrs[key].f == pytest.approx(expected[key], abs=1e-5)
        assert attrs["T"].type == tf.float32.as_datatype_enum  # T's default (float) too, as GTT
    assert dict(out["x"].attr) == dict(node_map(gd)["x"].attr) | {"shape": out["x"].attr["shape"]}

    g = tf.Graph()  # TensorFlow imports the result and sees the same values
    with g.as_default():
        tf.graph_util.import_graph_def(transform(gd, [], [], "add_default_attributes"), name="")
    assert g.get_operation_by_name("lrn_node2").get_attr("depth_radius") == 7


def test_unregistered_ops_and_complete_nodes_are_left_alone():
    """Not in the C++ test: an op TensorFlow does not register is left as it is (no OpDef to read defaults
    from), and running the transform twice changes nothing more."""
    gd = graph_def(node("x", "Placeholder", dtype=tf.float32), node("custom", "MyCustomOp", ["x"]))
    once = transform(gd, [], [], "add_default_attributes")
    assert dict(node_map(once)["custom"].attr) == {}
    assert transform(once, [], [], "add_default_attributes") == once
