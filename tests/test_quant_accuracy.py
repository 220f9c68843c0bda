"""graphxform's int8 against TFLite's dynamic-range quantization, the anchor, on every model of the corpus.

For each model of ``tests/bench/quant_accuracy.CORPUS`` (MobileNetV2 at
96x96 and at alpha 0.35 / 64x64, ResNet50, InceptionV3, EfficientNetB0,
DenseNet121 at 96x96, the Transformer encoder, the TF1 convnet; weights given
in code, see that module) the same frozen graph is quantized by graphxform
(default pipeline + ``quantize_weights``, int8 and float16) and by
``TFLiteConverter`` with ``Optimize.DEFAULT``, and all run on the same 128
inputs as the float graph. Over **all** inputs:

* graphxform int8's relative RMS error of the logits is at most 1.1x TFLite's,
  and its top-1 agreement with the float model is no lower than TFLite's;
* float16 is more accurate than int8;
* the lossy gate of ``verify``/``optimize`` (its limits are set from this
  table) passes graphxform's float16 outputs, and its int8 outputs wherever
  it passes TFLite's.

``python -m tests.bench.quant_accuracy`` prints the table.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from graphxform.jobs.compare import compare_arrays

pytestmark = pytest.mark.slow


def _bench():
    name = "_bench_quant_accuracy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "bench" /
                                                      "quant_accuracy.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return sys.modules[name]


@pytest.mark.parametrize("name", list(_bench().CORPUS))
def test_int8_is_as_accurate_as_tflite_dynamic_range(name):
    bench = _bench()
    row, out = bench.measure(name)
    print(bench.table([row]))
    ref = out["float"]
    # A meaningful reference: the logits depend on the input and many classes win.
    assert row.classes_won >= 5, f"{name}: degenerate float model, classes {np.bincount(ref.argmax(1))}"
    assert float(ref.std(0).mean()) > 0.1 * float(np.abs(ref).mean()), f"{name}: logits barely depend on the input"
    # Both quantizers really quantized (TFLite: int8 weights in the flatbuffer; graphxform: int8 consts).
    assert row.tflite_bytes < 0.4 * row.float_bytes, row
    assert row.int8_bytes < 0.4 * row.float_bytes, row

    assert row.rel_rms_int8 <= 1.1 * row.rel_rms_tflite, row
    assert row.agree_int8 >= row.agree_tflite, row
    assert row.rel_rms_float16 < row.rel_rms_int8, row
    # The lossy gate: float16 always passes; int8 passes wherever the anchor's output does.
    gate = {label: compare_arrays("serving_default", "logits", ref, out[label], lossy=True)
            for label in ("int8", "float16", "tflite")}
    assert not gate["float16"].broken, f"{name} float16: {gate['float16'].note}"
    if not gate["tflite"].broken:
        assert not gate["int8"].broken, f"{name} int8: {gate['int8'].note}"
