"""TensorFlow's C++ SavedModel loader through the C API: loads what TF Serving loads, refuses what it refuses."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import fixture_path, load_samples

FIXTURES = ["estimator_dnn", "estimator_linear", "keras_bn", "tf2_lookup"]


@pytest.mark.parametrize("name", FIXTURES)
def test_c_loader_runs_every_signature_like_the_tf1_loader(name):
    from graphxform.tf.capi import CSavedModelSession
    from graphxform.tf.runners import SavedModelRunner

    path = fixture_path(name)
    samples = load_samples(name)
    ref = SavedModelRunner(path)
    with CSavedModelSession(path) as s:
        keys = sorted(k for k in s.meta_graph.signature_def if not k.startswith("__"))
        assert keys == sorted(ref.signatures)
        for key in keys:
            sd = s.meta_graph.signature_def[key]
            feeds = samples[key]
            outs = sorted(sd.outputs)
            got = s.run({sd.inputs[k].name: (v, sd.inputs[k].dtype) for k, v in feeds.items()},
                        [sd.outputs[o].name for o in outs])
            want = ref.run(key, feeds)
            for o, g in zip(outs, got):
                if g.dtype == object:
                    assert g.tolist() == np.asarray(want[o]).tolist(), (key, o)
                else:
                    np.testing.assert_array_equal(g, want[o], err_msg=f"{key}/{o}")
    ref.close()


def test_c_loader_refuses_a_node_whose_attr_has_no_value(tmp_path):
    """The C++ loader validates NodeDefs against OpDefs (Python's loaders do not): an empty AttrValue is refused."""
    import shutil

    from tensorflow.core.protobuf import saved_model_pb2

    from graphxform.tf.capi import CLoaderError, CSavedModelSession

    out = tmp_path / "broken"
    shutil.copytree(fixture_path("estimator_dnn"), out)
    sm = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    node = next(n for n in sm.meta_graphs[0].graph_def.node if n.op == "MatMul")
    node.attr["transpose_b"].Clear()
    (out / "saved_model.pb").write_bytes(sm.SerializeToString())
    with pytest.raises(CLoaderError, match=rf"transpose_b.*{node.name}"):  # TensorFlow's own check
        CSavedModelSession(out, validate=False)
    with pytest.raises(CLoaderError, match=rf"node '{node.name}' \(MatMul\): .*transpose_b"):  # graphxform's, first
        CSavedModelSession(out)


def test_graph_def_session_runs_a_frozen_graph_with_scalars_strings_and_init_targets():
    """TensorFlow's C++ session over a GraphDef (Session::Create): feeds keep their rank (a scalar stays one)."""
    import tensorflow as tf

    from graphxform.tf.capi import CGraphDefSession, CLoaderError
    from graphxform.tf.session import run_graph_def

    g = tf.Graph()
    with g.as_default():
        flag = tf.compat.v1.placeholder(tf.bool, None, name="flag")
        words = tf.compat.v1.placeholder(tf.string, [None], name="words")
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(["a", "b"], [1, 2]), -1)
        tf.identity(tf.shape(flag), name="flag_shape")
        tf.identity(table.lookup(words), name="ids")
        tf.compat.v1.tables_initializer(name="init_all_tables")
    gd = g.as_graph_def()
    feeds = {"flag:0": np.array(True), "words:0": np.array([b"b", b"zz", b"a"], dtype=object)}
    with CGraphDefSession(gd.SerializeToString()) as s:
        s.run({}, [], ["init_all_tables"])
        shape, ids = s.run(feeds, ["flag_shape:0", "ids:0"])
    want = run_graph_def(gd, feeds, ["flag_shape:0", "ids:0"], init_ops=["init_all_tables"])
    assert shape.tolist() == [] == want[0].tolist()
    np.testing.assert_array_equal(ids, want[1])
    with CGraphDefSession(gd.SerializeToString()) as s, pytest.raises(CLoaderError, match="nope"):
        s.run(feeds, ["nope:0"])
