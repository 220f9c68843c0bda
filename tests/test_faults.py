"""Nothing is lost under faults: a full disk, SIGINT or kill -9 inside each stage of ``optimize``.

After any fault the input tree is byte-for-byte unchanged, and ``OUT`` is either absent or complete and loadable
(SIGINT during verification removes the ``OUT`` the run wrote: it was not verified).
SIGINT leaves nothing beside ``OUT``; kill -9 may leave ``.OUT.tmp-<pid>-*`` (named by the dead process), which
the next run removes — or ``.OUT.old-<pid>-*`` (the previous output, moved aside by ``--force``), which the next
run puts back when ``OUT`` is missing.

The signal tests use the test hook of :mod:`graphxform.core.testhooks`: the process pauses at a named point and
says so in a marker file; the signal is sent then, so it provably arrives inside that stage.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from broken_inputs import run_cli
from conftest import fixture_path

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONFAULTHANDLER": "1"}


def tree_hash(root: Path) -> str:
    """sha256 over every file's relative path and bytes (and every directory's name)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def leftovers(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def assert_complete(out: Path) -> None:
    """``out`` is a whole SavedModel: graphxform and TensorFlow's own parser read it."""
    from tensorflow.python.saved_model import loader_impl

    from graphxform import load

    assert (out / "saved_model.pb").is_file(), f"{out} is partial: {sorted(p.name for p in out.iterdir())}"
    loader_impl.parse_saved_model(str(out))
    load(out)


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A private copy of estimator_dnn (with an asset and variables) to optimize."""
    dst = tmp_path / "in" / "estimator_dnn"
    shutil.copytree(fixture_path("estimator_dnn"), dst)
    return dst


# --------------------------------------------------------------------------- a full disk
@pytest.mark.parametrize("where", ["asset", "saved_model.pb", "fsync", "rename", "graph_def_file"])
@pytest.mark.parametrize("existing", [False, True])
def test_no_space_left_writes_nothing(model_copy, tmp_path, monkeypatch, where, existing):
    """A write that fails leaves no OUT (or the old OUT untouched), no temp files, and says so in one line."""
    from graphxform.savedmodel import atomic

    before = tree_hash(model_copy)
    out = tmp_path / ("out.pb" if where == "graph_def_file" else "out")
    if existing:
        if out.suffix:
            out.write_bytes(b"old output")
        else:
            out.mkdir()
            (out / "marker").write_text("old output")
    if where == "asset":
        real_copy = atomic.copy_file

        def failing_copy(src, dst):  # type: ignore[no-untyped-def]
            if Path(dst).parent.name == "assets":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            return real_copy(src, dst)
        monkeypatch.setattr(atomic, "copy_file", failing_copy)
    elif where in ("saved_model.pb", "graph_def_file"):
        real_write = atomic.write_bytes

        def failing_write(path, data):  # type: ignore[no-untyped-def]
            data = data if isinstance(data, bytes) else b"".join(data)  # (large files come in chunks)
            with open(path, "wb") as f:
                f.write(data[: len(data) // 3])  # a partial file, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        monkeypatch.setattr(atomic, "write_bytes", failing_write)
        del real_write
    elif where == "fsync":
        monkeypatch.setattr(atomic, "fsync_file", lambda p: (_ for _ in ()).throw(
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    elif where == "rename":
        real_rename = os.rename

        def failing_rename(src, dst):  # type: ignore[no-untyped-def]
            if Path(dst) == out and ".tmp-" in Path(src).name:  # the new OUT renamed in (not the old put back)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            return real_rename(src, dst)
        monkeypatch.setattr(atomic.os, "rename", failing_rename)
    extra = ["--no-verify"] + (["--force"] if existing else [])
    res = run_cli(["optimize", str(model_copy), str(out), "--quantize", "none", *extra])
    assert res.code == 2, res.stderr
    lines = res.error_lines
    assert len(lines) == 1, res.stderr
    assert re.search(r"no space left on device.*nothing was written", lines[0], re.IGNORECASE), lines[0]
    assert str(out) in lines[0]
    assert "Traceback" not in res.stderr
    if existing:
        old = out.read_bytes() if out.suffix else (out / "marker").read_bytes()
        assert old == b"old output"
        assert out.is_file() or sorted(p.name for p in out.iterdir()) == ["marker"]
    else:
        assert not out.exists()
    assert leftovers(out) == []
    assert not out.with_name(out.name + ".signatures.json").exists() or existing
    assert tree_hash(model_copy) == before


def test_graph_over_2gib_is_refused_before_writing(model_copy, tmp_path, monkeypatch):
    """The exporter checks ByteSize() before serializing: a > 2 GiB graph is refused, nothing is written."""
    from graphxform.savedmodel import wire

    monkeypatch.setattr(wire, "proto_size", lambda message: 2 * 1024**3 + 4096)
    for out in (tmp_path / "big_out", tmp_path / "big_out.pb"):
        res = run_cli(["optimize", str(model_copy), str(out), "--quantize", "none", "--no-verify"])
        assert res.code == 2, res.stderr
        assert len(res.error_lines) == 1 and "2 GiB" in res.error_lines[0] and str(out) in res.error_lines[0]
        assert "nothing was written" in res.error_lines[0]
        assert not out.exists() and leftovers(out) == []


# --------------------------------------------------------------------------- signals
# Each run pauses at a named point (graphxform.core.testhooks: GRAPHXFORM_TEST_PAUSE_AT), writes a marker file saying
# where it is, and the test sends the signal only then: the signal provably arrives inside the stage the case
# names. A run that was not stopped there exits 0 or 1 — a failure of the case, never a pass.
#: (label, fixture, signal, pause point, OUT existed before and --force is given)
SIGNAL_PLAN = [
    ("int_load", "keras_bn", "SIGINT", "optimize:load", False),
    ("kill_freeze", "keras_bn", "SIGKILL", "optimize:freeze", False),
    ("int_transform", "keras_bn", "SIGINT", "optimize:transform", False),
    ("kill_export", "keras_bn", "SIGKILL", "optimize:export", False),
    ("int_verify", "estimator_dnn", "SIGINT", "optimize:verify", False),
    ("int_mid_write", "estimator_dnn", "SIGINT", "export:write", False),
    ("kill_mid_write", "estimator_dnn", "SIGKILL", "export:write", False),
    ("int_between_renames", "estimator_dnn", "SIGINT", "export:swap", True),
    ("kill_between_renames", "estimator_dnn", "SIGKILL", "export:swap", True),
]
EXIT_OF = {"SIGINT": 130, "SIGKILL": -signal.SIGKILL}


def _wait_for_marker(proc: subprocess.Popen, marker: Path, timeout: float = 150) -> str:
    """The marker's text once the process has paused; fails if it exits or never gets there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.is_file():
            return marker.read_text().strip()
        if proc.poll() is not None:
            pytest.fail(f"{proc.args}: exited {proc.returncode} before reaching its pause point: "
                        f"{proc.stderr.read()[-2000:] if proc.stderr else ''}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{proc.args}: did not reach its pause point in {timeout} s")


# Ctrl-C as in a terminal: a shell starts a background job (`.ci/run &`, `nohup ... &`) with SIGINT ignored, its
# children inherit that, and Python then installs no KeyboardInterrupt handler; SIGINT would be lost.
_CLI_WITH_CTRL_C = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "from graphxform.cli import main; main()")


