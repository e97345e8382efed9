"""A counter's samples turned into increases, vectorised per batch, with per-series state.

The ring keeps ``(min, max, sum, count)`` per series-minute. For a counter the aggregator
folds, instead of each sample's value, its **increase** since the series' previous sample:
``v - prev``, or ``v`` when ``v < prev`` (a reset: the counter restarted from 0, as Prometheus
counts it). A minute's ``sum`` is then exactly the counter's increase attributed to that
minute (each increase to the minute of the sample that ends it), and the rate over any bucket
is ``Σ sum / bucket seconds``: exact at every step and tier, since sums merge exactly.

- The first sample ever seen of a series is its baseline: folded with increase 0, so it
  counts (``count``) but adds nothing.
- A sample not newer than the series' newest one (late, or a duplicate time) cannot change
  the increase: it is folded with increase 0 (it counts, the rate ignores it).

Per series the state is the newest sample's time and value (``last_ts``, ``last_value``,
arrays by series id, ``-inf`` time for none). It is saved with each checkpoint and restored
from it, so a replay after a crash folds the same increases (``docs/exactly-once.md``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minutely.model import F64, I32, U32

#: where a stop on the embedded bus leaves the counter state for the next start (data dir)
COUNTER_FILE = "counters.npz"
_FIELDS = ("server_ids", "metric_ids", "last_ts", "last_value")


@dataclass(frozen=True, slots=True)
class CounterRows:
    """Counter state by name (what a checkpoint keeps): per series, its newest sample."""

    server_ids: U32
    metric_ids: U32
    last_ts: F64
    last_value: F64

    @staticmethod
    def empty() -> CounterRows:
        u = np.zeros(0, np.uint32)
        f = np.zeros(0, np.float64)
        return CounterRows(u, u, f, f)


class CounterState:
    """The newest sample of each counter series, by series id."""

    def __init__(self) -> None:
        self.last_ts = np.zeros(0, np.float64)
        self.last_value = np.zeros(0, np.float64)

    def _grow(self, n: int) -> None:
        have = len(self.last_ts)
        if n <= have:
            return
        size = max(n, 2 * have, 1024)
        ts = np.full(size, -np.inf)
        ts[:have] = self.last_ts
        value = np.zeros(size)
        value[:have] = self.last_value
        self.last_ts, self.last_value = ts, value

    def increases(self, series: I32, ts: F64, value: F64) -> F64:
        """Each sample's increase (module docstring), in the given order; advances the state."""
        n = len(series)
        out = np.zeros(n)
        if not n:
            return out
        self._grow(int(series.max()) + 1)
        order = np.lexsort((ts, series))  # by series, then time; stable for equal times
        s, t, v = series[order], ts[order], value[order]
        first = np.ones(n, np.bool_)
        first[1:] = s[1:] != s[:-1]
        before = np.empty(n)
        before[0] = -np.inf
        before[1:] = t[:-1]
        before[first] = -np.inf
        # a sample is fresh when newer than the state's newest and than the one before it
        fresh = t > np.maximum(before, self.last_ts[s])
        if not fresh.any():
            return out
        fs, ft, fv = s[fresh], t[fresh], v[fresh]
        k = len(fs)
        head = np.ones(k, np.bool_)
        head[1:] = fs[1:] != fs[:-1]
        prev = np.empty(k)
        prev[1:] = fv[:-1]
        prev[head] = self.last_value[fs[head]]
        based = ~head | np.isfinite(self.last_ts[fs])
        inc = np.where(fv >= prev, fv - prev, fv)
        inc[~based] = 0.0
        out[order[fresh]] = inc
        tail = np.ones(k, np.bool_)
        tail[:-1] = head[1:]
        self.last_ts[fs[tail]] = ft[tail]
        self.last_value[fs[tail]] = fv[tail]
        return out

    def known(self) -> I32:
        """Series ids that have a newest sample."""
        return np.flatnonzero(np.isfinite(self.last_ts)).astype(np.int32)

    def restore(self, series: I32, last_ts: F64, last_value: F64) -> None:
        """Take saved state (a checkpoint's): the newer of it and what is held wins."""
        if not len(series):
            return
        self._grow(int(series.max()) + 1)
        newer = last_ts > self.last_ts[series]
        self.last_ts[series[newer]] = last_ts[newer]
        self.last_value[series[newer]] = last_value[newer]


def write_counters(path: Path, rows: CounterRows) -> None:
    """Keep ``rows`` in ``path``, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **{k: getattr(rows, k) for k in _FIELDS})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_counters(path: Path) -> CounterRows:
    """What ``write_counters`` kept, or nothing."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return CounterRows(*(f[k] for k in _FIELDS))
    except FileNotFoundError:
        return CounterRows.empty()
