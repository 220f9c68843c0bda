"""Reading and writing a GraphDef a node at a time (savedmodel/stream.py, wire.py), and core/memory.py.

Read node by node, a file must give exactly what parsing it whole gives (nodes, library, versions), whatever
the block boundaries; each node is then a message of its own that the Graph keeps without a copy. Files that
are not a well-formed binary GraphDef still get the whole-file parse and its error.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import fixture_path
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2

from graphxform.core import memory
from graphxform.core.graph import Graph
from graphxform.model.loader import load
from graphxform.savedmodel import stream, wire
from graphxform.savedmodel.read import read_model_file
from graphxform.tf.session import run_graph_def


def _frozen_graph_with_function() -> graph_pb2.GraphDef:
    """A graph made as TF users make one (tf.function, frozen), with a weight over one read block, a function in
    its library and its versions."""
    w = np.random.default_rng(0).standard_normal((600, 600)).astype(np.float32)  # 1.4 MB, a Const in the graph

    @tf.function
    def square(v):
        return v * v

    @tf.function(input_signature=[tf.TensorSpec([None, 600], tf.float32)])
    def f(x):
        return tf.nn.relu(tf.matmul(x, tf.constant(w))) + 1.0

    gd = f.get_concrete_function().graph.as_graph_def()
    gd.library.function.add().CopyFrom(square.get_concrete_function(tf.constant(1.0)).function_def)
    return gd


@pytest.mark.parametrize("block", [7, 4096, stream.BLOCK_BYTES])
def test_node_by_node_equals_whole_parse(tmp_path, monkeypatch, block):
    gd = _frozen_graph_with_function()
    path = tmp_path / "model.pb"
    path.write_bytes(gd.SerializeToString())
    monkeypatch.setattr(stream, "BLOCK_BYTES", block)
    read = stream.read_graph_def_nodes(path)
    assert read is not None
    assert len(read.node) == len(gd.node) and len(read.library.function) == 1
    assert read.versions == gd.versions
    assert read.to_graph_def().SerializeToString(deterministic=True) == gd.SerializeToString(deterministic=True)


def test_loaded_graph_keeps_the_nodes_read_and_computes_the_same(tmp_path):
    gd = _frozen_graph_with_function()
    path = tmp_path / "model.pb"
    path.write_bytes(gd.SerializeToString())
    kind, read = read_model_file(path)
    assert kind == "graph_def" and isinstance(read, stream.NodeListGraphDef)
    graph = Graph(read)
    assert all(graph.node(n.name) is n for n in read.node)  # kept, not copied: each node its own message
    x = np.random.default_rng(1).standard_normal((3, 600)).astype(np.float32)
    out = gd.node[-1].name
    model = load(path, inputs=["x"], outputs=[out])
    (want,) = run_graph_def(gd, {"x:0": x}, [f"{out}:0"])
    (got,) = run_graph_def(model.graph.to_graph_def(), {"x:0": x}, [f"{out}:0"])
    np.testing.assert_array_equal(got, want)


def test_not_a_graph_def_is_left_to_the_whole_parse(tmp_path):
    """Text, truncated and SavedModel files are not read node by node (the whole parse tells what they are)."""
    data = fixture_path("tf1_frozen_bn.pb").read_bytes()
    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes(data[: len(data) // 2])
    assert stream.read_graph_def_nodes(truncated) is None
    saved_model = tmp_path / "model.pb"  # a SavedModel proto under a GraphDef's name
    saved_model.write_bytes(fixture_path("keras_bn/saved_model.pb").read_bytes())
    assert stream.read_graph_def_nodes(saved_model) is None
    assert read_model_file(saved_model)[0] == "saved_model"
    text = tmp_path / "model.pbtxt"
    text.write_bytes(fixture_path("tf1_frozen_bn.pbtxt").read_bytes())
    kind, proto = read_model_file(text)
    assert kind == "graph_def" and isinstance(proto, graph_pb2.GraphDef)


def test_memory_helpers_leave_a_user_setting_alone(monkeypatch):
    memory.trim()  # harmless at any time
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert memory.keep_mmap_threshold.__wrapped__() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert memory.keep_mmap_threshold.__wrapped__() is (memory._libc() is not None)  # noqa: SLF001


def _const(name: str, value: np.ndarray, **attrs) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Const", device="/device:CPU:0")
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    node.attr["dtype"].type = node.attr["value"].tensor.dtype
    for key, attr in attrs.items():
        node.attr[key].CopyFrom(attr)
    return node


def test_big_tensors_are_written_from_their_bytes_as_protobuf_writes_them():
    """A node holding a big tensor is written in pieces, its tensor_content one of them; joined they are the
    node's deterministic serialization (without _output_shapes), and node_size says how many bytes."""
    rng = np.random.default_rng(0)
    loc = attr_value_pb2.AttrValue()
    loc.list.s.append(b"loc:@other")
    shapes = attr_value_pb2.AttrValue()
    shapes.list.shape.add().dim.add(size=300)
    big = rng.standard_normal((300, 200)).astype(np.float32)
    nodes = [
        _const("w", big),
        _const("w_class", big, _class=loc, _output_shapes=shapes),
        _const("w_int8", rng.integers(-128, 127, (400, 400)).astype(np.int8)),
        _const("empty", np.zeros((0, 100000), np.float32)),  # no bytes at all
        _const("small", np.ones((4, 4), np.float32)),  # not big: serialized whole
        _const("strings", np.array([b"a" * 100] * 2000, dtype=object)),  # strings: serialized whole
    ]
    splat = _const("splat", np.zeros((1,), np.float32))
    splat.attr["value"].tensor.tensor_shape.dim[0].size = 100000
    splat.attr["value"].tensor.ClearField("tensor_content")
    splat.attr["value"].tensor.float_val.append(0.0)  # a splat: *_val field, serialized whole
    nodes.append(splat)
    for node in nodes:
        expected = wire.without_output_shapes(node).SerializeToString(deterministic=True)
        pieces = wire.node_pieces(node)
        assert b"".join(pieces) == expected, node.name
        assert wire.node_size(node) == len(expected)
        if node.name.startswith("w"):
            content = node.attr["value"].tensor.tensor_content
            assert content in pieces and len(pieces) > 2  # the content is a piece of its own, not joined
    writer = wire.GraphWriter(Graph(graph_pb2.GraphDef(node=nodes)))
    gd = writer.to_graph_def()
    assert b"".join(writer.chunks()) == gd.SerializeToString(deterministic=True)
    assert writer.ByteSize() == gd.ByteSize()


