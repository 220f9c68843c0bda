"""quantize_weights' balanced int8 rounding: each channel keeps its sum; a consumer fed inputs with a common
offset gets a smaller error than with plain rounding, in TensorFlow."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import run
from graphxform.transforms.quantize_weights import QuantizeWeights, balanced_round, symmetric_int8

from graphxform.core.graph import Graph
from graphxform.engine.runner import run_pipeline


@pytest.mark.parametrize("shape, axis", [((3, 3, 16, 8), 3), ((300, 20), 1), ((40, 7), 0), ((3, 3, 12), 2)])
def test_each_value_goes_to_a_nearest_step_and_each_channel_keeps_its_sum(shape, axis):
    rng = np.random.default_rng(sum(shape))
    bshape = [shape[axis] if i == axis else 1 for i in range(len(shape))]
    w = (rng.uniform(-1, 1, shape) * rng.uniform(0.05, 3, shape[axis]).reshape(bshape)).astype(np.float32)
    w[(slice(None),) * axis + (0,)] = 0.0  # an all-zero channel stays 0
    q, max_abs = symmetric_int8(w, axis)
    t = w.astype(np.float64) * (127.0 / max_abs.astype(np.float64)).reshape(bshape)
    others = tuple(i for i in range(len(shape)) if i != axis)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert np.all((q == np.floor(t)) | (q == np.ceil(t)) | (q == np.rint(t))), "a value left its two nearest steps"
    assert np.abs((q - t).sum(others)).max() <= 0.5 + 1e-3
    assert not q[(slice(None),) * axis + (0,)].any()
    plain = np.rint(t)
    assert np.abs((plain - t).sum(others)).max() > 1.0  # (plain rounding does not keep them: the case is real)
    # the weight's mean squared error stays that of plain rounding (within 10 %)
    assert ((q - t) ** 2).mean() <= 1.1 * ((plain - t) ** 2).mean()


def test_per_tensor_rounding_is_plain():
    w = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    q, max_abs = symmetric_int8(w, None)
    np.testing.assert_array_equal(q, np.clip(np.rint(w * (127 / max_abs)), -127, 127).astype(np.int8))


def test_equal_values_and_the_int8_limit():
    """Three equal values, one of which must move: exactly one does; nothing goes past +-127."""
    t = np.array([[127.0, 126.6, 126.6, 126.6], [-127.0, -126.6, -126.6, -126.6]], np.float32)
    q = balanced_round(t, 0)
    assert sorted(q[0].tolist()) == [126, 127, 127, 127] and sorted(q[1].tolist()) == [-127, -127, -127, -126]
    q = balanced_round(np.array([[127.0, 127.0, 126.4, 126.4]], np.float32), 0)
    assert sorted(q[0].tolist()) == [126, 127, 127, 127]


def test_matmul_with_offset_inputs_errs_less_than_plain_rounding():
    """``x @ w`` with post-ReLU-like inputs (all positive): the quantized graph, run in TensorFlow, is at least
    twice as close to the float one as plain per-channel rounding would be."""
    rng = np.random.default_rng(7)
    w = rng.uniform(-1, 1, (512, 64)).astype(np.float32)
    x = np.abs(rng.normal(1.0, 0.5, (32, 512))).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        xp = tf.compat.v1.placeholder(tf.float32, [None, 512], name="x")
        tf.identity(tf.matmul(xp, tf.constant(w, name="w")), name="out")
    gd = g.as_graph_def()
    graph = Graph(gd, protected=("x", "out"))
    report = run_pipeline(graph, [QuantizeWeights()])
    assert report.counts["quantize_weights"] == 1 and graph.lint() == []
    (ref,) = run(gd, {"x:0": x}, ["out:0"])
    (got,) = run(graph, {"x:0": x}, ["out:0"])
    scale = np.abs(w).max(0) / 127
    plain = x @ (np.rint(w / scale) * scale)
    err, err_plain = np.linalg.norm(got - ref), np.linalg.norm(plain - ref)
    assert 0 < err <= 0.5 * err_plain, (err, err_plain)
