"""Property test: on random DAGs every built-in rule alone, and the default pipeline, keep outputs and lint clean.

Hypothesis draws small programs over two pools of tensors — images
``[2, 4, 4, 3]`` and rows ``[2, 12]`` — built from elementwise ops
(``Add``/``AddV2``/``Mul``/``Sub``/``Relu``/``Tanh``, with tensors, constants,
``Identity`` of constants and constant subgraphs), ``Conv2D`` /
``DepthwiseConv2dNative`` / ``MatMul`` with ``Const`` weights, optionally
followed by ``BiasAdd`` and an inference batch norm (``FusedBatchNormV3``,
``Mul``+``Add`` with constants, or Keras' ``Rsqrt(var + eps) * gamma``
chain), duplicated subexpressions and ``Identity`` nodes. The graph has a
``Placeholder`` input and two signature outputs (``Identity`` s). Float rules
must match the original within rtol 1e-4; ``quantize_weights`` is checked
against a loose bound.
"""
from __future__ import annotations

import numpy as np
from conftest import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

IMG_SHAPE = (2, 4, 4, 3)
ROW_SHAPE = (2, 12)
IMG_KINDS = ("relu", "tanh", "identity", "add", "addv2", "mul", "sub", "mul_const", "add_const",
             "mul_identity_const", "const_chain", "dup", "conv", "conv_bias", "conv_fbn", "conv_bn_affine",
             "conv_bn_rsqrt", "depthwise_bn_affine")
ROW_KINDS = ("relu", "tanh", "identity", "add", "mul", "sub", "mul_const", "matmul", "matmul_bias",
             "matmul_bn_affine", "to_rows")
FLOAT_RULES = ("remove_identity", "merge_duplicates", "strip_unused", "fold_constants", "fold_batch_norms")

step = st.one_of(
    st.tuples(st.just("img"), st.sampled_from(IMG_KINDS), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("row"), st.sampled_from(ROW_KINDS), st.integers(0, 99), st.integers(0, 99)),
)
programs = st.tuples(st.lists(step, min_size=1, max_size=10), st.integers(0, 2**16))