def test_trimmer_trims_once_per_threshold_of_weights_let_go(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append(1))
    big = _const("w", np.zeros((300, 200), np.float32))  # 60,000 elements
    assert memory.const_elements(big) == 60_000
    assert memory.const_elements(node_def_pb2.NodeDef(name="x", op="Placeholder")) == 0
    trimmer = memory.Trimmer(every=100_000)
    trimmer.let_go(memory.const_elements(big))
    assert calls == []
    trimmer.let_go(memory.const_elements(big))
    assert calls == [1]  # 120,000 let go: one trim, and the count starts again
    trimmer.let_go(0)
    assert calls == [1]
    passing = memory.Trimmer(every=100_000)
    for _ in range(3):  # the node passed on is counted, its trim comes at the next one (it is let go by then)
        assert passing.passing(big) is big
    assert calls == [1, 1]


def test_take_graph_def_moves_every_node_and_leaves_the_input_alone():
    gd = _frozen_graph_with_function()
    original = gd.SerializeToString(deterministic=True)
    graph = Graph(gd)
    out = graph.take_graph_def()
    assert out.SerializeToString(deterministic=True) == original  # the same graph, moved out
    assert gd.SerializeToString(deterministic=True) == original and len(graph) == 0


def _matmul_graph(w: np.ndarray, *, fold: bool) -> graph_pb2.GraphDef:
    """``y = x @ W`` (``fold``: ``x @ (W * 2)``, a product the rules fold into a new weight), as a TF1 user builds it."""
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, w.shape[0]], name="x")
        weight = tf.constant(w, name="w")
        tf.identity(tf.matmul(x, weight * 2.0 if fold else weight), name="y")
    return g.as_graph_def()


@pytest.mark.parametrize("fold", [False, True])
def test_transform_graph_trims_for_the_weights_it_lets_go_not_for_the_callers(monkeypatch, fold):
    """TransformGraph builds its output as the Graph lets its nodes go: a trim is due for a weight the rules made
    (freed as it is copied), never for the caller's own nodes, which its GraphDef still holds."""
    from graphxform.jobs import gtt

    made: list[memory.Trimmer] = []

    class Recorded(memory.Trimmer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(gtt, "Trimmer", Recorded)
    w = np.random.default_rng(0).standard_normal((600, 600)).astype(np.float32)  # 360,000 elements
    assert w.size > memory.Trimmer().every
    gd = _matmul_graph(w, fold=fold)
    original = gd.SerializeToString(deterministic=True)
    out = gtt.TransformGraph(gd, ["x"], ["y"], ["fold_constants"])
    assert gd.SerializeToString(deterministic=True) == original  # the input is left as it was
    assert len(made) == 1 and made[0].trims == (1 if fold else 0)
    assert "Mul" not in {n.op for n in out.node} and len(out.node) == 4  # x, the weight, MatMul, y
    x = np.random.default_rng(1).standard_normal((3, 600)).astype(np.float32)
    np.testing.assert_allclose(run_graph_def(out, {"x:0": x}, ["y:0"])[0],
                               run_graph_def(gd, {"x:0": x}, ["y:0"])[0], rtol=1e-5, atol=1e-4)


def test_trimmer_does_not_count_the_nodes_something_else_holds(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append(1))
    big = _const("w", np.zeros((300, 200), np.float32))  # 60,000 elements
    other = _const("v", np.zeros((300, 200), np.float32))
    trimmer = memory.Trimmer(every=100_000, kept={id(big)})
    for _ in range(4):
        trimmer.passing(big)
    assert calls == [] and trimmer.trims == 0  # held elsewhere: letting it go frees nothing
    for node in (other, other, big):
        trimmer.passing(node)
    assert calls == [1] and trimmer.trims == 1  # the two others' 120,000 elements
