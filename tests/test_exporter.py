"""The exporter: Model → SavedModel directory (or .pb/.pbtxt), loadable by TF2, the TF1 loader and saved_model_cli."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, load_samples
from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from graphxform.core.errors import ExportError
from graphxform.core.graph import Graph
from graphxform.core.signature import METHOD_CLASSIFY, METHOD_PREDICT, TensorSpec
from graphxform.model import export as exporter
from graphxform.model.model import Asset, Model, Signature, VariableStore
from graphxform.savedmodel import atomic, wire, write
from graphxform.tf.session import run_signature

VOCAB = ["apple", "banana", "cherry", "date"]
W = np.arange(6, dtype=np.float32).reshape(3, 2) / 4.0


def _build_graph(tmp: Path, *, variables: bool) -> tuple[graph_pb2.GraphDef, bytes | None]:
    """x [?,3] float, word [?] string -> y = x @ W + id(word); ids = table(word); a vocab-file table."""
    import tensorflow as tf

    g = tf.Graph()
    saver_def = None
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        word = tf.compat.v1.placeholder(tf.string, [None], name="word")
        path = tf.constant("vocab.txt", name="asset_path")
        init = tf.compat.v1.lookup.TextFileInitializer(
            path, tf.string, tf.compat.v1.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
            tf.compat.v1.lookup.TextFileIndex.LINE_NUMBER)
        table = tf.compat.v1.lookup.StaticHashTable(init, -1, name="table")
        ids = tf.identity(table.lookup(word), name="ids")
        if variables:
            w = tf.compat.v1.get_variable("w", initializer=W, use_resource=True)
        else:
            w = tf.constant(W, name="w")
        tf.add(tf.matmul(x, w), tf.cast(tf.expand_dims(ids, 1), tf.float32), name="y")
        tf.compat.v1.tables_initializer(name="init_all_tables")
        if variables:
            saver = tf.compat.v1.train.Saver()
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                saver.save(sess, str(tmp / "ckpt" / "model"), write_meta_graph=False)
            saver_def = saver.as_saver_def().SerializeToString()
    return g.as_graph_def(), saver_def


def make_model(tmp: Path, *, variables: bool = False) -> Model:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    gd, saver_def = _build_graph(tmp, variables=variables)
    inputs = {"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [None, 3]),
              "word": TensorSpec("word:0", types_pb2.DT_STRING, [None])}
    sigs = {
        "serving_default": Signature("serving_default", METHOD_PREDICT, dict(inputs),
                                     {"y": TensorSpec("y:0", types_pb2.DT_FLOAT, [None, 2]),
                                      "ids": TensorSpec("ids:0", types_pb2.DT_INT64, [None])}),
        "classify": Signature("classify", METHOD_CLASSIFY, dict(inputs),
                              {"scores": TensorSpec("y:0", types_pb2.DT_FLOAT, [None, 2])}),
    }
    tables = [n.name for n in gd.node if n.op.startswith("InitializeTable")]
    return Model(Graph(gd), sigs, tmp, "saved_model", tags=["serve"],
                 assets=[Asset("vocab.txt", tmp / "vocab.txt", "asset_path:0")], init_op="init_all_tables",
                 table_initializers=tables,
                 variables=VariableStore(tmp / "ckpt" / "model", saver_def) if variables else None)


FEEDS = {"x": np.array([[1, 2, 3], [0, 0, 1], [4, 4, 4]], np.float32),
         "word": np.array([b"banana", b"nope", b"date"])}


def expected_outputs() -> dict[str, np.ndarray]:
    ids = np.array([VOCAB.index(w.decode()) if w.decode() in VOCAB else -1 for w in FEEDS["word"]], np.int64)
    return {"y": FEEDS["x"] @ W + ids[:, None].astype(np.float32), "ids": ids}


def tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        h.update(str(f.relative_to(path)).encode())
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def read_proto(out: Path) -> saved_model_pb2.SavedModel:
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((out / "saved_model.pb").read_bytes())
    return sm


def tf1_run_all(out: Path, samples: dict[str, dict[str, np.ndarray]], tags=("serve",)) -> dict[str, dict]:
    """{signature: {output: array}} from the TF1 loader (one session for every signature)."""
    import tensorflow as tf

    res = {}
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        mg = tf.compat.v1.saved_model.loader.load(sess, list(tags), str(out))
        for key, feeds in samples.items():
            sd = mg.signature_def[key]
            fetches = {k: v.name for k, v in sd.outputs.items()}
            res[key] = sess.run(fetches, {sd.inputs[k].name: v for k, v in feeds.items()})
    return res


def tf2_run_all(out: Path, samples: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """{signature: {output: array}} from ``tf.saved_model.load(out).signatures[key](**inputs)``."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(out))
    res = {}
    for key, feeds in samples.items():
        got = loaded.signatures[key](**{k: tf.constant(v) for k, v in feeds.items()})
        res[key] = {k: v.numpy() for k, v in got.items()}
    return res


