"""Which small graph patterns Grappler's default meta-optimizer removes, beside graphxform's default pipeline.

Run from the repo root::

    python -m tests.bench.grappler_patterns          # prints a markdown table

Each case is a few ops around a ``Placeholder`` x of shape [None, 4, 4, 8],
built in a TF1 graph with an ``Identity`` output ``y``. Grappler runs as the
benchmark runs it (:func:`tests.bench.run_bench.grappler`, default config:
only ``remapping`` and ``layout_optimizer`` off); graphxform runs its default
float pipeline through ``TransformGraph``. The table gives the node counts and
the op types only one of them leaves. Used by docs/grappler_gaps.md; not
collected by pytest.
"""
from __future__ import annotations

import collections
import os
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from tests.bench.run_bench import DEFAULT_TRANSFORMS, grappler, graphxform_transform  # noqa: E402

raw = tf.raw_ops


def _stack_reshape(x):
    m = tf.reduce_mean(x, [1, 2])
    return tf.reshape(m, tf.stack([tf.shape(m)[0], 1, 1, 8])) * x


def _const_control_deps(x):
    with tf.control_dependencies([tf.group(*[tf.constant(float(i)) for i in range(3)])]):
        y = tf.identity(x * 2.0)
    return y + 1.0


def _noop_control_dep(x):
    with tf.control_dependencies([tf.no_op()]):
        return x * 2.0 + 1.0


def _noop_shapes(x):
    y = tf.pad(x * 2.0, [[0, 0]] * 4)
    y = tf.tile(y, [1, 1, 1, 1])
    return tf.slice(y, [0, 0, 0, 0], [-1, -1, -1, -1]) + 1.0


def _square(x):
    y = x * 2.0
    return y * y


def _common_factor(x):
    y = x * 2.0
    return tf.add_n([y * x, y * (x + 1.0), y * (x + 2.0)])


