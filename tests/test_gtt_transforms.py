"""The GTT transforms outside the default pipeline, on a real Keras export, judged by TensorFlow's loaders.

tests/gtt/ ports TensorFlow's own tests of these transforms (bare graphs, the C++
assertions). Here each one runs as a user runs it, ``graphxform transform
keras_bn OUT --transforms "..."`` on a Keras SavedModel (Conv2D, depthwise,
batch norms, Dense), and the written SavedModel must load in TF Serving's C++
loader, ``tf.saved_model.load`` and the TF1 loader and give the input's outputs
(within a stated tolerance for the lossy ones); the graph must lint clean and
carry the transform's structural change.
"""
from __future__ import annotations

from collections import Counter

import pytest
from conftest import FIXTURES, SAMPLES

import graphxform
from graphxform.jobs.transform import transform
from graphxform.jobs.verify import verify

MODEL = FIXTURES / "keras_bn"
SIGNATURE_INPUTS = {"serve_image", "serving_default_image"}


def _graph(path):
    model = graphxform.load(path)
    assert model.graph.lint() == []
    return model.graph


def _ops(graph) -> Counter:
    return Counter(n.op for n in graph)


@pytest.fixture(scope="module")
def before():
    return _graph(MODEL)


def _check_devices(g, _):
    assert {n.device for n in g} == {"/device:CPU:0"}


def _check_no_device(g, _):
    assert {n.device for n in g} == {""}


def _check_no_control_edges(g, _):
    # Only the init op keeps what it runs (a protected node's control inputs are what it does).
    with_control = {n.name for n in g for i in n.input if i.startswith("^")}
    assert with_control <= set(g.protected), with_control


def _check_obfuscated(g, b):
    names = {n.name for n in g}
    assert SIGNATURE_INPUTS <= names  # signature inputs keep their names
    assert len(names & {n.name for n in b}) < len(names) // 4  # most others are renamed
    assert max(len(n) for n in names - {n.name for n in b}) <= 3  # short generated names


def _check_logging(g, b):
    assert _ops(g)["Print"] == _ops(g)["Conv2D"] >= 1
    for n in g:
        if n.op == "Conv2D":
            readers = [m for m in g if any(i.split(":")[0] == n.name for i in m.input)]
            assert [m.op for m in readers] == ["Print"]  # every reader now reads the Print


def _check_rounded(g, b):
    import numpy as np

    big = [n.name for n in g if n.op == "Const" and g.const_value(n.name).dtype == np.float32
           and g.const_value(n.name).size >= 16]
    assert big and all(len(np.unique(g.const_value(name))) <= 256 for name in big)


def _check_quantized(g, _):
    ops = _ops(g)
    assert ops["QuantizedConv2D"] >= 1 and ops["QuantizedMatMul"] >= 1 and ops["Dequantize"] >= 1
    assert ops["Conv2D"] == 0 and ops["MatMul"] == 0


def _check_renamed_op(g, _):
    ops = _ops(g)
    assert ops["AddV2"] == 0 and ops["Add"] >= 1


def _check_attr_removed(g, _):
    convs = [n for n in g if n.op == "Conv2D"]
    assert convs and all("explicit_paddings" not in n.attr for n in convs)


def _check_defaults(g, _):
    from graphxform.core.opdefs import op_def

    for n in g:
        d = op_def(n.op)
        if d is not None:
            assert {a.name for a in d.attr if a.HasField("default_value")} <= set(n.attr), n.name


CASES = {
    # transform string: (check of the written graph, rtol/atol of the outputs against the input's)
    "set_device(device=\"/device:CPU:0\")": (_check_devices, 1e-6),
    "remove_device": (_check_no_device, 1e-6),
    "remove_control_dependencies": (_check_no_control_edges, 1e-6),
    "obfuscate_names": (_check_obfuscated, 1e-6),
    "insert_logging(op=Conv2D, first_n=1, summarize=2)": (_check_logging, 1e-6),
    "rename_op(old_op_name=AddV2, new_op_name=Add)": (_check_renamed_op, 1e-6),
    "remove_attribute(op_name=Conv2D, attribute_name=explicit_paddings)": (_check_attr_removed, 1e-6),
    "add_default_attributes": (_check_defaults, 1e-6),
    "round_weights(num_steps=256)": (_check_rounded, 2e-2),  # lossy: up to half a step per weight
    "fold_constants fold_batch_norms quantize_nodes": (_check_quantized, 5e-2),  # eight-bit activations
}


@pytest.mark.parametrize("spec", list(CASES))
def test_transform_output_is_servable_and_matches(spec, tmp_path, before):
    check, tol = CASES[spec]
    out = tmp_path / "out"
    transform(MODEL, out, transforms=spec)
    report = verify(MODEL, out, inputs=SAMPLES / "keras_bn.npz", rtol=tol, atol=tol)
    assert report.ok, report.failure_message()
    assert sorted(r.key for r in report.loaders) == ["c++", "tf1", "tf2"]
    check(_graph(out), before)


def test_rename_node_follows_signatures_and_consumers(tmp_path):
    """rename_node on a signature input: the signatures, the consumers and every loader follow the new name."""
    out = tmp_path / "out"
    transform(MODEL, out, transforms="rename_node(old_node_name=serve_image, new_node_name=pixels)")
    report = verify(MODEL, out, inputs=SAMPLES / "keras_bn.npz")
    assert report.ok, report.failure_message()
    model = graphxform.load(out)
    assert "pixels" in model.graph and "serve_image" not in model.graph and model.graph.lint() == []
    assert model.signatures["serve"].inputs["image"].name == "pixels:0"


def test_rename_node_refuses_a_taken_name(tmp_path):
    with pytest.raises(graphxform.GraphxformError, match="serving_default_image"):
        transform(MODEL, tmp_path / "out",
                  transforms="rename_node(old_node_name=serve_image, new_node_name=serving_default_image)")
    assert not (tmp_path / "out").exists()  # nothing written
