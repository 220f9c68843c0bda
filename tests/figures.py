"""The published figures: every marked block of README.md, docs/*.md and fixtures/README.md, regenerated.

A figure that describes the fixtures or the benchmark is written between two markers::

    <!-- figures:NAME -->…<!-- /figures:NAME -->

and :data:`BLOCKS` says how NAME is produced: measured on the fixtures (``optimize`` on each fixture and
``--quantize`` mode, node counts, sizes), counted from the test corpus, or quoted from the benchmark's
``tests/bench/results.json`` (the benchmark measures, never the tests). ``tests/test_figures.py`` regenerates
every block in memory and fails, naming the block and this command, when the text says something else::

    python -m tests.figures            # check: print a diff per block that disagrees, exit 1
    python -m tests.figures --update   # rewrite every block, tests/bench/RESULTS.md and the TF2-idioms table
    python -m tests.figures --update --no-idioms   # the blocks only (the idioms table takes a few minutes)

(The TF2-idioms table of README.md has its own markers and is measured and checked row by row by
``tests/test_tf2_idioms.py``; ``--update`` runs it with ``GRAPHXFORM_UPDATE_README=1``.)

To publish a new figure, put it between markers and either name a block of :data:`BLOCKS` (add a function for a
new table or sentence) or ask a family of :data:`FAMILIES` in the name itself, with no code:

* ``nodes:FIXTURE`` (as graphxform loads it), ``top-nodes:FIXTURE`` and ``functions:FIXTURE`` (its stored graph),
  ``variable-elements:FIXTURE``, ``variable-mb:FIXTURE``, ``file-mb:PATH`` (under fixtures/);
* ``ops:FIXTURE:top|functions|all:Op1,Op2`` ("`Op1` ×2 and `Op2`"), ``all-ops:FIXTURE`` ("Ops (21 nodes): …");
* ``bench:MODEL:FIELD:FORMAT``, a field of a model's row of results.json (say which run it is from beside it,
  e.g. with the ``bench-header`` block).

A block name may appear in several files (one sentence quoted twice); every registered block must appear
somewhere, and every marker must name a registered block or a family. Differences between models (max abs/rel diff) depend
on float rounding, which differs between CPUs: those figures (printed as ``1.2e-3``) must agree within a factor
of :data:`ROUNDING_FACTOR`, zero exactly; everything else must agree to the character.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # (measured as the tests measure them: conftest.py)

FIXTURES = ROOT / "fixtures"
SAMPLES = FIXTURES / "samples"
RESULTS_JSON = TESTS / "bench" / "results.json"
RESULTS_MD = TESTS / "bench" / "RESULTS.md"
UPDATE_COMMAND = "python -m tests.figures --update"
#: Float-rounding figures (max differences) may differ by this factor between CPUs.
ROUNDING_FACTOR = 3.0
MARKER = re.compile(r"<!-- figures:([\w.,:/-]+) -->(.*?)<!-- /figures:\1 -->", re.S)
OPEN_MARKER = re.compile(r"<!-- (/?)figures:([\w.,:/-]+) -->")
SCI = re.compile(r"-?\d+(?:\.\d+)?e[+-]?\d+")


def documents() -> list[Path]:
    """The files whose figures are published."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), FIXTURES / "README.md"]


# ----------------------------------------------------------------------------- formatting
def sci(x: float) -> str:
    """``8.7e-7``; ``0`` for zero."""
    if not x:
        return "0"
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def kb(n: int) -> str:
    """README's sizes: ``95 KB``, ``1.45 MB`` (units of 1000 bytes)."""
    return f"{n / 1000:.0f} KB" if n < 1_000_000 else f"{n / 1e6:.2f} MB"


def ratio(r: float) -> str:
    return f"{r:.2f}×" if r >= 0.2 else f"{r:.3f}×"


def agreement(a: float | None) -> str:
    return "—" if a is None else f"{100 * a:.0f}%"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n" + "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- measurements
@dataclass(frozen=True)
class Run:
    """One ``optimize`` of a fixture in one ``--quantize`` mode (SavedModel output, sample inputs)."""

    fixture: str
    mode: str
    size_before: int
    size_after: int
    nodes_loaded: int
    nodes_frozen: int
    nodes_after: int
    max_abs: float
    max_rel: float
    class_agreement: float | None
    #: {loader: (max abs diff, max rel diff)}
    per_loader: dict

    def key(self) -> tuple:
        """What a table row shows: modes with the same key share a row."""
        return (self.size_after, self.nodes_loaded, self.nodes_frozen, self.nodes_after, self.max_abs,
                self.max_rel, self.class_agreement)


