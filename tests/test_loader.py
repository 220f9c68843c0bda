"""Loader: SavedModels (TF1/Estimator, TF2, Keras 3) and frozen GraphDefs → Model.

Signatures are compared with what TensorFlow itself reports (the SavedModel
proto and, for TF2 models, ``tf.saved_model.load(path).signatures``); TF2
graphs must come out flat (no function calls) and still compute what the
original computes.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, fixture_path
from google.protobuf import text_format
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from graphxform.core.errors import SignatureError
from graphxform.core.opdefs import CALL_OPS, TABLE_INIT_OPS
from graphxform.model.loader import load
from graphxform.savedmodel.read import INIT_OP_SIGNATURE_KEY
from graphxform.tf.session import run_graph_def, run_signature

SAVED_MODEL_FIXTURES = ["estimator_dnn", "estimator_linear", "keras_bn", "tf2_lookup"]
TF2_FIXTURES = {"keras_bn", "tf2_lookup"}


# --------------------------------------------------------------------------- model builders (shared with test_freeze)
def build_tf1_saved_model(export_dir: Path) -> dict:
    """A TF1 SavedModel like an Estimator export, small: resource + reference variables, a local variable
    initialized by the main op, a HashTableV2 fed from an asset vocab file, a ResourceGather, a sparse
    input signature, a second MetaGraph tagged ``serve,gpu`` and an ``assets.extra`` file."""
    export_dir = Path(export_dir)
    vocab = export_dir.parent / "vocab_src.txt"
    vocab.write_text("apple\nbanana\ncherry\n")
    g = tf.Graph()
    with g.as_default():
        words = tf.compat.v1.placeholder(tf.string, [None], name="words")
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        asset = tf.constant(str(vocab), name="vocab_asset")
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, asset)
        table = tf.compat.v1.lookup.StaticHashTable(
            tf.compat.v1.lookup.TextFileInitializer(
                asset, tf.string, tf.compat.v1.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64, tf.compat.v1.lookup.TextFileIndex.LINE_NUMBER), -1)
        ids = table.lookup(words)
        emb = tf.compat.v1.get_variable("emb", initializer=tf.random.stateless_normal([4, 3], seed=[1, 2]),
                                        use_resource=True)
        w = tf.compat.v1.get_variable("w", initializer=tf.random.stateless_normal([3, 2], seed=[3, 4]),
                                      use_resource=True)
        b = tf.compat.v1.get_variable("b_ref", initializer=tf.constant([0.5, -0.25]), use_resource=False)
        scale = tf.compat.v1.get_variable(
            "scale_local", initializer=tf.range(2, dtype=tf.float32) * 0.5 + 1.0,
            collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES], use_resource=True)
        e = tf.gather(emb, tf.where(ids < 0, tf.zeros_like(ids), ids))  # ResourceGather
        y = tf.identity((tf.matmul(x + e, w) + b) * scale, name="y")
        prob = tf.nn.softmax(y, name="prob")
        sp = tf.compat.v1.sparse_placeholder(tf.float32, [None, 3], name="sp")
        sp_sum = tf.sparse.reduce_sum(sp, axis=1, name="sp_sum")
        with tf.compat.v1.Session() as sess:
            sess.run([tf.compat.v1.global_variables_initializer(), tf.compat.v1.local_variables_initializer(),
                      tf.compat.v1.tables_initializer()])
            # Values in the checkpoint differ from what the initializers compute.
            sess.run([w.assign(w * 2.0), tf.compat.v1.assign(b, [1.5, -1.0])])
            bi = tf.compat.v1.saved_model.build_tensor_info
            predict = tf.compat.v1.saved_model.build_signature_def(
                {"words": bi(words), "x": bi(x)}, {"y": bi(y), "prob": bi(prob), "ids": bi(ids)},
                tf.compat.v1.saved_model.PREDICT_METHOD_NAME)
            sparse = tf.compat.v1.saved_model.build_signature_def(
                {"sp": bi(sp)}, {"sum": bi(sp_sum)}, tf.compat.v1.saved_model.PREDICT_METHOD_NAME)
            main_op = tf.group(tf.compat.v1.tables_initializer(), tf.compat.v1.local_variables_initializer(),
                               name="main_op_group")
            builder = tf.compat.v1.saved_model.Builder(str(export_dir))
            assets = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS)
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": predict, "sparse": sparse},
                assets_collection=assets, main_op=main_op, strip_default_attrs=True)
            builder.add_meta_graph(["serve", "gpu"], signature_def_map={"serving_default": predict},
                                   assets_collection=assets)
            builder.save()
    (export_dir / "assets.extra").mkdir()
    (export_dir / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"warmup")
    samples = {"serving_default": {"words": np.array([b"apple", b"cherry", b"durian", b"banana"]),
                                   "x": np.arange(12, dtype=np.float32).reshape(4, 3) / 7.0}}
    return {"path": export_dir, "samples": samples, "asset": vocab.name}


def build_tf2_saved_model(export_dir: Path) -> dict:
    """A TF2 ``tf.Module`` SavedModel: a vocab-asset table, nested tf.functions, ``tf.gather`` on a variable
    (ResourceGather), and a ``tf.cond`` and a ``tf.while_loop`` that read variables inside their functions."""
    export_dir = Path(export_dir)
    vocab = export_dir.parent / "tokens_src.txt"
    vocab.write_text("red\ngreen\nblue\n")

    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            init = tf.lookup.TextFileInitializer(str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                 tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
            self.table = tf.lookup.StaticHashTable(init, default_value=0)
            self.emb = tf.Variable(tf.random.stateless_normal([3, 4], seed=[5, 6]), name="emb")
            self.w = tf.Variable(tf.random.stateless_normal([4, 2], seed=[7, 8]), name="w")
            self.gain = tf.Variable(1.5, name="gain")
            self.steps = tf.Variable(3, name="steps")

        @tf.function
        def features(self, tokens):
            return tf.gather(self.emb, self.table.lookup(tokens))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.float32)])
        def predict(self, tokens, scale):
            y = tf.matmul(self.features(tokens), self.w)
            y = tf.cond(tf.reduce_sum(scale) > 0, lambda: y * self.gain, lambda: y - self.gain)
            _, y = tf.while_loop(lambda i, acc: i < self.steps, lambda i, acc: (i + 1, acc + self.w[0, 0]),
                                 [tf.constant(0), y])
            return {"y": y * scale[:, None], "ids": self.table.lookup(tokens)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def norm(self, tokens):
            return {"norm": tf.norm(self.features(tokens), axis=1)}

    m = Model()
    tf.saved_model.save(m, str(export_dir), signatures={"serving_default": m.predict, "norm": m.norm})
    tokens = np.array([b"red", b"blue", b"mauve", b"green"])
    samples = {"serving_default": {"tokens": tokens, "scale": np.array([1.0, 2.0, -1.0, 0.5], np.float32)},
               "norm": {"tokens": tokens}}
    return {"path": export_dir, "samples": samples, "asset": vocab.name}


def tf1_reference(path: Path, samples: dict, tags=("serve",)) -> dict:
    """{signature: {output: value}} computed by TensorFlow's own TF1 SavedModel loader."""
    out = {}
    g = tf.Graph()
    with g.as_default(), tf.compat.v1.Session(graph=g) as sess:
        mg = tf.compat.v1.saved_model.loader.load(sess, list(tags), str(path))
        for key, inputs in samples.items():
            sd = mg.signature_def[key]
            fetches = {k: sd.outputs[k].name for k in sd.outputs}
            out[key] = sess.run(fetches, {sd.inputs[k].name: v for k, v in inputs.items()})
    return out