@pytest.mark.timeout(300)
def test_signals_inside_each_stage_lose_nothing(tmp_path):
    """SIGINT and kill -9 inside each stage of `graphxform optimize` (and inside the export's write and --force
    swap): the input is unchanged; OUT is absent, or complete (kill -9 during verify: OUT was written); SIGINT
    exits 130 with "interrupted" and leaves nothing beside OUT (an OUT replaced with --force is put back; an OUT
    written but not yet verified is removed, and the line says so); kill -9 leaves only temp names of the dead
    process, which the next run removes or puts back."""
    inputs = {}
    for name in ("keras_bn", "estimator_dnn"):
        dst = tmp_path / "in" / name
        shutil.copytree(fixture_path(name), dst)
        inputs[name] = (dst, tree_hash(dst))
    outs = tmp_path / "outs"
    outs.mkdir()
    runs = []
    for label, name, sig, point, existing in SIGNAL_PLAN:
        out = outs / label
        if existing:
            out.mkdir()
            (out / "marker").write_text("previous output")
        marker = tmp_path / f"{label}.paused"
        env = {**ENV, "GRAPHXFORM_TEST_PAUSE_AT": point, "GRAPHXFORM_TEST_PAUSE_MARKER": str(marker),
               "GRAPHXFORM_TEST_PAUSE_SECONDS": "120"}
        args = ["optimize", str(inputs[name][0]), str(out), "--quantize", "none", *(["--force"] if existing else [])]
        stdout = open(tmp_path / f"{label}.stdout", "w")  # noqa: SIM115 - closed by the child's exit
        proc = subprocess.Popen([sys.executable, "-c", _CLI_WITH_CTRL_C, *args],
                                cwd=tmp_path, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
        runs.append((label, name, sig, point, existing, out, marker, proc))
    results = {}
    for label, name, sig, point, existing, out, marker, proc in runs:
        where = _wait_for_marker(proc, marker)
        assert where == f"{point} {proc.pid}", (label, where)
        proc.send_signal(getattr(signal, sig))
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"{label}: hung after {sig}")
        results[label] = (proc.returncode, err, proc.pid)
    for label, name, sig, point, existing, out, marker, proc in runs:
        code, err, pid = results[label]
        assert code == EXIT_OF[sig], f"{label}: exit {code}, expected {EXIT_OF[sig]} ({sig} inside {point}): " \
                                     f"{err[-2000:]}"
        assert "Traceback" not in err, err[-3000:]
        assert tree_hash(inputs[name][0]) == inputs[name][1], f"{label}: the input changed"
        left = leftovers(out)
        if sig == "SIGINT":
            assert err.strip().splitlines()[-1].startswith("interrupted"), err[-1000:]
            assert left == [], (label, left)
        else:
            assert all(re.match(rf"^\.{re.escape(out.name)}\.(tmp|old)-{pid}-", p.name) for p in left), (label, left)
        if point == "optimize:verify":  # written before the signal, not verified: removed, and said so
            assert not out.exists(), f"{label}: an unverified {out} was left"
            assert err.strip().splitlines()[-1] == (f"interrupted: {out} was written but not verified, so it was "
                                                    "removed (--no-verify keeps an unverified output)"), err[-1000:]
        elif existing and sig == "SIGINT":
            assert (out / "marker").read_text() == "previous output"  # the --force swap undone
        else:
            assert not out.exists(), f"{label}: {out} exists after {sig} inside {point}"
        if sig == "SIGKILL" and point in ("optimize:freeze", "optimize:export"):
            assert left == [], (label, left)  # nothing was being written yet
    # kill -9 mid-write: the dead process's temp dir is there, clearly named; the next run removes it.
    out, pid = outs / "kill_mid_write", results["kill_mid_write"][2]
    left = leftovers(out)
    assert left and all(f".tmp-{pid}-" in p.name for p in left)
    res = run_cli(["optimize", str(inputs["estimator_dnn"][0]), str(out), "--quantize", "none", "--no-verify"])
    assert res.code == 0, res.stderr
    assert_complete(out)
    assert leftovers(out) == []
    # kill -9 between the renames of --force: OUT is gone, the previous one sits aside; the next run restores it.
    out, pid = outs / "kill_between_renames", results["kill_between_renames"][2]
    assert [p.name.startswith(f".{out.name}.old-{pid}-") for p in leftovers(out)].count(True) == 1
    res = run_cli(["optimize", str(inputs["estimator_dnn"][0]), str(out), "--quantize", "none", "--no-verify"])
    assert res.code == 2 and "already exists" in res.error_lines[0], res.stderr
    assert (out / "marker").read_text() == "previous output"
    assert leftovers(out) == []


def test_pause_hook_is_inert_without_the_variable(monkeypatch, tmp_path):
    """The hook does nothing unless GRAPHXFORM_TEST_PAUSE_AT names the point; when it does, it writes the marker."""
    from graphxform.core.testhooks import pause_point

    marker = tmp_path / "m"
    monkeypatch.delenv("GRAPHXFORM_TEST_PAUSE_AT", raising=False)
    monkeypatch.setenv("GRAPHXFORM_TEST_PAUSE_MARKER", str(marker))
    t0 = time.monotonic()
    pause_point("optimize:load")
    monkeypatch.setenv("GRAPHXFORM_TEST_PAUSE_AT", "optimize:freeze,export:write")
    pause_point("optimize:load")
    assert not marker.exists() and time.monotonic() - t0 < 5
    monkeypatch.setenv("GRAPHXFORM_TEST_PAUSE_SECONDS", "0")
    pause_point("export:write")
    assert marker.read_text() == f"export:write {os.getpid()}\n"
