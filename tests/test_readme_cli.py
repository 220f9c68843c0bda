"""The README's command-line examples run as written and exit as their comments say.

Every ``graphxform …`` line in the bash blocks of the README's "Command line" and "Rules" sections is run, in
README order (later examples use what earlier ones wrote), with ``/tmp/`` and relative output paths moved into a
temporary directory, pipes and redirections left out. The exit code must be the one the line's comment states
(``exit N``), 0 when it states none. Lines naming files this repository does not have (``model/``,
``frozen.pb``) are placeholders and are skipped; so are pictures when Graphviz is not installed.
"""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from broken_inputs import run_cli
from conftest import ROOT

README = ROOT / "README.md"
PATH_LIKE = re.compile(r"(/|\.(pb|pbtxt|npz|py|tfrecord|json|svg|png|dot)$)")
#: Options whose value names nodes, rules or signatures, not files.
NAME_OPTIONS = {"--node", "--around", "--input-names", "--output-names", "-t", "--transforms", "--explain",
                "--signature", "--loaders", "--quantize", "--tags"}


def _sections(text: str, names: tuple[str, ...]) -> str:
    """The text of the ``## `` sections whose titles start with one of ``names``."""
    parts = re.split(r"(?m)^## ", text)
    return "\n".join(p for p in parts if p.startswith(names))


def readme_examples() -> list[tuple[str, int]]:
    """``(command line, expected exit code)`` for every ``graphxform`` line of the sections' bash blocks."""
    text = _sections(README.read_text(), ("Command line", "Rules"))
    examples = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        lines = re.sub(r"'[^']*'", lambda m: m.group(0).replace("\n", " "), joined).splitlines()
        for line in lines:
            line = line.strip()
            if not line.startswith("graphxform "):
                continue
            command, _, comment = line.partition("  #")
            m = re.search(r"\bexit (\d+)\b", comment)
            examples.append((command.strip(), int(m.group(1)) if m else 0))
    return examples


def _argv(command: str, tmp: Path) -> list[str] | None:
    """The arguments to run, or None for a placeholder example."""
    words = shlex.split(re.split(r"\s[|>]\s", command)[0])[1:]
    out: list[str] = []
    previous = ""
    for w in words:
        if w.startswith("/tmp/"):
            w = str(tmp / w[len("/tmp/"):])
        elif previous in ("-o", "--output") and not w.startswith("/"):
            w = str(tmp / w)  # a picture written to the current directory
        elif previous not in NAME_OPTIONS and not w.startswith("-") and PATH_LIKE.search(w) and \
                not (ROOT / w).exists():
            return None
        if Path(w).suffix in (".svg", ".png") and shutil.which("dot") is None:
            return None
        previous = w
        out.append(w)
    return out


def test_the_readme_has_command_line_examples_with_exit_codes():
    examples = readme_examples()
    assert len(examples) >= 15
    assert {code for _, code in examples} >= {0, 1}


@pytest.mark.slow
def test_readme_cli_examples_exit_as_their_comments_say(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    ran, wrong = [], []
    for command, expected in readme_examples():
        argv = _argv(command, tmp_path)
        if argv is None:
            continue
        res = run_cli(argv)
        ran.append(command)
        if res.code != expected:
            wrong.append(f"{command}: exit {res.code}, the README says {expected}: {res.stderr[-500:]}")
    assert not wrong, "\n".join(wrong)
    assert len(ran) >= 12, ran
    assert not list(ROOT.glob("*.dot")) and not (ROOT / "report.json").exists()


def test_readme_lists_the_default_pipeline_of_the_code():
    from graphxform.engine.pipeline import FLOAT_PIPELINE

    text = " ".join(README.read_text().split())
    assert f"The default pipeline is `{' '.join(FLOAT_PIPELINE)}`" in text