class Measure:
    """Everything the blocks quote, each measured once and only when a block asks for it."""

    def __init__(self, workdir: Path | None = None):
        self._workdir = workdir

    @functools.cached_property
    def workdir(self) -> Path:
        return self._workdir or Path(tempfile.mkdtemp(prefix="graphxform-figures-"))

    @functools.cached_property
    def matrix(self) -> dict:
        """test_servable_matrix's fixtures (with their optimize() arguments), modes and output kinds."""
        import test_servable_matrix as m

        return {"models": m.MODELS, "quantize": m.QUANTIZE, "kinds": m.KINDS}

    @functools.cached_property
    def runs(self) -> dict[tuple[str, str], Run]:
        """Every fixture of the servable matrix optimized once per mode, verified in the three loaders."""
        from graphxform.jobs.optimize import optimize

        out = {}
        for name, (_, kwargs) in self.matrix["models"].items():
            stem = name.split(".")[0]
            for mode in self.matrix["quantize"]:
                r = optimize(FIXTURES / name, self.workdir / f"{stem}-{mode}", quantize=mode,
                             inputs=SAMPLES / f"{stem}.npz", **kwargs)
                v = r.verification
                assert r.ok, f"{name} --quantize {mode}: {v.failure_message()}"
                loaders: dict[str, tuple[float, float]] = {}
                for c in v.outputs:
                    a, b = loaders.get(c.loader, (0.0, 0.0))
                    loaders[c.loader] = (max(a, c.max_abs_diff or 0.0), max(b, c.max_rel_diff or 0.0))
                out[(name, mode)] = Run(name, mode, r.size_before, r.size_after, r.nodes_loaded, r.nodes_frozen,
                                        r.nodes_after, v.max_abs_diff, v.max_rel_diff, v.min_class_agreement,
                                        loaders)
        return out

    @functools.cached_property
    def bench(self) -> dict:
        return json.loads(RESULTS_JSON.read_text())

    @functools.cached_property
    def fixture_files(self) -> list[Path]:
        """The files of fixtures/ as the repository holds them (``git ls-files``; every file outside a git checkout),
        so nothing a local run left behind is counted."""
        try:
            out = subprocess.run(["git", "ls-files", "-z", "fixtures"], cwd=ROOT, capture_output=True, check=True,
                                 timeout=60).stdout.decode()
            files = [ROOT / f for f in out.split("\0") if f]
        except (OSError, subprocess.SubprocessError):
            files = []
        return [f for f in files if f.is_file()] or [p for p in FIXTURES.rglob("*")
                                                     if p.is_file() and "__pycache__" not in p.parts]

    def fixture_bytes(self, name: str) -> int:
        path = FIXTURES / name
        return sum(f.stat().st_size for f in self.fixture_files if f == path or path in f.parents)

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def stored_graph(self, name: str):
        """The ``GraphDef`` of a fixture's ``saved_model.pb`` (or ``.pb``), as stored: TF2 functions not inlined."""
        from tensorflow.core.framework import graph_pb2
        from tensorflow.core.protobuf import saved_model_pb2

        path = FIXTURES / name
        if path.is_file():
            g = graph_pb2.GraphDef()
            g.ParseFromString(path.read_bytes())
            return g
        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString((path / "saved_model.pb").read_bytes())
        return sm.meta_graphs[0].graph_def

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def summary(self, name: str) -> dict:
        """``graphxform inspect --json`` of a fixture (nodes as loaded: TF2 functions inlined)."""
        import graphxform
        from graphxform.inspect.summary import summarize

        m = graphxform.load(FIXTURES / name)
        s = summarize(m, top=1)
        s["nodes_loaded"] = len(m.graph)
        return s


# ----------------------------------------------------------------------------- fixture blocks
def _grouped(m: Measure) -> list[tuple[str, list[str], Run]]:
    """(fixture, modes, run): modes whose outputs measure the same share a row."""
    rows = []
    for name in m.matrix["models"]:
        groups: dict[tuple, list[Run]] = {}
        for mode in m.matrix["quantize"]:
            run = m.runs[(name, mode)]
            groups.setdefault(run.key(), []).append(run)
        rows += [(name, [r.mode for r in g], g[0]) for g in groups.values()]
    return rows


def optimize_table_readme(m: Measure) -> str:
    rows = [[name, " / ".join(modes),
             f"{kb(r.size_before)} → {kb(r.size_after)} ({ratio(r.size_after / r.size_before)})",
             f"{r.nodes_loaded}/{r.nodes_frozen} → {r.nodes_after}", sci(r.max_rel), agreement(r.class_agreement)]
            for name, modes, r in _grouped(m)]
    return table(["model", "`--quantize`", "size on disk", "nodes loaded/frozen → out", "max rel diff",
                  "class agreement"], rows)


