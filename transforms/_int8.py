"""int8 weight arithmetic for :mod:`quantize_weights`: symmetric scales, per channel or per tensor, and rounding
that keeps each channel's sum."""
from __future__ import annotations

import numpy as np


def symmetric_int8(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(q, max_abs)``: int8 values in [-127, 127] and the per-channel (``axis``) or per-tensor ``max|w|``.

    A channel of zeros gets ``max_abs = 1`` (its values stay 0), so nothing divides by zero. Per channel, the
    rounding is balanced (:func:`balanced_round`): each channel's int8 values sum to the nearest integer of
    its exact scaled sum.
    """
    if axis is None:
        max_abs = np.array(max(float(w.max(initial=0.0)), -float(w.min(initial=0.0))), np.float32)
        bshape: tuple[int, ...] = ()
    else:
        others = tuple(i for i in range(w.ndim) if i != axis)
        max_abs = np.maximum(w.max(axis=others), -w.min(axis=others)).astype(np.float32)
        bshape = tuple(w.shape[axis] if i == axis else 1 for i in range(w.ndim))
    max_abs = np.where(max_abs > 0, max_abs, np.float32(1.0)).astype(np.float32)
    inv = (np.float32(127.0) / max_abs).reshape(bshape)
    tmp = np.multiply(w, inv, dtype=np.float32)
    if axis is not None and w.size:
        return balanced_round(tmp, axis), max_abs
    np.rint(tmp, out=tmp)
    np.clip(tmp, -127, 127, out=tmp)
    return tmp.astype(np.int8), max_abs


def balanced_round(t: np.ndarray, axis: int) -> np.ndarray:
    """``t`` (values in [-127, 127]) rounded to int8 so that each channel (``axis``) keeps its sum.

    Plain rounding leaves each channel's values off by a random-walk sum of about ``sqrt(n / 12)`` steps; a
    consumer summing the channel over inputs with a common offset (post-ReLU activations are all positive)
    then gets that sum times the offset as a systematic error. Here the ``k`` values rounded furthest the
    other way are rounded up (or down) instead, ``k`` the whole number of steps the channel's sum is off by
    (among equal values, the first ones): every value still goes to one of its two nearest int8 steps, its
    error below one step, and the channel's rounding errors cancel.
    """
    rows = np.moveaxis(t, axis, 0)
    shape = rows.shape
    rows = rows.reshape(shape[0], -1)
    q = np.clip(np.rint(rows), -127, 127)
    frac = rows - q
    need = np.rint(rows.sum(1, dtype=np.float64) - q.sum(1, dtype=np.float64))
    if need.any():
        # per channel, the values to move first: rounded down the most (to go up) or up the most (to go down)
        key = np.where((need > 0)[:, None], np.where(q < 127, -frac, np.inf), np.where(q > -127, frac, np.inf))
        key += np.arange(key.shape[1]) * (1e-6 / key.shape[1])  # ties: the first moves (below float32's ulp)
        k = np.abs(need).astype(np.int64)
        limit = np.sort(key, axis=1)[np.arange(len(k)), np.clip(k - 1, 0, key.shape[1] - 1)]
        move = (key <= limit[:, None]) & np.isfinite(key) & (k > 0)[:, None]
        q += np.sign(need)[:, None] * move
    return np.moveaxis(q.reshape(shape), 0, axis).astype(np.int8)
