"""Ports of ``tensorflow/tools/graph_transforms/freeze_requantization_ranges_test.cc``
(``FreezeRequantizationRangesTest``).

GTT's ``freeze_requantization_ranges(min_max_log_file=, min_percentile=5,
max_percentile=5)`` reads the ranges that ``insert_logging`` printed for each
``RequantizationRange`` and replaces those ops by ``<name>/frozen_min`` /
``<name>/frozen_max`` Consts. graphxform:
``transforms/freeze_requantization_ranges.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .conftest import build, expect_near, node_map, run, tensor_value, transform



def _graph(names=("requantization_range_op",)):
    """QuantizedBiasAdd -> RequantizationRange -> Requantize -> Dequantize, one chain per name."""
    def fn():
        q = tf.constant(np.zeros([1, 6], np.uint8), tf.quint8, name="quantized_op")
        qmin = tf.constant(2.0, name="quantized_min_op")
        qmax = tf.constant(2.0, name="quantized_max_op")  # built from the min tensor in the C++ test: 2.0 too
        off = tf.constant(np.arange(1, 7, dtype=np.uint8), tf.quint8, name="offset_op")
        ba = tf.raw_ops.QuantizedBiasAdd(input=q, bias=off, min_input=qmin, max_input=qmax,
                                         min_bias=tf.constant(0.0, name="offset_min_op"),
                                         max_bias=tf.constant(255.0, name="offset_max_op"), out_type=tf.qint32,
                                         name="bias_add_op")
        for i, name in enumerate(names):
            suffix = "" if i == 0 else f"_{i}"
            rr = tf.raw_ops.RequantizationRange(input=ba.output, input_min=ba.min_out, input_max=ba.max_out,
                                                name=name)
            rq = tf.raw_ops.Requantize(input=ba.output, input_min=ba.min_out, input_max=ba.max_out,
                                       requested_output_min=rr.output_min, requested_output_max=rr.output_max,
                                       out_type=tf.quint8, name="requantize_op" + suffix)
            tf.raw_ops.Dequantize(input=rq.output, min_range=rq.output_min, max_range=rq.output_max,
                                  name="dequantize_op" + suffix)
    return build(fn)


LOG = ("Something irrelevant\n"
       "[SomePrefix] ;requantization_range_op__print__;__requant_min_max:[-2.4313571][10.584145]\n"
       "Something else irrelevant\n")


def test_freeze_requantization_ranges(tmp_path):
    """FreezeRequantizationRangesTest.TestFreezeRequantizationRanges: the RequantizationRange goes, the
    Requantize's range inputs are Consts; output within 0.5."""
    log = tmp_path / "min_max_log_file.txt"
    log.write_text(LOG)
    gd = _graph()
    before = run(gd, {}, ["dequantize_op"])[0]
    out = transform(gd, [], ["dequantize_op"], f'freeze_requantization_ranges(min_max_log_file="{log}")')
    nodes = node_map(out)
    assert "requantization_range_op" not in nodes and "requantize_op" in nodes
    for i in (3, 4):
        assert nodes[nodes["requantize_op"].input[i].split(":")[0]].op == "Const"
    expect_near(run(out, {}, ["dequantize_op"])[0], before, 0.5)


def test_extract_min_max_records(tmp_path):
    """FreezeRequantizationRangesTest.TestExtractMinMaxRecords (the C++ test calls the internal
    ``ExtractMinMaxRecords``; here through the transform): of a log with two well-formed records and one with a
    bad number, the well-formed ones give each RequantizationRange its frozen range."""
    log = tmp_path / "min_max_log_file2.txt"
    log.write_text(LOG
                   + "[SomeOtherPrefix] ;other_requantization_range_op__print__;__requant_min_max:[-1.0][2.0]\n"
                   + "Something else irrelevant\n"
                   + "[SomePrefix] ;requantization_range_op__print__;__requant_min_max:[-1.bad][2.0]\n")
    gd = _graph(("requantization_range_op", "other_requantization_range_op"))
    out = node_map(transform(gd, [], ["dequantize_op", "dequantize_op_1"],
                             f'freeze_requantization_ranges(min_max_log_file="{log}")'))
    for name, lo, hi in (("requantization_range_op", -2.4313571, 10.584145),
                         ("other_requantization_range_op", -1.0, 2.0)):
        assert name not in out
        assert tensor_value(out[f"{name}/frozen_min"]) == pytest.approx(lo, abs=1e-5)
        assert tensor_value(out[f"{name}/frozen_max"]) == pytest.approx(hi, abs=1e-5)
