"""`optimize --keep-variables`: variables stay in the checkpoint, restored by a TF1 saver; the output gives the
frozen path's outputs in TF Serving's C++ loader, `tf.saved_model.load` and the TF1 loader; int8 storage."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, SAMPLES
from tensorflow.core.protobuf import saved_model_pb2
from test_exporter import tree_hash

from graphxform.core.errors import ExportError
from graphxform.jobs.optimize import optimize
from graphxform.jobs.verify import verify
from graphxform.model import keep as keep_mod

#: TF1 Estimator (embedding gathers, hash tables from assets), Keras 3 export (conv, batch norm), a tf.Module
#: around a Keras model (object-graph binding, two signatures), a tf.Module with a vocabulary table and an
#: embedding, Keras LSTM/GRU (variables read inside While loops).
MODELS = ["estimator_dnn", "keras_bn", "module_keras", "tf2_lookup", "keras_rnn"]
LOADERS = {"c++", "tf2", "tf1"}


def saved_graph(path):
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    return sm.meta_graphs[0]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Each model optimized twice with the float pipeline: frozen, and with every resource variable kept."""
    base = tmp_path_factory.mktemp("keep")
    before = {m: tree_hash(FIXTURES / m) for m in MODELS}
    out = {}
    for m in MODELS:
        frozen = optimize(FIXTURES / m, base / f"{m}_frozen", quantize="none", inputs=SAMPLES / f"{m}.npz",
                          keep_variables=False)
        kept = optimize(FIXTURES / m, base / f"{m}_kept", quantize="none", inputs=SAMPLES / f"{m}.npz",
                        keep_variables=True, keep_min_bytes=0)
        out[m] = (frozen, kept)
    assert {m: tree_hash(FIXTURES / m) for m in MODELS} == before  # inputs untouched
    return base, out


@pytest.mark.parametrize("model", MODELS)
def test_kept_output_equals_frozen_output_in_every_loader(outputs, model):
    base, runs = outputs
    frozen, kept = runs[model]
    assert frozen.ok and kept.ok and not frozen.kept_variables
    assert kept.kept_variables and all(k["dtype"] == "float32" for k in kept.kept_variables)
    # the kept output, run by each of TensorFlow's loaders, against the frozen output
    rep = verify(base / f"{model}_frozen", base / f"{model}_kept", inputs=SAMPLES / f"{model}.npz")
    assert rep.ok, rep.failure_message()
    assert {r["loader"] for r in rep.loader_summary() if r["loaded"] and r["ok"]} == LOADERS
    assert rep.max_rel_diff <= 1e-5 and not rep.missing
    # ... and against the input, as optimize verified it
    assert {r["loader"] for r in kept.verification.loader_summary() if r["ok"]} == LOADERS


@pytest.mark.parametrize("model", MODELS)
def test_kept_variables_are_in_the_checkpoint_under_the_savers_keys(outputs, model):
    base, runs = outputs
    kept = runs[model][1]
    out = base / f"{model}_kept"
    mg = saved_graph(out)
    names = {k["name"] for k in kept.kept_variables}
    handles = {n.name: n for n in mg.graph_def.node if n.op == "VarHandleOp"}
    assert set(handles) == names  # only what a signature reads; nothing else of the input's state
    assert all(h.attr["shared_name"].s.decode() == n for n, h in handles.items())
    reader = tf.train.load_checkpoint(str(out / "variables" / "variables"))
    assert set(reader.get_variable_to_shape_map()) == names
    assert mg.saver_def.restore_op_name and mg.saver_def.filename_tensor_name
    restore = {n.name for n in mg.graph_def.node if n.op == "RestoreV2"}
    assert len(restore) == 1
    for k in kept.kept_variables:
        assert list(reader.get_variable_to_shape_map()[k["name"]]) == k["shape"]
    ops = {n.op for n in mg.graph_def.node}
    assert "ReadVariableOp" in ops or "ResourceGather" in ops or "While" in ops or "StatelessWhile" in ops


def test_int8_keeps_conv_and_dense_kernels_per_channel_and_small_variables_float(tmp_path):
    rep = optimize(FIXTURES / "keras_bn", tmp_path / "bn_int8", quantize="int8", inputs=SAMPLES / "keras_bn.npz",
                   keep_variables=True, keep_min_bytes=0)
    assert rep.ok and rep.verification.lossy
    stored = {k["name"]: k for k in rep.kept_variables}
    conv = next(n for n in stored if n.startswith("conv2/kernel"))
    assert stored[conv]["dtype"] == "int8" and conv + "/quant_scale" not in stored  # per channel: a constant
    assert all(k["dtype"] == "float32" for n, k in stored.items() if len(k["shape"]) < 2)  # biases, batch norm
    nodes = {n.name: n for n in saved_graph(tmp_path / "bn_int8").graph_def.node}
    reads = [n for n in nodes.values() if n.op == "ReadVariableOp" and n.input[0] == conv
             and not n.name.startswith("save/")]  # (the saver's own read, for SaveV2)
    assert reads and all(n.attr["dtype"].type == tf.int8.as_datatype_enum for n in reads)
    for r in reads:
        mul = nodes[r.name.rsplit("/", 1)[0]]
        assert mul.op == "Mul" and nodes[mul.input[0]].op == "Cast" and nodes[mul.input[1]].op == "Const"
        assert list(tf.make_ndarray(nodes[mul.input[1]].attr["value"].tensor).shape) == [1, 1, 1, 160]
    assert {r["loader"] for r in rep.verification.loader_summary() if r["ok"]} == LOADERS
    assert rep.verification.min_class_agreement == 1.0


