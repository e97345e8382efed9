"""Load the compiled kernels of folding, sealing and reading at start-up.

numba compiles a kernel at its first call, or loads it from its cache on disk; a fresh install
has no cache, and compiling the ring's codec and merges takes seconds of CPU under the ring's
lock, which the first fold would hold while ``/api/v1/status`` and queries wait. So a node
runs each kernel once on a throwaway ring and counter state before it serves, with the same
array types the real calls use (numba compiles once per type signature).
"""

from __future__ import annotations

import numpy as np

from minutely.buckets import place_cells
from minutely.counters import CounterState
from minutely.hot import HotRing
from minutely.model import Partials

#: a small ring that seals, compacts and merges late partials within a few dozen minutes
_BLOCK_MINUTES = 4
_WINDOW = 32


def compiled() -> None:
    """Run each compiled kernel of the fold, seal, compact, late-merge and read paths once."""
    counters = CounterState()
    series = np.array([0, 1, 2, 0], np.int32)
    counters.increases(series, np.array([0.0, 0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    ring = HotRing(
        minutes=_WINDOW,
        capacity=8,
        block=4,
        block_minutes=_BLOCK_MINUTES,
        grace_minutes=4,
        compact_minutes=2 * _BLOCK_MINUTES,
        summary_minutes=2 * _BLOCK_MINUTES,
    )
    try:
        _exercise(ring, series)
    finally:
        ring.close()
    _place()


def _exercise(ring: HotRing, series: np.ndarray) -> None:
    values = np.array([0.5, 1.25, -3.0, 1e300])
    for minute in range(2 * _WINDOW):
        ring.fold(series, np.full(series.shape[0], minute, np.int64), values + minute)
    late = Partials(values, values + 1.0, 2 * values + 1.0, np.ones(4, np.uint32))
    first = 2 * _WINDOW - _WINDOW + 1
    ring.merge_partials(series, np.array([first, first, first + 1, first + 8], np.int64), late)
    ring.load(series, np.array([first + 2] * 4, np.int64), late)
    rows = np.arange(3, dtype=np.int32)
    for step in (1, _BLOCK_MINUTES, 2 * _BLOCK_MINUTES):
        ring.read_buckets(rows, first - 1, 3 * 2 * _BLOCK_MINUTES, step)
    ring.live_partials()


def _place() -> None:
    """The store reader's placement of answer cells into a dense block."""
    out = Partials.zeros(2)
    one = np.zeros(1, np.uint32)
    place_cells(
        np.zeros(1, np.int64), one, one, np.zeros(1), np.zeros(1), np.zeros(1), one,
        *out.fields(), 2,
    )  # fmt: skip
