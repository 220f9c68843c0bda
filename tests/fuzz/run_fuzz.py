"""Long fuzzing of the loader and the GTT parser; prints executions and crashes.

    python -m tests.fuzz.run_fuzz --seconds 600                       # hypothesis, every target, round robin
    python -m tests.fuzz.run_fuzz --seconds 300 --targets load_structured,gtt_parse
    python -m tests.fuzz.run_fuzz --engine atheris --seconds 600      # coverage-guided (pip install atheris)

Run from the repository root. A *crash* is any exception other than ``GraphxformError`` (or a failed round-trip
assertion of the GTT parser); each distinct one (by exception type and innermost graphxform frame) is printed
once with the smallest failing example hypothesis found. A hard crash of the process (a segfault in C++) is
reported by faulthandler on stderr. Exit code 1 when anything crashed.
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .targets import TARGETS, WORK, available


def _signature(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "graphxform" in f.filename
              and "/tests/" not in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def _fuzz_test(target, st: dict, chunk: int):  # type: ignore[no-untyped-def]
    """A hypothesis test running ``target`` on ``chunk`` examples, counting executions and outcomes in ``st``."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=chunk, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              print_blob=False, report_multiple_bugs=False)
    @given(target.strategy())
    def fuzz(arg):  # type: ignore[no-untyped-def]
        st["executions"] += 1
        outcome = target.run(arg)
        st["outcomes"][outcome] = st["outcomes"].get(outcome, 0) + 1

    return fuzz


def run_hypothesis(names: list[str], seconds: float, chunk: int, seed: int | None) -> int:
    from hypothesis import seed as hyp_seed

    stats = {n: {"executions": 0, "outcomes": {}, "chunks": 0} for n in names}
    crashes: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    round_no = 0
    while time.monotonic() < deadline:
        for name in names:
            if time.monotonic() >= deadline:
                break
            target, st = TARGETS[name], stats[name]

            fuzz = _fuzz_test(target, st, chunk)
            if seed is not None:
                fuzz = hyp_seed(seed * 100003 + round_no)(fuzz)
            try:
                fuzz()
            except Exception as exc:  # noqa: BLE001 - a crash: record it, keep fuzzing
                sig = f"{name}: {_signature(exc)}"
                if sig not in crashes:
                    text = "".join(traceback.format_exception(exc))
                    crashes[sig] = text[-6000:]
                    print(f"\nCRASH {sig}\n{text[-6000:]}", file=sys.stderr, flush=True)
            st["chunks"] += 1
        round_no += 1
        left = max(0.0, deadline - time.monotonic())
        print(f"round {round_no}: " + ", ".join(f"{n} {s['executions']}" for n, s in stats.items())
              + f" executions; {len(crashes)} crashes; {left:.0f} s left", flush=True)
    total = sum(s["executions"] for s in stats.values())
    print(f"\n== {total} executions in {seconds:.0f} s, {len(crashes)} distinct crashes")
    for n, s in stats.items():
        print(f"  {n:<16} {s['executions']:>7} executions  {s['outcomes']}")
    for sig in crashes:
        print(f"  CRASH {sig}")
    return 1 if crashes else 0


def run_atheris(seconds: float) -> int:
    """Coverage-guided fuzzing of the loader on raw bytes (first byte picks the file suffix)."""
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris); use --engine hypothesis", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["graphxform"]):
        import graphxform.model.integrity
        import graphxform.model.loader
        import graphxform.model.tf2_flatten  # noqa: F401
    from .targets import FIXTURES, SUFFIXES, run_load_bytes

    corpus = WORK.root / "atheris_corpus"
    corpus.mkdir(exist_ok=True)
    for i, name in enumerate(("tf1_frozen_bn.pb", "tf1_frozen_bn.pbtxt", "tf2_lookup/saved_model.pb",
                              "estimator_linear/saved_model.pb")):
        src = FIXTURES / name
        if src.is_file():
            (corpus / f"seed{i}").write_bytes(bytes([0 if name.endswith(".pb") else 1]) + src.read_bytes())

    def one_input(data: bytes) -> None:
        if not data:
            return
        run_load_bytes((data[1:], SUFFIXES[data[0] % len(SUFFIXES)]))

    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds)}", "-print_final_stats=1", "-rss_limit_mb=4096",
                   "-max_len=200000", str(corpus)], one_input)
    atheris.Fuzz()
    return 0  # pragma: no cover - libFuzzer exits the process itself


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600, help="total fuzzing time (default 600)")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma separated, of: {', '.join(TARGETS)}")
    ap.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    ap.add_argument("--chunk", type=int, default=300, help="hypothesis examples per target per round")
    ap.add_argument("--seed", type=int, default=None, help="seed the hypothesis rounds (reproducible runs)")
    args = ap.parse_args(argv)
    faulthandler.enable()
    logging.getLogger("graphxform").setLevel(logging.CRITICAL)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        if args.engine == "atheris":
            return run_atheris(args.seconds)
        names = [n.strip() for n in args.targets.split(",") if n.strip()]
        unknown = [n for n in names if n not in TARGETS]
        if unknown:
            ap.error(f"unknown targets {unknown}; choose from {', '.join(TARGETS)}")
        names = [n for n in names if available(n) or print(f"skipping {n}: fixtures missing") is not None]
        return run_hypothesis(names, args.seconds, args.chunk, args.seed)
    finally:
        WORK.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
