"""The lossy gate (``verify --lossy``, ``optimize --quantize int8|float16``) at its limits, on both sides.

The thresholds (:data:`graphxform.jobs.compare.BROKEN_REL_L2`,
:data:`~graphxform.jobs.compare.BROKEN_AGREEMENT`) come from the comparison
with TFLite's dynamic-range quantization (``tests/bench/quant_accuracy.py``,
``tests/test_quant_accuracy.py``); here an output just within each limit
passes and one just beyond fails, in ``compare_arrays`` and through the CLI
on real SavedModels run by TensorFlow's loaders.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from graphxform.jobs.compare import BROKEN_AGREEMENT, BROKEN_REL_L2, compare_arrays

CLASSES = 10
ROWS = 40  # agreement steps of 1/40: BROKEN_AGREEMENT * ROWS must be a whole number of rows


def _logits(rows: int = ROWS, seed: int = 0) -> np.ndarray:
    """Logits, one class ahead by about 4 in each row (cycling through the classes)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (rows, CLASSES))
    x[np.arange(rows), np.arange(rows) % CLASSES] += 4.0
    return x.astype(np.float32)


def _flip(ref: np.ndarray, k: int) -> np.ndarray:
    """``ref`` with the first ``k`` rows' top-1 class lowered just below their second class."""
    got = ref.copy()
    for i in range(k):
        order = np.argsort(got[i])
        got[i, order[-1]] = got[i, order[-2]] - 1e-3
    return got


def test_the_agreement_limit_is_a_whole_number_of_rows():
    assert math.isclose(BROKEN_AGREEMENT * ROWS, round(BROKEN_AGREEMENT * ROWS))
    assert 0 < BROKEN_REL_L2 < 1 and 0.5 <= BROKEN_AGREEMENT < 1


@pytest.mark.parametrize("output", ["logits", "y"])
def test_relative_l2_error_just_within_passes_just_beyond_fails(output):
    ref = _logits()
    within = compare_arrays("s", output, ref, ref * np.float32(1 + 0.99 * BROKEN_REL_L2), lossy=True)
    beyond = compare_arrays("s", output, ref, ref * np.float32(1 + 1.01 * BROKEN_REL_L2), lossy=True)
    assert within.rel_l2 == pytest.approx(0.99 * BROKEN_REL_L2, rel=1e-5) and not within.broken, within.note
    assert beyond.rel_l2 == pytest.approx(1.01 * BROKEN_REL_L2, rel=1e-5) and beyond.broken
    assert "relative L2 error" in beyond.note
    assert not within.within_tolerance  # (in exact mode both fail)
    if output == "logits":
        assert within.class_agreement == beyond.class_agreement == 1.0


def test_class_agreement_at_the_limit_passes_one_row_less_fails():
    ref = _logits()
    allowed = round((1 - BROKEN_AGREEMENT) * ROWS)  # rows that may change class
    at = compare_arrays("s", "logits", ref, _flip(ref, allowed), lossy=True)
    below = compare_arrays("s", "logits", ref, _flip(ref, allowed + 1), lossy=True)
    assert at.class_agreement == pytest.approx(BROKEN_AGREEMENT) and not at.broken, at.note
    assert below.class_agreement == pytest.approx(BROKEN_AGREEMENT - 1 / ROWS) and below.broken
    assert "class agreement" in below.note
    assert at.rel_l2 < BROKEN_REL_L2 and below.rel_l2 < BROKEN_REL_L2  # the flips alone decide
    # integer class ids: the same limit on rows
    ids = ref.argmax(1)
    assert not compare_arrays("s", "class_id", ids, _flip(ref, allowed).argmax(1), lossy=True).broken
    assert compare_arrays("s", "class_id", ids, _flip(ref, allowed + 1).argmax(1), lossy=True).broken


# ------------------------------------------------------------------------------------------- CLI, real models
def _save(path: Path, scale: float, shift: np.ndarray) -> Path:
    """A ``tf.Module`` SavedModel: ``logits = x * scale + shift`` (variables, restored by every loader)."""
    import tensorflow as tf

    class Head(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(np.float32(scale))
            self.shift = tf.Variable(shift.astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, CLASSES], tf.float32, name="x")])
        def serve(self, x):
            return {"logits": x * self.scale + self.shift}

    m = Head()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path