def optimize_table_export(m: Measure) -> str:
    rows = [[name, " / ".join(modes),
             f"{r.size_before:,} → {r.size_after:,} B ({ratio(r.size_after / r.size_before)})",
             f"{r.nodes_loaded}/{r.nodes_frozen} → {r.nodes_after}", sci(r.max_abs), sci(r.max_rel),
             agreement(r.class_agreement)]
            for name, modes, r in _grouped(m)]
    return table(["Model", "`--quantize`", "Size on disk", "Nodes (loaded/frozen → out)", "Max abs diff",
                  "Max rel diff", "Class agreement"], rows)


def servable_cases(m: Measure) -> str:
    return str(len(m.matrix["models"]) * len(m.matrix["quantize"]) * len(m.matrix["kinds"]))


def fixture_models() -> list[str]:
    """What fixtures/ holds: SavedModel directories, frozen ``.pb`` files and ``samples``."""
    return sorted(p.name for p in FIXTURES.iterdir()
                  if (p.is_dir() and ((p / "saved_model.pb").is_file() or p.name == "samples"))
                  or (p.is_file() and p.suffix == ".pb"))


def fixture_sizes(m: Measure, current: str) -> str:
    """fixtures/README.md's table: every column kept but the last, the size of each fixture's files; a fixture the
    table lacks gets a row to describe."""
    lines = current.strip("\n").splitlines()
    listed = {re.findall(r"`([^`]+)`", line)[0].rstrip("/") for line in lines[2:]}
    lines += [f"| `{name}{'' if name.endswith('.pb') else '/'}` | — | — (describe this fixture) | |"
              for name in fixture_models() if name not in listed]
    out = lines[:2]
    for line in lines[2:]:
        cells = line.strip().strip("|").split(" | ")
        names = re.findall(r"`([^`]+)`", cells[0])
        first = names[0].rstrip("/")
        if first.endswith(".pb"):  # tf1_frozen_bn.pb / .pbtxt / .json: the binary and the text GraphDef
            stem = first[:-3]
            size = f"{m.fixture_bytes(stem + '.pb') / 1000:.1f} KB / {kb(m.fixture_bytes(stem + '.pbtxt'))}"
        else:
            size = kb(m.fixture_bytes(first))
        out.append("| " + " | ".join([*[c.strip() for c in cells[:-1]], size]) + " |")
    return "\n" + "\n".join(out) + "\n"


def fixtures_total(m: Measure) -> str:
    total = sum(f.stat().st_size for f in m.fixture_files)
    return f"{total / 1e6:.2f} MB ({total / 2**20:.2f} MiB)"


def _op_counts(m: Measure, name: str, where: str) -> dict[str, int]:
    """Op histogram of a fixture: ``top`` = its stored top graph, ``functions`` = its library functions, ``all`` =
    the graph as graphxform loads it (functions inlined)."""
    from collections import Counter

    if where == "all":
        import graphxform

        return dict(graphxform.load(FIXTURES / name).graph.op_histogram())
    g = m.stored_graph(name)
    if where == "top":
        return dict(Counter(n.op for n in g.node))
    return dict(Counter(n.op for f in g.library.function for n in f.node_def))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def family_ops(m: Measure, arg: str) -> str:
    """``ops:FIXTURE:WHERE:Op1,Op2``: "`Op1` ×n, … and `Op2` ×m" (×1 is left out)."""
    name, where, ops = arg.split(":")
    hist = _op_counts(m, name, where)
    return _and([f"`{op}`" + (f" ×{hist.get(op, 0)}" if hist.get(op, 0) != 1 else "") for op in ops.split(",")])


