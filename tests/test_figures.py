"""Every published figure is measured again and must agree with the text (tests/figures.py; update with
``python -m tests.figures --update``).

The fixture figures are measured here (``optimize`` of every fixture of the servable matrix in every ``--quantize``
mode, once per session); the benchmark figures are quoted from ``tests/bench/results.json``, which only the
benchmark writes, with the date, machine, TensorFlow version and load average of its run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import figures
import pytest


@pytest.fixture(scope="session")
def measured(tmp_path_factory) -> figures.Measure:
    return figures.Measure(tmp_path_factory.mktemp("figures"))


def _fail(problems: list[str]) -> None:
    assert not problems, "\n\n".join(problems)


def test_markers_are_balanced_and_known():
    _fail(figures.marker_problems())


def test_fixture_figures_match_a_fresh_run(measured):
    """README's and docs/export.md's optimize tables, fixtures/README.md's sizes, node and op counts, docs/rules.md's
    quantization accuracy; and, as README and docs/export.md say under the optimize table, the differences are the
    same in all three loaders (one test: the optimize runs are made once per test process)."""
    _fail(figures.disagreements(measured, {"fixtures"}))
    for (name, mode), run in measured.runs.items():
        assert set(run.per_loader) == {"c++", "tf2", "tf1"}, (name, mode, run.per_loader)
        assert len(set(run.per_loader.values())) == 1, (name, mode, run.per_loader)


def test_corpus_figures_match_the_corpus(measured):
    _fail(figures.disagreements(measured, {"corpus"}))


def test_benchmark_figures_quote_results_json(measured):
    """README, docs/bench.md, docs/engine.md and docs/rules.md quote results.json; RESULTS.md is made from it."""
    _fail(figures.disagreements(measured, {"bench"}))
    assert figures.RESULTS_MD.read_text() == figures.results_md(measured), \
        f"tests/bench/RESULTS.md is not what results.json gives: run `{figures.UPDATE_COMMAND}`"


def test_benchmark_results_say_when_and_where():
    results = json.loads(figures.RESULTS_JSON.read_text())
    for key in ("date", "machine", "tensorflow", "load_avg_start", "load_avg_end"):
        assert results.get(key) not in (None, ""), key
    for row in results["models"] + results.get("scaling", []):
        assert row.get("measured", results["date"]) and (row.get("load_avg_start") or row.get("load_avg")), row


def test_benchmark_figures_are_medians_of_three_processes():
    """What README says of the scaling and peak-RSS figures: each is the median of three fresh processes, every
    run kept beside it (``walls``; ``rss_ratio_runs``, ``rss_ratio_cli_runs``, and for the processes that run a
    TF session first ``rss_ratio_warm_runs``, ``rss_ratio_prewarmed_runs``)."""
    results = json.loads(figures.RESULTS_JSON.read_text())
    for row in results["scaling"]:
        walls = row["walls"]
        assert len(walls) == 3 and walls == sorted(walls), row
        assert round(row["load_s"] + row["pipeline_s"], 2) == walls[1], row
    for row in results["models"]:
        for ratio, runs in (("rss_ratio", "rss_ratio_runs"), ("rss_ratio_cli", "rss_ratio_cli_runs"),
                            ("rss_ratio_warm", "rss_ratio_warm_runs"),
                            ("rss_ratio_prewarmed", "rss_ratio_prewarmed_runs")):
            if row.get(ratio) is None:
                continue
            assert len(row[runs]) == 3 and row[runs] == sorted(row[runs]), (row["model"], runs)
            assert round(row[ratio], 3) == row[runs][1], (row["model"], ratio)


def test_benchmark_records_the_machine():
    """What run_bench writes at the top of results.json: cores, CPU model, TensorFlow, date, load average."""
    from tests.bench.run_bench import machine_info

    info = machine_info()
    assert info["cores"] >= 1 and info["cpu"] and info["machine"].endswith(f"{info['cores']} cores")


def test_scaling_steps_give_each_steps_growth_of_time_per_node():
    """The steps table of the scaling rows: the build and every rule over 1 % of the largest run, with its time per
    node at the largest size over that at the next one (a rule under 1 % is left out; one measured size: no row)."""
    from tests.bench.run_bench import scaling_steps, size_label

    def row(shape, nodes, load, rules):
        return {"shape": shape, "nodes": nodes, "load_s": load, "pipeline_s": sum(rules.values()), "rules_s": rules}

    rows = [row("chain", 100_000, 0.5, {"merge_duplicates": 1.0, "remove_noop": 0.001}),
            row("chain", 1_000_000, 6.0, {"merge_duplicates": 13.0, "remove_noop": 0.01}),
            row("fan", 99_997, 0.4, {"merge_duplicates": 1.0})]
    steps = {(s["shape"], s["step"]): s for s in scaling_steps(rows)}
    assert set(steps) == {("chain", "Graph build"), ("chain", "merge_duplicates")}
    assert steps["chain", "Graph build"]["growth"] == pytest.approx(1.2)
    assert steps["chain", "merge_duplicates"]["growth"] == pytest.approx(1.3)
    assert steps["chain", "merge_duplicates"]["seconds"] == [1.0, 13.0]
    assert [size_label(n) for n in (9_998, 99_998, 999_998)] == ["10k", "100k", "1M"]


def test_probe_costs_time_each_size_in_its_own_process():
    from tests.bench.probes import probe_costs

    rows = probe_costs([1_000, 2_000])
    assert [r["entries"] for r in rows] == [1_000, 2_000]
    for r in rows:
        assert all(r[k] > 0 for k in ("ns_same", "ns_equal", "ns_shuffled")), r


def test_every_fixture_has_a_row_in_fixtures_readme(tmp_path, monkeypatch):
    current = figures.published()["fixture-sizes"][0][1]
    listed = {re.findall(r"`([^`]+)`", line)[0].rstrip("/") for line in current.strip().splitlines()[2:]}
    assert set(figures.fixture_models()) <= listed
    monkeypatch.setattr(figures, "fixture_models", lambda: ["keras_bn", "new_model"])
    new = figures.fixture_sizes(figures.Measure(), current)
    assert "| `new_model/` | — | — (describe this fixture) |" in new


def _doc(tmp_path: Path, monkeypatch, text: str) -> Path:
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    monkeypatch.setattr(figures, "documents", lambda: [doc])
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    return doc


def test_a_drifted_figure_fails_and_update_rewrites_it(tmp_path, monkeypatch, measured):
    """The mechanism itself: a block that says another number is reported with its name and the update command;
    --update rewrites it; text outside the markers is left alone."""
    good = figures.render(figures.BLOCKS["servable-cases"], measured, "")
    doc = _doc(tmp_path, monkeypatch, "in each of the <!-- figures:servable-cases -->41<!-- /figures:servable-cases "
                                      "--> cases, 7 fixtures\n")
    (problem,) = figures.disagreements(measured)
    assert "figures:servable-cases" in problem and figures.UPDATE_COMMAND in problem and "-41" in problem
    monkeypatch.setattr(figures, "RESULTS_MD", tmp_path / "RESULTS.md")
    (tmp_path / "RESULTS.md").write_text(figures.results_md(measured))
    figures.update(measured)
    assert doc.read_text() == (f"in each of the <!-- figures:servable-cases -->{good}<!-- /figures:servable-cases "
                               "--> cases, 7 fixtures\n")
    assert figures.disagreements(measured) == []


def test_unknown_unbalanced_and_missing_blocks_are_reported(tmp_path, monkeypatch):
    _doc(tmp_path, monkeypatch, "<!-- figures:no-such-block -->1<!-- /figures:no-such-block -->\n"
                                "<!-- figures:servable-cases -->42\n")
    problems = "\n".join(figures.marker_problems())
    assert "unknown block figures:no-such-block" in problems
    assert "figures:servable-cases is never closed" in problems
    assert "figures:bench-table is registered but appears in no document" in problems


@pytest.mark.parametrize("published, measured_text, same", [
    ("8.7e-7 | 100%", "8.7e-7 | 100%", True),
    ("8.7e-7 | 100%", "1.2e-6 | 100%", True),      # float rounding of another CPU
    ("8.7e-7 | 100%", "8.7e-6 | 100%", False),     # ten times: not rounding
    ("0 | 100%", "1.0e-9 | 100%", False),          # zero stays zero
    ("8.7e-7 | 100%", "8.7e-7 | 99%", False),      # everything else to the character
    ("691/185 → 79", "691/185 → 61", False),
])
def test_only_rounding_figures_have_a_tolerance(published, measured_text, same):
    assert figures.same_figures(published, measured_text) is same
