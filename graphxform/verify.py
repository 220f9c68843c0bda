"""``verify``: run two models on the same inputs and compare every signature output.

Each model runs in TensorFlow: a SavedModel directory through the TF1
SavedModel loader in a session (variables restored, init op run, assets
fed — exactly what serving does), a :class:`~graphxform.model.Model` or a
``.pb``/``.pbtxt`` through :mod:`graphxform.tfrun` (frozen first if it keeps
variables).

Inputs come from an ``.npz`` file (keys ``"<signature>/<input>"``, or a plain
``"<input>"`` applied to every signature that has that input), from a
TFRecord file of serialized ``tf.Example`` s (fed to every input that the
graph parses as examples), or are synthesized (:mod:`graphxform.synth`).

Per signature and output the report gives the max absolute difference, the
max relative difference ``max|a - b| / (max|b| + atol)`` (``b`` the reference:
relative to the output's scale, as float rounding errors are), and,
for classifier outputs (``classes``, ``class_ids``, ``probabilities``,
``scores``, ``logits``, ``logistic``, or any float output that looks like
probabilities), the rate at which both models pick the same class.

Two modes:

- exact (default): an output passes when ``|a - b| <= atol + rtol * max|b|``
  everywhere. The tolerance scales with the output's largest magnitude, not
  each element's: folding a batch norm into conv weights changes the order of
  float32 rounding, so an element near zero in an output of magnitude 10
  carries an error of about 10 ulp(10), far above ``rtol * |b|`` for that
  element. Strings and integers must be equal.
- lossy (quantized models): numeric differences are reported, not failed.
  Only clearly broken outputs fail: shape or dtype changed, NaN/Inf that the
  reference does not have, relative L2 error ``‖a - b‖ / ‖b‖`` above
  :data:`BROKEN_REL_L2`, or class/row agreement below :data:`BROKEN_AGREEMENT`.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphxform.errors import GraphxformError, ModelLoadError, SignatureError, VerificationError, tf_error_summary
from graphxform.graph import parse_input

if TYPE_CHECKING:  # pragma: no cover
    from graphxform.model import Model

log = logging.getLogger(__name__)

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6
BROKEN_REL_L2 = 0.5
BROKEN_AGREEMENT = 0.5
CLASS_OUTPUT_NAMES = frozenset({"classes", "class_ids", "probabilities", "scores", "logits", "logistic",
                                "all_class_ids", "all_classes", "predictions", "class"})
INIT_OP_SIGNATURE_KEY = "__saved_model_init_op"


# --------------------------------------------------------------------------- report
@dataclass
class OutputComparison:
    """How one output of one signature compares between the reference and the candidate."""

    signature: str
    output: str
    dtype: str
    shape: list[int]
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    rel_l2: float | None = None
    mismatches: int = 0
    size: int = 0
    class_agreement: float | None = None
    within_tolerance: bool = True
    broken: bool = False
    note: str = ""
    loader: str = ""  # which of TensorFlow's loaders ran the candidate (graphxform.consumers.LOADER_KEYS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    """All comparisons of a verification run; ``ok`` tells whether it passed in its mode."""

    reference: str
    candidate: str
    rtol: float
    atol: float
    lossy: bool
    inputs_source: str
    outputs: list[OutputComparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    batch: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: One entry per loader that ran the candidate (graphxform.consumers.LoaderResult).
    loaders: list[Any] = field(default_factory=list)
    #: Signatures a loader lists for the candidate that the reference does not have.
    extra: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[OutputComparison]:
        if self.lossy:
            return [c for c in self.outputs if c.broken]
        return [c for c in self.outputs if not c.within_tolerance or c.broken]

    @property
    def refused(self) -> list[Any]:
        """The loaders that refused the candidate (or failed running one of its signatures)."""
        return [r for r in self.loaders if r.error]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.failures and not self.refused and not self.extra

    def loader_summary(self) -> list[dict[str, Any]]:
        """Per loader: loaded or not, TensorFlow's message, outputs compared and their largest differences."""
        rows = []
        for r in self.loaders:
            mine = [c for c in self.outputs if c.loader == r.key]
            abs_ = [c.max_abs_diff for c in mine if c.max_abs_diff is not None]
            rel = [c.max_rel_diff for c in mine if c.max_rel_diff is not None]
            bad = [c for c in mine if c.broken or (not self.lossy and not c.within_tolerance)]
            rows.append({**r.to_dict(), "outputs": len(mine), "outputs_ok": len(mine) - len(bad),
                         "max_abs_diff": max(abs_) if abs_ else None, "max_rel_diff": max(rel) if rel else None,
                         "ok": not r.error and not bad})
        return rows

    @property
    def max_abs_diff(self) -> float:
        vals = [c.max_abs_diff for c in self.outputs if c.max_abs_diff is not None]
        return max(vals) if vals else 0.0

    @property
    def max_rel_diff(self) -> float:
        vals = [c.max_rel_diff for c in self.outputs if c.max_rel_diff is not None]
        return max(vals) if vals else 0.0

    @property
    def min_class_agreement(self) -> float | None:
        vals = [c.class_agreement for c in self.outputs if c.class_agreement is not None]
        return min(vals) if vals else None

    def summary(self) -> str:
        n_out = len({(c.signature, c.output) for c in self.outputs})
        loaders = [r.key for r in self.loaders if not r.error]
        parts = [f"{n_out} outputs of {len({c.signature for c in self.outputs})} signatures"
                 + (f" × {len(loaders)} loaders ({', '.join(loaders)})" if self.loaders else ""),
                 f"max abs diff {self.max_abs_diff:.3g}", f"max rel diff {self.max_rel_diff:.3g}"]
        if self.min_class_agreement is not None:
            parts.append(f"class agreement ≥ {100 * self.min_class_agreement:.1f}%")
        return ", ".join(parts)

    def failure_message(self) -> str:
        what = [f"{r.description} failed: {r.error}" for r in self.refused]
        what.extend(self.extra)
        what.extend(self.missing)
        grouped: dict[tuple[str, str, str], list[str]] = {}  # the same failure in several loaders: said once
        for c in self.failures:
            detail = c.note or (f"max abs diff {c.max_abs_diff:.3g}, max rel diff {c.max_rel_diff:.3g}"
                                if c.max_abs_diff is not None else f"{c.mismatches}/{c.size} values differ")
            grouped.setdefault((c.signature, c.output, detail), []).append(c.loader)
        n_loaders = len([r for r in self.loaders if not r.error])
        for (sig, out, detail), names in grouped.items():
            where = f" [{', '.join(names)}]" if any(names) and len(names) < max(n_loaders, 2) else ""
            what.append(f"{sig}/{out}{where}: {detail}")
        mode = "lossy checks" if self.lossy else f"rtol={self.rtol:g}, atol={self.atol:g}"
        return (f"{self.candidate} disagrees with {self.reference} ({mode}): " + "; ".join(what[:8])
                + (f"; … {len(what) - 8} more" if len(what) > 8 else ""))

    def raise_for_failure(self) -> None:
        """Raise :class:`VerificationError` unless the report passed."""
        if not self.ok:
            raise VerificationError(self.failure_message())

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "ok": self.ok,
            "mode": "lossy" if self.lossy else "exact",
            "rtol": self.rtol,
            "atol": self.atol,
            "inputs": self.inputs_source,
            "batch": self.batch,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "min_class_agreement": self.min_class_agreement,
            "missing": self.missing,
            "extra": self.extra,
            "loaders": self.loader_summary(),
            "outputs": [c.to_dict() for c in self.outputs],
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- comparing arrays
def _is_class_output(name: str, ref: np.ndarray) -> bool:
    if name.lower() in CLASS_OUTPUT_NAMES:
        return True
    if ref.dtype.kind == "f" and ref.ndim == 2 and ref.shape[1] >= 2 and ref.size:
        finite = np.isfinite(ref).all()
        if finite and ref.min() >= 0 and ref.max() <= 1 and np.allclose(ref.sum(axis=1), 1.0, atol=1e-3):
            return True  # looks like softmax probabilities
    return False


