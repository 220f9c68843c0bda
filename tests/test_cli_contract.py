"""The command line's contract, for every command: exit codes, input-key errors, deterministic JSON, tables that
are never cut (at 80 columns, on a terminal and in a pipe), progress only on a terminal, hints, one name per
meaning. Commands run in-process (``graphxform.cli.main``), printing through rich consoles of a fixed width."""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from broken_inputs import run_cli
from conftest import FIXTURES, ROOT, SAMPLES, fixture_path, graph_def_of
from rich.console import Console

from graphxform.cli import COMMANDS
from graphxform.cli.common import EXIT_CODES, make_console, use_consoles

LOOKUP = FIXTURES / "tf2_lookup"  # two signatures: serving_default(tokens, weight), score(tokens)
FROZEN = FIXTURES / "tf1_frozen_bn.pb"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PREFIX = "a_rather_long_scope_name/that_goes_on_and_on/" * 2  # node names far wider than a table column


@pytest.fixture(scope="module")
def long_names_pb(tmp_path_factory) -> Path:
    """A frozen graph whose node names are longer than an 80-column table can show on one line."""
    import tensorflow as tf

    def build():  # type: ignore[no-untyped-def]
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        w = tf.constant(np.arange(16, dtype=np.float32).reshape(4, 4), name=PREFIX + "kernel_number_one")
        y = tf.matmul(x, w, name=PREFIX + "matmul_number_one")
        y = tf.identity(y, name=PREFIX + "identity_number_one")
        y = tf.identity(y, name=PREFIX + "identity_number_two")
        tf.identity(y, name="output")

    path = tmp_path_factory.mktemp("long") / "long_names.pb"
    path.write_bytes(graph_def_of(build).SerializeToString())
    return path


@pytest.fixture(scope="module")
def lookup_npz(tmp_path_factory) -> Path:
    return SAMPLES / "tf2_lookup.npz"


def _npz(tmp_path: Path, name: str, **arrays: np.ndarray) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _samples() -> dict[str, np.ndarray]:
    with np.load(SAMPLES / "tf2_lookup.npz") as data:
        return {k: data[k] for k in data.files}


# --------------------------------------------------------------------------- rendering helpers
def render(argv: list[str], *, tty: bool, width: int = 80, err_tty: bool = False):  # type: ignore[no-untyped-def]
    """Run the command with stdout/stderr consoles of ``width`` columns, as a terminal (``tty``) or a pipe;
    returns the result and the text printed (ANSI codes removed)."""
    out, err = io.StringIO(), io.StringIO()
    kw = {"color_system": "truecolor"} if tty else {}
    with use_consoles(Console(file=out, width=width, force_terminal=tty, **kw),
                      Console(file=err, width=width, force_terminal=err_tty)):
        res = run_cli(argv)
    return res, ANSI.sub("", out.getvalue() + res.stdout), ANSI.sub("", err.getvalue() + res.stderr)


def table_columns(text: str) -> list[str]:
    """The text of every column of every table in ``text``, its folded lines joined, whitespace removed."""
    tables: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line[:1] in "┏┌":
            current = None
        elif line[:1] in "│┃":
            cells = re.split(r"[│┃]", line)[1:-1]
            if current is None or len(current) != len(cells):
                current = [""] * len(cells)
                tables.append(current)
            for i, cell in enumerate(cells):
                current[i] += "".join(cell.split())
    return [column for table in tables for column in table]


def assert_whole(text: str, values: list[str], width: int = 80) -> None:
    """Every value appears whole in a table column of ``text`` (folded lines joined); no table line is wider than
    ``width`` and none holds rich's '…' (a cut cell)."""
    from rich.cells import cell_len

    table_lines = [ln for ln in text.splitlines() if ln[:1] in "┏┃┡│├└┌"]
    assert table_lines, text
    assert all(cell_len(ln) <= width for ln in table_lines), "\n".join(ln for ln in table_lines
                                                                       if cell_len(ln) > width)
    assert not [ln for ln in table_lines if "…" in ln], text
    cols = table_columns(text)
    missing = [v for v in values if not any("".join(v.split()) in c for c in cols)]
    assert not missing, f"cut or missing in the tables: {missing}\n{text}"


