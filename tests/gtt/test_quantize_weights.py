"""Ports of ``tensorflow/tools/graph_transforms/quantize_weights_test.cc`` (``QuantizeWeightsTest``).

GTT's ``quantize_weights(minimum_size=1024)`` replaces EVERY float ``Const`` of at
least ``minimum_size`` elements (whatever reads it) by ``Dequantize(quint8 Const
<name>_quantized_const, <name>_quantized_min, <name>_quantized_max)`` named
``<name>``, MIN_FIRST mode, one asymmetric range per tensor that always
includes 0.

Deliberate differences (graphxform's ``quantize_weights``, see
docs/rules.md): only weights read by weight-like consumers are quantized (a
Conv2D's input image is not); int8 is symmetric, per output channel, stored
as ``Mul(Cast(<name>_quantized_const int8), <name>_quantized_scale)`` named
``<name>`` (no ``Dequantize``, no min/max nodes); 0.0 is exactly
representable by construction.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .conftest import build, expect_near, node_map, run, tensor_value, transform, values

WEIGHTS = [1.0, 2.0, 3.0, 4.0, 0.1, 0.2, 0.3, 0.4] * 5


def _conv(input_shape, input_values):
    """BuildGraphDef: Conv2D(Const input_op, Const weights_op [1, 2, 2, 10]) named ``output``."""
    def fn():
        x = tf.constant(values(input_values, input_shape), name="input_op")
        w = tf.constant(values(WEIGHTS, [1, 2, 2, 10]), name="weights_op")
        tf.nn.conv2d(x, w, [1, 1, 1, 1], "VALID", name="output")
    return build(fn)


def _int8_weights(out, name):
    """graphxform's form of a quantized weight ``name``: Mul(Cast(int8 Const), scale); returns (int8, scale)."""
    nodes = node_map(out)
    mul = nodes[name]
    assert mul.op == "Mul"
    cast = nodes[mul.input[0]]
    assert cast.op == "Cast"
    q = nodes[cast.input[0]]
    assert q.op == "Const" and q.attr["dtype"].type == tf.int8.as_datatype_enum
    scale = nodes[mul.input[1]]
    assert scale.op == "Const" and scale.attr["dtype"].type == tf.float32.as_datatype_enum
    return tensor_value(q), tensor_value(scale)


def test_quantize_weights():
    """QuantizeWeightsTest.TestQuantizeWeights: ``minimum_size=16``; the 40-element weights are quantized, the
    12-element input is not; the output stays within 0.5.

    Deliberate difference: ``weights_op`` is ``Mul(Cast(int8), scale)``, not ``Dequantize(quint8 ...)``.
    """
    gd = _conv([1, 1, 6, 2], [1.0, 4.0, 2.0, 5.0, 3.0, 6.0, -1.0, -4.0, -2.0, -5.0, -3.0, -6.0])
    out = transform(gd, [], ["output"], "quantize_weights(minimum_size=16)")
    nodes = node_map(out)
    assert nodes["input_op"].op == "Const" and nodes["input_op"].attr["dtype"].type == tf.float32.as_datatype_enum
    q, scale = _int8_weights(out, "weights_op")  # GTT: Dequantize of a quint8 Const
    assert q.shape == (1, 2, 2, 10) and scale.shape == (1, 1, 1, 10)  # per output channel
    expect_near(run(out, {}, ["output"])[0], run(gd, {}, ["output"])[0], 0.5)


def test_ranges_always_include_zero():
    """QuantizeWeightsTest.RangesAlwaysIncludeZero: GTT checks that the stored ranges include 0 (input_op
    [-5, -1] is stored as [-5, 0], weights_op [0.1, 4] as [0, 4]).

    Deliberate differences: the 16-element ``input_op`` is the Conv2D's image, not a weight, so graphxform leaves
    it float (GTT quantizes it); the weights are symmetric int8 (no min/max nodes), where 0 is the int8 0 and
    every channel's range is [-127 s, 127 s] around it. Checked: the stored int8 values times the scales give the
    weights back within half a step, and the output stays within 0.5.
    """
    gd = _conv([1, 1, 4, 4], [-1.0, -4.0, -2.0, -5.0] * 4)
    out = transform(gd, [], ["output"], "quantize_weights(minimum_size=16)")
    nodes = node_map(out)
    assert nodes["input_op"].op == "Const"  # GTT: Dequantize with range [-5, 0]
    assert "input_op_quantized_min" not in nodes and "weights_op_quantized_min" not in nodes
    q, scale = _int8_weights(out, "weights_op")
    w = values(WEIGHTS, [1, 2, 2, 10])
    assert np.all(np.abs(q.astype(np.float32) * scale - w) <= scale / 2 + 1e-7)
    assert np.abs(q).max() == 127
    expect_near(run(out, {}, ["output"])[0], run(gd, {}, ["output"])[0], 0.5)
