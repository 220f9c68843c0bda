"""TF2 export idioms end to end; each test measures one idiom and checks its row of the README table.

For every fixture made by ``fixtures/make_tf2_idioms.py`` (and the older
``keras_bn``, ``tf2_lookup``): graphxform loads and freezes it, ``optimize``
makes a float and an int8 servable (each verified against the input), and
each output is run in TensorFlow's C++ loader (TF Serving's), in
``tf.saved_model.load`` and in the TF1 loader against the input as
``tf.saved_model.load`` runs it. Every status cell must be green, and the
README's row must say what was measured (status cells, node counts, sizes).

``GRAPHXFORM_UPDATE_README=1 pytest tests/test_tf2_idioms.py`` rewrites the
README rows from the measurements (figures included) instead of comparing.
"""
from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, fixture_path, load_samples
from figures import same_figures
from tf2_idioms import Measurement, measure

README = ROOT / "README.md"
BEGIN, END = "<!-- tf2-idioms-table -->", "<!-- /tf2-idioms-table -->"

#: (idiom as the README names it, fixture)
IDIOMS = [
    ("Keras 3 `model.export(dir)`", "keras_bn"),
    ("Keras 3 model, `tf.saved_model.save(model, dir)`", "keras3_saved_model"),
    ("`tf.Module` wrapping a Keras 3 model, 2 signatures sharing its variables", "module_keras"),
    ("plain `tf.Module` with `tf.Variable`s (embedding gather, dense)", "module_variables"),
    ("`tf.Module` with a vocabulary-file `StaticHashTable` (asset), 2 signatures", "tf2_lookup"),
    ("`tf.Module` with tables filled before saving: `MutableHashTable` (scalars, vectors), "
     "`DenseHashTable`, `StaticVocabularyTable` (file, OOV buckets), `StaticHashTable` (tensors)", "module_tables"),
    ("Keras 3 `TextVectorization`, `StringLookup`, `IntegerLookup`, `tf.saved_model.save`", "keras3_text"),
    ("Keras 2 (`tf-keras`) CNN + `StringLookup`, `model.save(dir, save_format=\"tf\")`", "keras2_saved_model"),
    ("TensorFlow Text `WhitespaceTokenizer` + vocabulary table in a `tf.Module`", "tf_text"),
]
HEADER = ["export idiom", "fixture", "loads", "freezes", "optimize float / int8",
          "C++ loader (TF Serving): input → output", "`tf.saved_model.load`", "TF1 loader",
          "outputs within rtol 1e-5", "nodes loaded / frozen → float / int8", "size input → float / int8",
          "max rel diff float / int8"]
#: Columns compared exactly with the measurement; the last one (float rounding, which differs between CPUs) is
#: compared within tests/figures.py's rounding factor.
COMPARED = HEADER[:-1]


def _mark(ok: bool | None) -> str:
    return "✓" if ok else "✗"


def _kb(n: int) -> str:
    return f"{n / 1000:.0f} KB" if n < 1_000_000 else f"{n / 1e6:.2f} MB"


def row(idiom: str, m: Measurement) -> list[str]:
    c = m.cells
    worst = {k: max((v for key, v in m.max_rel.items() if key.startswith(k)), default=0.0) for k in ("float", "int8")}
    return [
        idiom, f"`{m.fixture}`", _mark(c.get("loads")), _mark(c.get("freezes")),
        f"{_mark(c.get('optimize float'))} / {_mark(c.get('optimize int8'))}",
        f"{_mark(m.input_cpp)} → {_mark(c.get('C++ loader'))}", _mark(c.get("tf.saved_model.load")), _mark(c.get("TF1 loader")),
        _mark(c.get("within tolerance")),
        f"{m.nodes.get('loaded', '-')} / {m.nodes.get('frozen', '-')} → {m.nodes.get('float', '-')} / "
        f"{m.nodes.get('int8', '-')}",
        f"{_kb(m.sizes.get('input', 0))} → {_kb(m.sizes.get('float', 0))} / {_kb(m.sizes.get('int8', 0))}",
        f"{worst['float']:.1e} / {worst['int8']:.1e}",
    ]


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def readme_rows() -> dict[str, list[str]]:
    """{fixture: cells} of the README table."""
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return {}
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    rows = {}
    for line in block.splitlines():
        if not line.startswith("| ") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        m = re.fullmatch(r"`(\w+)`", cells[1]) if len(cells) > 1 else None
        if m:
            rows[m.group(1)] = cells
    return rows


