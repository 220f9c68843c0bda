"""Broken and hostile inputs through the CLI: each corpus case asserted on its own.

The corpus (``tests/broken_inputs.py``) is split in two lists:

* **must fail** — for every command the case names (``inspect``, ``optimize``, ``transform --transforms
  fold_constants``): exit code 2, exactly one line on stderr, ``error: …``, naming the input (file or directory)
  and, where there is one, the node; no traceback; nothing written (OUT absent, nothing else beside it); the input
  unchanged (sha256 of the file or tree). ``optimize`` may print the progress lines of the stages it finished
  before the error; nothing else. Commands for which a case is fine (``also_ok``: ``inspect`` reads no weights)
  must exit 0.
* **must succeed** — odd but valid models: exit 0, no ``error:`` line, the input unchanged, OUT loads.

Light cases run in this process through ``graphxform.cli.main`` (one pytest item per case and command, so a
regression names the case); heavy ones (2 GiB sparse files, a 40 GB splat constant, a 10^10-element ``Fill``, a
20000-node chain, ``/dev/zero``) in one subprocess that reports its peak RSS; a sample runs through the installed
``graphxform`` script to show the in-process path behaves as a real process does.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from broken_inputs import (
    CASES,
    CATEGORIES,
    MUST_FAIL,
    MUST_SUCCEED,
    Case,
    CliResult,
    const,
    counts_by_category,
    graph_def,
    input_hash,
    node,
    placeholder,
    run_cli,
)
from conftest import FIXTURES, ROOT

#: Peak RSS allowed for the heavy subprocess (TensorFlow alone takes ~0.5 GB).
MAX_RSS_BYTES = 1_500 * 1024**2
#: What the corpus holds: the numbers docs/hostile.md states (its table is checked against the corpus too).
EXPECTED_MUST_FAIL = 256
EXPECTED_MUST_SUCCEED = 13
#: Lines ``optimize`` prints for the stages it finished (and the per-rule summary of the transform stage).
PROGRESS_LINE = re.compile(r"^(✓ \w+\s+\d+\.\d+ s\b.*|\s+\S+\s+\d+ rewrites\s+\d+\.\d+ s)$")


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory) -> Path:
    if not (FIXTURES / "tf1_frozen_bn.pb").is_file():
        pytest.skip("fixtures not generated")
    return tmp_path_factory.mktemp("corpus")


def _runs(cases: list[Case], want: str, heavy: bool = False) -> list[pytest.param]:
    return [pytest.param(c, cmd, id=f"{c.name}-{cmd}") for c in cases if c.heavy == heavy
            for cmd, exp in c.runs() if exp == want]


def problems_of(case: Case, command: str, expect: str, path: Path, res: CliResult, out: Path | None,
                before: str) -> list[str]:
    """What is wrong with how ``command`` handled ``case`` (empty: handled as the corpus says)."""
    label = f"{case.name} [{command}]"
    found: list[str] = []
    if input_hash(path) != before:
        found.append(f"{label}: the input changed")
    if res.code == "EXC" or "Traceback" in res.stderr or "Traceback" in res.stdout:
        return found + [f"{label}: traceback:\n{res.stderr[-3000:]}"]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    leftovers = sorted(p.name for p in out.parent.iterdir() if p != out) if out is not None else []
    if expect == "fail":
        if res.code != 2:
            found.append(f"{label}: exit {res.code}, expected 2; stderr: {res.stderr[-800:]!r}")
        others = [ln for ln in lines if not ln.startswith("error:")
                  and not (command == "optimize" and PROGRESS_LINE.match(ln))]
        if len(errors) != 1 or others:
            found.append(f"{label}: expected one 'error:' line and nothing else on stderr, got {lines!r}")
        elif missing := [n for n in case.expected_names(path) if n not in errors[0]]:
            found.append(f"{label}: the error line does not name {missing}: {errors[0]!r}")
        if out is not None and (out.exists() or leftovers):
            found.append(f"{label}: exit {res.code} but something was written: {[out.name] * out.exists() + leftovers}")
        return found
    if res.code != 0 or errors:
        found.append(f"{label}: exit {res.code}, expected 0; stderr: {res.stderr[-1500:]!r}")
    elif out is not None:
        from graphxform import load

        if not out.exists():
            found.append(f"{label}: exit 0 but {out} was not written")
        else:
            try:
                load(out)
            except Exception as exc:  # noqa: BLE001
                found.append(f"{label}: the output does not load: {exc}")
        if leftovers:
            found.append(f"{label}: files left beside OUT: {leftovers}")
    return found


def _run_case(case: Case, command: str, expect: str, root: Path, tmp_path: Path) -> None:
    path = case.materialize(root)
    out = None if command == "inspect" else tmp_path / "out" / "OUT"
    if out is not None:
        out.parent.mkdir()
    before = input_hash(path)
    res = run_cli(case.argv(command, path, out or tmp_path / "unused"))
    problems = problems_of(case, command, expect, path, res, out, before)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case, command", _runs(MUST_FAIL, "fail"))
def test_broken_input_fails_cleanly(corpus_root, case, command, tmp_path):
    """exit 2, one ``error:`` line naming the file/node, no traceback, nothing written, the input unchanged."""
    _run_case(case, command, "fail", corpus_root, tmp_path)


@pytest.mark.parametrize("case, command", _runs(MUST_FAIL, "ok"))
def test_broken_input_is_fine_for_commands_that_do_not_need_the_broken_part(corpus_root, case, command, tmp_path):
    """``inspect`` reads no weights: a damaged data shard or a missing asset is fine for it (exit 0)."""
    _run_case(case, command, "ok", corpus_root, tmp_path)


@pytest.mark.parametrize("case, command", _runs(MUST_SUCCEED, "ok"))
def test_odd_but_valid_input_succeeds(corpus_root, case, command, tmp_path):
    """exit 0, no error line, the input unchanged, OUT written and loadable."""
    _run_case(case, command, "ok", corpus_root, tmp_path)


def test_corpus_counts_match_docs():
    """The corpus holds exactly the cases docs/hostile.md counts, category by category."""
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert {c.category for c in CASES} == set(CATEGORIES)
    assert all(c.must in ("fail", "succeed") for c in CASES)
    assert all(any(e == "fail" for _, e in c.runs()) for c in MUST_FAIL)
    assert len(MUST_FAIL) == EXPECTED_MUST_FAIL and len(MUST_SUCCEED) == EXPECTED_MUST_SUCCEED
    counts = counts_by_category()
    table = {}
    for line in (ROOT / "docs" / "hostile.md").read_text().splitlines():
        m = re.match(r"^\| `(\w+)` \| (\d+) \| (\d+) \|", line)
        if m:
            table[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    assert table == counts, f"docs/hostile.md's table {table} != the corpus {counts}"
    total = re.search(r"\*\*(\d+) broken inputs\*\* that must fail.*?\*\*(\d+) odd but valid", (
        ROOT / "docs" / "hostile.md").read_text(), re.S)
    assert total and (int(total.group(1)), int(total.group(2))) == (EXPECTED_MUST_FAIL, EXPECTED_MUST_SUCCEED)
    fail_runs = sum(1 for c in MUST_FAIL for _, e in c.runs() if e == "fail")
    ok_runs = sum(1 for c in MUST_FAIL for _, e in c.runs() if e == "ok")
    doc = (ROOT / "docs" / "hostile.md").read_text()
    assert f"{fail_runs} runs in all" in doc and f"those {ok_runs} runs must exit 0" in doc
    assert f"{len(SUBPROCESS_SAMPLE)} cases runs through the installed" in " ".join(doc.split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (f"a corpus of {len(MUST_FAIL)} such inputs in {len(CATEGORIES)} categories" in readme
            and f"({fail_runs} runs), and {len(MUST_SUCCEED)} odd but valid inputs" in readme), \
        "README's Safety section states other corpus counts than the tests hold"
    print(f"\n[hostile] {len(MUST_FAIL)} must fail ({fail_runs} CLI runs), {len(MUST_SUCCEED)} must succeed; "
          + ", ".join(f"{k} {f}/{s}" for k, (f, s) in counts.items()))


def test_unknown_op_is_written_but_not_verified(corpus_root, tmp_path):
    """A graph with an op this TensorFlow lacks: ``optimize`` writes OUT (complete) but exits 1, unverified."""
    case = next(c for c in MUST_SUCCEED if c.name == "ok_unknown_op_unverified")
    path = case.materialize(corpus_root)
    out = tmp_path / "out"
    res = run_cli(["optimize", str(path), str(out), "--input-names", "x", "--output-names", "y"])
    assert res.code == 1, res.stderr
    assert len(res.error_lines) == 1 and "could not be verified" in res.error_lines[0]
    assert "NoSuchOpForGraphxform" in res.error_lines[0]
    from graphxform import load

    assert load(out).graph.op_histogram()["NoSuchOpForGraphxform"] == 1


# --------------------------------------------------------------------------- heavy cases, in one subprocess
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


@pytest.mark.timeout(300)
def test_heavy_inputs_in_a_subprocess(corpus_root, tmp_path):
    """2 GiB files are refused by size, the splat bomb and the 10^10 Fill allocate nothing, /dev/zero is not read,
    a 20000-node chain works — each asserted like the light cases. One subprocess runs them all; its peak RSS
    stays near TensorFlow's own."""
    plan: list[tuple[Case, str, str, Path, Path | None, str]] = []
    for case in CASES:
        if not case.heavy:
            continue
        path = case.materialize(corpus_root)
        for command, expect in case.runs():
            out = None if command == "inspect" else tmp_path / f"{case.name}_{command}" / "OUT"
            if out is not None:
                out.parent.mkdir()
            plan.append((case, command, expect, path, out, input_hash(path)))
    assert {p[0].name for p in plan} >= {"oversize_pb", "oversize_saved_model_pb", "const_splat_bomb", "fill_huge",
                                          "deep_chain", "fs_dev_zero"}
    results, stderr = _run_batch([p[0].argv(p[1], p[3], p[4] or tmp_path / "unused") for p in plan], tmp_path,
                                 timeout=280)
    assert "Traceback" not in stderr, stderr[-3000:]
    problems = []
    for i, (case, command, expect, path, out, before) in enumerate(plan):
        rec = results.get(i)
        if rec is None:
            problems.append(f"{case.name} [{command}]: no result (the process crashed or hung there)")
            continue
        res = CliResult(rec["code"], rec["stdout"], rec["stderr"], rec["seconds"])
        problems += problems_of(case, command, expect, path, res, out, before)
    assert not problems, "\n".join(problems)
    peak = max(r["maxrss_kb"] for r in results.values()) * 1024
    assert peak < MAX_RSS_BYTES, f"peak RSS {peak / 1e9:.2f} GB"
    # The Fill is kept, and --explain says why.
    i = next(i for i, p in enumerate(plan) if p[0].name == "fill_huge" and p[1] == "transform")
    report = json.loads(results[i]["stdout"])
    reasons = {n["node"]: n["reason"] for n in report["explain"]["nodes"]}
    assert "too big" in reasons["fill"] and "fill" in reasons["total"]
    from graphxform import load

    model = load(plan[i][4])
    assert model.graph.op_histogram()["Fill"] == 1 and model.graph.op_histogram()["Sum"] == 1


