"""Benchmark models: frozen Keras applications with non-trivial weights, a small Transformer, synthetic graphs.

Every builder returns a :class:`BenchModel` holding a frozen ``GraphDef``, its
input/output tensor names and a deterministic input batch maker.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


@dataclass
class BenchModel:
    name: str
    graph_def: object  # tf GraphDef
    inputs: list[str]  # tensor names
    outputs: list[str]
    make_inputs: Callable[[int], dict[str, np.ndarray]]  # batch size -> feeds


def _randomize(model, seed: int = 0) -> None:
    """Give every weight a non-trivial value: BN statistics not 0/1, biases not 0."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        path = v.path
        shape = tuple(v.shape)
        if "moving_variance" in path:
            val = rng.uniform(0.5, 1.5, shape)
        elif "moving_mean" in path:
            val = rng.normal(0.0, 0.1, shape)
        elif "gamma" in path:
            val = rng.uniform(0.8, 1.2, shape)
        elif "beta" in path or "bias" in path:
            val = rng.normal(0.0, 0.05, shape)
        else:
            continue
        v.assign(val.astype(v.dtype))


def image_batch(batch: int, size: int, seed: int = 0) -> np.ndarray:
    """``batch`` random images in [-1, 1]: smooth 8x8 blobs upsampled, fine noise and a per-image colour cast.

    Unlike i.i.d. pixel noise (every image statistically the same), these
    differ from each other at the scales a CNN pools over, so a calibrated
    network gives them different predictions.
    """
    rng = np.random.default_rng(seed)
    k = 8
    rep = -(-size // k)
    low = rng.normal(0.0, 1.0, (batch, k, k, 3))
    up = np.repeat(np.repeat(low, rep, 1), rep, 2)[:, :size, :size]
    x = 0.6 * up + 0.2 * rng.normal(0.0, 1.0, (batch, size, size, 3)) + rng.normal(0.0, 0.3, (batch, 1, 1, 3))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def calibrate_batch_norms(model, images: np.ndarray) -> int:
    """Set every BatchNormalization's moving mean/variance to the statistics of ``images`` at that layer.

    With Keras' random initialisers and made-up statistics the activations
    of a deep network vanish or explode and its output no longer depends on
    its input (every image gets the same class). Calibrating the statistics
    on data, as training would, keeps each layer's activations at unit
    scale. Done by one forward pass in training mode with ``momentum = 0``.
    Returns the number of layers calibrated.
    """
    import keras

    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    try:
        model(images, training=True)
    finally:
        for layer, m in zip(bns, saved):
            layer.momentum = m
    return len(bns)


def scale_residual_branches(model, scale: float) -> int:
    """Multiply gamma of the last BN of every residual branch by ``scale``; returns how many.

    Those are ``*_3_bn`` (ResNet) and ``*project_bn`` (MobileNetV2,
    EfficientNet). Trained residual networks keep these small (and are
    often initialised at 0), so the identity path carries the input through
    the depth; with random weights the branches otherwise wash it out.
    """
    import keras

    n = 0
    for layer in model._flatten_layers():
        lname = layer.name.lower()
        if isinstance(layer, keras.layers.BatchNormalization) and lname.endswith(("_3_bn", "project_bn")):
            layer.gamma.assign(np.asarray(layer.gamma) * scale)
            n += 1
    return n


def center_classifier(model, images: np.ndarray) -> None:
    """Shift the bias of the last Dense layer so every class has mean logit 0 over ``images``.

    A random head favours one class for every input (the mean feature
    vector dominates); centred, the predicted class follows the input.
    """
    import keras

    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or head.bias is None:
        return
    features = keras.Model(model.inputs, head.input)([images], training=False)
    kernel, bias = (np.asarray(w) for w in (head.kernel, head.bias))
    logits = np.asarray(features) @ kernel + bias
    head.bias.assign((bias - logits.mean(0)).astype(bias.dtype))


def principal_head(model, images: np.ndarray) -> None:
    """Make the last Dense layer read the features' principal directions over ``images``, whitened.

    Logit ``k`` becomes the feature vector's coordinate along the ``k``-th
    direction of largest variance over ``images`` (centred, scaled to unit
    variance): the head reads what varies from input to input, as a trained
    classifier's does, instead of random directions where a random body's
    features barely change (there the logits are mostly noise of the body).
    Every class wins for some inputs.
    """
    import keras

    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or head.bias is None:
        return
    feats = np.asarray(keras.Model(model.inputs, head.input)([images], training=False), np.float64)
    feats = feats.reshape(len(feats), -1)
    mean = feats.mean(0)
    _, sv, vt = np.linalg.svd(feats - mean, full_matrices=False)
    k = int(head.kernel.shape[-1])
    kernel = vt[:k].T / sv[:k] * np.sqrt(len(feats))
    head.kernel.assign(kernel.astype(np.float32))
    head.bias.assign((-mean @ kernel).astype(np.float32))


def freeze_keras(model, input_shape: tuple[int, ...], name: str, dtype: str = "float32",
                 make_inputs: Callable[[int], np.ndarray] | None = None) -> BenchModel:
    """Freeze ``model`` (inference mode) into a GraphDef; ``make_inputs(batch)`` makes input arrays (default uniform)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((None, *input_shape), dtype)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(fn)
    gd = frozen.graph.as_graph_def()
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]

    def feeds(batch: int, _shape=input_shape) -> dict[str, np.ndarray]:
        if make_inputs is not None:
            return {inputs[0]: make_inputs(batch)}
        rng = np.random.default_rng(batch)
        if dtype.startswith("int"):
            return {inputs[0]: rng.integers(0, 1000, (batch, *_shape)).astype(dtype)}
        return {inputs[0]: rng.uniform(-1, 1, (batch, *_shape)).astype(dtype)}

    return BenchModel(name, gd, inputs, outputs, feeds)


def keras_application(name: str, size: int = 224, classes: int = 1000, *, logits: bool = False,
                      calibrate: bool = True, residual_scale: float = 0.25, seed: int = 0, head: str = "centre",
                      **kwargs) -> BenchModel:
    """A frozen ``keras.applications.<name>`` (weights=None) with non-trivial weights.

    Kernels come from Keras' initialisers (seeded), BN gamma/beta and biases
    are random (:func:`_randomize`), residual branches are scaled by
    ``residual_scale`` (:func:`scale_residual_branches`); with ``calibrate``
    the BN moving statistics are then measured on 64 images
    (:func:`calibrate_batch_norms`) and the classifier bias centred
    (:func:`center_classifier`), so the predicted class follows the input.
    ``logits``: no softmax on the classifier (outputs are the logits).
    ``head="pca"``: the classifier reads the features' principal directions
    instead (:func:`principal_head`, on 256 images). ``kwargs`` go to the
    constructor (e.g. ``alpha``). Inputs come from :func:`image_batch`
    (seeded by the batch size).
    """
    model = keras_application_model(name, size, classes, logits=logits, calibrate=calibrate,
                                    residual_scale=residual_scale, seed=seed, **kwargs)
    if head == "pca":
        principal_head(model, image_batch(256, size, seed=30_000 + seed))
    return freeze_keras(model, (size, size, 3), name, make_inputs=lambda b: image_batch(b, size, seed=b))


def keras_application_model(name: str, size: int = 224, classes: int = 1000, *, logits: bool = False,
                            calibrate: bool = True, residual_scale: float = 0.25, seed: int = 0, **kwargs):
    """The Keras model :func:`keras_application` freezes (``kwargs`` go to the constructor, e.g. ``alpha``)."""
    import keras

    keras.utils.set_random_seed(seed)  # the kernels' initialisers
    ctor = getattr(keras.applications, name)
    model = ctor(weights=None, input_shape=(size, size, 3), classes=classes,
                 classifier_activation=None if logits else "softmax", **kwargs)
    _randomize(model, seed)
    if residual_scale != 1.0:
        scale_residual_branches(model, residual_scale)
    if calibrate:
        calib = image_batch(64, size, seed=10_000 + seed)
        calibrate_batch_norms(model, calib)
        center_classifier(model, calib)
    return model


def transformer_encoder(seq: int = 64, dim: int = 128, heads: int = 4, layers: int = 2, vocab: int = 8000) -> BenchModel:
    model = transformer_encoder_model(seq, dim, heads, layers, vocab)
    return freeze_keras(model, (seq,), "TransformerEncoder", dtype="int32")


def transformer_encoder_model(seq: int = 64, dim: int = 128, heads: int = 4, layers: int = 2, vocab: int = 8000,
                              classes: int = 2, logits: bool = False):
    """The Keras model :func:`transformer_encoder` freezes (``logits``: no softmax on the classifier)."""
    import keras
    from keras import layers as L

    inp = keras.Input((seq,), dtype="int32")
    x = L.Embedding(vocab, dim)(inp)
    for _ in range(layers):
        a = L.MultiHeadAttention(heads, dim // heads)(x, x)
        x = L.LayerNormalization()(x + a)
        f = L.Dense(dim * 4, activation="gelu")(x)
        f = L.Dense(dim)(f)
        x = L.LayerNormalization()(x + f)
    out = L.Dense(classes, activation=None if logits else "softmax")(L.GlobalAveragePooling1D()(x))
    model = keras.Model(inp, out)
    _randomize(model)
    return model


def embedding_model(rows: int = 100_000, dim: int = 64) -> BenchModel:
    """A frozen TF1 graph with a large embedding table looked up by GatherV2 (Estimator-style)."""
    import tensorflow as tf

    g = tf.Graph()
    rng = np.random.default_rng(0)
    with g.as_default():
        ids = tf.compat.v1.placeholder(tf.int64, [None, 8], name="ids")
        table = tf.constant(rng.normal(0, 0.1, (rows, dim)).astype(np.float32), name="embedding/weights")
        emb = tf.gather(table, ids, name="embedding/lookup")
        pooled = tf.reduce_mean(emb, axis=1)
        w = tf.constant(rng.normal(0, 0.1, (dim, 3)).astype(np.float32), name="logits/kernel")
        b = tf.constant(rng.normal(0, 0.1, (3,)).astype(np.float32), name="logits/bias")
        tf.nn.softmax(tf.identity(tf.matmul(pooled, w) + b), name="probabilities")
    gd = g.as_graph_def()

    def make_inputs(batch: int) -> dict[str, np.ndarray]:
        return {"ids:0": np.random.default_rng(batch).integers(0, rows, (batch, 8)).astype(np.int64)}

    return BenchModel("Embedding100kx64", gd, ["ids:0"], ["probabilities:0"], make_inputs)


def tf1_convnet(size: int = 64, classes: int = 10, seed: int = 0) -> BenchModel:
    """A frozen TF1-style convnet, written the way TF1 model code was (``tf.compat.v1``, no Keras).

    Ref variables read through ``<name>/read`` Identities, ``Conv2D`` →
    ``FusedBatchNormV3`` (inference) → ``Relu`` blocks with a residual
    ``Add`` per stage, ``MaxPool``, a Slim-style head (``Mean`` keep_dims →
    ``Squeeze``), a dense layer as ``MatMul`` + ``BiasAdd``, ``Softmax`` and an
    ``Identity`` endpoint; frozen with ``convert_variables_to_constants``.
    BN statistics are calibrated on the input batches (one pass per layer)
    so the class follows the input. Inputs: :func:`image_batch`.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    calib = image_batch(32, size, seed=20_000 + seed)
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, size, size, 3], name="input")

        def var(name, value):
            return v1.get_variable(name, initializer=np.asarray(value, np.float32), use_resource=False)

        def conv_bn_relu(h, cin, cout, name, relu=True):
            with v1.variable_scope(name):
                w = var("weights", rng.normal(0, np.sqrt(2.0 / (9 * cin)), (3, 3, cin, cout)))
                h = tf.nn.conv2d(h, w, strides=1, padding="SAME", name="Conv2D")
                gamma = var("BatchNorm/gamma", rng.uniform(0.8, 1.2, cout))
                beta = var("BatchNorm/beta", rng.normal(0, 0.05, cout))
                mean = var("BatchNorm/moving_mean", np.zeros(cout))
                variance = var("BatchNorm/moving_variance", np.ones(cout))
                h, _, _ = v1.nn.fused_batch_norm(h, gamma, beta, mean=mean, variance=variance, epsilon=1e-3,
                                                 is_training=False, name="BatchNorm/FusedBatchNormV3")
                bns.append((h.op.inputs[0], mean, variance))
                return tf.nn.relu(h, name="Relu") if relu else h

        bns: list = []
        h, cin = x, 3
        for stage, cout in enumerate((32, 64, 128)):
            h = conv_bn_relu(h, cin, cout, f"stage{stage}/conv1")
            shortcut = h
            r = conv_bn_relu(h, cout, cout, f"stage{stage}/conv2")
            r = conv_bn_relu(r, cout, cout, f"stage{stage}/conv3", relu=False)
            h = tf.nn.relu(tf.add(shortcut, r, name=f"stage{stage}/add"), name=f"stage{stage}/Relu")
            h = tf.nn.max_pool2d(h, 2, 2, "VALID", name=f"stage{stage}/MaxPool")
            cin = cout
        h = tf.reduce_mean(h, [1, 2], keepdims=True, name="global_pool")
        h = tf.squeeze(h, [1, 2], name="SpatialSqueeze")
        w = var("logits/weights", rng.normal(0, np.sqrt(1.0 / cin), (cin, classes)))
        b = var("logits/biases", np.zeros(classes))
        logits = tf.nn.bias_add(tf.matmul(h, w), b, name="logits/BiasAdd")
        tf.identity(tf.nn.softmax(logits, name="Softmax"), name="predictions")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for pre_bn, mean, variance in bns:  # calibrate each BN on the data, in order
                act = sess.run(pre_bn, {x: calib})
                sess.run([mean.assign(act.mean((0, 1, 2))), variance.assign(act.var((0, 1, 2)))])
            feats = sess.run(h, {x: calib})
            sess.run(b.assign(-(feats @ sess.run(w)).mean(0)))  # centre the classifier
            gd = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["predictions"])
    return BenchModel("TF1ConvNet", gd, ["input:0"], ["predictions:0"],
                      lambda b: {"input:0": image_batch(b, size, seed=b)})