def _class_agreement(name: str, ref: np.ndarray, got: np.ndarray) -> float | None:
    if ref.size == 0:
        return None
    if ref.dtype.kind == "f":
        if ref.ndim >= 2 and ref.shape[-1] >= 2:
            return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(got, axis=-1)))
        threshold = 0.0 if "logit" in name.lower() else 0.5
        return float(np.mean((ref > threshold) == (got > threshold)))
    rows_ref = ref.reshape(ref.shape[0], -1) if ref.ndim >= 1 else ref.reshape(1, -1)
    rows_got = got.reshape(rows_ref.shape)
    return float(np.mean(np.all(rows_ref == rows_got, axis=1)))


def _row_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    if ref.size == 0:
        return 1.0
    r = ref.reshape(ref.shape[0], -1) if ref.ndim >= 1 else ref.reshape(1, -1)
    g = got.reshape(r.shape)
    return float(np.mean(np.all(r == g, axis=1)))


def compare_arrays(signature: str, output: str, ref: Any, got: Any, *, rtol: float = DEFAULT_RTOL,
                   atol: float = DEFAULT_ATOL, lossy: bool = False) -> OutputComparison:
    """Compare one output; ``ref`` is the reference model's value."""
    ref, got = np.asarray(ref), np.asarray(got)
    c = OutputComparison(signature, output, str(ref.dtype), list(ref.shape), size=int(ref.size))
    if ref.shape != got.shape:
        c.within_tolerance, c.broken = False, True
        c.note = f"shape {list(got.shape)} != reference {list(ref.shape)}"
        return c
    kinds = (ref.dtype.kind, got.dtype.kind)
    numeric = all(k in "biufc" for k in kinds)
    if not numeric:
        if any(k in "biufc" for k in kinds):
            c.within_tolerance, c.broken = False, True
            c.note = f"dtype {got.dtype} != reference {ref.dtype}"
            return c
        eq = np.asarray(ref == got) if ref.dtype == got.dtype else np.asarray(
            np.vectorize(lambda a, b: a == b, otypes=[bool])(ref, got) if ref.size else np.ones(0, bool))
        c.mismatches = int(ref.size - int(np.count_nonzero(eq)))
        c.within_tolerance = c.mismatches == 0
        agreement = _row_agreement(ref, got)
        if _is_class_output(output, ref):
            c.class_agreement = agreement
        if lossy and agreement < BROKEN_AGREEMENT:
            c.broken, c.note = True, f"only {100 * agreement:.0f}% of rows agree"
        return c
    if ref.dtype.kind != got.dtype.kind and not lossy:
        c.note = f"dtype {got.dtype} != reference {ref.dtype}"
        c.within_tolerance = False
    a = ref.astype(np.complex128 if "c" in kinds else np.float64)
    b = got.astype(a.dtype)
    both_nan = np.isnan(a) & np.isnan(b) if a.size else np.zeros(0, bool)
    diff = np.abs(b - a)
    diff = np.where(both_nan | (np.isinf(a) & (a == b)), 0.0, diff)
    bad_new = (~np.isfinite(b)) & np.isfinite(a)
    if a.size:
        finite = np.isfinite(diff)
        c.max_abs_diff = float(diff[finite].max()) if finite.any() else 0.0
        finite_ref = np.abs(a[np.isfinite(a)])
        scale = float(finite_ref.max()) if finite_ref.size else 0.0
        c.max_rel_diff = c.max_abs_diff / (scale + atol)
        norm = float(np.linalg.norm(np.where(np.isfinite(a), a, 0).ravel()))
        err = float(np.linalg.norm(np.where(finite, diff, 0).ravel()))
        c.rel_l2 = err / norm if norm > 0 else (0.0 if err == 0 else math.inf)
        close = diff <= atol + rtol * scale  # (NaN where only one side is NaN: not close)
        c.mismatches = int(a.size - int(np.count_nonzero(close)))
        c.within_tolerance = c.within_tolerance and c.mismatches == 0
    if bad_new.any():
        c.broken, c.within_tolerance = True, False
        c.note = f"{int(bad_new.sum())} NaN/Inf values the reference does not have"
    if _is_class_output(output, ref):
        c.class_agreement = _class_agreement(output, ref, got)
    if lossy and not c.broken:
        if ref.dtype.kind in "iub":
            agreement = _row_agreement(ref, got)
            if agreement < BROKEN_AGREEMENT:
                c.broken, c.note = True, f"only {100 * agreement:.0f}% of rows agree"
        elif c.rel_l2 is not None and c.rel_l2 > BROKEN_REL_L2:
            c.broken, c.note = True, f"relative L2 error {c.rel_l2:.2f} > {BROKEN_REL_L2}"
        if not c.broken and c.class_agreement is not None and c.class_agreement < BROKEN_AGREEMENT:
            c.broken, c.note = True, f"class agreement {100 * c.class_agreement:.0f}% < {100 * BROKEN_AGREEMENT:.0f}%"
    return c