def _verify(ref: Path, cand: Path, inputs: Path, capsys) -> tuple[int, dict]:
    from graphxform.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["verify", str(ref), str(cand), "--lossy", "--inputs", str(inputs), "--json"])
    out = capsys.readouterr().out
    return exc.value.code, json.loads(out)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("gate")
    x = _logits() * 5  # the top class leads by about 20
    allowed = round((1 - BROKEN_AGREEMENT) * ROWS)
    for i in range(ROWS):
        top = int(np.argmax(x[i]))
        if top == 0:
            x[i, 0], x[i, 1], top = x[i, 1], x[i, 0], 1
        # rows 0..allowed: class 0 is 1 below the top, so a +2.5 shift of class 0 makes it win; others: 5 below
        x[i, 0] = x[i, top] - (1.0 if i <= allowed else 5.0)
    np.savez(base / "x_beyond.npz", x=x)  # allowed + 1 rows of ROWS change class: just below the limit
    at = x.copy()
    at[0] = x[allowed + 1]
    np.savez(base / "x_at.npz", x=at)  # allowed rows of ROWS change class: at the limit
    shift = np.zeros(CLASSES, np.float32)
    shift[0] = 2.5
    return {
        "base": base,
        "ref": _save(base / "ref", 1.0, np.zeros(CLASSES)),
        "within": _save(base / "within", 1 + 0.98 * BROKEN_REL_L2, np.zeros(CLASSES)),
        "beyond": _save(base / "beyond", 1 + 1.02 * BROKEN_REL_L2, np.zeros(CLASSES)),
        "shifted": _save(base / "shifted", 1.0, shift),
    }


@pytest.mark.parametrize("cand, ok", [("within", True), ("beyond", False)])
def test_cli_verify_lossy_relative_error_limit(models, cand, ok, capsys):
    code, data = _verify(models["ref"], models[cand], models["base"] / "x_at.npz", capsys)
    assert (code, data["ok"]) == ((0, True) if ok else (1, False)), data
    rel = [o["rel_l2"] for o in data["outputs"]]
    assert len(rel) == 3  # one output, three loaders (C++, tf.saved_model.load, TF1)
    want = (0.98 if ok else 1.02) * BROKEN_REL_L2
    assert all(r == pytest.approx(want, rel=1e-4) for r in rel), rel
    assert all(o["class_agreement"] == 1.0 for o in data["outputs"])


def test_cli_verify_lossy_agreement_limit(models, capsys):
    allowed = round((1 - BROKEN_AGREEMENT) * ROWS)
    # allowed + 1 rows of ROWS change class: agreement just below the limit -> exit 1
    code, data = _verify(models["ref"], models["shifted"], models["base"] / "x_beyond.npz", capsys)
    assert code == 1 and not data["ok"]
    assert all(o["class_agreement"] == pytest.approx(BROKEN_AGREEMENT - 1 / ROWS) for o in data["outputs"])
    assert all(o["rel_l2"] < BROKEN_REL_L2 for o in data["outputs"])  # the class flips alone fail it
    # allowed rows change class: agreement at the limit -> passes
    code, data = _verify(models["ref"], models["shifted"], models["base"] / "x_at.npz", capsys)
    assert code == 0 and data["ok"], data
    assert all(o["class_agreement"] == pytest.approx(BROKEN_AGREEMENT) for o in data["outputs"]), data["outputs"]
    assert all(o["rel_l2"] < BROKEN_REL_L2 for o in data["outputs"])


def test_readme_and_help_state_the_thresholds(capsys):
    from graphxform.cli import main

    readme = (ROOT / "README.md").read_text()
    rel, agree = f"{BROKEN_REL_L2:g}", f"{100 * BROKEN_AGREEMENT:g}%"
    assert f"relative L2 error above {rel}" in readme and f"top-1 agreement below {agree}" in readme
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert rel in text and agree in text
