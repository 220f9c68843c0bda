"""Fuzz targets and hypothesis strategies: the loader (bytes and structured protos) and the GTT transform parser.

Every target has one rule: it may raise :class:`graphxform.core.errors.GraphxformError` (a clean, one-line refusal),
nothing else. ``tests/test_fuzz.py`` runs them briefly; ``python -m tests.fuzz.run_fuzz`` runs them for longer.

Targets (:data:`TARGETS`):

* ``load_bytes``: arbitrary bytes written as ``.pb``/``.pbtxt``/no suffix, then ``graphxform.load``;
* ``load_mutated``: a fixture file (frozen GraphDef binary/text, TF1 and TF2 ``saved_model.pb`` with their
  ``variables/`` and ``assets/`` beside them) with bit flips, deletions, insertions, duplicated chunks;
* ``load_structured``: GraphDefs and SavedModels built field by field from hostile pieces (dangling and
  out-of-range inputs, cycles, unknown ops and dtypes, bad tensor contents, absurd shapes, recursive and
  exponential function libraries, escaping asset names, signatures naming nothing);
* ``gtt_parse``: random and grammar-shaped transform strings through ``parse_transforms`` and
  ``build_pipeline``; whatever parses must survive a format/parse round trip unchanged.

A model that loads is also summarized by ``graphxform.inspect.summary.summarize`` (what ``graphxform inspect`` prints).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


@dataclass
class Target:
    name: str
    strategy: Callable[[], st.SearchStrategy]
    run: Callable[[Any], str]
    executions: int = 0


class _Workdir:
    """One scratch directory per process, with copies of the SavedModel fixtures to mutate in place."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self.models: dict[str, Path] = {}

    @property
    def root(self) -> Path:
        if self._root is None or not self._root.is_dir():
            self._root = Path(tempfile.mkdtemp(prefix="gx-fuzz-"))
            self.models = {}
        return self._root

    def saved_model(self, name: str) -> Path:
        if name not in self.models:
            dst = self.root / name
            shutil.copytree(FIXTURES / name, dst)
            self.models[name] = dst
        return self.models[name]

    def cleanup(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._root, self.models = None, {}


WORK = _Workdir()


def _load_and_summarize(path: Path) -> str:
    """Load ``path``; summarize what loaded. Only GraphxformError may escape (it is returned as an outcome)."""
    import graphxform
    from graphxform.core.errors import GraphxformError

    try:
        model = graphxform.load(path)
    except GraphxformError:
        return "refused"
    from graphxform.inspect.summary import summarize

    try:
        summarize(model)
    except GraphxformError:
        return "loaded, summary refused"
    return "loaded"


# --------------------------------------------------------------------------- load_bytes
SUFFIXES = (".pb", ".pbtxt", "", ".txt")


def bytes_strategy() -> st.SearchStrategy:
    text_like = st.text(alphabet=st.sampled_from(list("node{}name:op\"' \n#<>versions library meta_graphs0123456789")),
                        max_size=400).map(lambda s: s.encode())
    return st.tuples(st.one_of(st.binary(max_size=4096), text_like), st.sampled_from(SUFFIXES))


def run_load_bytes(arg: tuple[bytes, str]) -> str:
    data, suffix = arg
    path = WORK.root / f"input{suffix or '_nosuffix'}"
    path.write_bytes(data)
    return _load_and_summarize(path)


# --------------------------------------------------------------------------- load_mutated
MUTATION_SOURCES = ("tf1_frozen_bn.pb", "tf1_frozen_bn.pbtxt", "tf2_lookup/saved_model.pb",
                    "estimator_linear/saved_model.pb")
_SOURCE_BYTES: dict[str, bytes] = {}


def _source(name: str) -> bytes:
    if name not in _SOURCE_BYTES:
        _SOURCE_BYTES[name] = (FIXTURES / name).read_bytes()
    return _SOURCE_BYTES[name]


def mutate(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    """Apply ``(kind, position, length, payload)`` mutations (positions taken modulo the current size)."""
    buf = bytearray(data)
    for kind, pos, length, payload in ops:
        if not buf:
            buf.extend(payload or b"\x00")
            continue
        i = pos % len(buf)
        if kind == 0:  # flip a bit
            buf[i] ^= 1 << (length % 8)
        elif kind == 1:  # delete
            del buf[i:i + 1 + length % 64]
        elif kind == 2:  # insert
            buf[i:i] = payload
        elif kind == 3:  # duplicate a chunk
            buf[i:i] = buf[i:i + 1 + length % 256]
        elif kind == 4:  # truncate
            del buf[i:]
        elif kind == 5:  # set a byte to an interesting value (varint ends, lengths)
            buf[i] = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A)[length % 8]
    return bytes(buf)


def mutated_strategy() -> st.SearchStrategy:
    op = st.tuples(st.integers(0, 5), st.integers(0, 2**31), st.integers(0, 2**16), st.binary(max_size=16))
    return st.tuples(st.sampled_from(MUTATION_SOURCES), st.lists(op, min_size=1, max_size=6))


def run_load_mutated(arg: tuple[str, list[tuple[int, int, int, bytes]]]) -> str:
    name, ops = arg
    data = mutate(_source(name), ops)
    if "/" in name:
        model_dir = WORK.saved_model(name.split("/")[0])
        (model_dir / "saved_model.pb").write_bytes(data)
        return _load_and_summarize(model_dir)
    path = WORK.root / f"mutated{Path(name).suffix}"
    path.write_bytes(data)
    return _load_and_summarize(path)


# --------------------------------------------------------------------------- load_structured
NAMES = ("x", "a", "b", "c", "y", "s/t", "f0", "", "a:1", "^b", "x:0", "bad name!", "n" * 300)
OPS = ("Const", "Placeholder", "Identity", "AddV2", "MatMul", "Relu", "PartitionedCall", "StatefulPartitionedCall",
       "NoOp", "NextIteration", "Merge", "Enter", "Switch", "FusedBatchNormV3", "IdentityN", "Unpack", "Split",
       "ReadFile", "PyFunc", "VarHandleOp", "HashTableV2", "InitializeTableFromTextFileV2", "NoSuchOp", "f0", "f1")
DTYPES = (1, 2, 3, 7, 9, 10, 19, 20, 21, 0, 101, 9999, -1)


@st.composite
def tensor_protos(draw: Any) -> Any:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    t = tensor_pb2.TensorProto()
    t.dtype = draw(st.sampled_from(DTYPES)) % (2**31)
    dims = draw(st.lists(st.sampled_from([0, 1, 2, 3, 7, -1, -5, 100000, 2**31, 2**40]), max_size=4))
    t.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims],
        unknown_rank=draw(st.booleans()) and draw(st.booleans())))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        t.tensor_content = draw(st.binary(max_size=64))
    elif kind == 1:
        t.float_val.extend(draw(st.lists(st.floats(allow_nan=True, width=32), max_size=5)))
    elif kind == 2:
        t.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=5)))
    elif kind == 3:
        t.string_val.extend(draw(st.lists(st.binary(max_size=12), max_size=3)))
    return t


