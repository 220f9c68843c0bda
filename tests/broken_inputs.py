"""A corpus of broken and hostile model files, generated from the fixtures into a directory.

>>> cases = make_corpus(Path("/tmp/broken"))          # doctest: +SKIP
>>> [c.name for c in cases][:3]                       # doctest: +SKIP
['pb_truncated_10', 'pb_truncated_50', 'pb_truncated_99']

``python -m tests.broken_inputs DIR`` writes the corpus and prints one line per case.

Each :class:`BrokenInput` says what the CLI must do with it:

* ``expect="error"``: exit code 2 and one ``error: …`` line on stderr that
  contains every string of ``names`` (the file, the node);
* ``expect="ok"``: exit code 0 (the input is odd but valid: e.g. a ``Fill``
  of 10^10 elements, which ``fold_constants`` must simply not fold);
* ``expect="either"``: 0 or 2 (a bit flip may hit a weight and leave a valid
  model) — never a traceback, a hang, or a huge allocation;
* ``expect="unverified"``: exit 1 from ``optimize``: OUT was written (complete
  and loadable) but TensorFlow cannot run the model to verify it.

Per command (``inspect``, ``optimize``, ``transform``) a case may override
its expectation (``per_command``): an unknown op can be inspected but not
run. Builders use raw protos (no TensorFlow graph building), so the corpus
is made in well under a second, except the fixture copies.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

#: 2 GiB + 1 MiB: over protobuf's 2 GiB message limit.
OVERSIZE_BYTES = 2 * 1024**3 + 1024**2

COMMANDS = ("inspect", "optimize", "transform")


@dataclass
class BrokenInput:
    """One broken input and what each CLI command must do with it."""

    name: str
    path: Path
    why: str
    expect: str = "error"  # "error" | "ok" | "either" | "unverified"
    names: list[str] = field(default_factory=list)  # substrings the error line must contain
    per_command: dict[str, str] = field(default_factory=dict)  # command -> expect override
    extra_args: dict[str, list[str]] = field(default_factory=dict)  # command -> extra CLI args
    heavy: bool = False  # run only in a subprocess (peak RSS / crash isolation)

    def expectation(self, command: str) -> str:
        return self.per_command.get(command, self.expect)

    def argv(self, command: str, out: Path) -> list[str]:
        """The ``graphxform`` arguments for ``command`` on this input (``out``: where OUT may go)."""
        extra = self.extra_args.get(command, [])
        if command == "inspect":
            return ["inspect", str(self.path), *extra]
        if command == "optimize":
            return ["optimize", str(self.path), str(out), *extra]
        if command == "transform":
            return ["transform", str(self.path), str(out), "--transforms", "fold_constants", *extra]
        raise ValueError(command)


# --------------------------------------------------------------------------- proto helpers
def _dt():
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


def placeholder(name: str, dtype: int | None = None, shape: list[int] | None = None):  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import attr_value_pb2, tensor_shape_pb2

    t = _dt()
    nd = node(name, "Placeholder", dtype=t.DT_FLOAT if dtype is None else dtype)
    if shape is not None:
        sp = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape])
        nd.attr["shape"].CopyFrom(attr_value_pb2.AttrValue(shape=sp))
    return nd


def graph_def(*nodes):  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import graph_pb2

    gd = graph_pb2.GraphDef()
    gd.versions.producer = 1700
    gd.node.extend(nodes)
    return gd


def write_graph_def(path: Path, gd) -> Path:  # type: ignore[no-untyped-def]
    path.write_bytes(gd.SerializeToString())
    return path


def small_graph(extra=()):  # type: ignore[no-untyped-def]
    """``y = Relu(x * w + b)``: a valid frozen graph to break in small ways."""
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


IO_ARGS = {"optimize": ["--input-names", "x", "--output-names", "y"],
           "transform": ["--inputs", "x", "--outputs", "y"]}


# --------------------------------------------------------------------------- byte-level damage
def truncate_bytes(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def flip_bits(data: bytes, seed: int, flips: int = 8) -> bytes:
    """``flips`` random bits flipped (seeded)."""
    rng = random.Random(seed)
    buf = bytearray(data)
    for _ in range(flips):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def copy_saved_model(name: str, dst: Path) -> Path:
    src = FIXTURES / name
    if not src.is_dir():
        raise FileNotFoundError(f"fixture {src} is missing")
    shutil.copytree(src, dst)
    return dst


def sparse_file(path: Path, size: int = OVERSIZE_BYTES, head: bytes = b"") -> Path:
    """A file of ``size`` bytes that takes no disk space (``truncate -s``), starting with ``head``."""
    path.write_bytes(head)
    try:
        subprocess.run(["truncate", "-s", str(size), str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        with open(path, "r+b") as f:
            f.truncate(size)
    return path


# --------------------------------------------------------------------------- the corpus
def make_corpus(dst: Path, *, fixtures: Path = FIXTURES) -> list[BrokenInput]:
    """Write every broken input under ``dst`` (created) and return the cases."""
    from tensorflow.core.framework import attr_value_pb2, tensor_pb2, tensor_shape_pb2
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

    t = _dt()
    dst.mkdir(parents=True, exist_ok=True)
    cases: list[BrokenInput] = []

    def add(case: BrokenInput) -> None:
        cases.append(case)

    frozen = fixtures / "tf1_frozen_bn.pb"
    frozen_io = {"optimize": ["--input-names", "input", "--output-names", "output"],
                 "transform": ["--inputs", "input", "--outputs", "output"]}

    # ---- frozen .pb: truncated, bit-flipped, empty, random, text garbage
    if frozen.is_file():
        data = frozen.read_bytes()
        for pct in (10, 50, 99):
            p = dst / f"pb_truncated_{pct}.pb"
            p.write_bytes(truncate_bytes(data, pct / 100))
            add(BrokenInput(p.stem, p, f"tf1_frozen_bn.pb cut to {pct}%", names=[str(p)], extra_args=frozen_io))
        for seed in range(4):
            p = dst / f"pb_bitflip_{seed}.pb"
            p.write_bytes(flip_bits(data, seed))
            add(BrokenInput(p.stem, p, f"tf1_frozen_bn.pb with 8 bits flipped (seed {seed})", expect="either",
                            names=[], extra_args=frozen_io))
    p = dst / "empty.pb"
    p.write_bytes(b"")
    add(BrokenInput("empty_pb", p, "a zero-byte .pb", names=[str(p), "empty"]))
    p = dst / "random.pb"
    p.write_bytes(random.Random(1).randbytes(4096))
    add(BrokenInput("random_pb", p, "4 KiB of random bytes named .pb", names=[str(p)]))
    p = dst / "garbage.pbtxt"
    p.write_text("node { name: 'a' op: 'Const' attr { key: 'value' value { tensor { dtype: DT_FLOAT \n")
    add(BrokenInput("pbtxt_truncated", p, "a text GraphDef cut mid-message", names=[str(p)]))

    # ---- SavedModel directories
    def sm_case(fixture: str, name: str, why: str, mutate: Callable[[Path], None], *, expect: str = "error",
                names: Callable[[Path], list[str]] | None = None, per_command: dict[str, str] | None = None) -> None:
        d = dst / name
        if (fixtures / fixture).is_dir():
            shutil.copytree(fixtures / fixture, d)
            mutate(d)
            add(BrokenInput(name, d, why, expect=expect, names=names(d) if names else [str(d)],
                            per_command=per_command or {}))

    def truncate_pb(frac: float) -> Callable[[Path], None]:
        def f(d: Path) -> None:
            pb = d / "saved_model.pb"
            pb.write_bytes(truncate_bytes(pb.read_bytes(), frac))
        return f

    def flip_pb(seed: int) -> Callable[[Path], None]:
        def f(d: Path) -> None:
            pb = d / "saved_model.pb"
            pb.write_bytes(flip_bits(pb.read_bytes(), seed))
        return f

    sm_case("estimator_dnn", "sm_truncated_dnn", "estimator_dnn/saved_model.pb cut in half", truncate_pb(0.5),
            names=lambda d: [str(d / "saved_model.pb")])
    sm_case("tf2_lookup", "sm_truncated_lookup", "tf2_lookup/saved_model.pb cut to 90%", truncate_pb(0.9),
            names=lambda d: [str(d / "saved_model.pb")])
    for seed in range(3):
        sm_case("estimator_dnn", f"sm_bitflip_dnn_{seed}", f"estimator_dnn/saved_model.pb, 8 bits flipped "
                f"(seed {seed})", flip_pb(seed), expect="either", names=lambda d: [])
        sm_case("tf2_lookup", f"sm_bitflip_lookup_{seed}", f"tf2_lookup/saved_model.pb, 8 bits flipped (seed {seed})",
                flip_pb(seed), expect="either", names=lambda d: [])
    sm_case("estimator_dnn", "sm_no_variables", "estimator_dnn without variables/",
            lambda d: shutil.rmtree(d / "variables"), names=lambda d: [str(d), "variables.index"])
    sm_case("estimator_dnn", "sm_no_variables_data", "estimator_dnn without its variables data shard",
            lambda d: (d / "variables" / "variables.data-00000-of-00001").unlink(),
            names=lambda d: [str(d), "variables.data-00000-of-00001"])
    sm_case("estimator_dnn", "sm_missing_asset", "estimator_dnn without assets/words.txt (the vocab)",
            lambda d: (d / "assets" / "words.txt").unlink(), names=lambda d: ["words.txt"],
            per_command={"inspect": "ok"})
    sm_case("tf2_lookup", "sm_missing_asset_tf2", "tf2_lookup without assets/tokens.txt",
            lambda d: (d / "assets" / "tokens.txt").unlink(), names=lambda d: ["tokens.txt"],
            per_command={"inspect": "ok"})

    def corrupt_variables(d: Path) -> None:
        f = d / "variables" / "variables.data-00000-of-00001"
        f.write_bytes(truncate_bytes(f.read_bytes(), 0.3))
    sm_case("estimator_dnn", "sm_truncated_variables", "estimator_dnn with its variables data cut to 30%",
            corrupt_variables, names=lambda d: [str(d)], per_command={"inspect": "ok"})

    def pb_is_dir(d: Path) -> None:
        (d / "saved_model.pb").unlink()
        (d / "saved_model.pb").mkdir()
    sm_case("tf2_lookup", "sm_pb_is_directory", "saved_model.pb is a directory", pb_is_dir,
            names=lambda d: [str(d)])

    def asset_escape(target: str) -> Callable[[Path], None]:
        def f(d: Path) -> None:
            pb = d / "saved_model.pb"
            sm = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
            for mg in sm.meta_graphs:
                for a in mg.asset_file_def:
                    a.filename = target
                coll = mg.collection_def.get("saved_model_assets")
                if coll is not None:  # TF1 exports keep the AssetFileDefs in this collection
                    for any_msg in coll.any_list.value:
                        d = meta_graph_pb2.AssetFileDef()
                        any_msg.Unpack(d)
                        d.filename = target
                        any_msg.Pack(d)
            pb.write_bytes(sm.SerializeToString())
        return f
    sm_case("estimator_dnn", "sm_asset_path_traversal", "an asset file name '../../../../../tmp/gx_pwned.txt'",
            asset_escape("../../../../../tmp/gx_pwned.txt"), names=lambda d: ["gx_pwned.txt"])
    sm_case("estimator_dnn", "sm_asset_absolute", "an asset file name '/etc/hostname' (absolute)",
            asset_escape("/etc/hostname"), names=lambda d: ["/etc/hostname"])

    def dangling_signature(d: Path) -> None:
        pb = d / "saved_model.pb"
        sm = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
        for mg in sm.meta_graphs:
            for sd in mg.signature_def.values():
                for info in sd.outputs.values():
                    if info.name:
                        info.name = "no_such_node:0"
        pb.write_bytes(sm.SerializeToString())
    sm_case("estimator_dnn", "sm_signature_dangling", "every signature output names 'no_such_node:0'",
            dangling_signature, names=lambda d: ["no_such_node"])

    def oversize_pb(d: Path) -> None:
        pb = d / "saved_model.pb"
        head = pb.read_bytes()[:1024]
        pb.unlink()
        sparse_file(pb, head=head)
    sm_case("tf2_lookup", "sm_oversize", "a saved_model.pb of 2 GiB + 1 MiB (sparse)", oversize_pb,
            names=lambda d: [str(d / "saved_model.pb"), "2 GiB"])
    if cases and cases[-1].name == "sm_oversize":
        cases[-1].heavy = True

    # ---- graph-level damage in small frozen GraphDefs
    def gd_case(name: str, why: str, gd, *, expect: str = "error", names: list[str] | None = None,  # type: ignore[no-untyped-def]
                per_command: dict[str, str] | None = None, heavy: bool = False, io: bool = True) -> None:
        p = write_graph_def(dst / f"{name}.pb", gd)
        add(BrokenInput(name, p, why, expect=expect, names=[str(p), *(names or [])], per_command=per_command or {},
                        extra_args=IO_ARGS if io else {}, heavy=heavy))

    gd = small_graph()
    gd.node[4].input[1] = "no_such_bias"
    gd_case("missing_input", "node 'add' reads 'no_such_bias', which does not exist", gd,
            names=["add", "no_such_bias"])

    gd = small_graph()
    gd.node[3].input[0] = "y"  # mm <- y <- add <- mm
    gd_case("cycle", "MatMul reads the Relu after it: mm -> add -> y -> mm", gd, names=["cycle"])

    gd = small_graph([const("w", [[9.0]] * 4, "float32")])
    gd_case("duplicate_names", "two nodes named 'w'", gd, names=["duplicate", "w"])

    gd_case("unknown_op", "a node of op 'NoSuchOpForGraphxform' (unknown to this TensorFlow)",
            graph_def(*small_graph().node[:5],
                      node("u", "NoSuchOpForGraphxform", ["add"], T=t.DT_FLOAT),
                      node("y", "Relu", ["u"], T=t.DT_FLOAT)),
            names=["NoSuchOpForGraphxform"], per_command={"inspect": "ok", "transform": "ok", "optimize": "unverified"})

    gd = small_graph()
    bad = gd.node[1].attr["value"].tensor
    bad.tensor_content = bad.tensor_content[:-3]
    gd_case("const_content_short", "Const 'w' holds 13 bytes for shape [4, 1] float32 (needs 16)", gd,
            names=["w", "tensor_content"])

    # A Const that expands to 40 GB: shape [100000, 100000], one float_val (splat).
    bomb = tensor_pb2.TensorProto(dtype=t.DT_FLOAT, float_val=[1.0], tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=100000), tensor_shape_pb2.TensorShapeProto.Dim(size=100000)]))
    gd = graph_def(
        placeholder("x", shape=[-1, 4]),
        node("bomb", "Const", dtype=t.DT_FLOAT, value=attr_value_pb2.AttrValue(tensor=bomb)),
        const("axes", [0, 1], "int32"),
        node("total", "Sum", ["bomb", "axes"], T=t.DT_FLOAT, Tidx=t.DT_INT32),
        node("y", "AddV2", ["x", "total"], T=t.DT_FLOAT),
    )
    gd_case("const_splat_bomb", "a 30-byte Const that expands to 100000x100000 float32 (40 GB)", gd,
            names=["bomb", "40.0 GB"], heavy=True)

    # Fill of 10^10 elements: fold_constants must not fold (nor allocate) it.
    gd = graph_def(
        placeholder("x", shape=[-1, 4]),
        const("dims", [100000, 100000], "int32"),
        const("one", 1.0, "float32"),
        node("fill", "Fill", ["dims", "one"], T=t.DT_FLOAT, index_type=t.DT_INT32),
        const("axes", [0, 1], "int32"),
        node("total", "Sum", ["fill", "axes"], T=t.DT_FLOAT, Tidx=t.DT_INT32),
        node("y", "AddV2", ["x", "total"], T=t.DT_FLOAT),
    )
    p = write_graph_def(dst / "fill_huge.pb", gd)
    add(BrokenInput("fill_huge", p, "Fill([100000, 100000], 1.0) -> Sum: 10^10 elements (40 GB) if folded",
                    expect="ok", heavy=True,
                    extra_args={"optimize": ["--input-names", "x", "--output-names", "y", "--no-verify"],
                                "transform": ["--inputs", "x", "--outputs", "y", "--json"]}))

    # A chain of 20000 Neg nodes: no recursion limits.
    chain = [placeholder("x", shape=[-1, 4])]
    prev = "x"
    for i in range(20000):
        chain.append(node(f"n{i}", "Neg", [prev], T=t.DT_FLOAT))
        prev = f"n{i}"
    chain.append(node("y", "Identity", [prev], T=t.DT_FLOAT))
    p = write_graph_def(dst / "deep_chain.pb", graph_def(*chain))
    add(BrokenInput("deep_chain", p, "x -> 20000 x Neg -> y (deep, not broken)", expect="ok", heavy=True,
                    extra_args={"optimize": ["--input-names", "x", "--output-names", "y", "--no-verify"],
                                "transform": ["--inputs", "x", "--outputs", "y"]}))

    gd = small_graph()
    gd.node[4].input[1] = "b:7"
    gd_case("port_out_of_range", "node 'add' reads output 7 of Const 'b' (it has one)", gd,
            names=["b:7"])

    gd = small_graph()
    gd.node[1].attr["value"].tensor.dtype = 9999
    gd.node[1].attr["dtype"].type = 9999
    gd_case("const_bad_dtype", "Const 'w' of dtype enum 9999", gd, names=["w", "9999"])

    gd = small_graph()
    gd.node[5].name = ""
    gd_case("empty_node_name", "a node with an empty name", gd, names=[])

    # A function that calls itself: inlining must not recurse forever.
    from tensorflow.core.framework import function_pb2

    fdef = function_pb2.FunctionDef()
    fdef.signature.name = "selfcall"
    fdef.signature.input_arg.add(name="a", type=t.DT_FLOAT)
    fdef.signature.output_arg.add(name="out", type=t.DT_FLOAT)
    call = fdef.node_def.add(name="again", op="PartitionedCall", input=["a"])
    call.attr["Tin"].list.type.append(t.DT_FLOAT)
    call.attr["Tout"].list.type.append(t.DT_FLOAT)
    call.attr["f"].func.name = "selfcall"
    fdef.ret["out"] = "again:output:0"
    gd = graph_def(placeholder("x", shape=[-1, 4]),
                   node("c", "PartitionedCall", ["x"]), node("y", "Identity", ["c"], T=t.DT_FLOAT))
    gd.node[1].attr["Tin"].list.type.append(t.DT_FLOAT)
    gd.node[1].attr["Tout"].list.type.append(t.DT_FLOAT)
    gd.node[1].attr["f"].func.name = "selfcall"
    gd.library.function.append(fdef)
    gd_case("recursive_function", "a PartitionedCall of a function that calls itself", gd,
            names=["selfcall"])

    # ---- over protobuf's 2 GiB limit (sparse: no disk space used)
    p = sparse_file(dst / "oversize.pb", head=frozen.read_bytes()[:1024] if frozen.is_file() else b"\n\x01a")
    add(BrokenInput("pb_oversize", p, "a .pb of 2 GiB + 1 MiB (sparse file)", names=[str(p), "2 GiB"],
                    heavy=True))
    return cases


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

    An exception escaping ``main`` (it should turn every error into an exit code) is returned as code
    ``"EXC"`` with its traceback in ``stderr``.
    """
    import contextlib
    import io
    import time
    import traceback

    from graphxform.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    code: int | str = 0
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli_main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - the point is to see it
            traceback.print_exc(file=err)
            code = "EXC"
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
    cases = make_corpus(out)
    for c in cases:
        print(f"{c.name:<28} {c.expect:<7} {c.path}  # {c.why}")
    print(f"{len(cases)} broken inputs in {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