def tf1_run(out: Path, key: str, feeds: dict[str, np.ndarray], tags=("serve",)) -> dict[str, np.ndarray]:
    return tf1_run_all(out, {key: feeds}, tags)[key]


def tf2_run(out: Path, key: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return tf2_run_all(out, {key: feeds})[key]


@pytest.fixture(scope="module")
def frozen_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frozen")
    model = make_model(tmp / "src")
    before = tree_hash(model.source)
    nodes = len(model.graph)
    out = exporter.export(model, tmp / "out")
    return model, out, before, nodes


def test_frozen_export_layout_and_proto(frozen_export):
    model, out, before, nodes = frozen_export
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "assets", "assets/vocab.txt", "saved_model.pb", "variables"]
    assert (out / "assets" / "vocab.txt").read_text() == (model.source / "vocab.txt").read_text()
    assert tree_hash(model.source) == before, "the input was modified"
    assert len(model.graph) == nodes, "export must not mutate the model"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary directory left behind"

    sm = read_proto(out)
    assert len(sm.meta_graphs) == 1
    mg = sm.meta_graphs[0]
    assert list(mg.meta_info_def.tags) == ["serve"]
    assert not mg.HasField("saver_def")
    assert {op.name for op in mg.meta_info_def.stripped_op_list.op} >= {"MatMul", "HashTableV2", "Const"}
    assert set(mg.signature_def) == {"serving_default", "classify"}  # the init op is no signature
    sd = mg.signature_def["serving_default"]
    assert sd.method_name == METHOD_PREDICT
    assert mg.signature_def["classify"].method_name == METHOD_CLASSIFY
    assert sd.inputs["word"].dtype == types_pb2.DT_STRING and sd.inputs["word"].name == "word:0"
    assert [d.size for d in sd.inputs["x"].tensor_shape.dim] == [-1, 3]
    assert sd.outputs["ids"].dtype == types_pb2.DT_INT64
    # One init op, in the main-op collection (as TF1's builder writes main_op), running the table initializer.
    (init,) = mg.collection_def["saved_model_main_op"].node_list.value
    nodes_by_name = {n.name: n for n in mg.graph_def.node}
    assert nodes_by_name[init].op == "NoOp"
    assert init == "init_all_tables"  # already a NoOp grouping the table initializers: reused, not wrapped
    assert [(a.filename, a.tensor_info.name) for a in mg.asset_file_def] == [("vocab.txt", "asset_path:0")]
    assert not any("_output_shapes" in n.attr for n in mg.graph_def.node)


@pytest.mark.parametrize("fixture", ["keras_bn", "tf2_lookup", "estimator_linear"])
def test_streamed_saved_model_is_the_proto_serialized(fixture):
    """saved_model.pb is written a node at a time: the bytes are exactly the full proto's serialization."""
    import graphxform

    model = graphxform.load(FIXTURES / fixture)
    model.freeze()
    node = next(n for n in model.graph if n.op == "Const")
    shaped = node_def_pb2.NodeDef()
    shaped.CopyFrom(node)
    shaped.attr["_output_shapes"].list.shape.add()  # dropped when written, from the streamed nodes too
    model.graph.update_node(shaped)
    full, _ = exporter.builder_for(model).build()
    builder = exporter.builder_for(model)
    sm, _ = builder.build(with_graph=False)
    streamed = b"".join(wire.saved_model_chunks(sm, builder.graph))
    assert builder.graph.ByteSize() == full.meta_graphs[0].graph_def.ByteSize()
    assert streamed == full.SerializeToString(deterministic=True)
    assert "_output_shapes" in model.graph.node(node.name).attr, "export must not modify the model"


