"""Columnar reductions over windows of buckets, and counter increases from minute partials.

Every function takes arrays of shape ``(series, buckets)`` and the exclusive end bucket of each
window (all windows of one call have the same width), and returns ``(series, len(ends))``.
Sliding minima and maxima use doubling: after ``k`` rounds ``level[j]`` covers ``2**k``
buckets, and a window of width ``w`` is the overlap of two of them, so a call costs
``O(buckets · log w)`` whatever the number of windows. Sums add the power-of-two blocks of
``w``'s binary digits (no prefix sums: a running total of large values would lose the small
ones to cancellation).
"""

from __future__ import annotations

import numpy as np

from minutely.model import F64, I64, Partials


def window_extreme(x: F64, ends: I64, width: int, ufunc: np.ufunc) -> F64:
    """``ufunc`` (``np.minimum`` or ``np.maximum``) over buckets ``[end - width, end)``."""
    level, span = x, 1
    while span * 2 <= width:
        level = ufunc(level[:, :-span], level[:, span:])
        span *= 2
    out: F64 = ufunc(level[:, ends - width], level[:, ends - span])
    return out


def window_sum(x: F64, ends: I64, width: int) -> F64:
    """The sum over buckets ``[end - width, end)``."""
    out = np.zeros((x.shape[0], len(ends)))
    level, span, pos = x, 1, ends - width
    while True:
        if width & span:
            out += level[:, pos]
            pos = pos + span
        if span * 2 > width:
            return out
        level = level[:, :-span] + level[:, span:]
        span *= 2


def counter_increases(parts: Partials, lookback: int) -> tuple[F64, F64]:
    """Per minute: how much a counter grew, and how many sample pairs that growth spans.

    The baseline of a minute is the last value before it: the max of the newest earlier
    minute with data, if it is at most ``lookback`` minutes back. With baseline ``b``:

    - ``min >= b``: no reset; the growth is ``max - b``;
    - ``max < b``: a reset between the two minutes; the counter restarted from 0, so the
      growth is ``max`` (the first value counts whole, as Prometheus counts it);
    - ``min < b <= max``: a reset inside the minute; ``(max - b) + min``;
    - no baseline: ``max - min``.

    Exact (Prometheus's counter arithmetic over the samples, the last one before the window as
    the baseline) when each minute's samples are non-decreasing, i.e. every reset falls
    between two minutes, and the minute after a reset stays below the value before it. A
    reset inside a minute makes that minute too low (it misses the growth after the reset)
    and the next one too high (its baseline is the pre-reset max, so it counts from zero):
    the two together are too high by the first value after the reset, which is near zero
    for a counter that restarted. Growth over a reset between minutes that climbs past the
    pre-reset value within one minute reads as a reset inside the minute.
    """
    has = parts.count > 0
    n = parts.count.shape[1]
    positions = np.broadcast_to(np.arange(n), has.shape)
    newest = np.maximum.accumulate(np.where(has, positions, -1), axis=1)
    prev = np.empty_like(newest)
    prev[:, 0] = -1
    prev[:, 1:] = newest[:, :-1]
    based = has & (prev >= 0) & (positions - prev <= lookback)
    b = np.take_along_axis(parts.max, np.maximum(prev, 0), axis=1)
    lo, hi = parts.min, parts.max
    grown = np.where(lo >= b, hi - b, np.where(hi < b, hi, hi - b + lo))
    growth = np.where(based, grown, np.where(has, hi - lo, 0.0))
    pairs = np.where(has, parts.count.astype(np.float64) - 1 + based, 0.0)
    return growth, pairs