@st.composite
def node_defs(draw: Any, names: tuple[str, ...]) -> Any:
    from tensorflow.core.framework import node_def_pb2

    n = node_def_pb2.NodeDef()
    n.name = draw(st.sampled_from(names))
    n.op = draw(st.sampled_from(OPS))
    for _ in range(draw(st.integers(0, 3))):
        src = draw(st.sampled_from(names))
        form = draw(st.integers(0, 3))
        n.input.append(src if form == 0 else f"^{src}" if form == 1 else f"{src}:{draw(st.integers(0, 9))}"
                       if form == 2 else f"{src}:out:{draw(st.integers(0, 2))}")
    if draw(st.booleans()):
        n.attr["T"].type = draw(st.sampled_from(DTYPES)) % (2**31)
    if draw(st.booleans()):
        n.attr["dtype"].type = draw(st.sampled_from(DTYPES)) % (2**31)
    if n.op == "Const" or draw(st.integers(0, 4)) == 0:
        n.attr["value"].tensor.CopyFrom(draw(tensor_protos()))
    if draw(st.integers(0, 3)) == 0:
        n.attr[draw(st.sampled_from(["num", "num_split", "N"]))].i = draw(st.integers(-3, 10))
    if n.op.endswith("PartitionedCall") or draw(st.integers(0, 5)) == 0:
        n.attr["f"].func.name = draw(st.sampled_from(["f0", "f1", "missing_fn", ""]))
        n.attr["Tin"].list.type.extend(draw(st.lists(st.sampled_from(DTYPES[:6]), max_size=3)))
        n.attr["Tout"].list.type.extend(draw(st.lists(st.sampled_from(DTYPES[:6]), max_size=3)))
    if draw(st.integers(0, 6)) == 0:
        n.attr["_class"].list.s.append(b"loc:@" + draw(st.sampled_from(names)).encode())
    if draw(st.integers(0, 6)) == 0:
        n.attr["shape"].shape.dim.add(size=draw(st.sampled_from([-1, 0, 3, -7])))
    return n


