"""Closed blocks of minute partials, compressed in arenas: what the hot ring holds once its
minutes stop changing often.

Layout (``S`` = series rows of a block, ``n`` = its minutes; one ``Block`` per time span,
never one object per series)::

    Block(start, minutes)             one per span: [start, start + n)
      arena   u8[capacity]            every series' blob back to back (ringcodec), PAD after
      offset  i64[S]  length u32[S]   series s: arena[offset[s] : offset[s] + length[s]]
      fmt     u8[S]                   its ringcodec format (EMPTY: no data, no bytes)
      summary Partials[S] | None      min, max, sum, count of s over the whole block
                                      (None: the store keeps none, as the ring, whose
                                      hour summaries answer for its blocks)
      subs    Partials[S, k] | None   the same over each of k equal parts (compacted blocks)

- ``seal`` encodes a ``(series, n)`` block of partials (the ring's hour, every series at
  once); ``compact`` decodes consecutive blocks and re-encodes them as one (longer blocks
  need fewer headers and deltas restart less often), keeping a summary of each part it was
  made of when asked, so reads at the parts' step still decode nothing; ``expire`` drops
  whole blocks, so memory goes back a span at a time, and ``trim`` also re-encodes the
  block the cut falls in from the cut on, so a long block does not outlive its minutes.
- ``merge`` takes late partials into closed blocks exactly: the touched series are decoded,
  merged with ``model.merge`` and re-encoded; their new blobs go to the arena's end and the
  old bytes are counted dead until the arena is repacked (when they pass half of it).
- ``read`` merges a set of series over any minute range into bucket arrays, as the ring's
  reads do: a block (or a part of a compacted block) that lies inside one bucket gives its
  summary and decodes nothing; other blocks decode only the requested series, straight
  into the buckets, split by rows over an executor's threads (the kernel releases the GIL).

Not thread-safe: the owner (the ring, under its lock) serialises writes with reads.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minutely import ringcodec
from minutely.model import I32, I64, U32, Partials, merge, reduce_partials_by_key, restep

U8 = npt.NDArray[np.uint8]

#: bytes one series costs in a block's index: offset, length, format
INDEX_BYTES = 8 + 4 + 1
#: bytes one series costs in a block's summary
SUMMARY_BYTES = 8 + 8 + 8 + 4
#: series-minutes a read decodes before it splits them over two threads (below this,
#: handing half to the other thread costs more than it saves)
SPLIT_CELLS = 1 << 18
#: ``BlockStore.table`` columns after ``ringcodec.decode_blocks``'s: each block's first
#: minute, and the minutes of its parts' summaries (0: none)
T_START = ringcodec.TABLE_COLUMNS
T_SUB = T_START + 1
TABLE_COLUMNS = T_SUB + 1


@dataclass(slots=True)
class Block:
    """One closed span ``[start, start + minutes)`` of every series (see the module's
    layout). ``used`` bytes of ``arena`` hold blobs, ``dead`` of them are no longer
    referenced."""

    start: int
    minutes: int
    arena: U8
    used: int
    dead: int
    offset: I64
    length: U32
    fmt: npt.NDArray[np.uint8]
    #: None: the store keeps no summaries, so a read decodes the block
    summary: Partials | None
    #: summaries of ``minutes // sub_minutes`` equal parts, ``(rows, parts)``; None: one part
    subs: Partials | None = None
    sub_minutes: int = 0
    #: made by ``compact`` (not sealed as it is)
    compacted: bool = False

    @property
    def rows(self) -> int:
        return int(self.offset.shape[0])

    @property
    def end(self) -> int:
        return self.start + self.minutes

    def spans(self) -> list[tuple[int, int]]:
        """``[start, end)`` of each part that has a summary (the block itself when it
        keeps no parts' summaries)."""
        if self.subs is None:
            return [(self.start, self.end)]
        s = self.sub_minutes
        return [(a, a + s) for a in range(self.start, self.end, s)]

    @property
    def summarised(self) -> bool:
        """Whether a read may answer a part inside one bucket from a summary."""
        return self.summary is not None or self.subs is not None

    @staticmethod
    def of(start: int, minutes: int, enc: ringcodec.Encoded, summary: bool = True) -> Block:
        """A block of ``minutes`` holding ``enc``'s blobs, in an arena of their size, with
        their summaries when ``summary``."""
        arena = ringcodec.padded(enc.data)
        kept = enc.summary if summary else None
        return Block(start, minutes, arena, int(enc.data.shape[0]), 0, enc.offset.copy(),
                     enc.length.copy(), enc.fmt.copy(), kept)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BlockUsage:
    """What one block costs: arena bytes allocated (``arena``) and holding live blobs
    (``live``), index and summary bytes, over ``rows × minutes`` series-minutes."""

    start: int
    minutes: int
    rows: int
    arena: int
    live: int
    index: int
    summary: int
    compacted: bool = False

    @property
    def nbytes(self) -> int:
        return self.arena + self.index + self.summary

    @property
    def bytes_per_series_minute(self) -> float:
        return self.nbytes / max(1, self.rows * self.minutes)


class BlockStore:
    """Closed blocks of minute partials for series ``0 .. S-1``, compressed (see the
    module's docstring). Blocks never overlap; ``blocks`` is ordered by start. With
    ``summaries`` False its blocks keep no summary over themselves (parts' summaries asked
    of ``compact`` are still kept): an owner that keeps its own, as the ring its hours',
    saves 28 B a series and block, and reads decode those blocks instead."""

    def __init__(self, summaries: bool = True) -> None:
        self.summaries = summaries
        self.blocks: list[Block] = []
        #: ``table()``'s answer until the blocks change
        self._table: I64 | None = None

    # -- writes ----------------------------------------------------------------------------

    def adopt(self, blocks: list[Block]) -> None:
        """Hold ``blocks`` (non-overlapping, as an earlier store held them) instead of its
        own: a ring put back from a snapshot."""
        self.blocks = sorted(blocks, key=lambda b: b.start)
        self._table = None

    def seal(self, start: int, parts: Partials) -> tuple[Block, Partials]:
        """Encode minutes ``[start, start + n)`` of series ``0 .. rows-1`` (``parts`` is
        ``(rows, n)``) as a closed block; returns it and each row's summary over it (which
        the block keeps if the store keeps summaries)."""
        n = int(parts.count.shape[1])
        if n == 0:
            msg = "a block needs at least one minute"
            raise ValueError(msg)
        for b in self.blocks:
            if b.start < start + n and start < b.end:
                msg = f"minutes [{start}, {start + n}) overlap the block [{b.start}, {b.end})"
                raise ValueError(msg)
        enc = ringcodec.encode(parts)
        block = Block.of(start, n, enc, self.summaries)
        self.blocks.append(block)
        self.blocks.sort(key=lambda b: b.start)
        self._table = None
        return block, enc.summary

    def compact(self, start: int, minutes: int, sub_minutes: int = 0) -> Block | None:
        """Re-encode every block inside ``[start, start + minutes)`` as one block of that
        span (minutes no block held are empty); None when there is none. With
        ``sub_minutes`` (dividing ``minutes``), the new block keeps a summary of each part of
        that many minutes, so reads at that step still use summaries."""
        inside = [b for b in self.blocks if start <= b.start and b.end <= start + minutes]
        if not inside:
            return None
        if sub_minutes and minutes % sub_minutes:
            msg = f"parts of {sub_minutes} minutes do not divide {minutes}"
            raise ValueError(msg)
        return self._reencode(inside, start, minutes, sub_minutes)

    def _reencode(self, inside: list[Block], start: int, minutes: int, sub_minutes: int) -> Block:
        """Replace ``inside`` by one compacted block of minutes ``[start, start + minutes)``
        of theirs."""
        rows = max(b.rows for b in inside)
        chunk = max(1, ringcodec.SCRATCH // (28 * minutes))  # decoded rows per pass
        pieces: list[ringcodec.Encoded] = []
        subs: list[Partials] = []
        for a in range(0, rows, chunk):
            ids = np.arange(a, min(rows, a + chunk), dtype=np.int32)
            part = Partials.zeros((ids.shape[0], minutes))
            self._decode_into(_pieces(inside, start, start + minutes), ids, start, 1, part, None)
            pieces.append(ringcodec.encode(part))
            if sub_minutes:
                subs.append(restep(part, sub_minutes))
        enc = _concat(pieces)
        for b in inside:
            self.blocks.remove(b)
        block = Block.of(start, minutes, enc, self.summaries)
        block.compacted = True
        if sub_minutes:
            block.subs = _concat_parts(subs)
            block.sub_minutes = sub_minutes
        self.blocks.append(block)
        self.blocks.sort(key=lambda b: b.start)
        self._table = None
        return block

    def expire(self, before: int) -> int:
        """Drop every block that ends at or before minute ``before``; returns how many."""
        keep = [b for b in self.blocks if b.end > before]
        dropped = len(self.blocks) - len(keep)
        self.blocks = keep
        if dropped:
            self._table = None
        return dropped

    def trim(self, before: int) -> int:
        """Drop every minute before ``before``: blocks that end at or before it whole, and a
        block that holds it re-encoded from it (its parts' summaries kept when ``before``
        starts a part). Returns how many series-minutes were re-encoded."""
        self.expire(before)
        cut = [b for b in self.blocks if b.start < before]
        done = 0
        for b in cut:
            whole_parts = b.subs is not None and (before - b.start) % b.sub_minutes == 0
            done += b.rows * (b.end - before)
            block = self._reencode([b], before, b.end - before, b.sub_minutes * whole_parts)
            block.compacted = b.compacted
        return done

    def merge(self, series: I32, minutes: I64, parts: Partials) -> npt.NDArray[np.bool_]:
        """Merge partials into the closed blocks that hold their minutes, exactly as
        ``model.merge`` merges (partials of one cell first, then into the block). Returns
        which entries a block took; the others are the caller's."""
        taken = np.zeros(series.shape[0], np.bool_)
        for block in self.blocks:
            inside = (minutes >= block.start) & (minutes < block.end)
            taken |= inside
            mine = inside & (parts.count > 0)
            if not mine.any():
                continue
            self._merge_block(block, series[mine], minutes[mine], parts.take(mine))
            self._table = None
        return taken

    def _merge_block(self, block: Block, series: I32, minutes: I64, parts: Partials) -> None:
        n = block.minutes
        top = int(series.max()) + 1
        if top > block.rows:
            _grow_rows(block, top)
        rows = np.unique(series).astype(np.int32)
        cells = Partials.zeros((rows.shape[0], n))
        self._decode_into([(block, block.start, block.end)], rows, block.start, 1, cells, None)
        at = np.searchsorted(rows, series).astype(np.int64) * n + (minutes - block.start)
        keys, new = reduce_partials_by_key(at, parts)
        flat = Partials(*(f.reshape(-1) for f in cells.fields()))
        merged = merge(flat.take(keys), new)
        for dst, src in zip(flat.fields(), merged.fields(), strict=True):
            dst[keys] = src
        enc = ringcodec.encode(cells)
        block.dead += int(block.length[rows].sum(dtype=np.int64))
        size = int(enc.data.shape[0])
        if block.used + size + ringcodec.PAD > block.arena.shape[0]:
            grown = np.zeros(max(2 * block.arena.shape[0], block.used + size + ringcodec.PAD),
                             np.uint8)  # fmt: skip
            grown[: block.used] = block.arena[: block.used]
            block.arena = grown
        block.arena[block.used : block.used + size] = enc.data
        block.offset[rows] = enc.offset + block.used
        block.length[rows] = enc.length
        block.fmt[rows] = enc.fmt
        if block.summary is not None:
            for dst, src in zip(block.summary.fields(), enc.summary.fields(), strict=True):
                dst[rows] = src
        if block.subs is not None:
            for dst, src in zip(
                block.subs.fields(), restep(cells, block.sub_minutes).fields(), strict=True
            ):
                dst[rows] = src
        block.used += size
        if block.dead * 2 > block.used:
            _repack(block)

    # -- reads -----------------------------------------------------------------------------

    def table(self) -> I64:
        """One row per block, oldest first, as ``ringcodec.decode_blocks`` takes them
        (addresses of the arena, offsets and formats; rows; minutes) with ``T_START`` and
        ``T_SUB`` (``sub_minutes``; 0: the block's own summary; -1: none) after; the window
        columns are left for a read to fill.
        Kept until the blocks change; the addresses hold while the store does not."""
        if self._table is None:
            t = np.zeros((len(self.blocks), TABLE_COLUMNS), np.int64)
            for i, b in enumerate(self.blocks):
                t[i, ringcodec.T_ARENA] = b.arena.ctypes.data
                t[i, ringcodec.T_BYTES] = b.arena.shape[0]
                t[i, ringcodec.T_OFFSET] = b.offset.ctypes.data
                t[i, ringcodec.T_FMT] = b.fmt.ctypes.data
                t[i, ringcodec.T_ROWS] = b.rows
                t[i, ringcodec.T_N] = b.minutes
                t[i, T_START] = b.start
                own = 0 if b.summary is not None else -1
                t[i, T_SUB] = b.sub_minutes if b.subs is not None else own
            self._table = t
        return self._table

    def read(
        self,
        series: I32,
        first: int,
        count: int,
        step: int,
        out: Partials,
        pool: Executor | None = None,
        rows: I64 | None = None,
        within: tuple[int, int] | None = None,
    ) -> None:
        """Merge minutes ``[first, first + count)`` of ``series`` into ``out``, whose column
        ``b`` is the bucket of minutes ``[first + b·step, first + (b+1)·step)`` and row
        ``rows[i]`` (``i`` when None) is ``series[i]`` (as ``HotRing.merge_buckets``). Only
        minutes inside ``within`` (``[lo, hi)``) are merged, when given. A block, or a part
        of a compacted block, inside one bucket merges its summary; the rest decodes, in time
        order. With ``pool``, a decode of ``SPLIT_CELLS`` or more splits its rows in two and
        the second half decodes on the pool's thread."""
        if count % step or out.count.shape[1] < count // step:
            msg = (
                f"{count} minutes in buckets of {step} need {count // step} whole columns,"
                f" out has {out.count.shape[1]}"
            )
            raise ValueError(msg)
        lo, hi = first, first + count
        if within is not None:
            lo, hi = max(lo, within[0]), min(hi, within[1])
        touched = [b for b in self.blocks if b.start < hi and lo < b.end]
        if not touched or series.shape[0] == 0:
            return
        at = np.arange(series.shape[0], dtype=np.int64) if rows is None else rows
        decode: list[tuple[Block, int, int]] = []
        summaries: list[tuple[Block, int, int]] = []  # (block, part, bucket)
        for b in touched:
            for j, (a, e) in enumerate(b.spans()):
                if e <= lo or hi <= a:
                    continue
                inside = lo <= a and e <= hi and (a - first) // step == (e - 1 - first) // step
                if inside and b.summarised:
                    summaries.append((b, j, (a - first) // step))
                    continue
                a, e = max(a, lo), min(e, hi)
                if decode and decode[-1][0] is b and decode[-1][2] == a:
                    decode[-1] = (b, decode[-1][1], e)  # one job per run of parts
                else:
                    decode.append((b, a, e))
        if summaries:
            _merge_summaries(summaries, series, at, out)
        if not decode:
            return
        n = int(series.shape[0])
        if pool is None or n * sum(e - a for _, a, e in decode) < SPLIT_CELLS:
            self._decode_into(decode, series, first, step, out, at)
            return
        half = n // 2
        later = pool.submit(self._decode_into, decode, series[half:], first, step, out,
                            at[half:])  # fmt: skip
        self._decode_into(decode, series[:half], first, step, out, at[:half])
        later.result()

    def _decode_into(
        self,
        pieces: list[tuple[Block, int, int]],
        series: I32,
        first: int,
        step: int,
        out: Partials,
        out_rows: I64 | None,
    ) -> None:
        """Decode ``series`` of each ``(block, lo, hi)`` over minutes ``[lo, hi)`` into
        ``out``'s rows ``out_rows`` (``0 ..`` when None), bucket ``(m - first) // step``,
        in the order given."""
        rows = np.arange(series.shape[0], dtype=np.int64) if out_rows is None else out_rows
        for b, lo, hi in pieces:
            held = series < b.rows
            ids = series[held] if not held.all() else series
            at = rows[held] if not held.all() else rows
            k = int(ids.shape[0])
            if k == 0 or lo >= hi:
                continue
            fmt = b.fmt[ids]
            ringcodec.decode_jobs(
                b.arena, b.offset[ids], fmt, np.full(k, b.minutes, np.int64),
                np.full(k, lo - b.start, np.int64), np.full(k, hi - b.start, np.int64), at,
                np.full(k, b.start - first, np.int64), step, *out.fields(),
            )  # fmt: skip

    # -- accounting ------------------------------------------------------------------------

    def usage(self) -> list[BlockUsage]:
        """What each block costs, oldest first."""
        return [
            BlockUsage(
                b.start,
                b.minutes,
                b.rows,
                int(b.arena.nbytes),
                b.used - b.dead,
                b.rows * INDEX_BYTES,
                b.rows
                * SUMMARY_BYTES
                * ((b.summary is not None) + (0 if b.subs is None else b.subs.count.shape[1])),
                b.compacted,
            )
            for b in self.blocks
        ]

    @property
    def nbytes(self) -> int:
        return sum(u.nbytes for u in self.usage())


def _merge_summaries(
    pieces: list[tuple[Block, int, int]], series: I32, rows: I64, out: Partials
) -> None:
    """Merge each ``(block, part, bucket)``'s summary of ``series`` into
    ``out[rows, bucket]``: all parts side by side, reduced per bucket, one merge (pieces come
    in time order, block by block, so a bucket's parts are adjacent)."""
    n, k = int(series.shape[0]), len(pieces)
    parts = Partials(
        np.empty((n, k)), np.empty((n, k)), np.empty((n, k)), np.empty((n, k), np.uint32)
    )
    i = 0
    while i < k:
        b = pieces[i][0]
        e = i + 1
        while e < k and pieces[e][0] is b:
            e += 1
        held = series < b.rows
        ids = series if held.all() else np.where(held, series, 0)
        if b.subs is None:
            assert b.summary is not None  # a read asks only blocks with summaries
            for dst, f in zip(parts.fields(), b.summary.fields(), strict=True):
                dst[:, i] = f[ids]
        else:
            js = np.array([j for _, j, _ in pieces[i:e]], np.int64)
            whole = e - i == b.subs.count.shape[1]
            for dst, f in zip(parts.fields(), b.subs.fields(), strict=True):
                dst[:, i:e] = f[ids] if whole else f[ids[:, None], js[None, :]]
        if not held.all():
            parts.count[~held, i:e] = 0
        i = e
    if bool((parts.count == 0).any()):
        parts = parts.neutral()
    buckets = np.array([bucket for _, _, bucket in pieces], np.int64)
    if k > 1 and bool((buckets[1:] == buckets[:-1]).any()):
        starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
        parts = Partials(
            np.minimum.reduceat(parts.min, starts, axis=1),
            np.maximum.reduceat(parts.max, starts, axis=1),
            np.add.reduceat(parts.sum, starts, axis=1),
            np.add.reduceat(parts.count, starts, axis=1).astype(np.uint32),
        )
        buckets = buckets[starts]
    _merge_cells(out, rows, buckets, parts)


def _merge_cells(out: Partials, rows: I64, cols: I64, parts: Partials) -> None:
    """``out[rows][:, cols]`` merged with ``parts`` (``(rows, cols)``, empty entries
    holding merge's identity): in place through views when both are runs, as a read's
    usually are, else gathered, merged and scattered."""
    r0, c0 = int(rows[0]), int(cols[0])
    if _is_run(rows) and _is_run(cols):
        at = np.s_[r0 : r0 + rows.shape[0], c0 : c0 + cols.shape[0]]
        mn, mx, sm, ct = (f[at] for f in out.fields())
        empty = ct == 0  # their other fields are undefined
        np.copyto(mn, np.inf, where=empty)
        np.copyto(mx, -np.inf, where=empty)
        np.copyto(sm, 0.0, where=empty)
        np.minimum(mn, parts.min, out=mn)
        np.maximum(mx, parts.max, out=mx)
        sm += parts.sum
        ct += parts.count
        return
    cells = np.s_[rows[:, None], cols[None, :]]
    merged = merge(out.take(cells), parts)
    for dst, src in zip(out.fields(), merged.fields(), strict=True):
        dst[cells] = src


def _is_run(a: I64) -> bool:
    """Whether ``a`` is ``a[0], a[0] + 1, ...``."""
    return int(a[-1]) - int(a[0]) == a.shape[0] - 1 and bool((np.diff(a) == 1).all())


def _pieces(blocks: list[Block], lo: int, hi: int) -> list[tuple[Block, int, int]]:
    """Each block's minutes inside ``[lo, hi)``, as ``_decode_into`` takes them."""
    return [(b, max(lo, b.start), min(hi, b.end)) for b in blocks]


def _grow_rows(block: Block, rows: int) -> None:
    """Give series ``block.rows .. rows-1`` (new since the block closed) empty entries."""
    extra = rows - block.rows
    block.offset = np.concatenate([block.offset, np.zeros(extra, np.int64)])
    block.length = np.concatenate([block.length, np.zeros(extra, np.uint32)])
    block.fmt = np.concatenate([block.fmt, np.zeros(extra, np.uint8)])
    if block.summary is not None:
        block.summary = _concat_parts([block.summary, Partials.empty(extra)])
    if block.subs is not None:
        block.subs = _concat_parts([block.subs, Partials.empty((extra, block.subs.count.shape[1]))])


def _concat_parts(parts: list[Partials]) -> Partials:
    """Rows of ``parts`` one after another."""
    return Partials(*(np.concatenate(f) for f in zip(*(p.fields() for p in parts), strict=True)))


def _repack(block: Block) -> None:
    """Copy the live blobs to a new arena of their size, dropping the dead bytes."""
    offset = np.zeros(block.rows, np.int64)
    np.cumsum(block.length[:-1], out=offset[1:])
    live = int(block.length.sum(dtype=np.int64))
    arena = np.zeros(live + ringcodec.PAD, np.uint8)
    ringcodec.copy_blobs(block.arena, block.offset, block.length, arena, offset)
    block.arena, block.offset, block.used, block.dead = arena, offset, live, 0


def _concat(pieces: list[ringcodec.Encoded]) -> ringcodec.Encoded:
    """Encoded rows of consecutive pieces as one (offsets shifted past earlier pieces)."""
    if len(pieces) == 1:
        return pieces[0]
    shift = np.cumsum([0] + [int(p.data.shape[0]) for p in pieces[:-1]])
    return ringcodec.Encoded(
        np.concatenate([p.data for p in pieces]),
        np.concatenate([p.offset + s for p, s in zip(pieces, shift, strict=True)]),
        np.concatenate([p.length for p in pieces]),
        np.concatenate([p.fmt for p in pieces]),
        _concat_parts([p.summary for p in pieces]),
    )


@dataclass(frozen=True, slots=True)
class StoreRead:
    """One store's part of ``read_stores``: ``series`` of ``store`` into ``out`` rows
    ``rows``, minutes ``[lo, hi)`` only."""

    store: BlockStore
    series: I32
    rows: I64
    lo: int
    hi: int


def read_stores(
    reads: list[StoreRead],
    first: int,
    count: int,
    step: int,
    out: Partials,
    pool: Executor | None = None,
    overwrite: bool = False,
) -> None:
    """``BlockStore.read`` of every store in ``reads`` into one ``out``, decoding all their
    blocks in one compiled call (split by rows over ``pool``'s thread from ``SPLIT_CELLS``
    series-minutes), series by series, so no Python runs per store or block. A store with a
    block that a summary would answer (a block or part inside one bucket) is read on its own
    by ``BlockStore.read``.

    With ``overwrite`` (step 1 only), what ``out`` holds in each read's rows and minutes is
    not read but written over: every such cell ends as a read into zeros would leave it
    (minutes no block holds zeroed), so ``out`` need not be zeroed first. Reads must then
    not share a cell."""
    if count % step or out.count.shape[1] < count // step:
        msg = (
            f"{count} minutes in buckets of {step} need {count // step} whole columns,"
            f" out has {out.count.shape[1]}"
        )
        raise ValueError(msg)
    if overwrite and step != 1:
        msg = f"a read overwrites its buckets at step 1 only, not {step}"
        raise ValueError(msg)
    reads = [
        r for r in reads if r.lo < r.hi and r.series.shape[0] and (overwrite or r.store.blocks)
    ]
    if not reads:
        return
    tables = [r.store.table() for r in reads]
    blocks = np.array([t.shape[0] for t in tables], np.int64)
    table = np.concatenate(tables)
    of = np.repeat(np.arange(len(reads)), blocks)
    lo_read = np.array([max(r.lo, first) for r in reads], np.int64)
    hi_read = np.array([min(r.hi, first + count) for r in reads], np.int64)
    lo, hi = lo_read[of], hi_read[of]
    start = table[:, T_START]
    end = start + table[:, ringcodec.T_N]
    a, e = np.maximum(start, lo), np.minimum(end, hi)
    keep = a < e
    sub = table[:, T_SUB]
    part = np.where(sub > 0, sub, table[:, ringcodec.T_N])
    # a part inside one bucket: the store answers it from its summary
    whole = keep & ((start - first) // step == (start + part - 1 - first) // step)
    whole &= (sub > 0) | ((sub == 0) & (lo <= start) & (end <= hi))
    alone = np.zeros(len(reads), np.bool_)
    if whole.any():
        alone[of[whole]] = True
        for i in np.flatnonzero(alone).tolist():
            r = reads[i]
            if overwrite:  # merged into, so zeroed first
                for f in out.fields():
                    f[r.rows, lo_read[i] - first : max(lo_read[i], hi_read[i]) - first] = 0
            r.store.read(r.series, first, count, step, out, pool, r.rows, (r.lo, r.hi))
        keep &= ~alone[of]
    if not overwrite and not keep.any():
        return
    table = table[keep]
    of = of[keep]
    table[:, ringcodec.T_LO] = a[keep] - start[keep]
    table[:, ringcodec.T_HI] = e[keep] - start[keep]
    table[:, ringcodec.T_COL0] = start[keep] - first
    per = np.bincount(of, minlength=len(reads))
    # overwriting, every read not answered alone writes its cells, blocks or none
    used = np.flatnonzero(~alone if overwrite else per)
    if used.shape[0] == 0:
        return
    sizes = np.array([reads[i].series.shape[0] for i in used.tolist()], np.int64)
    groups = np.zeros((used.shape[0], 6), np.int64)
    groups[:, 1] = np.cumsum(sizes)
    groups[:, 0] = groups[:, 1] - sizes
    groups[:, 3] = np.cumsum(per[used])
    groups[:, 2] = groups[:, 3] - per[used]
    groups[:, 4] = lo_read[used] - first  # the columns each group writes, at step 1
    groups[:, 5] = np.maximum(hi_read[used] - first, groups[:, 4])
    series = np.concatenate([reads[i].series for i in used.tolist()]).astype(np.int64)
    rows = np.concatenate([reads[i].rows for i in used.tolist()]).astype(np.int64)
    minutes = np.bincount(of, weights=table[:, ringcodec.T_HI] - table[:, ringcodec.T_LO],
                          minlength=len(reads))  # fmt: skip
    cells = int((minutes[used] * sizes).sum())
    n = int(series.shape[0])
    fields = out.fields()
    if pool is None or cells < SPLIT_CELLS or n < 2:
        ringcodec.decode_blocks(table, groups, series, rows, 0, n, step, *fields, overwrite)
        return
    half = n // 2
    later = pool.submit(ringcodec.decode_blocks, table, groups, series, rows, half, n, step,
                        *fields, overwrite)  # fmt: skip
    ringcodec.decode_blocks(table, groups, series, rows, 0, half, step, *fields, overwrite)
    later.result()