#: pattern -> function of the placeholder x returning the output tensor.
CASES: dict[str, Callable] = {
    "StopGradient": lambda x: tf.stop_gradient(x) * 2.0,
    "PreventGradient": lambda x: raw.PreventGradient(input=x) * 2.0,
    "Snapshot": lambda x: raw.Snapshot(input=x * 2.0) + 1.0,
    "CheckNumerics": lambda x: tf.debugging.check_numerics(x * 2.0, "msg") + 1.0,
    "IdentityN (one port used)": lambda x: raw.IdentityN(input=[x * 2.0, x, tf.constant(1.0)])[0] + 1.0,
    "x * 1 (scalar)": lambda x: raw.Mul(x=x * 2.0, y=tf.constant(1.0)) + 1.0,
    "1 * x (per-channel ones)": lambda x: raw.Mul(x=tf.ones([8]), y=x * 2.0) + 1.0,
    "x * ones that broadcast (shape grows)": lambda x: raw.Mul(x=x[:, :, :, :1] * 2.0, y=tf.ones([8])) + 1.0,
    "x + 0": lambda x: raw.AddV2(x=x * 2.0, y=tf.zeros([1, 1, 1, 8])) * 3.0,
    "x - 0": lambda x: raw.Sub(x=x * 2.0, y=tf.constant(0.0)) * 3.0,
    "x / 1": lambda x: raw.RealDiv(x=x * 2.0, y=tf.constant(1.0)) + 3.0,
    "(x * c1) * c2": lambda x: (x * 2.0) * 3.0,
    "(x + c1) - c2": lambda x: raw.Sub(x=raw.AddV2(x=x, y=tf.constant(2.0)), y=tf.constant(3.0)) * 5.0,
    "x / c": lambda x: raw.RealDiv(x=x, y=tf.constant(4.0)) + 1.0,
    "Transpose identity perm": lambda x: tf.transpose(x * 2.0, [0, 1, 2, 3]) + 1.0,
    "Transpose pair that cancels": lambda x: tf.transpose(tf.transpose(x * 2.0, [0, 3, 1, 2]), [0, 2, 3, 1]) + 1.0,
    "Reshape to its own shape (static)": lambda x: tf.reshape(x * 2.0, [-1, 4, 4, 8]) + 1.0,
    "Reshape(Reshape(x))": lambda x: tf.reshape(tf.reshape(x * 2.0, [-1, 128]), [-1, 16, 8]) + 1.0,
    "Cast to the same type": lambda x: raw.Cast(x=x * 2.0, DstT=tf.float32) + 1.0,
    "Cast float->double->float": lambda x: tf.cast(tf.cast(x * 2.0, tf.float64), tf.float32) + 1.0,
    "Neg(Neg(x))": lambda x: tf.negative(tf.negative(x * 2.0)) + 1.0,
    "Reciprocal(Reciprocal(x))": lambda x: tf.math.reciprocal(tf.math.reciprocal(x * 2.0)) + 1.0,
    "a + (-b)": lambda x: x + tf.negative(x * 2.0),
    "Shape of a static tensor": lambda x: tf.cast(tf.shape(x[0]), tf.float32)[0] * x,
    "Rank of a static-rank tensor": lambda x: tf.cast(tf.rank(x), tf.float32) * x,
    "Shape(x)[0] -> Pack -> Reshape (dynamic batch)": _stack_reshape,
    "Mean then Reshape to keepdims": lambda x: tf.reshape(tf.reduce_mean(x, [1, 2]), [-1, 1, 1, 8]) * x,
    "AddN of Mul with a common factor": _common_factor,
    "Add tree -> AddN": lambda x: ((x * 2.0 + x * 3.0) + x * 4.0) + x * 5.0,
    "Concat of Concat (same axis)": lambda x: tf.concat([tf.concat([x * 2.0, x * 3.0], 3), x * 4.0], 3) + 1.0,
    "Concat(Relu(a), Relu(b))": lambda x: tf.concat([tf.nn.relu(x * 2.0), tf.nn.relu(x * 3.0)], 3) + 1.0,
    "Pad 0 / Tile 1 / full Slice": _noop_shapes,
    "NoOp with no inputs as a control dep": _noop_control_dep,
    "control deps on Consts via NoOp": _const_control_deps,
    "Square(Sub(x, y)) -> SquaredDifference": lambda x: tf.square(x - x * 2.0) + 1.0,
    "Div(x, Sqrt(y)) -> Mul(x, Rsqrt(y))": lambda x: x / tf.sqrt(x * x + 1.0),
    "Log(Softmax(x)) -> LogSoftmax": lambda x: tf.math.log(tf.nn.softmax(x * 2.0)),
    "Mul(x, x) -> Square": _square,
}


def _hist(gd) -> collections.Counter:
    return collections.Counter(n.op for n in gd.node if n.op != "Placeholder")


def rows() -> list[tuple]:
    """Per case: (pattern, nodes in, after Grappler default, after graphxform, ops only Grappler leaves,
    ops only graphxform leaves)."""
    out = []
    for name, fn in CASES.items():
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 8], name="x")
            tf.identity(fn(x), name="y")
        gd = g.as_graph_def()
        by_grappler = grappler(gd, ["x:0"], ["y:0"])
        by_graphxform = graphxform_transform(gd, ["x:0"], ["y:0"], DEFAULT_TRANSFORMS)
        out.append((name, len(gd.node), len(by_grappler.node), len(by_graphxform.node),
                    dict(_hist(by_grappler) - _hist(by_graphxform)), dict(_hist(by_graphxform) - _hist(by_grappler))))
    return out


def markdown(table: list[tuple]) -> str:
    def fmt(d: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items()))

    lines = ["| pattern | nodes in | Grappler default | graphxform | only Grappler leaves | only graphxform leaves |",
             "|---|---|---|---|---|---|"]
    for name, n_in, n_g, n_x, only_g, only_x in table:
        lines.append(f"| {name} | {n_in} | {n_g} | {n_x} | {fmt(only_g)} | {fmt(only_x)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(rows()))
