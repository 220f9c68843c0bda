"""Port of ``tensorflow/tools/graph_transforms/round_weights_test.cc`` (``RoundWeightsTest``).

GTT's ``round_weights(num_steps=256)`` rounds every large float Const to one of
``num_steps`` evenly spaced values between its min and max, keeping it a float
Const (it compresses well). graphxform: ``transforms/round_weights.py``.
"""
from __future__ import annotations

import tensorflow as tf

from .conftest import build, expect_near, node_map, run, transform, values


def test_round_weights():
    """RoundWeightsTest.TestRoundWeights: output within 0.5; ``input_op`` and ``weights_op`` stay float Consts."""
    def fn():
        x = tf.constant(values([1.0, 4.0, 2.0, 5.0, 3.0, 6.0, -1.0, -4.0, -2.0, -5.0, -3.0, -6.0], [1, 1, 6, 2]),
                        name="input_op")
        w = tf.constant(values([1.0, 2.0, 3.0, 4.0, 0.1, 0.2, 0.3, 0.4] * 5, [1, 2, 2, 10]), name="weights_op")
        tf.nn.conv2d(x, w, [1, 1, 1, 1], "VALID", name="output")

    gd = build(fn)
    out = transform(gd, [], ["output"], "round_weights")
    expect_near(run(out, {}, ["output"])[0], run(gd, {}, ["output"])[0], 0.5)
    nodes = node_map(out)
    assert nodes["input_op"].attr["dtype"].type == tf.float32.as_datatype_enum
    assert nodes["weights_op"].op == "Const"
    assert nodes["weights_op"].attr["dtype"].type == tf.float32.as_datatype_enum
