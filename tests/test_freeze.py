"""Freezing: variables → constants from the checkpoint, save/restore/init machinery removed.

Every signature of every model must compute the same values after freezing
as TensorFlow's own loaders compute on the original SavedModel (TF1 loader
session for TF1 graphs, ``tf.saved_model.load(...).signatures[key]`` for TF2).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import load_samples
from tensorflow.core.framework import graph_pb2
from test_loader import (
    assert_outputs_equal,
    build_tf1_saved_model,
    build_tf2_saved_model,
    fixture_path,
    tf1_reference,
    tf2_reference,
)

from graphxform.core.errors import GraphError
from graphxform.core.opdefs import CHECKPOINT_OPS as SAVER_OPS
from graphxform.model.freeze import LEFTOVER_OPS, freeze_model
from graphxform.model.loader import load
from graphxform.model.model import Model
from graphxform.tf.session import run_signature

SAVED_MODEL_FIXTURES = ["estimator_dnn", "estimator_linear", "keras_bn", "tf2_lookup"]
TF2_FIXTURES = {"keras_bn", "tf2_lookup"}
MACHINERY_OPS = SAVER_OPS | {"AssignVariableOp", "Assign", "VarIsInitializedOp", "IsVariableInitialized",
                             "DisableCopyOnRead"}


class Case:
    """One model: the original (loaded, not frozen), the frozen one, samples and TF's reference outputs."""

    def __init__(self, name: str, path: Path, samples: dict, tf2: bool) -> None:
        self.name, self.path, self.samples = name, path, samples
        self.original = load(path)
        self.frozen = load(path)
        self.n_vars = len(self.frozen.graph.nodes_by_op("VarHandleOp", "VariableV2"))
        self.result = freeze_model(self.frozen)
        self.reference = tf2_reference(path, samples) if tf2 else tf1_reference(path, samples)


@pytest.fixture(scope="module", params=SAVED_MODEL_FIXTURES)
def case(request):
    name = request.param
    path = fixture_path(name)
    return Case(name, path, load_samples(name), name in TF2_FIXTURES)


@pytest.fixture(scope="module")
def tf1_case(tmp_path_factory):
    info = build_tf1_saved_model(tmp_path_factory.mktemp("tf1") / "model")
    c = Case("tf1_builder", info["path"], info["samples"], tf2=False)
    c.info = info
    return c


@pytest.fixture(scope="module")
def tf2_case(tmp_path_factory):
    info = build_tf2_saved_model(tmp_path_factory.mktemp("tf2") / "model")
    c = Case("tf2_module", info["path"], info["samples"], tf2=True)
    c.info = info
    return c


def check_frozen(c: Case) -> None:
    model = c.frozen
    assert c.result is model  # in place
    assert model.frozen and model.variables is None
    assert model.graph.lint() == []
    left = model.graph.nodes_by_op(*LEFTOVER_OPS, *MACHINERY_OPS)
    assert not left, [(n.name, n.op) for n in left]
    assert c.n_vars > 0
    assert model.meta_info["saver_def"] is None
    assert "variables" not in model.meta_info.get("collection_def", {})
    # What the model must keep to serve: init op, table initializers (reachable from the init op), assets.
    assert model.init_op in model.graph
    keep = model.graph.ancestors([model.init_op]) | set(model.table_initializers)
    for t in c.original.table_initializers:
        assert t in keep
    for a in model.assets:
        assert a.tensor_name.split(":")[0] in model.graph
    assert model.signatures.keys() == c.original.signatures.keys()


def check_outputs(c: Case) -> None:
    for key, inputs in c.samples.items():
        got = run_signature(c.frozen, key, inputs)
        assert_outputs_equal(got, c.reference[key])


# --------------------------------------------------------------------------- fixtures from fixtures/
def test_fixture_freezes_cleanly(case):
    check_frozen(case)


def test_fixture_every_signature_matches_tf(case):
    assert set(case.samples) == set(case.frozen.signatures)
    check_outputs(case)


