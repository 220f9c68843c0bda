"""Port of ``tensorflow/tools/graph_transforms/file_utils_test.cc`` (``FileUtilsTest``): how ``transform_graph``
and ``summarize_graph`` read ``--in_graph`` (``LoadTextOrBinaryGraphFile``: binary first, then text, whatever the
file name), through ``graphxform transform IN OUT --transforms ""`` (no rule: the graph as read)."""
from __future__ import annotations

from google.protobuf import text_format

from .conftest import cli, const, graph_def, iota, read_pb


def _graph():
    return graph_def(const("a", iota([10])))


def _read_back(tmp_path, src):
    dst = tmp_path / f"{src.stem}_out.pb"
    code, _, err = cli("transform", src, dst, "--transforms", "")
    assert code == 0, err
    return read_pb(dst)


def test_load_text_or_binary_graph_file(tmp_path):
    """FileUtilsTest.TestLoadTextOrBinaryGraphFile: a text ``.pbtxt`` and a binary ``.pb`` read back equal to the
    graph written; a missing file and a file that is no proto are errors (exit 2, nothing written)."""
    gd = _graph()
    text_file = tmp_path / "text_graph.pbtxt"
    text_file.write_text(text_format.MessageToString(gd))
    binary_file = tmp_path / "binary_graph.pb"
    binary_file.write_bytes(gd.SerializeToString())
    bogus_file = tmp_path / "bogus_graph.pb"
    bogus_file.write_text("Not a !{ proto...")
    for src in (text_file, binary_file):
        back = _read_back(tmp_path, src)
        assert back.node == gd.node and back.library == gd.library  # EqualGraphDef
    for src in (tmp_path / "____non_existent_file_____", bogus_file):
        code, _, err = cli("transform", src, tmp_path / "never.pb", "--transforms", "")
        assert code == 2 and err.strip(), src
        assert not (tmp_path / "never.pb").exists()


def test_text_graph_in_a_pb_file(tmp_path):
    """Not a C++ TEST (file_utils.cc): GTT tries binary, then text, whatever the extension, so a text GraphDef
    saved as ``graph.pb`` loads."""
    gd = _graph()
    src = tmp_path / "text_graph.pb"
    src.write_text(text_format.MessageToString(gd))
    assert _read_back(tmp_path, src).node == gd.node
