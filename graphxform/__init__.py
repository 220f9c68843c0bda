"""graphxform: graph transforms for TensorFlow models on raw ``GraphDef`` protobufs.

>>> import graphxform
>>> model = graphxform.load("fixtures/estimator_dnn")   # doctest: +SKIP
>>> model.graph.op_histogram().most_common(3)            # doctest: +SKIP
"""
from __future__ import annotations

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from graphxform.core.errors import GraphxformError  # noqa: E402

_LAZY = {"Graph": "graphxform.core.graph", "Model": "graphxform.model.model", "Signature": "graphxform.model.model",
         "TensorSpec": "graphxform.model.model"}


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Graph and Model import TensorFlow; load them on first use so `graphxform --help` stays fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'graphxform' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = ["Graph", "GraphxformError", "Model", "Signature", "TensorSpec", "load", "TransformGraph", "__version__"]


def load(path: str | _os.PathLike[str], tags: list[str] | str | None = None, **kwargs):  # type: ignore[no-untyped-def]
    """Load a SavedModel directory (TF1/Estimator or TF2) or a frozen ``.pb``/``.pbtxt`` into a :class:`Model`."""
    from graphxform.model.loader import load as _load

    return _load(path, tags=tags, **kwargs)


def TransformGraph(graph_def, inputs, outputs, transforms):  # type: ignore[no-untyped-def]  # noqa: N802
    """Drop-in for ``tensorflow.tools.graph_transforms.TransformGraph``: returns a new ``GraphDef``."""
    from graphxform.jobs.gtt import TransformGraph as _tg

    return _tg(graph_def, inputs, outputs, transforms)
