"""Bad input to the loader: every case is a ModelLoadError whose one-line message names the path."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import fixture_path

from graphxform.core.errors import GraphxformError, ModelLoadError, SignatureError
from graphxform.model.loader import load


def load_error(path: Path, **kwargs) -> str:
    with pytest.raises(ModelLoadError) as err:
        load(path, **kwargs)
    msg = str(err.value)
    assert str(path) in msg
    assert "\n" not in msg
    assert isinstance(err.value, GraphxformError) and err.value.exit_code == 2
    return msg


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(fixture_path(name), dst)
    return dst


def test_missing_path(tmp_path):
    msg = load_error(tmp_path / "no_such_model")
    assert "no such file or directory" in msg


def test_directory_without_saved_model(tmp_path):
    (tmp_path / "variables").mkdir()
    msg = load_error(tmp_path)
    assert "no saved_model.pb" in msg and "saved_model.pbtxt" in msg


def test_text_file_that_is_no_graph(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello world\nthis is not a graph\n")
    msg = load_error(path)
    assert "not a text GraphDef or SavedModel" in msg


@pytest.mark.parametrize("name", ["random.pb", "random.bin"])
def test_random_bytes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    msg = load_error(path)
    assert "GraphDef or SavedModel" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pb"
    path.write_bytes(b"")
    assert "empty" in load_error(path)


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_graph_def(tmp_path, fraction):
    data = fixture_path("tf1_frozen_bn.pb").read_bytes()
    path = tmp_path / "truncated.pb"
    path.write_bytes(data[: int(len(data) * fraction)])
    msg = load_error(path)
    assert "truncated or corrupt" in msg


def test_truncated_text_graph_def(tmp_path):
    text = fixture_path("tf1_frozen_bn.pbtxt").read_text()
    path = tmp_path / "truncated.pbtxt"
    path.write_text(text[: len(text) // 2])
    assert "text parse error" in load_error(path)


def test_truncated_saved_model(tmp_path):
    dst = copy_fixture("tf2_lookup", tmp_path)
    pb = dst / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    msg = load_error(dst)
    assert str(pb) in msg and "SavedModel" in msg and "truncated or corrupt" in msg


def test_graph_def_named_saved_model(tmp_path):
    """A saved_model.pb that holds a bare GraphDef: say so, and what to do."""
    (tmp_path / "saved_model.pb").write_bytes(fixture_path("tf1_frozen_bn.pb").read_bytes())
    msg = load_error(tmp_path)
    assert "GraphDef, not a SavedModel" in msg


@pytest.mark.parametrize("missing", ["variables.index", "variables.data-00000-of-00001", None])
def test_missing_variables_files(tmp_path, missing):
    dst = copy_fixture("estimator_dnn", tmp_path)
    if missing:
        (dst / "variables" / missing).unlink()
        expect = dst / "variables" / missing
    else:
        shutil.rmtree(dst / "variables")
        expect = dst / "variables" / "variables.index"
    msg = load_error(dst)
    assert str(expect) in msg and "variables" in msg


@pytest.mark.parametrize("tags", ["serve,gpu", ["train"], "tpu"])
def test_unknown_tag_set_lists_available(tags):
    path = fixture_path("estimator_linear")
    with pytest.raises(ModelLoadError) as err:
        load(path, tags=tags)
    msg = str(err.value)
    assert str(path) in msg
    assert "tag sets: [serve]" in msg


def test_unknown_tag_set_with_several_meta_graphs(tmp_path):
    from test_loader import build_tf1_saved_model

    info = build_tf1_saved_model(tmp_path / "model")
    msg = str(pytest.raises(ModelLoadError, load, info["path"], tags="train").value)
    assert str(info["path"]) in msg
    assert "[serve]" in msg and ("[serve,gpu]" in msg or "[gpu,serve]" in msg)


def test_inputs_naming_unknown_nodes():
    path = fixture_path("tf1_frozen_bn.pb")
    msg = load_error(path, inputs=["no_such_input"], outputs=["output"])
    assert "'no_such_input'" in msg
    msg = load_error(path, inputs=["input"], outputs=["nope:0"])
    assert "'nope:0'" in msg


def test_inputs_without_outputs():
    assert "outputs" in load_error(fixture_path("tf1_frozen_bn.pb"), inputs=["input"])


def test_inputs_outputs_refused_for_saved_model():
    msg = load_error(fixture_path("tf2_lookup"), inputs=["x"], outputs=["y"])
    assert "own signatures" in msg


def test_unknown_signature_key():
    path = fixture_path("tf2_lookup")
    model = load(path)
    with pytest.raises(SignatureError) as err:
        model.signature("predict")
    msg = str(err.value)
    assert str(path) in msg and "'predict'" in msg and "score" in msg and "serving_default" in msg