def tf2_reference(path: Path, samples: dict) -> dict:
    """{signature: {output: value}} computed by ``tf.saved_model.load(path).signatures[key]``."""
    loaded = tf.saved_model.load(str(path))
    out = {}
    for key, inputs in samples.items():
        result = loaded.signatures[key](**{n: tf.constant(a) for n, a in inputs.items()})
        out[key] = {k: v.numpy() for k, v in result.items()}
    return out


def assert_outputs_equal(got: dict, ref: dict, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    assert sorted(got) == sorted(ref)
    for k in ref:
        a, b = np.asarray(got[k]), np.asarray(ref[k])
        assert a.shape == b.shape, k
        if b.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=k)
        else:
            np.testing.assert_array_equal(a, b, err_msg=k)


def read_saved_model_proto(path: Path) -> saved_model_pb2.SavedModel:
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    return sm


# --------------------------------------------------------------------------- module fixtures
@functools.lru_cache(maxsize=None)
def _loaded(name: str):
    path = FIXTURES / name
    return name, path, load(path)


@pytest.fixture(scope="module", params=SAVED_MODEL_FIXTURES)
def fixture_model(request):
    fixture_path(request.param)
    return _loaded(request.param)


@pytest.fixture(scope="module", params=sorted(TF2_FIXTURES))
def tf2_fixture_model(request):
    fixture_path(request.param)
    return _loaded(request.param)


