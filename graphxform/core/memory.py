"""Giving freed memory back to the operating system: big tensors come and go while a model is transformed.

A transform allocates and frees tensors of up to the model's size (a weight read, folded, written). glibc's
``malloc`` serves a block of 128 KiB or more with its own ``mmap``, unmapped when freed; but each time such a
block is freed it raises that threshold to the block's size (up to 32 MiB), so later tensors of that size come
from the heap, where freed memory stays part of the process: its peak memory then holds every tensor size that
ever was, not the tensors alive at once. And TensorFlow's sessions free their graph and buffers into the heap
when they close, memory the next tensors (served by ``mmap``) cannot reuse.

* :func:`keep_mmap_threshold`: fix the threshold at glibc's own default (128 KiB), so a big block is always
  returned when freed (once per process; left alone when ``MALLOC_MMAP_THRESHOLD_`` is set in the environment,
  the user's own choice). A process-wide setting, with a price in time (every big block is a fresh ``mmap``:
  ResNet50's transform takes ~40 % longer): the ``transform`` command sets it for its own process; library
  calls (``TransformGraph``, :func:`graphxform.jobs.transform.transform`) leave the caller's allocator alone;
* :func:`trim`: hand the heap's free pages back (``malloc_trim``), after a phase that freed much (a TensorFlow
  session closed, a run of the rules over, a folded weight's copies let go); :class:`Trimmer` trims as big
  tensors are let go one by one (the nodes moved into the output), so the holes of each size of weight do not
  add up. No garbage collection is forced: a full one in the caller's process costs more time than it gives
  back memory.

Both do nothing where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Container
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

#: glibc's ``M_MMAP_THRESHOLD`` ``mallopt`` parameter, and its default value.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024
#: A :class:`Trimmer` trims after each this many elements let go (512 KiB of float32): each trim gives back what
#: the next weights would not reuse, and costs, with the pages touched again after it, ~0.3 ms.
TRIM_ELEMENTS = 1 << 17


@lru_cache(maxsize=1)
def _libc() -> Any:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # pragma: no cover - a glibc without them
        return None


@lru_cache(maxsize=1)
def keep_mmap_threshold() -> bool:
    """Keep glibc's ``mmap`` threshold at 128 KiB for the rest of the process; True when it was set."""
    libc = _libc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    log.debug("malloc mmap threshold kept at %d bytes: %s", MMAP_THRESHOLD_BYTES, ok)
    return ok


def tensor_elements(tensor: Any) -> int:
    """Elements of a ``TensorProto``, from its shape (nothing copied; a negative size counts as 0)."""
    count = 1
    for d in tensor.tensor_shape.dim:
        count *= max(d.size, 0)
    return count


def const_elements(node: Any) -> int:
    """Elements of a ``Const`` node's tensor, from its shape (nothing copied); 0 for any other node."""
    if node.op != "Const" or "value" not in node.attr:  # (indexing a proto map would insert the key)
        return 0
    return tensor_elements(node.attr["value"].tensor)


class Trimmer:
    """Trims the heap each time ``every`` more tensor elements were let go (:meth:`let_go`): a loop that frees
    weights one by one while it allocates big blocks elsewhere gives their pages back as it goes, at the cost of
    one ``malloc_trim`` per ``every`` elements at most.

    ``kept``: the ids of nodes something else still holds (the caller's own ``GraphDef``, whose nodes a Graph
    shares): letting them go frees nothing, so they do not count.
    """

    def __init__(self, every: int = TRIM_ELEMENTS, *, kept: Container[int] = frozenset()) -> None:
        self.every = every
        self.kept = kept
        self.count = 0
        self.trims = 0
        self._pending = 0

    def let_go(self, elements: int) -> None:
        self.count += elements
        if self.count >= self.every:
            self.count = 0
            self.trims += 1
            trim()

    def passing(self, node: Any) -> Any:
        """``node``, about to be let go: counts its tensor's elements (the trim they call for comes one node later,
        once the caller no longer holds it)."""
        self.let_go(self._pending)
        self._pending = 0 if id(node) in self.kept else const_elements(node)
        return node


def trim() -> None:
    """Return the free pages of ``malloc``'s heaps to the operating system (no-op outside glibc)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_ELEMENTS", "Trimmer", "const_elements", "keep_mmap_threshold",
           "tensor_elements", "trim"]
