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


#: Lines of TensorFlow's error messages that say where, not what (dropped by :func:`tf_error_summary`).
_TF_NOISE = ("Graph execution error", "Detected at node", "Detected in node", "Node:", "[[{{node", "[[node",
             "Original stack trace", "Traceback (most recent call last)", "File ", "Op:", "Stack trace")


def tf_error_summary(message: str) -> str:
    """The line of a TensorFlow error message that says what went wrong.

    ``OpError.message`` from a graph run starts with ``Graph execution error:`` and
    ``Detected at node …`` lines (and may carry stack traces); the cause —
    ``Checksum does not match …``, ``Key dense/kernel not found in checkpoint`` —
    comes after them.

    >>> tf_error_summary("Graph execution error:\\n\\nDetected at node 'r' defined at (most recent call last):\\n"
    ...                  "Node: 'r'\\nData loss: Checksum does not match\\n\\t [[{{node r}}]]")
    'Data loss: Checksum does not match'
    """
    for raw in message.splitlines():
        line = raw.strip()
        if not line or raw[:1].isspace() or line.startswith(_TF_NOISE):
            continue
        return line
    return " ".join(message.split())
