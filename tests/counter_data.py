"""Counters with resets, and their increases per minute computed the plain way with numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Counters:
    """Samples of ``n`` counter series (``series`` numbers 0..n-1), in time order."""

    series: npt.NDArray[np.int64]
    ts: F64
    value: F64


def make_counters(n: int, start: float, seconds: int, seed: int, resets: int = 3) -> Counters:
    """Each series samples about every 7 s (jittered) and restarts from 0 a few times."""
    rng = np.random.default_rng(seed)
    parts_s, parts_t, parts_v = [], [], []
    for s in range(n):
        ts = start + np.cumsum(rng.uniform(1.0, 13.0, seconds // 7))
        ts = ts[ts < start + seconds]
        grow = rng.integers(0, 1000, len(ts)).astype(np.float64)
        value = np.cumsum(grow) + rng.integers(0, 10**6)
        for at in np.sort(rng.integers(1, max(2, len(ts)), resets)):  # restarts, from 0
            value[at:] -= value[at] - grow[at]
        parts_s.append(np.full(len(ts), s))
        parts_t.append(ts)
        parts_v.append(value)
    series = np.concatenate(parts_s)
    ts = np.concatenate(parts_t)
    order = np.argsort(ts, kind="stable")
    return Counters(series[order], ts[order], np.concatenate(parts_v)[order])


def increases(c: Counters) -> F64:
    """Each sample's increase over the one before it of its series (a drop is a reset: the new
    value), 0 for a series' first sample; one sample at a time, as Prometheus would."""
    out = np.zeros(len(c.ts))
    for s in np.unique(c.series):
        at = np.flatnonzero(c.series == s)
        at = at[np.argsort(c.ts[at], kind="stable")]
        v = c.value[at]
        d = np.diff(v)
        out[at[1:]] = np.where(d >= 0, d, v[1:])
    return out


def per_minute(c: Counters, n: int, first_minute: int, minutes: int) -> F64:
    """The increase of each series in each minute: shape (n, minutes)."""
    out = np.zeros((n, minutes))
    col = (c.ts // 60).astype(np.int64) - first_minute
    np.add.at(out, (c.series, col), increases(c))
    return out
