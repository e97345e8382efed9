"""The hot ring: the last ``W`` minutes of every series, in memory (the seed's ring buffer).

Layout (``S`` = series capacity, ``W`` = minutes in the hot window, ``L`` = live minutes)::

    ring (series-major, laid out for reads)          live (time-major, laid out for writes)
            slot 0   slot 1  ...  slot W-1                  series 0  series 1 ... series S-1
    s 0   [ min max sum count | ...            ]     row 0  [ min max sum count | ...       ]
    s 1   [                                    ]     ...
    ...                                              row L-1[                               ]
    s S-1 [                                    ]
    slot_minute[W]: the minute each slot holds       live_minute[L]: the minute each row holds

Minute ``m`` lives in ring slot ``m % W`` or live row ``m % L``. Every slot and row is stamped
with the minute it holds, so a slot left over from an earlier lap reads as empty (whisper's
trick) and wrap-around needs no sweep.

Points for the newest ``L`` minutes fold into the *live* rows: one contiguous row per minute,
so a second of the whole fleet touches one compact row and the fold is a handful of
``ufunc.at`` calls. When the newest minute moves past a live row, the row is copied into its
ring column once ("a minute's write happens once") and the row is reset. The two hot reads,
one server's series and one metric's series over a range, are then row gathers of the
series-major ring plus at most ``L`` columns from the live rows.

Points for older minutes still inside the window (late points, backfill) are reduced to one
partial per (series, minute) and merged exactly into the ring. Points at or beyond ``W``
minutes behind the newest minute are expired and counted, never merged.

Read and fold take the ring's lock, so a query sees either all of a batch or none of it.
Empty entries are those with ``count == 0``; the ring's other fields are then undefined, which
lets new capacity be lazily zeroed memory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from minutely.model import F64, I32, I64, Partials, merge, reduce_by_key

_NO_MINUTE = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class FoldResult:
    """What one fold did: points merged, and points too old for the window."""

    folded: int
    expired: int


class HotRing:
    """Minute partials for every series over the last ``minutes`` minutes."""

    def __init__(self, minutes: int = 2880, live_minutes: int = 4, capacity: int = 1024) -> None:
        if minutes < live_minutes + 1:
            msg = f"hot window of {minutes} minutes must exceed live_minutes={live_minutes}"
            raise ValueError(msg)
        self.minutes = minutes
        self.live_minutes = live_minutes
        self.lock = threading.RLock()
        self._cap = 0
        self._ring = Partials(
            np.zeros((0, minutes)),
            np.zeros((0, minutes)),
            np.zeros((0, minutes)),
            np.zeros((0, minutes), dtype=np.uint32),
        )
        self._live = Partials.empty((live_minutes, 0))
        self.slot_minute = np.full(minutes, _NO_MINUTE, dtype=np.int64)
        self.live_minute = np.full(live_minutes, _NO_MINUTE, dtype=np.int64)
        #: the newest minute any point has reached (None before the first point)
        self.head: int | None = None
        self.expired_points = 0
        self._grow(capacity)

    # -- capacity --------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def nbytes(self) -> int:
        ring = self._ring
        live = self._live
        return sum(a.nbytes for a in (*ring.fields(), *live.fields()))

    @property
    def bytes_per_series_minute(self) -> float:
        """Memory per series-minute held, live rows included."""
        return self.nbytes / max(1, self._cap * self.minutes)

    def _grow(self, needed: int) -> None:
        cap = max(self._cap, 1024)
        while cap < needed:
            cap *= 2
        if cap == self._cap:
            return
        old, n = self._ring, self._cap
        w = self.minutes
        # np.zeros is lazily mapped: untouched capacity costs address space, not memory.
        ring = Partials(
            np.zeros((cap, w)),
            np.zeros((cap, w)),
            np.zeros((cap, w)),
            np.zeros((cap, w), dtype=np.uint32),
        )
        for dst, src in zip(ring.fields(), old.fields(), strict=True):
            dst[:n] = src
        live = Partials.empty((self.live_minutes, cap))
        for dst, src in zip(live.fields(), self._live.fields(), strict=True):
            dst[:, :n] = src
        self._ring, self._live, self._cap = ring, live, cap

    # -- writes ----------------------------------------------------------------------------

    def fold(self, series: I32, minutes: I64, values: F64) -> FoldResult:
        """Merge raw points (series id, minute, value) into the window."""
        n = int(series.shape[0])
        if n == 0:
            return FoldResult(0, 0)
        with self.lock:
            top = int(series.max()) + 1
            if top > self._cap:
                self._grow(top)
            newest = int(minutes.max())
            if self.head is None or newest > self.head:
                self._advance(newest)
            head = self.head
            assert head is not None
            live_from = head - self.live_minutes + 1
            ring_from = head - self.minutes + 1
            if int(minutes.min()) >= live_from:
                self._fold_live(series, minutes, values)
                return FoldResult(n, 0)
            live = minutes >= live_from
            ring = ~live & (minutes >= ring_from)
            expired = n - int(live.sum()) - int(ring.sum())
            if live.any():
                self._fold_live(series[live], minutes[live], values[live])
            if ring.any():
                self._fold_ring(series[ring], minutes[ring], values[ring])
            self.expired_points += expired
            return FoldResult(n - expired, expired)

    def _fold_live(self, series: I32, minutes: I64, values: F64) -> None:
        rows = minutes % self.live_minutes
        flat = rows * self._cap + series
        live = self._live
        np.minimum.at(live.min.reshape(-1), flat, values)
        np.maximum.at(live.max.reshape(-1), flat, values)
        np.add.at(live.sum.reshape(-1), flat, values)
        np.add.at(live.count.reshape(-1), flat, np.uint32(1))

    def _fold_ring(self, series: I32, minutes: I64, values: F64) -> None:
        w = self.minutes
        for minute in np.unique(minutes).tolist():
            self._claim_slot(minute)
        keys = series.astype(np.int64) * w + minutes % w
        uniq, parts = reduce_by_key(keys, values)
        rows, slots = uniq // w, uniq % w
        ring = self._ring
        old = Partials(
            ring.min[rows, slots],
            ring.max[rows, slots],
            ring.sum[rows, slots],
            ring.count[rows, slots],
        )
        new = merge(old, parts)
        ring.min[rows, slots] = new.min
        ring.max[rows, slots] = new.max
        ring.sum[rows, slots] = new.sum
        ring.count[rows, slots] = new.count

    def _claim_slot(self, minute: int) -> None:
        """Make ``minute``'s ring slot hold that minute, emptying an older lap's data."""
        slot = minute % self.minutes
        if self.slot_minute[slot] != minute:
            self._ring.count[:, slot] = 0
            self.slot_minute[slot] = minute

    def _advance(self, newest: int) -> None:
        """Move the head to ``newest``: flush live rows that fall behind into the ring."""
        lm = self.live_minutes
        keep_from = newest - lm + 1
        live = self._live
        for row in range(lm):
            minute = int(self.live_minute[row])
            if minute != _NO_MINUTE and minute < keep_from:
                self._flush_row(row, minute)
        for minute in range(max(keep_from, (self.head or keep_from - 1) + 1), newest + 1):
            row = minute % lm
            self.live_minute[row] = minute
            live.min[row] = np.inf
            live.max[row] = -np.inf
            live.sum[row] = 0.0
            live.count[row] = 0
        self.head = newest

    def _flush_row(self, row: int, minute: int) -> None:
        slot = minute % self.minutes
        ring, live = self._ring, self._live
        ring.min[:, slot] = live.min[row]
        ring.max[:, slot] = live.max[row]
        ring.sum[:, slot] = live.sum[row]
        ring.count[:, slot] = live.count[row]
        self.slot_minute[slot] = minute
        self.live_minute[row] = _NO_MINUTE

    # -- reads -----------------------------------------------------------------------------

    def oldest_minute(self) -> int | None:
        """The oldest minute the window still holds (None before the first point)."""
        return None if self.head is None else self.head - self.minutes + 1

    def read(self, series: I32, first: int, count: int) -> Partials:
        """Partials of ``series`` × minutes ``[first, first + count)``; empty outside the window."""
        n = int(series.shape[0])
        out = Partials(
            np.zeros((n, count)),
            np.zeros((n, count)),
            np.zeros((n, count)),
            np.zeros((n, count), dtype=np.uint32),
        )
        with self.lock:
            if self.head is None or n == 0 or count <= 0:
                return out
            lo = max(first, self.head - self.minutes + 1)
            hi = min(first + count, self.head + 1)
            if lo >= hi:
                return out
            rows = series[series < self._cap]
            if rows.shape[0] != n:  # ids beyond capacity have no data yet
                return self._read_known(series, first, count, out)
            self._read_ring(rows, first, lo, hi, out)
            self._read_live(rows, first, lo, hi, out)
        return out

    def _read_known(self, series: I32, first: int, count: int, out: Partials) -> Partials:
        known = np.flatnonzero(series < self._cap)
        part = self.read(series[known], first, count)
        for dst, src in zip(out.fields(), part.fields(), strict=True):
            dst[known] = src
        return out

    def _read_ring(self, rows: I32, first: int, lo: int, hi: int, out: Partials) -> None:
        w = self.minutes
        ring = self._ring
        # The range [lo, hi) is at most W minutes: one or two contiguous runs of slots.
        start = lo
        while start < hi:
            slot = start % w
            stop = min(hi, start + (w - slot))
            s0, s1 = slot, slot + (stop - start)
            o0, o1 = start - first, stop - first
            out.min[:, o0:o1] = ring.min[rows, s0:s1]
            out.max[:, o0:o1] = ring.max[rows, s0:s1]
            out.sum[:, o0:o1] = ring.sum[rows, s0:s1]
            out.count[:, o0:o1] = ring.count[rows, s0:s1]
            stale = self.slot_minute[s0:s1] != np.arange(start, stop)
            if stale.any():
                out.count[:, o0:o1][:, stale] = 0
            start = stop

    def _read_live(self, rows: I32, first: int, lo: int, hi: int, out: Partials) -> None:
        live = self._live
        for row in range(self.live_minutes):
            minute = int(self.live_minute[row])
            if minute == _NO_MINUTE or not lo <= minute < hi:
                continue
            col = minute - first
            out.min[:, col] = live.min[row, rows]
            out.max[:, col] = live.max[row, rows]
            out.sum[:, col] = live.sum[row, rows]
            out.count[:, col] = live.count[row, rows]
