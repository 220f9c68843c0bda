"""Broken and hostile inputs through the CLI: a one-line error and exit 2, or correct handling — never a traceback,
a hang, a huge allocation, a file read or written outside the model, or the model's code run.

The corpus is made by ``tests/broken_inputs.py`` from the fixtures. Light cases run in this process through
``graphxform.cli.main``; heavy ones (2 GiB files, a 40 GB splat constant, a 10^10-element ``Fill``, a 20000-node
chain) run in one subprocess that reports its peak RSS.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from broken_inputs import COMMANDS, BrokenInput, CliResult, const, graph_def, make_corpus, node, placeholder, run_cli
from conftest import FIXTURES, ROOT

#: Peak RSS allowed for the heavy subprocess (TensorFlow alone takes ~0.5 GB).
MAX_RSS_BYTES = 1_500 * 1024**2

TRIED: dict[str, int] = {}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[BrokenInput]:
    if not (FIXTURES / "tf1_frozen_bn.pb").is_file():
        pytest.skip("fixtures not generated")
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def problems_of(case: BrokenInput, command: str, res: CliResult, out: Path | None) -> list[str]:
    """What is wrong with how ``command`` handled ``case`` (empty list: handled as required)."""
    label = f"{case.name} [{command}]"
    found = []
    if res.code == "EXC" or "Traceback" in res.stderr or "Traceback" in res.stdout:
        return [f"{label}: traceback:\n{res.stderr[-3000:]}"]
    expect = case.expectation(command)
    allowed = {"error": {2}, "ok": {0}, "either": {0, 2}, "unverified": {1}}[expect]
    if res.code not in allowed:
        found.append(f"{label}: exit {res.code}, expected {sorted(allowed)}; stderr: {res.stderr[-600:]!r}")
    if res.code in (1, 2):
        lines = res.error_lines
        if len(lines) != 1:
            found.append(f"{label}: expected exactly one 'error:' line, got {lines!r}")
        else:
            missing = [n for n in case.names if n not in lines[0]]
            if missing:
                found.append(f"{label}: error line does not name {missing}: {lines[0]!r}")
        if out is not None and out.exists() and res.code == 2:
            found.append(f"{label}: exit 2 but {out} was written")
        if out is not None and any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir()):
            found.append(f"{label}: a temporary file was left beside {out}")
    if res.code in (0, 1) and out is not None:
        from graphxform import load

        if not out.exists():
            found.append(f"{label}: exit 0 but {out} was not written")
        else:
            try:
                load(out)
            except Exception as exc:  # noqa: BLE001
                found.append(f"{label}: the output does not load: {exc}")
    return found


@pytest.mark.timeout(150)
@pytest.mark.parametrize("command", COMMANDS)
def test_corpus_through_the_cli(corpus, command, tmp_path):
    """Every light broken input, through inspect / optimize / transform fold_constants, in this process."""
    problems = []
    light = [c for c in corpus if not c.heavy]
    assert len(light) >= 30
    for case in light:
        out = None if command == "inspect" else tmp_path / f"{case.name}_out"
        res = run_cli(case.argv(command, out or tmp_path / "unused"))
        problems += problems_of(case, command, res, out)
        TRIED[command] = TRIED.get(command, 0) + 1
    assert not problems, "\n".join(problems)


def _run_batch(argvs: list[list[str]], tmp_path: Path, timeout: float) -> tuple[dict[int, dict], str]:
    spec = tmp_path / "argvs.json"
    spec.write_text(json.dumps(argvs))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "broken_inputs.py"), "--batch", str(spec)],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env,
                          check=False)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "code" in rec:
                results[rec["i"]] = rec
    assert proc.returncode == 0, f"the batch process died (exit {proc.returncode}): {proc.stderr[-3000:]}"
    return results, proc.stderr


@pytest.mark.timeout(200)
def test_heavy_inputs_in_a_subprocess(corpus, tmp_path):
    """2 GiB files are refused by size, the splat bomb and the 10^10 Fill allocate nothing, a 20000-node chain works.

    One subprocess runs them all; its peak RSS stays near TensorFlow's own.
    """
    heavy = {c.name: c for c in corpus if c.heavy}
    assert set(heavy) >= {"pb_oversize", "sm_oversize", "const_splat_bomb", "fill_huge", "deep_chain"}
    plan: list[tuple[BrokenInput, str, Path | None, list[str]]] = []
    for name, commands in (("pb_oversize", ["inspect", "transform"]), ("sm_oversize", ["inspect", "optimize"]),
                           ("const_splat_bomb", ["inspect", "transform"]),
                           ("fill_huge", ["transform", "optimize"]), ("deep_chain", ["transform"])):
        case = heavy[name]
        for command in commands:
            out = None if command == "inspect" else tmp_path / f"{name}_{command}"
            argv = case.argv(command, out or tmp_path / "unused")
            if name == "fill_huge" and command == "transform":
                argv += ["--explain", "fold_constants"]
            plan.append((case, command, out, argv))
    results, stderr = _run_batch([p[3] for p in plan], tmp_path, timeout=180)
    assert "Traceback" not in stderr, stderr[-3000:]
    problems = []
    for i, (case, command, out, _) in enumerate(plan):
        rec = results.get(i)
        if rec is None:
            problems.append(f"{case.name} [{command}]: no result (the process crashed or hung there)")
            continue
        res = CliResult(rec["code"], rec["stdout"], rec["stderr"], rec["seconds"])
        problems += problems_of(case, command, res, out)
        TRIED[command] = TRIED.get(command, 0) + 1
    assert not problems, "\n".join(problems)
    peak = max(r["maxrss_kb"] for r in results.values()) * 1024
    assert peak < MAX_RSS_BYTES, f"peak RSS {peak / 1e9:.2f} GB"
    # The Fill is kept, and --explain says why.
    i = next(i for i, p in enumerate(plan) if p[0].name == "fill_huge" and p[1] == "transform")
    report = json.loads(results[i]["stdout"])
    reasons = {n["node"]: n["reason"] for n in report["explain"]["nodes"]}
    assert "too big" in reasons["fill"] and "fill" in reasons["total"]
    from graphxform import load

    model = load(tmp_path / "fill_huge_transform")
    assert model.graph.op_histogram()["Fill"] == 1 and model.graph.op_histogram()["Sum"] == 1


@pytest.mark.timeout(120)
def test_console_script_end_to_end(tmp_path, corpus):
    """The installed ``graphxform`` entry point: exit codes and no traceback, for a few inputs."""
    exe = Path(sys.executable).with_name("graphxform")
    if not exe.exists():
        pytest.skip("graphxform console script not installed next to the interpreter")
    by_name = {c.name: c for c in corpus}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name, command in (("pb_truncated_50", "inspect"), ("missing_input", "transform"), ("cycle", "optimize")):
        case = by_name[name]
        out = tmp_path / f"{name}_out"
        proc = subprocess.run([str(exe), *case.argv(command, out)], capture_output=True, text=True, timeout=60,
                              env=env, check=False)
        res = CliResult(proc.returncode, proc.stdout, proc.stderr, 0.0)
        assert problems_of(case, command, res, None if command == "inspect" else out) == []
        TRIED[command] = TRIED.get(command, 0) + 1


def test_count_of_broken_inputs(corpus, capsys):
    """Reports how many broken inputs the corpus holds (and how many CLI runs the tests above made)."""
    kinds = {c.name.split("_")[0] for c in corpus}
    assert len(corpus) >= 35 and {"pb", "sm"} <= kinds
    with capsys.disabled():
        print(f"\n[hostile] {len(corpus)} broken inputs; CLI runs so far: {TRIED}")


# --------------------------------------------------------------------------- no code execution, no host access
def _model_of(gd, outputs: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    from graphxform.core.graph import Graph
    from graphxform.core.signature import TensorSpec
    from graphxform.model.model import Model, Signature

    graph = Graph(gd)
    sig = Signature("serving_default", "tensorflow/serving/predict")
    for key, tensor in outputs.items():
        sig.outputs[key] = TensorSpec(tensor, graph.output_dtype(tensor) or 0, None)
    return Model(graph=graph, signatures={"serving_default": sig}, source=tmp_path / "model.pb", format="graph_def")


def _file_ops_graph(secret: Path, target: Path):  # type: ignore[no-untyped-def]
    from tensorflow.core.framework import types_pb2 as t

    return graph_def(
        placeholder("x", shape=[-1, 4]),
        const("secret_path", str(secret).encode(), object),
        node("read", "ReadFile", ["secret_path"]),
        node("read_len", "StringLength", ["read"], unit="BYTE"),
        const("target_path", str(target).encode(), object),
        const("payload", b"pwned", object),
        node("write", "WriteFile", ["target_path", "payload"]),
        const("pattern", str(secret.parent / "*").encode(), object),
        node("glob", "MatchingFiles", ["pattern"]),
        node("y", "Identity", ["x", "^write"], T=t.DT_FLOAT),
    )


def test_fold_constants_never_reads_or_writes_files(tmp_path):
    """ReadFile / WriteFile / MatchingFiles fed by Consts are not evaluated by fold_constants: no file is created,
    no file content ends up in the model."""
    from graphxform.engine.pipeline import build_pipeline
    from graphxform.engine.runner import run_pipeline

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    target = tmp_path / "written_by_model.txt"
    model = _model_of(_file_ops_graph(secret, target), {"y": "y:0", "content": "read:0", "n": "read_len:0",
                                                         "files": "glob:0"}, tmp_path)
    report = run_pipeline(model.graph, build_pipeline("fold_constants remove_identity strip_unused"))
    assert model.graph.lint() == []
    ops = model.graph.op_histogram()
    assert ops["ReadFile"] == 1 and ops["WriteFile"] == 1 and ops["MatchingFiles"] == 1 and ops["StringLength"] == 1
    assert not target.exists()
    blob = model.graph.to_graph_def().SerializeToString()
    assert b"TOP-SECRET" not in blob
    assert report.counts.get("fold_constants", 0) == 0
    from graphxform.tf.constfold import ConstantAnalysis

    analysis = ConstantAnalysis(model.graph)
    assert "touches files" in analysis.reason("read") and "touches files" in analysis.reason("glob")


def test_transform_cli_never_runs_write_file(tmp_path):
    """`graphxform transform … --transforms fold_constants` on a graph whose WriteFile is fed by Consts: no file."""
    from graphxform import load

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    target = tmp_path / "written_by_model.txt"
    pb = tmp_path / "model.pb"
    pb.write_bytes(_file_ops_graph(secret, target).SerializeToString())
    out = tmp_path / "out"
    res = run_cli(["transform", str(pb), str(out), "--inputs", "x", "--outputs", "y,read,glob",
                   "--transforms", "fold_constants merge_duplicates remove_identity"])
    assert res.code == 0, res.stderr
    assert not target.exists()
    assert b"TOP-SECRET" not in (out / "saved_model.pb").read_bytes()
    assert load(out).graph.op_histogram()["WriteFile"] == 1
    # inspect is the safe way to look: it names the risky ops and runs nothing.
    res = run_cli(["inspect", str(pb), "--json"])
    assert res.code == 0, res.stderr
    warned = json.dumps(json.loads(res.stdout)).lower()
    assert "writefile" in warned and "readfile" in warned
    assert not target.exists()


def test_py_func_is_never_executed_by_folding(tmp_path):
    """PyFunc / PyFuncStateless / EagerPyFunc whose token IS registered in this process are not called by
    fold_constants (PyFuncStateless is not even marked stateful in TF's registry)."""
    import tensorflow as tf

    from graphxform.core.graph import Graph
    from graphxform.engine.pipeline import build_pipeline
    from graphxform.engine.runner import run_pipeline

    calls = []

    def spy(a):  # the "model's code"
        calls.append(1)
        return a * 2

    g = tf.Graph()
    with g.as_default():
        c = tf.constant(np.ones(3, np.float32), name="c")
        tf.compat.v1.py_func(spy, [c], tf.float32, stateful=False, name="pf_stateless")
        tf.compat.v1.py_func(spy, [c], tf.float32, stateful=True, name="pf")
        tf.py_function(spy, [c], tf.float32, name="pf_eager")
    gd = g.as_graph_def()
    ops = {n.op for n in gd.node}
    assert {"PyFunc", "PyFuncStateless", "EagerPyFunc"} <= ops
    outputs = {n.name: f"{n.name}:0" for n in gd.node if n.op in {"PyFunc", "PyFuncStateless", "EagerPyFunc"}}
    model = _model_of(gd, outputs, tmp_path)
    # Sanity: running the graph in this process WOULD call spy (the tokens are live).
    with tf.compat.v1.Session(graph=g) as s:
        s.run(g.get_tensor_by_name("pf_stateless:0"))
    assert calls, "the py_func token should be callable in this process"
    calls.clear()
    run_pipeline(model.graph, build_pipeline("fold_constants merge_duplicates"))
    assert calls == []
    left = model.graph.op_histogram()
    assert left["PyFunc"] == 1 and left["PyFuncStateless"] == 1 and left["EagerPyFunc"] == 1
    assert Graph(model.graph.to_graph_def()).lint() == []


def _library_sources() -> list[Path]:
    return sorted([*(ROOT / "graphxform").rglob("*.py"), *(ROOT / "transforms").rglob("*.py")])


def test_no_pickle_anywhere_in_the_library():
    """Loading never unpickles: every np.load passes allow_pickle=False; no pickle, marshal, eval of model data."""
    import re

    offenders = []
    for path in _library_sources():
        text = path.read_text()
        for m in re.finditer(r"np\.load\((?P<args>[^)]*)\)", text):
            if "allow_pickle=False" not in m.group("args"):
                offenders.append(f"{path}: np.load without allow_pickle=False: {m.group(0)}")
        for bad in ("import pickle", "pickle.load", "import marshal", "import dill", "cloudpickle", "allow_pickle=True",
                    "keras.models.load_model", "keras.saving.load_model", "safe_mode=False", "yaml.load("):
            if bad in text:
                offenders.append(f"{path}: uses {bad}")
        for m in re.finditer(r"(?<![\w.])(eval|exec)\(", text):
            offenders.append(f"{path}: calls {m.group(1)}()")
    assert offenders == []


def test_npz_inputs_with_pickled_objects_are_refused(tmp_path):
    """A verification inputs file holding a pickled object array is refused, not unpickled."""
    from graphxform.core.errors import GraphxformError
    from graphxform.jobs.inputs import load_npz

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    arr = np.empty(1, dtype=object)
    arr[0] = Boom()
    np.savez(tmp_path / "evil.npz", x=arr)
    with pytest.raises(GraphxformError, match="evil.npz"):
        load_npz(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned").exists()


def test_asset_symlink_out_of_the_model_is_refused(tmp_path):
    """An asset that is a symlink to a file outside the model is not read (nor copied into the output)."""
    import shutil

    from graphxform.core.errors import ModelLoadError
    from graphxform.model.loader import load

    if not (FIXTURES / "estimator_dnn").is_dir():
        pytest.skip("fixtures not generated")
    src = tmp_path / "m"
    shutil.copytree(FIXTURES / "estimator_dnn", src)
    outside = tmp_path / "outside_secret.txt"
    outside.write_text("apple\nbanana\n")
    (src / "assets" / "words.txt").unlink()
    (src / "assets" / "words.txt").symlink_to(outside)
    with pytest.raises(ModelLoadError, match="words.txt"):
        load(src)


def test_assets_extra_symlink_out_of_the_model_is_not_copied(tmp_path):
    """assets.extra/ is copied to the output, except symlinks that lead outside the model."""
    import shutil

    if not (FIXTURES / "tf2_lookup").is_dir():
        pytest.skip("fixtures not generated")
    src = tmp_path / "m"
    shutil.copytree(FIXTURES / "tf2_lookup", src)
    secret = tmp_path / "host_secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    extra = src / "assets.extra"
    extra.mkdir()
    (extra / "tf_serving_warmup_requests").write_bytes(b"warmup")
    (extra / "leak").symlink_to(secret)
    out = tmp_path / "out"
    res = run_cli(["transform", str(src), str(out), "-t", "remove_identity"])
    assert res.code == 0, res.stderr
    assert (out / "assets.extra" / "tf_serving_warmup_requests").read_bytes() == b"warmup"
    assert not (out / "assets.extra" / "leak").exists()
    assert all(b"TOP-SECRET" not in p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_oversize_file_is_refused_without_reading_it(tmp_path, monkeypatch):
    """The loader refuses a > 2 GiB file by its size: not one byte is read (sparse file, no disk used)."""
    from broken_inputs import sparse_file

    from graphxform.core.errors import ModelLoadError
    from graphxform.model.loader import load

    big = sparse_file(tmp_path / "big.pb")
    opened = []
    real = Path.read_bytes

    def spy(self):  # type: ignore[no-untyped-def]
        opened.append(self)
        return real(self)
    monkeypatch.setattr(Path, "read_bytes", spy)
    with pytest.raises(ModelLoadError, match="2 GiB") as err:
        load(big)
    assert str(big) in str(err.value) and opened == []
