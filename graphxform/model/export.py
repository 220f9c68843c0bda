"""Exporting a :class:`~graphxform.model.model.Model`: a servable SavedModel directory, or a frozen ``.pb``/``.pbtxt``.

The SavedModel proto is built by :class:`~graphxform.savedmodel.write.SavedModelBuilder`; here the files are
written: ``saved_model.pb`` (streamed), ``variables/`` copied from the checkpoint when the model is not frozen
(an empty directory when it is), the asset files under ``assets/`` (``assets.extra/`` of the source too), and
``fingerprint.pb``. A GraphDef file gets a sidecar ``<out>.signatures.json`` with what it cannot hold.

Before anything is written every node of the graph and of its functions is checked against its ``OpDef``
(:mod:`graphxform.core.validate`). Writing is atomic (:mod:`graphxform.savedmodel.atomic`): everything goes
to a temporary directory beside ``out`` (same filesystem), is fsynced, and is renamed into place at the end.
An existing ``out`` is refused unless ``force`` (then it is replaced: old renamed aside, new renamed in, old
deleted). On any error the temporary files are removed. The model's source is never written to.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from graphxform.core.errors import ExportError
from graphxform.core.signature import TensorSpec
from graphxform.core.testhooks import pause_point
from graphxform.core.validate import describe, validate_nodes
from graphxform.model.candidates import candidate_inputs, candidate_outputs
from graphxform.model.model import Model
from graphxform.savedmodel import atomic
from graphxform.savedmodel.read import GRAPH_DEF_SUFFIXES, INIT_OP_SIGNATURE_KEY
from graphxform.savedmodel.wire import GraphWriter, check_proto_size, saved_model_chunks
from graphxform.savedmodel.write import SavedModelBuilder

log = logging.getLogger(__name__)


def export(model: Model, out: str | os.PathLike[str], *, force: bool = False,
           history: Sequence[Any] | None = None, allow_no_signatures: bool = True) -> Path:
    """Write ``model`` to ``out`` and return the path written.

    ``out`` ending in ``.pb`` / ``.pbtxt`` gives a frozen ``GraphDef`` (binary
    or text) with a sidecar ``<out>.signatures.json``; anything else gives a
    SavedModel directory. An existing ``out`` is refused (:class:`ExportError`)
    unless ``force``. ``out`` may not be the model's source nor lie inside it.

    Before anything is written every node of the graph and of its functions is
    checked against its ``OpDef`` (:mod:`graphxform.core.validate`); a node
    TensorFlow's C++ loader would refuse raises :class:`ExportError` naming it
    and, from ``history`` (the ``applied`` rewrites of a
    :class:`~graphxform.engine.runner.RunReport`), the rule that made it.
    ``allow_no_signatures=False`` refuses a SavedModel without signatures (a
    servable nothing can call).
    """
    out_path = Path(out).expanduser()
    check_target(model, out_path, force)
    if not allow_no_signatures and out_path.suffix not in GRAPH_DEF_SUFFIXES and not user_signatures(model):
        raise ExportError(no_signature_message(model, out_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix in GRAPH_DEF_SUFFIXES:
        return _export_graph_def_file(model, out_path, history)
    return _export_saved_model_dir(model, out_path, history)


def user_signatures(model: Model) -> list[str]:
    """The model's signature keys, without the init op's."""
    return [k for k in model.signatures if k != INIT_OP_SIGNATURE_KEY]


def no_signature_message(model: Model, out: Path) -> str:
    """Why a SavedModel without signatures is refused, with the candidate inputs/outputs ``inspect`` finds."""
    ins = [c["name"] for c in candidate_inputs(model.graph)][:6]
    outs = [c["name"] for c in candidate_outputs(model.graph)][:6]
    hint = (f"; candidate inputs: {', '.join(ins) or 'none found'}; candidate outputs: "
            f"{', '.join(outs) or 'none found'}")
    return (f"{out}: the SavedModel would have no signatures, so no server could call it (the input "
            f"{model.source or 'model'} names no inputs/outputs); name them with --input-names/--output-names "
            f"(graphxform.load(path, inputs=..., outputs=...)), or pass --allow-no-signatures to write it anyway"
            + hint)


def check_nodes(writer: GraphWriter, where: Path, history: Sequence[Any] | None = None) -> None:
    """Raise :class:`ExportError` when a node to be written breaks its ``OpDef`` (see :mod:`graphxform.core.validate`)."""
    violations = validate_nodes(writer.nodes.values(), writer.library)
    if violations:
        raise ExportError(
            f"{where}: not written: {len(violations)} node{'s' if len(violations) > 1 else ''} TensorFlow's C++ "
            f"loader (TF Serving's) would refuse: {describe(violations, history)}")


def builder_for(model: Model) -> SavedModelBuilder:
    """The SavedModel builder for ``model`` (its graph, signatures, tags, init op, tables, assets, variables)."""
    return SavedModelBuilder(model.graph, model.signatures, tags=model.tags, init_op=model.init_op,
                             table_initializers=model.table_initializers, assets=model.assets,
                             variables=model.variables, source=model.source)


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes of every regular file under ``path`` (or of the file itself)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def check_target(model: Model, out: Path, force: bool) -> None:
    """Raise :class:`ExportError` when ``out`` may not be written: it exists (without ``force``), or it is the
    model's source, lies inside it, or (with ``force``) contains it."""
    out_abs = Path(os.path.abspath(out))
    atomic.clean_stale(out_abs)
    src = Path(os.path.abspath(model.source)) if model.source else None
    if src is not None:
        src_real, out_real = src.resolve(), out_abs.resolve()
        if out_real == src_real:
            raise ExportError(f"{out}: is the model's input; write the output to another path (the input is never "
                              "modified)")
        if src_real in out_real.parents:
            raise ExportError(f"{out}: lies inside the input model {model.source}; choose a path outside it")
        if force and out_real in src_real.parents:
            raise ExportError(f"{out}: contains the input model {model.source}; replacing it would delete the input")
    if out_abs.exists() or out_abs.is_symlink():
        if not force:
            raise ExportError(f"{out}: already exists; pass --force (force=True) to replace it")
        if out.suffix in GRAPH_DEF_SUFFIXES and out_abs.is_dir():
            raise ExportError(f"{out}: is a directory but the name asks for a GraphDef file; remove it or rename")


