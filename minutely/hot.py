"""The hot ring: the last ``W`` minutes of every series, in memory (the seed's ring buffer).

Layout (``S`` = series capacity, ``U`` = open slots, ``L`` = live minutes, ``B`` = series
per ring block)::

    ring (series-major, in blocks of B series)       live (time-major, laid out for writes)
            slot 0   slot 1  ...  slot U-1                  series 0  series 1 ... series S-1
    s 0   [ min max sum count | ...            ]     row 0  [ min max sum count | ...       ]
    s 1   [                                    ]     ...
    ...                                              row L-1[                               ]
    s S-1 [                                    ]
    slot_minute[U]: the minute each slot holds       live_minute[L]: the minute each row holds

    sealed (per ring block b: a BlockStore, minutes before sealed_to[b])
      6-hour blocks [c, c + 360) ... the open span's block  20-minute blocks [b, b + 20)
    hour summaries (per ring block b: an arena of every sealed hour's summary, stamped)

Minute ``m`` lives in ring block ``b``'s store when ``m < sealed_to[b]``, else in ring slot
``m % U`` or live row ``m % L``. Every slot and row is stamped with the minute it holds, so a
slot left over from an earlier lap reads as empty (whisper's trick) and wrap-around needs no
sweep. When the window is no longer than the open span (``U = W``) nothing is sealed.

Points for the newest ``L`` minutes fold into the *live* rows: one contiguous row per minute,
so a second of the whole fleet touches one compact row and the fold is a handful of
``ufunc.at`` calls. When the newest minute moves past a live row, the row is copied into its
ring column once ("a minute's write happens once") and the row is reset. The two hot reads,
one server's series and one metric's series over a range at any step, then merge each
series' sealed blocks (summaries where a block or hour lies inside one bucket, else a
compiled decode) and ring row straight into its buckets, plus at most ``L`` columns from the
live rows (``merge_buckets``, into a block the store may have filled already;
``read_buckets`` and ``read`` into an empty one).

A block of minutes (``block_minutes``) closes when the head passes its end by
``grace_minutes``; then each ring block seals it into its store, one ring block per fold, and
at the latest before its slots are reused (``U`` = a block, twice the grace and the live
rows), and merges its summary into its hour's (``summary_minutes``). Spans of
``compact_minutes`` are re-encoded as one block once sealed, and grown an hour at a time
until then; blocks past the window are dropped whole, and a compacted block the window
starts in is re-encoded from the hour it starts in (docs/hot-ring.md argues the choices).

The window ends at the newest minute and starts ``W - 1`` minutes before it; a sealing ring
starts it at the start of the hour (``summary_minutes``) of the minute ``W`` before the
newest, which it holds whole anyway, so an hour-aligned read of the last ``W`` minutes
finds its first hour in the ring. Points for older minutes still inside the window (late
points, backfill) are reduced to one partial per (series, minute) and merged exactly into
the slots, or into the sealed blocks. Points before the window's start are expired and
counted, never merged.

The ring is stored in blocks of ``BLOCK`` series (rows ``[b * BLOCK, (b + 1) * BLOCK)``), so
growing capacity appends a block instead of copying gigabytes. A block is anonymous memory
mapped with small pages (``_arena``): a page costs memory and a fault at its first write, so a
block holds the pages of the rows and minutes written, not the block (huge pages would make
2 MiB of rows, all their minutes, resident at the first minute written). Column writes (a
minute's flush, a stale slot's reset) touch only the rows of series that exist.

Read and fold take the ring's lock, so a query sees either all of a batch or none of it.
Empty entries are those with ``count == 0``; the ring's other fields are then undefined.
"""

from __future__ import annotations

import mmap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minutely.blocks import Block, BlockStore, StoreRead, read_stores
from minutely.buckets import merge_cells, merge_slots_at, scatter_points
from minutely.heap import release
from minutely.model import F64, I32, I64, Partials, merge, reduce_by_key, reduce_partials_by_key
from minutely.pool import clear

#: Receives what the ring has merged and not handed on yet: ``(series, minutes, partials)``,
#: each point in exactly one call. The storage tier's writer is one.
MinuteSink = Callable[[I32, I64, Partials], None]

_NO_MINUTE = np.iinfo(np.int64).min


def _distinct(minutes: I64) -> I64:
    """The distinct minutes, ascending: a count over their span when it is short (a load
    spans an hour or so), a sort otherwise."""
    lo, hi = int(minutes.min()), int(minutes.max())
    if hi - lo < 1 << 16:
        return np.flatnonzero(np.bincount(minutes - lo, minlength=hi - lo + 1)) + lo
    return np.unique(minutes)


#: series per ring block: growth appends a block, never copies the ring
BLOCK = 16384
#: the page size of the ring's memory (huge pages are refused)
PAGE = mmap.PAGESIZE
#: bytes of one cell over the four fields (min, max, sum as float64, count as uint32)
CELL_BYTES = 3 * 8 + 4
#: series a read must ask for before its decoding is split over the ring's second thread
SPLIT_ROWS = 64


