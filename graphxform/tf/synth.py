"""Input synthesis: sample inputs for every signature of a model, when the user gives none.

- Numeric inputs: arrays of the signature's dtype and shape; an unknown first
  dimension is the batch (4 by default), other unknown dimensions are 3.
  Floats are N(0, 1), integers are in [0, 10), booleans are fair coins.
- A string input that feeds ``ParseExampleV2`` / ``ParseExample`` /
  ``ParseSingleExample`` (a serialized ``tf.Example``): the parse node's
  dense, sparse and ragged keys (``Const`` inputs) and their types and
  shapes (attrs) are read, and ``tf.train.Example`` protos are built with
  values of the right type. String (and integer) features that a hash table
  looks up take their values from that table's keys — a vocabulary asset
  file or the keys of a ``LookupTableImportV2`` — so lookups hit real
  entries; some values are out of vocabulary on purpose.
- Any other string input is filled with words from the model's vocabularies
  (tables it reaches, else every asset file), plus some out-of-vocabulary words.

Everything is deterministic: the random generator is seeded from ``seed``
and the signature/input keys.
"""
from __future__ import annotations

import logging
import math
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2

from graphxform.core.errors import SignatureError
from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.opdefs import (
    EXAMPLE_PATH_OPS,
    PARSE_EXAMPLE_OPS,
    PASS_THROUGH_OPS,
    TABLE_INIT_OPS,
    TABLE_LOOKUP_OPS,
    TABLE_OPS,
    attr_int,
    attr_list,
    attr_str,
)
from graphxform.core.signature import TensorSpec
from graphxform.model.model import Model

log = logging.getLogger(__name__)

DEFAULT_BATCH = 4
OTHER_DIM = 3
#: Largest synthesized input (elements; 256 MiB of float32) and rank: a shape beyond them is refused.
MAX_SYNTH_ELEMENTS = 2**26
MAX_SYNTH_RANK = 32
OOV_WORDS = (b"graphxform_oov", b"zzz_unknown", b"")
OOV_RATE = 0.25
#: Nodes visited when searching downstream of a feature for the table that looks it up.
SEARCH_LIMIT = 200


@dataclass
class FeatureSpec:
    """One feature a parse op reads: its key, kind (dense/sparse/ragged), dtype enum and (dense) shape."""

    key: str
    kind: str
    dtype: int
    shape: list[int] | None = None
    vocabulary: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "dtype": tf.as_dtype(self.dtype).name, "shape": self.shape,
                "vocabulary_size": len(self.vocabulary)}


# --------------------------------------------------------------------------- graph helpers
def _resolve(graph: Graph, tensor: str) -> str:
    """Follow Identity-like producers back to the node that makes ``tensor``; returns that node's name."""
    name = parse_input(tensor)[0]
    seen = set()
    while name in graph and name not in seen:
        seen.add(name)
        node = graph.node(name)
        if node.op in PASS_THROUGH_OPS and node.input:
            name = parse_input(node.input[0])[0]
            continue
        break
    return name


def _const(graph: Graph, tensor: str) -> np.ndarray | None:
    name = _resolve(graph, tensor)
    node = graph.get(name)
    if node is None or node.op != "Const":
        return None
    return graph.const_value(name)


def _strings(arr: np.ndarray | None) -> list[str]:
    if arr is None:
        return []
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in np.asarray(arr).ravel()]


def parse_nodes_for(graph: Graph, tensor: str) -> list[Any]:
    """The parse-example nodes that read the serialized examples in ``tensor`` (directly or via Identity/Reshape)."""
    name, port, _ = parse_input(tensor)
    found = []
    queue = deque([f"{name}:{port}"])
    seen: set[str] = set()
    while queue:
        t = queue.popleft()
        if t in seen:
            continue
        seen.add(t)
        for dst, idx in graph.consumers(t):
            node = graph.node(dst)
            if node.op in PARSE_EXAMPLE_OPS and idx == 0:
                found.append(node)
            elif node.op in EXAMPLE_PATH_OPS and (idx == 0 or node.op == "IdentityN"):
                out_port = idx if node.op == "IdentityN" else 0
                queue.append(f"{dst}:{out_port}")
    return found


def is_example_input(model: Model, tensor: str) -> bool:
    """True when ``tensor`` (a string input) holds serialized ``tf.Example`` s that the graph parses."""
    return bool(parse_nodes_for(model.graph, tensor))