def test_fixture_reads_became_identities(case):
    """Each read of a variable is now an Identity of a Const holding the checkpoint value."""
    g = case.frozen.graph
    reads = [n for n in case.original.graph.nodes_by_op("ReadVariableOp") if n.name in g]
    assert reads
    for r in reads:
        node = g.node(r.name)
        assert node.op == "Identity"
        src = g.node(node.input[0])
        assert src.op in ("Const", "Identity", "Placeholder")
    if case.name in ("estimator_dnn", "tf2_lookup"):  # embeddings read through ResourceGather
        gathers = [n for n in case.original.graph.nodes_by_op("ResourceGather") if n.name in g]
        assert gathers and all(g.node(n.name).op == "GatherV2" for n in gathers)


def test_fixture_values_come_from_checkpoint(case):
    """Frozen constants equal the checkpoint tensors TF's reader returns: by name for TF1 graphs; for
    object-based TF2 checkpoints (keys name objects, not nodes) each equals one of the saved tensors."""
    g = case.frozen.graph
    frozen = [v.name for v in case.original.graph.nodes_by_op("VarHandleOp") if v.name in g]
    assert frozen and all(g.node(n).op == "Const" for n in frozen)
    reader = tf.train.load_checkpoint(str(case.original.variables.checkpoint_prefix))
    if case.name in TF2_FIXTURES:
        saved = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()]
        for n in frozen:
            value = g.const_value(n)
            assert any(np.shape(r) == value.shape and np.array_equal(r, value) for r in saved), n
        return
    for n in frozen:
        key = case.original.graph.node(n).attr["shared_name"].s.decode() or n
        np.testing.assert_array_equal(g.const_value(n), reader.get_tensor(key))


def test_estimator_linear_summary_ifs_specialised():
    """The zero_fraction summaries pass variable handles into If nodes: their branches get value copies."""
    path = fixture_path("estimator_linear")
    original = load(path)
    ifs = [n for n in original.graph.nodes_by_op("If")
           if any(original.graph.node(i).op == "VarHandleOp" for i in n.input if not i.startswith("^"))]
    assert ifs
    model = freeze_model(load(path))
    lib = {f.signature.name: f for f in model.graph.library.function}
    for n in ifs:
        node = model.graph.node(n.name)
        assert tf.as_dtype(node.attr["Tin"].list.type[0]) == tf.float32
        for branch in ("then_branch", "else_branch"):
            fdef = lib[node.attr[branch].func.name]
            assert fdef.signature.name.endswith("_frozen")
            assert fdef.signature.input_arg[0].type == tf.float32.as_datatype_enum
            assert not [x for x in fdef.node_def if x.op == "ReadVariableOp"]
    # The summary still computes: fetch it on the frozen graph.
    from graphxform.tf.session import model_session

    with model_session(model) as s:
        (frac,) = s.run({}, [f"{ifs[0].name}:0"])
    assert np.isfinite(frac)


def test_keras_unrestored_duplicates_dropped():
    """Keras 3 exports keep uninitialized twin variables nobody serves from: they vanish, no error."""
    path = fixture_path("keras_bn")
    original = load(path)
    model = freeze_model(load(path))
    consts = {n.name for n in model.graph.nodes_by_op("Const")}
    restored = [n.name for n in original.graph.nodes_by_op("VarHandleOp") if n.name in consts]
    assert restored
    dropped = [n.name for n in original.graph.nodes_by_op("VarHandleOp") if n.name not in model.graph]
    assert dropped
    for sig in model.signatures.values():
        deps = model.graph.ancestors([s.name for s in sig.outputs.values()])
        assert not set(dropped) & deps


# --------------------------------------------------------------------------- own TF1 SavedModel
def test_tf1_builder_freezes(tf1_case):
    check_frozen(tf1_case)
    dense = {"serving_default": tf1_case.samples["serving_default"]}
    for key, inputs in dense.items():
        assert_outputs_equal(run_signature(tf1_case.frozen, key, inputs), tf1_case.reference[key])


