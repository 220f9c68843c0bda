"""Benchmark: ``graphxform batch`` over a fleet of fixtures, first run and re-run, with both runners.

Not part of the test run (``tests/test_batch.py`` checks statuses, report and skipping, never times). Lays out
under ``--workdir`` a fleet of fixtures as users hold them — ``estimator_dnn`` and ``tf2_lookup`` as TF Serving
versions ``a/1`` and ``b/1``, ``estimator_linear``, ``keras_bn`` — and a second fleet with a broken model
added. For each runner (``local --jobs 2``, ``beam`` on the DirectRunner) it runs, each as its own
``graphxform batch … --json`` command (wall time of the command, TensorFlow's start included):

1. the fleet into a fresh OUTDIR, then again (every model skipped);
2. the fleet with the broken model into another fresh OUTDIR, then again (the broken model is tried again).

Every run verifies its outputs in the three loaders (``optimize``'s default). Prints a Markdown table and writes
``batch.json`` beside this file, with the date, the machine and its load average.

    python -m tests.bench.bench_batch --workdir /tmp/gx_batch
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "fixtures"
FLEET = {"a/1": "estimator_dnn", "b/1": "tf2_lookup", "estimator_linear": "estimator_linear", "keras_bn": "keras_bn"}


def make_fleets(workdir: Path) -> tuple[Path, Path]:
    fleet, broken = workdir / "fleet", workdir / "fleet_broken"
    for root in (fleet, broken):
        if root.exists():
            shutil.rmtree(root)
        for where, fixture in FLEET.items():
            shutil.copytree(FIXTURES / fixture, root / where)
    (broken / "broken").mkdir()
    (broken / "broken" / "saved_model.pb").write_bytes(b"\x08\x01\x12\xff not a SavedModel")
    return fleet, broken


def run_batch(models: Path, out: Path, runner: str) -> dict:
    exe = Path(sys.executable).with_name("graphxform")
    cmd = [str(exe), "batch", str(models), "--out", str(out), "--runner", runner, "--json"]
    if runner == "local":
        cmd += ["--jobs", "2"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - t0
    data = json.loads(p.stdout) if p.stdout.strip() else {}
    return {"rc": p.returncode, "seconds": round(seconds, 2), "counts": data.get("counts"),
            "verified": sorted({ld for m in data.get("models", []) if m.get("verification")
                                for ld, ok in m["verification"]["loaders"].items() if ok}),
            "error": None if data else p.stderr[-2000:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--runners", default="local,beam")
    ns = ap.parse_args()
    ns.workdir.mkdir(parents=True, exist_ok=True)
    fleet, broken = make_fleets(ns.workdir)
    import tensorflow as tf

    results: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
                     "tensorflow": tf.__version__, "load_average_start": round(os.getloadavg()[0], 2),
                     "fleet": FLEET, "runs": {}}
    for runner in ns.runners.split(","):
        for label, models in (("fleet", fleet), ("fleet + broken", broken)):
            out = ns.workdir / f"out_{runner}_{label.replace(' + ', '_')}"
            if out.exists():
                shutil.rmtree(out)
            first = run_batch(models, out, runner)
            again = run_batch(models, out, runner)
            results["runs"][f"{runner}, {label}"] = {"first": first, "rerun": again}
            print(json.dumps({f"{runner}, {label}": results["runs"][f"{runner}, {label}"]}), flush=True)
            shutil.rmtree(out, ignore_errors=True)
    results["load_average_end"] = round(os.getloadavg()[0], 2)
    shutil.rmtree(fleet, ignore_errors=True)
    shutil.rmtree(broken, ignore_errors=True)
    (HERE / "batch.json").write_text(json.dumps(results, indent=1) + "\n")

    def cell(r: dict) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in (r["counts"] or {}).items())
        return f"{r['seconds']:.1f} s ({counts}; exit {r['rc']})"

    print(f"\n{results['date']}, {results['machine']}, TensorFlow {results['tensorflow']}, load average "
          f"{results['load_average_start']} → {results['load_average_end']}\n")
    print("| runner | fleet | first run | re-run |")
    print("|---|---|---|---|")
    for label, r in results["runs"].items():
        runner, fleet_label = label.split(", ", 1)
        print(f"| {runner} | {fleet_label} | {cell(r['first'])} | {cell(r['rerun'])} |")


if __name__ == "__main__":
    main()
