"""``graphxform inspect`` on a bare GraphDef against GTT's ``summarize_graph``.

There is no C++ test of ``summarize_graph``; ``summarize_graph_main.cc`` is the
reference. :func:`summarize_graph` below transcribes what ``SummarizeGraph``
computes (not how it prints it):

* possible inputs: the ``Placeholder`` nodes, in graph order, with dtype and shape;
* variables: the ``Variable`` / ``VariableV2`` nodes;
* possible outputs: nodes no other node reads (data or control input) whose op
  is not ``Const``, ``Assign``, ``NoOp`` or ``Placeholder``;
* const parameters: the elements of every ``Const``'s value; variable
  parameters: the elements of a ``Variable``'s ``value`` attr, which variables
  do not have, so always 0 (with a "Decoding Tensor failed" warning);
* the number of control edges, the number of nodes per device;
* an error for an input naming no node ("Invalid graph with inputs referring to
  nonexistent nodes");
* op counts over the graph AND its library functions, in one list.

Each test builds a graph, runs ``graphxform inspect GRAPH.pb --json`` and
compares. Presentation (text layout, dtype and shape spelling, the
benchmark_model hint versus graphxform's ``--inputs/--outputs`` hint, and list
order: graph order in GTT, names sorted in graphxform) is not compared.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import function_pb2, graph_pb2

from .conftest import build, cli, graph_def, node, read_pb, write_pb

UNLIKELY_OUTPUT_TYPES = {"Const", "Assign", "NoOp", "Placeholder"}


def summarize_graph(gd: graph_pb2.GraphDef) -> dict:
    """What ``SummarizeGraph`` (summarize_graph_main.cc) finds in ``gd``."""
    def dtype(n):
        return n.attr["dtype"].type if "dtype" in n.attr else 0

    def shape(n):
        return tf.TensorShape(n.attr["shape"].shape).as_list() if "shape" in n.attr else None

    placeholders = [n for n in gd.node if n.op == "Placeholder"]
    variables = [n for n in gd.node if n.op in ("Variable", "VariableV2")]
    consumed = {i.lstrip("^").split(":")[0] for n in gd.node for i in n.input}  # MapNodesToOutputs
    outputs = [(n.name, n.op) for n in gd.node if n.name not in consumed and n.op not in UNLIKELY_OUTPUT_TYPES]
    const_params = variable_params = control_edges = 0
    devices: Counter[str] = Counter()
    for n in gd.node:
        control_edges += sum(i.startswith("^") for i in n.input)
        if n.device:
            devices[n.device] += 1
        if n.op in ("Const", "Variable", "VariableV2") and "value" in n.attr:
            count = int(np.prod(tf.TensorShape(n.attr["value"].tensor.tensor_shape).as_list()))
            if n.op == "Const":
                const_params += count
            else:
                variable_params += count
    names = {n.name for n in gd.node}
    invalid = [(n.name, i) for n in gd.node for i in n.input if i.lstrip("^").split(":")[0] not in names]
    ops = Counter(n.op for n in gd.node)
    for f in gd.library.function:
        ops.update(n.op for n in f.node_def)
    return {
        "inputs": [(n.name, dtype(n), shape(n)) for n in placeholders],
        "variables": [(n.name, dtype(n), shape(n)) for n in variables],
        "outputs": outputs,
        "const_parameters": const_params,
        "variable_parameters": variable_params,
        "control_edges": control_edges,
        "devices": dict(devices),
        "invalid_inputs": invalid,
        "op_counts": dict(ops),
    }


def inspect(gd, tmp_path) -> dict:
    path = write_pb(gd, tmp_path / "graph.pb")
    code, out, err = cli("inspect", path, "--json", "--top", "1000")
    assert code == 0, err
    return json.loads(out)


def _inputs(summary):
    return sorted((i["name"], tf.as_dtype(i["dtype"].lower().removeprefix("dt_")).as_datatype_enum,
                   None if i["shape"] is None else [None if d == -1 else d for d in i["shape"]])
                  for i in summary["candidate_inputs"])


def _classifier():
    """A plain inference graph: Placeholder -> MatMul(+ bias) -> Softmax -> Identity, and an unused Const."""
    def fn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        w = tf.constant(np.ones([4, 3], np.float32), name="w")
        b = tf.constant(np.zeros([3], np.float32), name="b")
        with tf.device("/device:CPU:0"):
            logits = tf.nn.bias_add(tf.linalg.matmul(x, w, name="matmul"), b, name="logits")
        tf.identity(tf.nn.softmax(logits, name="softmax"), name="probabilities")
        tf.constant(np.zeros([5], np.float32), name="unused")
    return build(fn)


def _training_leftovers():
    """A non-frozen TF1 graph with the nodes summarize_graph and inspect judge differently: a VariableV2 with its
    Assign, a PlaceholderWithDefault, a control dependency on an Assert, a NoOp, an unread VariableV2 and an
    unread Assert."""
    def fn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        keep = tf.compat.v1.placeholder_with_default(tf.constant(1.0), [], name="keep_prob")
        v = tf.compat.v1.Variable(tf.zeros([3, 2]), name="v", use_resource=False)
        y = tf.linalg.matmul(x, v, name="mm")
        check = tf.raw_ops.Assert(condition=tf.constant(True), data=[keep], name="check")
        with tf.control_dependencies([check]):
            tf.identity(y * keep, name="out")
        tf.raw_ops.VariableV2(shape=[7], dtype=tf.float32, name="dangling_var")
        tf.raw_ops.Assert(condition=tf.constant(True), data=[x], name="dangling_assert")
        tf.no_op(name="noop")
    return build(fn)


def test_candidate_inputs_agree(tmp_path):
    """summarize_graph's "possible inputs" (the Placeholders, with dtype and shape) on a plain inference graph."""
    gd = _classifier()
    assert _inputs(inspect(gd, tmp_path)) == sorted(summarize_graph(gd)["inputs"]) == [
        ("input", tf.float32.as_datatype_enum, [None, 4])]


