"""remove_noop: a NoOp that only relays control edges goes when that adds no edges; where it must stay."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import control_flow_v1, graph_def_of
from graphxform.transforms.remove_noop import RemoveNoop
from rule_check import reason, transformed

from graphxform.core.graph import Graph
from graphxform.engine.registry import get_rule
from graphxform.engine.runner import run_rule_once

X = np.arange(6, dtype=np.float32).reshape(2, 3)


def _x():
    return tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")


def test_registered():
    assert get_rule("remove_noop") is RemoveNoop
    assert RemoveNoop.summary().startswith("Replaces ``y(^noop)``")


def test_a_noop_without_inputs_goes_and_a_relay_noop_is_bypassed():
    def build():
        x = _x()
        empty = tf.no_op(name="empty")
        rnd = tf.random.uniform([1], name="rnd")
        with tf.control_dependencies([rnd.op]):
            relay = tf.no_op(name="relay")
        y = x * 2.0
        with tf.control_dependencies([empty, relay]):
            tf.identity(y, name="out")

    g, report = transformed(graph_def_of(build), {"x:0": X}, ["out:0"], [RemoveNoop()])
    assert report.counts == {"remove_noop": 2}
    assert not {"empty", "relay"} & set(g.node_names)
    assert g.control_inputs("out") == ["rnd/RandomUniform"]  # still waits for what relay waited for


def test_not_when_bypassing_adds_edges():
    def build():
        x = _x()
        deps = [tf.random.uniform([1], name=f"r{i}").op for i in range(3)]
        with tf.control_dependencies(deps):
            hub = tf.no_op(name="hub")
        for i in range(3):
            y = x * float(i)
            with tf.control_dependencies([hub]):
                tf.identity(y, name=f"out{i}")

    gd = graph_def_of(build)
    g = Graph(gd, protected=["out0", "out1", "out2"])
    assert "3 x 3 = 9" in reason(RemoveNoop(), g, "hub")
    assert run_rule_once(g, RemoveNoop()) == 0


def test_not_protected_unused_colocated_or_in_a_frame():
    def build():
        x = _x()
        init = tf.no_op(name="init_op")
        unused = tf.no_op(name="unused")
        del unused
        y = x + 1.0
        with tf.control_dependencies([init]):
            tf.identity(y, name="out")
        with control_flow_v1():
            def body(i):
                with tf.control_dependencies([tf.no_op(name="in_loop")]):
                    return i + 1
            tf.while_loop(lambda i: i < 3, body, [tf.constant(0)], name="loop")

    g = Graph(graph_def_of(build), protected=["out", "init_op"])
    assert "protected" in reason(RemoveNoop(), g, "init_op")
    assert "no users" in reason(RemoveNoop(), g, "unused")
    (in_loop,) = [n.name for n in g.nodes_by_op("NoOp") if "in_loop" in n.name]
    assert "control-flow frame" in reason(RemoveNoop(), g, in_loop)
    assert run_rule_once(g, RemoveNoop()) == 0
