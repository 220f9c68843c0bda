"""`optimize` end to end on the fixtures: servable output, same signatures, verified values, atomic writes, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, ROOT, SAMPLES, load_samples
from tensorflow.core.protobuf import saved_model_pb2
from test_exporter import tf1_run, tf1_run_all, tf2_run_all, tree_hash

from graphxform.core.errors import ExportError
from graphxform.engine.pipeline import DEFAULT_PIPELINE
from graphxform.jobs.optimize import optimize
from graphxform.model import export as exporter
from graphxform.savedmodel import atomic

MODELS = ["estimator_dnn", "estimator_linear", "keras_bn", "tf2_lookup"]
MODES = ["none", "int8"]
INIT_KEY = "__saved_model_init_op"


@pytest.fixture(scope="module")
def hashes_before():
    return {m: tree_hash(FIXTURES / m) for m in MODELS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, hashes_before):
    """Every model optimized once per mode, with the sample inputs; progress events recorded."""
    base = tmp_path_factory.mktemp("opt")
    out = {}
    for model in MODELS:
        for mode in MODES:
            events: list[tuple[str, str]] = []
            report = optimize(FIXTURES / model, base / f"{model}_{mode}", quantize=mode,
                              inputs=SAMPLES / f"{model}.npz",
                              progress=lambda stage, status, info, ev=events: ev.append((stage, status)))
            out[(model, mode)] = (report, events)
    return out


def signature_table(path: Path) -> dict:
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    table = {}
    for key, sd in sm.meta_graphs[0].signature_def.items():
        if key == INIT_KEY:
            continue

        def infos(m):
            return {k: (v.dtype, None if v.tensor_shape.unknown_rank else [d.size for d in v.tensor_shape.dim])
                    for k, v in m.items()}

        table[key] = (sd.method_name, infos(sd.inputs), infos(sd.outputs))
    return table


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", MODELS)
def test_output_keeps_every_signature(runs, model, mode):
    report, _ = runs[(model, mode)]
    out = Path(report.output)
    assert signature_table(out) == signature_table(FIXTURES / model)
    assert report.signatures == sorted(signature_table(FIXTURES / model))
    assert report.nodes_after < report.nodes_loaded
    assert report.size_after == exporter.dir_size(out) and report.size_before == exporter.dir_size(FIXTURES / model)


@pytest.mark.parametrize("model", MODELS)
def test_float_pipeline_is_within_1e_5(runs, model):
    report, _ = runs[(model, "none")]
    v = report.verification
    assert report.ok and not report.lossy and v.ok and v.inputs_source == "npz"
    assert v.max_rel_diff <= 1e-5
    # independent of verify.py: TF2 loader on OUT against the TF1 loader on IN
    samples = load_samples(model)
    refs = tf1_run_all(FIXTURES / model, samples)
    gots = tf2_run_all(Path(report.output), samples)
    for key in samples:
        ref, got = refs[key], gots[key]
        assert set(got) == set(ref)
        for k, r in ref.items():
            if r.dtype.kind in "fc":
                np.testing.assert_allclose(got[k], r, rtol=1e-5, atol=1e-6, err_msg=f"{model} {key}/{k}")
            else:
                np.testing.assert_array_equal(got[k], r, err_msg=f"{model} {key}/{k}")


@pytest.mark.parametrize("model", MODELS)
def test_int8_agrees_on_classes_and_reports_differences(runs, model):
    report, _ = runs[(model, "int8")]
    v = report.verification
    assert report.lossy and v.lossy and report.ok
    assert v.min_class_agreement is None or v.min_class_agreement >= 0.99
    assert all(c.max_abs_diff is not None for c in v.outputs if c.dtype.startswith("float"))
    assert report.to_dict()["verification"]["max_abs_diff"] == v.max_abs_diff


def test_keras_bn_int8_shrinks_and_folds_batch_norm(runs):
    report, _ = runs[("keras_bn", "int8")]
    assert report.size_ratio <= 0.3, f"{report.size_before} -> {report.size_after}"
    assert report.rules["fold_batch_norms"].count > 0 and report.rules["quantize_weights"].count > 0
    assert report.ops_after.get("Rsqrt", 0) == 0 and report.ops_after.get("Cast", 0) > 0
    assert report.verification.min_class_agreement >= 0.99
    assert 0 < report.verification.max_abs_diff < 0.1


def test_int8_outputs_load_in_tf2_and_tf1(runs):
    for model in MODELS:
        report, _ = runs[(model, "int8")]
        samples = load_samples(model)
        all2 = tf2_run_all(Path(report.output), samples)
        all1 = tf1_run_all(Path(report.output), samples)
        for key in samples:
            got1, got2 = all1[key], all2[key]
            assert set(got1) == set(got2)
            for k in got1:
                np.testing.assert_array_equal(got1[k], got2[k])


@pytest.mark.slow  # ~10 s: a second saved_model_cli process (test_exporter runs one on every test run)
def test_saved_model_cli_runs_optimized_estimator(runs, tmp_path):
    report, _ = runs[("estimator_dnn", "int8")]
    npz = SAMPLES / "estimator_dnn.npz"
    cli = Path(sys.executable).with_name("saved_model_cli")
    res = subprocess.run([str(cli), "run", "--dir", report.output, "--tag_set", "serve", "--signature_def", "predict",
                          "--inputs", f"examples={npz}[predict/examples]", "--outdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    ref = tf1_run(FIXTURES / "estimator_dnn", "predict", load_samples("estimator_dnn")["predict"])
    np.testing.assert_allclose(np.load(tmp_path / "probabilities.npy"), ref["probabilities"], rtol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "class_ids.npy"), ref["class_ids"])


def test_report_rules_progress_and_dict(runs):
    report, events = runs[("keras_bn", "int8")]
    d = report.to_dict()
    assert list(d["rules"]) == list(DEFAULT_PIPELINE)
    assert all(set(r) == {"count", "seconds", "nodes_added", "nodes_removed"} for r in d["rules"].values())
    assert d["rules"]["fold_batch_norms"]["nodes_removed"] > 0
    assert d["nodes"]["loaded"] > d["nodes"]["frozen"] > d["nodes"]["after"]
    assert {o["signature"] for o in d["verification"]["outputs"]} == {"serve", "serving_default"}
    json.dumps(d)  # plain JSON
    stages = [s for s, status in events if status == "done" and not s.startswith("rule:")]
    assert stages == ["load", "inputs", "freeze", "transform", "export", "verify"]
    assert [s for s, st in events if s.startswith("rule:") and st == "summary"][-1] == "rule:quantize_weights"
    assert ("rule:fold_batch_norms", "start") in events and ("rule:fold_batch_norms", "done") in events


def test_input_is_never_modified(runs, hashes_before):
    for model in MODELS:
        assert tree_hash(FIXTURES / model) == hashes_before[model], model


def test_existing_out_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("x")
    events: list[str] = []
    with pytest.raises(ExportError, match="--force"):
        optimize(FIXTURES / "tf2_lookup", out, progress=lambda s, st, i: events.append(s))
    assert events == ["load", "load"], "must stop right after loading"
    assert (out / "keep").read_text() == "x"


def test_failure_mid_export_leaves_no_output(tmp_path, monkeypatch):
    def boom(path, data):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic, "write_bytes", boom)
    with pytest.raises(ExportError, match="Input/output error"):
        optimize(FIXTURES / "tf2_lookup", tmp_path / "out", verify=False)
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_and_no_verify_and_pb_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("x")
    report = optimize(FIXTURES / "tf2_lookup", out, force=True, verify=False, quantize="float16")
    assert report.verification is None and report.ok
    assert not (out / "old").exists() and (out / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    pb = optimize(FIXTURES / "tf2_lookup", tmp_path / "lookup.pb", quantize="none")
    assert pb.ok and Path(pb.output).is_file() and (tmp_path / "lookup.pb.signatures.json").is_file()
    assert pb.verification.max_rel_diff <= 1e-5


def test_custom_transforms_replace_the_default_pipeline(tmp_path):
    report = optimize(FIXTURES / "tf2_lookup", tmp_path / "out", transforms="remove_identity strip_unused",
                      verify=False)
    assert list(report.rules) == ["remove_identity", "strip_unused"] and report.quantize == "custom"
    assert not report.lossy


def _main(argv, capsys):
    from graphxform.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_exit_1_when_float_pipeline_is_beyond_tolerance(tmp_path, capsys):
    out = tmp_path / "bn"
    code, stdout, stderr = _main(["optimize", str(FIXTURES / "keras_bn"), str(out), "--quantize", "none",
                                  "--rtol", "0", "--atol", "0", "--json"], capsys)
    assert code == 1
    data = json.loads(stdout)
    assert not data["ok"] and data["verification"]["max_abs_diff"] > 0
    assert "was written" in stderr and (out / "saved_model.pb").is_file()


def test_cli_refuses_a_servable_without_signatures_unless_asked(tmp_path, capsys):
    pb = FIXTURES / "tf1_frozen_bn.pb"
    code, _, err = _main(["optimize", str(pb), str(tmp_path / "none")], capsys)
    assert code == 2 and not (tmp_path / "none").exists()
    assert "would have no signatures" in err and "candidate inputs: input; candidate outputs: output" in err
    code, out, err = _main(["optimize", str(pb), str(tmp_path / "bare"), "--allow-no-signatures", "--json"], capsys)
    assert code == 0 and json.loads(out)["notes"] == ["the input has no signatures"]
    assert (tmp_path / "bare" / "saved_model.pb").is_file()
    code, _, err = _main(["transform", str(pb), str(tmp_path / "t"), "-t", "remove_identity"], capsys)
    assert code == 2 and "--input-names/--output-names" in err and not (tmp_path / "t").exists()
    code, _, _ = _main(["transform", str(pb), str(tmp_path / "t.pb"), "-t", "remove_identity"], capsys)
    assert code == 0  # a GraphDef file holds no signatures anyway


def test_cli_optimize_subprocess(tmp_path):
    out = tmp_path / "dnn_opt"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = Path(sys.executable).with_name("graphxform")
    res = subprocess.run([str(script), "optimize", str(FIXTURES / "estimator_dnn"),
                          str(out), "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(res.stdout)
    assert data["ok"] and data["quantize"] == "int8" and data["verification"]["inputs"] == "synthesized"
    assert data["signatures"] == ["classification", "predict", "serving_default"]
    assert data["size_after"] < data["size_before"]
    assert res.stderr == ""  # progress is for terminals: none in a pipe, none on stdout
    assert (out / "assets" / "words.txt").is_file()


def test_frozen_graph_def_input_with_names(tmp_path):
    """A frozen .pb (no signatures of its own) becomes a servable with a serving_default signature."""
    pb = FIXTURES / "tf1_frozen_bn.pb"
    report = optimize(pb, tmp_path / "bn", quantize="none", graph_inputs="input", graph_outputs="output",
                      inputs=SAMPLES / "tf1_frozen_bn.npz")
    assert report.ok and report.rules["fold_batch_norms"].count == 1
    assert report.verification.batch == {"serving_default": 8}
    x = np.load(SAMPLES / "tf1_frozen_bn.npz")["input:0"]
    got = tf2_run_all(tmp_path / "bn", {"serving_default": {"input": x}})["serving_default"]["output"]
    from conftest import run
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.ParseFromString(pb.read_bytes())
    np.testing.assert_allclose(got, run(gd, {"input:0": x}, ["output:0"])[0], rtol=1e-4, atol=1e-5)
    # Without names: no signature, so no SavedModel (nothing could call it) unless asked for explicitly.
    with pytest.raises(ExportError, match=r"no signatures.*--allow-no-signatures.*candidate inputs: input; "
                                          r"candidate outputs: output"):
        optimize(pb, tmp_path / "refused", quantize="none")
    assert not (tmp_path / "refused").exists()
    bare = optimize(pb, tmp_path / "bare", quantize="none", allow_no_signatures=True)
    assert bare.verification is None and bare.notes == ["the input has no signatures"]
    assert (tmp_path / "bare" / "saved_model.pb").is_file()


_NODE_LIST = """
import sys
from pathlib import Path
from tensorflow.core.protobuf import saved_model_pb2
from graphxform.jobs.optimize import optimize
out = Path(sys.argv[2])
optimize(Path(sys.argv[1]), out, verify=False)
sm = saved_model_pb2.SavedModel()
sm.ParseFromString((out / "saved_model.pb").read_bytes())
for n in sm.meta_graphs[0].graph_def.node:
    print(n.name, n.op, *n.input)
"""


def test_output_does_not_depend_on_string_hashing(tmp_path):
    # Inlining a tf.function iterates its control_ret (a protobuf map, whose order follows the process's
    # string hashing): the call's NoOp must list its control inputs in the same order in every process.
    lists, blobs = [], []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        res = subprocess.run([sys.executable, "-c", _NODE_LIST, str(FIXTURES / "module_tables"), str(out)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert res.returncode == 0, res.stderr[-2000:]
        lists.append(res.stdout)
        blobs.append((out / "saved_model.pb").read_bytes())
    assert lists[0].count("\n") > 10 and "^" in lists[0]
    assert lists[0] == lists[1]
    assert blobs[0] == blobs[1]