@st.composite
def function_defs(draw: Any, fname: str) -> Any:
    from tensorflow.core.framework import function_pb2

    f = function_pb2.FunctionDef()
    f.signature.name = fname
    for i in range(draw(st.integers(0, 2))):
        f.signature.input_arg.add(name=f"in{i}", type=draw(st.sampled_from(DTYPES[:5])))
    outs = draw(st.integers(0, 2))
    for i in range(outs):
        f.signature.output_arg.add(name=f"out{i}", type=1)
    body_names = ("p", "q", "in0", "in1", "r")
    for nd in draw(st.lists(node_defs(body_names), max_size=4)):
        f.node_def.append(nd)
    for i in range(outs):
        f.ret[f"out{i}"] = draw(st.sampled_from(["p:output:0", "q:y:0", "in0", "in1:0", "r", "nothing:z:0",
                                                  "p:output:5"]))
    return f


@st.composite
def graph_defs(draw: Any) -> Any:
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.versions.producer = draw(st.sampled_from([0, 27, 1700, 2**30]))
    for nd in draw(st.lists(node_defs(NAMES), min_size=1, max_size=10)):
        gd.node.append(nd)
    for fname in draw(st.lists(st.sampled_from(["f0", "f1", "f0"]), max_size=3)):
        gd.library.function.append(draw(function_defs(fname)))
    return gd


@st.composite
def saved_models(draw: Any) -> Any:
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.saved_model_schema_version = 1
    for _ in range(draw(st.integers(1, 2))):
        mg = sm.meta_graphs.add()
        mg.graph_def.CopyFrom(draw(graph_defs()))
        mg.meta_info_def.tags.extend(draw(st.sampled_from([["serve"], ["serve", "gpu"], [], ["train"]])))
        for key in draw(st.lists(st.sampled_from(["serving_default", "predict", "__saved_model_init_op"]),
                                 max_size=2)):
            sd = mg.signature_def[key]
            sd.method_name = draw(st.sampled_from(["tensorflow/serving/predict", "", "x"]))
            for io in (sd.inputs, sd.outputs):
                for k in draw(st.lists(st.sampled_from(["x", "y", "z"]), max_size=2)):
                    info = io[k]
                    enc = draw(st.integers(0, 3))
                    if enc == 0:
                        info.name = draw(st.sampled_from(list(NAMES) + ["x:0", "a:3", "nowhere:0"]))
                    elif enc == 1:
                        info.coo_sparse.values_tensor_name = draw(st.sampled_from(list(NAMES)))
                    elif enc == 2:
                        info.composite_tensor.components.add(name=draw(st.sampled_from(list(NAMES))))
                    info.dtype = draw(st.sampled_from(DTYPES)) % (2**31)
        for fname in draw(st.lists(st.sampled_from(["tokens.txt", "../../../etc/hostname", "/etc/hostname", "",
                                                    "sub/dir.txt", "missing.txt"]), max_size=2)):
            a = mg.asset_file_def.add()
            a.filename = fname
            a.tensor_info.name = draw(st.sampled_from(list(NAMES)))
        if draw(st.booleans()):
            mg.collection_def["saved_model_main_op"].node_list.value.append(draw(st.sampled_from(list(NAMES))))
        if draw(st.integers(0, 3)) == 0:
            mg.saver_def.restore_op_name = draw(st.sampled_from(list(NAMES)))
            mg.saver_def.filename_tensor_name = draw(st.sampled_from(list(NAMES)))
        if draw(st.integers(0, 5)) == 0:
            mg.object_graph_def.nodes.add()
    return sm