@pytest.fixture(scope="module")
def tf1_model(tmp_path_factory):
    info = build_tf1_saved_model(tmp_path_factory.mktemp("tf1") / "model")
    info["model"] = load(info["path"])
    return info


@pytest.fixture(scope="module")
def tf2_model(tmp_path_factory):
    info = build_tf2_saved_model(tmp_path_factory.mktemp("tf2") / "model")
    info["model"] = load(info["path"])
    return info


# --------------------------------------------------------------------------- SavedModel fixtures
def test_fixture_loads_and_lints(fixture_model):
    name, path, model = fixture_model
    assert model.graph.lint() == []
    assert model.format == "saved_model"
    assert model.tags == ["serve"]
    assert not model.frozen
    assert model.variables.checkpoint_prefix == path / "variables" / "variables"
    assert model.saved_model_version == (2 if name in TF2_FIXTURES else 1)
    assert INIT_OP_SIGNATURE_KEY not in model.signatures
    assert model.init_op and model.init_op in model.graph


def test_fixture_signatures_match_proto(fixture_model):
    """Keys, method names, input/output keys, dtypes and shapes equal the SavedModel's SignatureDefs."""
    _, path, model = fixture_model
    mg = read_saved_model_proto(path).meta_graphs[0]
    expected = {k for k in mg.signature_def if k != INIT_OP_SIGNATURE_KEY}
    assert set(model.signatures) == expected
    for key in expected:
        sd, sig = mg.signature_def[key], model.signatures[key]
        assert sig.method_name == sd.method_name
        for ours, theirs in ((sig.inputs, sd.inputs), (sig.outputs, sd.outputs)):
            assert set(ours) == set(theirs)
            for k, info in theirs.items():
                assert ours[k].dtype == info.dtype
                dims = None if info.tensor_shape.unknown_rank else [
                    None if d.size == -1 else d.size for d in info.tensor_shape.dim]
                assert ours[k].shape == dims
                producer = model.graph.node(ours[k].name)  # exists in the (flattened) graph
                assert producer.op not in CALL_OPS


def test_tf2_fixture_signatures_match_tf_loader(tf2_fixture_model):
    _, path, model = tf2_fixture_model
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == set(model.signatures)
    for key, fn in loaded.signatures.items():
        sig = model.signatures[key]
        in_specs = fn.structured_input_signature[1]
        assert set(in_specs) == set(sig.inputs)
        for k, spec in in_specs.items():
            assert sig.inputs[k].dtype == spec.dtype.as_datatype_enum
            assert sig.inputs[k].shape == spec.shape.as_list()
        assert set(fn.structured_outputs) == set(sig.outputs)
        for k, t in fn.structured_outputs.items():
            assert sig.outputs[k].dtype == t.dtype.as_datatype_enum
            assert sig.outputs[k].shape == t.shape.as_list()


def test_tf2_fixture_is_flat(tf2_fixture_model):
    """No call ops left; inputs are Placeholders; outputs are tensors of real ops."""
    _, _, model = tf2_fixture_model
    g = model.graph
    assert not g.nodes_by_op(*CALL_OPS)
    for sig in model.signatures.values():
        for spec in sig.inputs.values():
            assert g.node(spec.name).op == "Placeholder"
        for spec in sig.outputs.values():
            assert g.node(spec.name).op not in ("NoOp", *CALL_OPS)
            assert g.output_dtype(spec.name) == spec.dtype
    # Variables are plain VarHandleOps read by ReadVariableOp / ResourceGather.
    assert g.nodes_by_op("VarHandleOp")
    assert g.nodes_by_op("ReadVariableOp")
    # The restore op survives by name (a NoOp waiting for the inlined restore function).
    from tensorflow.core.protobuf import saver_pb2

    sd = saver_pb2.SaverDef()
    sd.ParseFromString(model.variables.saver_def)
    assert g.node(sd.restore_op_name).op == "NoOp"
    assert g.node(sd.save_tensor_name).op not in CALL_OPS