def _arena(rows: int, cols: int) -> Partials:
    """Zeroed ``(rows, cols)`` fields in one private anonymous mapping of small pages."""
    cells = rows * cols
    arena = mmap.mmap(-1, cells * CELL_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # Linux; elsewhere pages are small anyway
        arena.madvise(mmap.MADV_NOHUGEPAGE)
    f8 = cells * 8
    return Partials(
        np.frombuffer(arena, np.float64, cells, 0).reshape(rows, cols),
        np.frombuffer(arena, np.float64, cells, f8).reshape(rows, cols),
        np.frombuffer(arena, np.float64, cells, 2 * f8).reshape(rows, cols),
        np.frombuffer(arena, np.uint32, cells, 3 * f8).reshape(rows, cols),
    )


def _row_pages(window: int, itemsize: int, slots: I64) -> float:
    """Pages one row of ``window`` cells of ``itemsize`` bytes touches, on average over the
    rows of a block, when ``slots`` of it are written (rows start at every offset into a
    page that ``window * itemsize`` steps through)."""
    row = window * itemsize
    if row <= PAGE:  # rows share pages: every page of the rows is written
        return row / PAGE
    period = PAGE // int(np.gcd(row, PAGE))
    rows = np.linspace(0, period - 1, min(period, 16)).astype(np.int64)  # a sample suffices
    starts = (rows * row) % PAGE
    pages = (starts[:, None] + slots[None, :] * itemsize) // PAGE
    pages.sort(axis=1)
    distinct = 1 + (np.diff(pages, axis=1) != 0).sum(axis=1)
    return float(distinct.mean())


@dataclass(frozen=True, slots=True)
class FoldResult:
    """What one fold did: points merged into the window, and points older than it (handed
    to the sink when there is one, dropped and counted in ``expired_points`` when not)."""

    folded: int
    expired: int


@dataclass(slots=True)
class RingState:
    """What a sealing ring holds, by ring block, once its live minutes are handed on: its
    blocks, how far it is sealed and compacted, its hour summaries (``(rows in use,
    hour_slots)``) and its open slots (``(rows in use, slots)``, stamped by
    ``slot_minute``); with the head and the oldest minute reached. ``HotRing.state`` gives
    it and ``HotRing.restore`` puts it into a fresh ring of the same shape."""

    head: int
    since: int
    used: int
    sealed_to: I64
    compacted_to: I64
    hour_start: I64
    slot_minute: I64
    hours: list[Partials]
    slots: list[Partials]
    blocks: list[list[Block]]


@dataclass(slots=True)
class SealStats:
    """What sealing has done: blocks sealed, spans compacted and blocks trimmed to the
    window's start, the CPU seconds of the thread that did each, and late entries merged
    into sealed minutes."""

    sealed: int = 0
    seal_seconds: float = 0.0
    compacted: int = 0
    compact_seconds: float = 0.0
    #: open spans re-encoded as one block so far (their CPU is in ``compact_seconds``)
    grown: int = 0
    trimmed: int = 0
    trim_seconds: float = 0.0
    late_merged: int = 0


class HotRing:
    """Minute partials for every series over the last ``minutes`` minutes."""

    def __init__(
        self,
        minutes: int = 2880,
        live_minutes: int = 4,
        capacity: int = 1024,
        block: int = BLOCK,
        sink: MinuteSink | None = None,
        block_minutes: int = 20,
        grace_minutes: int = 5,
        compact_minutes: int = 360,
        summary_minutes: int = 60,
    ) -> None:
        if minutes < live_minutes + 1:
            msg = f"hot window of {minutes} minutes must exceed live_minutes={live_minutes}"
            raise ValueError(msg)
        if block_minutes < 1 or compact_minutes % block_minutes:
            msg = f"compact_minutes={compact_minutes} is not a multiple of {block_minutes}"
            raise ValueError(msg)
        if summary_minutes % block_minutes:
            msg = f"summary_minutes={summary_minutes} is not a multiple of {block_minutes}"
            raise ValueError(msg)
        self.minutes = minutes
        self.live_minutes = live_minutes
        self.lock = threading.RLock()
        self.block = block
        self.sink = sink
        self.block_minutes = block_minutes
        #: sealed minutes are summarised in spans of this (an hour), the window starts at one
        self.summary_minutes = summary_minutes
        #: a closed block waits this long for late points before it is sealed (at least the
        #: live rows, so a sealed block never holds a live minute)
        self.grace_minutes = max(grace_minutes, live_minutes)
        self.compact_minutes = compact_minutes
        open_span = block_minutes + 2 * self.grace_minutes + live_minutes
        #: uncompressed ring slots: the whole window when it is short; else the open block,
        #: the previous one until it is sealed, and as long again as the grace to seal it in
        self.slots = minutes if minutes <= open_span else open_span
        self.sealing = self.slots < minutes
        #: per sealed span of ``summary_minutes``, each series' summary: the window's spans
        #: and two more
        self.hour_slots = minutes // summary_minutes + 2 if self.sealing else 0
        self.hour_start = np.full(self.hour_slots, _NO_MINUTE, dtype=np.int64)
        self._hours: list[Partials] = []
        self._blocks: list[Partials] = []
        #: per ring block: its rows and the addresses of its slots' and hour summaries'
        #: fields, for reads over many ring blocks in one call (arenas are never replaced)
        self._slots_at = np.zeros((0, 5), dtype=np.int64)
        self._hours_at = np.zeros((0, 5), dtype=np.int64)
        #: per ring block: its closed minutes, compressed
        self._stores: list[BlockStore] = []
        #: per ring block: minutes before this are in its store, the rest in slots and rows
        self._sealed_to = np.zeros(0, dtype=np.int64)
        #: per ring block: its spans of ``compact_minutes`` before this are compacted
        self._compacted_to = np.zeros(0, dtype=np.int64)
        #: per ring block: its oldest block holds a block of minutes the window has left
        self._untrimmed = np.zeros(0, dtype=np.bool_)
        #: per ring block: its open span was last grown (or found with nothing to grow) to here
        self._grown_to = np.zeros(0, dtype=np.int64)
        #: sealing or compaction may be waiting (one step of it runs per fold)
        self._due = False
        self._pool: ThreadPoolExecutor | None = None
        self.seal_stats = SealStats()
        #: series ids below this have been written (rows beyond it are untouched memory)
        self._used = 0
        self._live = Partials.empty((live_minutes, 0))
        self.slot_minute = np.full(self.slots, _NO_MINUTE, dtype=np.int64)
        self.live_minute = np.full(live_minutes, _NO_MINUTE, dtype=np.int64)
        #: live rows merged into since they were last handed on
        self._dirty = np.zeros(live_minutes, dtype=np.bool_)
        #: the newest minute any point has reached (None before the first point)
        self.head: int | None = None
        #: the oldest minute any point or partial has reached (None before the first)
        self._since: int | None = None
        self.expired_points = 0
        self._grow(capacity)

    # -- capacity --------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return len(self._blocks) * self.block

    def memory(self) -> dict[str, int]:
        """Bytes the ring holds, by part: ``ring`` (the pages written of the open slots'
        rows of series that exist, reckoned from the slots written), ``live`` (the pages
        written of the live rows' columns of series that exist), ``stamps`` (the minute of
        each slot and row, the sealing marks), ``hour_summaries`` (each series' summary of
        each sealed hour), ``sealed_blocks`` (blocks of minutes not compacted) and
        ``compacted_blocks`` (sealed minutes: arenas and indexes); and ``series_minutes``,
        the cells they hold: series written × ``held_minutes``."""
        with self.lock:
            slots = np.flatnonzero(self.slot_minute != _NO_MINUTE)
            ring = 0.0
            if slots.shape[0]:
                per_row = 3 * _row_pages(self.slots, 8, slots)
                per_row += _row_pages(self.slots, 4, slots)
                ring = per_row * PAGE * self._used
            live = self.live_minutes * sum(
                -(-self._used * a.itemsize // PAGE) * PAGE for a in self._live.fields()
            )
            stamps = self.slot_minute.nbytes + self.live_minute.nbytes + self._dirty.nbytes
            stamps += self._sealed_to.nbytes + self._compacted_to.nbytes
            stamps += self.hour_start.nbytes
            states = self._block_states()
            hours = (self.hour_start != _NO_MINUTE).any()
            return {
                "ring": int(ring),
                "live": live,
                "stamps": stamps,
                "hour_summaries": self._used * self.hour_slots * CELL_BYTES if hours else 0,
                "sealed_blocks": states["sealed_blocks"][0],
                "compacted_blocks": states["compacted_blocks"][0],
                "series_minutes": self._used * self.held_minutes(),
            }

    def _block_states(self) -> dict[str, tuple[int, int]]:
        """``(bytes, series-minutes)`` of the blocks not compacted and of the compacted ones."""
        totals = {"sealed_blocks": [0, 0], "compacted_blocks": [0, 0]}
        for store in self._stores:
            for u in store.usage():
                into = totals["compacted_blocks" if u.compacted else "sealed_blocks"]
                into[0] += u.nbytes
                into[1] += u.rows * u.minutes
        return {name: (nbytes, sm) for name, (nbytes, sm) in totals.items()}

    def states(self) -> dict[str, dict[str, float | None]]:
        """Per state of the minutes held (``open``: slots, live rows and stamps;
        ``sealed_blocks``; ``compacted_blocks``; ``hour_summaries`` over all sealed minutes):
        bytes, series-minutes and their ratio (None while a state holds no minute)."""
        with self.lock:
            parts = self.memory()
            blocks = self._block_states()
            sealed = sum(sm for _, sm in blocks.values())
            open_bytes = parts["ring"] + parts["live"] + parts["stamps"]
            out = {"open": (open_bytes, max(0, parts["series_minutes"] - sealed))} | blocks
            out["hour_summaries"] = (parts["hour_summaries"], sealed)
            return {
                name: {
                    "bytes": nbytes,
                    "series_minutes": sm,
                    "bytes_per_series_minute": round(nbytes / sm, 2) if sm else None,
                }
                for name, (nbytes, sm) in out.items()
            }

    def held_minutes(self) -> int:
        """How many minutes the window spans: from the oldest it still holds, or the oldest
        any point reached when that is newer, to the newest."""
        if self.head is None or self._since is None:
            return 0
        return self.head - max(self._since, self._window_start(self.head)) + 1

    @property
    def nbytes(self) -> int:
        """Bytes held: every part of ``memory``."""
        parts = self.memory()
        return sum(v for k, v in parts.items() if k != "series_minutes")

    @property
    def bytes_per_series_minute(self) -> float:
        """Memory per series-minute held: open slots, live rows, stamps and blocks."""
        parts = self.memory()
        return self.nbytes / max(1, parts["series_minutes"])

    def _grow(self, needed: int) -> None:
        old_cap = self.capacity
        if needed <= old_cap:
            return
        added = 0
        while self.capacity < needed:
            # a block costs address space until it is written
            self._blocks.append(_arena(self.block, self.slots))
            self._slots_at = np.vstack([self._slots_at, _addresses(self._blocks[-1])])
            self._stores.append(BlockStore(summaries=False))  # its hour summaries answer
            if self.sealing:
                self._hours.append(_arena(self.block, self.hour_slots))
                self._hours_at = np.vstack([self._hours_at, _addresses(self._hours[-1])])
            added += 1
        floor = np.full(added, self._seal_floor(), dtype=np.int64)  # new series: no older data
        self._sealed_to = np.concatenate([self._sealed_to, floor])
        self._compacted_to = np.concatenate([self._compacted_to, floor])
        self._untrimmed = np.concatenate([self._untrimmed, np.zeros(added, np.bool_)])
        self._grown_to = np.concatenate([self._grown_to, floor])
        # the live rows' columns past the series in use stay unwritten, so cost no memory
        live = _arena(self.live_minutes, self.capacity)
        for dst, src in zip(live.fields(), self._live.fields(), strict=True):
            dst[:, : self._used] = src[:, : self._used]
        self._live = live

    def _block_rows(self, index: int) -> int:
        """How many rows of block ``index`` belong to series that exist."""
        return max(0, min(self.block, self._used - index * self.block))

    # -- the whole state, for a snapshot ---------------------------------------------------

    def state(self) -> RingState | None:
        """What the ring holds, by reference (None when it seals nothing or holds nothing):
        it stays valid while nothing folds, loads or reads into the ring. Raises
        ``ValueError`` while a live minute holds points not handed on (``hand_on_live``):
        the state has no live rows, so a ring restored from it holds exactly what its sink
        was given."""
        with self.lock:
            if not self.sealing or self.head is None or self._since is None:
                return None
            if self._dirty.any():
                msg = "the live minutes hold points not handed on"
                raise ValueError(msg)
            rows = [self._block_rows(b) for b in range(len(self._stores))]
            return RingState(
                head=self.head,
                since=self._since,
                used=self._used,
                sealed_to=self._sealed_to.copy(),
                compacted_to=self._compacted_to.copy(),
                hour_start=self.hour_start.copy(),
                slot_minute=self.slot_minute.copy(),
                hours=[h.take(np.s_[:r]) for h, r in zip(self._hours, rows, strict=True)],
                slots=[s.take(np.s_[:r]) for s, r in zip(self._blocks, rows, strict=True)],
                blocks=[list(store.blocks) for store in self._stores],
            )

    def restore(self, state: RingState) -> None:
        """Hold what ``state`` holds (a ring of the same shape gave it) in this ring, which
        must be fresh: its live rows start empty at the state's head. ``state``'s open
        slots and hour summaries are dropped from it as they are copied, so that a start
        does not hold them twice."""
        with self.lock:
            if not self.sealing or self.head is not None or self._used:
                msg = "only a fresh sealing ring takes a ring's state"
                raise ValueError(msg)
            n_blocks = len(state.blocks)
            if (
                state.hour_start.shape != self.hour_start.shape
                or state.slot_minute.shape != self.slot_minute.shape
                or not n_blocks == len(state.hours) == len(state.slots)
            ):
                msg = "the state is of a ring of another shape"
                raise ValueError(msg)
            if n_blocks * self.block < state.used or state.used < 1:
                msg = f"{n_blocks} ring blocks do not hold {state.used} series"
                raise ValueError(msg)
            for b in range(n_blocks):  # checked before anything is written
                rows = max(0, min(self.block, state.used - b * self.block))
                shapes = (state.hours[b].count.shape, state.slots[b].count.shape)
                if shapes != ((rows, self.hour_slots), (rows, self.slots)):
                    msg = f"ring block {b}'s open slots or hour summaries are of another shape"
                    raise ValueError(msg)
            self._grow(n_blocks * self.block)
            top = np.array([state.used - 1], np.int32)
            self._make_room(top, np.array([state.since, state.head], np.int64))
            self._sealed_to[:n_blocks] = state.sealed_to
            self._compacted_to[:n_blocks] = state.compacted_to
            self.hour_start[:] = state.hour_start
            self.slot_minute[:] = state.slot_minute
            start = self._window_start(state.head)
            for b, blocks in enumerate(state.blocks):
                for dst, src in zip(self._hours[b].fields(), state.hours[b].fields(), strict=True):
                    dst[: src.shape[0]] = src
                for dst, src in zip(self._blocks[b].fields(), state.slots[b].fields(), strict=True):
                    dst[: src.shape[0]] = src
                state.hours[b] = state.slots[b] = Partials.empty((0, 0))
                self._stores[b].adopt(blocks)
                self._untrimmed[b] = bool(blocks) and blocks[0].start < start
            self._due = True

    # -- writes ----------------------------------------------------------------------------

    def fold(self, series: I32, minutes: I64, values: F64) -> FoldResult:
        """Merge raw points (series id, minute, value) into the window."""
        n = int(series.shape[0])
        if n == 0:
            return FoldResult(0, 0)
        with self.lock:
            head = self._make_room(series, minutes)
            live_from = head - self.live_minutes + 1
            ring_from = self._window_start(head)
            if int(minutes.min()) >= live_from:
                self._fold_live(series, minutes, values)
                if self._due:
                    self._maintain()
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
            if self._due:
                self._maintain()
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
        if top > self.capacity:
            self._grow(top)
        if top > self._used:  # new series' live cells start empty
            live = self._live
            live.min[:, self._used : top] = np.inf
            live.max[:, self._used : top] = -np.inf
            self._used = top
        oldest = int(minutes.min())
        self._since = oldest if self._since is None else min(self._since, oldest)
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
        rows = row_of * self.capacity
        flat = rows.take(minutes - lo)
        flat += series
        live = self._live
        scatter_points(
            flat,
            parts.min,
            parts.max,
            parts.sum,
            parts.count,
            live.min.reshape(-1),
            live.max.reshape(-1),
            live.sum.reshape(-1),
            live.count.reshape(-1),
        )

    def _fold_ring(self, series: I32, minutes: I64, values: F64) -> None:
        m0 = int(minutes.min())
        keys, parts = reduce_by_key((series.astype(np.int64) << 32) | (minutes - m0), values)
        self._merge_window(keys >> 32, (keys & 0xFFFFFFFF) + m0, parts, True)

    def _merge_window(self, rows: I64, minutes: I64, parts: Partials, correct: bool) -> None:
        """Merge partials of distinct (series ``rows``, ``minutes``), ascending by series,
        into the window (none live): a ring block's sealed minutes into its blocks, the
        others into its slots. With ``correct``, the sink gets them as corrections (their
        own partials, not totals)."""
        w = self.slots
        bounds = np.searchsorted(rows, np.arange(len(self._blocks) + 1) * self.block)
        for b in np.flatnonzero(np.diff(bounds)).tolist():
            lo, hi = int(bounds[b]), int(bounds[b + 1])
            r, m, p = rows[lo:hi] - b * self.block, minutes[lo:hi], parts.take(np.s_[lo:hi])
            old = m < self._sealed_to[b]
            if old.any():
                self._merge_sealed(b, r[old].astype(np.int32), m[old], p.take(old))
                if old.all():
                    continue
                r, m, p = r[~old], m[~old], p.take(~old)
            for minute in _distinct(m).tolist():
                self._claim_slot(minute)
            merge_cells(r, m % w, p.min, p.max, p.sum, p.count, *self._blocks[b].fields())
        if correct and self.sink is not None:
            self.sink(rows.astype(np.int32), minutes, parts)

    def _merge_sealed(self, b: int, rows: I32, minutes: I64, parts: Partials) -> None:
        """Merge partials (rows of ring block ``b``) into its sealed minutes: into the
        blocks that hold them, or as new blocks for minutes no block holds."""
        store = self._stores[b]
        self.seal_stats.late_merged += int(rows.shape[0])
        self._merge_hours(b, rows, minutes, parts)
        rest = ~store.merge(rows, minutes, parts) & (parts.count > 0)
        if not rest.any():
            return
        rows, minutes, parts = rows[rest], minutes[rest], parts.take(rest)
        n = self.block_minutes
        starts = minutes // n * n
        for start in np.unique(starts).tolist():
            mine = starts == start
            cells = rows[mine].astype(np.int64) * n + (minutes[mine] - start)
            keys, new = reduce_partials_by_key(cells, parts.take(mine))
            dense = Partials.empty((int(rows[mine].max()) + 1, n))
            flat = Partials(*(f.reshape(-1) for f in dense.fields()))
            for dst, src in zip(flat.fields(), new.fields(), strict=True):
                dst[keys] = src
            store.seal(start, dense)

    def _merge_hours(self, b: int, rows: I32, minutes: I64, parts: Partials) -> None:
        """Merge partials of sealed minutes into their hours' summaries (ring block
        ``b``'s rows)."""
        n, h = self.summary_minutes, self.hour_slots
        starts = minutes // n * n
        for start in np.unique(starts).tolist():
            self._claim_hour(start)
        keys, cut = reduce_partials_by_key(rows.astype(np.int64) * h + starts // n % h, parts)
        merge_cells(keys // h, keys % h, cut.min, cut.max, cut.sum, cut.count,
                    *self._hours[b].fields())  # fmt: skip

    def _claim_hour(self, start: int) -> int:
        """Make the summary slot of the span of ``summary_minutes`` at ``start`` hold it,
        emptying the one before (past the window by now); returns the slot."""
        slot = start // self.summary_minutes % self.hour_slots
        if self.hour_start[slot] != start:
            if self.hour_start[slot] != _NO_MINUTE:
                for b, hours in enumerate(self._hours):
                    hours.count[: self._block_rows(b), slot] = 0
            self.hour_start[slot] = start
        return slot

    def _claim_slot(self, minute: int) -> None:
        """Make ``minute``'s ring slot hold that minute, emptying an older lap's data (which
        is sealed, or older than the window)."""
        slot = minute % self.slots
        held = self.slot_minute[slot]
        if held != minute:
            if held != _NO_MINUTE:  # a slot never written is zeros already
                for b, block in enumerate(self._blocks):
                    block.count[: self._block_rows(b), slot] = 0
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
            used = self._used
            live.min[row, :used] = np.inf
            live.max[row, :used] = -np.inf
            live.sum[row, :used] = 0.0
            live.count[row, :used] = 0
            self._dirty[row] = False
        first = self.head is None
        self.head = newest
        if self.sealing:
            self._after_advance(first)

    # -- sealing ---------------------------------------------------------------------------

    def _seal_floor(self) -> int:
        """The first minute each ring block may keep in its slots: the block start at or
        after the oldest slot (older minutes are sealed before their slots are reused)."""
        if not self.sealing or self.head is None:
            return _NO_MINUTE
        n = self.block_minutes
        return -(-(self.head - self.slots + 1) // n) * n

    def _after_advance(self, first: bool) -> None:
        """Seal whatever would lose its slots now, drop blocks past the window, and let the
        folds that follow seal and compact the rest a step at a time."""
        floor = self._seal_floor()
        if first:  # nothing is held yet: nothing to seal
            self._sealed_to[:] = floor
            self._compacted_to[:] = floor
        else:
            for b in np.flatnonzero(self._sealed_to < floor).tolist():
                self._seal_to(b, floor)
        assert self.head is not None
        start = self._window_start(self.head)
        for b, store in enumerate(self._stores):
            if store.blocks and store.blocks[0].start < start:
                store.expire(start)
                self._untrimmed[b] = bool(store.blocks) and store.blocks[0].start < start
        self._due = True

    def _seal_to(self, b: int, to: int) -> None:
        """Seal ring block ``b``'s blocks of minutes up to ``to`` (a block start)."""
        n = self.block_minutes
        since = int(self._sealed_to[b])
        stamps = self.slot_minute
        held = stamps[(stamps >= since) & (stamps < to)]
        began = time.thread_time()
        for start in np.unique(held // n * n).tolist():
            self._seal_block(b, start)
        self.seal_stats.seal_seconds += time.thread_time() - began
        self._sealed_to[b] = to

    def _seal_block(self, b: int, start: int) -> None:
        """Encode minutes ``[start, start + block_minutes)`` of ring block ``b``'s slots."""
        rows = self._block_rows(b)
        if rows == 0:
            return
        assert self.head is not None
        minutes = np.arange(start, start + self.block_minutes, dtype=np.int64)
        slots = minutes % self.slots
        held = (self.slot_minute[slots] == minutes) & (minutes >= self._window_start(self.head))
        if not held.any():
            return
        cut = Partials(*(f[:rows][:, slots] for f in self._blocks[b].fields()))  # copies
        cut.count[:, ~held] = 0
        if cut.count.any():
            _, summary = self._stores[b].seal(start, cut)
            self.seal_stats.sealed += 1
            # into its hour's summary, which the hour's other blocks merge into as well
            slot = self._claim_hour(start // self.summary_minutes * self.summary_minutes)
            full = np.flatnonzero(summary.count > 0)
            s = summary.take(full)
            merge_cells(full, np.full(full.shape[0], slot, np.int64), s.min, s.max, s.sum,
                        s.count, *self._hours[b].fields())  # fmt: skip

    def _maintain(self) -> None:
        """One step of the sealing, trimming and compaction the last advances made due,
        then the heap's freed scratch back to the kernel if the step did any."""
        stats = self.seal_stats
        before = stats.sealed + stats.trimmed + stats.compacted
        self._maintain_step()
        if stats.sealed + stats.trimmed + stats.compacted != before:
            release()

    def _maintain_step(self) -> None:
        """Ring blocks furthest behind seal one block of minutes each once it has had its
        grace, or else blocks the window's start has entered are trimmed, or else spans are
        compacted, until ``BLOCK`` rows are done (one full ring block, or many small ones),
        so no fold waits long."""
        assert self.head is not None
        n = self.block_minutes
        closed = (self.head + 1 - self.grace_minutes) // n * n
        rows = 0
        while rows < BLOCK:
            b = int(np.argmin(self._sealed_to))
            if self._sealed_to[b] >= closed:
                break
            self._seal_to(b, int(self._sealed_to[b]) + n)
            rows += max(1, self._block_rows(b))
        if rows:
            return
        untrimmed = np.flatnonzero(self._untrimmed)
        for b in untrimmed.tolist():
            self._trim(b)
            rows += max(1, self._block_rows(b))
            if rows >= BLOCK:
                return
        if untrimmed.shape[0]:
            return
        c = self.compact_minutes
        if c:
            behind = np.flatnonzero(self._compacted_to + c <= self._sealed_to)
            for b in behind.tolist():
                self._compact_next(b)
                rows += max(1, self._block_rows(b))
                if rows >= BLOCK:
                    return
            if behind.shape[0]:
                return
            for b in self._spans_to_grow().tolist():
                self._grow_span(b)
                rows += max(1, self._block_rows(b))
                if rows >= BLOCK:
                    return
            if rows:
                return
        self._due = False

    def _trim(self, b: int) -> None:
        """Re-encode ring block ``b``'s oldest block from the window's start (a block of
        minutes' start): a compacted block would otherwise hold up to its whole span of
        expired minutes until it ends (half of it on average)."""
        assert self.head is not None
        began = time.thread_time()
        if self._stores[b].trim(self._window_start(self.head)):
            self.seal_stats.trimmed += 1
        self.seal_stats.trim_seconds += time.thread_time() - began
        self._untrimmed[b] = False

    def _compact_next(self, b: int) -> None:
        """Compact ring block ``b``'s next span of hour blocks, keeping their summaries."""
        c = self.compact_minutes
        store = self._stores[b]
        since, sealed = int(self._compacted_to[b]), int(self._sealed_to[b])
        starts = [blk.start for blk in store.blocks if blk.start >= since and blk.minutes < c]
        if not starts:
            self._compacted_to[b] = sealed // c * c
            return
        span = min(starts) // c * c
        if span + c > sealed:
            self._compacted_to[b] = span
            return
        assert self.head is not None
        # a span the window starts in is leaving it: left to expire, not compacted and trimmed
        if span > self._window_start(self.head):
            began = time.thread_time()
            store.compact(span, c)  # the ring keeps the hours' summaries itself
            self.seal_stats.compact_seconds += time.thread_time() - began
            self.seal_stats.compacted += 1
        self._compacted_to[b] = span + c

    def _spans_to_grow(self) -> I64:
        """The ring blocks whose open span has an hour more sealed since it was last grown
        (its earlier spans compacted, and not a span leaving the window): found with a few
        array operations, since a cluster node has thousands of small ring blocks."""
        c, h = self.compact_minutes, self.summary_minutes
        assert self.head is not None
        span = self._sealed_to // c * c
        end = self._sealed_to // h * h
        due = (self._compacted_to >= span) & (span > self._window_start(self.head))
        due &= end - np.maximum(self._grown_to, span) >= h
        return np.flatnonzero(due)

    def _grow_span(self, b: int) -> None:
        """Re-encode ring block ``b``'s blocks of its open span, up to its last sealed hour,
        as one block: each block of minutes costs its index and headers until its span is
        compacted, up to 6 hours."""
        c, h = self.compact_minutes, self.summary_minutes
        sealed = int(self._sealed_to[b])
        span, end = sealed // c * c, sealed // h * h
        self._grown_to[b] = end
        store = self._stores[b]
        if not any(not k.compacted and span <= k.start < end for k in store.blocks):
            return  # the hour held no data: nothing was sealed
        began = time.thread_time()
        store.compact(span, end - span)
        self.seal_stats.compact_seconds += time.thread_time() - began
        self.seal_stats.grown += 1

    def _flush_row(self, row: int, minute: int) -> None:
        """Move a live row into its ring column: the one write each minute gets.

        The column may already hold the minute (partials loaded at start-up, or what
        ``hand_on_live`` handed on); then the live row, which holds only what came since,
        merges into it. The sink gets the live row.
        """
        slot = minute % self.slots
        live = self._live
        baseline = self.slot_minute[slot] == minute
        for b, block in enumerate(self._blocks):
            n = self._block_rows(b)
            if n == 0:
                break
            lo = b * self.block
            fresh = live.take(np.s_[row, lo : lo + n])
            if baseline:
                old = block.take(np.s_[:n, slot])
                fresh = merge(old, fresh)
            for dst, src in zip(block.fields(), fresh.fields(), strict=True):
                dst[:n, slot] = src
        self.slot_minute[slot] = minute
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
        handed on, and keep filling them from empty (the ring's slot holds what was handed
        on, and reads merge the two).

        For a clean stop, and every second on the embedded bus: afterwards every point
        folded so far has reached the sink once, and a restart that ``load``s the sink's
        minutes reads the same answers.
        """
        with self.lock:
            for row in np.flatnonzero(self._dirty).tolist():
                minute = int(self.live_minute[row])
                if minute == _NO_MINUTE:
                    self._dirty[row] = False
                    continue
                self._flush_row(row, minute)
                self.live_minute[row] = minute
                live = self._live
                used = self._used
                live.min[row, :used], live.max[row, :used] = np.inf, -np.inf
                live.sum[row, :used], live.count[row, :used] = 0.0, 0

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
        their minute closes; older minutes in the window into the ring and, as corrections,
        to the sink; minutes older than the window to the sink only."""
        keep = parts.count > 0
        if not keep.all():
            series, minutes = series[keep], minutes[keep]
            parts = parts.take(keep)
        if series.shape[0] == 0:
            return
        with self.lock:
            head = self._make_room(series, minutes)
            live = minutes > head - self.live_minutes
            ring = ~live & (minutes >= self._window_start(head))
            if live.any():
                cut = parts.take(live)
                self._merge_live(series[live], minutes[live], cut)
            if ring.any():
                m = minutes[ring]
                m0 = int(m.min())
                keys = (series[ring].astype(np.int64) << 32) | (m - m0)
                keys, cut = reduce_partials_by_key(keys, parts.take(ring))
                self._merge_window(keys >> 32, (keys & 0xFFFFFFFF) + m0, cut, True)
            old = ~live & ~ring
            if old.any():
                if self.sink is None:
                    self.expired_points += int(parts.count[old].sum())
                else:
                    cut = parts.take(old)
                    self.sink(series[old], minutes[old], cut)
            if self._due:
                self._maintain()

    def load(
        self,
        series: I32,
        minutes: I64,
        parts: Partials,
        distinct: bool = False,
    ) -> int:
        """Merge stored partials into the ring at start-up (the sink is not told).

        ``distinct``: the caller promises one partial per (series, minute) (the store's
        ``read_minutes`` does); otherwise partials of one cell are merged first.
        Returns how many entries fell inside the window and were loaded.
        """
        if series.shape[0] == 0:
            return 0
        with self.lock:
            head = self._make_room(series, minutes)
            keep = minutes >= self._window_start(head)
            if not keep.all():
                series, minutes = series[keep], minutes[keep]
                parts = parts.take(keep)
            loaded = int(series.shape[0])
            if loaded == 0:
                return 0
            if not distinct:  # one partial per cell, sorted by series
                m0 = int(minutes.min())
                keys = (series.astype(np.int64) << 32) | (minutes - m0)
                keys, parts = reduce_partials_by_key(keys, parts)
                series, minutes = (keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF) + m0
            w = self.slots
            # minutes some ring block keeps in slots: claimed first, so fresh ones are known
            to_slots = minutes >= int(self._sealed_to.min())
            slot_minutes = _distinct(minutes[to_slots]) if to_slots.any() else minutes[:0]
            fresh = self.slot_minute[slot_minutes % w] != slot_minutes
            for minute in slot_minutes.tolist():
                self._claim_slot(minute)
            # slots claimed just now were empty: their cells are written, not merged
            empty_slot = np.zeros(w, dtype=np.bool_)
            empty_slot[slot_minutes[fresh] % w] = True
            merge_needed = not bool(empty_slot[slot_minutes % w].all())
            block_of = series // self.block
            blocks = np.flatnonzero(np.bincount(block_of, minlength=len(self._blocks)))
            for b in blocks.tolist():
                if blocks.shape[0] == 1:
                    s, m, new = series, minutes, parts
                else:  # a mask per block: no sort of a long load
                    mine = block_of == b
                    s, m, new = series[mine], minutes[mine], parts.take(mine)
                s = s - b * self.block
                old = m < self._sealed_to[b]
                if old.any():  # sealed minutes: into blocks, a block of minutes at a time
                    self._merge_sealed(b, s[old], m[old], new.take(old))
                    if old.all():
                        continue
                    s, m, new = s[~old], m[~old], new.take(~old)
                flat = s.astype(np.int64) * w + m % w  # cell index inside the block
                block = Partials(*(a.reshape(-1) for a in self._blocks[b].fields()))
                if merge_needed:
                    new = merge(block.take(flat), new)
                for dst, src in zip(block.fields(), new.fields(), strict=True):
                    dst[flat] = src
            return loaded

    # -- reads -----------------------------------------------------------------------------

    def oldest_minute(self) -> int | None:
        """The oldest minute the window still holds (None before the first point): with
        sealing, the start of the block of minutes ``head - minutes + 1`` falls in."""
        return None if self.head is None else self._window_start(self.head)

    def _window_start(self, head: int) -> int:
        """The first minute of the window at ``head``. A sealing ring keeps whole blocks
        of minutes, so its window starts where the block of ``head - minutes`` does: a
        query over the last ``minutes`` minutes asked during minute ``head`` starts in that
        minute, and aligned to an hour it then finds its first hour whole in the ring, not
        partly in the store."""
        if not self.sealing:
            return head - self.minutes + 1
        return (head - self.minutes) // self.summary_minutes * self.summary_minutes

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

    def merge_buckets(
        self, series: I32, first: int, count: int, step: int, out: Partials, overwrite: bool = False
    ) -> None:
        """Merge minutes ``[first, first + count)`` of ``series`` into ``out``, whose column
        ``b`` is the bucket of minutes ``[first + b·step, first + (b+1)·step)`` (an entry with
        ``count == 0`` is empty, whatever else it holds; a view into a larger block is fine).

        Each series' ring row is merged straight into its buckets by one compiled pass
        (``buckets.merge_slots``), then the live rows' minutes into theirs: a 2-day read of
        2,000 series at step 1 h makes 96,000 buckets, not 5.76 M minutes first (figures:
        docs/performance.md, Measured choices). Minutes outside the window are not read, so
        none counts twice at a seam.

        With ``overwrite``, what ``out``'s first ``count // step`` columns hold is never read:
        they end as merging into a zeroed block leaves them, bit for bit, so ``out`` may be
        memory an earlier answer left (``BlockPool.unzeroed``). At step 1 the sealed minutes
        are decoded over what is there and only the other cells are zeroed first.
        """
        if count % step or out.count.shape[1] < count // step:
            msg = (
                f"{count} minutes in buckets of {step} need {count // step} whole columns,"
                f" out has {out.count.shape[1]}"
            )
            raise ValueError(msg)
        with self.lock:
            if overwrite and not self._clear_unsealed(series, first, count, step, out):
                overwrite = False  # all zeroed: merged into as any block
            if self.head is None or series.shape[0] == 0 or count <= 0:
                return
            lo = max(first, self._window_start(self.head))
            hi = min(first + count, self.head + 1)
            if lo >= hi:
                return
            at = np.flatnonzero(series < self._used)  # ids not yet written have no data
            if at.shape[0] == 0:
                return
            known = series[at]
            minutes = np.arange(max(lo, int(self._sealed_to.min())), hi, dtype=np.int64)
            slots = minutes % self.slots
            held = self.slot_minute[slots] == minutes  # a slot of an older lap is empty
            minutes, slots = minutes[held], slots[held]
            buckets = (minutes - first) // step
            groups = self._groups(known, at)
            # the sealed minutes: summaries, and every ring block's blocks in one call
            hours = self._summary_hours(first, step, lo, hi)
            self._read_sealed(groups, first, count, step, out, lo, hi, hours, overwrite)
            sealed_of = self._sealed_to[groups.table[:, 0]]
            for sealed in np.unique(sealed_of).tolist():  # the ring blocks sealed as far
                mine = minutes >= sealed
                merge_slots_at(
                    self._slots_at,
                    self.slots,
                    groups.table[sealed_of == sealed],
                    groups.rows,
                    groups.out_rows,
                    slots if mine.all() else slots[mine],
                    buckets if mine.all() else buckets[mine],
                    *out.fields(),
                )
            for row in range(self.live_minutes):
                minute = int(self.live_minute[row])
                if minute == _NO_MINUTE or not lo <= minute < hi:
                    continue
                col = (minute - first) // step
                fresh = self._live.take(np.s_[row, known])
                # the ring slot may hold a baseline for this minute (loaded at start-up)
                merged = merge(out.take(np.s_[at, col]), fresh)
                for dst, src in zip(out.fields(), merged.fields(), strict=True):
                    dst[at, col] = src

    def _clear_unsealed(
        self, series: I32, first: int, count: int, step: int, out: Partials
    ) -> bool:
        """Zero the cells of ``out``'s first ``count // step`` columns that a read at step 1
        does not decode over: minutes outside the window, series not written yet, and each
        ring block's minutes from its ``sealed_to`` on (slots and live rows merge there).
        Returns whether the sealed minutes are left for the decode to overwrite; if not (a
        coarser step, or sealed minutes read from hour summaries), every cell is zeroed."""
        cols = count // step
        if step != 1 or self.head is None or (self.sealing and self.summary_minutes == 1):
            clear(out, np.s_[:, :cols])
            return False
        lo = max(first, self._window_start(self.head))
        hi = max(lo, min(first + count, self.head + 1))
        clear(out, np.s_[:, : min(lo - first, cols)])
        clear(out, np.s_[:, hi - first : cols])
        known = series < self._used
        block_of = np.where(known, series, 0) // self.block
        ends = np.where(known, np.clip(self._sealed_to[block_of], lo, hi), lo)
        for end in np.unique(ends).tolist():  # the ring blocks sealed as far, usually one
            clear(out, np.s_[np.flatnonzero(ends == end), end - first : hi - first])
        return True

    def _summary_hours(self, first: int, step: int, lo: int, hi: int) -> I64 | None:
        """The sealed blocks of minutes inside ``[lo, hi)`` whose summaries a read at
        ``step`` from ``first`` can take (each inside one bucket), or None when some is not
        (then the blocks answer for every sealed minute)."""
        n = self.summary_minutes
        if not self.sealing or step < n:
            return None
        starts = np.arange(-(-lo // n) * n, hi - n + 1, n, dtype=np.int64)
        if not bool(((starts - first) // step == (starts + n - 1 - first) // step).all()):
            return None
        return starts

    def _read_sealed(
        self, groups: _Groups, first: int, count: int, step: int, out: Partials, lo: int,
        hi: int, hours: I64 | None, overwrite: bool,
    ) -> None:  # fmt: skip
        """Merge the sealed minutes in ``[lo, hi)`` of ``groups`` into ``out``: whole blocks
        of minutes inside a bucket from their summaries (``hours``, one call per distinct
        ``sealed_to``), the rest from every ring block's store in one decode (which
        ``overwrite``s them at step 1: ``blocks.read_stores``)."""
        n = self.summary_minutes
        table = groups.table
        ends = np.minimum(self._sealed_to[table[:, 0]], hi)
        if hours is not None:
            for end in np.unique(ends).tolist():
                whole = hours[hours + n <= end]
                slots = whole // n % self.hour_slots
                held = self.hour_start[slots] == whole  # a block never stamped had no data
                if held.any():
                    merge_slots_at(self._hours_at, self.hour_slots, table[ends == end],
                                   groups.rows, groups.out_rows, slots[held],
                                   (whole[held] - first) // step, *out.fields())  # fmt: skip
        reads: list[StoreRead] = []
        asked = 0  # series the decode may split over the second thread
        for (b, r0, r1), end in zip(table.tolist(), ends.tolist(), strict=True):
            if end <= lo:
                continue
            ids = groups.rows[r0:r1].astype(np.int32)
            out_rows = groups.out_rows[r0:r1]
            store = self._stores[b]
            if hours is None:
                reads.append(StoreRead(store, ids, out_rows, lo, end))
                asked += r1 - r0
                continue
            inner_lo = -(-lo // n) * n
            inner_hi = max(inner_lo, end // n * n)
            for a, e in ((lo, min(inner_lo, end)), (inner_hi, end)):
                if a < e:
                    reads.append(StoreRead(store, ids, out_rows, a, e))
                    asked += r1 - r0
        pool = self._executor() if asked >= SPLIT_ROWS else None
        read_stores(reads, first, count, step, out, pool, overwrite)

    def _executor(self) -> ThreadPoolExecutor:
        """The thread a read decodes half its rows on, made at the first read that
        decodes (a ring that never seals never starts it)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="hot-ring-decode")
        return self._pool

    def close(self) -> None:
        """Stop the decoding thread (a read afterwards starts it again)."""
        with self.lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def _groups(self, series: I32, at: I64) -> _Groups:
        """``series`` (at out rows ``at``) grouped by ring block, in block order."""
        block_of = series // self.block
        first = int(block_of[0])
        if bool((block_of == first).all()):
            table = np.array([[first, 0, series.shape[0]]], dtype=np.int64)
            return _Groups(table, (series - first * self.block).astype(np.int64), at)
        order = np.argsort(block_of, kind="stable")
        block_of = block_of[order]
        per = np.bincount(block_of)
        used = np.flatnonzero(per)
        table = np.zeros((used.shape[0], 3), dtype=np.int64)
        table[:, 0] = used
        table[:, 2] = np.cumsum(per[used])
        table[:, 1] = table[:, 2] - per[used]
        rows = series[order].astype(np.int64) - block_of.astype(np.int64) * self.block
        return _Groups(table, rows, at[order])


@dataclass(frozen=True, slots=True)
class _Groups:
    """A read's series by ring block: group ``g`` is ``table[g] = (block, r0, r1)``, rows
    ``rows[r0:r1]`` of that ring block into out rows ``out_rows[r0:r1]``."""

    table: I64
    rows: I64
    out_rows: I64


def _addresses(arena: Partials) -> I64:
    """A ring block's rows and the addresses of its fields, as ``merge_slots_at`` takes
    them."""
    at = [int(f.ctypes.data) for f in arena.fields()]
    return np.array([[arena.count.shape[0], *at]], dtype=np.int64)
