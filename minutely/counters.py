"""A counter's samples turned into increases, per batch in compiled passes, with per-series state.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt

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
        #: per series, the newest time seen in the batch being checked (-inf between batches)
        self._scratch = np.zeros(0, np.float64)

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
        self._scratch = np.full(size, -np.inf)

    def increases(self, series: I32, ts: F64, value: F64) -> F64:
        """Each sample's increase (module docstring), in the given order; advances the state.

        Each series' samples are visited in time order: in the order given when that is
        already so (an agent sends a counter's samples in order), else sorted by (series,
        time); one compiled pass then reads and writes the state."""
        n = len(series)
        out = np.zeros(n)
        if not n:
            return out
        self._grow(int(series.max()) + 1)
        in_order = _in_order(series, ts, self._scratch)
        # sorted by series, then time (stable for equal times), only when some series is not
        order = np.arange(n) if in_order else np.lexsort((ts, series))
        _walk(order, series, ts, value, self.last_ts, self.last_value, out)
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


def _in_order_py(series: I32, ts: F64, scratch: F64) -> bool:
    """Whether each series' samples come in time order (equal times allowed); leaves
    ``scratch`` all ``-inf`` again."""
    ordered = True
    for i in range(series.shape[0]):
        s = series[i]
        if ts[i] < scratch[s]:
            ordered = False
        scratch[s] = ts[i]
    for i in range(series.shape[0]):
        scratch[series[i]] = -np.inf
    return ordered


def _walk_py(
    order: npt.NDArray[np.intp],
    series: I32,
    ts: F64,
    value: F64,
    last_ts: F64,
    last_value: F64,
    out: F64,
) -> None:
    """Visit the samples in ``order`` (each series' in time order): a sample newer than its
    series' newest gets its increase over it (0 for a baseline) and becomes the newest."""
    for k in range(order.shape[0]):
        i = order[k]
        s = series[i]
        t = ts[i]
        if t <= last_ts[s]:
            continue
        v = value[i]
        if last_ts[s] != -np.inf:
            prev = last_value[s]
            out[i] = v - prev if v >= prev else v
        last_ts[s] = t
        last_value[s] = v


#: compiled: a numpy spelling makes a pass per temporary (about twenty), this one pass
_in_order: Callable[..., bool] = numba.njit(nogil=True, cache=True)(_in_order_py)
_walk: Callable[..., None] = numba.njit(nogil=True, cache=True)(_walk_py)


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
