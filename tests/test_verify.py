"""verify (comparison, runners, inputs) and synth (input synthesis), plus the `graphxform verify` command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FIXTURES, SAMPLES, load_samples
from tensorflow.core.framework import node_def_pb2

import graphxform
from graphxform.core.errors import VerificationError
from graphxform.jobs.compare import compare_arrays
from graphxform.jobs.verify import verify
from graphxform.model import export as exporter
from graphxform.tf import synth

# --------------------------------------------------------------------------- compare_arrays


def test_equal_and_within_tolerance():
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    c = compare_arrays("s", "y", a, a.copy())
    assert c.within_tolerance and c.max_abs_diff == 0 and c.max_rel_diff == 0 and c.mismatches == 0
    c = compare_arrays("s", "y", a, a * (1 + 5e-6))
    assert c.within_tolerance and 0 < c.max_rel_diff <= 5.1e-6


def test_beyond_tolerance_counts_mismatches():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 2.001, 3.0])
    c = compare_arrays("s", "y", a, b)
    assert not c.within_tolerance and c.mismatches == 1
    assert c.max_abs_diff == pytest.approx(1e-3) and c.max_rel_diff == pytest.approx(1e-3 / 3, rel=1e-3)
    assert compare_arrays("s", "y", a, b, rtol=1e-3).within_tolerance
    assert not compare_arrays("s", "y", a, b, rtol=3e-4, atol=0).within_tolerance


def test_relative_diff_is_relative_to_the_output_scale():
    # max|a - b| / (max|b| + atol): an element near zero is judged by the output's magnitude
    c = compare_arrays("s", "y", np.array([0.0, 1.0]), np.array([1e-9, 1.0]))
    assert c.within_tolerance and c.max_rel_diff == pytest.approx(1e-9 / (1 + 1e-6))
    ref = np.array([1e-3, 10.0], np.float32)
    c = compare_arrays("s", "y", ref, ref + np.array([2e-6, 0], np.float32))  # 2e-6 <= 1e-6 + 1e-5 * 10
    assert c.within_tolerance and c.mismatches == 0
    c = compare_arrays("s", "y", ref, ref + np.array([2e-4, 0], np.float32))  # 2e-4 > 1e-6 + 1e-5 * 10
    assert not c.within_tolerance and c.mismatches == 1


def test_shape_dtype_and_nan_are_broken_even_when_lossy():
    a = np.ones((2, 3), np.float32)
    assert compare_arrays("s", "y", a, np.ones((3, 2), np.float32), lossy=True).broken
    assert compare_arrays("s", "y", a, np.ones((2, 3), object), lossy=True).broken
    b = a.copy()
    b[0, 0] = np.nan
    c = compare_arrays("s", "y", a, b, lossy=True)
    assert c.broken and "NaN" in c.note
    both = np.array([np.nan, 1.0])
    assert compare_arrays("s", "y", both, both.copy()).within_tolerance


def test_strings_compared_exactly_with_row_agreement():
    a = np.array([[b"x"], [b"y"], [b"z"], [b"w"]], object)
    b = a.copy()
    b[1, 0] = b"q"
    c = compare_arrays("s", "classes", a, b)
    assert not c.within_tolerance and c.mismatches == 1 and c.class_agreement == 0.75
    assert not compare_arrays("s", "classes", a, b, lossy=True).broken


def test_class_agreement_and_lossy_mode():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(100, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    noisy = probs + rng.normal(scale=1e-3, size=probs.shape)
    # "output_0" is recognised as probabilities (rows sum to 1)
    c = compare_arrays("s", "output_0", probs, noisy, lossy=True)
    assert not c.within_tolerance and not c.broken
    assert 0.9 < c.class_agreement <= 1.0
    flipped = probs[:, ::-1].copy()
    c = compare_arrays("s", "probabilities", probs, flipped, lossy=True)
    assert c.broken and c.class_agreement < 0.5
    # a float output that is not a classifier output gets no agreement figure
    assert compare_arrays("s", "embedding", logits, logits).class_agreement is None
    # binary classifier with one logit column: sign agreement
    c = compare_arrays("s", "logits", np.array([[1.0], [-1.0]]), np.array([[0.5], [0.2]]), lossy=True)
    assert c.class_agreement == 0.5


def test_lossy_mode_flags_unrelated_outputs():
    a = np.linspace(1, 2, 50)
    c = compare_arrays("s", "y", a, -a, lossy=True)
    assert c.broken and "L2" in c.note
    assert not compare_arrays("s", "y", a, a * 1.01, lossy=True).broken


# --------------------------------------------------------------------------- synth


@pytest.fixture(scope="module")
def dnn():
    return graphxform.load(FIXTURES / "estimator_dnn")


def test_example_features_of_estimator(dnn):
    feats = {f.key: f for f in synth.example_features(dnn, "input_example_tensor:0")}
    assert set(feats) == {"age", "word", "color"}
    assert feats["age"].kind == "dense" and feats["age"].shape == [1]
    assert feats["word"].kind == "sparse" and feats["color"].kind == "sparse"
    words = (FIXTURES / "estimator_dnn" / "assets" / "words.txt").read_bytes().splitlines()
    assert feats["word"].vocabulary == words[:20]
    assert feats["color"].vocabulary == [b"red", b"green", b"blue", b"yellow"]


def test_synthesized_examples_parse_and_hit_the_vocabulary(dnn):
    import tensorflow as tf

    inputs = synth.synthesize_inputs(dnn)
    assert set(inputs) == set(dnn.signatures)
    ex = inputs["predict"]["examples"]
    assert ex.shape == (synth.DEFAULT_BATCH,)
    parsed = tf.io.parse_example(ex, {"age": tf.io.FixedLenFeature([1], tf.float32),
                                      "word": tf.io.VarLenFeature(tf.string),
                                      "color": tf.io.VarLenFeature(tf.string)})
    assert parsed["age"].shape == (4, 1)
    vocab = set((FIXTURES / "estimator_dnn" / "assets" / "words.txt").read_bytes().splitlines())
    words = set(parsed["word"].values.numpy().tolist())
    assert words & vocab, "no synthesized word is in the vocabulary"
    assert words - vocab, "no out-of-vocabulary word"
    again = synth.synthesize_inputs(dnn)
    assert list(again["predict"]["examples"]) == list(ex), "synthesis must be deterministic"
    other = synth.synthesize_inputs(dnn, seed=1)
    assert list(other["predict"]["examples"]) != list(ex)


def test_synthesized_lookup_tokens_and_numeric_shapes():
    lookup = graphxform.load(FIXTURES / "tf2_lookup")
    ins = synth.synthesize_inputs(lookup)
    tokens = set((FIXTURES / "tf2_lookup" / "assets" / "tokens.txt").read_bytes().splitlines())
    got = set(ins["serving_default"]["tokens"].tolist()) | set(ins["score"]["tokens"].tolist())
    assert got & tokens and got - tokens
    assert ins["serving_default"]["weight"].dtype == np.float32
    assert ins["serving_default"]["weight"].shape == ins["serving_default"]["tokens"].shape == (4,)
    keras = graphxform.load(FIXTURES / "keras_bn")
    ins = synth.synthesize_inputs(keras, batch=2)
    assert ins["serve"]["image"].shape == (2, 32, 32, 3) and ins["serve"]["image"].dtype == np.float32


def test_string_input_without_parse_op_is_not_an_example_input(dnn):
    lookup = graphxform.load(FIXTURES / "tf2_lookup")
    spec = lookup.signatures["score"].inputs["tokens"]
    assert not synth.is_example_input(lookup, spec.name)
    assert synth.is_example_input(dnn, "input_example_tensor:0")


# --------------------------------------------------------------------------- verify end to end


@pytest.fixture(scope="module")
def dnn_copy(tmp_path_factory):
    """estimator_dnn frozen and written back: must match the original exactly."""
    model = graphxform.load(FIXTURES / "estimator_dnn")
    model.freeze()
    return exporter.export(model, tmp_path_factory.mktemp("v") / "dnn")


@pytest.fixture(scope="module")
def dnn_broken(tmp_path_factory):
    """estimator_dnn with the logits bias changed: a wrong model."""
    model = graphxform.load(FIXTURES / "estimator_dnn")
    model.freeze()
    g = model.graph
    bias_add = g.node("dnn/logits/BiasAdd")
    bias = g.node(bias_add.input[1])
    while bias.op == "Identity":
        bias = g.node(bias.input[0])
    assert bias.op == "Const"
    value = g.const_value(bias.name) + np.array([0.0, 3.0, 0.0], np.float32)
    new = node_def_pb2.NodeDef()
    new.CopyFrom(bias)
    import tensorflow as tf

    new.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    g.update_node(new)
    return exporter.export(model, tmp_path_factory.mktemp("v") / "broken")


def test_verify_identical_models_with_synthesized_inputs(dnn_copy):
    report = verify(FIXTURES / "estimator_dnn", dnn_copy)
    assert report.ok and report.inputs_source == "synthesized"
    assert {c.signature for c in report.outputs} == {"predict", "classification", "serving_default"}
    assert report.max_abs_diff == 0 and report.min_class_agreement == 1.0
    assert report.batch == {"predict": 4, "classification": 4, "serving_default": 4}


def test_verify_with_npz_tfrecord_and_signature_filter(dnn_copy, tmp_path):
    r = verify(FIXTURES / "estimator_dnn", dnn_copy, inputs=SAMPLES / "estimator_dnn.npz")
    assert r.ok and r.inputs_source == "npz" and set(r.batch.values()) == {8}
    r = verify(FIXTURES / "estimator_dnn", dnn_copy, examples=SAMPLES / "estimator_dnn.tfrecord",
               signatures="predict")
    assert r.ok and r.inputs_source == "tfrecord" and r.batch == {"predict": 8}
    assert {c.output for c in r.outputs} == {"all_class_ids", "all_classes", "class_ids", "classes", "logits",
                                             "probabilities"}
    # plain "<input_key>" keys apply to every signature having that input
    ex = load_samples("estimator_dnn")["predict"]["examples"][:3]
    np.savez(tmp_path / "plain.npz", inputs=ex, examples=ex)
    r = verify(FIXTURES / "estimator_dnn", dnn_copy, inputs=tmp_path / "plain.npz")
    assert r.ok and r.batch == {"predict": 3, "classification": 3, "serving_default": 3}


def test_verify_detects_a_wrong_model(dnn_broken):
    report = verify(FIXTURES / "estimator_dnn", dnn_broken, inputs=SAMPLES / "estimator_dnn.npz")
    assert not report.ok
    failed = {(c.signature, c.output) for c in report.failures}
    assert ("predict", "logits") in failed and ("predict", "probabilities") in failed
    assert ("predict", "all_classes") not in failed  # constant outputs still agree
    logits = next(c for c in report.outputs if (c.signature, c.output) == ("predict", "logits"))
    assert logits.max_abs_diff == pytest.approx(3.0, rel=1e-5)
    with pytest.raises(VerificationError, match="predict/logits"):
        report.raise_for_failure()


def test_verify_reports_missing_signatures_and_changed_shapes():
    report = verify(FIXTURES / "estimator_linear", FIXTURES / "estimator_dnn")
    assert not report.ok
    dnn = FIXTURES / "estimator_dnn"
    assert report.missing == [f"signature 'regression' is missing in {dnn}",
                              f"output predict/logistic is missing in {dnn}"]
    scores = next(c for c in report.outputs if (c.signature, c.output) == ("classification", "scores"))
    assert scores.broken and "shape" in scores.note  # 2 classes vs 3


def _main(argv, capsys):
    from graphxform.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_verify_json_pass_and_fail(dnn_copy, dnn_broken, capsys):
    code, out, _ = _main(["verify", str(FIXTURES / "estimator_dnn"), str(dnn_copy), "--json",
                          "--inputs", str(SAMPLES / "estimator_dnn.npz")], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["ok"] and data["mode"] == "exact" and data["inputs"] == "npz"
    assert {o["signature"] for o in data["outputs"]} == {"predict", "classification", "serving_default"}
    code, out, err = _main(["verify", str(FIXTURES / "estimator_dnn"), str(dnn_broken), "--json",
                            "--signature", "predict"], capsys)
    assert code == 1
    assert not json.loads(out)["ok"] and "predict/logits" in err


def test_cli_verify_table_output(dnn_copy, capsys):
    code, out, _ = _main(["verify", str(FIXTURES / "estimator_dnn"), str(dnn_copy), "--signature",
                          "classification"], capsys)
    assert code == 0
    assert "PASS" in out and "scores" in out and "predict" not in out


def test_verify_refuses_a_reference_without_signatures():
    from graphxform.core.errors import SignatureError

    pb = FIXTURES / "tf1_frozen_bn.pb"
    with pytest.raises(SignatureError, match="no signatures"):
        verify(pb, pb)
    model = graphxform.load(pb, inputs=["input"], outputs=["output"])
    report = verify(model, model, inputs=SAMPLES / "tf1_frozen_bn.npz")  # tensor-name keys ("input:0")
    assert report.ok and report.batch == {"serving_default": 8} and report.max_abs_diff == 0


# --------------------------------------------------------------------------- every loader of TensorFlow
def _patched_copy(src, dst, patch):
    """A copy of SavedModel ``src`` whose ``saved_model.pb`` went through ``patch(meta_graph)``."""
    import shutil

    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(src, dst)
    sm = saved_model_pb2.SavedModel.FromString((dst / "saved_model.pb").read_bytes())
    patch(sm.meta_graphs[0])
    (dst / "saved_model.pb").write_bytes(sm.SerializeToString())
    return dst


def test_verify_runs_every_signature_through_every_loader(dnn_copy):
    report = verify(FIXTURES / "estimator_dnn", dnn_copy, inputs=SAMPLES / "estimator_dnn.npz")
    assert report.ok
    assert [(r.key, r.loaded, r.error) for r in report.loaders] == [("c++", True, None), ("tf2", True, None),
                                                                  ("tf1", True, None)]
    per_loader = {k: {(c.signature, c.output) for c in report.outputs if c.loader == k} for k in ("c++", "tf2", "tf1")}
    assert per_loader["c++"] == per_loader["tf2"] == per_loader["tf1"]
    assert len(per_loader["c++"]) == 10 and len(report.outputs) == 30
    rows = report.loader_summary()
    assert [r["outputs_ok"] for r in rows] == [10, 10, 10] and all(r["max_abs_diff"] == 0 for r in rows)
    only = verify(FIXTURES / "estimator_dnn", dnn_copy, inputs=SAMPLES / "estimator_dnn.npz", loaders=["c++"])
    assert [r.key for r in only.loaders] == ["c++"] and {c.loader for c in only.outputs} == {"c++"}


def test_a_model_the_cpp_loader_refuses_fails_verification_with_tfs_message(dnn_copy, tmp_path, capsys):
    """Python's loaders run a MatMul whose transpose_b AttrValue is empty; TF Serving's loader refuses it."""
    def clear(mg):
        node = next(n for n in mg.graph_def.node if n.op == "MatMul")
        node.attr["transpose_b"].Clear()

    broken = _patched_copy(dnn_copy, tmp_path / "broken", clear)
    report = verify(FIXTURES / "estimator_dnn", broken, inputs=SAMPLES / "estimator_dnn.npz")
    assert not report.ok
    by_key = {r.key: r for r in report.loaders}
    assert not by_key["c++"].loaded and by_key["tf2"].loaded and by_key["tf1"].loaded
    assert "AttrValue missing value with expected type 'bool' for attr 'transpose_b'" in by_key["c++"].error
    # the offending node: named by graphxform's check of the nodes before the loader runs (TensorFlow, with its
    # oneDNN rewrites on, would abort on it: tests/test_onednn.py), in TensorFlow's words otherwise
    assert "node 'dnn/hiddenlayer_0/MatMul' (MatMul)" in by_key["c++"].error
    assert "LoadSavedModel (C++, TF Serving) failed" in report.failure_message()
    assert {c.loader for c in report.outputs} == {"tf2", "tf1"} and not report.failures
    code, out, err = _main(["verify", str(FIXTURES / "estimator_dnn"), str(broken), "--json"], capsys)
    assert code == 1 and "transpose_b" in err
    data = json.loads(out)
    assert [(r["loader"], r["loaded"]) for r in data["loaders"]] == [("c++", False), ("tf2", True), ("tf1", True)]
    # the tables, then TensorFlow's message once, whole, in the error line (not also cut in the report)
    code, out, err = _main(["verify", str(FIXTURES / "estimator_dnn"), str(broken)], capsys)
    assert code == 1 and "FAIL" in out
    assert (out + err).count("AttrValue missing value with expected type 'bool'") == 1
    assert "AttrValue missing value with expected type 'bool' for attr 'transpose_b'" in err.splitlines()[-1]


def test_an_init_op_signature_is_an_extra_signature(dnn_copy, tmp_path):
    """tf.saved_model.load lists a __saved_model_init_op signature (and calling it can fail): not the input's."""
    def add_init_signature(mg):
        (init,) = mg.collection_def["saved_model_main_op"].node_list.value
        mg.signature_def["__saved_model_init_op"].outputs["__saved_model_init_op"].name = init

    extra = _patched_copy(dnn_copy, tmp_path / "extra", add_init_signature)
    report = verify(FIXTURES / "estimator_dnn", extra, signatures="predict", loaders=["tf2"])
    assert not report.ok and not report.failures
    assert report.extra == [f"tf.saved_model.load lists signature '__saved_model_init_op', which "
                            f"{FIXTURES / 'estimator_dnn'} does not have"]


