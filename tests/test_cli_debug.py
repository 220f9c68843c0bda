"""``--debug`` is accepted anywhere on the command line and keeps the exit codes; it adds the traceback."""
from __future__ import annotations

import pytest
from broken_inputs import run_cli
from conftest import fixture_path


@pytest.fixture
def broken_pb(tmp_path):
    p = tmp_path / "broken.pb"
    p.write_bytes(fixture_path("tf1_frozen_bn.pb").read_bytes()[:500])
    return p


@pytest.mark.parametrize("where", ["before", "after_command", "last"])
def test_debug_anywhere_keeps_exit_2_and_adds_the_traceback(broken_pb, where):
    args = {"before": ["--debug", "inspect", str(broken_pb)],
            "after_command": ["inspect", "--debug", str(broken_pb)],
            "last": ["inspect", str(broken_pb), "--debug"]}[where]
    plain = run_cli(["inspect", str(broken_pb)])
    res = run_cli(args)
    assert plain.code == res.code == 2, res.stderr
    assert "Traceback (most recent call last)" in res.stderr and "ModelLoadError" in res.stderr
    assert "Traceback" not in plain.stderr
    # The same one-line error closes the output, with and without --debug.
    assert res.error_lines == plain.error_lines and len(plain.error_lines) == 1
    assert res.stderr.strip().splitlines()[-1] == plain.error_lines[0]


def test_debug_after_the_arguments_of_transform_turns_on_linting(monkeypatch, tmp_path):
    """``transform … --debug`` reaches the runner (lint after every rule), as ``--debug transform …`` does."""
    import graphxform.jobs.transform as runner  # (where the transform job looks run_pipeline up)

    seen = []
    real = runner.run_pipeline

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs.get("debug"))
        return real(*args, **kwargs)
    monkeypatch.setattr(runner, "run_pipeline", spy)
    pb = fixture_path("tf1_frozen_bn.pb")
    names = ["--input-names", "input", "--output-names", "output"]
    for i, args in enumerate((["transform", str(pb), str(tmp_path / "a"), "-t", "remove_identity", *names, "--debug"],
                              ["--debug", "transform", str(pb), str(tmp_path / "b"), "-t", "remove_identity", *names],
                              ["transform", str(pb), str(tmp_path / "c"), "-t", "remove_identity", *names])):
        res = run_cli(args)
        assert res.code == 0, res.stderr
    assert seen == [True, True, False]


def test_debug_with_an_unexpected_exception_keeps_exit_3(monkeypatch, tmp_path):
    import graphxform.jobs.transform as loader  # (where the transform job looks load up)

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("unexpected")
    monkeypatch.setattr(loader, "load", boom)
    out = tmp_path / "o"
    plain = run_cli(["transform", "x.pb", str(out), "-t", "remove_identity"])
    res = run_cli(["transform", "x.pb", str(out), "-t", "remove_identity", "--debug"])
    assert plain.code == res.code == 3
    assert "Traceback" in res.stderr and "Traceback" not in plain.stderr
    assert res.error_lines == ["error: RuntimeError: unexpected"]
    assert plain.error_lines == ["error: RuntimeError: unexpected (run with --debug for the traceback)"]


def test_debug_after_double_dash_is_an_argument(tmp_path):
    """After ``--``, ``--debug`` is a path like any other (here: one that does not exist)."""
    res = run_cli(["inspect", "--", "--debug"])
    assert res.code == 2 and "Traceback" not in res.stderr
    assert res.error_lines and "--debug: no such file or directory" in res.error_lines[0]


def test_debug_on_a_valid_model_exits_0(tmp_path):
    res = run_cli(["inspect", str(fixture_path("tf1_frozen_bn.pb")), "--debug"])
    assert res.code == 0, res.stderr
    assert "Nodes:" in res.stdout