# --------------------------------------------------------------------------- the same through a real process
#: (case, command): one per kind of failure path (parse, checkpoint data, object graph, a check after optimize's
#: load stage).
SUBPROCESS_SAMPLE = [("pb_truncated_50", "inspect"), ("ckpt_data_bitflip_keras3_saved_model", "transform"),
                     ("og_bound_swapped_tf2_lookup", "inspect"), ("asset_missing_estimator_dnn", "optimize")]


@pytest.mark.timeout(180)
def test_console_script_behaves_like_the_in_process_runs(corpus_root, tmp_path):
    """The installed ``graphxform`` script, run as a user runs it (no TF_CPP_MIN_LOG_LEVEL set): the same exit
    code and the same stderr lines as the in-process run of the same case — so the in-process corpus tests stand
    for real processes (TensorFlow's C++ logging included). The sample runs in parallel."""
    exe = Path(sys.executable).with_name("graphxform")
    if not exe.exists():
        pytest.skip("graphxform console script not installed next to the interpreter")
    by_name = {c.name: c for c in CASES}
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    procs = []
    for i, (name, command) in enumerate(SUBPROCESS_SAMPLE):
        case = by_name[name]
        path = case.materialize(corpus_root)
        out = tmp_path / f"sub{i}" / "OUT"
        out.parent.mkdir()
        before = input_hash(path)
        procs.append((case, command, path, out, before,
                      subprocess.Popen([str(exe), *case.argv(command, path, out)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=env)))
    problems = []
    for i, (case, command, path, out, before, proc) in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=150)
        res = CliResult(proc.returncode, stdout, stderr, 0.0)
        problems += problems_of(case, command, "fail", path, res, None if command == "inspect" else out, before)
        twin_out = tmp_path / f"in{i}" / "OUT"
        twin_out.parent.mkdir()
        twin = run_cli(case.argv(command, path, twin_out))
        strip = (lambda text: [ln for ln in text.splitlines() if ln.strip() and not PROGRESS_LINE.match(ln)])
        if (twin.code, strip(twin.stderr)) != (res.code, strip(res.stderr)):
            problems.append(f"{case.name} [{command}]: in-process exit {twin.code} {strip(twin.stderr)} != "
                            f"subprocess exit {res.code} {strip(res.stderr)}")
    assert not problems, "\n".join(problems)


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
    res = run_cli(["transform", str(pb), str(out), "--input-names", "x", "--output-names", "y,read,glob",
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
