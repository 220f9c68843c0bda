"""A corpus of broken and hostile model files, built from the fixtures, each with what the CLI must do with it.

>>> cases = [c for c in CASES if c.category == "checkpoint"]     # doctest: +SKIP
>>> path = cases[0].materialize(Path("/tmp/broken"))              # doctest: +SKIP

``python -m tests.broken_inputs DIR`` writes the whole corpus and prints one line per case.

Every case is deterministic (seeded byte damage, or an edit of a fixture's protos) and classified:

* :data:`MUST_FAIL` (``must="fail"``): for each command of ``case.commands`` (``inspect``, ``optimize``,
  ``transform --transforms fold_constants``) the CLI exits 2 and prints exactly one line on stderr,
  ``error: …``, containing every string of ``case.names`` (``{path}`` stands for the input path: the
  file or directory given to the CLI; node names follow); no traceback; nothing is written (OUT absent,
  no temporary file beside it) and the input is unchanged (hash). ``optimize`` may print the progress
  lines of the stages it finished (``✓ load …``) before the error. Commands in ``case.also_ok`` are
  ones the input is fine for (``inspect`` reads no weights): they must exit 0.
* :data:`MUST_SUCCEED` (``must="succeed"``): odd but valid models. Each command exits 0, prints no
  ``error:`` line, the input is unchanged and OUT loads with :func:`graphxform.load`.

``heavy`` cases (2 GiB sparse files, a 40 GB splat constant, a 10^10-element ``Fill``, a 20000-node
chain, an endless character device) run in one subprocess that also reports its peak RSS.

Builders take a fresh directory and return the input path inside it; nothing is built until
:meth:`Case.materialize` is called, so listing the cases costs nothing (test collection).
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

#: 2 GiB + 1 MiB: over protobuf's 2 GiB message limit.
OVERSIZE_BYTES = 2 * 1024**3 + 1024**2

COMMANDS = ("inspect", "optimize", "transform")

#: The categories of the corpus, in the order docs/hostile.md lists them.
CATEGORIES = {
    "frozen_bytes": "frozen .pb/.pbtxt files truncated, bit-flipped, empty, random, of the wrong message",
    "saved_model_bytes": "saved_model.pb of every SavedModel fixture truncated, bit-flipped, empty, random, swapped",
    "checkpoint_files": "variables/: missing, truncated, empty or bit-flipped index and data shards, index and data "
                        "of different models, a missing shard",
    "checkpoint_values": "the checkpoint's TrackableObjectGraph corrupt or not matching, values missing, of the "
                         "wrong shape or dtype",
    "object_graph": "the SavedObjectGraph: children and bound_inputs out of range or of the wrong kind, concrete "
                    "functions missing, variables without their kind",
    "signatures": "signatures naming missing tensors, ports or nothing; init, main and restore ops missing; "
                  "tag sets and meta graphs absent",
    "functions": "function libraries: calls to missing functions, self and mutual recursion, bodies with dangling "
                 "inputs, cycles, duplicate or unknown nodes, wrong arity",
    "graph": "GraphDef structure: dangling inputs, bad ports, cycles, duplicate and empty names, unknown ops, "
             "missing attrs",
    "constants": "Const tensors with wrong content sizes, unknown dtypes, negative dims, 40 GB splats",
    "shapes": "absurd shapes on placeholders, signatures and reshapes",
    "oversize": "files over protobuf's 2 GiB limit (sparse)",
    "assets": "asset names escaping the model, symlinks out or in loops, assets missing or not files",
    "filesystem": "the input itself: a directory for saved_model.pb, a FIFO, a character device, a dangling link",
}


@dataclass(frozen=True)
class Case:
    """One corpus entry: how to build it and what every command must do with it."""

    name: str
    category: str
    why: str
    build: Callable[[Path], Path] = field(repr=False, compare=False)
    must: str = "fail"  # "fail" | "succeed"
    commands: tuple[str, ...] = COMMANDS
    also_ok: tuple[str, ...] = ()  # must-fail cases: commands for which the input is fine (exit 0)
    names: tuple[str, ...] = ("{path}",)  # the error line contains each ("{path}": the input path)
    extra_args: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    heavy: bool = False

    def materialize(self, root: Path) -> Path:
        """Build the case under ``root/<name>/`` (once) and return the input path."""
        home = root / self.name
        marker = home / ".built"
        if marker.is_file():
            return home / marker.read_text()
        if home.exists():
            shutil.rmtree(home)
        home.mkdir(parents=True)
        path = self.build(home)
        marker.write_text(str(path.relative_to(home)))
        return path

    def expected_names(self, path: Path) -> list[str]:
        return [n.replace("{path}", str(path)) for n in self.names]

    def argv(self, command: str, path: Path, out: Path) -> list[str]:
        """The ``graphxform`` arguments for ``command`` on this input (``out``: where OUT may go)."""
        extra = list(self.extra_args.get(command, ()))
        if command == "inspect":
            return ["inspect", str(path), *extra]
        if command == "optimize":
            return ["optimize", str(path), str(out), *extra]
        if command == "transform":
            return ["transform", str(path), str(out), "--transforms", "fold_constants", *extra]
        raise ValueError(command)

    def runs(self) -> list[tuple[str, str]]:
        """(command, expectation) pairs: expectation ``"fail"`` (exit 2) or ``"ok"`` (exit 0)."""
        if self.must == "succeed":
            return [(c, "ok") for c in self.commands]
        return [(c, "fail") for c in self.commands] + [(c, "ok") for c in self.also_ok]


# --------------------------------------------------------------------------- proto helpers
def _dt():  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import types_pb2

    return types_pb2


def node(name: str, op: str, inputs: list[str] | None = None, **attrs):  # type: ignore[no-untyped-def]
    """A ``NodeDef`` with attrs given as AttrValue protos or plain python (dtype ints via ``T=DT_FLOAT``)."""
    from tensorflow.core.framework import attr_value_pb2, node_def_pb2

    nd = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs or []))
    for k, v in attrs.items():
        if isinstance(v, attr_value_pb2.AttrValue):
            nd.attr[k].CopyFrom(v)
        elif isinstance(v, bool):
            nd.attr[k].b = v
        elif isinstance(v, int):
            nd.attr[k].type = v
        elif isinstance(v, str):
            nd.attr[k].s = v.encode()
        elif isinstance(v, bytes):
            nd.attr[k].s = v
        else:
            raise TypeError(f"attr {k}: {v!r}")
    return nd


def const(name: str, value, dtype=None):  # type: ignore[no-untyped-def]
    """A ``Const`` node holding ``value`` (numpy-convertible)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import attr_value_pb2

    arr = np.asarray(value, dtype=dtype)
    tp = tf.make_tensor_proto(arr)
    return node(name, "Const", dtype=tp.dtype, value=attr_value_pb2.AttrValue(tensor=tp))


def _shape_proto(shape: list[int]):  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import tensor_shape_pb2

    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape])


def placeholder(name: str, dtype: int | None = None, shape: list[int] | None = None):  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import attr_value_pb2

    t = _dt()
    nd = node(name, "Placeholder", dtype=t.DT_FLOAT if dtype is None else dtype)
    if shape is not None:
        nd.attr["shape"].CopyFrom(attr_value_pb2.AttrValue(shape=_shape_proto(shape)))
    return nd


def graph_def(*nodes):  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.versions.producer = 1700
    gd.node.extend(nodes)
    return gd


def small_graph(extra=()):  # type: ignore[no-untyped-def]
    """``y = Relu(x @ w + b)``: a valid frozen graph to break in small ways (nodes x, w, b, mm, add, y)."""
    t = _dt()
    return graph_def(
        placeholder("x", shape=[-1, 4]),
        const("w", [[1.0], [2.0], [3.0], [4.0]], "float32"),
        const("b", [0.5], "float32"),
        node("mm", "MatMul", ["x", "w"], T=t.DT_FLOAT),
        node("add", "AddV2", ["mm", "b"], T=t.DT_FLOAT),
        node("y", "Relu", ["add"], T=t.DT_FLOAT),
        *extra,
    )


IO_ARGS = {"optimize": ("--input-names", "x", "--output-names", "y"),
           "transform": ("--input-names", "x", "--output-names", "y")}
FROZEN_IO = {"optimize": ("--input-names", "input", "--output-names", "output"),
             "transform": ("--input-names", "input", "--output-names", "output")}


