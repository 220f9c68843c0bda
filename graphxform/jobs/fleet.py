"""Finding the models of a fleet and naming their outputs, for :mod:`graphxform.jobs.batch`.

What a MODEL may be (:func:`find_models`): a SavedModel directory or a ``.pb``/``.pbtxt`` file; a directory that
holds models (found at any depth, without descending into a model); or a text file that lists paths, one a line.
Nothing here imports TensorFlow.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from graphxform.core.errors import GraphxformError

# (graphxform.savedmodel.read's SAVED_MODEL_FILES and GRAPH_DEF_SUFFIXES: that module imports TensorFlow, which
# this process needs neither to find models nor to skip the complete ones — a re-run with nothing to do starts
# no TensorFlow at all.)
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
GRAPH_DEF_SUFFIXES = (".pb", ".pbtxt")


# --------------------------------------------------------------------------- finding models
def is_model(path: Path) -> bool:
    """A SavedModel directory or a GraphDef file."""
    if path.is_dir():
        return any((path / f).is_file() for f in SAVED_MODEL_FILES)
    return path.is_file() and path.suffix in GRAPH_DEF_SUFFIXES


def _models_under(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if is_model(here):
            found.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [here / f for f in sorted(filenames) if Path(f).suffix in GRAPH_DEF_SUFFIXES]
    return sorted(found)


def _listed(list_file: Path) -> list[Path]:
    out = []
    for line in list_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            p = Path(line).expanduser()
            out.append(p if p.is_absolute() else list_file.parent / p)
    return out


def find_models(specs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The models named by ``specs`` (models, directories holding models, text files listing paths), in order,
    each once. A listed path that is not a model is kept: optimizing it fails and is recorded."""
    models: list[Path] = []
    for spec in specs:
        p = Path(spec).expanduser()
        if is_model(p):
            models.append(p)
        elif p.is_dir():
            under = _models_under(p)
            if not under:
                raise GraphxformError(f"{p}: holds no SavedModel (saved_model.pb) and no .pb/.pbtxt file; "
                                      "name models, directories of models or a text file listing them")
            models += under
        elif p.is_file():
            models += _listed(p)
        else:
            raise GraphxformError(f"{p}: no such file or directory; name models, directories of models or a text "
                                  "file listing them")
    seen: set[str] = set()
    unique = []
    for m in models:
        key = os.path.abspath(m)
        if key not in seen:
            seen.add(key)
            unique.append(m)
    return unique


def output_names(models: Sequence[Path]) -> list[str]:
    """One name under OUTDIR per model: its directory (or file stem) name; clashing names (``a/1``, ``b/1``, as
    TF Serving lays versions out) take parent directories until they differ (``a-1``, ``b-1``), then a number."""
    parts = [Path(os.path.abspath(m)).parts for m in models]

    def base(p: tuple[str, ...], depth: int) -> str:
        last = Path(p[-1]).stem if Path(p[-1]).suffix in GRAPH_DEF_SUFFIXES else p[-1]
        return "-".join([*p[-depth:-1], last] if depth > 1 else [last]) or "model"

    depth = [1] * len(models)
    for _ in range(max((len(p) for p in parts), default=0)):
        names = [base(p, d) for p, d in zip(parts, depth)]
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n, []).append(i)
        changed = False
        for group in (g for g in groups.values() if len(g) > 1):
            for d in range(max(depth[i] for i in group) + 1, max(len(parts[i]) for i in group)):
                if len({base(parts[i], d) for i in group}) == len(group):
                    for i in group:
                        depth[i] = d
                    changed = True
                    break
        if not changed:
            break
    names = [base(p, d) for p, d in zip(parts, depth)]
    taken: dict[str, int] = {}
    out = []
    for n in names:
        k = taken.get(n, 0)
        taken[n] = k + 1
        out.append(n if k == 0 else f"{n}-{k + 1}")
    return out


def input_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a model's files (relative names and contents, in a fixed order)."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        h.update(str(f.relative_to(p) if f != p else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return "sha256:" + h.hexdigest()