def build_graph_def(program: list[tuple[str, str, int, int]], seed: int):  # type: ignore[no-untyped-def]
    """A frozen GraphDef for ``program``; returns (graph_def, output tensor names)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    raw = tf.raw_ops

    def const(shape, low=-0.5, high=0.5, name=None):  # type: ignore[no-untyped-def]
        return tf.constant(rng.uniform(low, high, shape).astype(np.float32), name=name)

    def bn_affine(t, channels):  # type: ignore[no-untyped-def]
        scale = const((channels,), 0.5, 1.5)
        return raw.AddV2(x=raw.Mul(x=t, y=scale), y=const((channels,)))

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, IMG_SHAPE, name="x")
        imgs = [x]
        rows = [raw.Reshape(tensor=raw.Relu(features=x), shape=tf.constant([2, 48]), name="rows0")]
        rows[0] = tf.matmul(rows[0], const((48, 12)))
        for pool_name, kind, a, b in program:
            pool = imgs if pool_name == "img" else rows
            shape = IMG_SHAPE if pool_name == "img" else ROW_SHAPE
            ch = shape[-1]
            p, q = pool[a % len(pool)], pool[b % len(pool)]
            if kind == "relu":
                y = raw.Relu(features=p)
            elif kind == "tanh":
                y = raw.Tanh(x=p)
            elif kind == "identity":
                y = raw.Identity(input=p)
            elif kind == "add":
                y = raw.Add(x=p, y=q)
            elif kind == "addv2":
                y = raw.AddV2(x=p, y=q)
            elif kind == "mul":
                y = raw.Mul(x=raw.Tanh(x=p), y=q)  # tanh keeps products of products bounded
            elif kind == "sub":
                y = raw.Sub(x=p, y=q)
            elif kind == "mul_const":
                y = raw.Mul(x=p, y=const((ch,), 0.5, 1.5))
            elif kind == "add_const":
                y = raw.AddV2(x=const(()), y=p)
            elif kind == "mul_identity_const":
                y = raw.Mul(x=p, y=raw.Identity(input=const((ch,), 0.5, 1.5)))
            elif kind == "const_chain":  # a foldable constant subgraph
                c = raw.AddV2(x=raw.Mul(x=const((ch,), 0.5, 1.0), y=const(())), y=raw.Identity(input=const((ch,))))
                y = raw.Mul(x=p, y=raw.Tanh(x=c))
            elif kind == "dup":  # the same subexpression twice
                y = raw.AddV2(x=raw.Relu(features=p), y=raw.Relu(features=p))
            elif kind.startswith("conv"):
                y = tf.nn.conv2d(p, const((3, 3, ch, ch)), strides=1, padding="SAME")
                if kind == "conv_bias":
                    y = tf.nn.bias_add(y, const((ch,)))
                elif kind == "conv_fbn":
                    y = raw.FusedBatchNormV3(x=y, scale=const((ch,), 0.5, 1.5), offset=const((ch,)),
                                             mean=const((ch,)), variance=const((ch,), 0.5, 1.5), epsilon=1e-3,
                                             is_training=False)[0]
                elif kind == "conv_bn_affine":
                    y = bn_affine(y, ch)
                elif kind == "conv_bn_rsqrt":  # as Keras 3 exports batch normalization
                    gamma, beta = const((ch,), 0.5, 1.5), const((ch,))
                    mean, var = const((ch,)), const((ch,), 0.5, 1.5)
                    scale = raw.Mul(x=raw.Rsqrt(x=raw.AddV2(x=var, y=tf.constant(1e-3))), y=gamma)
                    y = raw.AddV2(x=raw.Mul(x=y, y=scale), y=raw.Sub(x=beta, y=raw.Mul(x=mean, y=scale)))
            elif kind == "depthwise_bn_affine":
                y = bn_affine(tf.nn.depthwise_conv2d(p, const((3, 3, ch, 1)), strides=[1, 1, 1, 1],
                                                     padding="SAME"), ch)
            elif kind.startswith("matmul"):
                y = tf.matmul(p, const((ch, ch)))
                if kind == "matmul_bias":
                    y = tf.nn.bias_add(y, const((ch,)))
                elif kind == "matmul_bn_affine":
                    y = bn_affine(y, ch)
            elif kind == "to_rows":
                flat = raw.Reshape(tensor=imgs[a % len(imgs)], shape=tf.constant([2, 48]))
                y = tf.matmul(flat, const((48, 12)))
            else:  # pragma: no cover
                raise AssertionError(kind)
            pool.append(y)
        raw.Identity(input=imgs[-1], name="out_img")
        raw.Identity(input=rows[-1], name="out_rows")
    return g.as_graph_def(), ["out_img:0", "out_rows:0"]


def _graph(gd):  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import types_pb2

    from graphxform.core.graph import Graph
    from graphxform.core.signature import TensorSpec
    from graphxform.model.model import Signature

    f32 = types_pb2.DT_FLOAT
    sig = Signature("serving_default", "tensorflow/serving/predict", {"x": TensorSpec("x:0", f32, list(IMG_SHAPE))},
                    {"img": TensorSpec("out_img:0", f32, list(IMG_SHAPE)),
                     "rows": TensorSpec("out_rows:0", f32, list(ROW_SHAPE))})
    return Graph(gd, signatures={"serving_default": sig})


def _run_graph(g, feed):  # type: ignore[no-untyped-def]
    outs = g.signatures["serving_default"].outputs
    return run(g, {"x:0": feed}, [outs["img"].name, outs["rows"].name])


def _close(got, ref, rtol):  # type: ignore[no-untyped-def]
    for a, b in zip(got, ref, strict=True):
        scale = max(1.0, float(np.max(np.abs(b))))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


FEED = np.random.default_rng(7).uniform(-1, 1, IMG_SHAPE).astype(np.float32)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_rules_and_default_pipeline_preserve_outputs(program):
    from graphxform.engine.pipeline import build_pipeline
    from graphxform.engine.runner import run_pipeline

    steps, seed = program
    gd, fetches = build_graph_def(steps, seed)
    ref = run(gd, {"x:0": FEED}, fetches)
    for name in FLOAT_RULES:  # every rule alone
        g = _graph(gd)
        run_pipeline(g, build_pipeline(name), debug=True)  # lint after every rewrite
        assert g.lint() == [], name
        _close(_run_graph(g, FEED), ref, 1e-4)
    g = _graph(gd)  # the default float pipeline
    report = run_pipeline(g, build_pipeline(None, quantize=False), confirm=True)
    assert g.lint() == []
    assert report.missed == 0  # the worklist revisited every node a rewrite could have enabled
    assert report.nodes_after <= report.nodes_before
    ops = {n.op for n in g}
    assert not ops & {"FusedBatchNormV3", "Rsqrt"}, ops  # every batch norm folded, every const chain folded
    assert sum(n.op == "Identity" for n in g) <= 2  # only the two signature outputs may keep theirs
    _close(_run_graph(g, FEED), ref, 1e-4)
    again = run_pipeline(g, build_pipeline(None, quantize=False))
    assert again.counts == {}, again.counts  # a fixpoint: nothing left to do
    q = _graph(gd)  # with int8 weights: only a loose bound
    run_pipeline(q, build_pipeline(None, quantize=True) + build_pipeline("quantize_weights(minimum_size=16)"))
    assert q.lint() == []
    _close(_run_graph(q, FEED), ref, 0.1)
