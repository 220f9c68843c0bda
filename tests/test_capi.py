"""TensorFlow's C++ SavedModel loader through the C API: loads what TF Serving loads, refuses what it refuses."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fixture_path, load_samples

FIXTURES = ["estimator_dnn", "estimator_linear", "keras_bn", "tf2_lookup"]


@pytest.mark.parametrize("name", FIXTURES)
def test_c_loader_runs_every_signature_like_the_tf1_loader(name):
    from graphxform.capi import CSavedModelSession
    from graphxform.verify import SavedModelRunner

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

    from graphxform.capi import CLoaderError, CSavedModelSession

    out = tmp_path / "broken"
    shutil.copytree(fixture_path("estimator_dnn"), out)
    sm = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    node = next(n for n in sm.meta_graphs[0].graph_def.node if n.op == "MatMul")
    node.attr["transpose_b"].Clear()
    (out / "saved_model.pb").write_bytes(sm.SerializeToString())
    with pytest.raises(CLoaderError, match=rf"transpose_b.*{node.name}"):
        CSavedModelSession(out)
