"""Helpers shared by the ports of TensorFlow's Graph Transform Tool (GTT) tests.

The C++ tests (``tensorflow/tools/graph_transforms/*_test.cc``) build a graph
with the C++ ops API or from raw ``NodeDef`` s, call one transform function
with a ``TransformFuncContext`` (input names, output names, parameters), run
the graph before and after in a ``Session`` and check the structure. The ports
build the same graphs in Python and go through graphxform's public API only:
``graphxform.TransformGraph(graph_def, inputs, outputs, transforms)`` and the
``graphxform transform`` / ``graphxform inspect`` commands.

Conventions of the ports:

* each test's docstring names the C++ ``TEST`` it ports;
* a case graphxform would fail is marked ``xfail(strict=True)`` with the gap
  in one line, so that fixing the gap turns the mark into a failure to remove
  (none is left: every ported TEST passes or asserts a deliberate difference);
* a case where graphxform deliberately differs asserts graphxform's
  documented behaviour and says so in its docstring (``Deliberate
  difference: ...``); ``docs/gtt.md`` lists them all.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, tensor_pb2, tensor_shape_pb2

import graphxform

#: ``test::ExpectClose``'s default tolerance for float (5 ulp at 1.0), used as atol and rtol.
FLOAT_EPS5 = 5 * float(np.finfo(np.float32).eps)

ROOT = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------- building graphs
def attr(value: Any) -> attr_value_pb2.AttrValue:
    """An ``AttrValue`` from a Python value.

    DType -> type, bool, int, float, str/bytes, ndarray/TensorProto -> tensor, TensorShapeProto -> shape, and lists of
    DTypes, ints, strings or shapes.
    """
    if isinstance(value, attr_value_pb2.AttrValue):
        return value
    if isinstance(value, tf.DType):
        return attr_value_pb2.AttrValue(type=value.as_datatype_enum)
    if isinstance(value, bool):
        return attr_value_pb2.AttrValue(b=value)
    if isinstance(value, int):
        return attr_value_pb2.AttrValue(i=value)
    if isinstance(value, float):
        return attr_value_pb2.AttrValue(f=value)
    if isinstance(value, str):
        return attr_value_pb2.AttrValue(s=value.encode())
    if isinstance(value, bytes):
        return attr_value_pb2.AttrValue(s=value)
    if isinstance(value, tensor_pb2.TensorProto):
        return attr_value_pb2.AttrValue(tensor=value)
    if isinstance(value, np.ndarray):
        return attr_value_pb2.AttrValue(tensor=tf.make_tensor_proto(value))
    if isinstance(value, tensor_shape_pb2.TensorShapeProto):
        return attr_value_pb2.AttrValue(shape=value)
    if isinstance(value, (list, tuple)):
        out = attr_value_pb2.AttrValue()
        out.list.SetInParent()
        for v in value:
            if isinstance(v, tf.DType):
                out.list.type.append(v.as_datatype_enum)
            elif isinstance(v, tensor_shape_pb2.TensorShapeProto):
                out.list.shape.add().CopyFrom(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                out.list.i.append(v)
            elif isinstance(v, str):
                out.list.s.append(v.encode())
            else:
                raise TypeError(f"cannot put {v!r} in an attr list")
        return out
    raise TypeError(f"cannot make an AttrValue from {value!r}")


def shape_proto(dims: Sequence[int] | None) -> tensor_shape_pb2.TensorShapeProto:
    """``TensorShapeProto`` of ``dims`` (``None``: unknown rank)."""
    return tf.TensorShape(dims).as_proto()


def node(name: str, op: str, inputs: Iterable[str] = (), *, device: str = "", **attrs: Any) -> node_def_pb2.NodeDef:
    """A ``NodeDef``; ``attrs`` are converted with :func:`attr`. With no attrs it is a bare NodeDef, as the C++
    tests build with ``graph_def.add_node()``."""
    n = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs), device=device)
    for key, value in attrs.items():
        n.attr[key].CopyFrom(attr(value))
    return n


def const(name: str, value: Any, dtype: tf.DType = tf.float32, shape: Sequence[int] | None = None,
          inputs: Iterable[str] = ()) -> node_def_pb2.NodeDef:
    """A ``Const`` node holding ``value`` (``tf.make_tensor_proto(value, dtype, shape)``)."""
    return node(name, "Const", inputs, dtype=dtype, value=tf.make_tensor_proto(value, dtype=dtype, shape=shape))


def graph_def(*nodes: node_def_pb2.NodeDef, producer: int | None = None) -> graph_pb2.GraphDef:
    gd = graph_pb2.GraphDef()
    gd.node.extend(nodes)
    if producer is not None:
        gd.versions.producer = producer
    return gd


def tree_graph(**attrs_by_node: dict[str, Any]) -> graph_pb2.GraphDef:
    """The bare graph several C++ tests share: ``mul_node1(add_node2, add_node3)``, ``add_node2(const_node1,
    const_node2)``, ``add_node3(const_node1, const_node3)``, three Consts, ``add_node4(add_node2, add_node3)``.

    ``attrs_by_node``: {node: {attr: value}} added to those nodes (``device`` sets the device).
    """
    def n(name: str, op: str, inputs: Sequence[str] = ()) -> node_def_pb2.NodeDef:
        extra = dict(attrs_by_node.get(name, {}))
        return node(name, op, inputs, device=extra.pop("device", ""), **extra)

    return graph_def(
        n("mul_node1", "Mul", ["add_node2", "add_node3"]),
        n("add_node2", "Add", ["const_node1", "const_node2"]),
        n("add_node3", "Add", ["const_node1", "const_node3"]),
        n("const_node1", "Const"),
        n("const_node2", "Const"),
        n("const_node3", "Const"),
        n("add_node4", "Add", ["add_node2", "add_node3"]),
    )


def build(fn: Any, *, producer: int | None = None) -> graph_pb2.GraphDef:
    """The ``GraphDef`` of ``fn()`` run in a fresh TF1-style graph (the C++ tests' ``Scope::NewRootScope()``).

    ``producer``: the graph's GraphDef version, set before ``fn`` runs (as ``test_util.set_producer_version``),
    so that ops deprecated since (``BatchNormWithGlobalNormalization``) can be built.
    """
    from tensorflow.core.framework import versions_pb2

    g = tf.Graph()
    with g.as_default():
        if producer is not None:
            tf.graph_util.import_graph_def(graph_pb2.GraphDef(versions=versions_pb2.VersionDef(producer=producer)),
                                           name="")
        fn()
    gd = g.as_graph_def()
    if producer is not None:
        assert gd.versions.producer == producer
    return gd


def iota(shape: Sequence[int], start: float = 1.0, dtype: Any = np.float32) -> np.ndarray:
    """``test::FillIota``: ``start, start + 1, ...`` in ``shape``."""
    n = int(np.prod(shape)) if len(shape) else 1
    return (np.arange(n, dtype=np.float64) + start).astype(dtype).reshape(shape)


def values(vals: Sequence[float], shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
    """``test::FillValues``."""
    return np.asarray(vals, dtype=dtype).reshape(shape)


# ----------------------------------------------------------------------------- transforming
def transform(gd: graph_pb2.GraphDef, inputs: Sequence[str], outputs: Sequence[str],
              transforms: str | Sequence[str]) -> graph_pb2.GraphDef:
    """``graphxform.TransformGraph``; the input ``GraphDef`` must come back unmodified."""
    before = gd.SerializeToString(deterministic=True)
    out = graphxform.TransformGraph(gd, list(inputs), list(outputs),
                                    [transforms] if isinstance(transforms, str) else list(transforms))
    assert gd.SerializeToString(deterministic=True) == before, "TransformGraph modified its input"
    return out


def cli(*args: Any) -> tuple[int, str, str]:
    """Run the ``graphxform`` command in-process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from graphxform.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return int(info.value.code or 0), out.getvalue(), err.getvalue()


def write_pb(gd: graph_pb2.GraphDef, path: Path) -> Path:
    path.write_bytes(gd.SerializeToString())
    return path


def read_pb(path: Path) -> graph_pb2.GraphDef:
    return graph_pb2.GraphDef.FromString(Path(path).read_bytes())


# ----------------------------------------------------------------------------- looking at results
def node_map(gd: graph_pb2.GraphDef) -> dict[str, node_def_pb2.NodeDef]:
    """``MapNamesToNodes``."""
    return {n.name: n for n in gd.node}


def op_counts(gd: graph_pb2.GraphDef) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in gd.node:
        out[n.op] = out.get(n.op, 0) + 1
    return out


def tensor_value(n: node_def_pb2.NodeDef) -> np.ndarray:
    """``GetNodeTensorAttr(node, "value")`` as numpy."""
    return tf.make_ndarray(n.attr["value"].tensor)


def expect_near(actual: Any, expected: Any, tol: float) -> None:
    """``test::ExpectTensorNear``: every element within ``tol`` (absolute)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol)


def expect_close(actual: Any, expected: Any, atol: float = FLOAT_EPS5, rtol: float = FLOAT_EPS5) -> None:
    """``test::ExpectClose`` (and Python's ``assertAllClose`` with its tolerances)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def check_expect_suffixes(original: graph_pb2.GraphDef, result: graph_pb2.GraphDef,
                          kept_by_graphxform: Iterable[str] = ()) -> None:
    """ConstantFoldingTest's check: nodes named ``*expect_removed`` are gone, ``*expect_remains`` are there once.

    ``kept_by_graphxform``: ``expect_removed`` nodes graphxform keeps as the folded ``Const`` (it keeps the name
    of the node it folded; GTT gives the constant a new name and drops the node) — they must be ``Const`` s.
    """
    names = [n.name for n in result.node]
    kept = set(kept_by_graphxform)
    for n in original.node:
        count = names.count(n.name)
        if n.name in kept:
            assert count == 1 and node_map(result)[n.name].op == "Const", n.name
        elif n.name.endswith("expect_removed"):
            assert count == 0, n.name
        elif n.name.endswith("expect_remains"):
            assert count == 1, n.name


# ----------------------------------------------------------------------------- running graphs
def run_graph_def(gd: graph_pb2.GraphDef, feeds: dict[str, Any], fetches: Sequence[str]) -> list[np.ndarray]:
    """Import ``gd`` into a fresh graph and run it in a TF1 session, as the C++ tests' ``Session::Run`` does
    (TensorFlow alone: no graphxform code judges graphxform's output). Names may omit ``:0``."""
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")

    def tensor(name: str) -> Any:
        return g.get_tensor_by_name(name if ":" in name else f"{name}:0")

    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)
    with tf.compat.v1.Session(graph=g, config=config) as session:
        out = session.run([tensor(f) for f in fetches], {tensor(k): v for k, v in feeds.items()})
    return [np.asarray(x) for x in out]