def _list_types(node: Any, attr: str) -> list[int]:
    return list(node.attr[attr].list.type) if attr in node.attr else []


def _list_shapes(node: Any, attr: str) -> list[list[int]]:
    if attr not in node.attr:
        return []
    return [[d.size for d in s.dim] for s in node.attr[attr].list.shape]


def parse_features(graph: Graph, node: Any) -> tuple[list[FeatureSpec], dict[str, str]]:
    """The features a parse node reads, and ``{feature key: tensor of its values}`` in the graph."""
    feats: list[FeatureSpec] = []
    value_tensor: dict[str, str] = {}
    data = [i for i in node.input if not i.startswith("^")]
    sparse_types = _list_types(node, "sparse_types")
    dense_types = _list_types(node, "Tdense")
    dense_shapes = _list_shapes(node, "dense_shapes")
    if node.op == "ParseExampleV2":
        sparse_keys = _strings(_const(graph, data[2]))
        dense_keys = _strings(_const(graph, data[3]))
        ragged_keys = _strings(_const(graph, data[4]))
        ragged_types = _list_types(node, "ragged_value_types")
    elif node.op == "ParseExample":
        ns, nd = attr_int(node, "Nsparse"), attr_int(node, "Ndense")
        sparse_keys = [s for t in data[2:2 + ns] for s in _strings(_const(graph, t))]
        dense_keys = [s for t in data[2 + ns:2 + ns + nd] for s in _strings(_const(graph, t))]
        ragged_keys, ragged_types = [], []
    else:  # ParseSingleExample
        sparse_keys = [s.decode() for s in getattr(attr_list(node, "sparse_keys"), "s", [])]
        dense_keys = [s.decode() for s in getattr(attr_list(node, "dense_keys"), "s", [])]
        ragged_keys, ragged_types = [], []
    ns, nd = len(sparse_keys), len(dense_keys)
    for i, key in enumerate(sparse_keys):
        dtype = sparse_types[i] if i < len(sparse_types) else types_pb2.DT_STRING
        feats.append(FeatureSpec(key, "sparse", dtype))
        value_tensor[key] = f"{node.name}:{ns + i}"
    for j, key in enumerate(dense_keys):
        dtype = dense_types[j] if j < len(dense_types) else types_pb2.DT_FLOAT
        shape = dense_shapes[j] if j < len(dense_shapes) else [1]
        feats.append(FeatureSpec(key, "dense", dtype, shape))
        value_tensor[key] = f"{node.name}:{3 * ns + j}"
    for r, key in enumerate(ragged_keys):
        dtype = ragged_types[r] if r < len(ragged_types) else types_pb2.DT_STRING
        feats.append(FeatureSpec(key, "ragged", dtype))
        value_tensor[key] = f"{node.name}:{3 * ns + nd + r}"
    return feats, value_tensor


# --------------------------------------------------------------------------- vocabularies
def _asset_paths(model: Model) -> dict[str, Path]:
    return {parse_input(a.tensor_name)[0]: Path(a.source_path) for a in model.assets}


def _read_vocab_file(path: Path, key_index: int, delimiter: str, vocab_size: int) -> list[Any]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        log.debug("vocabulary %s unreadable: %s", path, exc)
        return []
    if vocab_size and vocab_size > 0:
        lines = lines[:vocab_size]
    if key_index == -2:  # WHOLE_LINE
        return list(lines)
    if key_index == -1:  # LINE_NUMBER
        return list(range(len(lines)))
    out = []
    delim = delimiter.encode() if delimiter else b"\t"
    for line in lines:
        cols = line.split(delim)
        if key_index < len(cols):
            out.append(cols[key_index])
    return out


def table_keys(model: Model, table_node: str) -> list[Any]:
    """Keys a hash table is filled with, read from its initializers (asset vocab file or constant keys)."""
    graph = model.graph
    assets = _asset_paths(model)
    keys: list[Any] = []
    for user in graph.consumer_nodes(table_node):
        node = graph.node(user)
        if node.op in EXAMPLE_PATH_OPS:
            keys.extend(table_keys(model, user))
            continue
        if node.op not in TABLE_INIT_OPS:
            continue
        data = [i for i in node.input if not i.startswith("^")]
        if node.op.startswith("InitializeTableFromTextFile"):
            fname_node = _resolve(graph, data[1])
            path = assets.get(fname_node)
            if path is None:
                value = _const(graph, data[1])
                cand = Path(_strings(value)[0]) if value is not None and value.size else None
                if cand is not None and not cand.is_absolute() and model.source:
                    cand = Path(model.source) / "assets" / cand
                path = cand
            if path is None:
                continue
            keys.extend(_read_vocab_file(
                path, attr_int(node, "key_index"), attr_str(node, "delimiter", "\t"), attr_int(node, "vocab_size", -1)))
        else:
            value = _const(graph, data[1])
            if value is not None:
                keys.extend(np.asarray(value).ravel().tolist())
    return keys