def test_estimator_dnn_init_tables_assets():
    path = fixture_path("estimator_dnn")
    model = load(path)
    assert model.init_op == "group_deps"
    mg = read_saved_model_proto(path).meta_graphs[0]
    coll = list(mg.collection_def["table_initializer"].node_list.value)
    assert coll and all(t in model.table_initializers for t in coll)
    init_deps = model.graph.ancestors([model.init_op])
    assert all(t in init_deps for t in coll)
    assert [a.filename for a in model.assets] == ["words.txt"]
    asset = model.assets[0]
    assert asset.source_path == path / "assets" / "words.txt" and asset.source_path.is_file()
    assert model.graph.node(asset.tensor_name).op == "Const"
    assert model.meta_info["tensorflow_version"] == mg.meta_info_def.tensorflow_version
    assert "saved_model_main_op" in model.meta_info["collection_def"]
    assert model.meta_info["assets_extra"] is None


def test_tf2_lookup_init_op_and_asset():
    path = fixture_path("tf2_lookup")
    model = load(path)
    assert model.init_op == "NoOp"
    assert INIT_OP_SIGNATURE_KEY not in model.signatures
    inits = [n.name for n in model.graph.nodes_by_op(*TABLE_INIT_OPS)]
    assert inits and set(inits) <= set(model.table_initializers)
    assert set(inits) <= model.graph.ancestors([model.init_op])
    assert [(a.filename, a.tensor_name) for a in model.assets] == [("tokens.txt", "asset_path_initializer:0")]
    assert model.graph.node("asset_path_initializer").op == "Placeholder"


def test_signature_key_checked(fixture_model):
    _, path, model = fixture_model
    with pytest.raises(SignatureError) as err:
        model.signature("no_such_signature")
    assert str(path) in str(err.value)
    assert all(k in str(err.value) for k in model.signatures)


# --------------------------------------------------------------------------- own TF1 SavedModel
def test_tf1_builder_model(tf1_model):
    model = tf1_model["model"]
    path = tf1_model["path"]
    assert model.graph.lint() == []
    assert model.saved_model_version == 1
    assert model.init_op == "main_op_group"
    assert model.table_initializers == ["text_file_init/InitializeTableFromTextFileV2"]
    assert [a.filename for a in model.assets] == [tf1_model["asset"]]
    assert model.assets[0].tensor_name == "vocab_asset:0"
    assert model.assets[0].source_path == path / "assets" / tf1_model["asset"]
    assert model.meta_info["assets_extra"] == path / "assets.extra"
    assert sorted(map(sorted, model.meta_info["tag_sets"])) == [["gpu", "serve"], ["serve"]]
    sig = model.signature("serving_default")
    assert sig.method_name == "tensorflow/serving/predict"
    assert (sig.inputs["words"].name, sig.inputs["words"].dtype, sig.inputs["words"].shape) == ("words:0", 7, [None])
    assert (sig.inputs["x"].dtype, sig.inputs["x"].shape) == (1, [None, 3])
    assert (sig.outputs["ids"].dtype, sig.outputs["ids"].shape) == (9, [None])


def test_tf1_sparse_signature_components(tf1_model):
    spec = tf1_model["model"].signature("sparse").inputs["sp"]
    assert spec.name == "" and spec.dtype == 1 and spec.shape == [None, 3]
    assert set(spec.components) == {"values", "indices", "dense_shape"}
    g = tf1_model["model"].graph
    assert spec.components == {"values": "sp/values:0", "indices": "sp/indices:0", "dense_shape": "sp/shape:0"}
    assert [g.node(t).op for t in spec.components.values()] == ["Placeholder", "Placeholder",
                                                                  "PlaceholderWithDefault"]
    out = tf1_model["model"].signature("sparse").outputs["sum"]
    assert out.name == "sp_sum:0" and out.shape is None  # unknown rank → None