def _checkpoint_files(prefix: Path) -> list[Path]:
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise ExportError(f"variables checkpoint {prefix}: {index.name} is missing; the input model is incomplete")
    data = sorted(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    return [index, *data]


def _write_saved_model_into(model: Model, tmp: Path, out: Path, history: Sequence[Any] | None = None) -> None:
    builder = builder_for(model)
    sm, assets = builder.build(with_graph=False)
    check_nodes(builder.graph, out, history)
    (tmp / "variables").mkdir()
    if model.variables is not None:
        prefix = Path(model.variables.checkpoint_prefix)
        for f in _checkpoint_files(prefix):
            # The index names shards by number only, so the prefix may be renamed to "variables".
            dst = tmp / "variables" / ("variables" + f.name[len(prefix.name):])
            if model.variables.owned:  # graphxform's own temporary checkpoint (kept variables): moved, not copied
                os.replace(f, dst)
                atomic.fsync_file(dst)
            else:
                atomic.copy_file(f, dst)
    if assets:
        (tmp / "assets").mkdir()
        for fname, src, _ in assets:
            atomic.copy_file(src, tmp / "assets" / fname)
    src_dir = Path(model.source) if model.source else None
    extra = src_dir / "assets.extra" if src_dir is not None and src_dir.is_dir() else None
    if extra is not None and extra.is_dir():
        shutil.copytree(extra, tmp / "assets.extra", symlinks=False, ignore=_links_out_of(src_dir))
        for f in (tmp / "assets.extra").rglob("*"):
            if f.is_file():
                atomic.fsync_file(f)
    check_proto_size(builder.graph, tmp.parent / tmp.name, "saved_model.pb")
    pause_point("export:write")
    atomic.write_bytes(tmp / "saved_model.pb", saved_model_chunks(sm, builder.graph))
    if model.variables is not None:  # TF's fingerprinting logs an error when there is no checkpoint
        _write_fingerprint(tmp)
    for d in sorted(atomic.walk_dirs(tmp), key=lambda p: len(p.parts), reverse=True):
        atomic.fsync_dir(d)


def _links_out_of(root: Path) -> Any:
    """A ``copytree`` ignore function: skip symlinks that lead outside ``root`` (never copy host files)."""
    top = root.resolve()

    def ignore(directory: str, names: list[str]) -> list[str]:
        skipped = []
        for name in names:
            p = Path(directory) / name
            if p.is_symlink() and top not in p.resolve().parents:
                log.warning("%s: not copied: it is a symlink to %s, outside the model", p, p.resolve())
                skipped.append(name)
        return skipped
    return ignore


def _write_fingerprint(export_dir: Path) -> None:
    """``fingerprint.pb`` as TF writes it (best effort: older TF builds lack the helper)."""
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting as fp
    except ImportError:  # pragma: no cover
        return
    try:
        data = fp.CreateFingerprintDef(str(export_dir))
    except Exception as exc:  # noqa: BLE001 - optional metadata, never fail the export on it
        log.debug("no fingerprint.pb written: %s", exc)
        return
    atomic.write_bytes(export_dir / "fingerprint.pb", data)


def _export_saved_model_dir(model: Model, out: Path, history: Sequence[Any] | None = None) -> Path:
    tmp = atomic.new_dir(out)
    try:
        _write_saved_model_into(model, tmp, out, history)
        atomic.move_into_place(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ExportError):
            raise ExportError(str(exc).replace(str(tmp), str(out))) from exc
        if isinstance(exc, OSError):
            raise atomic.write_error(out, exc) from exc
        raise
    log.info("wrote SavedModel %s", out)
    return out


def signatures_json(model: Model) -> dict[str, Any]:
    """What a frozen ``.pb`` cannot hold: signatures (tensor names, dtypes, shapes), init op and assets."""
    sigs: dict[str, Any] = {}
    inputs: list[str] = []
    outputs: list[str] = []

    def spec_json(spec: TensorSpec) -> dict[str, Any]:
        d: dict[str, Any] = {"name": spec.name, "dtype": spec.dtype_name, "shape": spec.shape}
        if spec.components:
            d["components"] = dict(spec.components)
        return d

    for key, sig in model.signatures.items():
        if key == INIT_OP_SIGNATURE_KEY:
            continue
        sigs[key] = {
            "method_name": sig.method_name,
            "inputs": {k: spec_json(s) for k, s in sig.inputs.items()},
            "outputs": {k: spec_json(s) for k, s in sig.outputs.items()},
        }
        for s in sig.inputs.values():
            inputs.extend(t for t in s.tensor_names() if t not in inputs)
        for s in sig.outputs.values():
            outputs.extend(t for t in s.tensor_names() if t not in outputs)
    return {
        "inputs": inputs,
        "outputs": outputs,
        "signatures": sigs,
        "init_op": model.init_op,
        "table_initializers": list(model.table_initializers),
        # "source": the file the model read the asset from (a GraphDef file has no assets/ directory); runners of
        # the .pb feed it to the asset's path tensor before running the init op.
        "assets": [{"filename": a.filename, "tensor": a.tensor_name, "source": str(Path(a.source_path).resolve())}
                   for a in model.assets],
    }


def _export_graph_def_file(model: Model, out: Path, history: Sequence[Any] | None = None) -> Path:
    graph = GraphWriter(model.graph)
    check_nodes(graph, out, history)
    check_proto_size(graph, out, "GraphDef")
    data: bytes | Iterator[bytes]
    if out.suffix == ".pbtxt":
        data = text_format.MessageToString(graph.to_graph_def()).encode()
    else:
        data = graph.chunks()
    sidecar = out.with_name(out.name + ".signatures.json")
    kept_out = [a.filename for a in model.assets]
    if model.signatures or kept_out:
        log.warning(
            "%s: a GraphDef file keeps no signatures, assets or init op; they are written to %s "
            "(write a directory instead of %s to get a servable SavedModel)", out, sidecar.name, out.suffix,
        )
    tmp_files: list[Path] = []
    try:
        tmp_name = atomic.new_file(out)
        tmp_files.append(tmp_name)
        atomic.write_bytes(tmp_name, data)
        side_tmp = None
        if model.signatures:
            side_tmp = atomic.new_file(out, "sig-")
            tmp_files.append(side_tmp)
            atomic.write_bytes(side_tmp, (json.dumps(signatures_json(model), indent=2) + "\n").encode())
        os.replace(tmp_name, out)
        tmp_files.remove(tmp_name)
        if side_tmp is not None:
            os.replace(side_tmp, sidecar)
            tmp_files.remove(side_tmp)
        atomic.fsync_dir(out.parent)
    except BaseException as exc:
        for f in tmp_files:
            f.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise atomic.write_error(out, exc) from exc
        raise
    log.info("wrote GraphDef %s (%d nodes)", out, len(graph.nodes))
    return out


__all__ = ["builder_for", "check_target", "dir_size", "export", "no_signature_message", "signatures_json",
           "user_signatures"]
