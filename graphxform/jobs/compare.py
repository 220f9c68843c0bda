"""Comparing one output of two models: differences, class agreement, and whether it passes.

Per output: the max absolute difference, the max relative difference ``max|a - b| / (max|b| + atol)``
(``b`` the reference: relative to the output's scale, as float rounding errors are), and, for classifier
outputs (``classes``, ``class_ids``, ``probabilities``, ``scores``, ``logits``, ``logistic``, or any float
output that looks like probabilities), the rate at which both models pick the same class.

Two modes:

- exact (default): an output passes when ``|a - b| <= atol + rtol * max|b|``
  everywhere. The tolerance scales with the output's largest magnitude, not
  each element's: folding a batch norm into conv weights changes the order of
  float32 rounding, so an element near zero in an output of magnitude 10
  carries an error of about 10 ulp(10), far above ``rtol * |b|`` for that
  element. Strings and integers must be equal.
- lossy (quantized models): numeric differences are reported, not failed.
  Only clearly broken outputs fail: shape or dtype changed, NaN/Inf that the
  reference does not have, relative L2 error ``‖a - b‖ / ‖b‖`` above
  :data:`BROKEN_REL_L2`, or class/row agreement below :data:`BROKEN_AGREEMENT`.

  The limits come from TFLite's dynamic-range quantization (int8 weights per
  output channel, activations quantized on the fly), measured on the
  test/benchmark corpus of Keras applications, a Transformer encoder and a
  TF1 convnet (``tests/bench/quant_accuracy.py``, table in the README). On
  every model of it but one, the anchor's relative RMS error of the logits is
  at most 0.35 and its top-1 agreement at least 85% (the worst: MobileNetV2
  with random weights); an output further from its reference than that, with
  a margin, is broken: error above 0.4, agreement below 75% (three rows of
  four: ``verify`` synthesizes 4 rows by default, so one near-tie flipping
  never fails an output, two do). The exception, InceptionV3 with random
  weights at 96x96, loses half its classes under TFLite's quantization (and
  a third under graphxform's): a model its int8 weights cannot serve, which
  the gate reports as broken.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6
#: Lossy mode: an output whose relative L2 error ``‖a - b‖ / ‖b‖`` is above this is broken (see the module doc).
BROKEN_REL_L2 = 0.4
#: Lossy mode: an output whose class (or row) agreement is below this is broken.
BROKEN_AGREEMENT = 0.75
CLASS_OUTPUT_NAMES = frozenset({"classes", "class_ids", "probabilities", "scores", "logits", "logistic",
                                "all_class_ids", "all_classes", "predictions", "class"})


@dataclass
class OutputComparison:
    """How one output of one signature compares between the reference and the candidate."""

    signature: str
    output: str
    dtype: str
    shape: list[int]
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    rel_l2: float | None = None
    mismatches: int = 0
    size: int = 0
    class_agreement: float | None = None
    within_tolerance: bool = True
    broken: bool = False
    note: str = ""
    loader: str = ""  # which of TensorFlow's loaders ran the candidate (graphxform.tf.loaders.LOADER_KEYS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_class_output(name: str, ref: np.ndarray) -> bool:
    if name.lower() in CLASS_OUTPUT_NAMES:
        return True
    if ref.dtype.kind == "f" and ref.ndim == 2 and ref.shape[1] >= 2 and ref.size:
        finite = np.isfinite(ref).all()
        if finite and ref.min() >= 0 and ref.max() <= 1 and np.allclose(ref.sum(axis=1), 1.0, atol=1e-3):
            return True  # looks like softmax probabilities
    return False


def _class_agreement(name: str, ref: np.ndarray, got: np.ndarray) -> float | None:
    if ref.size == 0:
        return None
    if ref.dtype.kind == "f":
        if ref.ndim >= 2 and ref.shape[-1] >= 2:
            return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(got, axis=-1)))
        threshold = 0.0 if "logit" in name.lower() else 0.5
        return float(np.mean((ref > threshold) == (got > threshold)))
    rows_ref = ref.reshape(ref.shape[0], -1) if ref.ndim >= 1 else ref.reshape(1, -1)
    rows_got = got.reshape(rows_ref.shape)
    return float(np.mean(np.all(rows_ref == rows_got, axis=1)))


def _row_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    if ref.size == 0:
        return 1.0
    r = ref.reshape(ref.shape[0], -1) if ref.ndim >= 1 else ref.reshape(1, -1)
    g = got.reshape(r.shape)
    return float(np.mean(np.all(r == g, axis=1)))


def compare_arrays(signature: str, output: str, ref: Any, got: Any, *, rtol: float = DEFAULT_RTOL,
                   atol: float = DEFAULT_ATOL, lossy: bool = False) -> OutputComparison:
    """Compare one output; ``ref`` is the reference model's value."""
    ref, got = np.asarray(ref), np.asarray(got)
    c = OutputComparison(signature, output, str(ref.dtype), list(ref.shape), size=int(ref.size))
    if ref.shape != got.shape:
        c.within_tolerance, c.broken = False, True
        c.note = f"shape {list(got.shape)} != reference {list(ref.shape)}"
        return c
    kinds = (ref.dtype.kind, got.dtype.kind)
    numeric = all(k in "biufc" for k in kinds)
    if not numeric:
        if any(k in "biufc" for k in kinds):
            c.within_tolerance, c.broken = False, True
            c.note = f"dtype {got.dtype} != reference {ref.dtype}"
            return c
        eq = np.asarray(ref == got) if ref.dtype == got.dtype else np.asarray(
            np.vectorize(lambda a, b: a == b, otypes=[bool])(ref, got) if ref.size else np.ones(0, bool))
        c.mismatches = int(ref.size - int(np.count_nonzero(eq)))
        c.within_tolerance = c.mismatches == 0
        agreement = _row_agreement(ref, got)
        if _is_class_output(output, ref):
            c.class_agreement = agreement
        if lossy and agreement < BROKEN_AGREEMENT:
            c.broken, c.note = True, f"only {100 * agreement:.0f}% of rows agree"
        return c
    if ref.dtype.kind != got.dtype.kind and not lossy:
        c.note = f"dtype {got.dtype} != reference {ref.dtype}"
        c.within_tolerance = False
    a = ref.astype(np.complex128 if "c" in kinds else np.float64)
    b = got.astype(a.dtype)
    both_nan = np.isnan(a) & np.isnan(b) if a.size else np.zeros(0, bool)
    diff = np.abs(b - a)
    diff = np.where(both_nan | (np.isinf(a) & (a == b)), 0.0, diff)
    bad_new = (~np.isfinite(b)) & np.isfinite(a)
    if a.size:
        finite = np.isfinite(diff)
        c.max_abs_diff = float(diff[finite].max()) if finite.any() else 0.0
        finite_ref = np.abs(a[np.isfinite(a)])
        scale = float(finite_ref.max()) if finite_ref.size else 0.0
        c.max_rel_diff = c.max_abs_diff / (scale + atol)
        norm = float(np.linalg.norm(np.where(np.isfinite(a), a, 0).ravel()))
        err = float(np.linalg.norm(np.where(finite, diff, 0).ravel()))
        c.rel_l2 = err / norm if norm > 0 else (0.0 if err == 0 else math.inf)
        close = diff <= atol + rtol * scale  # (NaN where only one side is NaN: not close)
        c.mismatches = int(a.size - int(np.count_nonzero(close)))
        c.within_tolerance = c.within_tolerance and c.mismatches == 0
    if bad_new.any():
        c.broken, c.within_tolerance = True, False
        c.note = f"{int(bad_new.sum())} NaN/Inf values the reference does not have"
    if _is_class_output(output, ref):
        c.class_agreement = _class_agreement(output, ref, got)
    if lossy and not c.broken:
        if ref.dtype.kind in "iub":
            agreement = _row_agreement(ref, got)
            if agreement < BROKEN_AGREEMENT:
                c.broken, c.note = True, f"only {100 * agreement:.0f}% of rows agree"
        elif c.rel_l2 is not None and c.rel_l2 > BROKEN_REL_L2:
            c.broken, c.note = True, f"relative L2 error {c.rel_l2:.2f} > {BROKEN_REL_L2}"
        if not c.broken and c.class_agreement is not None and c.class_agreement < BROKEN_AGREEMENT:
            c.broken, c.note = True, f"class agreement {100 * c.class_agreement:.0f}% < {100 * BROKEN_AGREEMENT:.0f}%"
    return c


__all__ = ["BROKEN_AGREEMENT", "BROKEN_REL_L2", "DEFAULT_ATOL", "DEFAULT_RTOL", "OutputComparison", "compare_arrays"]
