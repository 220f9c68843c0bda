"""Every fixture × ``--quantize`` × output kind, loaded and run by each of TensorFlow's loaders.

The judge is TensorFlow itself: ``optimize`` writes OUT, then each loader
(TF Serving's C++ ``LoadSavedModel``, ``tf.saved_model.load``, the TF1
loader — for a ``.pb``, the C++ ``Session::Create``, ``wrap_function`` and
``import_graph_def``, see :mod:`graphxform.tf.loaders`) loads OUT and runs
every signature on the fixture's sample inputs, and each output is compared
with the *input* model's, run by the TF1 loader (independent of graphxform's
own loader and freezer). Each output is made once per test process and shared
by the matrix and the idempotence test.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURES, SAMPLES, fixture_path

from graphxform.jobs.optimize import optimize

#: fixture -> (sample file stem, its signature keys, optimize() keyword arguments)
MODELS = {
    "estimator_dnn": (["classification", "predict", "serving_default"], {}),
    "estimator_linear": (["classification", "predict", "regression", "serving_default"], {}),
    "keras_bn": (["serve", "serving_default"], {}),
    "tf2_lookup": (["score", "serving_default"], {}),
    "keras_rnn": (["serve", "serving_default"], {}),
    "tf2_control_flow": (["branch", "loop", "mapped"], {}),
    "tf1_frozen_bn.pb": (["serving_default"], {"graph_inputs": "input", "graph_outputs": "output"}),
}
QUANTIZE = ["none", "int8", "float16"]
KINDS = ["saved_model", "pb"]
LOADERS = ["c++", "tf2", "tf1"]


def _stem(name: str) -> str:
    return name.split(".")[0]


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    """``get(name, quantize, kind) -> (OUT, OptimizeReport)``, each made once per test process."""
    base = tmp_path_factory.mktemp("servables")
    cache: dict[tuple[str, str, str], tuple] = {}

    def get(name: str, quantize: str, kind: str):
        key = (name, quantize, kind)
        if key not in cache:
            src = fixture_path(name)
            out = base / (f"{_stem(name)}-{quantize}" + (".pb" if kind == "pb" else ""))
            report = optimize(src, out, quantize=quantize, inputs=SAMPLES / f"{_stem(name)}.npz",
                              **MODELS[name][1])
            cache[key] = (out, report)
        return cache[key]

    return get


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("quantize", QUANTIZE)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_loader_loads_the_output_and_matches_the_input(optimized, name, quantize, kind):
    out, report = optimized(name, quantize, kind)
    v = report.verification
    assert v is not None
    assert v.ok, v.failure_message()
    assert [r.key for r in v.loaders] == LOADERS
    keys = MODELS[name][0]
    for r in v.loaders:
        assert r.loaded and r.error is None, (r.key, r.error)
        assert sorted(r.signatures) == keys, f"{r.description} lists {r.signatures}, the input has {keys}"
    compared = {k: {(c.signature, c.output) for c in v.outputs if c.loader == k} for k in LOADERS}
    assert compared["c++"] == compared["tf2"] == compared["tf1"], "every loader ran every output"
    assert {s for s, _ in compared["c++"]} == set(keys)
    assert v.inputs_source == "npz" and set(v.batch) == set(keys)
    if quantize == "none":
        assert all(c.within_tolerance for c in v.outputs)
        assert v.max_rel_diff <= 1e-5
    else:
        assert not any(c.broken for c in v.outputs)
        assert v.min_class_agreement is None or v.min_class_agreement >= 0.75
    if kind == "saved_model":
        assert (out / "saved_model.pb").is_file()
    else:
        assert out.is_file() and out.with_name(out.name + ".signatures.json").is_file()


@pytest.mark.parametrize("quantize", QUANTIZE)
@pytest.mark.parametrize("name", list(MODELS))
def test_optimizing_an_optimized_servable_changes_nothing(optimized, tmp_path, name, quantize):
    """optimize(optimize(x)) == optimize(x): the same nodes and the same bytes (a fixpoint of the whole job)."""
    out, report = optimized(name, quantize, "saved_model")
    again = optimize(out, tmp_path / "again", quantize=quantize, verify=False)
    assert again.nodes_loaded == report.nodes_after
    assert again.nodes_after == report.nodes_after
    assert (tmp_path / "again" / "saved_model.pb").read_bytes() == (out / "saved_model.pb").read_bytes()
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "again" / f).read_bytes() == (out / f).read_bytes(), f


def test_loop_models_run_in_tf_saved_model_load_with_the_fixture_samples(optimized):
    """The frozen While/If bodies load in tf.saved_model.load and give the input's numbers (outside verify)."""
    import tensorflow as tf

    from conftest import load_samples

    for name in ("keras_rnn", "tf2_control_flow"):
        out, _ = optimized(name, "none", "saved_model")
        ref, new = tf.saved_model.load(str(FIXTURES / name)), tf.saved_model.load(str(out))
        assert sorted(new.signatures.keys()) == sorted(k for k in ref.signatures.keys() if not k.startswith("__"))
        for key, feeds in load_samples(name).items():
            args = {k: tf.constant(v) for k, v in feeds.items()}
            want, got = ref.signatures[key](**args), new.signatures[key](**args)
            for k in want:
                np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), rtol=1e-5, atol=1e-6)
