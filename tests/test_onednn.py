"""With TensorFlow's oneDNN rewrites on (its default on CPUs with AVX-512 or AMX), a node its C++ session refuses
aborts the whole process: the layout pass ``CHECK``-fails on it before the session can return an error. The C++
sessions graphxform opens (``verify``'s loaders, the exporter's checks) validate the nodes first, so a broken model
is reported, never a crash. Run in child processes with ``TF_ENABLE_ONEDNN_OPTS=1`` (the other tests run without
the rewrites: ``conftest.py``)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

from conftest import FIXTURES, ROOT

_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from graphxform.tf.capi import CGraphDefSession, CLoaderError, CSavedModelSession

    def matmul_without_transpose_b():
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
            tf.identity(tf.matmul(x, tf.constant(np.ones((3, 2), np.float32)), name="mm"), name="y")
        gd = g.as_graph_def()
        next(n for n in gd.node if n.op == "MatMul").attr["transpose_b"].Clear()
        return gd.SerializeToString()

    what = sys.argv[1]
    try:
        if what == "saved_model":
            CSavedModelSession(sys.argv[2])
        else:
            with CGraphDefSession(matmul_without_transpose_b(), validate=what == "validated") as s:
                s.run({"x:0": np.ones((2, 3), np.float32)}, ["y:0"])
    except CLoaderError as exc:
        print("REFUSED", exc)
        sys.exit(0)
    print("RAN")
""")


def _child(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_a_refused_node_is_reported_not_a_crash_with_onednn_on():
    res = _child("validated")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "REFUSED" in res.stdout and "transpose_b" in res.stdout and "node 'mm' (MatMul)" in res.stdout
    # What the check spares: TensorFlow's own session, handed the node, aborts (or, should a later TensorFlow
    # fix its layout pass, refuses it); it never runs it.
    raw = _child("raw")
    assert raw.returncode != 0 and "mkl_layout_pass" in raw.stderr or "REFUSED" in raw.stdout, raw.stderr[-2000:]
    assert "RAN" not in raw.stdout


def test_a_saved_model_with_a_refused_node_is_reported_with_onednn_on(tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    model = tmp_path / "model"
    shutil.copytree(FIXTURES / "estimator_dnn", model)
    sm = saved_model_pb2.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    mm = next(n for n in sm.meta_graphs[0].graph_def.node if n.op == "MatMul")
    mm.attr["transpose_b"].Clear()
    (model / "saved_model.pb").write_bytes(sm.SerializeToString())
    res = _child("saved_model", str(model))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "REFUSED" in res.stdout and "would refuse the model" in res.stdout and "transpose_b" in res.stdout
