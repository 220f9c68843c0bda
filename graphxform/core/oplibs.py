"""Op libraries: ops that TensorFlow itself lacks, registered by importing the package that defines them.

A model exported with TensorFlow Text (a tokenizer in the serving function)
holds ops such as ``WhitespaceTokenizeWithOffsets`` or
``TFText>FastWordpieceTokenizeWithOffsets`` that only exist once
``tensorflow_text`` is imported: it loads its kernels into the running
TensorFlow, and from then on every loader in the process (graphxform's,
``tf.saved_model.load``, the TF1 loader, the C++ loader) knows them.

:func:`ensure_ops` finds the op names of a graph (its functions too) that
TensorFlow does not know, maps them to the package that registers them
(:data:`OP_LIBRARIES`) and imports it; a package that is missing gives one
line naming the ops and the package to install. :func:`load_op_modules`
loads what the user names (``graphxform --load-ops MODULE``): a Python module
to import, or the path of an op library ``.so`` (``tf.load_op_library``).
"""
from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from graphxform.core.errors import ModelLoadError
from graphxform.core.opdefs import op_def

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpLibrary:
    """A package whose import registers ops: its module, its pip name, and how its op names look."""

    module: str
    package: str
    prefixes: tuple[str, ...] = ()
    names: frozenset[str] = frozenset()

    def owns(self, op: str) -> bool:
        return op in self.names or op.startswith(self.prefixes)


#: Packages whose ops graphxform recognizes in a graph and loads by importing the module.
OP_LIBRARIES: tuple[OpLibrary, ...] = (
    OpLibrary("tensorflow_text", "tensorflow-text", ("TFText>",), frozenset({
        "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
        "FindSourceOffsets", "MaxSpanningTree", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap", "PhraseTokenize",
        "RegexSplitWithOffsets", "RougeL", "SentenceFragments", "SentenceFragmentsV2", "SentencepieceDetokenizeOp",
        "SentencepieceIdToStringOp", "SentencepieceOp", "SentencepieceStringToIdOp", "SentencepieceTokenizeOp",
        "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp", "SplitMergeTokenizeWithOffsets",
        "TokenizerFromLogits", "UnicodeScriptTokenizeWithOffsets", "WhitespaceTokenizeWithOffsets",
        "WordpieceTokenizeWithOffsets",
    })),
    OpLibrary("tensorflow_decision_forests", "tensorflow-decision-forests", ("SimpleML",)),
    OpLibrary("tensorflow_io", "tensorflow-io", ("IO>",)),
    OpLibrary("tensorflow_recommenders_addons", "tensorflow-recommenders-addons", ("TFRA>",)),
)


def graph_op_names(graph_def: Any) -> set[str]:
    """Every op type used by the graph's nodes and by its library functions' bodies (function calls excluded)."""
    lib = {f.signature.name for f in graph_def.library.function}
    ops = {n.op for n in graph_def.node}
    for f in graph_def.library.function:
        ops.update(n.op for n in f.node_def)
    return ops - lib


def unknown_ops(graph_def: Any) -> set[str]:
    """Op types of the graph that TensorFlow's op registry does not know (yet)."""
    return {op for op in graph_op_names(graph_def) if op_def(op) is None}


def library_for(op: str) -> OpLibrary | None:
    """The known package that registers ``op``, if any."""
    return next((lib for lib in OP_LIBRARIES if lib.owns(op)), None)


def _tf_minor() -> str:
    return ".".join(tf.__version__.split(".")[:2])


def load_op_modules(modules: Iterable[str]) -> list[str]:
    """Import each module (``tensorflow_text``) or load each op library file (``path/to/_ops.so``).

    Returns what was loaded; raises :class:`ModelLoadError` naming the module
    and what to install when one cannot be loaded.
    """
    loaded = []
    for spec in modules:
        spec = spec.strip()
        if not spec:
            continue
        if spec.endswith(".so") or os.path.sep in spec:
            if not os.path.isfile(spec):
                raise ModelLoadError(f"--load-ops {spec}: no such op library file")
            try:
                tf.load_op_library(spec)
            except (tf.errors.NotFoundError, tf.errors.OpError, OSError) as exc:
                raise ModelLoadError(f"--load-ops {spec}: TensorFlow cannot load this op library "
                                     f"({str(exc).splitlines()[0]}); it must be built for TensorFlow "
                                     f"{_tf_minor()}") from None
        else:
            _import(spec, package=next((lib.package for lib in OP_LIBRARIES if lib.module == spec), spec))
        _forget_unknown()
        loaded.append(spec)
        log.info("loaded op library %s", spec)
    return loaded


def _import(module: str, package: str, why: str = "") -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.split(".")[0] != exc.name.split(".")[0]:
            raise ModelLoadError(f"{why}importing {module} failed: {exc}; reinstall {package}") from None
        raise ModelLoadError(f"{why}the Python module {module} is not installed; install it with "
                             f"`pip install {package}=={_tf_minor()}.*` (the release matching TensorFlow "
                             f"{_tf_minor()})") from None
    except Exception as exc:  # noqa: BLE001 - a broken op library raises anything from its import
        raise ModelLoadError(f"{why}importing {module} failed ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); install the {package} release "
                             f"matching TensorFlow {_tf_minor()}") from None


def _forget_unknown() -> None:
    """Ops looked up before a library was loaded were cached as unknown: look them up again."""
    op_def.cache_clear()


def ensure_ops(graph_def: Any, source: object) -> list[str]:
    """Load the known op libraries the graph needs; returns the modules imported.

    Ops that stay unknown and belong to no known package are left to the
    caller (the loader reports them where it meets them); ops of a known
    package that is not installed raise :class:`ModelLoadError` naming the
    ops and the package.
    """
    missing = unknown_ops(graph_def)
    if not missing:
        return []
    wanted: dict[OpLibrary, list[str]] = {}
    for op in sorted(missing):
        lib = library_for(op)
        if lib is not None:
            wanted.setdefault(lib, []).append(op)
    loaded = []
    for lib, ops in wanted.items():
        shown = ", ".join(ops[:3]) + (f" and {len(ops) - 3} more" if len(ops) > 3 else "")
        _import(lib.module, lib.package, why=f"{source}: the graph uses ops of {lib.package} ({shown}), but ")
        _forget_unknown()
        loaded.append(lib.module)
        log.info("%s: loaded op library %s for %s", source, lib.module, shown)
    return loaded


__all__ = ["OP_LIBRARIES", "OpLibrary", "ensure_ops", "graph_op_names", "library_for", "load_op_modules",
           "unknown_ops"]
