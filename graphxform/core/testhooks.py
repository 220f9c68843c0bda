"""A test hook: make a run pause at a named point, so that a test can signal the process exactly there.

Set ``GRAPHXFORM_TEST_PAUSE_AT`` to one or more point names (comma separated). When the process reaches one
of them, it writes ``"<point> <pid>"`` to the file named by ``GRAPHXFORM_TEST_PAUSE_MARKER`` (when set; written
atomically) and sleeps ``GRAPHXFORM_TEST_PAUSE_SECONDS`` (default 60) before going on. ``tests/test_faults.py``
waits for the marker, then sends SIGINT or SIGKILL: the signal provably arrives inside the point's stage.

Points:

* ``optimize:<stage>``: the start of each stage of :func:`graphxform.jobs.optimize.optimize` (``load``, ``inputs``,
  ``freeze``, ``transform``, ``export``, ``verify``);
* ``export:write``: a SavedModel export whose temporary directory holds the variables and assets, before
  ``saved_model.pb`` is written;
* ``export:swap``: ``--force`` over an existing OUT, after OUT was renamed aside and before the new one is
  renamed into place.

Outside tests the variable is unset and a pause point costs one environment lookup.
"""
from __future__ import annotations

import os
import time

PAUSE_AT = "GRAPHXFORM_TEST_PAUSE_AT"
PAUSE_MARKER = "GRAPHXFORM_TEST_PAUSE_MARKER"
PAUSE_SECONDS = "GRAPHXFORM_TEST_PAUSE_SECONDS"


def pause_point(name: str) -> None:
    """Pause here when ``GRAPHXFORM_TEST_PAUSE_AT`` names ``name`` (a test hook; see the module docstring)."""
    wanted = os.environ.get(PAUSE_AT)
    if not wanted or name not in wanted.split(","):
        return
    marker = os.environ.get(PAUSE_MARKER)
    if marker:
        tmp = f"{marker}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{name} {os.getpid()}\n")
        os.replace(tmp, marker)
    time.sleep(float(os.environ.get(PAUSE_SECONDS, "60")))


__all__ = ["PAUSE_AT", "PAUSE_MARKER", "PAUSE_SECONDS", "pause_point"]