def run(gd: graph_pb2.GraphDef, feeds: dict[str, Any] | None, fetches: Sequence[str]) -> list[np.ndarray]:
    """Run ``gd`` in a TF1 session: :func:`run_graph_def` in this process."""
    return run_graph_def(gd, dict(feeds or {}), list(fetches))


_ONEDNN_CHILD = """
import pickle, struct, sys
sys.path.insert(0, "tests")
from tensorflow.core.framework import graph_pb2
from gtt.conftest import run_graph_def
src, dst = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = src.read(8)
    if len(head) < 8:
        break
    gd, feeds, fetches = pickle.loads(src.read(struct.unpack("<Q", head)[0]))
    try:
        reply = ("ok", run_graph_def(graph_pb2.GraphDef.FromString(gd), feeds, fetches))
    except Exception as exc:  # reported to the test
        reply = ("error", f"{type(exc).__name__}: {exc}")
    data = pickle.dumps(reply)
    dst.write(struct.pack("<Q", len(data)) + data)
    dst.flush()
"""


class _OneDNNRunner:
    """One child process with oneDNN on, kept for the whole session: each NCHW graph costs a message, not a
    TensorFlow import."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self, gd: graph_pb2.GraphDef, feeds: dict[str, Any], fetches: Sequence[str]) -> list[np.ndarray]:
        import struct

        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
            self.proc = subprocess.Popen([sys.executable, "-c", _ONEDNN_CHILD], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = pickle.dumps((gd.SerializeToString(), dict(feeds), list(fetches)))
        self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
        self.proc.stdin.flush()
        head = self.proc.stdout.read(8)
        assert len(head) == 8, "the oneDNN child process died"
        status, value = pickle.loads(self.proc.stdout.read(struct.unpack("<Q", head)[0]))  # noqa: S301 - our child
        assert status == "ok", value
        return value

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


_onednn = _OneDNNRunner()


@pytest.fixture(scope="session", autouse=True)
def _close_onednn_child():
    yield
    _onednn.close()


def run_nchw(gd: graph_pb2.GraphDef, feeds: dict[str, Any] | None, fetches: Sequence[str]) -> list[np.ndarray]:
    """:func:`run` for graphs with NCHW convolutions.

    TensorFlow's own CPU kernels take NHWC only; NCHW runs through oneDNN, which TensorFlow turns on by default on
    some CPUs only (see ``run_nchw`` in tests/conftest.py). Where it is off in this process, the graph runs in a
    child process with oneDNN on, started once per test session.
    """
    from tensorflow.python.util import _pywrap_util_port

    if _pywrap_util_port.IsMklEnabled():
        return run(gd, feeds, fetches)
    return _onednn.run(gd, dict(feeds or {}), fetches)


__all__ = [
    "FLOAT_EPS5", "attr", "build", "check_expect_suffixes", "cli", "const", "expect_close", "expect_near",
    "graph_def", "iota", "node", "node_map", "op_counts", "read_pb", "run", "run_nchw", "shape_proto",
    "tensor_value", "transform", "tree_graph", "values", "write_pb",
]
