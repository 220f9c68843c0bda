"""Shared test helpers: fixture paths, building small graphs, running them in TensorFlow."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow turns its oneDNN rewrites on by itself on CPUs with AVX-512 or AMX only; they change float rounding,
# so figures recorded on one machine (the README's int8-vs-TFLite table) would not reproduce on another. The tests
# run without them wherever they run (child processes inherit it); tests/test_onednn.py runs with them forced on.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SAMPLES = FIXTURES / "samples"


def fixture_path(name: str) -> Path:
    """``fixtures/<name>``; the test is skipped when that fixture has not been generated."""
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {name} not generated yet")
    return path


def load_samples(name: str) -> dict[str, dict[str, np.ndarray]]:
    """{signature key: {input key: array}} from ``fixtures/samples/<name>.npz``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(SAMPLES / f"{name}.npz", allow_pickle=False) as data:
        for key in data.files:
            sig, _, inp = key.partition("/")
            out.setdefault(sig, {})[inp] = data[key]
    return out


def graph_def_of(fn):
    """Build a ``GraphDef`` by calling ``fn()`` inside a fresh TF1-style graph."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        fn()
    return g.as_graph_def()


def run(graph_def, feeds, fetches):
    """Run a ``GraphDef`` (or ``Graph``) in TensorFlow; returns the fetched arrays."""
    from graphxform.tf.session import run_graph_def

    if hasattr(graph_def, "to_graph_def"):
        graph_def = graph_def.to_graph_def()
    return run_graph_def(graph_def, feeds, fetches)


def run_nchw(graph_def, feeds, fetches):
    """:func:`run` for graphs with NCHW convolutions.

    TensorFlow's own CPU kernels take NHWC only; NCHW runs through oneDNN,
    which TensorFlow turns on by default on some CPUs only. Where it is off in
    this process, the graph runs in a child process with
    ``TF_ENABLE_ONEDNN_OPTS=1``.
    """
    import pickle
    import subprocess
    import sys

    from tensorflow.python.util import _pywrap_util_port

    if hasattr(graph_def, "to_graph_def"):
        graph_def = graph_def.to_graph_def()
    if _pywrap_util_port.IsMklEnabled():
        return run(graph_def, feeds, fetches)
    code = (
        "import pickle, sys\n"
        "from tensorflow.core.framework import graph_pb2\n"
        "from graphxform.tf.session import run_graph_def\n"
        "gd, feeds, fetches = pickle.load(sys.stdin.buffer)\n"
        "out = run_graph_def(graph_pb2.GraphDef.FromString(gd), feeds, fetches)\n"
        "pickle.dump([__import__('numpy').asarray(o) for o in out], sys.stdout.buffer)\n"
    )
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    data = pickle.dumps((graph_def.SerializeToString(), dict(feeds), list(fetches)))
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, env=env, cwd=ROOT,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return pickle.loads(proc.stdout)  # noqa: S301 - our own child's output


def assert_close(a, b, rtol=1e-6, atol=1e-6):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def signature_outputs(model, fixture: str) -> dict:
    """{signature: {output: array}} of every signature of ``model`` on the fixture's sample inputs."""
    from graphxform.tf.session import model_session, run_signature

    session = model_session(model)
    try:
        return {k: run_signature(model, k, feeds, session=session) for k, feeds in load_samples(fixture).items()}
    finally:
        session.close()


def assert_same_outputs(before: dict, after: dict, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """Floats within tolerance, everything else exactly equal, for every signature output."""
    assert set(after) == set(before) and before
    for key, outs in before.items():
        for name, value in outs.items():
            if value.dtype.kind in "fc":
                np.testing.assert_allclose(after[key][name], value, rtol=rtol, atol=atol)
            else:
                np.testing.assert_array_equal(after[key][name], value)


@contextlib.contextmanager
def control_flow_v1():
    """Build TF1 control flow (Enter/Switch/Merge frames) instead of functional While/If."""
    import tensorflow as tf

    was_v2 = tf.compat.v1.control_flow_v2_enabled()
    tf.compat.v1.disable_control_flow_v2()
    try:
        yield
    finally:
        if was_v2:
            tf.compat.v1.enable_control_flow_v2()
