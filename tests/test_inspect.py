"""``graphxform inspect``: library summaries (graphxform.inspect.summary) and the CLI, checked against saved_model_cli,
the checkpoints, numpy and hand-built graphs."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, fixture_path
from tensorflow.core.framework import attr_value_pb2, function_pb2, graph_pb2, node_def_pb2, types_pb2

from graphxform.cli import cli, main
from graphxform.core.errors import ModelLoadError
from graphxform.core.graph import Graph
from graphxform.core.signature import TensorSpec
from graphxform.inspect.node import NodeNotFoundError, array_stats, attr_value, node_info
from graphxform.inspect.scan import scan_warnings
from graphxform.inspect.summary import parameters_summary, summarize, tables_summary
from graphxform.model.model import Model, Signature

SAVED_MODELS = ["estimator_dnn", "estimator_linear", "keras_bn", "tf2_lookup"]
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"


def invoke(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def inspect_json(*args: str) -> dict:
    result = invoke("inspect", *args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- parsing saved_model_cli's layout
_SIG = re.compile(r"^signature_def\['(.*)'\]:")
_TENSOR = re.compile(r"^\s+(inputs|outputs)\['(.*)'\] tensor_info:$")
_FIELD = re.compile(r"^\s+(dtype|shape|name): ?(.*)$")
_METHOD = re.compile(r"^\s+Method name is: ?(.*)$")
_TAGSET = re.compile(r"^MetaGraphDef with tag-set: '(.*)' contains the following SignatureDefs:")


def parse_show_all(text: str) -> dict:
    """{"tag_sets": [...], "signatures": {key: {"method": m, "inputs": {k: {dtype, shape, name}}, "outputs": …}}}."""
    out: dict = {"tag_sets": [], "signatures": {}}
    sig = side = key = None
    for line in text.splitlines():
        if line.startswith(("Defined Functions", "Concrete Functions", "The MetaGraph with tag set")):
            break
        if m := _TAGSET.match(line):
            out["tag_sets"].append(m.group(1))
        elif m := _SIG.match(line):
            sig = out["signatures"].setdefault(m.group(1), {"method": None, "inputs": {}, "outputs": {}})
        elif (m := _TENSOR.match(line)) and sig is not None:
            side, key = m.group(1), m.group(2)
            sig[side][key] = {}
        elif (m := _FIELD.match(line)) and sig is not None and side is not None:
            sig[side][key][m.group(1)] = m.group(2)
        elif (m := _METHOD.match(line)) and sig is not None:
            sig["method"] = m.group(1)
            side = None
    return out


@pytest.fixture(scope="module")
def show_all() -> dict[str, dict]:
    """``saved_model_cli show --all`` of every SavedModel fixture (one subprocess each, run side by side)."""
    if not SAVED_MODEL_CLI.exists():
        pytest.skip("saved_model_cli not installed")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = {}
    for name in SAVED_MODELS:
        if (FIXTURES / name).exists():
            procs[name] = subprocess.Popen([str(SAVED_MODEL_CLI), "show", "--all", "--dir", str(FIXTURES / name)],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    out = {}
    for name, proc in procs.items():
        stdout, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"saved_model_cli failed on {name}"
        out[name] = parse_show_all(stdout)
    return out


# --------------------------------------------------------------------------- fixtures vs saved_model_cli
@pytest.mark.parametrize("name", SAVED_MODELS)
def test_signatures_match_saved_model_cli(name, show_all):
    path = fixture_path(name)
    ref = show_all[name]
    assert ref["signatures"], "parser found no signatures in saved_model_cli's output"

    # --json: same keys, methods, input/output keys, dtypes, shapes and (file) tensor names
    data = inspect_json(path)
    assert [", ".join(t) for t in data["tag_sets"]] == ref["tag_sets"]
    got = {s["key"]: s for s in data["signatures"]}
    assert sorted(got) == sorted(ref["signatures"])
    for key, rsig in ref["signatures"].items():
        sig = got[key]
        assert sig["method_name"] == rsig["method"]
        for side in ("inputs", "outputs"):
            mine = {t["key"]: t for t in sig[side]}
            assert sorted(mine) == sorted(rsig[side]), (key, side)
            for k, rt in rsig[side].items():
                assert mine[k]["dtype"] == rt["dtype"], (key, k)
                assert mine[k]["shape_str"] == rt["shape"], (key, k)
                assert mine[k].get("file_name", mine[k]["name"]) == rt["name"], (key, k)

    # the human output uses saved_model_cli's layout: the same parser reads the same facts from it
    result = invoke("inspect", path)
    assert result.exit_code == 0, result.output
    human = parse_show_all(result.stdout)
    assert human["tag_sets"] == ref["tag_sets"]
    assert sorted(human["signatures"]) == sorted(ref["signatures"])
    for key, rsig in ref["signatures"].items():
        assert human["signatures"][key]["method"] == rsig["method"]
        for side in ("inputs", "outputs"):
            assert {k: (v["dtype"], v["shape"]) for k, v in human["signatures"][key][side].items()} == \
                {k: (v["dtype"], v["shape"]) for k, v in rsig[side].items()}


# --------------------------------------------------------------------------- --json content on real models
def test_json_structure_estimator_dnn():
    path = fixture_path("estimator_dnn")
    data = inspect_json(path, "--top", "3")
    expected_keys = {"source", "format", "saved_model_version", "tags", "tag_sets", "frozen", "signatures",
                     "node_count", "op_histogram", "function_op_histogram", "parameters", "largest", "functions",
                     "tables", "assets", "init_op", "table_initializers", "candidate_inputs", "candidate_outputs",
                     "inputs_with_default", "control_edges", "devices",
                     "warnings", "objects", "bound_only_by_object_graph"}
    assert set(data) == expected_keys
    assert data["objects"] == [] and data["bound_only_by_object_graph"] is None  # a TF1 graph
    assert data["format"] == "saved_model" and data["tags"] == ["serve"] and data["frozen"] is False

    # node count and op histogram agree with the GraphDef in the file
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    gd = sm.meta_graphs[0].graph_def
    assert data["node_count"] == len(gd.node)
    assert data["op_histogram"] == dict(Counter(n.op for n in gd.node))
    assert list(data["op_histogram"]) == sorted(data["op_histogram"])  # --json sorts keys: stable diffs
    assert {f["name"]: f["node_count"] for f in data["functions"]} == \
        {f.signature.name: len(f.node_def) for f in gd.library.function}

    # variables the signatures use = the checkpoint minus global_step
    import tensorflow as tf

    ckpt = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_shape_map()
    served = {k: math.prod(s) for k, s in ckpt.items() if k != "global_step"}
    assert data["parameters"]["variables"]["count"] == sum(served.values())
    assert data["parameters"]["variables"]["tensors"] == len(served)
    assert data["parameters"]["counted"] == "served"
    assert data["parameters"]["unused"]["tensors"] > 0  # global_step, saver and initializer constants
    by_dtype = data["parameters"]["by_dtype"]
    assert sum(b["count"] for b in by_dtype.values()) == data["parameters"]["count"]

    # --top 3: the three biggest, biggest first; the biggest is the 32x16 kernel
    largest = data["largest"]
    assert len(largest) == 3
    assert [r["bytes"] for r in largest] == sorted((r["bytes"] for r in largest), reverse=True)
    assert largest[0]["name"] == "dnn/hiddenlayer_1/kernel" and largest[0]["shape"] == [32, 16]
    assert largest[0]["bytes"] == 32 * 16 * 4 and largest[0]["dtype"] == "DT_FLOAT"

    # tables: a vocabulary list (4 colours) and the words.txt asset
    tables = {t["name"].rsplit("/", 3)[1]: t for t in data["tables"] if t["name"]}
    assert set(tables) == {"color_lookup", "word_lookup"}
    for t in tables.values():
        assert (t["op"], t["key_dtype"], t["value_dtype"]) == ("HashTableV2", "DT_STRING", "DT_INT64")
    (color_init,) = tables["color_lookup"]["initializers"]
    assert color_init["op"] == "LookupTableImportV2" and color_init["size"] == 4
    (word_init,) = tables["word_lookup"]["initializers"]
    assert word_init["op"] == "InitializeTableFromTextFileV2" and word_init["asset"] == "words.txt"
    assert word_init["vocab_size"] == 20
    assert data["assets"] == [{"filename": "words.txt", "size": (path / "assets" / "words.txt").stat().st_size,
                               "path": str(path / "assets" / "words.txt"), "tensor": data["assets"][0]["tensor"]}]
    # the saver's SaveV2/RestoreV2 are not warnings
    assert data["warnings"] == []


def test_keras_parameters_match_checkpoint():
    """Keras export holds three handles per weight; only the ones the signatures read are counted."""
    path = fixture_path("keras_bn")
    import tensorflow as tf

    ckpt = tf.train.load_checkpoint(str(path / "variables" / "variables")).get_variable_to_shape_map()
    weights = sum(math.prod(s) for k, s in ckpt.items() if k.startswith("variables/"))
    data = inspect_json(path)
    assert data["parameters"]["variables"]["count"] == weights
    assert data["parameters"]["variables"]["tensors"] == sum(1 for k in ckpt if k.startswith("variables/"))
    assert data["parameters"]["unused"]["count"] >= 2 * weights
    assert data["largest"][0]["shape"] == [3, 3, 64, 160]


def test_tf2_table_initializer_traced_to_asset():
    path = fixture_path("tf2_lookup")
    data = inspect_json(path)
    (table,) = [t for t in data["tables"] if t["name"]]
    assert table["key_dtype"] == "DT_STRING" and table["value_dtype"] == "DT_INT64"
    (init,) = table["initializers"]
    assert init["op"] == "InitializeTableFromTextFileV2" and init["asset"] == "tokens.txt"
    assert [a["filename"] for a in data["assets"]] == ["tokens.txt"]
    assert data["assets"][0]["size"] == (path / "assets" / "tokens.txt").stat().st_size


# --------------------------------------------------------------------------- bare GraphDef
def test_frozen_pb_candidates_and_params():
    path = fixture_path("tf1_frozen_bn.pb")
    data = inspect_json(path)
    assert data["format"] == "graph_def" and data["signatures"] == [] and data["tag_sets"] == []
    assert data["candidate_inputs"] == [{"name": "input", "op": "Placeholder", "dtype": "DT_FLOAT",
                                         "shape": [-1, 16, 16, 3], "shape_str": "(-1, 16, 16, 3)"}]
    assert data["candidate_outputs"] == [{"name": "output", "op": "Identity", "dtypes": ["DT_FLOAT"]}]
    gd = graph_pb2.GraphDef.FromString(path.read_bytes())
    consts = [n for n in gd.node if n.op == "Const"]
    assert data["parameters"]["counted"] == "all"
    assert data["parameters"]["constants"]["tensors"] == len(consts)
    assert data["parameters"]["count"] == sum(math.prod(d.size for d in n.attr["value"].tensor.tensor_shape.dim)
                                              for n in consts)
    assert data["parameters"]["variables"]["tensors"] == 0
    # humans see the candidates too
    result = invoke("inspect", path)
    assert result.exit_code == 0
    assert "Possible inputs" in result.stdout and "Possible outputs" in result.stdout
    assert "--input-names input --output-names output" in result.stdout.replace("\n", "")


# --------------------------------------------------------------------------- --node
def test_node_const_stats_match_numpy():
    path = fixture_path("tf1_frozen_bn.pb")
    import tensorflow as tf

    gd = graph_pb2.GraphDef.FromString(path.read_bytes())
    node = next(n for n in gd.node if n.name == "conv1/kernel")
    ref = tf.make_ndarray(node.attr["value"].tensor).astype(np.float64)
    info = inspect_json(path, "--node", "conv1/kernel")
    assert info["op"] == "Const"
    v = info["value"]
    assert v["dtype"] == "DT_FLOAT" and v["shape"] == list(ref.shape) and v["bytes"] == ref.size * 4
    st = v["stats"]
    assert st["count"] == ref.size
    np.testing.assert_allclose([st["min"], st["max"], st["mean"], st["std"]],
                               [ref.min(), ref.max(), ref.mean(), ref.std()], rtol=1e-6)
    assert st["zero_fraction"] == pytest.approx(float(np.mean(ref == 0)))
    assert st["nan_count"] == 0 and st["inf_count"] == 0
    np.testing.assert_allclose(st["values"], ref.reshape(-1)[:5], rtol=1e-6)
    # consumers: the kernel feeds conv1 (through its /read Identity)
    assert [c["node"] for c in info["consumers"]] == [n.name for n in gd.node if "conv1/kernel" in list(n.input)]
    result = invoke("inspect", path, "--node", "conv1/kernel")
    assert result.exit_code == 0 and "value statistics" in result.stdout and "zero_fraction" in result.stdout


def test_node_attrs_inputs_consumers():
    path = fixture_path("tf1_frozen_bn.pb")
    gd = graph_pb2.GraphDef.FromString(path.read_bytes())
    bn = next(n for n in gd.node if n.op == "FusedBatchNormV3")
    info = inspect_json(path, "--node", bn.name + ":0")  # a tensor name works too
    assert info["name"] == bn.name and info["op"] == "FusedBatchNormV3"
    assert info["attrs"]["T"] == "DT_FLOAT" and info["attrs"]["U"] == "DT_FLOAT"
    assert info["attrs"]["is_training"] is False
    assert info["attrs"]["epsilon"] == pytest.approx(bn.attr["epsilon"].f)
    assert info["attrs"]["data_format"] == "NHWC"
    by_name = {n.name: n for n in gd.node}
    assert [(i["node"], i["op"]) for i in info["inputs"]] == [(i.split(":")[0], by_name[i.split(":")[0]].op)
                                                              for i in bn.input]
    assert info["output_dtypes"][0] == "DT_FLOAT" and len(info["output_dtypes"]) == 6
    readers = sorted(n.name for n in gd.node if any(i.split(":")[0] == bn.name for i in n.input))
    assert sorted(c["node"] for c in info["consumers"]) == readers
    assert all(c["port"] == 0 and not c["control"] for c in info["consumers"])


def test_unknown_node_suggests_close_names(capsys):
    path = fixture_path("tf1_frozen_bn.pb")
    result = invoke("inspect", path, "--node", "conv1/kernl")
    assert isinstance(result.exception, NodeNotFoundError)
    assert "'conv1/kernel'" in str(result.exception)
    # through the console entry point: one line on stderr, exit 2
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(path), "--node", "conv1/kernl"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean" in err and "conv1/kernel" in err


# --------------------------------------------------------------------------- bad paths → exit 2
def test_bad_path_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope"
    result = invoke("inspect", missing)
    assert isinstance(result.exception, ModelLoadError)
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(missing)])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in captured.err


def test_bad_path_subprocess(tmp_path):
    """The installed console script maps the error to exit 2 and one stderr line."""
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x00not a graph\xff" * 10)
    exe = Path(sys.executable).parent / "graphxform"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from graphxform.cli import main; main()"]
    proc = subprocess.run([*cmd, "inspect", str(junk)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(ours) == 1 and str(junk) in ours[0]


# --------------------------------------------------------------------------- hand-built graphs
def _node(name, op, inputs=(), **attrs):
    n = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs))
    for k, v in attrs.items():
        if isinstance(v, attr_value_pb2.AttrValue):
            n.attr[k].CopyFrom(v)
        elif isinstance(v, int) and k in ("dtype", "T", "key_dtype", "value_dtype", "Tin", "Tout"):
            n.attr[k].type = v
        elif isinstance(v, bytes):
            n.attr[k].s = v
        else:
            raise TypeError(k)
    return n


def _str_const(name, value: bytes):
    import tensorflow as tf

    return _node(name, "Const", dtype=types_pb2.DT_STRING,
                 value=attr_value_pb2.AttrValue(tensor=tf.make_tensor_proto(value)))


def _const(name, arr):
    import tensorflow as tf

    arr = np.asarray(arr)
    return _node(name, "Const", dtype=tf.as_dtype(arr.dtype).as_datatype_enum,
                 value=attr_value_pb2.AttrValue(tensor=tf.make_tensor_proto(arr)))


def _model(nodes, *, functions=(), signatures=None, source="hand.pb", fmt="graph_def", saver_def=None):
    gd = graph_pb2.GraphDef()
    gd.node.extend(nodes)
    gd.library.function.extend(functions)
    return Model(graph=Graph(gd), signatures=signatures or {}, source=Path(source), format=fmt,
                 meta_info={"saver_def": saver_def} if saver_def else {})


def risky_graph_nodes():
    """A graph that would read/write files and run Python — built by hand, never executed."""
    s = types_pb2.DT_STRING
    return [
        _str_const("path", b"/etc/passwd"),
        _node("read", "ReadFile", ["path"]),
        _node("write", "WriteFile", ["path", "read"]),
        _node("py", "PyFunc", ["read"], Tin=attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[s])),
              Tout=attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[s])), token=b"pyfunc_0"),
        _node("print", "PrintV2", ["read"]),
        _str_const("names", b"w"),
        _str_const("slices", b""),
        # a checkpoint write outside any saver: suspicious
        _node("sneaky/SaveV2", "SaveV2", ["path", "names", "slices", "read"],
              dtypes=attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[s]))),
        # the saver's own: fine
        _node("save/SaveV2", "SaveV2", ["path", "names", "slices", "read"],
              dtypes=attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[s]))),
    ]


def test_warnings_for_file_and_code_ops():
    fn = function_pb2.FunctionDef()
    fn.signature.name = "reader_fn"
    fn.signature.input_arg.add(name="p", type=types_pb2.DT_STRING)
    fn.signature.output_arg.add(name="y", type=types_pb2.DT_STRING)
    fn.node_def.add().CopyFrom(_node("rf", "ReadFile", ["p"]))
    fn.ret["y"] = "rf:contents:0"
    model = _model(risky_graph_nodes(), functions=[fn])
    warnings = scan_warnings(model)
    got = {(w["node"], w["where"]): w for w in warnings}
    assert set(got) == {("read", "graph"), ("write", "graph"), ("py", "graph"), ("print", "graph"),
                        ("sneaky/SaveV2", "graph"), ("rf", "function:reader_fn")}
    assert ("save/SaveV2", "graph") not in got  # inside the saver: must not warn
    assert {w["node"] for w in warnings if w["denylisted"]} == {"read", "write", "print", "rf"}
    assert "Python" in got[("py", "graph")]["reason"]


def test_warnings_cli_on_written_graph(tmp_path):
    gd = graph_pb2.GraphDef()
    gd.node.extend(risky_graph_nodes())
    pb = tmp_path / "risky.pb"
    pb.write_bytes(gd.SerializeToString())
    data = inspect_json(pb)
    assert {w["op"] for w in data["warnings"]} == {"ReadFile", "WriteFile", "PyFunc", "PrintV2", "SaveV2"}
    result = invoke("inspect", pb)
    assert result.exit_code == 0
    text = result.stdout.replace("\n", " ")
    for op in ("ReadFile", "WriteFile", "PyFunc", "PrintV2"):
        assert f"WARNING: {op}" in text
    # a clean model says so instead
    clean = invoke("inspect", fixture_path("tf1_frozen_bn.pb"))
    assert "WARNING" not in clean.stdout and "No ops that touch files" in clean.stdout


def test_saver_by_saver_def_not_warned():
    """A RestoreV2 that the SaverDef's restore op depends on is the saver's, whatever its name."""
    from tensorflow.core.protobuf import saver_pb2

    nodes = risky_graph_nodes()[5:7] + [
        _str_const("ckpt", b"x"),
        _node("weird/RestoreV2", "RestoreV2", ["ckpt", "names", "slices"],
              dtypes=attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[types_pb2.DT_STRING]))),
        _node("restore_all", "NoOp", ["^weird/RestoreV2"]),
        _node("other/RestoreV2", "RestoreV2", ["ckpt", "names", "slices"],
              dtypes=attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[types_pb2.DT_STRING]))),
    ]
    sd = saver_pb2.SaverDef(filename_tensor_name="ckpt:0", restore_op_name="restore_all")
    warned = {w["node"] for w in scan_warnings(_model(nodes, saver_def=sd.SerializeToString()))}
    assert warned == {"other/RestoreV2"}
    warned_without = {w["node"] for w in scan_warnings(_model(nodes))}
    assert warned_without == {"other/RestoreV2", "weird/RestoreV2"}


def test_parameters_variables_and_consts():
    f, i = types_pb2.DT_FLOAT, types_pb2.DT_INT32

    def shape(*dims):
        from tensorflow.core.framework import tensor_shape_pb2

        if dims == (None,):
            return attr_value_pb2.AttrValue(shape=tensor_shape_pb2.TensorShapeProto(unknown_rank=True))
        return attr_value_pb2.AttrValue(shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))

    nodes = [
        _node("w", "VarHandleOp", dtype=f, shape=shape(10, 20), shared_name=b"w"),
        _node("w_again", "VarHandleOp", dtype=f, shape=shape(10, 20), shared_name=b"w"),  # same variable
        _node("v1", "VariableV2", dtype=i, shape=shape(7)),
        _node("dyn", "VarHandleOp", dtype=f, shape=shape(None), shared_name=b"dyn"),
        _const("c", np.ones((3, 4), np.float32)),
        _const("splat", np.zeros((1000,), np.float64)),  # stored as one value, counts its full size
        _str_const("s", b"hello"),
    ]
    params, largest = parameters_summary(_model(nodes).graph, top=3)
    assert params["variables"] == {"tensors": 3, "count": 200 + 7, "bytes": 800 + 28, "unknown_size": 1}
    assert params["constants"] == {"tensors": 3, "count": 12 + 1000 + 1, "bytes": 48 + 8000 + 5, "unknown_size": 0}
    assert params["by_dtype"]["DT_FLOAT"]["count"] == 200 + 12
    assert params["by_dtype"]["DT_DOUBLE"]["bytes"] == 8000
    assert [r["name"] for r in largest] == ["splat", "w", "c"]
    # restricted to what a signature uses, the rest is "unused"
    params2, _ = parameters_summary(_model(nodes).graph, top=3, used={"w", "c"})
    assert params2["count"] == 212 and params2["unused"]["tensors"] == 4


def test_tables_hand_built():
    s, i64 = types_pb2.DT_STRING, types_pb2.DT_INT64
    nodes = [
        _node("t1", "HashTableV2", key_dtype=s, value_dtype=i64, shared_name=b"t1"),
        _node("t1/id", "Identity", ["t1"]),
        _str_const("vocab", b"vocab.txt"),
        _node("t1/init", "InitializeTableFromTextFileV2", ["t1/id", "vocab"]),
        _node("t2", "MutableHashTableV2", key_dtype=i64, value_dtype=s),
        _const("keys", np.arange(5, dtype=np.int64)),
        _str_const("vals", b"x"),
        _node("t2/import", "LookupTableImportV2", ["t2", "keys", "vals"]),
        _node("t3", "HashTableV2", key_dtype=s, value_dtype=s),  # never initialised
    ]
    tables = {t["name"]: t for t in tables_summary(_model(nodes))}
    assert set(tables) == {"t1", "t2", "t3"}
    assert tables["t1"]["initializers"] == [{"node": "t1/init", "op": "InitializeTableFromTextFileV2",
                                             "filename": "vocab.txt"}]
    assert (tables["t2"]["key_dtype"], tables["t2"]["value_dtype"]) == ("DT_INT64", "DT_STRING")
    assert tables["t2"]["initializers"][0]["size"] == 5
    assert tables["t3"]["initializers"] == []


def test_candidates_skip_bookkeeping():
    f = types_pb2.DT_FLOAT
    nodes = [
        _node("x", "Placeholder", dtype=f),
        _node("y", "Relu", ["x"], T=f),
        _node("assert", "Assert", ["x"]),
        _node("noop", "NoOp", ["^y"]),
        _const("unused_const", np.ones(2, np.float32)),
        _node("z", "Neg", ["x"], T=f),
    ]
    s = summarize(_model(nodes))
    assert [i["name"] for i in s["candidate_inputs"]] == ["x"]
    assert s["candidate_inputs"][0]["shape"] is None and s["candidate_inputs"][0]["shape_str"] == "unknown_rank"
    assert [o["name"] for o in s["candidate_outputs"]] == ["z"]  # y feeds noop; assert/noop/const are bookkeeping


def test_signatures_from_model_when_no_file():
    nodes = [_node("x", "Placeholder", dtype=types_pb2.DT_FLOAT), _node("y", "Relu", ["x"], T=types_pb2.DT_FLOAT)]
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    inputs={"x": TensorSpec("x:0", types_pb2.DT_FLOAT, [None, 3])},
                    outputs={"y": TensorSpec("y:0", types_pb2.DT_FLOAT, None)})
    s = summarize(_model(nodes, signatures={"serving_default": sig}))
    (entry,) = s["signatures"]
    assert entry["inputs"] == [{"key": "x", "name": "x:0", "dtype": "DT_FLOAT", "shape": [-1, 3],
                                "shape_str": "(-1, 3)"}]
    assert entry["outputs"][0]["shape_str"] == "unknown_rank"
    assert s["parameters"]["counted"] == "served"
    info = node_info(_model(nodes, signatures={"serving_default": sig}), "y")
    assert info["signatures"] == ["serving_default:output:y"] and info["protected"]


# --------------------------------------------------------------------------- pure helpers
def test_array_stats_kinds():
    a = np.array([[0.0, 1.0, np.nan], [np.inf, -2.0, 3.0]], np.float32)
    st = array_stats(a)
    finite = np.array([0.0, 1.0, -2.0, 3.0])
    assert (st["nan_count"], st["inf_count"]) == (1, 1)
    assert (st["min"], st["max"]) == (-2.0, 3.0)
    assert st["mean"] == pytest.approx(finite.mean()) and st["std"] == pytest.approx(finite.std())
    assert st["zero_fraction"] == pytest.approx(1 / 6)

    ints = np.arange(-3, 7, dtype=np.int64)
    st = array_stats(ints)
    assert (st["min"], st["max"], st["mean"]) == (-3, 6, pytest.approx(ints.mean()))

    st = array_stats(np.array([b"apple", b"fig", b"\xff\xfe"], dtype=object))
    assert st["values"][:2] == ["apple", "fig"] and st["max_length"] == 5 and st["count"] == 3

    st = array_stats(np.array([True, False, True, True]))
    assert st["true_fraction"] == 0.75

    import tensorflow as tf

    bf = np.array([1.5, -0.5, 0.0], dtype=tf.bfloat16.as_numpy_dtype)
    st = array_stats(bf)
    assert (st["min"], st["max"]) == (-0.5, 1.5) and st["mean"] == pytest.approx(1 / 3)
    assert array_stats(np.zeros((0, 3), np.float32)) == {"count": 0}


def test_attr_value_readable():
    from tensorflow.core.framework import tensor_shape_pb2

    lst = attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=[1, 2, 2, 1]))
    assert attr_value(lst) == [1, 2, 2, 1]
    types = attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[types_pb2.DT_FLOAT,
                                                                                  types_pb2.DT_STRING]))
    assert attr_value(types) == ["DT_FLOAT", "DT_STRING"]
    shp = attr_value_pb2.AttrValue(shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1), tensor_shape_pb2.TensorShapeProto.Dim(size=3)]))
    assert attr_value(shp) == "(-1, 3)"
    fn = attr_value_pb2.AttrValue(func=attr_value_pb2.NameAttrList(name="branch_true"))
    assert attr_value(fn) == {"func": "branch_true"}
    assert attr_value(attr_value_pb2.AttrValue(s=b"NHWC")) == "NHWC"
    assert attr_value(attr_value_pb2.AttrValue(type=types_pb2.DT_HALF)) == "DT_HALF"