def vocabulary_for(model: Model, tensor: str) -> list[Any]:
    """Keys of the tables that look up ``tensor`` (searching downstream of it), in a stable order."""
    graph = model.graph
    name, port, _ = parse_input(tensor)
    queue = deque([(name, port)])
    seen: set[tuple[str, int | None]] = set()
    vocab: list[Any] = []
    visited = 0
    while queue and visited < SEARCH_LIMIT:
        item = queue.popleft()
        if item in seen:
            continue
        seen.add(item)
        visited += 1
        n, p = item
        consumers = graph.consumers(f"{n}:{p}") if p is not None else graph.consumers(n)
        for dst, idx in consumers:
            node = graph.node(dst)
            if node.op in TABLE_LOOKUP_OPS and idx == 1:
                vocab.extend(table_keys(model, _resolve(graph, node.input[0])))
                continue
            if node.op in TABLE_INIT_OPS or node.op.startswith("Save") or node.op.startswith("Restore"):
                continue
            queue.append((dst, None))
    return list(dict.fromkeys(vocab))


def all_vocabularies(model: Model) -> list[Any]:
    """Every key of every table in the graph, and the lines of every asset file."""
    graph = model.graph
    words: list[Any] = []
    for node in graph:
        if node.op in TABLE_OPS:
            words.extend(table_keys(model, node.name))
    for a in model.assets:
        try:
            words.extend(Path(a.source_path).read_bytes().splitlines()[:10000])
        except OSError:
            continue
    return list(dict.fromkeys(w for w in words if isinstance(w, bytes)))


