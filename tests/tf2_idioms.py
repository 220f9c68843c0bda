"""Measuring a TF2 export idiom end to end: load, freeze, optimize (float, int8), then every loader on the output.

Shared by ``test_tf2_idioms.py`` (the README table) and ``test_tf2_keras_apps.py``.
The reference is the input as TF2 users load it (``tf.saved_model.load``:
variables bound through the object graph); every output is checked in
TensorFlow's C++ loader (TF Serving's ``LoadSavedModel``), ``tf.saved_model.load``
and the TF1 loader, with the tolerance relative to the output's scale
(:func:`graphxform.jobs.verify.compare_arrays`).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RTOL = 1e-5
ATOL = 1e-6


@dataclass
class Measurement:
    """What one idiom did; ``cells`` are the README table's status cells (True = green)."""

    fixture: str
    cells: dict[str, bool] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    max_rel: dict[str, float] = field(default_factory=dict)
    input_cpp: bool | None = None  # the input itself in the C++ loader (TF Serving)

    def failures(self) -> list[str]:
        return [f"{k}: {self.notes.get(k, 'failed')}" for k, ok in self.cells.items() if not ok]


def run_cpp(path: Path, feeds: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Every signature of ``path`` run in TensorFlow's C++ SavedModel loader (TF Serving's)."""
    from graphxform.tf.capi import CSavedModelSession

    out: dict[str, dict[str, np.ndarray]] = {}
    with CSavedModelSession(path) as s:
        for key, values in feeds.items():
            sd = s.meta_graph.signature_def[key]
            names = sorted(sd.outputs)
            got = s.run({sd.inputs[k].name: (v, sd.inputs[k].dtype) for k, v in values.items()},
                        [sd.outputs[o].name for o in names])
            out[key] = dict(zip(names, got))
    return out


def run_runner(runner: Any, feeds: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    try:
        return {key: runner.run(key, values) for key, values in feeds.items()}
    finally:
        runner.close()


def compare(ref: dict, got: dict, *, lossy: bool = False, rtol: float = RTOL) -> tuple[bool, float, str]:
    """(all within tolerance, max relative difference, first failure) over every signature output."""
    from graphxform.jobs.compare import compare_arrays

    worst, first = 0.0, ""
    ok = set(ref) == set(got)
    if not ok:
        first = f"signatures {sorted(got)} != {sorted(ref)}"
    for key, outs in ref.items():
        for name, value in outs.items():
            if name not in got.get(key, {}):
                ok, first = False, first or f"{key}/{name} missing"
                continue
            c = compare_arrays(key, name, value, got[key][name], rtol=rtol, atol=ATOL, lossy=lossy)
            if np.asarray(value).dtype.kind in "fc":  # (a class id off by 3 is no "relative difference")
                worst = max(worst, c.max_rel_diff or 0.0)
            if (lossy and c.broken) or (not lossy and not c.within_tolerance):
                ok, first = False, first or f"{key}/{name}: {c.note or f'max rel diff {c.max_rel_diff:.3g}'}"
    return ok, worst, first


def measure(fixture_dir: Path, samples: dict[str, dict[str, np.ndarray]], work: Path | None = None, *,
            rtol: float = RTOL) -> Measurement:
    """Run ``fixture_dir`` through graphxform and every loader; see the module docstring.

    ``rtol`` is the float tolerance (relative to each output's scale), for optimize's verification and for
    every loader's outputs."""
    import graphxform
    from graphxform.jobs.optimize import optimize
    from graphxform.model.export import dir_size
    from graphxform.tf.runners import SavedModelRunner, TF2SavedModelRunner

    m = Measurement(fixture_dir.name)
    own_tmp = work is None
    work = Path(tempfile.mkdtemp(prefix="gx_idiom_")) if work is None else work
    try:
        def step(cell: str, fn: Any) -> Any:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - recorded as a red cell with the reason
                m.cells[cell], m.notes[cell] = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                return None
            m.cells.setdefault(cell, True)
            return result

        model = step("loads", lambda: graphxform.load(fixture_dir))
        if model is None:
            return m
        m.nodes["loaded"] = len(model.graph)
        frozen = step("freezes", lambda: model.copy().freeze())
        if frozen is not None:
            m.nodes["frozen"] = len(frozen.graph)
        m.sizes["input"] = dir_size(fixture_dir)
        ref = step("reference", lambda: run_runner(TF2SavedModelRunner(fixture_dir), samples))
        if ref is None:
            return m
        del m.cells["reference"]
        try:
            m.input_cpp = compare(ref, run_cpp(fixture_dir, samples))[0]
        except Exception:  # noqa: BLE001 - the input not loading in the C++ loader is what the column shows
            m.input_cpp = False
        for mode in ("none", "int8"):
            label = "optimize float" if mode == "none" else "optimize int8"
            out = work / f"{fixture_dir.name}_{mode}"
            report = step(label, lambda mode=mode, out=out: optimize(fixture_dir, out, quantize=mode, force=True,
                                                                      rtol=rtol,
                                                                      inputs={f"{k}/{i}": v for k, d in
                                                                              samples.items() for i, v in d.items()}))
            if report is None:
                continue
            if not report.ok:
                m.cells[label], m.notes[label] = False, report.verification.failure_message()
            key = "float" if mode == "none" else "int8"
            m.nodes[key] = report.nodes_after
            m.sizes[key] = dir_size(out)
            lossy = mode != "none"
            loaders = {
                "C++ loader": lambda out=out: run_cpp(out, samples),
                "tf.saved_model.load": lambda out=out: run_runner(TF2SavedModelRunner(out), samples),
                "TF1 loader": lambda out=out: run_runner(SavedModelRunner(out), samples),
            }
            for cell, run in loaders.items():
                got = step(cell, run)
                if got is None:
                    if not lossy:
                        m.cells["within tolerance"], m.notes["within tolerance"] = False, f"{cell} did not run"
                    continue
                ok, worst, why = compare(ref, got, lossy=lossy, rtol=rtol)
                m.max_rel[f"{key} {cell}"] = worst
                if not ok:
                    m.cells[cell], m.notes[cell] = False, f"{key} output: {why}"
                if not lossy:
                    m.cells.setdefault("within tolerance", True)
                    if not ok:
                        m.cells["within tolerance"], m.notes["within tolerance"] = False, f"{cell}: {why}"
        return m
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
