"""graphxform: graph transforms for TensorFlow models on raw ``GraphDef`` protobufs.

>>> import graphxform
>>> model = graphxform.load("fixtures/estimator_dnn")   # doctest: +SKIP
>>> model.graph.op_histogram().most_common(3)            # doctest: +SKIP

The public face: everything a user script or a rules file needs is importable from here
(``from graphxform import Rule, Op, Any, Replacement, register``). The names are loaded on first use, so
``graphxform --help`` answers without importing TensorFlow. The layers behind them: ``graphxform.core``
(graph, names, signatures, op classes, node builder), ``graphxform.savedmodel`` (the format),
``graphxform.engine`` (rules, passes, patterns, registry, runner), ``graphxform.model`` (load, freeze,
export), ``graphxform.tf`` (running TensorFlow), ``graphxform.inspect``, ``graphxform.jobs`` and
``graphxform.cli``.
"""
from __future__ import annotations

import importlib as _importlib
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from graphxform.core.errors import GraphxformError  # noqa: E402

#: Public name -> the module that defines it.
_PUBLIC = {
    # models and graphs
    "load": "graphxform.model.loader", "Model": "graphxform.model.model", "export": "graphxform.model.export",
    "Graph": "graphxform.core.graph", "Signature": "graphxform.core.signature",
    "TensorSpec": "graphxform.core.signature", "TransformGraph": "graphxform.jobs.gtt",
    # writing rules
    "Rule": "graphxform.engine.rule", "Match": "graphxform.engine.rule", "Replacement": "graphxform.engine.rule",
    "Param": "graphxform.engine.rule", "Pass": "graphxform.engine.passes", "Context": "graphxform.engine.context",
    "register": "graphxform.engine.registry", "get_rule": "graphxform.engine.registry",
    "load_rules_file": "graphxform.engine.registry",
    "Op": "graphxform.engine.pattern", "Any": "graphxform.engine.pattern", "Const": "graphxform.engine.pattern",
    "OneOf": "graphxform.engine.pattern",
    # building and reading nodes
    "NodeDef": "graphxform.core.nodes", "make_node": "graphxform.core.nodes", "const": "graphxform.core.nodes",
    "copy_node": "graphxform.core.nodes", "with_inputs": "graphxform.core.nodes", "with_attrs": "graphxform.core.nodes",
    "colocation": "graphxform.core.nodes", "with_colocation": "graphxform.core.nodes", "attr": "graphxform.core.nodes",
    "tensor_proto": "graphxform.core.nodes", "parse_input": "graphxform.core.names",
    "tensor_name": "graphxform.core.names", "canon": "graphxform.core.names",
    # running rules
    "build_pipeline": "graphxform.engine.pipeline", "run_pipeline": "graphxform.engine.runner",
    "explain": "graphxform.engine.explain",
}

__version__ = "0.1.0"

__all__ = ["GraphxformError", "__version__", *_PUBLIC]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in _PUBLIC:
        value = getattr(_importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'graphxform' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