# --------------------------------------------------------------------------- values
def _rng(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def _numpy_dtype(dtype: int) -> np.dtype:
    return np.dtype(tf.as_dtype(dtype).as_numpy_dtype)


def _shape(shape: Sequence[int | None] | None, batch: int) -> list[int]:
    if shape is None:
        return [batch]
    out = []
    for i, d in enumerate(shape):
        out.append((batch if i == 0 else OTHER_DIM) if d is None or d < 0 else int(d))
    return out


def _words(rng: np.random.Generator, vocab: Sequence[Any], n: int, *, first: str | None = "hit",
           last: str | None = "miss") -> list[bytes]:
    """``n`` strings from ``vocab``, about :data:`OOV_RATE` of them out of vocabulary.

    ``first`` / ``last`` force the first / last value to be a ``"hit"`` or a ``"miss"`` (when ``n`` allows), so
    a batch exercises both real lookups and the OOV path.
    """
    vocab_b = [v if isinstance(v, bytes) else str(v).encode() for v in vocab]
    if not vocab_b:
        return [f"word{int(rng.integers(100))}".encode() for _ in range(n)]
    out = []
    for i in range(n):
        want = first if i == 0 else (last if i == n - 1 else None)
        miss = want == "miss" or (want is None and rng.random() < OOV_RATE)
        if miss:
            out.append(OOV_WORDS[int(rng.integers(len(OOV_WORDS)))])
        else:
            out.append(vocab_b[int(rng.integers(len(vocab_b)))])
    return out


def random_array(rng: np.random.Generator, dtype: int, shape: list[int], vocab: Sequence[Any] = ()) -> np.ndarray:
    """An array of ``dtype`` (enum) and ``shape`` with deterministic values (strings from ``vocab``)."""
    size = int(np.prod(shape)) if shape else 1
    if dtype == types_pb2.DT_STRING:
        return np.array(_words(rng, vocab, size), dtype=object).astype(bytes).reshape(shape)
    npd = _numpy_dtype(dtype)
    if npd.kind == "f":
        return rng.standard_normal(shape).astype(npd)
    if npd.kind in "iu":
        ints = [v for v in vocab if isinstance(v, (int, np.integer))]
        if ints:
            return np.array([ints[int(rng.integers(len(ints)))] for _ in range(size)], dtype=npd).reshape(shape)
        return rng.integers(0, 10, size=shape).astype(npd)
    if npd.kind == "b":
        return rng.random(shape) < 0.5
    if npd.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(npd)
    raise ValueError(f"cannot synthesize values of dtype {npd}")


def _feature_proto(feature: Any, dtype: int, values: Sequence[Any]) -> None:
    if dtype == types_pb2.DT_STRING:
        feature.bytes_list.value.extend(v if isinstance(v, bytes) else str(v).encode() for v in values)
    elif dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        feature.float_list.value.extend(float(v) for v in values)
    else:
        feature.int64_list.value.extend(int(v) for v in values)


def make_examples(features: Sequence[FeatureSpec], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` serialized ``tf.train.Example`` s (numpy object array of bytes) carrying ``features``."""
    out = []
    for i in range(n):
        ex = example_pb2.Example()
        for f in features:
            if f.kind == "dense":
                count = int(np.prod([d if d > 0 else 1 for d in (f.shape or [1])]))
            else:
                count = int(rng.integers(1, 3))
            if f.dtype == types_pb2.DT_STRING:
                first = "hit" if i == 0 else ("miss" if i == n - 1 else None)
                vals: list[Any] = _words(rng, f.vocabulary, count, first=first, last=None)
            else:
                vals = random_array(rng, f.dtype, [count], f.vocabulary).tolist()
            _feature_proto(ex.features.feature[f.key], f.dtype, vals)
        out.append(ex.SerializeToString())
    arr = np.empty(len(out), dtype=object)  # not "S": numpy strips trailing NUL bytes of serialized protos
    arr[:] = out
    return arr


def example_features(model: Model, tensor: str) -> list[FeatureSpec]:
    """Features (with vocabularies) that the graph parses from serialized examples in ``tensor``."""
    feats: dict[str, FeatureSpec] = {}
    for node in parse_nodes_for(model.graph, tensor):
        specs, value_tensors = parse_features(model.graph, node)
        for f in specs:
            if f.dtype == types_pb2.DT_STRING or _numpy_dtype(f.dtype).kind in "iu":
                f.vocabulary = vocabulary_for(model, value_tensors[f.key])
            feats.setdefault(f.key, f)
    return list(feats.values())


# --------------------------------------------------------------------------- signatures
def synthesize_input(model: Model, sig_key: str, input_key: str, spec: TensorSpec, *, batch: int = DEFAULT_BATCH,
                     seed: int = 0) -> np.ndarray:
    """A sample value for one signature input (see the module docstring)."""
    rng = _rng(seed, sig_key, input_key)
    if spec.components:
        raise ValueError(f"signature {sig_key!r} input {input_key!r} is sparse; give its values with --inputs")
    shape = _shape(spec.shape, batch)
    elements = math.prod(shape)
    if len(shape) > MAX_SYNTH_RANK or elements > MAX_SYNTH_ELEMENTS:
        what = f"rank {len(shape)}" if len(shape) > MAX_SYNTH_RANK else f"shape {spec.shape} ({elements:,} elements)"
        raise SignatureError(
            f"{model.source}: signature {sig_key!r} input {input_key!r} has {what}: too large to synthesize "
            "verification inputs; pass them with --inputs FILE.npz, or --no-verify")
    if spec.dtype == types_pb2.DT_STRING:
        feats = example_features(model, spec.name)
        if feats:
            n = int(np.prod(shape)) if shape else 1
            return make_examples(feats, n, rng).reshape(shape)
        vocab = vocabulary_for(model, spec.name) or all_vocabularies(model)
        return random_array(rng, spec.dtype, shape, vocab)
    return random_array(rng, spec.dtype, shape)


def synthesize_inputs(model: Model, keys: Iterable[str] | None = None, *, batch: int = DEFAULT_BATCH,
                      seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """``{signature key: {input key: array}}`` for the signatures ``keys`` (default: all)."""
    wanted = list(keys) if keys is not None else [k for k in model.signatures if not k.startswith("__")]
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in wanted:
        sig = model.signature(key)
        out[key] = {ik: synthesize_input(model, key, ik, spec, batch=batch, seed=seed)
                    for ik, spec in sig.inputs.items()}
    return out


__all__ = ["FeatureSpec", "example_features", "is_example_input", "make_examples", "synthesize_input",
           "synthesize_inputs", "table_keys", "vocabulary_for"]