def test_frozen_export_runs_in_tf2_and_tf1_loaders(frozen_export):
    _, out, _, _ = frozen_export
    want = expected_outputs()
    got2 = tf2_run(out, "serving_default", FEEDS)
    np.testing.assert_allclose(got2["y"], want["y"], rtol=1e-6)
    np.testing.assert_array_equal(got2["ids"], want["ids"])
    got1 = tf1_run(out, "serving_default", FEEDS)
    np.testing.assert_allclose(got1["y"], want["y"], rtol=1e-6)
    np.testing.assert_array_equal(got1["ids"], want["ids"])
    np.testing.assert_allclose(tf1_run(out, "classify", FEEDS)["scores"], want["y"], rtol=1e-6)


def test_init_op_runs_in_every_loader_and_is_no_signature(frozen_export):
    """The table initializer (fed from the asset) runs in TF Serving's C++ loader, tf.saved_model.load and the
    TF1 loader, and no loader lists ``__saved_model_init_op`` beside the model's own signatures."""
    import tensorflow as tf

    from graphxform.tf.capi import CSavedModelSession

    _, out, _, _ = frozen_export
    want = expected_outputs()["ids"]  # a wrong or missing table init gives other ids
    assert sorted(tf.saved_model.load(str(out)).signatures.keys()) == ["classify", "serving_default"]
    with CSavedModelSession(out) as s:
        assert sorted(s.meta_graph.signature_def) == ["classify", "serving_default"]
        sd = s.meta_graph.signature_def["serving_default"]
        (ids,) = s.run({sd.inputs[k].name: (v, sd.inputs[k].dtype) for k, v in FEEDS.items()}, [sd.outputs["ids"].name])
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_array_equal(tf2_run(out, "serving_default", FEEDS)["ids"], want)
    np.testing.assert_array_equal(tf1_run(out, "serving_default", FEEDS)["ids"], want)


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
def test_outputs_follow_the_umask(tmp_path, umask):
    """Files 0666 & ~umask, directories 0777 & ~umask — what any tool writes (not mkdtemp's 0700/mkstemp's 0600)."""
    import stat

    model = make_model(tmp_path / "src")
    old = os.umask(umask)
    try:
        out = exporter.export(model, tmp_path / "sm")
        pb = exporter.export(model, tmp_path / "g.pb")
        exporter.export(model, tmp_path / "sm", force=True)  # a replaced output too
    finally:
        os.umask(old)
    paths = [out, *out.rglob("*"), pb, tmp_path / "g.pb.signatures.json"]
    for p in paths:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode), oct(want))
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o777 & ~umask, 0o666 & ~umask}


