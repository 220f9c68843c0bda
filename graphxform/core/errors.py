"""Exceptions raised by graphxform.

Every error names the file or node it is about and says what to do. The CLI
turns :class:`GraphxformError` into a one-line message and exit code 2.
"""
from __future__ import annotations


class GraphxformError(Exception):
    """Base class of every error graphxform raises on purpose."""

    exit_code = 2


class ModelLoadError(GraphxformError):
    """A path could not be read as a model (missing, corrupt, unknown tags)."""


class GraphError(GraphxformError):
    """A graph operation was refused (dangling input, protected node, cycle)."""


class SignatureError(GraphxformError):
    """A signature key or tensor is unknown."""


class RuleError(GraphxformError):
    """A rule is unknown, badly parameterised, or failed while rewriting."""


class FixpointError(RuleError):
    """The runner did not reach a fixpoint (step limit or oscillation)."""


class ExportError(GraphxformError):
    """The model could not be written."""


class VerificationError(GraphxformError):
    """Two models disagree beyond tolerance."""

    exit_code = 1