def synthetic_graph(n_nodes: int, shape: str = "chain", seed: int = 0):
    """A GraphDef of about ``n_nodes`` elementwise ops with foldable constants and Identities.

    ``chain``: x -> (Identity, Add const, Mul (const+const)) repeated;
    ``fan``: many short branches off one input, summed in a tree.
    Returns (graph_def, input tensor, output tensor).
    """
    import tensorflow as tf
    from tensorflow.core.framework import (
        attr_value_pb2,
        graph_pb2,
        tensor_shape_pb2,
        types_pb2,
    )

    gd = graph_pb2.GraphDef()
    f32 = attr_value_pb2.AttrValue(type=types_pb2.DT_FLOAT)

    def node(name, op, inputs=(), **attrs):
        n = gd.node.add(name=name, op=op)
        n.input.extend(inputs)
        if op not in ("Const", "Placeholder", "NoOp"):
            n.attr["T"].CopyFrom(f32)
        for k, v in attrs.items():
            n.attr[k].CopyFrom(v)
        return name

    def const(name, value):
        return node(name, "Const", dtype=f32,
                    value=attr_value_pb2.AttrValue(tensor=tf.make_tensor_proto(np.float32(value))))

    shape_attr = attr_value_pb2.AttrValue(shape=tensor_shape_pb2.TensorShapeProto(dim=[
        tensor_shape_pb2.TensorShapeProto.Dim(size=-1)]))
    x = node("x", "Placeholder", dtype=f32, shape=shape_attr)
    # one unit = 6 nodes: Identity, Const a, Const b, Add(a,b) [foldable], Mul(cur, ab), Add(cur, a)
    units = max(1, n_nodes // 6)
    if shape == "chain":
        cur = x
        for i in range(units):
            idn = node(f"u{i}/id", "Identity", [cur])
            a = const(f"u{i}/a", 1.0 + (i % 7) * 1e-3)
            b = const(f"u{i}/b", 1e-3)
            ab = node(f"u{i}/ab", "AddV2", [a, b])
            m = node(f"u{i}/mul", "Mul", [idn, ab])
            cur = node(f"u{i}/add", "AddV2", [m, a]) if i % 2 else node(f"u{i}/sub", "Sub", [m, a])
        out = node("y", "Identity", [cur])
    else:
        leaves = []
        for i in range(units):
            idn = node(f"b{i}/id", "Identity", [x])
            a = const(f"b{i}/a", 1.0 + (i % 13) * 1e-3)
            b = const(f"b{i}/b", 1e-3)
            ab = node(f"b{i}/ab", "Mul", [a, b])
            leaves.append(node(f"b{i}/mul", "Mul", [idn, ab]))
        level = 0
        while len(leaves) > 1:
            nxt = []
            for j in range(0, len(leaves) - 1, 2):
                nxt.append(node(f"sum{level}_{j}", "AddV2", [leaves[j], leaves[j + 1]]))
            if len(leaves) % 2:
                nxt.append(leaves[-1])
            leaves = nxt
            level += 1
        out = node("y", "Identity", [leaves[0]])
    return gd, f"{x}:0", f"{out}:0"


KERAS_APPS = ["MobileNetV2", "ResNet50", "InceptionV3", "EfficientNetB0", "DenseNet121"]


def build(name: str) -> BenchModel:
    if name in KERAS_APPS:
        return keras_application(name, 299 if name == "InceptionV3" else 224)
    if name == "TransformerEncoder":
        return transformer_encoder()
    if name == "Embedding100kx64":
        return embedding_model()
    if name == "TF1ConvNet":
        return tf1_convnet()
    raise KeyError(name)


ALL_MODELS = [*KERAS_APPS, "TransformerEncoder", "Embedding100kx64", "TF1ConvNet"]
