"""Ports of ``tensorflow/tools/graph_transforms/insert_logging_test.cc`` (``InsertLoggingTest``).

GTT's ``insert_logging(op=, prefix=, show_name=, show_op=, first_n=, summarize=,
message=)`` puts a ``Print`` after every node whose outputs are read (filtered
by op types and name prefixes); consumers read the Print. graphxform:
``transforms/insert_logging.py``.
"""
from __future__ import annotations

import tensorflow as tf

from .conftest import build, iota, run, transform



def _graph():
    def fn():
        c1 = tf.constant(iota([10]), name="const_node1")
        c2 = tf.constant(iota([10]), name="const_node2")
        c3 = tf.constant(iota([10]), name="const_node3")
        add2 = tf.raw_ops.Add(x=c1, y=c2, name="add_node2")
        add3 = tf.raw_ops.Add(x=c1, y=c3, name="add_node3")
        mul = tf.multiply(add2, add3, name="mul_node1")
        tf.raw_ops.Add(x=mul, y=c3, name="add_node4")
    return build(fn)


def _print_inputs(transforms):
    gd = _graph()
    run(gd, {}, ["add_node4"])  # CheckGraphCanRun
    out = transform(gd, [], ["add_node4"], transforms)
    run(out, {}, ["add_node4"])
    return {n.input[0] for n in out.node if n.op == "Print"}


def test_insert_logging():
    """InsertLoggingTest.TestInsertLogging: every node whose output is read is logged (six), not the output."""
    assert _print_inputs("insert_logging") == {"mul_node1:0", "add_node2:0", "add_node3:0", "const_node1:0",
                                               "const_node2:0", "const_node3:0"}


def test_insert_logging_by_op_type():
    """InsertLoggingTest.TestInsertLoggingByOpType: ``op=Mul, op=Add`` logs the Mul and Adds only."""
    assert _print_inputs("insert_logging(op=Mul, op=Add)") == {"mul_node1:0", "add_node2:0", "add_node3:0"}


def test_insert_logging_by_prefix():
    """InsertLoggingTest.TestInsertLoggingByPrefix: ``prefix=add_node`` logs add_node2 and add_node3."""
    assert _print_inputs("insert_logging(prefix=add_node)") == {"add_node2:0", "add_node3:0"}