def test_tf1_builder_rewrites(tf1_case):
    g, og = tf1_case.frozen.graph, tf1_case.original.graph
    # Reference variable: VariableV2 → Const; its /read Identity stays and reads it.
    assert og.node("b_ref").op == "VariableV2"
    assert g.node("b_ref").op == "Const"
    assert g.node("b_ref/read").op == "Identity" and g.node("b_ref/read").input[0] == "b_ref"
    np.testing.assert_array_equal(g.const_value("b_ref"), np.array([1.5, -1.0], np.float32))
    # Resource variable with the value saved after training (w was doubled before export).
    reader = tf.train.load_checkpoint(str(tf1_case.original.variables.checkpoint_prefix))
    np.testing.assert_array_equal(g.const_value("w"), reader.get_tensor("w"))
    # Local variable: not in the checkpoint, computed by the main op → read after running it.
    assert not reader.has_tensor("scale_local")
    np.testing.assert_allclose(g.const_value("scale_local"), [1.0, 1.5])
    # ResourceGather → GatherV2 with an axis constant.
    (gather,) = [n for n in og.nodes_by_op("ResourceGather")]
    new = g.node(gather.name)
    assert new.op == "GatherV2"
    assert g.const_value(new.input[2]) == 0
    assert new.input[0] == "emb" and g.node("emb").op == "Const"
    # Saver subgraph gone, init op and table initializer kept, initializers of variables gone.
    assert not [n for n in g if n.name.startswith("save/")]
    assert "main_op_group" in g and "text_file_init/InitializeTableFromTextFileV2" in g
    assert "w/Assign" in og and "w/Assign" not in g
    assert og.nodes_by_op("StatelessRandomNormalV2") and not g.nodes_by_op("StatelessRandomNormalV2")


def test_tf1_other_meta_graph_freezes(tf1_case):
    model = freeze_model(load(tf1_case.path, "serve,gpu"))
    assert model.graph.lint() == []
    ref = tf1_reference(tf1_case.path, tf1_case.samples, tags=("serve", "gpu"))["serving_default"]
    assert_outputs_equal(run_signature(model, "serving_default", tf1_case.samples["serving_default"]), ref)


# --------------------------------------------------------------------------- own TF2 SavedModel
def test_tf2_module_freezes(tf2_case):
    check_frozen(tf2_case)
    check_outputs(tf2_case)


def test_tf2_control_flow_reads_values(tf2_case):
    """If/While that received variable handles now get values; their functions were specialised."""
    g = tf2_case.frozen.graph
    lib = {f.signature.name: f for f in g.library.function}
    for node in g.nodes_by_op("If", "While"):
        types = node.attr["Tin" if node.op == "If" else "T"].list.type
        assert tf.resource.as_datatype_enum not in types
        for a in node.attr.values():
            if a.HasField("func"):
                body = lib[a.func.name]
                assert not [n for n in body.node_def if n.op in ("ReadVariableOp", "ResourceGather")]
                assert all(arg.type != tf.resource.as_datatype_enum for arg in body.signature.input_arg)


def test_tf2_asset_path_variable_aliased(tf2_case):
    """TF2 keeps the asset path in a variable assigned by the init op: it becomes the asset placeholder."""
    model = tf2_case.frozen
    (asset,) = model.assets
    (init,) = model.graph.nodes_by_op("InitializeTableFromTextFileV2")
    path_input = model.graph.node(init.input[1])
    assert path_input.op == "Identity" and path_input.input[0] == asset.tensor_name.split(":")[0]
    assert model.graph.node(asset.tensor_name).op == "Placeholder"


# --------------------------------------------------------------------------- edge cases
def test_freeze_is_idempotent(tf2_case):
    model = tf2_case.frozen
    before = model.graph.to_graph_def()
    assert freeze_model(model) is model
    assert model.graph.to_graph_def() == before


def test_bare_graph_def_with_variables_cannot_freeze(tmp_path):
    g = tf.Graph()
    with g.as_default():
        v = tf.compat.v1.get_variable("v", initializer=tf.ones([2]), use_resource=True)
        tf.identity(v.read_value(), name="out")
    path = tmp_path / "unfrozen.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    model = load(path, outputs=["out"])
    with pytest.raises(GraphError, match="no checkpoint") as err:
        model.freeze()
    assert str(path) in str(err.value)


def test_variable_missing_from_checkpoint_is_an_error(tmp_path):
    """A signature that needs a variable the checkpoint lacks (and no init op sets) cannot be frozen."""
    export = tmp_path / "partial"
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        a = tf.compat.v1.get_variable("a", initializer=2.0, use_resource=True)
        b = tf.compat.v1.get_variable("b", initializer=3.0, use_resource=True)
        y = tf.identity(x * a + b, name="y")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            bi = tf.compat.v1.saved_model.build_tensor_info
            sig = tf.compat.v1.saved_model.build_signature_def({"x": bi(x)}, {"y": bi(y)}, "tensorflow/serving/predict")
            builder = tf.compat.v1.saved_model.Builder(str(export))
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig},
                                                 saver=tf.compat.v1.train.Saver([a]))
            builder.save()
    model = load(export)
    with pytest.raises(GraphError, match="'b'") as err:
        model.freeze()
    assert str(export) in str(err.value)