# --------------------------------------------------------------------------- exit codes
def test_bare_graphxform_prints_the_help_and_exits_0():
    res = run_cli([])
    assert res.code == 0, res.stderr
    assert "Usage: graphxform" in res.stdout and "Commands:" in res.stdout and "Exit codes:" in res.stdout


def test_a_mistyped_command_gets_a_suggestion():
    res = run_cli(["optimze", "a", "b"])
    assert res.code == 2
    assert "No such command 'optimze'. Did you mean 'optimize'?" in res.stderr
    res = run_cli(["frobnicate"])
    assert res.code == 2 and "Commands: inspect, render" in res.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_help_states_the_exit_codes(command):
    res = run_cli([command, "--help"])
    assert res.code == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "Exit codes:" in text
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in text


@pytest.mark.parametrize("argv", [["inspect"], ["render", str(FROZEN)], ["transform"], ["optimize", "a"],
                                  ["verify", str(FROZEN)], ["rules", "--bogus"],
                                  ["inspect", str(FROZEN), "--top", "-1"]])
def test_usage_errors_exit_2(argv):
    res = run_cli(argv)
    assert res.code == 2, (res.code, res.stderr)
    assert "Usage: graphxform" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("command", ["inspect", "render", "transform", "optimize", "verify", "rules"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(command, tmp_path):
    missing = tmp_path / "no_such_model"
    out = tmp_path / "out"
    argv = {"inspect": ["inspect", str(missing)], "render": ["render", str(missing), "-o", str(tmp_path / "g.dot")],
            "transform": ["transform", str(missing), str(out)], "optimize": ["optimize", str(missing), str(out)],
            "verify": ["verify", str(FROZEN), str(FROZEN)],  # a bare GraphDef: no signatures to compare
            "rules": ["rules", "no_such_rule"]}[command]
    res = run_cli(argv)
    assert res.code == 2, res.stderr
    assert len(res.error_lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert not out.exists() and not (tmp_path / "g.dot").exists()


def test_a_failed_verification_exits_1_and_suggests_lossy(bn_int8):
    res = run_cli(["verify", str(FIXTURES / "keras_bn"), str(bn_int8)])
    assert res.code == 1, res.stderr
    (line,) = res.error_lines
    assert "disagrees" in line and "compare with --lossy" in line
    res = run_cli(["verify", str(FIXTURES / "keras_bn"), str(bn_int8), "--lossy"])
    assert res.code == 0, res.stderr
    assert not res.error_lines


@pytest.fixture(scope="module")
def bn_int8(tmp_path_factory) -> Path:
    """keras_bn optimized with int8 weights (not verified)."""
    out = tmp_path_factory.mktemp("int8") / "bn_int8"
    res = run_cli(["optimize", str(fixture_path("keras_bn")), str(out), "--no-verify"])
    assert res.code == 0, res.stderr
    return out


class _ClosedPipe(io.StringIO):
    """stdout whose reader went away: every write fails with EPIPE."""

    def write(self, s: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


@pytest.mark.parametrize("argv", [["inspect", str(FROZEN)], ["inspect", str(FROZEN), "--json"], ["rules"],
                                  ["rules", "--json"], ["inspect", "--help"], ["transform", str(FROZEN), "-t", "",
                                                                               "--explain", "remove_identity"]])
def test_a_broken_pipe_is_not_an_error(argv, capsys):
    from graphxform.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(_ClosedPipe()), contextlib.redirect_stderr(err), \
            use_consoles(make_console(file=sys.stdout), make_console(file=err)):
        with pytest.raises(SystemExit) as exc:
            main(argv)
    assert exc.value.code == 0, err.getvalue()
    assert "error" not in err.getvalue().lower() and "Traceback" not in err.getvalue()


def test_a_broken_pipe_in_a_real_shell_pipe_exits_0():
    """`graphxform inspect MODEL | head -1`: the reader leaves; graphxform exits 0 without a word on stderr."""
    script = Path(sys.executable).with_name("graphxform")
    proc = subprocess.Popen([str(script), "inspect", str(FROZEN)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `head -1`: the reader is gone before graphxform wrote everything (it imports TF first)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "error" not in err.lower(), err


@pytest.mark.parametrize("command", ["inspect", "render", "transform", "verify", "optimize"])
def test_an_interrupt_exits_130_and_leaves_nothing(command, tmp_path, monkeypatch):
    import graphxform.inspect.summary as summary
    import graphxform.jobs.optimize as optimize_job
    import graphxform.jobs.transform as transform_job
    import graphxform.jobs.verify as verify_job

    def interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    out = tmp_path / "out"
    if command in ("inspect", "render"):
        monkeypatch.setattr(summary, "load_for_inspect", interrupt)
        out = tmp_path / "out.dot"
        argv = ["inspect", str(FROZEN)] if command == "inspect" else ["render", str(FROZEN), "-o", str(out)]
    elif command == "transform":
        monkeypatch.setattr(transform_job, "run_pipeline", interrupt)
        argv = ["transform", str(FROZEN), str(out), "--input-names", "input", "--output-names", "output"]
    elif command == "verify":
        monkeypatch.setattr(verify_job, "open_loaders", interrupt)
        argv = ["verify", str(LOOKUP), str(LOOKUP)]
    else:  # inside verification: OUT was written, not verified, and is removed
        monkeypatch.setattr(optimize_job, "verify_models", interrupt)
        out = tmp_path / "out.pb"
        argv = ["optimize", str(FROZEN), str(out), "--input-names", "input", "--output-names", "output"]
    res = run_cli(argv)
    assert res.code == 130, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted"), res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    if command == "optimize":
        assert f"{out} was written but not verified, so it was removed" in last


# --------------------------------------------------------------------------- --inputs: keys, values, missing
def test_an_unknown_npz_key_is_an_error_listing_the_keys_per_signature(tmp_path):
    s = _samples()
    bad = _npz(tmp_path, "typo.npz", **{"serving_default/tokns": s["serving_default/tokens"],
                                        "serving_default/weight": s["serving_default/weight"],
                                        "score/tokens": s["score/tokens"]})
    out = tmp_path / "out"
    for argv in (["verify", str(LOOKUP), str(LOOKUP), "--inputs", str(bad)],
                 ["optimize", str(LOOKUP), str(out), "--inputs", str(bad)]):
        res = run_cli(argv)
        assert res.code == 2, res.stderr
        (line,) = res.error_lines
        assert "key 'serving_default/tokns' (did you mean 'serving_default/tokens'?) names no signature input" in line
        assert "score: 'score/tokens'; serving_default: 'serving_default/tokens', 'serving_default/weight'" in line
        assert not out.exists()


@pytest.mark.parametrize("case", ["shape", "strings_for_float", "floats_for_int_rank"])
def test_a_value_the_signature_does_not_take_is_an_error_before_anything_is_written(case, tmp_path):
    s = _samples()
    if case == "shape":
        s["serving_default/weight"] = np.ones((8, 2), np.float32)
        expect = "key 'serving_default/weight' (signature 'serving_default', input 'weight') has shape (8, 2); " \
                 "the input takes float32 of shape (-1)"
    elif case == "strings_for_float":
        s["serving_default/weight"] = np.array([b"a"] * 8)
        expect = "key 'serving_default/weight' (signature 'serving_default', input 'weight') holds |S1 values; " \
                 "the input takes float32"
    else:
        s["score/tokens"] = np.ones((8,), np.float32)
        expect = "key 'score/tokens' (signature 'score', input 'tokens') holds float32 values; the input takes string"
    path = _npz(tmp_path, "bad.npz", **s)
    out = tmp_path / "out"
    for argv in (["verify", str(LOOKUP), str(LOOKUP), "--inputs", str(path)],
                 ["optimize", str(LOOKUP), str(out), "--inputs", str(path)]):
        res = run_cli(argv)
        assert res.code == 2, res.stderr
        (line,) = res.error_lines
        assert expect in line and str(path) in line, line
        assert "Tensor" not in line and "Cannot feed" not in line
        assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.npz"]


def test_inputs_left_out_are_an_error_unless_synthesize_missing(tmp_path):
    s = _samples()
    partial = _npz(tmp_path, "partial.npz", **{k: v for k, v in s.items() if k.startswith("serving_default/")})
    res = run_cli(["verify", str(LOOKUP), str(LOOKUP), "--inputs", str(partial)])
    assert res.code == 2
    (line,) = res.error_lines
    assert "no value for input 'tokens' of signature 'score' (key 'score/tokens')" in line
    assert "--synthesize-missing" in line
    res = run_cli(["verify", str(LOOKUP), str(LOOKUP), "--inputs", str(partial), "--synthesize-missing", "--json"])
    assert res.code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["synthesized"] == {"score": ["tokens"]} and data["inputs"] == "npz + synthesized score: tokens"
    res, text, _ = render(["verify", str(LOOKUP), str(LOOKUP), "--inputs", str(partial), "--synthesize-missing"],
                          tty=False)
    assert res.code == 0 and "synthesized (--synthesize-missing): signature score: tokens" in text
    # a plain key is used for every signature with that input: nothing left out
    plain = _npz(tmp_path, "plain.npz", tokens=s["score/tokens"], weight=s["serving_default/weight"])
    res = run_cli(["verify", str(LOOKUP), str(LOOKUP), "--inputs", str(plain), "--json"])
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["synthesized"] == {}


def test_optimize_synthesize_missing_reports_what_it_filled(tmp_path):
    s = _samples()
    partial = _npz(tmp_path, "partial.npz", **{"score/tokens": s["score/tokens"]})
    out = tmp_path / "out"
    res = run_cli(["optimize", str(LOOKUP), str(out), "--inputs", str(partial)])
    assert res.code == 2 and "signature 'serving_default'" in res.error_lines[0] and not out.exists()
    res = run_cli(["optimize", str(LOOKUP), str(out), "--inputs", str(partial), "--synthesize-missing", "--json"])
    assert res.code == 0, res.stderr
    v = json.loads(res.stdout)["verification"]
    assert v["synthesized"] == {"serving_default": ["tokens", "weight"]}


# --------------------------------------------------------------------------- one name per meaning
def test_transform_takes_input_names_and_still_accepts_the_old_spelling(tmp_path):
    new = run_cli(["transform", str(FROZEN), str(tmp_path / "a.pb"), "-t", "remove_identity", "--input-names",
                   "input", "--output-names", "output", "--json"])
    old = run_cli(["transform", str(FROZEN), str(tmp_path / "b.pb"), "-t", "remove_identity", "--inputs", "input",
                   "--outputs", "output", "--json"])
    assert new.code == old.code == 0, old.stderr
    assert "deprecated" not in new.stderr
    assert "note: --inputs is deprecated here; use --input-names" in old.stderr
    assert "note: --outputs is deprecated here; use --output-names" in old.stderr
    assert (tmp_path / "a.pb").read_bytes() == (tmp_path / "b.pb").read_bytes()
    both = run_cli(["transform", str(FROZEN), str(tmp_path / "c.pb"), "--inputs", "input", "--input-names", "input"])
    assert both.code == 2 and not (tmp_path / "c.pb").exists()
    help_text = run_cli(["transform", "--help"]).stdout
    assert "--input-names" in help_text and "--output-names" in help_text
    for command in ("optimize", "verify"):
        assert "--inputs FILE.npz" in run_cli([command, "--help"]).stdout


# --------------------------------------------------------------------------- deterministic JSON, every command
def _json_runs(tmp_path: Path, long_names_pb: Path) -> dict[str, list[str]]:
    out = tmp_path / "o"
    return {
        "inspect": ["inspect", str(long_names_pb), "--json"],
        "inspect_saved_model": ["inspect", str(LOOKUP), "--json"],
        "inspect_node": ["inspect", str(long_names_pb), "--node", PREFIX + "matmul_number_one", "--json"],
        "render": ["render", str(long_names_pb), "-o", str(tmp_path / "g.dot"), "--json"],
        "rules": ["rules", "--json"],
        "transform": ["transform", str(long_names_pb), str(out / "t.pb"), "--input-names", "input",
                      "--output-names", "output", "--force", "--json"],
        "optimize": ["optimize", str(LOOKUP), str(out / "opt"), "--force", "--json"],
        "verify": ["verify", str(LOOKUP), str(LOOKUP), "--json"],
    }


def test_json_of_every_command_is_byte_equal_across_runs(tmp_path, long_names_pb):
    runs = _json_runs(tmp_path, long_names_pb)
    (tmp_path / "o").mkdir()
    for name, argv in runs.items():
        first, second = run_cli(argv), run_cli(argv)
        assert first.code == second.code == 0, (name, first.stderr, second.stderr)
        assert first.stdout == second.stdout, name
        data = json.loads(first.stdout)
        text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert first.stdout == text, f"{name}: keys not sorted"
        assert '"seconds"' not in first.stdout and '"total_seconds"' not in first.stdout, name
    for name in ("verify", "optimize"):
        data = json.loads(run_cli(runs[name]).stdout)
        v = data if name == "verify" else data["verification"]
        keys = [(o["signature"], o["output"]) for o in v["outputs"]]
        assert keys == sorted(keys) and {k for k, _ in keys} == {"score", "serving_default"}
    timed = json.loads(run_cli([*runs["verify"], "--timings"]).stdout)
    assert "seconds" in timed and all("seconds" in r for r in timed["loaders"])


# --------------------------------------------------------------------------- tables at 80 columns, tty and pipe
@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_tables_of_every_command_are_whole_at_80_columns(tty, tmp_path, long_names_pb):
    checked = []

    # inspect: op histogram, the largest tensors with long names, candidate inputs/outputs
    res, text, _ = render(["inspect", str(long_names_pb)], tty=tty)
    assert res.code == 0, res.stderr
    data = json.loads(run_cli(["inspect", str(long_names_pb), "--json"]).stdout)
    assert_whole(text, [*data["op_histogram"], *map(str, data["op_histogram"].values()),
                        *(r["name"] for r in data["largest"]), "output"])
    checked.append("inspect")

    # inspect a SavedModel: tables, assets
    res, text, _ = render(["inspect", str(LOOKUP)], tty=tty)
    data = json.loads(run_cli(["inspect", str(LOOKUP), "--json"]).stdout)
    assert res.code == 0 and data["tables"]
    assert_whole(text, [a["filename"] for a in data["assets"]] + [o["object"] for o in data["objects"]])

    # inspect --node: inputs and consumers with long names; no header-only table
    res, text, _ = render(["inspect", str(long_names_pb), "--node", PREFIX + "identity_number_one"], tty=tty)
    assert res.code == 0, res.stderr
    assert_whole(text, [PREFIX + "matmul_number_one", PREFIX + "identity_number_two"])
    res, text, _ = render(["inspect", str(long_names_pb), "--node", "output"], tty=tty)
    assert "consumers: none" in text and "consumers (0)" not in text
    checked.append("inspect --node")

    # transform: the rules table, and --explain's node column (long names that differ only at their end)
    res, text, _ = render(["transform", str(long_names_pb), str(tmp_path / "t.pb"), "--input-names", "input",
                           "--output-names", "output"], tty=tty)
    assert res.code == 0, res.stderr
    assert_whole(text, ["remove_identity", "merge_duplicates", "fold_constants", "hoist_unary_through_concat"])
    assert not re.search(r"\b1 (rounds|rewrites)\b", text)
    res, text, _ = render(["transform", str(long_names_pb), "-t", "", "--explain", "remove_identity"], tty=tty)
    assert res.code == 0, res.stderr
    assert_whole(text, [PREFIX + "identity_number_one", PREFIX + "identity_number_two", "output"])
    checked.append("transform")

    # verify: signatures, outputs and every number
    res, text, _ = render(["verify", str(LOOKUP), str(LOOKUP)], tty=tty)
    assert res.code == 0, res.stderr
    data = json.loads(run_cli(["verify", str(LOOKUP), str(LOOKUP), "--json"]).stdout)
    assert_whole(text, [o["signature"] for o in data["outputs"]] + [o["output"] for o in data["outputs"]]
                 + [f"{r['outputs_ok']}/{r['outputs']}" for r in data["loaders"]]
                 + ["LoadSavedModel (C++, TF Serving)", "tf.saved_model.load"])
    assert "PASS" in text
    checked.append("verify")

    # optimize: the summary, rules and verification tables
    out = tmp_path / ("opt_tty" if tty else "opt_pipe")
    res, text, _ = render(["optimize", str(long_names_pb), str(out), "--input-names", "input", "--output-names",
                           "output", "--quantize", "none"], tty=tty)
    assert res.code == 0, res.stderr
    assert_whole(text, ["remove_identity", "fold_batch_norms", "hoist_unary_through_concat", "serving_default",
                        "output"])
    assert f"{long_names_pb}→{out}" in "".join(text.split())  # the title, wrapped, not cut
    assert not re.search(r"\b1 (outputs|signatures|rounds|rewrites)\b", text)
    checked.append("optimize")

    # rules: the list (prose), and one rule's parameter table
    res, text, _ = render(["rules"], tty=tty)
    assert res.code == 0 and "``" not in text
    for name in ("remove_identity", "fold_constants", "quantize_weights"):
        assert name in text
    res, text, _ = render(["rules", "fold_constants"], tty=tty)
    assert res.code == 0 and "``" not in text
    assert_whole(text, ["ignore_errors", "max_constant_size_in_bytes", "10485760", "clear_output_shapes"])
    checked.append("rules")

    # render: one line on stderr, whole
    res, _, err = render(["render", str(long_names_pb), "-o", str(tmp_path / "long.dot")], tty=tty)
    assert res.code == 0 and f"wrote {tmp_path / 'long.dot'}" in err.replace("\n", "")
    checked.append("render")
    assert set(checked) >= set(COMMANDS) - {"batch"}


def test_rst_literals_render_as_code():
    from graphxform.cli.rules_cmd import rst_text

    doc = "Replaces ``Mul(x, 1)`` by ``x`` (see :func:`~graphxform.core.nodes.const`)."
    assert rst_text(doc, styled=False).plain == "Replaces `Mul(x, 1)` by `x` (see `const`)."
    styled = rst_text(doc, styled=True)
    assert styled.plain == "Replaces Mul(x, 1) by x (see const)." and len(styled.spans) == 3


# --------------------------------------------------------------------------- progress
def test_progress_goes_to_a_terminal_stderr_only(tmp_path):
    argv = ["optimize", str(FROZEN), str(tmp_path / "a"), "--input-names", "input", "--output-names", "output",
            "--json"]
    res, _, err = render(argv, tty=False, err_tty=True)
    assert res.code == 0, res.stderr
    json.loads(res.stdout)  # stdout holds the JSON and nothing else
    for stage in ("load", "inputs", "transform", "export", "verify"):
        assert re.search(rf"✓ {stage}\s", err), err
    argv[2] = str(tmp_path / "b")
    res, _, err = render(argv, tty=False, err_tty=False)
    assert res.code == 0 and "✓" not in err and err.strip() == ""


@pytest.mark.parametrize("command", ["inspect", "render", "rules", "transform", "verify"])
def test_every_command_shows_live_progress_on_a_terminal(command, tmp_path, monkeypatch):
    """A spinner on a terminal's stderr names what runs (loading, each rule, each signature); none in a pipe.
    (What the spinner is told is recorded: it draws only some of it, at its own pace.)"""
    from graphxform.cli.common import StageProgress

    shown: list[str] = []
    real_update = StageProgress.update

    def update(self, text):  # type: ignore[no-untyped-def]
        if self.status is not None:
            shown.append(text)
        real_update(self, text)

    monkeypatch.setattr(StageProgress, "update", update)
    argv, said = {
        "inspect": (["inspect", str(FROZEN)], "loading " + str(FROZEN)),
        "render": (["render", str(FROZEN), "-o", str(tmp_path / "g.dot")], "drawing " + str(tmp_path / "g.dot")),
        "rules": (["rules"], "loading the rules"),
        "transform": (["transform", str(FROZEN), str(tmp_path / "t.pb"), "--input-names", "input",
                       "--output-names", "output", "-t", "remove_identity", "--force"], "round 1: remove_identity…"),
        "verify": (["verify", str(LOOKUP), str(LOOKUP), "--loaders", "tf1"],
                   "signature serving_default: running the candidate in tf1 (TF1 saved_model.loader.load)…"),
    }[command]
    res, _, err = render(argv, tty=False, err_tty=True)
    assert res.code == 0, res.stderr
    assert said in shown, shown
    assert "".join(shown[-1].split()) in "".join(err.split())  # drawn on stderr (at least when it stops)
    shown.clear()
    if command == "render":
        (tmp_path / "g.dot").unlink()
    res, _, err = render(argv, tty=False, err_tty=False)
    assert res.code == 0 and shown == [] and said not in err, err


def test_verify_reports_progress_per_signature_and_loader():
    from graphxform.jobs.verify import verify

    seen: list[str] = []
    report = verify(LOOKUP, LOOKUP, progress=lambda stage, status, info: seen.append(stage))
    assert report.ok
    for key in ("score", "serving_default"):
        assert f"verify:run:{key}" in seen
        for loader in ("c++", "tf2", "tf1"):
            assert f"verify:run:{key}:{loader}" in seen
    assert [s for s in seen if s.startswith("verify:load:")] == ["verify:load:c++", "verify:load:tf2",
                                                                 "verify:load:tf1"]


# --------------------------------------------------------------------------- hints and nits
@pytest.fixture(scope="module")
def keras_files(tmp_path_factory) -> dict[str, Path]:
    """A Keras 3 model saved as users save it: model.keras (zip) and model.h5 (HDF5)."""
    import keras

    root = tmp_path_factory.mktemp("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    paths = {"keras": root / "model.keras", "h5": root / "model.h5"}
    for path in paths.values():
        model.save(path)
    return paths


@pytest.mark.parametrize("kind, command", [("keras", "inspect"), ("h5", "optimize"), ("keras", "transform"),
                                           ("h5", "inspect")])
def test_a_keras_file_says_to_export_it(keras_files, kind, command, tmp_path):
    path = keras_files[kind]
    argv = [command, str(path)] + ([] if command == "inspect" else [str(tmp_path / "out")])
    res = run_cli(argv)
    assert res.code == 2
    (line,) = res.error_lines
    assert "Keras" in line and "model.export(dir)" in line and str(path) in line
    assert "protobuf" not in line
    assert not (tmp_path / "out").exists()


def test_optimize_help_lists_the_default_pipeline_of_the_code():
    from graphxform.cli.optimize_cmd import float_pipeline
    from graphxform.engine.pipeline import FLOAT_PIPELINE

    assert float_pipeline() == tuple(FLOAT_PIPELINE)
    text = " ".join(run_cli(["optimize", "--help"]).stdout.split())
    assert f"runs the default pipeline — {', '.join(FLOAT_PIPELINE)} — then quantize_weights" in text


def test_ignored_rule_errors_are_printed_once(tmp_path):
    rules = tmp_path / "failing_rules.py"
    rules.write_text(
        "from graphxform import Any, Op, Rule, register\n\n\n"
        "@register\nclass AlwaysFails(Rule):\n"
        '    """Replaces ``Identity(x)`` by nothing: it always fails."""\n\n'
        '    name = "always_fails_cli_test"\n'
        '    pattern = Op("Identity", Any(bind="x"), bind="id")\n\n'
        "    def rewrite(self, m):\n"
        '        raise ValueError("deliberate failure 12345")\n')
    res = run_cli(["transform", str(FROZEN), str(tmp_path / "o.pb"), "--input-names", "input", "--output-names",
                   "output", "--rules", str(rules), "-t", "always_fails_cli_test(ignore_errors=true)"])
    assert res.code == 0, res.stderr
    both = res.stdout + res.stderr
    assert both.count("deliberate failure 12345") == res.stdout.count("ignored:") >= 1
    assert both.count("ignored:") == len(set(ln for ln in both.splitlines() if "ignored:" in ln))


def test_tensor_spec_repr_names_the_dtype():
    from graphxform.core.signature import TensorSpec

    spec = TensorSpec("x:0", 1, [None, 3])
    assert repr(spec) == "TensorSpec(name='x:0', dtype=float32, shape=[None, 3])"
    assert "dtype=string" in repr(TensorSpec("s:0", 7, [None]))


def test_a_long_error_line_is_cut_between_words():
    from graphxform.cli import MAX_ERROR_CHARS, one_line

    message = " ".join(f"word{i:05d}" for i in range(400))
    line = one_line(message)
    head, _, tail = line.partition(" … ")
    assert tail == "(run with --debug for the full message)"
    assert message.startswith(head) and message[len(head)] == " " and len(head) <= MAX_ERROR_CHARS
