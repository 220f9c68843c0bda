"""The inputs two models are compared on: from an ``.npz`` file, a TFRecord of ``tf.Example`` s, or synthesized.

npz keys are ``"<signature>/<input>"``, a plain ``"<input>"`` (applied to every signature that has that input) or
a tensor name (``"input:0"``). TFRecord examples are fed to every input the graph parses as examples. With
neither, every input is synthesized from the model's graph (:mod:`graphxform.tf.synth`).

Given values are checked before anything runs (or is written): a key that names no input is an error listing
the keys each signature takes; a value whose dtype or shape the signature does not accept is an error naming
the key, the signature and the input; an input the file leaves out is an error too, unless
``synthesize_missing`` asks for it to be synthesized (the result says which were).
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from graphxform.core.errors import GraphxformError
from graphxform.core.names import parse_input
from graphxform.model.model import Model
from graphxform.tf import synth
from graphxform.tf.runners import SigInfo, model_signature_infos


@dataclass
class PreparedInputs:
    """``feeds`` (``{signature: {input: array}}``), where they came from, and which inputs were synthesized."""

    feeds: dict[str, dict[str, Any]]
    source: str
    synthesized: dict[str, list[str]] = field(default_factory=dict)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file by key (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise GraphxformError(f"{path}: not a readable .npz file ({exc}); save inputs with numpy.savez") from exc


def read_tfrecord(path: str | os.PathLike[str]) -> np.ndarray:
    """The records of a TFRecord file as a numpy object array of bytes."""
    try:
        records = [bytes(r) for r in tf.compat.v1.io.tf_record_iterator(str(path))]
    except (tf.errors.OpError, OSError) as exc:
        raise GraphxformError(f"{path}: not a readable TFRecord file ({exc})") from exc
    if not records:
        raise GraphxformError(f"{path}: the TFRecord file holds no records")
    arr = np.empty(len(records), dtype=object)
    arr[:] = records
    return arr


def expected_keys(signatures: Mapping[str, SigInfo]) -> str:
    """The keys each signature takes, for error messages: ``sig: 'sig/a', 'sig/b'; other: 'other/x'``."""
    parts = []
    for skey in sorted(signatures):
        ins = sorted(signatures[skey].inputs)
        parts.append(f"{skey}: " + (", ".join(repr(f"{skey}/{ik}") for ik in ins) if ins else "(no inputs)"))
    return "; ".join(parts)


def _plain_matches(key: str, signatures: Mapping[str, SigInfo]) -> list[tuple[str, str]]:
    """``(signature, input)`` pairs a plain key (input key, tensor or node name) applies to."""
    found = []
    for skey in sorted(signatures):
        for ik, tensor in signatures[skey].inputs.items():
            node, port, _ = parse_input(tensor)
            if key in (ik, tensor, f"{node}:{port}") or (port == 0 and key == node):
                found.append((skey, ik))
    return found


def inputs_from_arrays(arrays: Mapping[str, Any], signatures: Mapping[str, SigInfo], label: str = "inputs"
                       ) -> dict[str, dict[str, tuple[str, Any]]]:
    """Group ``{"sig/input": a}`` / ``{"input": a}`` / ``{sig: {input: a}}`` as ``{sig: {input: (key, a)}}``.

    A plain key may also be the input's tensor name (``"input:0"``); it applies to every signature with that
    input. ``"sig/input"`` keys win over plain ones. A key that names no input of any signature is an error
    (``label`` names the file in it) listing the keys each signature takes.
    """
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    unknown: list[str] = []
    plain: list[tuple[str, Any]] = []
    for key, value in arrays.items():
        if isinstance(value, Mapping):
            if key not in signatures:
                unknown.append(key)
                continue
            for ik, v in value.items():
                if ik in signatures[key].inputs:
                    out.setdefault(key, {})[ik] = (f"{key}/{ik}", v)
                else:
                    unknown.append(f"{key}/{ik}")
            continue
        sig, sep, inp = key.partition("/")
        if sep and sig in signatures and inp in signatures[sig].inputs:
            out.setdefault(sig, {})[inp] = (key, value)
        elif _plain_matches(key, signatures):
            plain.append((key, value))
        else:
            unknown.append(key)
    if unknown:
        names = sorted({f"{s}/{i}" for s, info in signatures.items() for i in info.inputs}
                       | {i for info in signatures.values() for i in info.inputs})
        close = {k: difflib.get_close_matches(k, names, n=1, cutoff=0.6) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {close[k][0]!r}?)" if close[k] else "") for k in sorted(unknown))
        raise GraphxformError(
            f"{label}: {'key' if len(unknown) == 1 else 'keys'} {said} {'names' if len(unknown) == 1 else 'name'} "
            f"no signature input. Keys by signature — {expected_keys(signatures)} (a plain '<input>' key is used "
            "for every signature with that input)")
    for key, value in plain:
        for skey, ik in _plain_matches(key, signatures):
            out.setdefault(skey, {}).setdefault(ik, (key, value))
    return out


def check_value(label: str, key: str, skey: str, ik: str, value: Any, info: SigInfo) -> Any:
    """``value`` for input ``ik`` of signature ``skey``, cast to the input's dtype; an error naming the key
    (from ``label``) when its dtype or shape does not fit the signature."""
    arr = np.asarray(value)
    where = f"{label}: key {key!r} (signature {skey!r}, input {ik!r})"
    dt = info.input_dtypes.get(ik)
    shape = info.input_shapes.get(ik)
    want = f"{tf.as_dtype(dt).name if dt else '?'} of shape " + (
        "(any)" if shape is None else "(" + ", ".join("-1" if d is None else str(d) for d in shape) + ")")
    if dt:
        target = tf.as_dtype(dt)
        kind = arr.dtype.kind
        fits = (kind in "SUO" if target == tf.string else kind == "b" if target.is_bool else
                kind in "biuf" + ("c" if target.is_complex else "") if target.is_floating or target.is_complex
                else kind in "biu" if target.is_integer else True)
        if not fits:
            raise GraphxformError(f"{where} holds {arr.dtype} values; the input takes {want}")
        if (target.is_floating or target.is_integer or target.is_complex) and target.as_numpy_dtype != arr.dtype:
            cast = arr.astype(target.as_numpy_dtype)
            if target.is_integer and not np.array_equal(cast, arr):
                raise GraphxformError(f"{where} holds values {target.name} cannot represent; the input takes {want}")
            arr = cast
    if shape is not None and (arr.ndim != len(shape)
                              or any(d is not None and d != n for d, n in zip(shape, arr.shape, strict=False))):
        raise GraphxformError(f"{where} has shape {tuple(arr.shape)}; the input takes {want}")
    return arr


def batch_of(values: Mapping[str, Any]) -> int | None:
    for v in values.values():
        arr = np.asarray(v)
        if arr.ndim >= 1:
            return int(arr.shape[0])
    return None


def prepare_inputs(
    signatures: Mapping[str, SigInfo],
    keys: Iterable[str],
    *,
    model: Model | Callable[[], Model | None] | None,
    inputs: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    examples: str | os.PathLike[str] | None = None,
    batch: int = 4,
    seed: int = 0,
    synthesize_missing: bool = False,
) -> PreparedInputs:
    """The inputs of the signatures ``keys``: from ``inputs`` and ``examples``, or synthesized.

    ``model`` (or a function returning it, called only when needed) is read to synthesize inputs and to find
    which string inputs take serialized examples. With ``inputs`` or ``examples``, an input they leave out is
    an error unless ``synthesize_missing``.
    """
    get_model = model if callable(model) else (lambda: model)
    keys = list(keys)
    given: dict[str, dict[str, tuple[str, Any]]] = {}
    source = "synthesized"
    label = "inputs"
    if inputs is not None:
        label = "the given inputs" if isinstance(inputs, Mapping) else str(inputs)
        arrays = inputs if isinstance(inputs, Mapping) else load_npz(inputs)
        given = inputs_from_arrays(arrays, signatures, label)
        source = "npz" if not isinstance(inputs, Mapping) else "given"
    records = read_tfrecord(examples) if examples is not None else None
    if records is not None:
        source = "tfrecord" if inputs is None else source + " + tfrecord"
        label = str(examples) if inputs is None else f"{label} and {examples}"
    out = PreparedInputs({}, source)
    for key in keys:
        info = signatures[key]
        values = {ik: check_value(label, k, key, ik, v, info) for ik, (k, v) in sorted(given.get(key, {}).items())}
        m = get_model() if records is not None or any(ik not in values for ik in info.inputs) else None
        if records is not None and m is not None and key in m.signatures:
            for ik, spec in m.signatures[key].inputs.items():
                if ik not in values and spec.name and synth.is_example_input(m, spec.name):
                    values[ik] = records
        elif records is not None:
            for ik, dtype in info.input_dtypes.items():
                if ik not in values and dtype == types_pb2.DT_STRING:  # assume serialized examples
                    values[ik] = records
        missing = sorted(ik for ik in info.inputs if ik not in values)
        if missing and (inputs is not None or records is not None) and not synthesize_missing:
            keys_said = ", ".join(f"'{key}/{ik}'" for ik in missing)
            raise GraphxformError(
                f"{label}: no value for {'input' if len(missing) == 1 else 'inputs'} "
                f"{', '.join(map(repr, missing))} of signature {key!r} (key {keys_said}); add "
                f"{'it' if len(missing) == 1 else 'them'}, or pass --synthesize-missing to synthesize what the "
                f"file leaves out. Keys by signature — {expected_keys(signatures)}")
        if missing:
            if m is None or key not in m.signatures:
                raise GraphxformError(f"signature {key!r}: no values for inputs {missing} and no model to "
                                      "synthesize them from; pass them with --inputs")
            n = batch_of(values) or batch
            sig = m.signatures[key]
            for ik in missing:
                values[ik] = synth.synthesize_input(m, key, ik, sig.inputs[ik], batch=n, seed=seed)
            if inputs is not None or records is not None:
                out.synthesized[key] = missing
        out.feeds[key] = values
    if out.synthesized:
        out.source += " + synthesized " + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(out.synthesized.items()))
    return out


def model_inputs(model: Model, inputs: str | os.PathLike[str] | Mapping[str, Any] | None, *,
                 synthesize_missing: bool = False) -> PreparedInputs:
    """Inputs for every signature of ``model``: from ``inputs`` (npz path or arrays), checked against its
    signatures, or synthesized (see :func:`prepare_inputs`)."""
    infos = model_signature_infos(model)
    return prepare_inputs(infos, sorted(infos), model=model, inputs=inputs, synthesize_missing=synthesize_missing)


def verification_inputs(model: Model, inputs: str | os.PathLike[str] | Mapping[str, Any] | None, *,
                        synthesize_missing: bool = False) -> dict[str, dict[str, Any]]:
    """The ``feeds`` of :func:`model_inputs`."""
    return model_inputs(model, inputs, synthesize_missing=synthesize_missing).feeds


__all__ = ["PreparedInputs", "batch_of", "check_value", "expected_keys", "inputs_from_arrays", "load_npz",
           "model_inputs", "prepare_inputs", "read_tfrecord", "verification_inputs"]