def test_candidate_inputs_placeholder_with_default(tmp_path):
    """summarize_graph's "possible inputs" are ``Placeholder`` ops only: ``keep_prob`` (a PlaceholderWithDefault)
    is not one of them. ``inspect`` lists it apart, under ``inputs_with_default``."""
    gd = _training_leftovers()
    summary = inspect(gd, tmp_path)
    assert _inputs(summary) == sorted(summarize_graph(gd)["inputs"]) == [("x", tf.float32.as_datatype_enum, [None, 3])]
    assert [(i["name"], i["op"]) for i in summary["inputs_with_default"]] == [("keep_prob", "PlaceholderWithDefault")]


def test_candidate_outputs_agree(tmp_path):
    """summarize_graph's "possible outputs" on a plain inference graph: ``probabilities`` (``unused`` is a Const)."""
    gd = _classifier()
    got = sorted((o["name"], o["op"]) for o in inspect(gd, tmp_path)["candidate_outputs"])
    assert got == sorted(summarize_graph(gd)["outputs"]) == [("probabilities", "Identity")]


def test_candidate_outputs_skip_bookkeeping(tmp_path):
    """summarize_graph's "possible outputs" on a graph with training leftovers: besides ``out`` it lists the unread
    VariableV2 ``dangling_var`` and the unread Assert ``dangling_assert``.

    Deliberate difference (docs/inspect.md): ``inspect`` leaves out bookkeeping that nothing reads (variables,
    Asserts, PlaceholderWithDefault, saver, summary and initializer ops, ops without outputs); summarize_graph
    leaves out only Const, Assign, NoOp and Placeholder.
    """
    gd = _training_leftovers()
    got = sorted((o["name"], o["op"]) for o in inspect(gd, tmp_path)["candidate_outputs"])
    gtt = sorted(summarize_graph(gd)["outputs"])
    assert gtt == [("dangling_assert", "Assert"), ("dangling_var", "VariableV2"), ("out", "Identity")]
    assert got == [("out", "Identity")]


def test_variables_agree(tmp_path):
    """summarize_graph's "variables" (Variable/VariableV2 nodes): the same nodes are the ``variable`` entries of
    ``inspect``'s parameter listing (``largest`` with ``--top`` large enough), with their dtypes and shapes."""
    gd = _training_leftovers()
    summary = inspect(gd, tmp_path)
    got = sorted((r["name"], r["dtype"], r["shape"]) for r in summary["largest"] if r["kind"] == "variable")
    gtt = sorted((name, tf.as_dtype(dt).as_datatype_enum, shape) for name, dt, shape in
                 summarize_graph(gd)["variables"])
    assert [n for n, _, _ in got] == [n for n, _, _ in gtt] == ["dangling_var", "v"]
    assert [s for _, _, s in got] == [s for _, _, s in gtt] == [[7], [3, 2]]


def test_const_parameters_agree(tmp_path):
    """summarize_graph's "N const parameters": the elements of every Const in the graph (not in functions)."""
    for gd in (_classifier(), _training_leftovers()):
        assert inspect(gd, tmp_path)["parameters"]["constants"]["count"] == summarize_graph(gd)["const_parameters"]


def test_variable_parameters(tmp_path):
    """summarize_graph's "N variable parameters" reads a ``value`` attr that variables do not have: it prints 0.

    Deliberate difference: ``inspect`` counts a non-frozen graph's variables from their ``shape`` attrs: 6 + 7.
    """
    gd = _training_leftovers()
    assert summarize_graph(gd)["variable_parameters"] == 0
    assert inspect(gd, tmp_path)["parameters"]["variables"]["count"] == 13