def family_all_ops(m: Measure, arg: str) -> str:
    """``all-ops:FIXTURE``: "Ops (21 nodes): `Const` ×7, …": every op of the graph as loaded, most frequent first."""
    hist = _op_counts(m, arg, "all")
    ops = ", ".join(f"`{op}`" + (f" ×{n}" if n > 1 else "") for op, n in
                    sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"Ops ({sum(hist.values())} nodes): {ops}."


#: Families of blocks whose name carries the question: ``<!-- figures:nodes:keras_bn -->``.
FAMILIES: dict[str, Callable[[Measure, str], str]] = {
    "nodes": lambda m, arg: f"{m.summary(arg)['nodes_loaded']:,}",
    "top-nodes": lambda m, arg: f"{len(m.stored_graph(arg).node):,}",
    "functions": lambda m, arg: f"{len(m.stored_graph(arg).library.function):,}",
    "variable-elements": lambda m, arg: f"{m.summary(arg)['parameters']['variables']['count']:,}",
    "file-mb": lambda m, arg: f"{(FIXTURES / arg).stat().st_size / 1e6:.1f} MB",
    "variable-mb": lambda m, arg: f"{m.summary(arg)['parameters']['variables']['bytes'] / 1e6:.2f} MB",
    "ops": family_ops,
    # bench:MODEL:FIELD:FORMAT, a figure of one model's row of results.json (say which run it is from beside it)
    "bench": lambda m, arg: format(_models(m.bench)[arg.split(":")[0]][arg.split(":")[1]], arg.split(":")[2]),
    "all-ops": family_all_ops,
}


def hostile_counts(m: Measure) -> str:
    from broken_inputs import CATEGORIES, MUST_FAIL, MUST_SUCCEED

    fail_runs = sum(1 for c in MUST_FAIL for _, e in c.runs() if e == "fail")
    return (f"a corpus of {len(MUST_FAIL)} such inputs in {len(CATEGORIES)} categories, each asserted on its own "
            f"through\n  `inspect`, `optimize` and `transform` ({fail_runs} runs), and {len(MUST_SUCCEED)} odd but "
            "valid inputs")


def hostile_table(m: Measure, current: str) -> str:
    """docs/hostile.md's corpus table: the counts of each category (the descriptions are kept; a new category gets
    a row to describe)."""
    from broken_inputs import counts_by_category

    lines = current.strip("\n").splitlines()
    described = {}
    for line in lines[2:]:
        cells = line.strip().strip("|").split(" | ")
        described[cells[0].strip().strip("`")] = cells[3].strip() if len(cells) > 3 else "—"
    rows = [f"| `{cat}` | {fail} | {ok} | {described.get(cat, '— (describe this category)')} |"
            for cat, (fail, ok) in counts_by_category().items()]
    return "\n" + "\n".join([*lines[:2], *rows]) + "\n"


def _hostile() -> tuple[list, list, int, int, int]:
    from broken_inputs import MUST_FAIL, MUST_SUCCEED
    from test_hostile_inputs import SUBPROCESS_SAMPLE

    fail_runs = sum(1 for c in MUST_FAIL for _, e in c.runs() if e == "fail")
    ok_runs = sum(1 for c in MUST_FAIL for _, e in c.runs() if e == "ok")
    return MUST_FAIL, MUST_SUCCEED, fail_runs, ok_runs, len(SUBPROCESS_SAMPLE)


def hostile_totals(m: Measure) -> str:
    fail, ok, *_ = _hostile()
    return (f"**{len(fail)} broken inputs** that must fail and, in a separate list, **{len(ok)} odd but valid\n"
            "inputs**")


def quantize_accuracy(m: Measure) -> str:
    """docs/rules.md's "accuracy to expect": seeded Gaussian weights through ``quantize_weights``, run in TensorFlow.

    Max error over all outputs relative to max |output|; for weights whose output channels span 3 decades, the
    worst output column's error relative to that column's own max."""
    import numpy as np
    import tensorflow as tf
    from conftest import graph_def_of, run

    from graphxform.core.graph import Graph
    from graphxform.engine.registry import get_rule
    from graphxform.engine.runner import run_pipeline

    rng = np.random.default_rng(0)

    def err(build, x, per_column=False, **params) -> float:
        gd = graph_def_of(build)
        ref = run(gd, {"x:0": x}, ["out:0"])[0]
        g = Graph(gd, protected=("out",))
        run_pipeline(g, [get_rule("quantize_weights")(**params)])
        got = run(g, {"x:0": x}, ["out:0"])[0]
        if per_column:
            return float((np.abs(got - ref).max(axis=0) / np.abs(ref).max(axis=0)).max())
        return float(np.abs(got - ref).max() / np.abs(ref).max())

    def conv(w):
        def build():
            xp = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, w.shape[2]], name="x")
            tf.identity(tf.nn.conv2d(xp, tf.constant(w, name="w"), 1, "SAME"), name="out")
        return build

    def matmul(w):
        def build():
            xp = tf.compat.v1.placeholder(tf.float32, [None, w.shape[0]], name="x")
            tf.identity(tf.matmul(xp, tf.constant(w, name="w")), name="out")
        return build

    wc = rng.standard_normal((3, 3, 64, 128)).astype(np.float32)
    xc = rng.standard_normal((4, 8, 8, 64)).astype(np.float32)
    wm = rng.standard_normal((512, 256)).astype(np.float32)
    xm = rng.standard_normal((16, 512)).astype(np.float32)
    spread = rng.standard_normal((128, 64)).astype(np.float32) * np.logspace(-3, 0, 64).astype(np.float32)
    xs = rng.standard_normal((16, 128)).astype(np.float32)

    def pct(e: float) -> str:
        return f"{100 * e:.2g} %" if e < 1 else f"{100 * e:.0f} %"

    return (f"Conv2D 3×3×64×128 {pct(err(conv(wc), xc))}, MatMul 512×256 {pct(err(matmul(wm), xm))} (per-tensor "
            f"{pct(err(matmul(wm), xm, per_tensor=True))}); float16 {pct(err(conv(wc), xc, dtype='float16'))} "
            f"(Conv2D). With channel magnitudes spread over 3 decades (MatMul 128×64), per-channel keeps every output "
            f"column within {pct(err(matmul(spread), xs, per_column=True))} of its own scale, per-tensor loses the "
            f"small columns (up to {pct(err(matmul(spread), xs, per_column=True, per_tensor=True))})")