def test_corrupt_variables_file_is_a_load_error(tmp_path):
    from graphxform.core.errors import ModelLoadError

    dst = tmp_path / "dnn"
    shutil.copytree(fixture_path("estimator_dnn"), dst)
    data = dst / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    model = load(dst)
    with pytest.raises(ModelLoadError) as err:
        model.freeze()
    assert str(dst / "variables" / "variables") in str(err.value)


def test_frozen_graph_def_round_trips(tf1_case, tmp_path):
    """The frozen graph serializes to a GraphDef that loads and runs on its own."""
    model = tf1_case.frozen
    path = tmp_path / "frozen.pb"
    path.write_bytes(model.graph.to_graph_def().SerializeToString())
    again = load(path)
    assert again.graph.lint() == []
    assert again.graph.op_histogram() == model.graph.op_histogram()
    gd = graph_pb2.GraphDef()
    gd.ParseFromString(path.read_bytes())
    assert not [n for n in gd.node if n.op in LEFTOVER_OPS]


def test_model_freeze_method_delegates():
    model: Model = load(fixture_path("tf2_lookup"))
    assert model.freeze() is model and model.frozen


def test_freeze_without_saver_def_uses_checkpoint_reader(tf1_case):
    """No SaverDef: values come from TF's checkpoint reader by variable name; the local variable from the
    init op as before."""
    model = load(tf1_case.path)
    model.variables.saver_def = None
    freeze_model(model)
    assert model.graph.lint() == []
    for name in ("emb", "w", "b_ref", "scale_local"):
        np.testing.assert_array_equal(model.graph.const_value(name), tf1_case.frozen.graph.const_value(name))
    assert_outputs_equal(run_signature(model, "serving_default", tf1_case.samples["serving_default"]),
                         tf1_case.reference["serving_default"])


# --------------------------------------------------------------------------- loops and branches (functions)
@pytest.mark.parametrize("name", ["keras_rnn", "tf2_control_flow"])
def test_frozen_functions_describe_values_not_handles(name):
    """A While/If body that received a variable handle takes the value now: no annotation may still say
    "scalar resource" (``_input_shapes``, the arg's ``_output_shapes``/``_handle_*``, ``resource_arg_unique_id``,
    the call's ``_read_only_resource_inputs``), or tf.saved_model.load fails shape inference in the body."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

    path = fixture_path(name)
    original = load(path)
    before = {f.signature.name: f for f in original.graph.library.function}
    model = load(path)
    freeze_model(model)
    lib = {f.signature.name: f for f in model.graph.library.function}
    resource = tf.resource.as_datatype_enum
    specialised = [f for f in lib.values() if "_frozen" in f.signature.name]
    assert specialised, "the loop/branch bodies read variables: they must have been specialised"
    for f in specialised:
        src = before[f.signature.name.split("_frozen")[0]]
        was_handle = [i for i, a in enumerate(src.signature.input_arg) if a.type == resource]
        assert was_handle
        shapes = f.attr["_input_shapes"].list.shape if "_input_shapes" in f.attr else []
        for i in was_handle:
            assert f.signature.input_arg[i].type != resource
            assert i >= len(shapes) or shapes[i].unknown_rank, (f.signature.name, i)
            if i in f.arg_attr:
                assert not [k for k in f.arg_attr[i].attr if k.startswith(("_handle", "_output_shapes"))]
            assert i not in f.resource_arg_unique_id
        # What tf.saved_model.load does with every function: build its graph, shapes inferred from the annotations.
        function_def_to_graph(f)
    for node in model.graph:
        if node.op in ("While", "StatelessWhile", "If", "StatelessIf") and "_read_only_resource_inputs" in node.attr:
            assert not node.attr["_read_only_resource_inputs"].list.i, node.name  # no resource inputs left
    for key, inputs in load_samples(name).items():
        assert_outputs_equal(run_signature(model, key, inputs), tf2_reference(path, {key: inputs})[key])
