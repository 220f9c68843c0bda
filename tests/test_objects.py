"""TF2 object-graph binding: variables and checkpointed tables frozen to the values tf.saved_model.load gives them."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import fixture_path, load_samples
from tensorflow.core.protobuf import saved_model_pb2

import graphxform
from graphxform.core.errors import ModelLoadError


def _reader(path):
    import tensorflow as tf

    return tf.train.load_checkpoint(str(path / "variables" / "variables"))


def test_two_signatures_bind_the_same_variables_by_object_path():
    path = fixture_path("module_keras")
    m = graphxform.load(path)
    b = m.objects
    assert b is not None
    beta = b.object_of("bn1/beta")
    assert beta is not None and beta.kind == "variable"
    assert beta.path == "model/_operations/2/beta"
    assert b.variable_key("bn1/beta") == "model/_operations/2/beta/.ATTRIBUTES/VARIABLE_VALUE"
    # Both signature wrappers capture the very same graph node for each variable.
    assert len(beta.functions) == 2 and beta.graph_nodes == ["bn1/beta"]
    variables = [n.name for n in m.graph.nodes_by_op("VarHandleOp") if b.variable_key(n.name)]
    keys = _reader(path).get_variable_to_shape_map()
    assert len(variables) == 14 and all(b.variable_key(v) in keys for v in variables)
    # Graph names are not checkpoint keys: a name-based restore cannot find them.
    assert not any(v in keys for v in variables)
    assert sorted(b.unservable_nodes()) == sorted(variables)


@pytest.mark.parametrize("name,unservable", [("keras3_saved_model", True), ("module_keras", True),
                                             ("keras3_text", True), ("keras_bn", False), ("module_variables", False),
                                             ("tf2_lookup", False), ("module_tables", False)])
def test_unservable_nodes(name, unservable):
    m = graphxform.load(fixture_path(name))
    assert bool(m.objects.unservable_nodes()) is unservable


def test_tf1_savedmodel_has_no_object_binding():
    assert graphxform.load(fixture_path("estimator_dnn")).objects is None


def test_freeze_reads_each_variable_at_its_object_path():
    path = fixture_path("keras3_saved_model")
    m = graphxform.load(path)
    keys = {n: m.objects.variable_key(n) for n in m.objects.by_node if m.objects.variable_key(n)}
    assert keys
    m.freeze()
    reader = _reader(path)
    for node, key in keys.items():
        if node in m.graph:
            np.testing.assert_array_equal(m.graph.const_value(node), reader.get_tensor(key), err_msg=node)
    assert not m.graph.nodes_by_op("VarHandleOp", "ReadVariableOp", "RestoreV2", "SaveV2")


def test_frozen_outputs_match_tf_saved_model_load():
    from conftest import signature_outputs

    from graphxform.tf.runners import TF2SavedModelRunner

    path = fixture_path("module_keras")
    samples = load_samples("module_keras")
    ref = TF2SavedModelRunner(path)
    want = {k: ref.run(k, v) for k, v in samples.items()}
    ref.close()
    got = signature_outputs(graphxform.load(path).freeze(), "module_keras")
    for key in want:
        for out, value in want[key].items():
            np.testing.assert_allclose(got[key][out], value, rtol=1e-6, atol=1e-6)


def test_checkpoint_value_of_the_wrong_shape_is_refused(tmp_path):
    """An object graph binding a variable to an object that does not fit it (kernel and bias swapped in every
    function's bound_inputs): refused when the model loads, in one line naming the variable, the object and both
    shapes — not a wrong model. (A checkpoint value of the wrong shape behind a sound object graph is refused
    when freezing: the corpus case ``ckptval_wrong_shape_*`` of tests/broken_inputs.py.)"""
    src = fixture_path("keras3_saved_model")
    out = tmp_path / "m"
    shutil.copytree(src, out)
    sm = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    og = sm.meta_graphs[0].object_graph_def
    m = graphxform.load(src)
    kernel = m.objects.object_of("fc/kernel").node_id
    bias = m.objects.object_of("fc/bias").node_id
    for cf in og.concrete_functions.values():
        ids = list(cf.bound_inputs)
        if kernel in ids and bias in ids:
            i, j = ids.index(kernel), ids.index(bias)
            ids[i], ids[j] = ids[j], ids[i]
            del cf.bound_inputs[:]
            cf.bound_inputs.extend(ids)
    (out / "saved_model.pb").write_bytes(sm.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"variable 'fc/(kernel|bias)': the SavedVariable '[^']+' has shape "
                                             r"\[\d+(, \d+)?\], the graph's VarHandleOp \[\d+(, \d+)?\]"):
        graphxform.load(out)


# --------------------------------------------------------------------------- tables
WORDS = [b"apple", b"cherry", b"zucchini", b"date", b"", b"Fig", b"elder", b"banana"]
IDS = [3, 8, 21, 0, 4, 5, 13, 99]


def test_checkpointed_tables_become_constant_filled_tables():
    from graphxform.tf.session import run_signature

    m = graphxform.load(fixture_path("module_tables")).freeze()
    g = m.graph
    assert not g.nodes_by_op("RestoreV2", "SaveV2", "MergeV2Checkpoints")
    mutable = {n.name for n in g.nodes_by_op("MutableHashTableV2", "MutableHashTableOfTensorsV2",
                                             "MutableDenseHashTableV2")}
    fills = [g.node(t) for t in m.table_initializers if g.node(t).input and g.node(t).input[0] in mutable]
    assert sorted(n.input[0] for n in fills) == sorted(mutable) and len(mutable) == 3
    assert all(g.node(n.input[1]).op == "Const" and g.node(n.input[2]).op == "Const" for n in fills)
    dense = next(n for n in fills if n.op == "LookupTableInsertV2")
    # The 16 buckets of the dense table: 4 entries kept (8 was removed; empty and deleted buckets dropped).
    assert sorted(g.const_value(dense.input[1]).tolist()) == [3, 5, 13, 21]
    out = run_signature(m, "serving_default", {"words": np.array(WORDS, dtype=object), "ids": np.array(IDS)})
    assert out["counts"].tolist() == [11, 33, -1, 44, -1, -1, -1, 22]
    np.testing.assert_allclose(out["dense"], [0.3, -0.5, 2.1, -0.5, -0.5, 0.5, 1.3, -0.5], rtol=1e-7)
    assert out["static"].tolist() == [100, 300, 0, 0, 0, 0, 500, 0]
    vocab = out["vocab_id"].tolist()
    assert [vocab[i] for i in (0, 1, 3, 6, 7)] == [0, 2, 3, 4, 1]
    assert all(v >= 6 for v in (vocab[2], vocab[4], vocab[5]))  # OOV buckets 6, 7
    assert out["vectors"][2].tolist() == [-1.0, -2.0] and out["vectors"][0].tolist() == [-1.0, -2.0]
    assert int(out["size"]) == 4


def test_keras_text_vectorization_state_table_is_dropped():
    """TextVectorization keeps its adapt() counts in a MutableHashTable the signature never reads: the saver
    restores it, nothing serves it; freezing drops it instead of failing on its restore."""
    m = graphxform.load(fixture_path("keras3_text"))
    assert m.graph.nodes_by_op("MutableHashTableV2")
    m.freeze()
    assert not m.graph.nodes_by_op("MutableHashTableV2", "RestoreV2")


def test_tf1_mutable_table_restored_by_the_saver(tmp_path):
    """Without an object graph (TF1 SavedModel), a table the saver fills is read back after running its restore."""
    import tensorflow as tf

    from graphxform.jobs.optimize import optimize

    v1 = tf.compat.v1
    export = tmp_path / "tf1_table"
    g = tf.Graph()
    with g.as_default():
        table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=-7, name="counts")
        fill = table.insert(tf.constant(["a", "b", "c"]), tf.constant([1, 2, 3], tf.int64))
        keys = v1.placeholder(tf.string, [None], name="keys")
        scale = v1.get_variable("scale", initializer=tf.constant(10, tf.int64), use_resource=True)
        out = tf.identity(table.lookup(keys) * scale, name="out")
        with v1.Session(graph=g) as sess:
            sess.run([v1.global_variables_initializer(), fill])
            builder = v1.saved_model.Builder(str(export))
            sig = v1.saved_model.predict_signature_def({"keys": keys}, {"out": out})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig},
                                                 saver=v1.train.Saver())
            builder.save()
    m = graphxform.load(export)
    assert m.objects is None and m.variables is not None
    report = optimize(export, tmp_path / "out", quantize="none",
                      inputs={"keys": np.array([b"a", b"c", b"zz", b""], dtype=object)})
    assert report.ok, report.verification.failure_message()
    from graphxform.tf.runners import SavedModelRunner

    r = SavedModelRunner(tmp_path / "out")
    assert r.run("serving_default", {"keys": np.array([b"b", b"q"], dtype=object)})["out"].tolist() == [20, -70]
    r.close()


# --------------------------------------------------------------------------- inspect, verify, op libraries
def test_inspect_shows_object_paths():
    from graphxform.inspect.summary import summarize

    s = summarize(graphxform.load(fixture_path("module_keras")))
    rec = {o["node"]: o for o in s["objects"]}
    assert rec["bn1/beta"]["object"] == "model/_operations/2/beta"
    assert rec["bn1/beta"]["checkpoint_key"] == "model/_operations/2/beta/.ATTRIBUTES/VARIABLE_VALUE"
    assert rec["bn1/beta"]["restored_by_saver"] is False
    assert "bn1/beta" in s["bound_only_by_object_graph"]
    t = summarize(graphxform.load(fixture_path("module_tables")))
    tables = {r["name"]: r for r in t["tables"]}
    assert {r.get("object") for r in tables.values()} >= {"counts", "vectors", "dense", "vocab", "static"}
    assert t["bound_only_by_object_graph"] == []
    assert summarize(graphxform.load(fixture_path("estimator_dnn")))["bound_only_by_object_graph"] is None


def test_inspect_cli_prints_object_paths():
    from click.testing import CliRunner

    from graphxform.cli import cli

    res = CliRunner().invoke(cli, ["inspect", str(fixture_path("keras3_saved_model"))], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "Variables and tables by object path" in res.output
    assert "bn1/beta" in res.output and "does not" in res.output
    assert "Not servable as it is" in res.output
    res = CliRunner().invoke(cli, ["inspect", str(fixture_path("estimator_dnn"))], terminal_width=200)
    assert "object path" not in res.output and "Not servable" not in res.output


def test_verify_runs_object_graph_inputs_through_tf_saved_model_load():
    from graphxform.jobs.verify import open_runner
    from graphxform.tf.runners import SavedModelRunner, TF2SavedModelRunner

    r = open_runner(fixture_path("keras3_saved_model"))
    assert isinstance(r, TF2SavedModelRunner)
    r.close()
    r = open_runner(fixture_path("keras_bn"))
    assert isinstance(r, SavedModelRunner)
    r.close()


def test_op_library_lookup():
    from graphxform.core.oplibs import ensure_ops, library_for

    assert library_for("TFText>FastWordpieceTokenizeWithOffsets").package == "tensorflow-text"
    assert library_for("WhitespaceTokenizeWithOffsets").module == "tensorflow_text"
    assert library_for("MatMul") is None and library_for("MyCustomOp") is None
    m = graphxform.load(fixture_path("keras_bn"))
    assert ensure_ops(m.graph.to_graph_def(), "x") == []