# ----------------------------------------------------------------------------- benchmark blocks
def _models(b: dict) -> dict[str, dict]:
    return {r["model"]: r for r in b["models"] if "skipped" not in r}


def bench_run(b: dict) -> str:
    """When, where and under what load the benchmark ran: the header every quoted figure carries."""
    dates = sorted({r.get("measured", b["date"]) for r in [*b["models"], *b.get("scaling", [])]} | {b["date"]})
    loads = [r.get("load_avg_start", r.get("load_avg")) for r in [*b["models"], *b.get("scaling", [])]]
    loads = [x for x in loads if x is not None] or [b["load_avg_start"]]
    when = dates[0] if len(dates) == 1 else f"{dates[0]} – {dates[-1].split(' ')[-1]}" \
        if dates[0][:10] == dates[-1][:10] else f"{dates[0]} – {dates[-1]}"
    cpu = b.get("cpu") or "CPU model not recorded"
    return (f"run {when} on {b['machine']} ({cpu}), TensorFlow {b['tensorflow']}, "
            f"load average {min(loads):g}–{max(loads):g}")


def bench_header(m: Measure) -> str:
    return f"the benchmark {bench_run(m.bench)}"


NAMES = {"TransformerEncoder": "Transformer encoder", "Embedding100kx64": "100k×64 embedding lookup",
         "TF1ConvNet": "TF1 convnet"}


def bench_table_readme(m: Measure) -> str:
    rows = []
    for name, r in _models(m.bench).items():
        if name == "EstimatorDNN100kx64":
            continue
        lat = r.get("latency", {})
        latency = (f"{lat['original_b1_ms']:.1f} → {lat['graphxform_b1_ms']:.1f} / {lat['int8_b1_ms']:.1f}"
                   if lat else "—")
        rows.append([NAMES.get(name, name), f"{r['nodes_in']} → {r['nodes_graphxform']} / {r['nodes_grappler']}",
                     f"{r['t_graphxform']:.2f} / {r['t_grappler']:.2f}", latency,
                     f"{r['bytes_int8'] / 2**20:.1f} / {r['bytes_graphxform'] / 2**20:.1f}", f"{r['rss_ratio']:.1f}"])
    est = _models(m.bench).get("EstimatorDNN100kx64")
    if est:
        lat = est["latency"]
        rows.append(["Estimator, 100k×64 embedding", f"{est['nodes_frozen']} frozen → {est['nodes_graphxform']} / "
                     f"{est['nodes_grappler']}", f"{est['t_graphxform']['pipeline']:.3f} / {est['t_grappler']:.3f}",
                     f"{lat['original_b1_ms']:.2f} → {lat['graphxform_b1_ms']:.2f} / {lat['int8_b1_ms']:.2f}",
                     f"{est['dir_mb_int8']:.1f} / {est['dir_mb_graphxform']:.1f} (on disk)", "—"])
    return table(["model", "nodes in → graphxform / Grappler default", "transform s graphxform / Grappler default",
                  "latency b1 orig → graphxform / int8 (ms)", "int8 MB / float MB", "peak RSS / file"], rows)


def bench_max_rel_diff(m: Measure) -> str:
    return sci(max(r["max_rel_diff"] for r in _models(m.bench).values()))


def _scaling(b: dict) -> dict[tuple[str, int], dict]:
    return {(r["shape"], r["nodes"]): r for r in b.get("scaling", [])}


def _at(b: dict, shape: str, power: int) -> dict | None:
    """The scaling row of ``shape`` with about 10**power nodes."""
    return next((r for (s, n), r in _scaling(b).items() if s == shape and round(math.log10(n)) == power), None)


def bench_scaling_sentence(m: Measure) -> str:
    parts = []
    for shape in ("fan", "chain"):
        big, mid = _at(m.bench, shape, 6), _at(m.bench, shape, 5)
        if big and mid:
            parts.append(f"1M-node {shape} {big['load_s'] + big['pipeline_s']:.0f} s ({big['us_per_node']:.0f} µs/node; "
                         f"{mid['us_per_node']:.0f} at 100k)")
    return ", ".join(parts) if parts else "not measured in this run"


