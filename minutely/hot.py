"""The hot ring: the last ``W`` minutes of every series, in memory, closed blocks compressed.

Layout (``S`` = series that exist, ``L`` = live minutes, ``B`` = ``seal_minutes``, ``C`` =
``compact_minutes``; time runs left to right)::

    compacted blocks (C min)   hour blocks (B min)   open blocks (B min)     live rows (L)
    [ arena | offset, length | [ arena | ...     ] [ min max sum count ] [ min max sum count ]
    [ summary per B minutes  ] [ summary       ]   [ (S, B) each      ]  [ (L, S) each      ]
    oldest ...                                                                       head

- **Live rows** (time-major, one row per minute): every point of the newest ``L`` minutes
  folds here, a handful of ``ufunc.at`` calls per batch. When the head moves past a row, the
  row is written once into its column of the open block and handed to the sink.
- **Open blocks** (series-major, ``B`` minutes from a multiple of ``B``): uncompressed, so
  flushes and late points are plain array writes. A block closes when none of its minutes is
  live any more; at most two are open. Their rows grow with the series that exist, never in
  fixed blocks of unused rows.
- **Closed blocks**: each series' ``B`` (later ``C``) minutes as one blob of
  ``minutely.blockcodec`` in the block's arena (one numpy buffer; offset and length per
  series), plus an uncompressed summary per ``B`` minutes (min, max, sum, count). Once every
  hour of a ``C``-minute span is closed, its hour blocks are compacted into one block: longer
  blocks compress better. A block expires whole, when its last minute leaves the window.

Late points and loads into a closed block decode the touched series, merge and re-encode
them (the new blobs are appended; the arena is repacked when half of it is stale). Reads
merge straight into the caller's buckets: a bucket that covers whole ``B``-minute spans takes
the summaries and decodes nothing; otherwise only the asked series × overlapping blocks are
decoded, on a small thread pool (pcodec releases the GIL), and merged by one compiled pass.

Points at or beyond ``W`` minutes behind the newest minute are expired and counted (or handed
to the sink), never merged. Read and fold take the ring's lock, so a query sees either all of a
batch or none of it. Empty entries are those with ``count == 0``; their other fields are then
undefined. Sealing and compaction run inside the call that moves the head, under the lock
(their cost: docs/performance.md; docs/hot-ring.md says why the layout is what it is).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from minutely import blockcodec
from minutely.buckets import merge_slots
from minutely.model import (
    F64,
    I32,
    I64,
    U32,
    Partials,
    merge,
    reduce_by_key,
    reduce_partials_by_key,
    restep,
)

#: Receives what the ring has merged and not handed on yet: ``(series, minutes, partials)``,
#: each point in exactly one call. The storage tier's writer is one.
MinuteSink = Callable[[I32, I64, Partials], None]

_NO_MINUTE = np.iinfo(np.int64).min

#: series per growth step of the live rows and open blocks (rows are added, never copied
#: in fixed blocks of unused rows: untouched rows of a step are unmapped zeros)
BLOCK = 4096

#: series encoded or decoded per step of a seal or compaction: bounds the temporary arrays
_CHUNK = 8192

#: a read decodes on threads when it decodes at least this many blobs
_THREADED_BLOBS = 512

_EMPTY_U8 = np.zeros(0, np.uint8)


def _distinct(minutes: I64) -> I64:
    """The distinct values, ascending: a count over their span when it is short, else a sort."""
    lo, hi = int(minutes.min()), int(minutes.max())
    if hi - lo < 1 << 16:
        return np.flatnonzero(np.bincount(minutes - lo, minlength=hi - lo + 1)) + lo
    return np.unique(minutes)


@dataclass(frozen=True, slots=True)
class FoldResult:
    """What one fold did: points merged into the window, and points older than it (handed
    to the sink when there is one, dropped and counted in ``expired_points`` when not)."""

    folded: int
    expired: int


@dataclass(slots=True)
class _Open:
    """An open block: ``(rows, n)`` partials and which minutes a flush has written."""

    parts: Partials
    written: npt.NDArray[np.bool_]


@dataclass(slots=True)
class _Closed:
    """A closed block: minutes ``[start, start + n)``, one blob per series in ``arena``
    (``arena[offset[s] : offset[s] + length[s]]``; length 0 is no data), ``size`` bytes of
    the arena in use of which ``stale`` are replaced blobs, and ``summary`` per ``span``
    minutes, ``(rows, n // span)``."""

    start: int
    n: int
    span: int
    arena: npt.NDArray[np.uint8]
    size: int
    offset: I64
    length: U32
    summary: Partials
    stale: int = 0

    @property
    def rows(self) -> int:
        return int(self.offset.shape[0])

    @property
    def nbytes(self) -> int:
        tables = self.offset.nbytes + self.length.nbytes
        return int(self.arena.nbytes + tables + sum(a.nbytes for a in self.summary.fields()))

    def decode(
        self, rows: I64, pool: ThreadPoolExecutor | None = None, threads: int = 1
    ) -> Partials:
        """The minutes of ``rows`` (each below ``self.rows``), ``(len(rows), n)``; on
        ``threads`` of ``pool`` when there are enough of them."""
        out = Partials.zeros((int(rows.shape[0]), self.n))
        offset, length = self.offset[rows], self.length[rows]
        k = int(rows.shape[0])
        if pool is None or threads < 2 or k < _THREADED_BLOBS:
            blockcodec.decode_rows(self.arena, offset, length, self.n, out)
            return out
        cuts = np.linspace(0, k, threads + 1).astype(np.int64).tolist()

        def one(i: int) -> None:
            a, b = cuts[i], cuts[i + 1]
            blockcodec.decode_rows(
                self.arena, offset[a:b], length[a:b], self.n, out.take(np.s_[a:b])
            )

        for done in [pool.submit(one, i) for i in range(threads)]:
            done.result()
        return out

    def replace(self, rows: I64, parts: Partials, config: Any) -> None:
        """Re-encode ``rows`` (ascending, distinct) as ``parts`` ``(len(rows), n)``."""
        top = int(rows[-1]) + 1
        if top > self.rows:
            grow = top - self.rows
            self.offset = np.concatenate([self.offset, np.zeros(grow, np.int64)])
            self.length = np.concatenate([self.length, np.zeros(grow, np.uint32)])
            self.summary = Partials(
                *(
                    np.concatenate([a, np.zeros((grow, a.shape[1]), a.dtype)])
                    for a in self.summary.fields()
                )
            )
        arena, offset, length = blockcodec.encode(parts, config)
        self.stale += int(self.length[rows].sum(dtype=np.int64))
        end = self.size + arena.shape[0]
        if end > self.arena.shape[0]:
            bigger = np.empty(max(end, self.arena.shape[0] * 5 // 4), np.uint8)
            bigger[: self.size] = self.arena[: self.size]
            self.arena = bigger
        self.arena[self.size : end] = arena
        self.offset[rows] = offset + self.size
        self.length[rows] = length
        self.size = end
        summary = restep(parts, self.span)
        for dst, src in zip(self.summary.fields(), summary.fields(), strict=True):
            dst[rows] = src
        if self.stale * 2 > self.size:
            self._repack()

    def _repack(self) -> None:
        """Copy the live blobs into a new arena of their size, in row order."""
        length = self.length.astype(np.int64)
        offset = np.cumsum(length) - length
        total = int(length.sum())
        # every live byte's source position, as one gather: no loop per blob
        starts = np.repeat(self.offset - offset, length)
        arena = self.arena[np.arange(total) + starts] if total else _EMPTY_U8.copy()
        self.arena, self.offset, self.size, self.stale = arena, offset, total, 0


def _encode_block(start: int, dense: Partials, span: int, config: Any) -> _Closed:
    """A closed block of ``dense`` ``(rows, n)``, encoded ``_CHUNK`` rows at a time."""
    rows, n = dense.count.shape
    arenas, offsets, lengths, size = [], [], [], 0
    for r0 in range(0, rows, _CHUNK):
        arena, offset, length = blockcodec.encode(dense.take(np.s_[r0 : r0 + _CHUNK]), config)
        arenas.append(arena)
        offsets.append(offset + size)
        lengths.append(length)
        size += int(arena.shape[0])
    return _Closed(
        start,
        n,
        span,
        np.concatenate(arenas) if arenas else _EMPTY_U8.copy(),
        size,
        np.concatenate(offsets) if offsets else np.zeros(0, np.int64),
        np.concatenate(lengths) if lengths else np.zeros(0, np.uint32),
        restep(dense, span),
    )


class HotRing:
    """Minute partials for every series over the last ``minutes`` minutes."""

    def __init__(
        self,
        minutes: int = 2880,
        live_minutes: int = 4,
        capacity: int = 1024,
        block: int = BLOCK,
        sink: MinuteSink | None = None,
        *,
        seal_minutes: int = 60,
        compact_minutes: int = 360,
        decode_threads: int | None = None,
    ) -> None:
        if minutes < live_minutes + 1:
            msg = f"hot window of {minutes} minutes must exceed live_minutes={live_minutes}"
            raise ValueError(msg)
        if seal_minutes < 1 or compact_minutes % seal_minutes:
            msg = (
                f"compact_minutes={compact_minutes} must be a multiple of"
                f" seal_minutes={seal_minutes} (at least 1)"
            )
            raise ValueError(msg)
        self.minutes = minutes
        self.live_minutes = live_minutes
        self.lock = threading.RLock()
        self.block = block
        self.sink = sink
        self.seal_minutes = seal_minutes
        self.compact_minutes = compact_minutes
        #: threads a read decodes on (None: one per core)
        self.decode_threads = decode_threads
        self._pool: ThreadPoolExecutor | None = None
        self._capacity = 0
        #: series ids below this have been written
        self._used = 0
        self._live = Partials.empty((live_minutes, 0))
        self.live_minute = np.full(live_minutes, _NO_MINUTE, dtype=np.int64)
        #: live rows merged into since they were last handed on
        self._dirty = np.zeros(live_minutes, dtype=np.bool_)
        self._open: dict[int, _Open] = {}
        self._hours: dict[int, _Closed] = {}
        self._compacted: dict[int, _Closed] = {}
        #: the newest minute any point has reached (None before the first point)
        self.head: int | None = None
        self.expired_points = 0
        #: CPU seconds spent sealing open blocks and compacting closed ones
        self.maintenance = {"seal": 0.0, "compact": 0.0}
        self._grow(capacity)

    # -- capacity and memory ---------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    def memory(self) -> dict[str, dict[str, int]]:
        """Bytes and series-minutes held per state: ``live`` rows, ``open`` blocks, closed
        ``hour`` blocks, ``compacted`` blocks. Open blocks count the rows of series that exist
        (the rest is unmapped zeros); closed blocks count arenas, tables and summaries."""
        with self.lock:
            used = self._used
            row = 28 * used
            out = {
                "live": {
                    "bytes": sum(a.nbytes for a in self._live.fields()),
                    "series_minutes": used * self.live_minutes,
                },
                "open": {
                    "bytes": row * self.seal_minutes * len(self._open),
                    "series_minutes": used * self.seal_minutes * len(self._open),
                },
            }
            for name, blocks in (("hour", self._hours), ("compacted", self._compacted)):
                out[name] = {
                    "bytes": sum(b.nbytes for b in blocks.values()),
                    "series_minutes": sum(used * b.n for b in blocks.values()),
                }
            return out

    @property
    def nbytes(self) -> int:
        return sum(state["bytes"] for state in self.memory().values())

    def blob_bytes(self) -> tuple[I64, I64]:
        """Per series id: encoded bytes in closed blocks and the minutes those blocks span
        (blobs only: no summaries, tables or arena slack), for figures per kind of series."""
        with self.lock:
            size = np.zeros(self._used, np.int64)
            minutes = np.zeros(self._used, np.int64)
            for blk in [*self._hours.values(), *self._compacted.values()]:
                rows = min(blk.rows, self._used)
                size[:rows] += blk.length[:rows]
                minutes += blk.n
            return size, minutes

    @property
    def bytes_per_series_minute(self) -> float:
        """The whole ring's memory per series-minute of its window, for the series that
        exist: live rows, open blocks, arenas, summaries and tables included."""
        return self.nbytes / max(1, self._used * self.minutes)

    def _grow(self, needed: int) -> None:
        old = self._capacity
        if needed <= old:
            return
        cap = -(-max(needed, old * 2) // self.block) * self.block
        live = Partials.empty((self.live_minutes, cap))
        for dst, src in zip(live.fields(), self._live.fields(), strict=True):
            dst[:, :old] = src
        self._live = live
        for blk in self._open.values():
            parts = Partials.zeros((cap, self.seal_minutes))
            for dst, src in zip(parts.fields(), blk.parts.fields(), strict=True):
                dst[: self._used] = src[: self._used]
            blk.parts = parts
        self._capacity = cap

    # -- writes ----------------------------------------------------------------------------

    def fold(self, series: I32, minutes: I64, values: F64) -> FoldResult:
        """Merge raw points (series id, minute, value) into the window."""
        n = int(series.shape[0])
        if n == 0:
            return FoldResult(0, 0)
        with self.lock:
            head = self._make_room(series, minutes)
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
            if expired:
                self._pass_on(series, minutes, values, ~live & ~ring)
            return FoldResult(n - expired, expired)

    def _pass_on(self, series: I32, minutes: I64, values: F64, old: npt.NDArray[np.bool_]) -> None:
        """Points older than the window: the sink gets their partials, or they are dropped."""
        if self.sink is None:
            self.expired_points += int(old.sum())
            return
        s, m = series[old].astype(np.int64), minutes[old]
        m0 = int(m.min())
        keys, parts = reduce_by_key((s << 32) | (m - m0), values[old])
        self.sink((keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF) + m0, parts)

    def _make_room(self, series: I32, minutes: I64) -> int:
        """Grow for the series, move the head to the newest minute; returns the head."""
        top = int(series.max()) + 1
        if top > self._capacity:
            self._grow(top)
        self._used = max(self._used, top)
        newest = int(minutes.max())
        if self.head is None or newest > self.head:
            self._advance(newest)
        assert self.head is not None
        return self.head

    def _fold_live(self, series: I32, minutes: I64, values: F64) -> None:
        ones = np.broadcast_to(np.uint32(1), values.shape)  # a view: no array per fold
        self._merge_live(series, minutes, Partials(values, values, values, ones))

    def _merge_live(self, series: I32, minutes: I64, parts: Partials) -> None:
        """Merge into the live rows (raw points are partials of one value and count 1)."""
        # each minute's row of the live block, from a table over the batch's few minutes:
        # cheaper than a 64-bit remainder per point
        lo = int(minutes.min())
        row_of = np.arange(lo, int(minutes.max()) + 1) % self.live_minutes
        self._dirty[row_of] = True
        rows = row_of * self._capacity
        flat = rows.take(minutes - lo)
        flat += series
        live = self._live
        np.minimum.at(live.min.reshape(-1), flat, parts.min)
        np.maximum.at(live.max.reshape(-1), flat, parts.max)
        np.add.at(live.sum.reshape(-1), flat, parts.sum)
        np.add.at(live.count.reshape(-1), flat, parts.count)

    def _fold_ring(self, series: I32, minutes: I64, values: F64) -> None:
        m0 = int(minutes.min())
        span = int(minutes.max()) - m0 + 1
        keys, parts = reduce_by_key(series.astype(np.int64) * span + (minutes - m0), values)
        self._merge_ring(keys // span, keys % span + m0, parts)

    def _merge_ring(self, series: I64, minutes: I64, parts: Partials) -> None:
        """Merge distinct (series, minute) cells inside the window, none live, and hand them
        to the sink as a correction (the late points' own partials, not a total)."""
        self._merge_cells(series, minutes, parts)
        if self.sink is not None:
            self.sink(series.astype(np.int32), minutes, parts)

    def _merge_cells(self, series: I64, minutes: I64, parts: Partials) -> None:
        """Merge distinct (series, minute) cells into the blocks that hold their minutes:
        open blocks by array writes, closed ones by re-encoding the touched series."""
        b, c = self.seal_minutes, self.compact_minutes
        close = self._close_line()
        starts = minutes // b * b
        groups = minutes // c * c
        keys = np.where(np.isin(groups, list(self._compacted)), groups, starts)
        many = _distinct(keys)
        for start in many.tolist():
            if many.shape[0] == 1:
                s, m, p = series, minutes, parts
            else:
                mine = keys == start
                s, m, p = series[mine], minutes[mine], parts.take(mine)
            if start in self._open or (start not in self._closed_keys() and start + b > close):
                blk = self._open_block(start)
                flat = s * b + (m - start)
                whole = Partials(*(a.reshape(-1) for a in blk.parts.fields()))
                new = merge(whole.take(flat), p)
                for dst, src in zip(whole.fields(), new.fields(), strict=True):
                    dst[flat] = src
                blk.written[m - start] = True  # a flush of these minutes now merges
            else:
                self._merge_closed(start, s, m, p)

    def _closed_keys(self) -> set[int]:
        return set(self._hours) | set(self._compacted)

    def _merge_closed(self, start: int, series: I64, minutes: I64, parts: Partials) -> None:
        blk = self._compacted.get(start) or self._hours.get(start)
        if blk is None:
            span = self.seal_minutes
            blk = _encode_block(start, Partials.zeros((0, span)), span, blockcodec.FAST)
            self._hours[start] = blk
        rows, at = np.unique(series, return_inverse=True)
        have = rows < blk.rows
        dense = Partials.zeros((int(rows.shape[0]), blk.n))
        if have.any():
            decoded = blk.decode(rows[have])
            for dst, src in zip(dense.fields(), decoded.fields(), strict=True):
                dst[have] = src
        flat = at * blk.n + (minutes - blk.start)
        whole = Partials(*(a.reshape(-1) for a in dense.fields()))
        new = merge(whole.take(flat), parts)
        for dst, src in zip(whole.fields(), new.fields(), strict=True):
            dst[flat] = src
        config = blockcodec.SMALL if blk.n > self.seal_minutes else blockcodec.FAST
        blk.replace(rows, dense, config)

    def _open_block(self, start: int) -> _Open:
        blk = self._open.get(start)
        if blk is None:
            blk = _Open(
                Partials.zeros((self._capacity, self.seal_minutes)),
                np.zeros(self.seal_minutes, np.bool_),
            )
            self._open[start] = blk
        return blk

    def _close_line(self) -> int:
        """The oldest minute still live: blocks ending at or before it are closed."""
        return _NO_MINUTE if self.head is None else self.head - self.live_minutes + 1

    def _advance(self, newest: int) -> None:
        """Move the head to ``newest``: flush live rows that fall behind into their blocks,
        then close, compact and expire blocks."""
        lm = self.live_minutes
        keep_from = newest - lm + 1
        live = self._live
        for row in range(lm):
            minute = int(self.live_minute[row])
            if minute != _NO_MINUTE and minute < keep_from:
                self._flush_row(row, minute, newest)
        for minute in range(max(keep_from, (self.head or keep_from - 1) + 1), newest + 1):
            row = minute % lm
            self.live_minute[row] = minute
            live.min[row] = np.inf
            live.max[row] = -np.inf
            live.sum[row] = 0.0
            live.count[row] = 0
            self._dirty[row] = False
        self.head = newest
        self._settle()

    def _settle(self) -> None:
        """Expire blocks that left the window, seal open blocks that no live minute is in,
        compact spans whose hours are all closed."""
        assert self.head is not None
        b, c = self.seal_minutes, self.compact_minutes
        oldest = self.head - self.minutes + 1
        close = self._close_line()
        for start in [s for s in self._open if s + b <= oldest]:
            del self._open[start]
        for blocks in (self._hours, self._compacted):
            for start in [s for s, blk in blocks.items() if s + blk.n <= oldest]:
                del blocks[start]
        for start in sorted(s for s in self._open if s + b <= close):
            began = time.thread_time()
            opened = self._open.pop(start)
            self._hours[start] = _encode_block(
                start, opened.parts.take(np.s_[: self._used]), b, blockcodec.FAST
            )
            self.maintenance["seal"] += time.thread_time() - began
        if c > b:
            for group in sorted({s // c * c for s in self._hours}):
                if group + c <= close:
                    began = time.thread_time()
                    self._compact(group)
                    self.maintenance["compact"] += time.thread_time() - began

    def _compact(self, group: int) -> None:
        """Replace the hour blocks of ``[group, group + C)`` by one block."""
        b, c = self.seal_minutes, self.compact_minutes
        hours = [self._hours.pop(s) for s in range(group, group + c, b) if s in self._hours]
        rows = max(h.rows for h in hours)
        arenas, offsets, lengths, size = [], [], [], 0
        summary = Partials.zeros((rows, c // b))
        for r0 in range(0, rows, _CHUNK):
            r1 = min(rows, r0 + _CHUNK)
            dense = Partials.zeros((r1 - r0, c))
            for h in hours:
                mine = np.arange(r0, min(r1, h.rows), dtype=np.int64)
                if mine.shape[0] == 0:
                    continue
                col = h.start - group
                decoded = h.decode(mine)
                for dst, src in zip(dense.fields(), decoded.fields(), strict=True):
                    dst[: mine.shape[0], col : col + b] = src
                for dst, src in zip(summary.fields(), h.summary.fields(), strict=True):
                    dst[mine, col // b] = src[mine, 0]
            arena, offset, length = blockcodec.encode(dense, blockcodec.SMALL)
            arenas.append(arena)
            offsets.append(offset + size)
            lengths.append(length)
            size += int(arena.shape[0])
        self._compacted[group] = _Closed(
            group,
            c,
            b,
            np.concatenate(arenas),
            size,
            np.concatenate(offsets),
            np.concatenate(lengths),
            summary,
        )

    def _flush_row(self, row: int, minute: int, newest: int) -> None:
        """Move a live row into its open block's column: the one write each minute gets.

        The column may already hold the minute (partials loaded at start-up); then the live
        row, which holds only what came since, merges into it. The sink gets the live row.
        A minute already out of the window (the head jumped) goes to the sink only.
        """
        b = self.seal_minutes
        start = minute // b * b
        n = self._used
        group = minute // self.compact_minutes * self.compact_minutes
        closed = start in self._hours or group in self._compacted
        if minute > newest - self.minutes and not closed:
            blk = self._open_block(start)
            col = minute - start
            fresh = self._live.take(np.s_[row, :n])
            if blk.written[col]:
                fresh = merge(blk.parts.take(np.s_[:n, col]), fresh)
            for dst, src in zip(blk.parts.fields(), fresh.fields(), strict=True):
                dst[:n, col] = src
            blk.written[col] = True
        elif minute > newest - self.minutes:  # a closed block (not reached in practice)
            full = np.flatnonzero(self._live.count[row, :n] > 0)
            self._merge_cells(
                full.astype(np.int64),
                np.full(full.shape[0], minute, np.int64),
                self._live.take(np.s_[row, full]),
            )
        self.live_minute[row] = _NO_MINUTE
        self._dirty[row] = False
        self._emit_live(row, minute)

    def _emit_live(self, row: int, minute: int) -> None:
        if self.sink is None:
            return
        live = self._live
        series = np.flatnonzero(live.count[row, : self._used] > 0).astype(np.int32)
        if series.shape[0]:
            parts = live.take(np.s_[row, series])
            self.sink(series, np.full(series.shape[0], minute, dtype=np.int64), parts)

    def hand_on_live(self) -> None:
        """Give the sink what the live (still filling) minutes gained since they were last
        handed on, and keep filling them from empty (the open block holds what was handed
        on, and reads merge the two).

        For a clean stop, and every second on the embedded bus: afterwards every point
        folded so far has reached the sink once, and a restart that ``load``s the sink's
        minutes reads the same answers.
        """
        with self.lock:
            assert self.head is not None or not self._dirty.any()
            for row in np.flatnonzero(self._dirty).tolist():
                minute = int(self.live_minute[row])
                if minute == _NO_MINUTE:
                    self._dirty[row] = False
                    continue
                assert self.head is not None
                self._flush_row(row, minute, self.head)
                self.live_minute[row] = minute
                live = self._live
                live.min[row], live.max[row] = np.inf, -np.inf
                live.sum[row], live.count[row] = 0.0, 0

    def live_partials(self) -> tuple[I32, I64, Partials]:
        """What the live (still filling) minutes hold and the sink has not had yet:
        ``(series, minutes, partials)``, non-empty cells only. A copy, for a checkpoint."""
        with self.lock:
            out_s, out_m, out_p = [], [], []
            live = self._live
            for row in range(self.live_minutes):
                minute = int(self.live_minute[row])
                if minute == _NO_MINUTE:
                    continue
                series = np.flatnonzero(live.count[row, : self._used] > 0).astype(np.int32)
                out_s.append(series)
                out_m.append(np.full(series.shape[0], minute, dtype=np.int64))
                out_p.append(live.take(np.s_[row, series]))
            if not out_s:
                return np.zeros(0, np.int32), np.zeros(0, np.int64), Partials.empty((0,))
            fields = zip(*(p.fields() for p in out_p), strict=True)
            return (
                np.concatenate(out_s),
                np.concatenate(out_m),
                Partials(*(np.concatenate(f) for f in fields)),
            )

    def merge_partials(self, series: I32, minutes: I64, parts: Partials) -> None:
        """Merge partials as if their points had been folded now (a checkpoint's open
        minutes at start-up): live minutes into the live rows, so they reach the sink when
        their minute closes; older minutes in the window into their blocks and, as
        corrections, to the sink; minutes older than the window to the sink only."""
        keep = parts.count > 0
        if not keep.all():
            series, minutes = series[keep], minutes[keep]
            parts = parts.take(keep)
        if series.shape[0] == 0:
            return
        with self.lock:
            head = self._make_room(series, minutes)
            live = minutes > head - self.live_minutes
            ring = ~live & (minutes > head - self.minutes)
            if live.any():
                cut = parts.take(live)
                self._merge_live(series[live], minutes[live], cut)
            if ring.any():
                s, m = series[ring].astype(np.int64), minutes[ring]
                m0 = int(m.min())
                span = int(m.max()) - m0 + 1
                keys, cut = reduce_partials_by_key(s * span + (m - m0), parts.take(ring))
                self._merge_ring(keys // span, keys % span + m0, cut)
                self._settle()
            old = ~live & ~ring
            if old.any():
                if self.sink is None:
                    self.expired_points += int(parts.count[old].sum())
                else:
                    cut = parts.take(old)
                    self.sink(series[old], minutes[old], cut)

    def load(self, series: I32, minutes: I64, parts: Partials, distinct: bool = False) -> int:
        """Merge stored partials into the ring at start-up (the sink is not told).

        ``distinct``: the caller promises one partial per (series, minute) (the store's
        ``read_minutes`` does); otherwise partials of one cell are merged first. Returns how
        many entries fell inside the window and were loaded.
        """
        if series.shape[0] == 0:
            return 0
        with self.lock:
            head = self._make_room(series, minutes)
            keep = minutes > head - self.minutes
            if not keep.all():
                series, minutes = series[keep], minutes[keep]
                parts = parts.take(keep)
            loaded = int(series.shape[0])
            if loaded == 0:
                return 0
            s = series.astype(np.int64)
            if not distinct:
                m0 = int(minutes.min())
                span = int(minutes.max()) - m0 + 1
                keys, parts = reduce_partials_by_key(s * span + (minutes - m0), parts)
                s, minutes = keys // span, keys % span + m0
            self._merge_cells(s, minutes, parts)
            self._settle()
            return loaded

    # -- reads -----------------------------------------------------------------------------

    def oldest_minute(self) -> int | None:
        """The oldest minute the window still holds (None before the first point)."""
        return None if self.head is None else self.head - self.minutes + 1

    def read(self, series: I32, first: int, count: int) -> Partials:
        """Partials of ``series`` × minutes ``[first, first + count)``; empty outside the window
        (``read_buckets`` at a step of one minute)."""
        return self.read_buckets(series, first, count, 1)

    def read_buckets(self, series: I32, first: int, count: int, step: int) -> Partials:
        """Partials of ``series`` over minutes ``[first, first + count)`` in buckets of ``step``
        minutes, as ``restep`` would merge the minute block, without making it
        (``merge_buckets`` into an empty block). ``count`` must be a multiple of ``step``;
        empty buckets are ``(inf, -inf, 0, 0)`` as ``restep`` makes them."""
        shape = (int(series.shape[0]), count // step)
        out = Partials(
            np.full(shape, np.inf),
            np.full(shape, -np.inf),
            np.zeros(shape),
            np.zeros(shape, dtype=np.uint32),
        )
        self.merge_buckets(series, first, count, step, out)
        return out

    def merge_buckets(self, series: I32, first: int, count: int, step: int, out: Partials) -> None:
        """Merge minutes ``[first, first + count)`` of ``series`` into ``out``, whose column
        ``b`` is the bucket of minutes ``[first + b·step, first + (b+1)·step)`` (an entry with
        ``count == 0`` is empty, whatever else it holds; a view into a larger block is fine).

        Per block: open blocks by one compiled pass (``buckets.merge_slots``); closed blocks
        from their summaries where a bucket covers whole summary spans, else by decoding the
        asked series' blobs and one compiled pass; then the live rows. Minutes outside the
        window are not read, so none counts twice at a seam.
        """
        if count % step or out.count.shape[1] < count // step:
            msg = (
                f"{count} minutes in buckets of {step} need {count // step} whole columns,"
                f" out has {out.count.shape[1]}"
            )
            raise ValueError(msg)
        with self.lock:
            if self.head is None or series.shape[0] == 0 or count <= 0:
                return
            lo = max(first, self.head - self.minutes + 1)
            hi = min(first + count, self.head + 1)
            if lo >= hi:
                return
            at = np.flatnonzero(series < self._used)  # ids not yet written have no data
            if at.shape[0] == 0:
                return
            known = series[at].astype(np.int64)
            b = self.seal_minutes
            for start, opened in sorted(self._open.items()):
                a, z = max(lo, start), min(hi, start + b)
                if a < z:
                    minutes = np.arange(a, z, dtype=np.int64)
                    merge_slots(
                        *opened.parts.fields(),
                        known,
                        at,
                        minutes - start,
                        (minutes - first) // step,
                        *out.fields(),
                    )
            for blk in [*self._compacted.values(), *self._hours.values()]:
                a, z = max(lo, blk.start), min(hi, blk.start + blk.n)
                if a < z:
                    self._read_closed(blk, known, at, a, z, first, step, out)
            for row in range(self.live_minutes):
                minute = int(self.live_minute[row])
                if minute == _NO_MINUTE or not lo <= minute < hi:
                    continue
                col = (minute - first) // step
                fresh = self._live.take(np.s_[row, known])
                # the open block may hold a baseline for this minute (loaded at start-up)
                merged = merge(out.take(np.s_[at, col]), fresh)
                for dst, src in zip(out.fields(), merged.fields(), strict=True):
                    dst[at, col] = src

    def _read_closed(
        self,
        blk: _Closed,
        known: I64,
        at: I64,
        a: int,
        z: int,
        first: int,
        step: int,
        out: Partials,
    ) -> None:
        """Merge minutes ``[a, z)`` of ``blk`` for series ``known`` into ``out``'s rows ``at``."""
        inside = known < blk.rows
        if not inside.all():
            known, at = known[inside], at[inside]
        span = blk.span
        h0, h1 = (a - blk.start) // span, -(-(z - blk.start) // span)
        spans = blk.start + np.arange(h0, h1, dtype=np.int64) * span
        # a span read from its summary: inside [a, z) and inside one bucket
        one_bucket = (spans - first) // step == (spans + span - 1 - first) // step
        whole = (spans >= a) & (spans + span <= z) & one_bucket
        if whole.any():
            merge_slots(
                *blk.summary.fields(),
                known,
                at,
                np.arange(h0, h1, dtype=np.int64)[whole],
                (spans[whole] - first) // step,
                *out.fields(),
            )
        if whole.all():
            return
        full = blk.length[known] > 0
        known, at = known[full], at[full]
        if known.shape[0] == 0:
            return
        minutes = np.arange(a, z, dtype=np.int64)
        minutes = minutes[~whole[(minutes - blk.start) // span - h0]]
        threads = self.decode_threads or os.cpu_count() or 1
        dense = blk.decode(known, self._decoders(threads), threads)
        merge_slots(
            *dense.fields(),
            np.arange(known.shape[0], dtype=np.int64),
            at,
            minutes - blk.start,
            (minutes - first) // step,
            *out.fields(),
        )

    def _decoders(self, threads: int) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="ring-decode")
        return self._pool
