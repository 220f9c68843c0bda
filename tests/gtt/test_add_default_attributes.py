"""Port of ``tensorflow/tools/graph_transforms/add_default_attributes_test.cc`` (``AddDefaultAttributesTest``).

GTT's ``add_default_attributes`` writes every attr the OpDef defaults into the
NodeDefs. Deliberate difference: graphxform accepts it as a no-op, since
TensorFlow's importer adds the defaults itself when it loads the graph.
"""
from __future__ import annotations

import logging

import pytest
import tensorflow as tf

from .conftest import graph_def, node, node_map, transform

DEFAULTS = {"depth_radius": 5, "bias": 1.0, "alpha": 1.0, "beta": 0.5}
SET = {"depth_radius": 7, "bias": 2.0, "alpha": 2.0, "beta": 1.0}


def test_add_default_attributes(caplog):
    """AddDefaultAttributesTest.TestAddDefaultAttributes: ``lrn_node1`` (no attrs) gets LRN's defaults
    (depth_radius 5, bias 1, alpha 1, beta 0.5), ``lrn_node2`` keeps its own.

    graphxform leaves both NodeDefs as they are; importing them into TensorFlow gives ``lrn_node1`` the defaults.
    (The C++ test's LRNs have no input; here they read a Placeholder so that TensorFlow can import them.)
    """
    gd = graph_def(
        node("x", "Placeholder", dtype=tf.float32),
        node("lrn_node1", "LRN", ["x"]),
        node("lrn_node2", "LRN", ["x"], **SET),
    )
    with caplog.at_level(logging.INFO, logger="graphxform.engine.pipeline"):
        out = transform(gd, [], [], "add_default_attributes")
    assert "add_default_attributes: accepted as a no-op" in caplog.text
    assert out.node == gd.node
    assert "depth_radius" not in node_map(out)["lrn_node1"].attr  # GTT: 5

    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(out, name="")
    for name, expected in (("lrn_node1", DEFAULTS), ("lrn_node2", SET)):
        op = g.get_operation_by_name(name)
        assert op.get_attr("depth_radius") == expected["depth_radius"]
        for key in ("bias", "alpha", "beta"):
            assert op.get_attr(key) == pytest.approx(expected[key], abs=1e-5)