def bench_gaps(m: Measure) -> str:
    gaps = []
    models = _models(m.bench)
    more = {NAMES.get(k, k): f"{r['nodes_graphxform']} vs {r['nodes_grappler']}" for k, r in models.items()
            if r.get("nodes_graphxform", 0) > r.get("nodes_grappler", 1 << 62)}
    if more:
        gaps.append("more nodes than Grappler's default on " + ", ".join(f"{k} ({v})" for k, v in more.items()))
    slow = {NAMES.get(k, k): r["ratio_vs_grappler"] for k, r in models.items()
            if k != "EstimatorDNN100kx64" and r.get("ratio_vs_grappler", 0) > 0.5}
    if slow:
        gaps.append("transform time over 0.5× Grappler's default (the target) on "
                    + ", ".join(f"{k} ({v:.2f}×)" for k, v in slow.items()))
    for shape in ("chain", "fan"):
        big = _at(m.bench, shape, 6)
        if big and big["load_s"] + big["pipeline_s"] >= 30:
            gaps.append(f"the 1M-node {shape} takes {big['load_s'] + big['pipeline_s']:.0f} s (target: under 30)")
        mid = _at(m.bench, shape, 5)
        if big and mid and big["us_per_node"] > 1.2 * mid["us_per_node"]:
            gaps.append(f"time per node of the 1M-node {shape} is {big['us_per_node'] / mid['us_per_node']:.2f}× "
                        "that at 100k (target: within 1.2×)")
    for key, how in (("rss_ratio", "through the API"), ("rss_ratio_cli", "through the CLI (.pb → .pb)"),
                     ("rss_ratio_prewarmed", "through the API with a TF session run first (the measure before "
                      "2026-12-07)")):
        over = {NAMES.get(k, k): r[key] for k, r in _models(m.bench).items() if r.get(key) is not None and r[key] > 2.5}
        if over:
            lo, hi = f"{min(over.values()):.1f}", f"{max(over.values()):.1f}"
            gaps.append(f"peak RSS {how} is over 2.5× the file (the target) on {', '.join(over)} "
                        f"({lo if lo == hi else f'{lo}–{hi}'}×)")
    return "; ".join(gaps) if gaps else "none"


def bench_resnet50_int8(m: Measure) -> str:
    r = _models(m.bench).get("ResNet50", {})
    if "latency_ratio_int8_b1" not in r:
        return "not measured in the last benchmark"
    return (f"{r['latency_ratio_int8_b1']:.2f}× the original float graph (benchmark {r.get('measured')}, "
            f"{m.bench['machine']}, load average {r.get('load_avg_start')})")


def bench_embedding_lookup(m: Measure) -> str:
    r = _models(m.bench).get("Embedding100kx64", {})
    if "latency_ratio_int8_b1" not in r:
        return "not measured in the last benchmark"
    return (f"{r['latency_ratio_int8_b1']:.2f}× the float32 one at batch 1 on the benchmark's 100k×64 table "
            f"({r.get('measured')}, {m.bench['machine']})")


def bench_targets(m: Measure) -> str:
    """docs/bench.md's targets (those of the benchmark's issue, and README's int8 latency claim), each with what the
    last benchmark measured."""
    models = {k: v for k, v in _models(m.bench).items() if k != "EstimatorDNN100kx64"}
    est = _models(m.bench).get("EstimatorDNN100kx64")
    rows = []

    def row(target: str, values: dict[str, float], limit: float, fmt: str = ".2f") -> None:
        if not values:
            return
        over = [k for k, v in values.items() if v > limit]
        verdict = "yes" if not over else "no" if len(over) == len(values) else "no: " + ", ".join(over)
        rows.append([target, ", ".join(f"{k} {sci(v) if fmt == 'sci' else format(v, fmt)}" for k, v in values.items()),
                     verdict])

    nodes = {NAMES.get(k, k): r["nodes_ratio_vs_grappler"] for k, r in models.items()}
    if est:
        nodes["Estimator"] = est["nodes_graphxform"] / est["nodes_grappler"]
    row("nodes ≤ Grappler default, every model (ratio)", nodes, 1.0)
    times = {NAMES.get(k, k): r["ratio_vs_grappler"] for k, r in models.items()}
    if est:
        times["Estimator pipeline"] = est["t_graphxform"]["pipeline"] / est["t_grappler"]
    row("transform time ≤ 0.5× Grappler default, every model", times, 0.5)
    diffs = {NAMES.get(k, k): r["max_rel_diff"] for k, r in models.items()}
    if est:
        diffs["Estimator"] = est["max_rel_diff"]
    row("outputs within rtol 1e-5 (max rel diff)", diffs, 1e-5, "sci")
    per_node, wall = {}, {}
    for shape in ("chain", "fan"):
        big, mid = _at(m.bench, shape, 6), _at(m.bench, shape, 5)
        if big:
            wall[shape] = big["load_s"] + big["pipeline_s"]
        if big and mid:
            per_node[shape] = big["us_per_node"] / mid["us_per_node"]
    row("1M-node pipeline < 30 s (s)", wall, 30, ".1f")
    row("1M µs/node ≤ 1.2× 100k", per_node, 1.2)
    row("peak RSS ≤ 2.5× file above the TF import", {NAMES.get(k, k): r["rss_ratio"] for k, r in models.items()
                                                      if r.get("rss_ratio") is not None}, 2.5)
    row("the same with a TF session run first (the measure before 2026-12-07)",
        {NAMES.get(k, k): r["rss_ratio_prewarmed"] for k, r in models.items()
         if r.get("rss_ratio_prewarmed") is not None}, 2.5)
    lat = {NAMES.get(k, k): r["latency_ratio_int8_b1"] for k, r in models.items() if "latency_ratio_int8_b1" in r}
    row("int8 latency b1 ≤ 1.0× original (README)", lat, 1.0)
    return table(["target", "measured", "met?"], rows)