def test_saved_model_cli_runs_export(frozen_export, tmp_path):
    _, out, _, _ = frozen_export
    npz = tmp_path / "in.npz"
    np.savez(npz, **{"serving_default/x": FEEDS["x"], "serving_default/word": FEEDS["word"]})
    cli = Path(sys.executable).with_name("saved_model_cli")
    res = subprocess.run(
        [str(cli), "run", "--dir", str(out), "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"x={npz}[serving_default/x];word={npz}[serving_default/word]", "--outdir", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    want = expected_outputs()
    np.testing.assert_allclose(np.load(tmp_path / "o" / "y.npy"), want["y"], rtol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "ids.npy"), want["ids"])


def test_export_with_variables_copies_checkpoint_and_saver(tmp_path):
    model = make_model(tmp_path / "src", variables=True)
    out = exporter.export(model, tmp_path / "out")
    files = sorted(p.name for p in (out / "variables").iterdir())
    assert files == ["variables.data-00000-of-00001", "variables.index"]
    mg = read_proto(out).meta_graphs[0]
    assert mg.HasField("saver_def") and mg.saver_def.restore_op_name
    want = expected_outputs()
    np.testing.assert_allclose(tf2_run(out, "serving_default", FEEDS)["y"], want["y"], rtol=1e-6)
    np.testing.assert_allclose(tf1_run(out, "serving_default", FEEDS)["y"], want["y"], rtol=1e-6)


def test_unfrozen_model_without_saver_is_refused(tmp_path):
    model = make_model(tmp_path / "src", variables=True)
    model.variables = VariableStore(model.variables.checkpoint_prefix, None)
    with pytest.raises(ExportError, match="freeze"):
        exporter.export(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_init_noop_groups_table_initializers_when_no_init_op(tmp_path):
    model = make_model(tmp_path / "src")
    model.init_op = None
    nodes = len(model.graph)
    out = exporter.export(model, tmp_path / "out")
    mg = read_proto(out).meta_graphs[0]
    (init,) = mg.collection_def["saved_model_main_op"].node_list.value
    node = {n.name: n for n in mg.graph_def.node}[init]
    assert init == write.INIT_NOOP_NAME and node.op == "NoOp"
    assert sorted(node.input) == sorted("^" + t for t in model.table_initializers)
    assert len(model.graph) == nodes and write.INIT_NOOP_NAME not in model.graph
    np.testing.assert_array_equal(tf2_run(out, "serving_default", FEEDS)["ids"], expected_outputs()["ids"])


def test_signatures_follow_replace_all_uses(tmp_path):
    model = make_model(tmp_path / "src")
    g = model.graph
    y = g.node("y")
    alt = node_def_pb2.NodeDef()
    alt.CopyFrom(y)
    alt.name = "y_alt"
    g.add_node(alt)
    g.replace_all_uses("y:0", "y_alt:0")
    g.remove_node("y")
    assert g.lint() == []
    out = exporter.export(model, tmp_path / "out")
    sigs = read_proto(out).meta_graphs[0].signature_def
    assert sigs["serving_default"].outputs["y"].name == "y_alt:0"
    assert sigs["classify"].outputs["scores"].name == "y_alt:0"
    np.testing.assert_allclose(tf1_run(out, "classify", FEEDS)["scores"], expected_outputs()["y"], rtol=1e-6)


def test_signature_naming_a_removed_tensor_is_an_error(tmp_path):
    model = make_model(tmp_path / "src")
    model.signatures["serving_default"].outputs["ghost"] = TensorSpec("ghost:0", types_pb2.DT_FLOAT, None)
    with pytest.raises(ExportError, match="'serving_default' output 'ghost'"):
        exporter.export(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_existing_out_refused_without_force_and_replaced_with_force(tmp_path):
    model = make_model(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "marker").write_text("old")
    with pytest.raises(ExportError, match="--force"):
        exporter.export(model, out)
    assert (out / "marker").read_text() == "old"
    exporter.export(model, out, force=True)
    assert not (out / "marker").exists() and (out / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"], "old copy or temp dir left behind"


@pytest.mark.parametrize("existing", [False, True])
def test_failure_mid_export_leaves_no_output_and_no_temp_dir(tmp_path, monkeypatch, existing):
    model = make_model(tmp_path / "src")
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "marker").write_text("old")
    real = atomic.write_bytes

    def failing(path, data):
        if path.name == "saved_model.pb":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", failing)
    with pytest.raises(ExportError, match="No space left"):
        exporter.export(model, out, force=True)
    if existing:
        assert (out / "marker").read_text() == "old", "a failed export must keep the old output"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_out_may_not_be_or_lie_inside_or_contain_the_input(tmp_path):
    model = make_model(tmp_path / "m" / "src")
    before = tree_hash(model.source)
    with pytest.raises(ExportError, match="input"):
        exporter.export(model, model.source, force=True)
    with pytest.raises(ExportError, match="inside the input"):
        exporter.export(model, model.source / "opt")
    with pytest.raises(ExportError, match="contains the input"):
        exporter.export(model, tmp_path / "m", force=True)
    assert tree_hash(model.source) == before


def test_export_graph_def_pb_and_pbtxt(tmp_path, caplog):
    from google.protobuf import text_format

    model = make_model(tmp_path / "src")
    with caplog.at_level("WARNING", logger="graphxform.model.export"):
        pb = exporter.export(model, tmp_path / "frozen.pb")
    assert "keeps no signatures" in caplog.text
    gd = graph_pb2.GraphDef()
    gd.ParseFromString(pb.read_bytes())
    assert {n.name for n in gd.node} == set(model.graph.node_names)
    side = json.loads((tmp_path / "frozen.pb.signatures.json").read_text())
    assert side["signatures"]["serving_default"]["outputs"]["y"]["name"] == "y:0"
    assert side["inputs"] == ["x:0", "word:0"] and side["init_op"] == "init_all_tables"
    txt = exporter.export(model, tmp_path / "frozen.pbtxt")
    gd2 = text_format.Parse(txt.read_text(), graph_pb2.GraphDef())
    assert len(gd2.node) == len(gd.node)
    with pytest.raises(ExportError, match="--force"):
        exporter.export(model, pb)
    exporter.export(model, pb, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "frozen.pb", "frozen.pb.signatures.json", "frozen.pbtxt", "frozen.pbtxt.signatures.json", "src"]


def test_fixture_roundtrip_unfrozen_estimator(tmp_path):
    """A loaded (not frozen) estimator export, written back, gives the same outputs for the sample inputs."""
    import graphxform

    src = FIXTURES / "estimator_dnn"
    before = tree_hash(src)
    model = graphxform.load(src)
    out = exporter.export(model, tmp_path / "dnn")
    assert tree_hash(src) == before
    mg = read_proto(out).meta_graphs[0]
    orig = graphxform.load(src)
    assert set(mg.signature_def) - {"__saved_model_init_op"} == set(orig.signatures)
    for key, sig in orig.signatures.items():
        sd = mg.signature_def[key]
        assert sd.method_name == sig.method_name
        assert {k: v.dtype for k, v in sd.outputs.items()} == {k: s.dtype for k, s in sig.outputs.items()}
    assert (out / "assets" / "words.txt").read_bytes() == (src / "assets" / "words.txt").read_bytes()
    samples = load_samples("estimator_dnn")["predict"]
    ref = tf1_run(src, "predict", samples)
    got = tf2_run(out, "predict", samples)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])


def test_frozen_tf2_origin_model_loads_with_tf_saved_model_load(tmp_path):
    """A TF2 SavedModel (asset path is a Placeholder there) exports as a v1 SavedModel tf.saved_model.load takes."""
    import graphxform

    model = graphxform.load(FIXTURES / "tf2_lookup")
    model.freeze()
    assert model.frozen
    samples = load_samples("tf2_lookup")
    expect = {k: run_signature(model, k, v) for k, v in samples.items()}
    out = exporter.export(model, tmp_path / "lookup")
    assert sorted(p.name for p in (out / "variables").iterdir()) == []
    mg = read_proto(out).meta_graphs[0]
    asset_node = {n.name: n for n in mg.graph_def.node}[mg.asset_file_def[0].tensor_info.name.split(":")[0]]
    assert asset_node.op == "Const"
    for key, feeds in samples.items():
        got = tf2_run(out, key, feeds)
        for k, v in expect[key].items():
            np.testing.assert_allclose(got[k], v, rtol=1e-6)
        got1 = tf1_run(out, key, feeds)
        for k, v in expect[key].items():
            np.testing.assert_allclose(got1[k], v, rtol=1e-6)
    # the ids really come from the vocabulary asset: known words map below the OOV id
    ids = expect["serving_default"]["ids"]
    assert (ids < 16).any() and (ids == 16).any()
    shutil.rmtree(out)


def test_sparse_output_is_written_as_coo_sparse(tmp_path):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        sp = tf.sparse.from_dense(tf.nn.relu(x, name="relu"))
    spec = TensorSpec("", types_pb2.DT_FLOAT, [None, 3], components={
        "values": sp.values.name, "indices": sp.indices.name, "dense_shape": sp.dense_shape.name})
    sig = Signature("serving_default", METHOD_PREDICT, {"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [None, 3])},
                    {"sp": spec})
    model = Model(Graph(g.as_graph_def()), {"serving_default": sig}, tmp_path / "src", "saved_model")
    out = exporter.export(model, tmp_path / "out")
    info = read_proto(out).meta_graphs[0].signature_def["serving_default"].outputs["sp"]
    assert info.WhichOneof("encoding") == "coo_sparse" and info.dtype == types_pb2.DT_FLOAT
    assert info.coo_sparse.values_tensor_name == sp.values.name
    feeds = {"x": np.array([[1, -1, 2], [0, 3, -4]], np.float32)}
    loaded = tf.saved_model.load(str(out))
    got = loaded.signatures["serving_default"](x=tf.constant(feeds["x"]))["sp"]
    np.testing.assert_array_equal(tf.sparse.to_dense(got).numpy(), np.maximum(feeds["x"], 0))


def test_assets_extra_is_copied(tmp_path):
    model = make_model(tmp_path / "src")
    (model.source / "assets.extra").mkdir()
    (model.source / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"warmup")
    out = exporter.export(model, tmp_path / "out")
    assert (out / "assets.extra" / "tf_serving_warmup_requests").read_bytes() == b"warmup"