def test_stale_function_annotations_fail_in_tf_saved_model_load_only(tmp_path):
    """A frozen loop body still declaring its former handle a scalar: only tf.saved_model.load catches it."""
    model = graphxform.load(FIXTURES / "tf2_control_flow")
    model.freeze()
    good = exporter.export(model, tmp_path / "good")

    def stale(mg):
        for f in mg.graph_def.library.function:
            if f.signature.name.startswith("while_body") and "_input_shapes" in f.attr:
                for s in f.attr["_input_shapes"].list.shape:
                    if s.unknown_rank:
                        s.Clear()  # scalar, as the resource handle was

    bad = _patched_copy(good, tmp_path / "bad", stale)
    report = verify(FIXTURES / "tf2_control_flow", bad, inputs=SAMPLES / "tf2_control_flow.npz")
    by_key = {r.key: r for r in report.loaders}
    assert not report.ok and by_key["tf2"].error and "Shape must be rank 2 but is rank 0" in by_key["tf2"].error
    assert by_key["c++"].error is None and by_key["tf1"].error is None
    assert verify(FIXTURES / "tf2_control_flow", good, inputs=SAMPLES / "tf2_control_flow.npz").ok


def test_graph_def_output_runs_through_the_graph_def_loaders(tmp_path, capsys):
    """A .pb is no SavedModel: its GraphDef runs in the C++ session, wrap_function and import_graph_def, with
    the signatures, init op and assets its sidecar names."""
    model = graphxform.load(FIXTURES / "estimator_dnn")
    model.freeze()
    pb = exporter.export(model, tmp_path / "dnn.pb")
    report = verify(FIXTURES / "estimator_dnn", pb, inputs=SAMPLES / "estimator_dnn.npz")
    assert report.ok, report.failure_message()
    assert [(r.key, r.description) for r in report.loaders] == [
        ("c++", "Session::Create (C++)"), ("tf2", "wrap_function(import_graph_def)"),
        ("tf1", "import_graph_def + Session")]
    assert len(report.outputs) == 30 and report.max_abs_diff == 0  # the vocabulary table was initialized
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef.FromString(pb.read_bytes())
    next(n for n in gd.node if n.op == "MatMul").attr["transpose_b"].Clear()
    pb.write_bytes(gd.SerializeToString())
    report = verify(FIXTURES / "estimator_dnn", pb, signatures="predict")
    by_key = {r.key: r for r in report.loaders}
    assert not report.ok and "transpose_b" in by_key["c++"].error and by_key["tf1"].error is None
    assert (tmp_path / "dnn.pb.signatures.json").is_file()


def test_a_tf2_savedmodel_verifies_against_itself_in_every_loader():
    """A TF2 export keeps its init op as a __saved_model_init_op signature_def entry: TF Serving runs it and
    tf.saved_model.load does not list it, so it is no extra signature."""
    path = FIXTURES / "tf2_lookup"
    report = verify(path, path, inputs=SAMPLES / "tf2_lookup.npz")
    assert report.ok and not report.extra and report.max_abs_diff == 0
    assert all(sorted(r.signatures) == ["score", "serving_default"] for r in report.loaders)