def bench_scaling_table(m: Measure) -> str:
    rows = [[r["shape"], f"{r['nodes']:,}", f"{r['nodes_after']:,}", f"{r['load_s']:.1f}", f"{r['pipeline_s']:.1f}",
             f"{r['us_per_node']:.1f}", f"{r['cpu_us_per_node']:.1f}",
             "—" if r.get("sys_s") is None else f"{r['sys_s']:.1f}", f"{r['load_avg']:g}"]
            for r in sorted(m.bench.get("scaling", []), key=lambda r: (r["shape"], r["nodes"]))]
    return table(["graph", "nodes", "nodes after", "Graph build s", "pipeline s", "µs/node (wall)", "µs/node (CPU)",
                  "of the CPU: system s (page faults)", "load avg"], rows)


def bench_scaling_steps(m: Measure) -> str:
    from tests.bench.run_bench import scaling_steps, size_label

    steps = scaling_steps(m.bench.get("scaling", []))
    if not steps:
        return "not measured in this run"
    return table(["graph", "step", *(f"{size_label(n)} s" for n in steps[0]["sizes"]), "growth of µs/node"],
                 [[s["shape"], s["step"], *(f"{v:.2f}" for v in s["seconds"]), f"{s['growth']:.2f}"] for s in steps])


def bench_probes(m: Measure) -> str:
    """What one probe into a name-keyed dict costs at 100k and 1M entries (``tests/bench/probes.py``)."""
    from tests.bench.run_bench import size_label

    rows = {size_label(p["entries"]): p for p in m.bench.get("probes", [])}
    mid, big = rows.get("100k"), rows.get("1M")
    if not (mid and big):
        return "not measured in this run"
    return (f"{mid['ns_same']:.0f} ns at 100k entries and {big['ns_same']:.0f} ns at 1M "
            f"({big['ns_same'] / mid['ns_same']:.1f}×) with the table's own keys in order, "
            f"{mid['ns_equal']:.0f} and {big['ns_equal']:.0f} ns ({big['ns_equal'] / mid['ns_equal']:.1f}×) with equal "
            f"strings as parsed input names are")


def results_md(m: Measure) -> str:
    from tests.bench.run_bench import markdown

    return markdown(m.bench)


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Block:
    name: str
    render: Callable
    #: "fixtures" (measured here), "corpus" (counted), "bench" (quoted from results.json)
    source: str
    #: the renderer also receives the block's current text (it keeps the columns that are not figures)
    keeps_text: bool = False


BLOCKS: dict[str, Block] = {b.name: b for b in [
    Block("optimize-table", optimize_table_readme, "fixtures"),
    Block("optimize-table-bytes", optimize_table_export, "fixtures"),
    Block("servable-cases", servable_cases, "fixtures"),
    Block("fixture-sizes", fixture_sizes, "fixtures", keeps_text=True),
    Block("fixtures-total", fixtures_total, "fixtures"),
    Block("hostile-counts", hostile_counts, "corpus"),
    Block("hostile-table", hostile_table, "corpus", keeps_text=True),
    Block("hostile-totals", hostile_totals, "corpus"),
    Block("hostile-fail-runs", lambda m: f"{_hostile()[2]} runs in all", "corpus"),
    Block("hostile-ok-runs", lambda m: f"those {_hostile()[3]} runs must exit 0", "corpus"),
    Block("hostile-sample", lambda m: f"{_hostile()[4]} cases runs through the installed", "corpus"),
    Block("quantize-accuracy", quantize_accuracy, "fixtures"),
    Block("bench-header", bench_header, "bench"),
    Block("bench-table", bench_table_readme, "bench"),
    Block("bench-max-rel-diff", bench_max_rel_diff, "bench"),
    Block("bench-scaling", bench_scaling_sentence, "bench"),
    Block("bench-gaps", bench_gaps, "bench"),
    Block("bench-targets", bench_targets, "bench"),
    Block("bench-scaling-table", bench_scaling_table, "bench"),
    Block("bench-scaling-steps", bench_scaling_steps, "bench"),
    Block("bench-probes", bench_probes, "bench"),
    Block("bench-resnet50-int8", bench_resnet50_int8, "bench"),
    Block("bench-embedding-lookup", bench_embedding_lookup, "bench"),
]}