# --------------------------------------------------------------------------- running models
@dataclass
class _SigInfo:
    method_name: str
    inputs: dict[str, str]  # input key -> tensor name
    outputs: dict[str, list[tuple[str, str]]]  # output key -> [(reported name, tensor name)]
    input_dtypes: dict[str, int] = field(default_factory=dict)


class _Runner:
    """Runs the signatures of one model."""

    label: str
    signatures: dict[str, _SigInfo]
    model: Model | None = None

    def run(self, key: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        sig = self.signatures[key]
        missing = set(sig.inputs) - set(inputs)
        if missing:
            raise SignatureError(f"{self.label}: signature {key!r} needs inputs {sorted(missing)}; give them in "
                                 "the --inputs file or leave --inputs out to synthesize them")
        fetch_names: list[str] = []
        keys: list[str] = []
        for _, comps in sorted(sig.outputs.items()):
            for reported, tensor in comps:
                keys.append(reported)
                fetch_names.append(tensor)
        values = self._run({sig.inputs[k]: inputs[k] for k in sig.inputs}, fetch_names)
        return dict(zip(keys, values))

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover
        pass


def _outputs_from_tensor_info(outputs: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for key, info in outputs.items():
        if info.WhichOneof("encoding") == "coo_sparse":
            cs = info.coo_sparse
            out[key] = [(f"{key}/indices", cs.indices_tensor_name), (f"{key}/values", cs.values_tensor_name),
                        (f"{key}/dense_shape", cs.dense_shape_tensor_name)]
        elif info.name:
            out[key] = [(key, info.name)]
    return out


def saved_model_tags(path: str | os.PathLike[str]) -> list[str]:
    """Tags of the first MetaGraph of a SavedModel directory ("serve" when it has that one)."""
    from tensorflow.python.saved_model import loader_impl

    try:
        sm = loader_impl.parse_saved_model(str(path))
    except OSError as exc:
        raise ModelLoadError(f"{path}: not a SavedModel directory ({exc})") from exc
    tag_sets = [list(mg.meta_info_def.tags) for mg in sm.meta_graphs]
    for tags in tag_sets:
        if tags == ["serve"]:
            return tags
    if not tag_sets:
        raise ModelLoadError(f"{path}: the SavedModel holds no MetaGraph")
    return tag_sets[0]


class SavedModelRunner(_Runner):
    """A SavedModel directory loaded by TensorFlow's TF1 loader into a session (what serving does)."""

    def __init__(self, path: str | os.PathLike[str], tags: list[str] | None = None) -> None:
        import tensorflow as tf

        self.label = str(path)
        tags = list(tags) if tags else saved_model_tags(path)
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=2, intra_op_parallelism_threads=2)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        try:
            with self.graph.as_default():
                mg = tf.compat.v1.saved_model.loader.load(self.session, tags, str(path))
        except (RuntimeError, ValueError, KeyError, OSError, tf.errors.OpError) as exc:  # (KeyError: a collection
            self.session.close()                                                        # naming a missing node)
            raise ModelLoadError(f"{path}: TensorFlow's SavedModel loader failed: {exc}") from exc
        self.signatures = {}
        for key, sd in mg.signature_def.items():
            if key == INIT_OP_SIGNATURE_KEY:
                continue
            self.signatures[key] = _SigInfo(
                sd.method_name, {k: v.name for k, v in sd.inputs.items() if v.name},
                _outputs_from_tensor_info(sd.outputs), {k: v.dtype for k, v in sd.inputs.items()})

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:
        import tensorflow as tf

        try:
            return self.session.run([self.graph.get_tensor_by_name(f) for f in fetches],
                                    {self.graph.get_tensor_by_name(k): v for k, v in feeds.items()})
        except tf.errors.OpError as exc:
            raise GraphxformError(f"{self.label}: running the model failed: {exc.message}") from exc

    def close(self) -> None:
        self.session.close()




class TF2SavedModelRunner(_Runner):
    """A TF2 SavedModel loaded by ``tf.saved_model.load`` (variables bound through the object graph), each
    signature called as a concrete function: the reference for TF2 SavedModels the TF1 loader cannot run."""

    def __init__(self, path: str | os.PathLike[str], tags: list[str] | None = None) -> None:
        import tensorflow as tf
        from tensorflow.python.saved_model import loader_impl

        self.label = str(path)
        tags = list(tags) if tags else saved_model_tags(path)
        try:
            self.loaded = tf.saved_model.load(str(path), tags=tags)
            sm = loader_impl.parse_saved_model(str(path))
        except (RuntimeError, ValueError, OSError, tf.errors.OpError) as exc:
            raise ModelLoadError(f"{path}: tf.saved_model.load failed: {tf_error_summary(str(exc))}") from exc
        mg = next(m for m in sm.meta_graphs if set(m.meta_info_def.tags) == set(tags))
        self.signatures = {}
        self.dtypes: dict[str, dict[str, Any]] = {}
        for key, sd in mg.signature_def.items():
            if key == INIT_OP_SIGNATURE_KEY or key not in self.loaded.signatures:
                continue
            self.signatures[key] = _SigInfo(
                sd.method_name, {k: v.name for k, v in sd.inputs.items() if v.name},
                _outputs_from_tensor_info(sd.outputs), {k: v.dtype for k, v in sd.inputs.items()})
            self.dtypes[key] = {k: tf.as_dtype(v.dtype) for k, v in sd.inputs.items()}

    def run(self, key: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        sig = self.signatures[key]
        missing = set(sig.inputs) - set(inputs)
        if missing:
            raise SignatureError(f"{self.label}: signature {key!r} needs inputs {sorted(missing)}; give them in "
                                 "the --inputs file or leave --inputs out to synthesize them")
        args = {k: tf.constant(inputs[k], dtype=self.dtypes[key][k]) for k in sig.inputs}
        try:
            out = self.loaded.signatures[key](**args)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise GraphxformError(f"{self.label}: running signature {key!r} failed: "
                                  f"{tf_error_summary(str(exc))}") from exc
        values: dict[str, np.ndarray] = {}
        for out_key, comps in sorted(sig.outputs.items()):
            if out_key in out and len(comps) == 1:
                values[comps[0][0]] = np.asarray(out[out_key])
        return values

    def close(self) -> None:
        self.loaded = None


def _load_op_libraries(path: Path, tags: list[str] | None) -> None:
    """Import the op libraries (TensorFlow Text …) the SavedModel's graph needs, before TensorFlow loads it."""
    from graphxform.oplibs import ensure_ops
    from tensorflow.python.saved_model import loader_impl

    tags = list(tags) if tags else saved_model_tags(path)
    for mg in loader_impl.parse_saved_model(str(path)).meta_graphs:
        if set(mg.meta_info_def.tags) == set(tags):
            ensure_ops(mg.graph_def, path)


def needs_object_graph(path: str | os.PathLike[str], tags: list[str] | None = None) -> bool:
    """True for a TF2 SavedModel whose signatures read variables or tables the saver does not restore: the TF1
    and C++ loaders (TF Serving) cannot run it, ``tf.saved_model.load`` can (it binds them by object path)."""
    from graphxform.loader import SAVED_MODEL_FILES
    from graphxform.objects import bind_object_graph
    from tensorflow.python.saved_model import loader_impl

    p = Path(path)
    if not any((p / f).is_file() for f in SAVED_MODEL_FILES):
        return False
    tags = list(tags) if tags else saved_model_tags(p)
    sm = loader_impl.parse_saved_model(str(p))
    mg = next((m for m in sm.meta_graphs if set(m.meta_info_def.tags) == set(tags)), None)
    index = p / "variables" / "variables.index"
    if mg is None or not index.is_file():
        return False
    binding = bind_object_graph(mg, index.with_suffix(""), p)
    return binding is not None and bool(binding.unservable_nodes())


class ModelRunner(_Runner):
    """A :class:`Model` run with :mod:`graphxform.tfrun` (a frozen copy when it keeps variables)."""

    def __init__(self, model: Model, label: str | None = None) -> None:
        from graphxform.tfrun import model_session

        self.label = label or str(model.source)
        if not model.frozen:
            model = model.copy()
            model.freeze()
        self.model = model
        try:
            self.session = model_session(model)
        except GraphxformError as exc:
            raise GraphxformError(f"{self.label}: cannot run the model: {exc}") from exc
        self.signatures = model_signature_infos(model)

    def _run(self, feeds: dict[str, Any], fetches: list[str]) -> list[np.ndarray]:
        import tensorflow as tf

        from graphxform.tfrun import asset_feeds

        assert self.model is not None
        try:
            return self.session.run({**asset_feeds(self.model), **feeds}, fetches)
        except tf.errors.OpError as exc:
            raise GraphxformError(f"{self.label}: running the model failed: {exc.message}") from exc

    def close(self) -> None:
        self.session.close()


def model_signature_infos(model: Model) -> dict[str, _SigInfo]:
    """Signature inputs/outputs of a :class:`Model` in the form the runners use."""
    infos: dict[str, _SigInfo] = {}
    for key, sig in model.signatures.items():
        if key == INIT_OP_SIGNATURE_KEY:
            continue
        outs: dict[str, list[tuple[str, str]]] = {}
        for k, spec in sig.outputs.items():
            if spec.components:
                outs[k] = [(f"{k}/{c}", t) for c, t in spec.components.items()]
            elif spec.name:
                outs[k] = [(k, spec.name)]
        infos[key] = _SigInfo(sig.method_name, {k: s.name for k, s in sig.inputs.items() if s.name}, outs,
                              {k: s.dtype for k, s in sig.inputs.items()})
    return infos


def _is_saved_model_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())


def open_runner(model: Model | str | os.PathLike[str], tags: list[str] | None = None) -> _Runner:
    """A runner for a Model object, a SavedModel directory or a ``.pb``/``.pbtxt`` file."""
    from graphxform.model import Model as _Model

    if isinstance(model, _Model):
        return ModelRunner(model)
    path = Path(model)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    if _is_saved_model_dir(path):
        _load_op_libraries(path, tags)
        if needs_object_graph(path, tags):
            return TF2SavedModelRunner(path, tags)
        return SavedModelRunner(path, tags)
    from graphxform import load

    return ModelRunner(load(path, tags=tags), label=str(path))


# --------------------------------------------------------------------------- inputs
def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file by key (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise GraphxformError(f"{path}: not a readable .npz file ({exc}); save inputs with numpy.savez") from exc


def read_tfrecord(path: str | os.PathLike[str]) -> np.ndarray:
    """The records of a TFRecord file as a numpy object array of bytes."""
    import tensorflow as tf

    try:
        records = [bytes(r) for r in tf.compat.v1.io.tf_record_iterator(str(path))]
    except (tf.errors.OpError, OSError) as exc:
        raise GraphxformError(f"{path}: not a readable TFRecord file ({exc})") from exc
    if not records:
        raise GraphxformError(f"{path}: the TFRecord file holds no records")
    arr = np.empty(len(records), dtype=object)
    arr[:] = records
    return arr


def inputs_from_arrays(arrays: Mapping[str, Any], signatures: Mapping[str, _SigInfo]) -> dict[str, dict[str, Any]]:
    """Group ``{"sig/input": a}`` / ``{"input": a}`` / ``{sig: {input: a}}`` by signature and input key.

    A plain key may also be the input's tensor name (``"input:0"``); it applies to every signature with that input.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, value in arrays.items():
        if isinstance(value, Mapping):
            out.setdefault(key, {}).update(value)
            continue
        sig, sep, inp = key.partition("/")
        if sep and sig in signatures:
            out.setdefault(sig, {})[inp] = value
    for key, value in arrays.items():
        if isinstance(value, Mapping) or ("/" in key and key.partition("/")[0] in signatures):
            continue
        for skey, info in signatures.items():
            for ik, tensor in info.inputs.items():
                node, port, _ = parse_input(tensor)
                if key in (ik, tensor, f"{node}:{port}") or (port == 0 and key == node):
                    out.setdefault(skey, {}).setdefault(ik, value)
    return out


def _batch_of(values: Mapping[str, Any]) -> int | None:
    for v in values.values():
        arr = np.asarray(v)
        if arr.ndim >= 1:
            return int(arr.shape[0])
    return None


def prepare_inputs(
    signatures: Mapping[str, _SigInfo],
    keys: Iterable[str],
    *,
    model: Model | Callable[[], Model | None] | None,
    inputs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    examples: str | os.PathLike[str] | None = None,
    batch: int = 4,
    seed: int = 0,
) -> tuple[dict[str, dict[str, Any]], str]:
    """``{signature: {input: array}}`` for ``keys`` and a word saying where they came from.

    ``model`` (or a function returning it, called only when needed) is read to synthesize missing inputs and
    to find which string inputs take serialized examples.
    """
    from graphxform import synth

    get_model = model if callable(model) else (lambda: model)

    given: dict[str, dict[str, Any]] = {}
    source = "synthesized"
    if inputs is not None:
        arrays = inputs if isinstance(inputs, Mapping) else load_npz(inputs)
        given = inputs_from_arrays(arrays, signatures)
        source = "npz" if not isinstance(inputs, Mapping) else "given"
        if not any(given.get(k) for k in keys):
            names = ", ".join(sorted(arrays)[:6])
            raise GraphxformError(
                f"{inputs if not isinstance(inputs, Mapping) else 'inputs'}: no key matches a signature input "
                f"(keys: {names}); use '<signature_key>/<input_key>' or '<input_key>'")
    records = read_tfrecord(examples) if examples is not None else None
    if records is not None:
        source = "tfrecord" if inputs is None else source + "+tfrecord"
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        info = signatures[key]
        values = dict(given.get(key, {}))
        m = get_model() if records is not None or any(ik not in values for ik in info.inputs) else None
        if records is not None and m is not None and key in m.signatures:
            for ik, spec in m.signatures[key].inputs.items():
                if ik not in values and spec.name and synth.is_example_input(m, spec.name):
                    values[ik] = records
        elif records is not None:
            for ik, dtype in info.input_dtypes.items():
                if ik not in values and dtype == 7:  # DT_STRING: assume serialized examples
                    values[ik] = records
        missing = [ik for ik in info.inputs if ik not in values]
        if missing:
            if m is None or key not in m.signatures:
                raise GraphxformError(f"signature {key!r}: no values for inputs {missing} and no model to "
                                      "synthesize them from; pass them with --inputs")
            n = _batch_of(values) or batch
            sig = m.signatures[key]
            for ik in missing:
                values[ik] = synth.synthesize_input(m, key, ik, sig.inputs[ik], batch=n, seed=seed)
            if given or records is not None:
                source += f" (+synthesized {key}:{','.join(missing)})" if len(source) < 200 else ""
        out[key] = values
    return out, source


# --------------------------------------------------------------------------- verify
def _reference_model(reference: Model | str | os.PathLike[str], runner: _Runner,
                     tags: list[str] | None) -> Model | None:
    from graphxform.model import Model as _Model

    if isinstance(reference, _Model):
        return reference
    if runner.model is not None:
        return runner.model
    from graphxform import load

    try:
        return load(reference, tags=tags)
    except (GraphxformError, ImportError) as exc:
        log.warning("%s: could not be loaded for input synthesis: %s", reference, exc)
        return None


def verify(
    reference: Model | str | os.PathLike[str],
    candidate: Model | str | os.PathLike[str],
    *,
    inputs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    examples: str | os.PathLike[str] | None = None,
    signatures: Iterable[str] | str | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    lossy: bool = False,
    tags: list[str] | None = None,
    batch: int = 4,
    seed: int = 0,
    synthesis_model: Model | None = None,
    loaders: Iterable[str] | None = None,
) -> VerifyReport:
    """Run ``reference`` and ``candidate`` on the same inputs; compare every output of every signature.

    ``reference``/``candidate`` are :class:`Model` s or paths (SavedModel
    directory, ``.pb``/``.pbtxt``). The reference runs once (a SavedModel
    through the TF1 loader, anything else through :mod:`graphxform.tfrun`). A
    candidate *path* is loaded by each of TensorFlow's loaders
    (:mod:`graphxform.consumers`: ``c++`` — TF Serving's ``LoadSavedModel``,
    ``tf2`` — ``tf.saved_model.load``, ``tf1`` — the TF1 loader; or their
    GraphDef counterparts), every signature runs through each on the same
    inputs, and a loader that refuses the model or a signature fails the
    verification with TensorFlow's message. ``loaders`` picks a subset. A
    candidate :class:`Model` runs through :mod:`graphxform.tfrun` only.
    ``synthesis_model`` is the model whose graph is read to synthesize inputs
    (default: the reference). Returns a :class:`VerifyReport`; call
    ``raise_for_failure()`` to turn a failed comparison into :class:`VerificationError`.
    """
    import time

    from graphxform.consumers import LOADER_KEYS, LoaderResult, open_loaders
    from graphxform.model import Model as _Model

    t0 = time.perf_counter()
    wanted_loaders = list(loaders) if loaders is not None else list(LOADER_KEYS)
    unknown_loaders = [k for k in wanted_loaders if k not in LOADER_KEYS]
    if unknown_loaders:
        raise GraphxformError(f"unknown loader {', '.join(unknown_loaders)}; choose from {', '.join(LOADER_KEYS)}")
    ref_runner = open_runner(reference, tags)
    cands: list[tuple[Any, _Runner | None]] = []
    try:
        if isinstance(candidate, _Model):
            runner = ModelRunner(candidate)
            cands = [(LoaderResult("graphxform", "graphxform.tfrun (import_graph_def + Session)", True,
                                   signatures=sorted(runner.signatures)), runner)]
        else:
            if not Path(candidate).exists():
                raise ModelLoadError(f"{candidate}: no such file or directory")
            cands = open_loaders(candidate, tags, wanted_loaders)
    except BaseException:
        ref_runner.close()
        raise
    try:
        label_a = ref_runner.label
        label_b = str(candidate) if not isinstance(candidate, _Model) else (cands[0][1].label if cands[0][1] else "")
        keys = list(ref_runner.signatures)
        if signatures is not None:
            wanted = [signatures] if isinstance(signatures, str) else list(signatures)
            unknown = [k for k in wanted if k not in ref_runner.signatures]
            if unknown:
                raise SignatureError(f"{label_a}: no signature {', '.join(map(repr, unknown))}; it has "
                                     f"{', '.join(sorted(ref_runner.signatures))}")
            keys = wanted
        if not keys:
            raise SignatureError(f"{label_a}: has no signatures, so there is nothing to compare; a frozen GraphDef "
                                 "needs its inputs and outputs named (graphxform.load(path, inputs=…, outputs=…))")
        report = VerifyReport(label_a, label_b, rtol, atol, lossy, "synthesized")
        report.loaders = [result for result, _ in cands]
        loaded = [(result, runner) for result, runner in cands if runner is not None]
        present = [k for k in keys if any(k in runner.signatures for _, runner in loaded)] or keys
        def where(names: list[str]) -> str:  # which loaders, unless it is all that loaded
            return "" if len(names) == len(loaded) else f" ({', '.join(names)})"

        for k in keys:
            lacking = [result.key for result, runner in loaded if k not in runner.signatures]
            if lacking:
                report.missing.append(f"signature {k!r} is missing in {label_b}{where(lacking)}")
        for result, runner in loaded:
            listed = result.signatures or sorted(runner.signatures)
            report.extra.extend(f"{result.description} lists signature {k!r}, which {label_a} does not have"
                                for k in listed if k not in ref_runner.signatures)
        cache: list[Model | None] = []

        def model() -> Model | None:  # loaded only when inputs must be synthesized or examples routed
            if not cache:
                cache.append(synthesis_model if synthesis_model is not None
                             else _reference_model(reference, ref_runner, tags))
            return cache[0]

        feeds, report.inputs_source = prepare_inputs(ref_runner.signatures, present, model=model, inputs=inputs,
                                                     examples=examples, batch=batch, seed=seed)
        for key in present:
            values = feeds[key]
            report.batch[key] = _batch_of(values) or 1
            ref_out = ref_runner.run(key, values)
            lacking_out: dict[str, list[str]] = {}
            for result, runner in loaded:
                if key not in runner.signatures or result.error:
                    continue
                cand_sig = runner.signatures[key]
                extra = set(cand_sig.inputs) - set(values)
                if extra:
                    report.missing.extend(f"{label_b}: signature {key!r} has input {k!r}, which {label_a}'s has not"
                                          for k in sorted(extra))
                    continue
                t1 = time.perf_counter()
                try:
                    got = runner.run(key, {k: v for k, v in values.items() if k in cand_sig.inputs})
                except GraphxformError as exc:
                    result.error = f"signature {key!r}: {exc}"
                    continue
                finally:
                    result.seconds += time.perf_counter() - t1
                for out_key in sorted(ref_out):
                    if out_key not in got:
                        lacking_out.setdefault(out_key, []).append(result.key)
                        continue
                    c = compare_arrays(key, out_key, ref_out[out_key], got[out_key], rtol=rtol, atol=atol,
                                       lossy=lossy)
                    c.loader = result.key
                    report.outputs.append(c)
            report.missing.extend(f"output {key}/{out_key} is missing in {label_b}{where(names)}"
                                  for out_key, names in lacking_out.items())
        report.seconds = time.perf_counter() - t0
        return report
    finally:
        ref_runner.close()
        for _, runner in cands:
            if runner is not None:
                runner.close()


__all__ = ["OutputComparison", "VerifyReport", "compare_arrays", "prepare_inputs", "verify"]