def test_control_edges(tmp_path):
    """summarize_graph's "N control_edges": one (``^check`` on ``out``); none in the plain inference graph."""
    gd = _training_leftovers()
    assert inspect(gd, tmp_path)["control_edges"] == summarize_graph(gd)["control_edges"] == 1
    gd = _classifier()
    assert inspect(gd, tmp_path)["control_edges"] == summarize_graph(gd)["control_edges"] == 0
    code, out, _ = cli("inspect", write_pb(_training_leftovers(), tmp_path / "t.pb"))
    assert code == 0 and "1 control edges" in out


def test_device_counts(tmp_path):
    """summarize_graph's "N nodes assigned to device 'D'" (nodes without a device are not counted)."""
    gd = _classifier()
    for n in gd.node:
        if n.name == "softmax":
            n.device = "/job:localhost/replica:0/task:0/device:GPU:0"
    got = inspect(gd, tmp_path)["devices"]
    assert got == summarize_graph(gd)["devices"] == {
        "/device:CPU:0": 2, "/job:localhost/replica:0/task:0/device:GPU:0": 1}
    code, out, _ = cli("inspect", write_pb(gd, tmp_path / "d.pb"))
    assert code == 0 and "/device:CPU:0 (2 nodes)" in out
    assert inspect(_training_leftovers(), tmp_path)["devices"] == {}


def test_op_counts_agree(tmp_path):
    """summarize_graph's "Op types used" counts the graph's nodes and its library functions' nodes together;
    ``inspect`` gives the two histograms apart (``op_histogram``, ``function_op_histogram``): their sum agrees."""
    def fn():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        tf.cond(tf.reduce_sum(x) > 0, lambda: tf.nn.relu(x), lambda: tf.abs(x) * 2.0, name="cond")
    gd = build(fn)
    assert gd.library.function, "the graph should hold functions (tf.cond v2)"
    summary = inspect(gd, tmp_path)
    total = Counter(summary["op_histogram"]) + Counter(summary["function_op_histogram"])
    assert dict(total) == summarize_graph(gd)["op_counts"]


def test_invalid_inputs_are_an_error(tmp_path):
    """summarize_graph refuses a graph whose inputs name missing nodes ("Invalid input missing for node b");
    ``inspect`` refuses it too (exit 2), naming the node and the input."""
    gd = graph_def(node("a", "Placeholder", dtype=tf.float32), node("b", "Relu", ["a", "missing"], T=tf.float32))
    assert summarize_graph(gd)["invalid_inputs"] == [("b", "missing")]
    code, _, err = cli("inspect", write_pb(gd, tmp_path / "bad.pb"), "--json")
    assert code == 2 and "'b'" in err and "'missing'" in err


def test_function_library_graph(tmp_path):
    """A bare GraphDef whose only op calls a library function: summarize_graph counts the PartitionedCall and the
    function's ops, and sees one input (the Placeholder) and one output (``call``). ``inspect`` describes the file's
    graph too (the loader inlines the call for the other commands), and ``call`` works as an output name."""
    f = function_pb2.FunctionDef()
    f.signature.name = "double"
    f.signature.input_arg.add(name="x", type=tf.float32.as_datatype_enum)
    f.signature.output_arg.add(name="y", type=tf.float32.as_datatype_enum)
    f.node_def.add().CopyFrom(node("two", "Const", dtype=tf.float32, value=tf.make_tensor_proto(2.0)))
    f.node_def.add().CopyFrom(node("mul", "Mul", ["x", "two:output:0"], T=tf.float32))
    f.ret["y"] = "mul:z:0"
    gd = graph_def(node("x", "Placeholder", dtype=tf.float32, shape=tf.TensorShape([3]).as_proto()),
                   node("call", "PartitionedCall", ["x"], Tin=[tf.float32], Tout=[tf.float32],
                        f=tf.compat.v1.AttrValue(func=tf.compat.v1.NameAttrList(name="double"))))
    gd.library.function.add().CopyFrom(f)
    gtt = summarize_graph(gd)
    summary = inspect(gd, tmp_path)
    assert dict(Counter(summary["op_histogram"]) + Counter(summary["function_op_histogram"])) == gtt["op_counts"]
    assert _inputs(summary) == gtt["inputs"] == [("x", tf.float32.as_datatype_enum, [3])]
    assert [(o["name"], o["op"]) for o in summary["candidate_outputs"]] == gtt["outputs"] == [
        ("call", "PartitionedCall")]
    assert summary["parameters"]["constants"]["count"] == gtt["const_parameters"] == 0
    assert summary["node_count"] == 2
    out = tmp_path / "out.pb"
    code, _, err = cli("transform", tmp_path / "graph.pb", out, "--inputs", "x", "--outputs", "call",
                       "--transforms", "fold_constants")
    assert code == 0, err
    folded = read_pb(out)
    assert {n.op for n in folded.node} >= {"Placeholder", "Mul"} and "PartitionedCall" not in {n.op for n in folded.node}