# --------------------------------------------------------------------------- byte-level damage
def truncate_bytes(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def flip_bits(data: bytes, seed: int, flips: int = 8, start: int = 0, end: int | None = None) -> bytes:
    """``flips`` random bits flipped in ``data[start:end]`` (seeded)."""
    rng = random.Random(seed)
    buf = bytearray(data)
    hi = len(buf) if end is None else min(end, len(buf))
    for _ in range(flips):
        i = rng.randrange(start, hi)
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def sparse_file(path: Path, size: int = OVERSIZE_BYTES, head: bytes = b"") -> Path:
    """A file of ``size`` bytes that takes no disk space (``truncate -s``), starting with ``head``."""
    path.write_bytes(head)
    try:
        subprocess.run(["truncate", "-s", str(size), str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        with open(path, "r+b") as f:
            f.truncate(size)
    return path


def input_hash(path: Path) -> str:
    """sha256 over a file, or over a directory tree (relative paths, file bytes, symlink targets).

    Files over 64 MiB (the sparse 2 GiB ones) are hashed by size, mtime and their first MiB.
    """
    h = hashlib.sha256()

    def add_file(p: Path) -> None:
        if p.is_symlink():
            h.update(b"link:" + os.readlink(p).encode())
            return
        st = p.lstat()
        if not p.is_file():
            h.update(f"special:{st.st_mode}".encode())
            return
        if st.st_size > 64 * 1024**2:
            h.update(f"big:{st.st_size}:{st.st_mtime_ns}".encode())
            with open(p, "rb") as f:
                h.update(f.read(1024**2))
            return
        h.update(p.read_bytes())

    if path.is_dir() and not path.is_symlink():
        for p in sorted(path.rglob("*")):
            h.update(str(p.relative_to(path)).encode() + b"\0")
            if not p.is_dir() or p.is_symlink():
                add_file(p)
    elif path.exists() or path.is_symlink():
        add_file(path)
    return h.hexdigest()


# --------------------------------------------------------------------------- builders
Builder = Callable[[Path], Path]
Mutation = Callable[[Path], None]


def fixture(name: str, *mutations: Mutation) -> Builder:
    """Copy ``fixtures/<name>`` to ``home/<name>`` and apply ``mutations`` to the copy."""
    def build(home: Path) -> Path:
        src = FIXTURES / name
        if not src.exists():
            raise FileNotFoundError(f"fixture {src} is missing")
        dst = home / name
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy(src, dst)
        for m in mutations:
            m(dst)
        return dst
    return build


def frozen_graph(make_gd: Callable[[], Any], filename: str = "model.pb") -> Builder:
    def build(home: Path) -> Path:
        path = home / filename
        gd = make_gd()
        if filename.endswith(".pbtxt"):
            from google.protobuf import text_format

            path.write_text(text_format.MessageToString(gd))
        else:
            path.write_bytes(gd.SerializeToString())
        return path
    return build


def raw_file(filename: str, make: Callable[[], bytes]) -> Builder:
    def build(home: Path) -> Path:
        path = home / filename
        path.write_bytes(make())
        return path
    return build


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# ---- mutations of a copied SavedModel directory
def edit_file(rel: str, fn: Callable[[bytes], bytes]) -> Mutation:
    def m(d: Path) -> None:
        p = d / rel
        p.write_bytes(fn(p.read_bytes()))
    return m


def remove(rel: str) -> Mutation:
    def m(d: Path) -> None:
        p = d / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return m


def rename(rel: str, new: str) -> Mutation:
    def m(d: Path) -> None:
        (d / rel).rename(d / new)
    return m


def copy_from(fixture_name: str, rel: str) -> Mutation:
    """Replace ``rel`` by the same file of another fixture."""
    def m(d: Path) -> None:
        shutil.copy(FIXTURES / fixture_name / rel, d / rel)
    return m


def edit_saved_model(fn: Callable[[Any], None]) -> Mutation:
    """Parse ``saved_model.pb``, let ``fn(saved_model)`` change it, write it back."""
    def m(d: Path) -> None:
        from tensorflow.core.protobuf import saved_model_pb2

        pb = d / "saved_model.pb"
        sm = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
        fn(sm)
        pb.write_bytes(sm.SerializeToString())
    return m


def edit_meta_graph(fn: Callable[[Any], None]) -> Mutation:
    def each(sm: Any) -> None:
        for mg in sm.meta_graphs:
            fn(mg)
    return edit_saved_model(each)


DATA = "variables/variables.data-00000-of-00001"
INDEX = "variables/variables.index"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def edit_checkpoint(fn: Callable[[dict[str, Any]], None]) -> Mutation:
    """Read every tensor of ``variables/``, let ``fn(tensors)`` change the dict, write a new checkpoint."""
    def m(d: Path) -> None:
        import tensorflow as tf

        prefix = d / "variables" / "variables"
        reader = tf.train.load_checkpoint(str(prefix))
        tensors = {k: reader.get_tensor(k) for k in sorted(reader.get_variable_to_dtype_map())}
        fn(tensors)
        for f in (d / "variables").iterdir():
            f.unlink()
        keys = sorted(tensors)
        with tf.device("/cpu:0"):
            tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=keys, shape_and_slices=[""] * len(keys),
                              tensors=[tf.constant(tensors[k]) for k in keys])
    return m


def edit_checkpoint_graph(fn: Callable[[Any], None]) -> Mutation:
    """Change the checkpoint's ``TrackableObjectGraph``."""
    def edit(tensors: dict[str, Any]) -> None:
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        g = trackable_object_graph_pb2.TrackableObjectGraph.FromString(tensors[OBJECT_GRAPH_KEY])
        fn(g)
        tensors[OBJECT_GRAPH_KEY] = g.SerializeToString()
    return edit_checkpoint(edit)


def variable_keys(tensors: dict[str, Any]) -> list[str]:
    return sorted(k for k in tensors if k.endswith("VARIABLE_VALUE"))


# ---- TF2 object-graph and function helpers
def signature_call(mg: Any, key: str = "serving_default") -> Any:
    """The top-level call node computing signature ``key``."""
    from graphxform.core.names import parse_input

    name = parse_input(next(iter(mg.signature_def[key].outputs.values())).name)[0]
    return next(n for n in mg.graph_def.node if n.name == name)


def library(mg: Any) -> dict[str, Any]:
    return {f.signature.name: f for f in mg.graph_def.library.function}


def wrapper_and_inner(mg: Any, key: str = "serving_default") -> tuple[Any, Any]:
    """The signature wrapper function and the function it calls (TF2 exports nest them)."""
    lib = library(mg)
    wrapper = lib[signature_call(mg, key).attr["f"].func.name]
    call = next(n for n in wrapper.node_def if "f" in n.attr)
    return wrapper, lib[call.attr["f"].func.name]


def first_variable_object(og: Any) -> int:
    return next(i for i, n in enumerate(og.nodes) if n.WhichOneof("kind") == "variable")


def wrapper_bound(mg: Any, key: str = "serving_default") -> Any:
    """The ``bound_inputs`` of the signature wrapper's concrete function."""
    return mg.object_graph_def.concrete_functions[signature_call(mg, key).attr["f"].func.name].bound_inputs


# --------------------------------------------------------------------------- the corpus
SAVED_MODELS = ("estimator_dnn", "estimator_linear", "keras2_saved_model", "keras3_saved_model", "keras3_text",
                "keras_bn", "module_keras", "module_tables", "module_variables", "tf2_lookup", "tf_text")
TF2_MODELS = tuple(m for m in SAVED_MODELS if not m.startswith("estimator"))


def _cases() -> list[Case]:  # noqa: C901 - one flat list of cases, read top to bottom
    cases: list[Case] = []

    def add(name: str, category: str, why: str, build: Builder, **kw: Any) -> None:
        if "names" in kw:
            kw["names"] = tuple(kw["names"])
        cases.append(Case(name, category, why, build, **kw))

    t = _dt()

    # ---------------------------------------------------------------- frozen_bytes
    frozen_pb = "tf1_frozen_bn.pb"
    for pct in (1, 10, 50, 90, 99):
        add(f"pb_truncated_{pct}", "frozen_bytes", f"{frozen_pb} cut to {pct}%",
            raw_file("model.pb", lambda pct=pct: truncate_bytes(fixture_bytes(frozen_pb), pct / 100)),
            extra_args=FROZEN_IO)
    for pct in (10, 50, 90):
        add(f"pbtxt_truncated_{pct}", "frozen_bytes", f"tf1_frozen_bn.pbtxt cut to {pct}%",
            raw_file("model.pbtxt", lambda pct=pct: truncate_bytes(fixture_bytes("tf1_frozen_bn.pbtxt"), pct / 100)),
            extra_args=FROZEN_IO)
    # Bit flips in the graph structure (the first 4 KiB: names, ops, attrs; the weights come later).
    for seed in range(8):
        add(f"pb_bitflip_{seed}", "frozen_bytes", f"{frozen_pb} with 8 bits flipped in its first 4 KiB (seed {seed})",
            raw_file("model.pb", lambda seed=seed: flip_bits(fixture_bytes(frozen_pb), seed, end=4096)),
            extra_args=FROZEN_IO)
    add("pb_empty", "frozen_bytes", "a zero-byte .pb", raw_file("model.pb", lambda: b""), names=["{path}", "empty"])
    add("pbtxt_empty", "frozen_bytes", "a zero-byte .pbtxt", raw_file("model.pbtxt", lambda: b""),
        names=["{path}", "empty"])
    add("pb_random", "frozen_bytes", "4 KiB of random bytes named .pb",
        raw_file("model.pb", lambda: random.Random(1).randbytes(4096)))
    add("nosuffix_random", "frozen_bytes", "4 KiB of random bytes, no suffix",
        raw_file("model", lambda: random.Random(2).randbytes(4096)))
    add("pbtxt_random_text", "frozen_bytes", "random printable text named .pbtxt",
        raw_file("model.pbtxt", lambda: "".join(random.Random(3).choice("abc {}:\n'\"_0123") for _ in range(2000))
                 .encode()))
    add("pbtxt_holding_binary", "frozen_bytes", "a binary GraphDef named .pbtxt",
        raw_file("model.pbtxt", lambda: fixture_bytes(frozen_pb)))
    add("pbtxt_unknown_field", "frozen_bytes", "a text GraphDef with a field GraphDef does not have",
        raw_file("model.pbtxt", lambda: b"node { name: 'a' op: 'NoOp' }\nno_such_field: 3\n"))
    add("pb_tensor_proto", "frozen_bytes", "a .pb holding a TensorProto, not a GraphDef",
        raw_file("model.pb", lambda: __import__("tensorflow").make_tensor_proto([1.0, 2.0]).SerializeToString()))
    add("pb_node_def", "frozen_bytes", "a .pb holding one NodeDef, not a GraphDef",
        raw_file("model.pb", lambda: node("a", "NoOp").SerializeToString()))
    add("pb_nodes_without_ops", "frozen_bytes", "a GraphDef whose nodes have names but no ops",
        raw_file("model.pb", lambda: graph_def(node("a", ""), node("b", "")).SerializeToString()),
        names=["{path}", "'a'", "no op"])

    # ---------------------------------------------------------------- saved_model_bytes
    for m in SAVED_MODELS:
        add(f"sm_truncated_{m}", "saved_model_bytes", f"{m}/saved_model.pb cut in half",
            fixture(m, edit_file("saved_model.pb", lambda b: truncate_bytes(b, 0.5))))
    for m in ("keras3_saved_model", "tf2_lookup", "estimator_dnn"):
        add(f"sm_truncated_97_{m}", "saved_model_bytes", f"{m}/saved_model.pb cut to 97%",
            fixture(m, edit_file("saved_model.pb", lambda b: truncate_bytes(b, 0.97))))
    for m, seed in (("estimator_dnn", 1), ("estimator_dnn", 2), ("keras3_saved_model", 0), ("keras3_saved_model", 1),
                    ("tf2_lookup", 0), ("tf2_lookup", 1), ("module_tables", 0), ("keras2_saved_model", 0)):
        add(f"sm_bitflip_{m}_{seed}", "saved_model_bytes",
            f"{m}/saved_model.pb with 8 bits flipped in its first 2 KiB (seed {seed})",
            fixture(m, edit_file("saved_model.pb", lambda b, seed=seed: flip_bits(b, seed, end=2048))))
    add("sm_empty_pb", "saved_model_bytes", "a zero-byte saved_model.pb",
        fixture("tf2_lookup", edit_file("saved_model.pb", lambda b: b"")))
    add("sm_random_pb", "saved_model_bytes", "saved_model.pb of 8 KiB of random bytes",
        fixture("keras3_saved_model", edit_file("saved_model.pb", lambda b: random.Random(4).randbytes(8192))))
    add("sm_pb_is_graph_def", "saved_model_bytes", "saved_model.pb holding a frozen GraphDef",
        fixture("estimator_dnn", edit_file("saved_model.pb", lambda b: fixture_bytes(frozen_pb))))
    add("sm_pbtxt_garbage", "saved_model_bytes", "saved_model.pbtxt (no .pb) holding a cut text proto",
        fixture("module_variables", remove("saved_model.pb"),
                lambda d: (d / "saved_model.pbtxt").write_text("saved_model_schema_version: 1\nmeta_graphs {\n  "
                                                               "meta_info_def {\n")))
    add("sm_no_meta_graphs", "saved_model_bytes", "a SavedModel proto with no MetaGraph",
        fixture("keras3_saved_model", edit_saved_model(lambda sm: sm.ClearField("meta_graphs"))))
    add("sm_empty_graph_def", "saved_model_bytes", "a MetaGraph whose GraphDef has no node",
        fixture("keras3_saved_model", edit_meta_graph(lambda mg: mg.graph_def.ClearField("node"))))

    # ---------------------------------------------------------------- checkpoint_files
    for m in ("estimator_dnn", "keras3_saved_model", "tf2_lookup", "keras2_saved_model"):
        # inspect reads a TF2 checkpoint's object graph (from the data shard), a TF1 checkpoint not at all.
        data_kw: dict[str, Any] = {"also_ok": ("inspect",), "commands": ("optimize", "transform")} \
            if m.startswith("estimator") else {}
        add(f"ckpt_no_variables_dir_{m}", "checkpoint_files", f"{m} without variables/",
            fixture(m, remove("variables")), names=["{path}", "variables.index"])
        add(f"ckpt_no_index_{m}", "checkpoint_files", f"{m} without variables.index",
            fixture(m, remove(INDEX)), names=["{path}", "variables.index"])
        add(f"ckpt_no_data_{m}", "checkpoint_files", f"{m} without its data shard",
            fixture(m, remove(DATA)), names=["{path}", "variables.data-00000-of-00001"])
        add(f"ckpt_data_truncated_{m}", "checkpoint_files", f"{m} with its data shard cut to 30%",
            fixture(m, edit_file(DATA, lambda b: truncate_bytes(b, 0.3))), **data_kw)
        add(f"ckpt_data_empty_{m}", "checkpoint_files", f"{m} with a zero-byte data shard",
            fixture(m, edit_file(DATA, lambda b: b"")), **data_kw)
        add(f"ckpt_data_bitflip_{m}", "checkpoint_files", f"{m} with 8 bits flipped in its data shard (CRC mismatch)",
            fixture(m, edit_file(DATA, lambda b: flip_bits(b, 5))), **data_kw)
        add(f"ckpt_index_truncated_{m}", "checkpoint_files", f"{m} with variables.index cut in half",
            fixture(m, edit_file(INDEX, lambda b: truncate_bytes(b, 0.5))), **data_kw)
        add(f"ckpt_index_bitflip_{m}", "checkpoint_files", f"{m} with 8 bits flipped in variables.index",
            fixture(m, edit_file(INDEX, lambda b: flip_bits(b, 6))), **data_kw)
        other = {"estimator_dnn": "estimator_linear", "keras3_saved_model": "module_keras",
                 "tf2_lookup": "module_variables", "keras2_saved_model": "keras3_saved_model"}[m]
        add(f"ckpt_index_of_other_{m}", "checkpoint_files",
            f"{m} with the variables.index of {other}: index and data disagree",
            fixture(m, copy_from(other, INDEX)), **data_kw)
        add(f"ckpt_shard_count_{m}", "checkpoint_files",
            f"{m} whose data shard is renamed variables.data-00000-of-00002 (shard 1 missing)",
            fixture(m, rename(DATA, "variables/variables.data-00000-of-00002")),
            names=["{path}", "variables.data-00001-of-00002"])

    # ---------------------------------------------------------------- checkpoint_values (TF2 object-based)
    def garbage_graph(tensors: dict[str, Any]) -> None:
        tensors[OBJECT_GRAPH_KEY] = random.Random(7).randbytes(300)

    def rename_children(g: Any) -> None:
        for n in g.nodes[:1]:
            for c in n.children:
                c.local_name = c.local_name + "_renamed"

    def drop_first_variable(tensors: dict[str, Any]) -> None:
        del tensors[variable_keys(tensors)[0]]

    def reshape_variables(tensors: dict[str, Any]) -> None:
        import numpy as np

        for k in variable_keys(tensors):
            tensors[k] = np.zeros((3, 5, 7), dtype=tensors[k].dtype)

    def retype_variables(tensors: dict[str, Any]) -> None:
        import numpy as np

        for k in variable_keys(tensors):
            tensors[k] = np.asarray(tensors[k]).astype(np.int64)

    def drop_object_graph(tensors: dict[str, Any]) -> None:
        del tensors[OBJECT_GRAPH_KEY]

    for m in ("keras3_saved_model", "tf2_lookup"):
        add(f"ckptval_graph_garbage_{m}", "checkpoint_values", f"{m}: the checkpoint's object graph is random bytes",
            fixture(m, edit_checkpoint(garbage_graph)))
    for m in ("keras3_saved_model", "module_keras", "tf2_lookup"):
        add(f"ckptval_graph_mismatch_{m}", "checkpoint_values",
            f"{m}: the checkpoint's object graph names the root's children differently (it matches no saved object)",
            fixture(m, edit_checkpoint_graph(rename_children)))
    for m in ("keras3_saved_model", "module_variables"):
        add(f"ckptval_missing_value_{m}", "checkpoint_values", f"{m}: one variable's value removed from the checkpoint",
            fixture(m, edit_checkpoint(drop_first_variable)), also_ok=("inspect",), commands=("optimize", "transform"))
        add(f"ckptval_wrong_shape_{m}", "checkpoint_values", f"{m}: every variable value of shape [3, 5, 7]",
            fixture(m, edit_checkpoint(reshape_variables)), also_ok=("inspect",), commands=("optimize", "transform"))
        add(f"ckptval_wrong_dtype_{m}", "checkpoint_values", f"{m}: every variable value stored as int64",
            fixture(m, edit_checkpoint(retype_variables)), also_ok=("inspect",), commands=("optimize", "transform"))
    add("ckptval_no_object_graph_keras3_saved_model", "checkpoint_values",
        "keras3_saved_model: the checkpoint has no object graph at all",
        fixture("keras3_saved_model", edit_checkpoint(drop_object_graph)), also_ok=("inspect",),
        commands=("optimize", "transform"))

    # ---------------------------------------------------------------- object_graph (SavedObjectGraph)
    def og_edit(fn: Callable[[Any, Any], None]) -> Mutation:
        return edit_meta_graph(lambda mg: fn(mg, mg.object_graph_def))

    def child_oob(mg: Any, og: Any) -> None:
        og.nodes[0].children[0].node_id = len(og.nodes) + 100

    def bound_oob(mg: Any, og: Any) -> None:
        wrapper_bound(mg)[0] = 10**6

    def bound_negative(mg: Any, og: Any) -> None:
        wrapper_bound(mg)[0] = -1

    def bound_too_many(mg: Any, og: Any) -> None:
        bound = wrapper_bound(mg)
        bound.extend([bound[0]] * (len(signature_call(mg).input) + 1))

    def bound_wrong_kind(mg: Any, og: Any) -> None:
        fn_id = next(i for i, n in enumerate(og.nodes)
                     if n.WhichOneof("kind") in ("function", "bare_concrete_function"))
        wrapper_bound(mg)[0] = fn_id

    def bound_swapped(mg: Any, og: Any) -> None:
        bound = wrapper_bound(mg)
        bound[0], bound[1] = bound[1], bound[0]

    def concrete_missing(mg: Any, og: Any) -> None:
        del og.concrete_functions[signature_call(mg).attr["f"].func.name]

    def variables_untyped(mg: Any, og: Any) -> None:
        for n in og.nodes:
            if n.WhichOneof("kind") == "variable":
                n.ClearField("variable")
                n.user_object.identifier = "_generic_user_object"

    def root_orphaned(mg: Any, og: Any) -> None:
        og.nodes[0].ClearField("children")

    def variable_shape(mg: Any, og: Any) -> None:
        v = og.nodes[first_variable_object(og)].variable
        v.shape.CopyFrom(_shape_proto([7, 7, 7]))

    def variable_dtype(mg: Any, og: Any) -> None:
        og.nodes[first_variable_object(og)].variable.dtype = t.DT_STRING

    def concrete_names_missing_function(mg: Any, og: Any) -> None:
        for n in og.nodes:
            if n.WhichOneof("kind") == "function":
                n.function.concrete_functions[:] = ["__inference_no_such_function_1"]
        og.concrete_functions["__inference_no_such_function_1"].bound_inputs.append(first_variable_object(og))

    og_variants: list[tuple[str, str, Callable[[Any, Any], None], dict[str, Any]]] = [
        ("child_oob", "a child of the root names object 100 past the end", child_oob, {}),
        ("bound_oob", "the signature function's bound_inputs[0] is object 1000000", bound_oob, {}),
        ("bound_negative", "the signature function's bound_inputs[0] is -1", bound_negative, {}),
        ("bound_too_many", "the signature function has more bound_inputs than its call node has inputs",
         bound_too_many, {}),
        ("bound_wrong_kind", "bound_inputs[0] names a function object, not a variable", bound_wrong_kind, {}),
        ("bound_swapped", "bound_inputs[0] and [1] swapped: variables bound to the wrong values", bound_swapped, {}),
        ("concrete_missing", "the signature function has no concrete_functions entry (its captures are unbound)",
         concrete_missing, {}),
        ("variables_untyped", "every variable object has lost its kind", variables_untyped, {}),
        ("root_orphaned", "the root object has no children: no object has a path",
         root_orphaned, {}),
        ("variable_shape", "a SavedVariable claims shape [7, 7, 7]", variable_shape, {}),
        ("variable_dtype", "a SavedVariable claims dtype string", variable_dtype, {}),
        ("function_missing", "the saved function objects name a concrete function the library lacks",
         concrete_names_missing_function, {}),
    ]
    for m in ("keras3_saved_model", "module_variables", "tf2_lookup"):
        for variant, why, fn, kw in og_variants:
            if m == "tf2_lookup" and variant in ("variables_untyped", "root_orphaned", "variable_dtype"):
                continue
            add(f"og_{variant}_{m}", "object_graph", f"{m}: {why}", fixture(m, og_edit(fn)), **kw)

    # ---------------------------------------------------------------- signatures
    def sig_outputs_to(name: str, which: str = "outputs", keys: Iterable[str] | None = None) -> Mutation:
        def fn(mg: Any) -> None:
            for k, sd in mg.signature_def.items():
                if (keys is None and k == "__saved_model_init_op") or (keys is not None and k not in keys):
                    continue
                for info in getattr(sd, which).values():
                    info.name = name
        return edit_meta_graph(fn)

    for m in ("estimator_dnn", "keras3_saved_model", "module_keras", "tf2_lookup"):
        add(f"sig_output_missing_{m}", "signatures", f"{m}: every signature output names 'no_such_node:0'",
            fixture(m, sig_outputs_to("no_such_node:0")), names=["{path}", "no_such_node"])
    for m in ("estimator_dnn", "keras3_saved_model"):
        add(f"sig_input_missing_{m}", "signatures", f"{m}: every signature input names 'no_such_input:0'",
            fixture(m, sig_outputs_to("no_such_input:0", "inputs")), names=["{path}", "no_such_input"])
    add("sig_output_port_estimator_dnn", "signatures", "estimator_dnn: an output names port 99 of its node",
        fixture("estimator_dnn", edit_meta_graph(lambda mg: [setattr(i, "name", i.name.split(":")[0] + ":99") for sd in
                                                             mg.signature_def.values() for i in sd.outputs.values()])),
        names=["{path}", ":99"])
    add("sig_output_port_keras3_saved_model", "signatures",
        "keras3_saved_model: the output names port 7 of its call node (the function returns one)",
        fixture("keras3_saved_model", sig_outputs_to("StatefulPartitionedCall:7", keys=["serving_default"])),
        names=["{path}", "StatefulPartitionedCall:7"])
    add("sig_output_no_encoding_keras3_saved_model", "signatures", "keras3_saved_model: an output TensorInfo without a "
        "name or encoding", fixture("keras3_saved_model", edit_meta_graph(
            lambda mg: [i.ClearField("name") for i in mg.signature_def["serving_default"].outputs.values()])),
        names=["{path}", "serving_default"])
    add("sig_output_control_estimator_linear", "signatures", "estimator_linear: outputs name '^' control inputs",
        fixture("estimator_linear", edit_meta_graph(lambda mg: [setattr(i, "name", "^" + i.name.split(":")[0]) for sd
                                                                in mg.signature_def.values()
                                                                for i in sd.outputs.values()])))

    def sparse_missing(mg: Any) -> None:
        info = next(iter(mg.signature_def["serving_default"].outputs.values()))
        info.ClearField("name")
        info.coo_sparse.values_tensor_name = "no_values:0"
        info.coo_sparse.indices_tensor_name = "no_indices:0"
        info.coo_sparse.dense_shape_tensor_name = "no_shape:0"
    add("sig_sparse_missing_module_keras", "signatures", "module_keras: a coo_sparse output whose tensors do not exist",
        fixture("module_keras", edit_meta_graph(sparse_missing)), names=["{path}", "no_"])
    for m in ("keras3_saved_model", "tf2_lookup"):
        add(f"sig_init_op_missing_{m}", "signatures", f"{m}: __saved_model_init_op names 'no_such_init'",
            fixture(m, sig_outputs_to("no_such_init", keys=["__saved_model_init_op"])),
            names=["{path}", "no_such_init"])

    def main_op_missing(mg: Any) -> None:
        for key in ("saved_model_main_op", "legacy_init_op", "main_op"):
            if key in mg.collection_def:
                mg.collection_def[key].node_list.value[:] = ["no_such_main_op"]
    add("sig_collection_dangling_estimator_dnn", "signatures",
        "estimator_dnn: the table_initializer collection also names a node that does not exist (TF1 loaders fail)",
        fixture("estimator_dnn", edit_meta_graph(lambda mg: mg.collection_def["table_initializer"].node_list.value
                                                 .append("no_such_table_init"))),
        names=["{path}", "no_such_table_init"])
    add("sig_main_op_missing_estimator_dnn", "signatures", "estimator_dnn: the main op collection names a missing node",
        fixture("estimator_dnn", edit_meta_graph(main_op_missing)), names=["{path}", "no_such_main_op"])

    def restore_missing(mg: Any) -> None:
        mg.saver_def.restore_op_name = "no_such_restore"
    for m in ("estimator_dnn", "keras3_saved_model"):
        add(f"sig_restore_op_missing_{m}", "signatures", f"{m}: the SaverDef's restore op names a missing node",
            fixture(m, edit_meta_graph(restore_missing)), also_ok=("inspect",), commands=("optimize", "transform"),
            names=["{path}", "no_such_restore"])
    for m in ("estimator_dnn", "keras3_saved_model"):
        add(f"sig_unknown_tags_{m}", "signatures", f"{m} loaded with --tags serve,gpu (no such tag set)",
            fixture(m), extra_args={c: ("--tags", "serve,gpu") for c in COMMANDS}, names=["{path}", "serve,gpu"])
    add("sig_tag_set_emptied_tf2_lookup", "signatures", "tf2_lookup: the MetaGraph's tags removed",
        fixture("tf2_lookup", edit_meta_graph(lambda mg: mg.meta_info_def.ClearField("tags"))),
        names=["{path}", "serve"])
    add("sig_two_meta_graphs_same_tags", "signatures", "keras3_saved_model: two MetaGraphs tagged 'serve'",
        fixture("keras3_saved_model", edit_saved_model(lambda sm: sm.meta_graphs.add().CopyFrom(sm.meta_graphs[0]))),
        names=["{path}", "serve"])

    # ---------------------------------------------------------------- functions
    def fn_edit(fn: Callable[[Any], None]) -> Mutation:
        return edit_meta_graph(fn)

    def lib_remove_wrapper(mg: Any) -> None:
        name = signature_call(mg).attr["f"].func.name
        keep = [f for f in mg.graph_def.library.function if f.signature.name != name]
        mg.graph_def.library.ClearField("function")
        mg.graph_def.library.function.extend(keep)

    def nested_call_missing(mg: Any) -> None:
        wrapper, _ = wrapper_and_inner(mg)
        next(n for n in wrapper.node_def if "f" in n.attr).attr["f"].func.name = "__inference_no_such_fn_9"

    def wrapper_calls_itself(mg: Any) -> None:
        wrapper, _ = wrapper_and_inner(mg)
        next(n for n in wrapper.node_def if "f" in n.attr).attr["f"].func.name = wrapper.signature.name

    def mutual_recursion(mg: Any) -> None:
        wrapper, inner = wrapper_and_inner(mg)
        call = next(n for n in wrapper.node_def if "f" in n.attr)
        a = mg.graph_def.library.function.add()
        b = mg.graph_def.library.function.add()
        for f, other in ((a, "__gx_ping"), (b, "__gx_pong")):
            f.signature.CopyFrom(inner.signature)
            f.signature.name = "__gx_pong" if other == "__gx_ping" else "__gx_ping"
            c = f.node_def.add()
            c.CopyFrom(call)
            c.name = "again"
            c.attr["f"].func.name = other
            c.ClearField("input")
            c.input.extend(arg.name for arg in inner.signature.input_arg)
            for i, out in enumerate(inner.signature.output_arg):
                f.ret[out.name] = f"again:output:{i}"
        call.attr["f"].func.name = "__gx_ping"

    def ret_missing(mg: Any) -> None:
        _, inner = wrapper_and_inner(mg)
        k = sorted(inner.ret)[0]
        inner.ret[k] = "no_such_body_node:output:0"

    def body_dangling(mg: Any) -> None:
        _, inner = wrapper_and_inner(mg)
        n = next(n for n in inner.node_def if n.input and not n.input[0].startswith("^"))
        n.input[0] = "no_such_body_node:output:0"

    def body_arg_port(mg: Any) -> None:
        _, inner = wrapper_and_inner(mg)
        arg = inner.signature.input_arg[0].name
        n = next(n for n in inner.node_def if arg in n.input)
        n.input[list(n.input).index(arg)] = f"{arg}:5"

    def body_cycle(mg: Any) -> None:
        _, inner = wrapper_and_inner(mg)
        names = {n.name for n in inner.node_def}
        # a node reading another body node: make that producer read the consumer back.
        for n in inner.node_def:
            src = next((i for i in n.input if i.split(":")[0] in names and not i.startswith("^")), None)
            if src is not None:
                producer = next(p for p in inner.node_def if p.name == src.split(":")[0])
                producer.input.append(f"^{n.name}")
                return

    def body_duplicate(mg: Any) -> None:
        _, inner = wrapper_and_inner(mg)
        inner.node_def.add().CopyFrom(inner.node_def[0])

    def body_unknown_op(mg: Any) -> None:
        _, inner = wrapper_and_inner(mg)
        n = next(n for n in inner.node_def if n.op not in ("Identity", "NoOp", "ReadVariableOp") and n.input)
        n.op = "NoSuchOpForGraphxform"

    def call_too_few(mg: Any) -> None:
        call = signature_call(mg)
        data = [i for i in call.input if not i.startswith("^")]
        call.ClearField("input")
        call.input.extend(data[1:])
        del call.attr["Tin"].list.type[0]

    def duplicate_definition(mg: Any) -> None:
        wrapper, inner = wrapper_and_inner(mg)
        dup = mg.graph_def.library.function.add()
        dup.CopyFrom(inner)
        dup.ClearField("node_def")
        dup.ret.clear()
        dup.ClearField("ret")

    fn_variants: list[tuple[str, str, Callable[[Any], None], list[str]]] = [
        ("library_lacks_wrapper", "the signature's call names a function removed from the library",
         lib_remove_wrapper, ["{path}", "__inference_"]),
        ("nested_call_missing", "the signature wrapper calls '__inference_no_such_fn_9'", nested_call_missing,
         ["{path}", "__inference_no_such_fn_9"]),
        ("self_recursive", "the signature wrapper calls itself", wrapper_calls_itself, ["{path}", "itself"]),
        ("mutual_recursion", "two functions calling each other (__gx_ping -> __gx_pong -> __gx_ping)",
         mutual_recursion, ["{path}", "__gx_p"]),
        ("ret_missing", "a function returns 'no_such_body_node:output:0'", ret_missing,
         ["{path}", "no_such_body_node"]),
        ("body_dangling", "a function body node reads 'no_such_body_node:output:0'", body_dangling,
         ["{path}", "no_such_body_node"]),
        ("body_arg_port", "a function body node reads element 5 of a one-tensor argument", body_arg_port,
         ["{path}", ":5"]),
        ("body_cycle", "two function body nodes wait for each other", body_cycle, ["{path}", "cycle"]),
        ("body_duplicate", "a function body holds two nodes of the same name", body_duplicate,
         ["{path}", "duplicate"]),
        ("body_unknown_op", "a function body node of op 'NoSuchOpForGraphxform'", body_unknown_op,
         ["{path}", "NoSuchOpForGraphxform"]),
        ("call_too_few_inputs", "the signature's call node passes one input fewer than the function takes",
         call_too_few, ["{path}"]),
        ("duplicate_definition", "the library defines the called function twice, once empty", duplicate_definition,
         ["{path}"]),
    ]
    for m in ("keras3_saved_model", "tf2_lookup"):
        for variant, why, fn, names in fn_variants:
            if m == "tf2_lookup" and variant in ("body_arg_port", "body_duplicate", "duplicate_definition",
                                                 "call_too_few_inputs"):
                continue
            add(f"fn_{variant}_{m}", "functions", f"{m}: {why}", fixture(m, fn_edit(fn)), names=names)

    # frozen GraphDefs with function libraries
    from tensorflow.core.framework import function_pb2

    def fn_graph(fname: str, body: Callable[[Any], None], extra: Iterable[Any] = ()) -> Any:
        gd = graph_def(placeholder("x", shape=[-1, 4]), node("c", "PartitionedCall", ["x"]),
                       node("y", "Identity", ["c"], T=t.DT_FLOAT))
        gd.node[1].attr["Tin"].list.type.append(t.DT_FLOAT)
        gd.node[1].attr["Tout"].list.type.append(t.DT_FLOAT)
        gd.node[1].attr["f"].func.name = fname
        fdef = function_pb2.FunctionDef()
        fdef.signature.name = fname
        fdef.signature.input_arg.add(name="a", type=t.DT_FLOAT)
        fdef.signature.output_arg.add(name="out", type=t.DT_FLOAT)
        body(fdef)
        gd.library.function.append(fdef)
        gd.library.function.extend(extra)
        return gd

    def calls(target: str) -> Callable[[Any], None]:
        def body(fdef: Any) -> None:
            c = fdef.node_def.add(name="again", op="PartitionedCall", input=["a"])
            c.attr["Tin"].list.type.append(t.DT_FLOAT)
            c.attr["Tout"].list.type.append(t.DT_FLOAT)
            c.attr["f"].func.name = target
            fdef.ret["out"] = "again:output:0"
        return body

    def pong() -> Any:
        f = function_pb2.FunctionDef()
        f.signature.name = "pong"
        f.signature.input_arg.add(name="a", type=t.DT_FLOAT)
        f.signature.output_arg.add(name="out", type=t.DT_FLOAT)
        calls("ping")(f)
        return f

    def neg_ret_missing(fdef: Any) -> None:
        fdef.node_def.add(name="n", op="Neg", input=["a"]).attr["T"].type = t.DT_FLOAT
        fdef.ret["out"] = "nothing_here:y:0"

    add("fn_frozen_self_recursive", "functions", "a frozen graph's PartitionedCall of a function that calls itself",
        frozen_graph(lambda: fn_graph("selfcall", calls("selfcall"))), names=["{path}", "selfcall"],
        extra_args=IO_ARGS)
    add("fn_frozen_mutual_recursion", "functions", "a frozen graph: ping calls pong calls ping",
        frozen_graph(lambda: fn_graph("ping", calls("pong"), [pong()])), names=["{path}", "ping"],
        extra_args=IO_ARGS)
    def neg_body(fdef: Any) -> None:
        fdef.node_def.add(name="n", op="Neg", input=["a"]).attr["T"].type = t.DT_FLOAT
        fdef.ret["out"] = "n:y:0"

    def call_missing() -> Any:
        gd = fn_graph("present", neg_body)
        gd.node[1].attr["f"].func.name = "no_such_function"
        return gd
    add("fn_frozen_call_missing", "functions", "a frozen graph calling 'no_such_function' (absent from the library)",
        frozen_graph(call_missing), names=["{path}", "no_such_function"], extra_args=IO_ARGS)
    add("fn_frozen_ret_missing", "functions", "a frozen graph whose function returns 'nothing_here:y:0'",
        frozen_graph(lambda: fn_graph("f1", neg_ret_missing)), names=["{path}", "nothing_here"], extra_args=IO_ARGS)

    # ---------------------------------------------------------------- graph (frozen GraphDef structure)
    def g(edit: Callable[[Any], None]) -> Callable[[], Any]:
        def make() -> Any:
            gd = small_graph()
            edit(gd)
            return gd
        return make

    def set_input(i: int, k: int, value: str) -> Callable[[Any], None]:
        return lambda gd: gd.node[i].input.__setitem__(k, value)

    graph_variants: list[tuple[str, str, Callable[[Any], None], list[str], dict[str, Any]]] = [
        ("missing_input", "node 'add' reads 'no_such_bias'", set_input(4, 1, "no_such_bias"),
         ["add", "no_such_bias"], {}),
        ("missing_control_input", "node 'y' waits for '^no_such_dep'",
         lambda gd: gd.node[5].input.append("^no_such_dep"), ["y", "no_such_dep"], {}),
        ("port_out_of_range", "node 'add' reads output 7 of Const 'b'", set_input(4, 1, "b:7"), ["b:7"], {}),
        ("port_negative", "node 'add' reads 'b:-1'", set_input(4, 1, "b:-1"), ["b:-1"], {}),
        ("port_not_a_number", "node 'add' reads 'b:one'", set_input(4, 1, "b:one"), ["b:one"], {}),
        ("input_empty_string", "node 'add' has an empty input name", set_input(4, 1, ""), ["add"], {}),
        ("input_bare_caret", "node 'y' has the control input '^'", lambda gd: gd.node[5].input.append("^"),
         ["y"], {}),
        ("cycle_3", "mm -> add -> y -> mm", set_input(3, 0, "y"), ["cycle"], {}),
        ("cycle_self", "node 'add' reads itself", set_input(4, 0, "add"), ["cycle", "add"], {}),
        ("cycle_control", "'mm' waits for '^y', which depends on 'mm'", lambda gd: gd.node[3].input.append("^y"),
         ["cycle"], {}),
        ("duplicate_const", "two nodes named 'w'", lambda gd: gd.node.append(const("w", [[9.0]] * 4, "float32")),
         ["duplicate", "w"], {}),
        ("duplicate_placeholder", "two nodes named 'x'", lambda gd: gd.node.append(placeholder("x")),
         ["duplicate", "x"], {}),
        ("empty_name", "node 'y' (Relu) renamed ''", lambda gd: setattr(gd.node[5], "name", ""), ["Relu", "no name"],
         {}),
        ("name_with_colon", "a node named 'b:0'", lambda gd: setattr(gd.node[2], "name", "b:0"), ["b:0"], {}),
        ("name_with_space", "a node named 'my bias' (TensorFlow refuses the name)",
         lambda gd: (setattr(gd.node[2], "name", "my bias"), gd.node[4].input.__setitem__(1, "my bias")),
         ["my bias"], {}),
        ("op_empty", "node 'add' has no op", lambda gd: setattr(gd.node[4], "op", ""), ["add", "no op"], {}),
        ("control_before_data", "node 'add' lists '^x' before its data inputs",
         lambda gd: gd.node[4].input.insert(0, "^x"), ["add"], {}),
        ("matmul_missing_attr", "MatMul 'mm' without its 'T' attr", lambda gd: gd.node[3].attr.pop("T"),
         ["mm"], {}),
        ("attr_wrong_kind", "Relu 'y' with attr T given as a string", lambda gd: gd.node[5].attr["T"].ClearField("type")
         or setattr(gd.node[5].attr["T"], "s", b"float"), ["y"], {}),
        ("too_many_inputs", "Relu 'y' with three inputs", lambda gd: gd.node[5].input.extend(["x", "w"]), ["y"], {}),
        ("too_few_inputs", "AddV2 'add' with one input", lambda gd: gd.node[4].input.pop(), ["add"], {}),
        ("wrong_input_dtype", "MatMul 'mm' of T=int32 fed float tensors",
         lambda gd: setattr(gd.node[3].attr["T"], "type", t.DT_INT32), ["mm"], {}),
    ]
    for variant, why, edit, names, kw in graph_variants:
        add(f"graph_{variant}", "graph", why, frozen_graph(g(edit)), names=["{path}", *names], extra_args=IO_ARGS, **kw)
    add("graph_output_name_missing", "graph", "optimize --output-names names a node the graph lacks",
        frozen_graph(lambda: small_graph()), names=["{path}", "no_such_output"], commands=("optimize", "transform"),
        extra_args={"optimize": ("--input-names", "x", "--output-names", "no_such_output"),
                    "transform": ("--input-names", "x", "--output-names", "no_such_output")})
    add("graph_input_name_missing", "graph", "optimize --input-names names a node the graph lacks",
        frozen_graph(lambda: small_graph()), names=["{path}", "no_such_input"], commands=("optimize", "transform"),
        extra_args={"optimize": ("--input-names", "no_such_input", "--output-names", "y"),
                    "transform": ("--input-names", "no_such_input", "--output-names", "y")})
    for m in ("estimator_dnn", "keras3_saved_model"):
        def sm_dangling(mg: Any) -> None:
            n = next(n for n in mg.graph_def.node if n.input and n.op not in ("NoOp",))
            n.input[0] = "no_such_producer"
        add(f"graph_dangling_in_{m}", "graph", f"{m}: a node of its graph reads 'no_such_producer'",
            fixture(m, edit_meta_graph(sm_dangling)), names=["{path}", "no_such_producer"])

        def sm_duplicate(mg: Any) -> None:
            mg.graph_def.node.add().CopyFrom(next(n for n in mg.graph_def.node if n.op == "Const"))
        add(f"graph_duplicate_in_{m}", "graph", f"{m}: two nodes of its graph share a name",
            fixture(m, edit_meta_graph(sm_duplicate)), names=["{path}", "duplicate"])
    add("graph_cycle_in_estimator_dnn", "graph", "estimator_dnn: a node's input made to depend on itself",
        fixture("estimator_dnn", edit_meta_graph(lambda mg: _make_cycle(mg.graph_def))), names=["{path}", "cycle"])
    add("graph_unknown_op_in_estimator_dnn", "graph", "estimator_dnn: a MatMul turned into 'NoSuchOpForGraphxform'",
        fixture("estimator_dnn", edit_meta_graph(lambda mg: setattr(next(n for n in mg.graph_def.node
                                                                          if n.op == "MatMul"), "op",
                                                                     "NoSuchOpForGraphxform"))),
        names=["{path}", "NoSuchOpForGraphxform"], also_ok=("inspect",), commands=("optimize", "transform"))

    # ---------------------------------------------------------------- constants
    def const_edit(edit: Callable[[Any], None]) -> Callable[[], Any]:
        def make() -> Any:
            gd = small_graph()
            edit(gd.node[1])  # Const 'w', float32 [4, 1]
            return gd
        return make

    def content(n: Any, size: int) -> None:
        n.attr["value"].tensor.tensor_content = n.attr["value"].tensor.tensor_content[:16][:size].ljust(size, b"\0")

    const_variants: list[tuple[str, str, Callable[[Any], None], list[str], dict[str, Any]]] = [
        ("content_short", "Const 'w' holds 13 bytes for shape [4, 1] float32 (needs 16)", lambda n: content(n, 13),
         ["w", "tensor_content"], {}),
        ("content_long", "Const 'w' holds 20 bytes for shape [4, 1] float32", lambda n: content(n, 20),
         ["w", "tensor_content"], {}),
        ("dtype_9999", "Const 'w' of dtype enum 9999",
         lambda n: (setattr(n.attr["value"].tensor, "dtype", 9999), setattr(n.attr["dtype"], "type", 9999)),
         ["w", "9999"], {}),
        ("dtype_attr_mismatch", "Const 'w': attr dtype int32, tensor float32",
         lambda n: setattr(n.attr["dtype"], "type", t.DT_INT32), ["w"], {}),
        ("negative_dim", "Const 'w' of shape [-4, 1]",
         lambda n: setattr(n.attr["value"].tensor.tensor_shape.dim[0], "size", -4), ["w"], {}),
        ("no_value", "Const 'w' without its value attr", lambda n: n.attr.pop("value"), ["w"], {}),
        ("too_many_values", "Const 'w' of shape [2] with 5 float_val",
         lambda n: (n.attr["value"].tensor.ClearField("tensor_content"),
                    n.attr["value"].tensor.float_val.extend([1, 2, 3, 4, 5]),
                    n.attr["value"].tensor.tensor_shape.CopyFrom(_shape_proto([2]))), ["w"], {}),
        ("string_splat_bomb", "a 1-string Const of shape [100000, 100000] (10^10 strings)",
         lambda n: (n.attr["value"].tensor.Clear(), setattr(n.attr["value"].tensor, "dtype", t.DT_STRING),
                    n.attr["value"].tensor.string_val.append(b"x" * 8),
                    n.attr["value"].tensor.tensor_shape.CopyFrom(_shape_proto([100000, 100000])),
                    setattr(n.attr["dtype"], "type", t.DT_STRING)), ["w"], {}),
        ("int64_content_odd", "Const 'w' retyped int64 with 16 bytes of content for 4 elements",
         lambda n: (setattr(n.attr["value"].tensor, "dtype", t.DT_INT64), setattr(n.attr["dtype"], "type",
                                                                                   t.DT_INT64)), ["w"], {}),
    ]
    for variant, why, edit, names, kw in const_variants:
        add(f"const_{variant}", "constants", why, frozen_graph(const_edit(edit)), names=["{path}", *names],
            extra_args=IO_ARGS, **kw)

    def splat_bomb() -> Any:
        from tensorflow.core.framework import attr_value_pb2, tensor_pb2

        bomb = tensor_pb2.TensorProto(dtype=t.DT_FLOAT, float_val=[1.0], tensor_shape=_shape_proto([100000, 100000]))
        return graph_def(
            placeholder("x", shape=[-1, 4]),
            node("bomb", "Const", dtype=t.DT_FLOAT, value=attr_value_pb2.AttrValue(tensor=bomb)),
            const("axes", [0, 1], "int32"),
            node("total", "Sum", ["bomb", "axes"], T=t.DT_FLOAT, Tidx=t.DT_INT32),
            node("y", "AddV2", ["x", "total"], T=t.DT_FLOAT),
        )
    add("const_splat_bomb", "constants", "a Const of a 22-byte TensorProto that expands to 100000x100000 float32 "
        "(40 GB)", frozen_graph(splat_bomb), names=["{path}", "bomb", "40.0 GB", "22-byte"], heavy=True,
        extra_args=IO_ARGS)

    # ---------------------------------------------------------------- shapes
    def placeholder_shape(shape: list[int]) -> Callable[[], Any]:
        def make() -> Any:
            gd = small_graph()
            gd.node[0].attr["shape"].shape.CopyFrom(_shape_proto(shape))
            return gd
        return make
    add("shape_placeholder_huge", "shapes", "placeholder 'x' of shape [2^40, 4]: synthesizing inputs would take 16 TB",
        frozen_graph(placeholder_shape([2**40, 4])), names=["{path}", "x"], commands=("optimize",),
        also_ok=("inspect", "transform"), extra_args=IO_ARGS)
    add("shape_placeholder_negative", "shapes", "placeholder 'x' of shape [-7, 4]",
        frozen_graph(placeholder_shape([-7, 4])), names=["{path}", "x"], extra_args=IO_ARGS)
    add("shape_placeholder_rank_300", "shapes", "placeholder 'x' of rank 300",
        frozen_graph(placeholder_shape([1] * 300)), names=["{path}", "x"], commands=("optimize",),
        also_ok=("inspect", "transform"), extra_args=IO_ARGS)

    def sig_shape(shape: list[int]) -> Mutation:
        def fn(mg: Any) -> None:
            for info in mg.signature_def["serving_default"].inputs.values():
                info.tensor_shape.CopyFrom(_shape_proto(shape))
        return edit_meta_graph(fn)
    add("shape_signature_huge_keras3_saved_model", "shapes",
        "keras3_saved_model: the signature input claims shape [2^31, 2^31]", fixture("keras3_saved_model",
                                                                                    sig_shape([2**31, 2**31])),
        names=["{path}", "serving_default"], commands=("optimize",), also_ok=("inspect", "transform"))

    def reshape_huge() -> Any:
        return graph_def(
            placeholder("x", shape=[-1, 4]),
            const("big", [100000, 100000, 100000], "int64"),
            const("one", 1.0, "float32"),
            node("fill", "Fill", ["big", "one"], T=t.DT_FLOAT, index_type=t.DT_INT64),
            node("y", "Identity", ["x", "^fill"], T=t.DT_FLOAT),
        )
    add("ok_fill_petabyte_control_dep", "shapes", "Fill([10^5, 10^5, 10^5]) that the output waits for (never folded)",
        frozen_graph(reshape_huge), must="succeed", extra_args={**IO_ARGS, "optimize": (*IO_ARGS["optimize"],
                                                                                         "--no-verify")})

    # ---------------------------------------------------------------- oversize (sparse)
    add("oversize_pb", "oversize", "a .pb of 2 GiB + 1 MiB (sparse file)",
        lambda home: sparse_file(home / "model.pb", head=fixture_bytes(frozen_pb)[:1024]), names=["{path}", "2 GiB"],
        heavy=True)
    add("oversize_pbtxt", "oversize", "a .pbtxt of 2 GiB + 1 MiB (sparse file)",
        lambda home: sparse_file(home / "model.pbtxt", head=fixture_bytes("tf1_frozen_bn.pbtxt")[:1024]),
        names=["{path}", "2 GiB"], heavy=True)
    add("oversize_saved_model_pb", "oversize", "a saved_model.pb of 2 GiB + 1 MiB (sparse)",
        fixture("tf2_lookup", lambda d: sparse_file(d / "saved_model.pb", head=(d / "saved_model.pb").read_bytes()[
            :1024])), names=["{path}", "2 GiB"], heavy=True)
    add("oversize_variables_index", "oversize", "a variables.index of 2 GiB + 1 MiB (sparse)",
        fixture("keras3_saved_model", lambda d: sparse_file(d / INDEX)), names=["{path}"], heavy=True)

    # ---------------------------------------------------------------- assets
    def asset_names(target: str) -> Mutation:
        def fn(mg: Any) -> None:
            from tensorflow.core.protobuf import meta_graph_pb2

            for a in mg.asset_file_def:
                a.filename = target
            coll = mg.collection_def.get("saved_model_assets")
            if coll is not None:  # TF1 exports keep the AssetFileDefs in this collection
                for any_msg in coll.any_list.value:
                    d = meta_graph_pb2.AssetFileDef()
                    any_msg.Unpack(d)
                    d.filename = target
                    any_msg.Pack(d)
        return edit_meta_graph(fn)

    for m in ("estimator_dnn", "tf2_lookup"):
        add(f"asset_traversal_{m}", "assets", f"{m}: an asset file name '../../../../../tmp/gx_pwned.txt'",
            fixture(m, asset_names("../../../../../tmp/gx_pwned.txt")), names=["{path}", "gx_pwned.txt"])
        add(f"asset_absolute_{m}", "assets", f"{m}: an asset file name '/etc/hostname'",
            fixture(m, asset_names("/etc/hostname")), names=["{path}", "/etc/hostname"])
    add("asset_empty_name_module_tables", "assets", "module_tables: an asset file name ''",
        fixture("module_tables", asset_names("")), names=["{path}", "''"])

    def symlink_out(rel: str) -> Mutation:
        def m(d: Path) -> None:
            outside = d.parent / "outside_secret.txt"
            outside.write_text("apple\nbanana\n")
            (d / rel).unlink()
            (d / rel).symlink_to(outside)
        return m

    def symlink_loop(rel: str) -> Mutation:
        def m(d: Path) -> None:
            (d / rel).unlink()
            (d / rel).symlink_to(d / rel)
        return m

    def asset_dir(rel: str) -> Mutation:
        def m(d: Path) -> None:
            (d / rel).unlink()
            (d / rel).mkdir()
        return m
    for m, rel in (("estimator_dnn", "assets/words.txt"), ("tf2_lookup", "assets/tokens.txt"),
                   ("module_tables", "assets/vocab.txt")):
        base = Path(rel).name
        add(f"asset_symlink_out_{m}", "assets", f"{m}: {rel} is a symlink to a file outside the model",
            fixture(m, symlink_out(rel)), names=["{path}", base])
        add(f"asset_missing_{m}", "assets", f"{m} without {rel}", fixture(m, remove(rel)), names=["{path}", base],
            also_ok=("inspect",), commands=("optimize", "transform"))
        add(f"asset_is_directory_{m}", "assets", f"{m}: {rel} is a directory", fixture(m, asset_dir(rel)),
            names=["{path}", base], also_ok=("inspect",), commands=("optimize", "transform"))
    add("asset_symlink_loop_tf2_lookup", "assets", "tf2_lookup: assets/tokens.txt is a symlink to itself",
        fixture("tf2_lookup", symlink_loop("assets/tokens.txt")), names=["{path}", "tokens.txt"])

    def asset_index_oob(mg: Any) -> None:
        for n in mg.object_graph_def.nodes:
            if n.WhichOneof("kind") == "asset":
                n.asset.asset_file_def_index = 57
    add("asset_object_index_oob_module_tables", "assets", "module_tables: the asset object names asset_file_def 57",
        fixture("module_tables", edit_meta_graph(asset_index_oob)), names=["{path}", "57"])
    add("asset_no_assets_dir_estimator_dnn", "assets", "estimator_dnn without its assets/ directory",
        fixture("estimator_dnn", remove("assets")), names=["{path}", "words.txt"], also_ok=("inspect",),
        commands=("optimize", "transform"))

    # ---------------------------------------------------------------- filesystem
    def pb_is_dir(d: Path) -> None:
        (d / "saved_model.pb").unlink()
        (d / "saved_model.pb").mkdir()
    add("fs_saved_model_pb_is_directory", "filesystem", "saved_model.pb is a directory", fixture("tf2_lookup",
                                                                                                 pb_is_dir))
    add("fs_empty_directory", "filesystem", "an empty directory", lambda home: (home / "m").mkdir() or home / "m")
    add("fs_only_variables", "filesystem", "a directory holding only variables/",
        fixture("module_variables", remove("saved_model.pb")))

    def fifo(home: Path) -> Path:
        p = home / "model.pb"
        os.mkfifo(p)
        return p
    add("fs_fifo", "filesystem", "a named pipe called model.pb (reading it would block for ever)", fifo)

    def fifo_saved_model(home: Path) -> Path:
        d = fixture("module_variables")(home)
        (d / "saved_model.pb").unlink()
        os.mkfifo(d / "saved_model.pb")
        return d
    add("fs_fifo_saved_model_pb", "filesystem", "saved_model.pb is a named pipe", fifo_saved_model)

    def dev_zero(home: Path) -> Path:
        p = home / "model.pb"
        p.symlink_to("/dev/zero")
        return p
    add("fs_dev_zero", "filesystem", "model.pb is a symlink to /dev/zero (endless, size 0)", dev_zero, heavy=True)

    def dangling(home: Path) -> Path:
        p = home / "model.pb"
        p.symlink_to(home / "nowhere.pb")
        return p
    add("fs_dangling_symlink", "filesystem", "model.pb is a dangling symlink", dangling)

    # ================================================================ MUST SUCCEED: odd but valid
    def corrupt(rel: str) -> Mutation:
        return edit_file(rel, lambda b: random.Random(9).randbytes(len(b)))
    add("ok_fingerprint_garbage", "saved_model_bytes", "keras3_saved_model with a fingerprint.pb of random bytes "
        "(nothing reads it to serve)", fixture("keras3_saved_model", corrupt("fingerprint.pb")), must="succeed")
    add("ok_bitflip_stripped_op_list", "saved_model_bytes", "estimator_dnn/saved_model.pb with 8 bits flipped in its "
        "first 2 KiB (seed 0): they land in meta_info_def.stripped_op_list, a record of the producer's op "
        "registry that loaders do not use",
        fixture("estimator_dnn", edit_file("saved_model.pb", lambda b: flip_bits(b, 0, end=2048))), must="succeed")
    add("ok_keras_metadata_garbage", "saved_model_bytes", "keras2_saved_model with keras_metadata.pb of random bytes",
        fixture("keras2_saved_model", corrupt("keras_metadata.pb")), must="succeed")
    add("ok_unknown_files", "filesystem", "module_variables with extra unknown files and directories",
        fixture("module_variables", lambda d: ((d / "README").write_text("hi"), (d / "junk").mkdir(),
                                               (d / "variables" / "notes.txt").write_text("x"))), must="succeed")
    add("ok_object_graph_cycle", "object_graph", "keras3_saved_model: the root is its own child 'myself' "
        "(object graphs may have cycles)",
        fixture("keras3_saved_model", edit_meta_graph(lambda mg: mg.object_graph_def.nodes[0].children.add(
            node_id=0, local_name="myself"))), must="succeed")
    add("ok_unknown_op_unverified", "graph", "a node of op 'NoSuchOpForGraphxform': kept opaque (optimize "
        "--no-verify: TensorFlow cannot run it)",
        frozen_graph(lambda: graph_def(*small_graph().node[:5],
                                       node("u", "NoSuchOpForGraphxform", ["add"], T=t.DT_FLOAT),
                                       node("y", "Relu", ["u"], T=t.DT_FLOAT))),
        must="succeed", extra_args={**IO_ARGS, "optimize": (*IO_ARGS["optimize"], "--no-verify")})
    add("ok_weight_bitflip", "frozen_bytes", f"{frozen_pb} with 8 bits flipped in the bytes of its largest Const",
        raw_file("model.pb", lambda: _flip_largest_weight(fixture_bytes(frozen_pb))), must="succeed",
        extra_args={**FROZEN_IO, "optimize": (*FROZEN_IO["optimize"], "--no-verify")})
    add("ok_scalar_splat", "constants", "a float Const of shape [64, 64] given by one float_val (a splat)",
        frozen_graph(lambda: _splat_graph()), must="succeed", extra_args=IO_ARGS)
    add("ok_pbtxt_comments", "frozen_bytes", "tf1_frozen_bn.pbtxt with comment lines and blank lines added",
        raw_file("model.pbtxt", lambda: b"# a comment\n\n" + fixture_bytes("tf1_frozen_bn.pbtxt") + b"\n# end\n"),
        must="succeed", extra_args=FROZEN_IO)
    add("ok_assets_extra", "assets", "tf2_lookup with an assets.extra/ directory (copied as it is)",
        fixture("tf2_lookup", lambda d: ((d / "assets.extra").mkdir(),
                                         (d / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"w"))),
        must="succeed")

    def fill_huge() -> Any:
        return graph_def(
            placeholder("x", shape=[-1, 4]),
            const("dims", [100000, 100000], "int32"),
            const("one", 1.0, "float32"),
            node("fill", "Fill", ["dims", "one"], T=t.DT_FLOAT, index_type=t.DT_INT32),
            const("axes", [0, 1], "int32"),
            node("total", "Sum", ["fill", "axes"], T=t.DT_FLOAT, Tidx=t.DT_INT32),
            node("y", "AddV2", ["x", "total"], T=t.DT_FLOAT),
        )
    add("fill_huge", "shapes", "Fill([100000, 100000], 1.0) -> Sum: 10^10 elements (40 GB) if folded",
        frozen_graph(fill_huge), must="succeed", heavy=True, commands=("transform", "optimize"),
        extra_args={"optimize": (*IO_ARGS["optimize"], "--no-verify"),
                    "transform": (*IO_ARGS["transform"], "--json", "--explain", "fold_constants")})

    def deep_chain() -> Any:
        chain = [placeholder("x", shape=[-1, 4])]
        prev = "x"
        for i in range(20000):
            chain.append(node(f"n{i}", "Neg", [prev], T=t.DT_FLOAT))
            prev = f"n{i}"
        chain.append(node("y", "Identity", [prev], T=t.DT_FLOAT))
        return graph_def(*chain)
    add("deep_chain", "graph", "x -> 20000 x Neg -> y (deep, not broken)", frozen_graph(deep_chain), must="succeed",
        heavy=True, commands=("transform",), extra_args=IO_ARGS)
    return cases


def _flip_largest_weight(data: bytes) -> bytes:
    """A frozen GraphDef with 8 bits flipped in the ``tensor_content`` of its largest Const (seeded)."""
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef.FromString(data)
    big = max((n for n in gd.node if n.op == "Const"), key=lambda n: len(n.attr["value"].tensor.tensor_content))
    tensor = big.attr["value"].tensor
    tensor.tensor_content = flip_bits(tensor.tensor_content, 3)
    return gd.SerializeToString()


def _splat_graph() -> Any:
    from tensorflow.core.framework import attr_value_pb2, tensor_pb2

    t = _dt()
    splat = tensor_pb2.TensorProto(dtype=t.DT_FLOAT, float_val=[0.5], tensor_shape=_shape_proto([4, 64]))
    return graph_def(placeholder("x", shape=[-1, 4]),
                     node("w", "Const", dtype=t.DT_FLOAT, value=attr_value_pb2.AttrValue(tensor=splat)),
                     node("y", "MatMul", ["x", "w"], T=t.DT_FLOAT))


def _make_cycle(gd: Any) -> None:
    """Make the first MatMul read (as a control input) a node that depends on it."""
    consumers: dict[str, list[str]] = {}
    for n in gd.node:
        for i in n.input:
            consumers.setdefault(i.lstrip("^").split(":")[0], []).append(n.name)
    mm = next(n for n in gd.node if n.op == "MatMul")
    after = consumers[mm.name][0]
    mm.input.append(f"^{after}")


CASES: list[Case] = _cases()
MUST_FAIL: list[Case] = [c for c in CASES if c.must == "fail"]
MUST_SUCCEED: list[Case] = [c for c in CASES if c.must == "succeed"]


def counts_by_category() -> dict[str, tuple[int, int]]:
    """{category: (must-fail cases, must-succeed cases)} in :data:`CATEGORIES` order."""
    fail = Counter(c.category for c in MUST_FAIL)
    ok = Counter(c.category for c in MUST_SUCCEED)
    return {cat: (fail[cat], ok[cat]) for cat in CATEGORIES}


# --------------------------------------------------------------------------- running the CLI
@dataclass
class CliResult:
    code: int | str
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]


def run_cli(argv: list[str]) -> CliResult:
    """Run ``graphxform ARGV`` in this process through ``graphxform.cli.main``; exceptions are reported, not raised.

    stdout and stderr are captured, log records included (the root logger's handlers are swapped for the
    run, so the CLI's ``logging.basicConfig`` writes to the captured stderr as it would to a real one). An
    exception escaping ``main`` (it should turn every error into an exit code) is returned as code ``"EXC"``
    with its traceback in ``stderr``.
    """
    import contextlib
    import io
    import logging
    import time
    import traceback

    from graphxform.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    code: int | str = 0
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers.clear()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli_main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - the point is to see it
                traceback.print_exc(file=err)
                code = "EXC"
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    return CliResult(code, out.getvalue(), err.getvalue(), time.perf_counter() - t0)


def run_batch(argvs: list[list[str]]) -> None:
    """Run several CLI commands in this process; print one JSON line per command (with the peak RSS so far)."""
    import json
    import resource

    for i, argv in enumerate(argvs):
        print(json.dumps({"i": i, "argv": argv, "started": True}), flush=True)
        res = run_cli(argv)
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"i": i, "code": res.code, "stdout": res.stdout[-20000:], "stderr": res.stderr[-4000:],
                          "seconds": round(res.seconds, 3), "maxrss_kb": rss_kb}), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--batch":
        import json

        run_batch(json.loads(Path(args[1]).read_text()))
        return 0
    if len(args) != 1:
        print("usage: python -m tests.broken_inputs DIR  |  --batch ARGVS.json", file=sys.stderr)
        return 2
    out = Path(args[0])
    for c in CASES:
        path = c.materialize(out)
        print(f"{c.name:<48} {c.category:<18} must {c.must:<8} {path}  # {c.why}")
    counts = counts_by_category()
    print(f"{len(MUST_FAIL)} must fail, {len(MUST_SUCCEED)} must succeed, in {out}")
    for cat, (f, s) in counts.items():
        print(f"  {cat:<18} {f:>4} {s:>3}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