def test_tf1_tags_string_is_split(tf1_model):
    model = load(tf1_model["path"], "serve,gpu")
    assert model.tags == ["serve", "gpu"]
    assert sorted(model.meta_info["tags"]) == ["gpu", "serve"]
    assert set(model.signatures) == {"serving_default"}
    model2 = load(tf1_model["path"], tags=["gpu", "serve"])
    assert set(model2.signatures) == {"serving_default"}


def test_tf1_unfrozen_graph_runs_like_tf(tf1_model):
    """The loaded (not frozen) graph, restored with its SaverDef, computes what TF's loader computes."""
    from tensorflow.core.protobuf import saver_pb2

    model = tf1_model["model"]
    sd = saver_pb2.SaverDef()
    sd.ParseFromString(model.variables.saver_def)
    ref = tf1_reference(tf1_model["path"], tf1_model["samples"])["serving_default"]
    sig = model.signature("serving_default")
    from graphxform.tf.session import GraphSession, asset_feeds

    with GraphSession(model.graph.to_graph_def()) as s:
        s.session.run(s.tf_graph.get_operation_by_name(sd.restore_op_name),
                      {s.tf_graph.get_tensor_by_name(sd.filename_tensor_name): str(model.variables.checkpoint_prefix)})
        s.session.run(s.tf_graph.get_operation_by_name(model.init_op),
                      s._feed(asset_feeds(model)))
        keys = sorted(sig.outputs)
        vals = s.run({sig.inputs[k].name: v for k, v in tf1_model["samples"]["serving_default"].items()},
                     [sig.outputs[k].name for k in keys])
    assert_outputs_equal(dict(zip(keys, vals)), ref)


# --------------------------------------------------------------------------- own TF2 SavedModel
def test_tf2_module_flattened(tf2_model):
    model = tf2_model["model"]
    g = model.graph
    assert g.lint() == []
    assert model.saved_model_version == 2
    assert not g.nodes_by_op(*CALL_OPS)
    # Functional control flow stays, with only the functions it calls kept in the library.
    assert g.nodes_by_op("If") and g.nodes_by_op("While")
    called = {n.attr[a].func.name for n in g.nodes_by_op("If", "While") for a in n.attr if n.attr[a].HasField("func")}
    assert {f.signature.name for f in g.library.function} == called
    # Readable names: bodies live under the signature key.
    out = model.signature("serving_default").outputs["y"].name
    assert out.startswith("serving_default/")
    assert model.signature("norm").outputs["norm"].name.startswith("norm/")
    assert g.nodes_by_op("ResourceGather")
    assert [a.filename for a in model.assets] == [tf2_model["asset"]]


# --------------------------------------------------------------------------- frozen GraphDefs
def test_frozen_pb_and_pbtxt_load():
    pb, pbtxt = fixture_path("tf1_frozen_bn.pb"), fixture_path("tf1_frozen_bn.pbtxt")
    a, b = load(pb), load(pbtxt)
    for m in (a, b):
        assert m.format == "graph_def" and m.frozen and m.signatures == {}
        assert m.graph.lint() == []
    assert a.meta_info["source_format"] == "pb" and b.meta_info["source_format"] == "pbtxt"
    assert sorted(a.graph.node_names) == sorted(b.graph.node_names)
    assert a.graph.op_histogram() == b.graph.op_histogram()


