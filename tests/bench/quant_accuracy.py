"""Quantization accuracy against the anchor: graphxform int8 / float16 vs TFLite dynamic-range quantization.

Run from the repository root (prints the per-model table; ``--json`` the rows)::

    python -m tests.bench.quant_accuracy
    python -m tests.bench.quant_accuracy --models ResNet50 TransformerEncoder --batch 64

For every model of :data:`CORPUS` (the Keras applications of the test and
benchmark corpus, the Transformer encoder and the TF1 convnet of
``tests/bench/models.py``) the same frozen float ``GraphDef`` is

* quantized by graphxform: the default pipeline with ``quantize_weights``
  (``dtype=int8``: symmetric int8 weights, per output channel; ``float16``),
  exactly what ``graphxform optimize --quantize int8|float16`` runs;
* converted by TensorFlow's own ``tf.compat.v1.lite.TFLiteConverter.from_frozen_graph``
  with ``optimizations = [Optimize.DEFAULT]`` and no representative dataset:
  dynamic-range quantization (int8 weights, per output channel for
  convolutions and dense layers; activations stay float between ops and are
  quantized on the fly inside the hybrid kernels), run by ``tf.lite.Interpreter``;

and all of them run on the same inputs as the float graph. Per model:
relative RMS error of the logits, ``‖q − f‖ / ‖f‖`` over the whole batch
(the relative L2 error ``verify --lossy`` gates on), and top-1 agreement
with the float model over **all** inputs.

Weights (no downloads: ``weights=None``, values given in code, see
``models.keras_application``): Keras' seeded initialisers, random BN
gamma/beta, residual branches scaled by 0.25, BN statistics calibrated on
64 images, and the classifier reading the principal directions of the
features (``models.principal_head``), so the logits carry what varies from
input to input and every class wins for some inputs. Random deep networks
are still far more sensitive to weight noise than trained ones (MobileNetV2
most: float16 alone moves its logits by ~1.5 %), so the absolute errors
are pessimistic; the comparison is between quantizers on the same weights.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)

#: name -> (builder, kwargs). Image models: 10 classes, logits out.
CORPUS: dict[str, dict] = {
    "MobileNetV2": {"app": "MobileNetV2", "size": 96},
    "MobileNetV2_a035": {"app": "MobileNetV2", "size": 64, "alpha": 0.35},
    "ResNet50": {"app": "ResNet50", "size": 96},
    "InceptionV3": {"app": "InceptionV3", "size": 96},
    "EfficientNetB0": {"app": "EfficientNetB0", "size": 96},
    "DenseNet121": {"app": "DenseNet121", "size": 96},
    "TransformerEncoder": {"transformer": dict(seq=32, dim=64, heads=4, layers=2, vocab=1000)},
    "TF1ConvNet": {"tf1": dict(size=64)},
}
CLASSES = 10
BATCH = 128


def _models():
    name = "_bench_models_quant"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@dataclass
class Frozen:
    name: str
    graph_def: object
    input: str  # tensor name
    output: str  # tensor name (the logits)
    x: np.ndarray


@dataclass
class Row:
    model: str
    batch: int
    classes_won: int  # distinct float top-1 classes over the batch
    rel_rms_int8: float
    agree_int8: float
    rel_rms_float16: float
    agree_float16: float
    rel_rms_tflite: float
    agree_tflite: float
    tflite_bytes: int
    float_bytes: int
    int8_bytes: int


def build(name: str, batch: int = BATCH) -> Frozen:
    """The frozen float graph of ``name`` and ``batch`` inputs for it."""
    models = _models()
    spec = dict(CORPUS[name])
    if "app" in spec:
        app, size = spec.pop("app"), spec.pop("size")
        m = models.keras_application(app, size, CLASSES, logits=True, head="pca", **spec)
        x = models.image_batch(batch, size, seed=1)
    elif "transformer" in spec:
        import keras

        kw = spec["transformer"]
        keras.utils.set_random_seed(0)  # the kernels' initialisers
        model = models.transformer_encoder_model(**kw, classes=CLASSES, logits=True)
        rng = np.random.default_rng(5)
        models.principal_head(model, rng.integers(0, kw["vocab"], (256, kw["seq"])).astype(np.int32))
        m = models.freeze_keras(model, (kw["seq"],), name, dtype="int32")
        x = np.random.default_rng(1).integers(0, kw["vocab"], (batch, kw["seq"])).astype(np.int32)
    else:
        m = models.tf1_convnet(classes=CLASSES, **spec["tf1"])
        x = models.image_batch(batch, spec["tf1"]["size"], seed=1)
        return Frozen(name, m.graph_def, m.inputs[0], "logits/BiasAdd:0", x)
    return Frozen(name, m.graph_def, m.inputs[0], m.outputs[0], x)


def _node(tensor: str) -> str:
    return tensor.split(":")[0]


def graphxform_quantized(f: Frozen, dtype: str):
    """The default pipeline with ``quantize_weights(dtype=…)`` (what ``optimize --quantize`` runs)."""
    from graphxform.engine.pipeline import FLOAT_PIPELINE
    from graphxform.jobs.gtt import TransformGraph

    return TransformGraph(f.graph_def, [_node(f.input)], [_node(f.output)],
                          " ".join(FLOAT_PIPELINE) + f" quantize_weights(dtype={dtype})")


def tflite_dynamic_range(f: Frozen) -> bytes:
    """TFLite's dynamic-range quantization of the same frozen graph, for a fixed batch of ``len(f.x)``."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frozen.pb"
        path.write_bytes(f.graph_def.SerializeToString())
        conv = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
            str(path), [_node(f.input)], [_node(f.output)], {_node(f.input): list(f.x.shape)})
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        return conv.convert()