def test_int8_storage_of_kept_tables_and_kernels(tmp_path, monkeypatch):
    monkeypatch.setattr(keep_mod, "QUANTIZE_MIN_ELEMENTS", 100)
    out = tmp_path / "dnn_int8"
    rep = optimize(FIXTURES / "estimator_dnn", out, quantize="int8", inputs=SAMPLES / "estimator_dnn.npz",
                   keep_variables=True, keep_min_bytes=0)
    assert rep.ok, rep.verification.failure_message()
    stored = {k["name"]: k for k in rep.kept_variables}
    emb = "dnn/input_from_feature_columns/input_layer/word_embedding/embedding_weights"
    kernel = "dnn/hiddenlayer_1/kernel"
    assert stored[emb]["dtype"] == "int8" and stored[emb + "/quant_scale"]["shape"] == [22, 1]
    assert stored[kernel]["dtype"] == "int8" and kernel + "/quant_scale" not in stored  # a constant per channel
    assert stored["dnn/hiddenlayer_1/bias"]["dtype"] == "float32"  # rank 1: stays float
    nodes = {n.name: n for n in saved_graph(out).graph_def.node}
    assert nodes[emb].attr["dtype"].type == tf.int8.as_datatype_enum
    gathers = [n for n in nodes.values() if n.op == "ResourceGather" and n.input[0] == emb]
    assert len(gathers) == 1 and gathers[0].attr["dtype"].type == tf.int8.as_datatype_enum
    mul = nodes[gathers[0].name.rsplit("/", 1)[0]]  # the gather's old name: Mul(Cast(gather_int8), gather(scale))
    assert mul.op == "Mul" and nodes[mul.input[0]].op == "Cast"
    assert nodes[mul.input[1]].op == "ResourceGather" and nodes[mul.input[1]].input[0] == emb + "/quant_scale"
    reader = tf.train.load_checkpoint(str(out / "variables" / "variables"))
    assert reader.get_variable_to_dtype_map()[emb] == tf.int8
    q = reader.get_tensor(emb).astype(np.float32) * reader.get_tensor(emb + "/quant_scale")
    orig = tf.train.load_checkpoint(str(FIXTURES / "estimator_dnn" / "variables" / "variables")).get_tensor(emb)
    assert np.abs(q - orig).max() <= np.abs(orig).max(axis=1, keepdims=True).max() / 127 * 0.5 + 1e-7
    assert {r["loader"] for r in rep.verification.loader_summary() if r["ok"]} == LOADERS
    assert rep.verification.min_class_agreement == 1.0


def test_small_variables_are_frozen_and_the_automatic_choice(tmp_path, monkeypatch):
    rep = optimize(FIXTURES / "tf2_lookup", tmp_path / "none_big_enough", quantize="none",
                   inputs=SAMPLES / "tf2_lookup.npz", keep_variables=True)  # default bar: 1 MiB
    assert rep.ok and not rep.kept_variables and any("all frozen" in n for n in rep.notes)
    assert not (tmp_path / "none_big_enough" / "variables" / "variables.index").exists()
    # default: keep only when the frozen graph would pass protobuf's limit (here made small)
    monkeypatch.setattr(keep_mod, "AUTO_KEEP_BYTES", 200)
    auto = optimize(FIXTURES / "tf2_lookup", tmp_path / "auto", quantize="none", inputs=SAMPLES / "tf2_lookup.npz",
                    keep_min_bytes=0)
    assert auto.ok and {k["name"] for k in auto.kept_variables} == {"embedding", "kernel", "bias"}
    assert any("2 GiB" in n for n in auto.notes)
    never = optimize(FIXTURES / "tf2_lookup", tmp_path / "never", quantize="none", inputs=SAMPLES / "tf2_lookup.npz",
                     keep_variables=False)
    assert never.ok and not never.kept_variables
    with pytest.raises(ExportError, match="cannot hold variables"):
        optimize(FIXTURES / "tf2_lookup", tmp_path / "out.pb", keep_variables=True, keep_min_bytes=0)
    assert not (tmp_path / "out.pb").exists()