def _update_readme(fixture: str, cells: list[str]) -> None:
    """Rewrite the README row of ``fixture`` (the table is created when missing); locked across test workers."""
    with open(README, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        text = f.read()
        if BEGIN not in text:
            raise AssertionError(f"README.md has no {BEGIN} … {END} block to update")
        head, rest = text.split(BEGIN, 1)
        block, tail = rest.split(END, 1)
        rows = readme_rows()
        rows[fixture] = cells
        order = [fx for _, fx in IDIOMS]
        lines = [_line(HEADER), "|" + "---|" * len(HEADER)]
        lines += [_line(rows[fx]) for fx in order if fx in rows]
        new = f"{head}{BEGIN}\n{chr(10).join(lines)}\n{END}{tail}"
        f.seek(0)
        f.write(new)
        f.truncate()


@pytest.mark.parametrize("idiom,fixture", IDIOMS, ids=[fx for _, fx in IDIOMS])
def test_idiom_row(idiom, fixture, tmp_path):
    path = fixture_path(fixture)
    m = measure(path, load_samples(fixture), tmp_path)
    cells = row(idiom, m)
    if os.environ.get("GRAPHXFORM_UPDATE_README"):
        _update_readme(fixture, cells)
    assert not m.failures(), f"{fixture}: {m.failures()}"
    assert m.input_cpp is not None
    readme = readme_rows().get(fixture)
    assert readme is not None, f"README.md has no row for {fixture}; run with GRAPHXFORM_UPDATE_README=1"
    for name, want, got in zip(HEADER, readme, cells):
        if name in COMPARED:
            assert want == got, f"{fixture}: README says {name} = {want!r}, measured {got!r}"
        else:
            assert same_figures(want, got), f"{fixture}: README says {name} = {want!r}, measured {got!r}"


def test_readme_table_lists_exactly_the_idioms():
    assert list(readme_rows()) == [fx for _, fx in IDIOMS]
    text = README.read_text()
    assert text.index(BEGIN) < text.index(END)


@pytest.mark.parametrize("fixture", ["keras3_saved_model", "module_keras", "keras3_text"])
def test_input_fails_in_tf_serving_output_serves(fixture, tmp_path):
    """The README's claim: these inputs are refused by TF Serving's loader (their signatures read variables the
    saver never fills); graphxform's output loads and runs there with the inputs' outputs."""
    from tf2_idioms import compare, run_cpp, run_runner

    from graphxform.jobs.optimize import optimize
    from graphxform.tf.capi import CLoaderError
    from graphxform.tf.runners import TF2SavedModelRunner

    path = fixture_path(fixture)
    samples = load_samples(fixture)
    with pytest.raises(CLoaderError, match="Could not find variable"):
        run_cpp(path, samples)
    report = optimize(path, tmp_path / "out", quantize="none",
                      inputs={f"{k}/{i}": v for k, d in samples.items() for i, v in d.items()})
    assert report.ok, report.verification.failure_message()
    ref = run_runner(TF2SavedModelRunner(path), samples)
    ok, worst, why = compare(ref, run_cpp(tmp_path / "out", samples))
    assert ok, why
    assert worst <= 1e-5


def test_tf_text_ops_need_their_package(tmp_path):
    """Without tensorflow-text, a model using its ops is refused with one line naming the package."""
    fixture_path("tf_text")
    code = ("import sys; sys.modules['tensorflow_text'] = None\n"
            "from graphxform.cli import main\n"
            "main(['inspect', sys.argv[1]])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "tf_text")], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and "tensorflow-text" in err and "pip install tensorflow-text==" in err, err
    assert "WhitespaceTokenizeWithOffsets" in err, err
    assert "Traceback" not in proc.stderr


def test_load_ops_option(tmp_path):
    """--load-ops imports a module (or loads a .so) first; a bad one is one line and exit 2."""
    from click.testing import CliRunner

    from graphxform.cli import cli

    fixture_path("tf_text")
    runner = CliRunner()
    res = runner.invoke(cli, ["--load-ops", "tensorflow_text", "inspect", str(FIXTURES / "tf_text"), "--json"])
    assert res.exit_code == 0, res.output
    for bad, words in (("no_such_op_module", "no_such_op_module"), (str(tmp_path / "missing.so"), "missing.so")):
        proc = subprocess.run([sys.executable, "-c", "import sys; from graphxform.cli import main; main(sys.argv[1:])",
                               "--load-ops", bad, "rules"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
        assert proc.returncode == 2, (bad, proc.stdout[-500:], proc.stderr[-1000:])
        assert words in proc.stderr and "Traceback" not in proc.stderr
