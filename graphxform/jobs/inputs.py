"""The inputs two models are compared on: from an ``.npz`` file, a TFRecord of ``tf.Example`` s, or synthesized.

npz keys are ``"<signature>/<input>"``, a plain ``"<input>"`` (applied to every signature that has that input) or
a tensor name (``"input:0"``). TFRecord examples are fed to every input the graph parses as examples. Whatever
is missing is synthesized from the model's graph (:mod:`graphxform.tf.synth`).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from graphxform.core.errors import GraphxformError
from graphxform.core.names import parse_input
from graphxform.model.model import Model
from graphxform.tf import synth
from graphxform.tf.runners import SigInfo, model_signature_infos


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


def inputs_from_arrays(arrays: Mapping[str, Any], signatures: Mapping[str, SigInfo]) -> dict[str, dict[str, Any]]:
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
) -> tuple[dict[str, dict[str, Any]], str]:
    """``{signature: {input: array}}`` for ``keys`` and a word saying where they came from.

    ``model`` (or a function returning it, called only when needed) is read to synthesize missing inputs and
    to find which string inputs take serialized examples.
    """
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
                if ik not in values and dtype == types_pb2.DT_STRING:  # assume serialized examples
                    values[ik] = records
        missing = [ik for ik in info.inputs if ik not in values]
        if missing:
            if m is None or key not in m.signatures:
                raise GraphxformError(f"signature {key!r}: no values for inputs {missing} and no model to "
                                      "synthesize them from; pass them with --inputs")
            n = batch_of(values) or batch
            sig = m.signatures[key]
            for ik in missing:
                values[ik] = synth.synthesize_input(m, key, ik, sig.inputs[ik], batch=n, seed=seed)
            if given or records is not None:
                source += f" (+synthesized {key}:{','.join(missing)})" if len(source) < 200 else ""
        out[key] = values
    return out, source


def verification_inputs(model: Model, inputs: str | os.PathLike[str] | Mapping[str, Any] | None
                        ) -> dict[str, dict[str, Any]]:
    """Inputs for every signature of ``model``: from ``inputs`` (npz path or arrays), the rest synthesized."""
    infos = model_signature_infos(model)
    feeds, _ = prepare_inputs(infos, list(infos), model=model, inputs=inputs)
    return feeds


__all__ = ["batch_of", "inputs_from_arrays", "load_npz", "prepare_inputs", "read_tfrecord", "verification_inputs"]