def test_frozen_pb_signature_from_kwargs_runs_like_tf():
    pb = fixture_path("tf1_frozen_bn.pb")
    io = json.loads(fixture_path("tf1_frozen_bn.json").read_text())
    model = load(pb, inputs=io["inputs"], outputs=io["outputs"])
    sig = model.signature("serving_default")
    in_node = io["inputs"][0].split(":")[0]
    out_node = io["outputs"][0].split(":")[0]
    assert sig.method_name == "tensorflow/serving/predict"
    assert list(sig.inputs) == [in_node] and list(sig.outputs) == [out_node]
    placeholder = model.graph.node(in_node)
    assert sig.inputs[in_node].dtype == placeholder.attr["dtype"].type
    assert sig.inputs[in_node].shape == [None if d.size < 0 else d.size for d in placeholder.attr["shape"].shape.dim]
    assert sig.outputs[out_node].dtype == model.graph.output_dtype(io["outputs"][0])
    with np.load(FIXTURES / "samples" / "tf1_frozen_bn.npz", allow_pickle=False) as d:
        x = d[io["inputs"][0]]  # keyed by tensor name
    got = run_signature(model, "serving_default", {in_node: x})[out_node]
    # TF's own run of the raw GraphDef, read straight from the file.
    gd = graph_pb2.GraphDef()
    gd.ParseFromString(pb.read_bytes())
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=g) as sess:
        ref = sess.run(io["outputs"][0], {io["inputs"][0]: x})
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_graph_def_name_lists_as_strings():
    pbtxt = fixture_path("tf1_frozen_bn.pbtxt")
    io = json.loads(fixture_path("tf1_frozen_bn.json").read_text())
    model = load(pbtxt, inputs=",".join(io["inputs"]), outputs=io["outputs"][0].split(":")[0])
    assert len(model.signature("serving_default").inputs) == 1
    assert len(model.signature("serving_default").outputs) == 1


def _graph_with_calls():
    """A TF1 graph calling nested tf.functions (PartitionedCall / StatefulPartitionedCall), one under a
    control dependency."""
    @tf.function
    def inner(a):
        return tf.nn.relu(a) * 2.0

    @tf.function
    def outer(a):
        return inner(a) + 1.0, inner(a - 3.0)

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        first = tf.identity(x * 0.5, name="first")
        with tf.control_dependencies([first]):
            y1, y2 = outer(x)
        tf.identity(y1, name="out1")
        tf.add(y2, 0.0, name="out2")
    return g.as_graph_def()


def test_graph_def_with_function_calls_is_flattened(tmp_path):
    gd = _graph_with_calls()
    calls = [n for n in gd.node if n.op in CALL_OPS]
    assert calls and len(gd.library.function) >= 2
    path = tmp_path / "calls.pb"
    path.write_bytes(gd.SerializeToString())
    # Name a call node's output directly too: the signature must follow the inlined tensor.
    model = load(path, inputs=["x"], outputs=["out1", "out2", f"{calls[0].name}:1"])
    g = model.graph
    assert g.lint() == []
    assert not g.nodes_by_op(*CALL_OPS)
    assert len(g.library.function) == 0
    direct = model.signature("serving_default").outputs[f"{calls[0].name}_1"].name
    assert g.node(direct).op not in CALL_OPS and not direct.startswith(f"{calls[0].name}:")
    # The caller's control dependency still orders the inlined body.
    assert "first" in g.ancestors([model.signature("serving_default").outputs["out1"].name])
    x = np.array([-2.0, 0.5, 4.0, 7.0], np.float32)
    got = run_signature(model, "serving_default", {"x": x})
    ref = run_graph_def(gd, {"x:0": x}, ["out1:0", "out2:0", f"{calls[0].name}:1"])
    assert_outputs_equal(got, {"out1": ref[0], "out2": ref[1], f"{calls[0].name}_1": ref[2]})


# --------------------------------------------------------------------------- other ways in
def test_saved_model_pb_file_loads_its_directory():
    path = fixture_path("tf2_lookup")
    model = load(path / "saved_model.pb")
    assert model.format == "saved_model" and model.source == path
    assert set(model.signatures) == {"score", "serving_default"}


def test_saved_model_proto_under_another_name_is_detected(tmp_path):
    src = fixture_path("estimator_linear")
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    os.rename(dst / "saved_model.pb", dst / "model.pb")
    model = load(dst / "model.pb")
    assert model.format == "saved_model"
    assert model.source == dst
    assert model.variables.checkpoint_prefix == dst / "variables" / "variables"


def test_saved_model_pbtxt(tmp_path):
    src = fixture_path("tf2_lookup")
    dst = tmp_path / "txt"
    shutil.copytree(src, dst)
    sm = read_saved_model_proto(dst)
    (dst / "saved_model.pb").unlink()
    (dst / "saved_model.pbtxt").write_text(text_format.MessageToString(sm))
    model = load(dst)
    assert model.meta_info["source_format"] == "pbtxt"
    assert set(model.signatures) == {"score", "serving_default"}
    assert model.graph.lint() == []