def block_for(name: str) -> Block | None:
    """The registered block, or one of a family (``ops:keras_bn:top:Conv2D``); None when unknown."""
    if name in BLOCKS:
        return BLOCKS[name]
    family, _, arg = name.partition(":")
    if family in FAMILIES and arg:
        return Block(name, functools.partial(FAMILIES[family], arg=arg), "bench" if family == "bench" else "fixtures")
    return None


def published() -> dict[str, list[tuple[Path, str]]]:
    """{block name: [(file, its current text), …]} for every marked block of the documents."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for path in documents():
        for mt in MARKER.finditer(path.read_text()):
            found.setdefault(mt.group(1), []).append((path, mt.group(2)))
    return found


def marker_problems() -> list[str]:
    """Unbalanced markers, unknown names, registered blocks that appear nowhere."""
    problems = []
    seen = set()
    for path in documents():
        text = path.read_text()
        stack: list[str] = []
        for mt in OPEN_MARKER.finditer(text):
            closing, name = mt.group(1) == "/", mt.group(2)
            if not closing:
                if stack:
                    problems.append(f"{path.relative_to(ROOT)}: figures:{name} opens inside figures:{stack[-1]}")
                stack.append(name)
            elif not stack or stack.pop() != name:
                problems.append(f"{path.relative_to(ROOT)}: /figures:{name} closes no open block")
            seen.add(name)
            if block_for(name) is None:
                problems.append(f"{path.relative_to(ROOT)}: unknown block figures:{name} (add it to tests/figures.py)")
        problems += [f"{path.relative_to(ROOT)}: figures:{n} is never closed" for n in stack]
    problems += [f"figures:{n} is registered but appears in no document" for n in BLOCKS if n not in seen]
    return problems


def render(block: Block, m: Measure, current: str) -> str:
    return block.render(m, current) if block.keeps_text else block.render(m)


def same_figures(published_text: str, measured: str) -> bool:
    """Equal, except that float-rounding figures (``1.2e-3``) may differ by :data:`ROUNDING_FACTOR`."""
    if published_text == measured:
        return True
    if SCI.sub("#", published_text) != SCI.sub("#", measured):
        return False
    for a, b in zip(SCI.findall(published_text), SCI.findall(measured)):
        x, y = float(a), float(b)
        if x == y:
            continue
        if x <= 0 or y <= 0 or abs(math.log(x / y)) > math.log(ROUNDING_FACTOR):
            return False
    return True


def disagreements(m: Measure, sources: set[str] | None = None) -> list[str]:
    """A message with a diff for every published block (of ``sources``) that disagrees with the measurement."""
    out = []
    for name, places in published().items():
        block = block_for(name)
        if block is None or (sources is not None and block.source not in sources):
            continue
        for path, current in places:
            want = render(block, m, current)
            if not same_figures(current, want):
                diff = "\n".join(difflib.unified_diff(current.splitlines(), want.splitlines(), "published",
                                                      "measured", lineterm=""))
                out.append(f"{path.relative_to(ROOT)}: block figures:{name} disagrees with the measurement "
                           f"(run `{UPDATE_COMMAND}`):\n{diff}")
    return out


def update(m: Measure) -> list[Path]:
    """Rewrite every block from the measurement; the files changed."""
    changed = []
    for path in documents():
        text = path.read_text()

        def repl(mt: re.Match) -> str:
            block = block_for(mt.group(1))
            if block is None:
                return mt.group(0)
            return f"<!-- figures:{block.name} -->{render(block, m, mt.group(2))}<!-- /figures:{block.name} -->"

        new = MARKER.sub(repl, text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    md = results_md(m)
    if RESULTS_MD.read_text() != md:
        RESULTS_MD.write_text(md)
        changed.append(RESULTS_MD)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--update", action="store_true", help="rewrite the blocks instead of checking them")
    p.add_argument("--no-idioms", action="store_true",
                   help="with --update: leave the README's TF2-idioms table (tests/test_tf2_idioms.py) alone")
    args = p.parse_args(argv)
    problems = marker_problems()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    m = Measure()
    try:
        return _run(args, m)
    finally:
        if "workdir" in m.__dict__ and m._workdir is None:
            shutil.rmtree(m.workdir, ignore_errors=True)


def _run(args: argparse.Namespace, m: Measure) -> int:
    if args.update:
        for path in update(m):
            print(f"updated {path.relative_to(ROOT)}")
        if not args.no_idioms:
            env = {**os.environ, "GRAPHXFORM_UPDATE_README": "1"}
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                   str(TESTS / "test_tf2_idioms.py"), "-k", "test_idiom_row"], cwd=ROOT, env=env,
                                  check=False)
            if proc.returncode:
                return proc.returncode
        return 0
    bad = disagreements(m)
    if RESULTS_MD.read_text() != results_md(m):
        bad.append(f"tests/bench/RESULTS.md is not what results.json gives (run `{UPDATE_COMMAND}`)")
    print("\n\n".join(bad) or "every published figure agrees with the measurement")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