def run_tflite(model: bytes, x: np.ndarray) -> np.ndarray:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interp = tf.lite.Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return np.array(interp.get_tensor(interp.get_output_details()[0]["index"]))


def run_graph(graph_def, f: Frozen) -> np.ndarray:
    from graphxform.tf.session import run_graph_def

    (out,) = run_graph_def(graph_def, {f.input: f.x}, [f.output])
    return np.asarray(out)


def rel_rms(ref: np.ndarray, got: np.ndarray) -> float:
    """``‖got − ref‖ / ‖ref‖`` over every value (relative RMS error; ``verify``'s relative L2 error)."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


def agreement(ref: np.ndarray, got: np.ndarray) -> float:
    """Share of inputs whose top-1 class is the same (all inputs, no filtering)."""
    return float(np.mean(np.argmax(ref, -1) == np.argmax(got, -1)))


def measure(name: str, batch: int = BATCH) -> tuple[Row, dict[str, np.ndarray]]:
    """One row of the table, and the logits it was computed from (``float``, ``int8``, ``float16``, ``tflite``)."""
    f = build(name, batch)
    q8, q16 = graphxform_quantized(f, "int8"), graphxform_quantized(f, "float16")
    lite = tflite_dynamic_range(f)
    out = {"float": run_graph(f.graph_def, f), "int8": run_graph(q8, f), "float16": run_graph(q16, f),
           "tflite": run_tflite(lite, f.x)}
    ref = out["float"]
    row = Row(name, len(f.x), len(set(np.argmax(ref, -1).tolist())),
              rel_rms(ref, out["int8"]), agreement(ref, out["int8"]),
              rel_rms(ref, out["float16"]), agreement(ref, out["float16"]),
              rel_rms(ref, out["tflite"]), agreement(ref, out["tflite"]),
              len(lite), f.graph_def.ByteSize(), q8.ByteSize())
    log.info("%s", row)
    return row, out


def table(rows: list[Row]) -> str:
    lines = ["| model | inputs | rel-RMS int8 | rel-RMS float16 | rel-RMS TFLite DR | top-1 int8 | top-1 float16 "
             "| top-1 TFLite DR |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.batch} | {r.rel_rms_int8:.4f} | {r.rel_rms_float16:.5f} | "
                     f"{r.rel_rms_tflite:.4f} | {r.agree_int8:.3f} | {r.agree_float16:.3f} | {r.agree_tflite:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=list(CORPUS), choices=list(CORPUS))
    ap.add_argument("--batch", type=int, default=BATCH, help="inputs per model")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        rows.append(measure(name, args.batch)[0])
        print(f"{name}: {json.dumps(asdict(rows[-1]))}", file=sys.stderr, flush=True)
    print(json.dumps([asdict(r) for r in rows], indent=1) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
