"""`batch`: a fleet of fixtures optimized by the local process pool and by Beam's DirectRunner; a broken model is
recorded and the others go on; a re-run skips what is complete; finding models, naming outputs, the CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from graphxform.core.errors import GraphxformError
from graphxform.jobs.batch import (
    REPORT_NAME,
    BatchOptions,
    Task,
    batch,
    find_models,
    input_digest,
    output_names,
    read_records,
    skip_record,
)

GOOD = {"a/1": "estimator_dnn", "b/1": "tf2_lookup"}
FIELDS = {"input", "output", "status", "size_before", "size_after", "nodes", "verification", "error",
          "input_hash", "options_hash", "seconds", "exit_code"}


def make_fleet(root: Path, broken: bool = True) -> Path:
    """``root/fleet``: two fixtures laid out as TF Serving versions (a/1, b/1) and, optionally, a broken model."""
    fleet = root / "fleet"
    for where, fixture in GOOD.items():
        shutil.copytree(FIXTURES / fixture, fleet / where)
    if broken:
        (fleet / "broken").mkdir()
        (fleet / "broken" / "saved_model.pb").write_bytes(b"\x08\x01\x12\xff not a SavedModel")
    return fleet


def mtimes(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def check_first_run(summary, fleet: Path, out: Path) -> None:
    by_name = {r["name"]: r for r in summary.records}
    assert sorted(by_name) == ["a-1", "b-1", "broken"]
    assert summary.counts == {"ok": 2, "failed": 1}
    assert summary.exit_code == 2
    for name in ("a-1", "b-1"):
        rec = by_name[name]
        assert rec["status"] == "ok" and rec["error"] is None
        assert rec["verification"]["ok"] and rec["verification"]["loaders"] == {"c++": True, "tf2": True, "tf1": True}
        assert 0 < rec["size_after"] < rec["size_before"]
        assert rec["nodes"]["after"] < rec["nodes"]["loaded"]
        assert (out / name / "saved_model.pb").is_file()
        assert rec["input_hash"] == input_digest(rec["input"])
    broken = by_name["broken"]
    assert broken["status"] == "failed" and broken["exit_code"] == 2
    assert str(fleet / "broken" / "saved_model.pb") in broken["error"] and "SavedModel" in broken["error"]
    assert not (out / "broken").exists()
    lines = [json.loads(x) for x in (out / REPORT_NAME).read_text().splitlines()]
    assert [x["name"] for x in lines] == ["a-1", "b-1", "broken"]
    assert all(FIELDS <= set(x) for x in lines if x["status"] == "ok")
    assert all(list(x) == sorted(x) for x in lines)


def check_rerun(summary, before: dict[str, dict[str, int]], out: Path) -> None:
    by_name = {r["name"]: r for r in summary.records}
    assert by_name["a-1"]["status"] == by_name["b-1"]["status"] == "skipped"
    assert by_name["broken"]["status"] == "failed"  # no complete output: tried again, fails again
    for name in ("a-1", "b-1"):
        assert mtimes(out / name) == before[name]  # not written again
        assert by_name[name]["verification"]["ok"]  # the figures of the run that made it
    assert summary.exit_code == 2


@pytest.mark.parametrize("runner", ["local", "beam"])
def test_fleet_with_a_broken_model_then_a_rerun_that_skips(tmp_path, runner):
    if runner == "beam":
        pytest.importorskip("apache_beam")
    fleet = make_fleet(tmp_path)
    out = tmp_path / "out"
    events: list[dict[str, int]] = []
    first = batch([fleet], out, runner=runner, jobs=2, progress=lambda rec, counts: events.append(counts))
    check_first_run(first, fleet, out)
    assert events[-1] == {"ok": 2, "skipped": 0, "failed": 1, "left": 0}
    assert [e["left"] for e in events] == [2, 1, 0]
    before = {n: mtimes(out / n) for n in ("a-1", "b-1")}
    again = batch([fleet], out, runner=runner, jobs=2)
    check_rerun(again, before, out)


def test_changed_input_or_options_or_output_is_done_again(tmp_path):
    fleet = make_fleet(tmp_path, broken=False)
    out = tmp_path / "out"
    batch([fleet / "a" / "1"], out, jobs=1, verify=False)
    prev = read_records(out)["1"]
    opts = BatchOptions(verify=False)
    task = Task(prev["input"], prev["output"], "1", opts, prev)
    assert skip_record(task)["status"] == "skipped"
    assert skip_record(Task(prev["input"], prev["output"], "1", BatchOptions(verify=False, quantize="none"),
                            prev)) is None
    assert skip_record(Task(prev["input"], prev["output"], "1", opts, prev, force=True)) is None
    (Path(prev["output"]) / "assets.extra").mkdir()
    (Path(prev["output"]) / "assets.extra" / "x").write_text("output changed")
    assert skip_record(Task(prev["input"], prev["output"], "1", opts, prev)) is None
    shutil.rmtree(Path(prev["output"]) / "assets.extra")
    os.utime(fleet / "a" / "1" / "saved_model.pb")  # touched, same content: still skipped
    assert skip_record(Task(prev["input"], prev["output"], "1", opts, prev)) is not None
    (fleet / "a" / "1" / "assets.extra").mkdir()
    (fleet / "a" / "1" / "assets.extra" / "note.txt").write_text("retrained")
    assert skip_record(Task(prev["input"], prev["output"], "1", opts, prev)) is None


def test_a_worker_that_dies_fails_only_its_model_after_one_retry(tmp_path, monkeypatch):
    """A crash inside TensorFlow kills the worker process: the pool is rebuilt, the model is tried once more
    (here it dies again) and recorded as failed; the batch finishes."""
    fleet = make_fleet(tmp_path, broken=False)
    marker = tmp_path / "paused"
    monkeypatch.setenv("GRAPHXFORM_TEST_PAUSE_AT", "optimize:freeze")
    monkeypatch.setenv("GRAPHXFORM_TEST_PAUSE_MARKER", str(marker))
    monkeypatch.setenv("GRAPHXFORM_TEST_PAUSE_SECONDS", "120")
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 240
        while len(killed) < 2 and time.monotonic() < deadline:
            if marker.exists():
                pid = int(marker.read_text().split()[1])
                marker.unlink()
                os.kill(pid, 9)
                killed.append(pid)
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = batch([fleet / "a" / "1"], tmp_path / "out", jobs=1)
    thread.join()
    assert len(killed) == 2 and killed[0] != killed[1]
    (rec,) = summary.records
    assert rec["status"] == "failed" and "worker process" in rec["error"] and summary.exit_code == 3
    assert not (tmp_path / "out" / "1").exists()


def test_outdir_inside_the_models_directory_is_not_optimized_on_a_rerun(tmp_path):
    fleet = make_fleet(tmp_path, broken=False)
    shutil.rmtree(fleet / "b")
    out = fleet / "optimized"
    first = batch([fleet], out, jobs=1, verify=False)
    assert [(r["name"], r["status"]) for r in first.records] == [("1", "ok")]
    again = batch([fleet], out, jobs=1, verify=False)  # out/1 is a SavedModel under fleet/ now
    assert [(r["name"], r["status"]) for r in again.records] == [("1", "skipped")]


def test_find_models_and_output_names(tmp_path):
    fleet = make_fleet(tmp_path)
    shutil.copy(FIXTURES / "tf1_frozen_bn.pb", fleet / "frozen.pb")
    found = find_models([fleet])
    assert [p.relative_to(fleet).as_posix() for p in found] == ["a/1", "b/1", "broken", "frozen.pb"]
    assert output_names(found) == ["a-1", "b-1", "broken", "frozen"]
    listing = tmp_path / "models.txt"
    listing.write_text("# the fleet\nfleet/a/1\n\n" + str(fleet / "b" / "1") + "  # absolute\nfleet/a/1\nfleet/gone\n")
    listed = find_models([listing])
    assert [p.name for p in listed] == ["1", "1", "gone"]  # a/1 once; a missing path is kept (and fails)
    assert output_names([Path("/m/x/a/1"), Path("/m/y/a/1"), Path("/m/z/1")]) == ["x-a-1", "y-a-1", "m-z-1"]
    assert output_names([Path("/m/a"), Path("/m/a.pb")]) == ["a", "a-2"]
    with pytest.raises(GraphxformError, match="no such file"):
        find_models([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraphxformError, match="holds no SavedModel"):
        find_models([tmp_path / "empty"])


def test_cli_batch_list_file_json_and_exit_codes(tmp_path):
    fleet = make_fleet(tmp_path, broken=False)
    listing = tmp_path / "models.txt"
    listing.write_text("fleet/b/1\n")
    out = tmp_path / "out"
    cmd = [str(Path(sys.executable).with_name("graphxform")), "batch", str(listing), "--out", str(out), "--jobs", "1",
           "--json"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["counts"] == {"ok": 1} and data["models"][0]["output"] == str(out / "1")
    assert "left 0" in first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout)["counts"] == {"skipped": 1}
    listing.write_text("fleet/b/1\nfleet/missing\n")
    third = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert third.returncode == 2
    assert json.loads(third.stdout)["counts"] == {"skipped": 1, "failed": 1}
    bad = subprocess.run([cmd[0], "batch", str(tmp_path / "nothing"), "--out", str(out)], capture_output=True,
                         text=True, env=env, timeout=600, cwd=ROOT)
    assert bad.returncode == 2 and "no such file or directory" in bad.stderr