@st.composite
def plausible_graph_defs(draw: Any) -> Any:
    """Well-formed nodes (Placeholder, Const, Identity, AddV2, NoOp with their attrs) wired by random inputs,
    mostly to earlier nodes: many load, some do not (a dtype mismatch, a dangling or later input, a cycle)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2, node_def_pb2

    gd = graph_pb2.GraphDef()
    gd.versions.producer = 1700
    names: list[str] = []
    for i in range(draw(st.integers(1, 8))):
        n = node_def_pb2.NodeDef(name=f"n{i}", op=draw(st.sampled_from(["Placeholder", "Const", "Identity", "AddV2",
                                                                          "NoOp"])))
        dtype = draw(st.sampled_from([1, 1, 1, 3]))
        if n.op == "Placeholder":
            n.attr["dtype"].type = dtype
        elif n.op == "Const":
            n.attr["dtype"].type = dtype
            n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.ones([2], tf.as_dtype(dtype).as_numpy_dtype)))
        elif n.op in ("Identity", "AddV2"):
            n.attr["T"].type = dtype
            for _ in range(1 if n.op == "Identity" else 2):
                pool = names if names and draw(st.integers(0, 9)) else [*names, n.name, "ghost"]
                n.input.append(draw(st.sampled_from(pool)))
        if names and draw(st.integers(0, 4)) == 0:
            n.input.append("^" + draw(st.sampled_from(names)))
        names.append(n.name)
        gd.node.append(n)
    return gd


def structured_strategy() -> st.SearchStrategy:
    return st.one_of(graph_defs().map(lambda g: ("graph_def", g)), saved_models().map(lambda s: ("saved_model", s)),
                     plausible_graph_defs().map(lambda g: ("graph_def", g)))


def run_load_structured(arg: tuple[str, Any]) -> str:
    kind, proto = arg
    data = proto.SerializeToString()
    if kind == "graph_def":
        path = WORK.root / "structured.pb"
        path.write_bytes(data)
        return _load_and_summarize(path)
    model_dir = WORK.root / "structured_sm"
    if not model_dir.is_dir():
        model_dir.mkdir()
        (model_dir / "variables").mkdir()
        (model_dir / "assets").mkdir()
        (model_dir / "assets" / "tokens.txt").write_text("a\nb\n")
    (model_dir / "saved_model.pb").write_bytes(data)
    return _load_and_summarize(model_dir)


# --------------------------------------------------------------------------- gtt_parse
GTT_ALPHABET = list("abcdefghijklmnopqrstuvwxyz_ABCXYZ0123456789()=,\"'\\ \t\n-./:;[]{}#é") + ["\x00"]


@st.composite
def gtt_strings(draw: Any) -> str:
    """Transform strings: random text, or near-valid GTT built from real rule names, then lightly damaged."""
    if draw(st.booleans()):
        return draw(st.text(alphabet=st.sampled_from(GTT_ALPHABET), max_size=120))
    names = ["remove_nodes", "fold_constants", "strip_unused_nodes", "fold_old_batch_norms", "quantize_weights",
             "merge_duplicate_nodes", "sort_by_execution_order", "obfuscate_names", "remove_identity", "nope"]
    params = ["op", "ignore_errors", "type", "shape", "name", "minimum_size", "dtype", "bogus"]
    values = ["Identity", "true", "false", "float", "1,2,3", "-1", "int8", "float16", "1e3", "", "a\\\"b", "x y",
              "CheckNumerics", "99999999999999999999", "0x10"]
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names))
        ps = draw(st.lists(st.tuples(st.sampled_from(params), st.sampled_from(values), st.booleans()), max_size=3))
        if ps:
            inner = ", ".join(f'{k}="{v}"' if q else f"{k}={v}" for k, v, q in ps)
            name += f"({inner})"
        parts.append(name)
    text = draw(st.sampled_from([" ", "\n", "  "])).join(parts)
    if text and draw(st.booleans()):  # damage it a little
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + draw(st.sampled_from(["", "(", ")", '"', "=", ",", "\\"])) + text[i + 1:]
    return text


def gtt_strategy() -> st.SearchStrategy:
    return gtt_strings()


def run_gtt_parse(text: str) -> str:
    from graphxform.core.errors import GraphxformError, RuleError
    from graphxform.engine.gtt_syntax import format_transform, parse_transforms
    from graphxform.engine.pipeline import build_pipeline

    try:
        parsed = parse_transforms(text)
    except RuleError:
        return "refused"
    # What parses survives a format -> parse round trip unchanged.
    again = parse_transforms(" ".join(format_transform(n, p) for n, p in parsed))
    assert again == parsed, (text, parsed, again)
    try:
        build_pipeline(text)
    except GraphxformError:
        return "parsed, rules refused"
    return "built"


TARGETS: dict[str, Target] = {
    t.name: t for t in (
        Target("load_bytes", bytes_strategy, run_load_bytes),
        Target("load_mutated", mutated_strategy, run_load_mutated),
        Target("load_structured", structured_strategy, run_load_structured),
        Target("gtt_parse", gtt_strategy, run_gtt_parse),
    )
}


def available(name: str) -> bool:
    """The mutation target needs the fixtures."""
    if name == "load_mutated":
        return all((FIXTURES / s).is_file() for s in MUTATION_SOURCES)
    return True


__all__ = ["TARGETS", "WORK", "Target", "available", "mutate"]
