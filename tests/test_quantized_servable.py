"""`graphxform optimize --quantize int8|float16` end to end on a trained model whose weights are quantized.

``fixtures/module_quant`` (``fixtures/make_quant_fixture.py``): a small
trained CNN in a ``tf.Module``, three weights of 1024 elements or more. The
CLI optimizes it; the output is loaded by TensorFlow's C++ loader (TF
Serving's ``LoadSavedModel``), ``tf.saved_model.load`` and the TF1 loader,
run on the 32 held-out sample images of both signatures, and compared with
the original (run in the TF1 loader) under the lossy gate
(:func:`graphxform.jobs.compare.compare_arrays`, ``lossy=True``), and
measured independently: relative L2 error of the logits and top-1 agreement.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, load_samples
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from test_exporter import tf1_run_all, tf2_run_all
from tf2_idioms import run_cpp

from graphxform.jobs.compare import BROKEN_AGREEMENT, BROKEN_REL_L2, compare_arrays

FIXTURE = FIXTURES / "module_quant"
QUANTIZED = ["conv1/kernel", "conv2/kernel", "fc/kernel"]  # the weights of >= 1024 elements
#: Measured on this fixture (TF 2.21, CPU): int8 3.9e-3, float16 1.5e-4 relative L2 error of the logits.
#: The bounds are 2.6x and 6.8x that.
MAX_REL_L2 = {"int8": 1e-2, "float16": 1e-3}


def _main(argv, capsys):
    from graphxform.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _rel_l2(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


def _consts(path: Path) -> dict[str, int]:
    """{const node name: dtype} of the first meta graph of ``path``."""
    sm = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    return {n.name: n.attr["dtype"].type for n in sm.meta_graphs[0].graph_def.node if n.op == "Const"}


@pytest.fixture(scope="module")
def reference():
    samples = load_samples("module_quant")
    return samples, tf1_run_all(FIXTURE, samples)


def test_the_fixture_is_servable_as_it_is(reference):
    samples, ref = reference
    for run in (run_cpp, tf2_run_all):
        got = run(FIXTURE, samples)
        for key, outs in ref.items():
            for name, value in outs.items():
                np.testing.assert_allclose(got[key][name], value, rtol=1e-5, atol=1e-6, err_msg=f"{key}/{name}")
    classes = ref["serving_default"]["logits"].argmax(1)
    assert len(set(classes.tolist())) >= 5, f"degenerate fixture: classes {np.bincount(classes)}"


@pytest.mark.parametrize("mode", ["int8", "float16"])
def test_optimize_quantized_end_to_end_in_every_loader(reference, mode, tmp_path, capsys):
    samples, ref = reference
    out = tmp_path / f"quant_{mode}"
    code, stdout, stderr = _main(["optimize", str(FIXTURE), str(out), "--quantize", mode,
                                  "--inputs", str(FIXTURES / "samples" / "module_quant.npz"), "--json"], capsys)
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["ok"] and report["quantize"] == mode and report["verification"]["mode"] == "lossy"
    assert report["verification"]["inputs"] == "npz"
    assert {row["loader"] for row in report["verification"]["loaders"] if row["ok"]} == {"c++", "tf2", "tf1"}

    # The weights are stored quantized: int8 (or float16) consts where the float kernels were.
    consts = _consts(out)
    stored = types_pb2.DT_INT8 if mode == "int8" else types_pb2.DT_HALF
    for w in QUANTIZED:
        assert any(name.startswith(w) and t == stored for name, t in consts.items()), (w, sorted(consts))
    assert report["size_after"] < 0.6 * report["size_before"]

    # Every loader, against the original, under the lossy gate and by the figures it is justified by.
    runs = {"c++": run_cpp(out, samples), "tf2": tf2_run_all(out, samples), "tf1": tf1_run_all(out, samples)}
    for loader, got in runs.items():
        assert set(got) == set(ref)
        for key, outs in ref.items():
            assert set(got[key]) == set(outs)
            for name, value in outs.items():
                c = compare_arrays(key, name, value, got[key][name], lossy=True)
                assert not c.broken, f"{loader} {key}/{name}: {c.note}"
        logits = got["serving_default"]["logits"]
        err = _rel_l2(ref["serving_default"]["logits"], logits)
        assert 0 < err <= MAX_REL_L2[mode] < BROKEN_REL_L2, f"{loader}: relative L2 error {err:.2e}"
        agree = float(np.mean(logits.argmax(1) == ref["serving_default"]["logits"].argmax(1)))
        assert agree == 1.0 >= BROKEN_AGREEMENT, f"{loader}: top-1 agreement {agree}"
        np.testing.assert_array_equal(got["top1"]["class_id"], ref["top1"]["class_id"])
    # The three loaders run the same graph: the same values.
    for key in ref:
        for name in ref[key]:
            np.testing.assert_allclose(runs["tf2"][key][name], runs["c++"][key][name], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(runs["tf1"][key][name], runs["c++"][key][name], rtol=1e-6, atol=1e-7)
