"""Closed blocks of minute partials, compressed in arenas: what the hot ring holds once its
minutes stop changing often.

Layout (``S`` = series rows of a block, ``n`` = its minutes; one ``Block`` per time span,
never one object per series)::

    Block(start, minutes)             one per span: [start, start + n)
      arena   u8[capacity]            every series' blob back to back (ringcodec), PAD after
      offset  i64[S]  length u32[S]   series s: arena[offset[s] : offset[s] + length[s]]
      fmt     u8[S]                   its ringcodec format (EMPTY: no data, no bytes)
      summary Partials[S]             min, max, sum, count of s over the whole block
      subs    Blobs | None            the same over each of k equal parts, compressed: one
                                      blob of k entries per series (compacted blocks)

- ``seal`` encodes a ``(series, n)`` block of partials (the ring's hour, every series at
  once); ``compact`` decodes consecutive blocks and re-encodes them as one (longer blocks
  need fewer headers and deltas restart less often), keeping a summary of each part it was
  made of when asked (compressed by the same codec: a part's summary is an entry like a
  minute's), so reads at the parts' step decode those, not the minutes; ``expire`` drops
  whole blocks, so memory goes back a span at a time, and ``trim`` also re-encodes the
  block the cut falls in from the cut on, so a long block does not outlive its minutes.
- ``merge`` takes late partials into closed blocks exactly: the touched series are decoded,
  merged with ``model.merge`` and re-encoded; their new blobs go to the arena's end and the
  old bytes are counted dead until the arena is repacked (when they pass half of it).
- ``read`` (and ``read_stores``, over many stores) merges a set of series over any minute
  range into bucket arrays, as the ring's reads do: a block that lies inside one bucket
  gives its summary and decodes nothing, the parts of a compacted block that lie inside one
  bucket each decode their summaries, and the rest decodes only the requested series'
  minutes, straight into the buckets, split by rows over an executor's threads (the
  kernels release the GIL). Each of the three is one compiled call for every store.

Not thread-safe: the owner (the ring, under its lock) serialises writes with reads.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minutely import ringcodec
from minutely.buckets import merge_summaries_at
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
#: minute, the minutes of its parts' summaries (0: none), the addresses of its summary's
#: fields (``T_SUMMARY`` .. ``+ 3``) and of its parts' summaries' arena (``T_SUB_BYTES``
#: long), offsets and formats
T_START = ringcodec.TABLE_COLUMNS
T_SUB = T_START + 1
T_SUMMARY = T_SUB + 1
T_SUB_ARENA = T_SUMMARY + 4
T_SUB_BYTES = T_SUB_ARENA + 1
T_SUB_OFFSET = T_SUB_BYTES + 1
T_SUB_FMT = T_SUB_OFFSET + 1
TABLE_COLUMNS = T_SUB_FMT + 1


@dataclass(slots=True)
class Blobs:
    """Encoded rows in one arena: row ``s`` is ``arena[offset[s] : offset[s] + length[s]]``
    in format ``fmt[s]``; ``used`` bytes of the arena hold blobs, ``dead`` of them are no
    longer referenced (a block's parts' summaries)."""

    arena: U8
    used: int
    dead: int
    offset: I64
    length: U32
    fmt: npt.NDArray[np.uint8]

    @staticmethod
    def of(enc: ringcodec.Encoded) -> Blobs:
        return Blobs(ringcodec.padded(enc.data), int(enc.data.shape[0]), 0, enc.offset.copy(),
                     enc.length.copy(), enc.fmt.copy())  # fmt: skip

    @property
    def nbytes(self) -> int:
        """Arena and index."""
        return int(self.arena.nbytes + self.offset.shape[0] * INDEX_BYTES)

    def replace(self, rows: I32 | I64, enc: ringcodec.Encoded) -> None:
        """Make ``enc``'s blobs those of ``rows``: appended, the old ones counted dead, the
        arena repacked when they pass half of it."""
        self.dead += int(self.length[rows].sum(dtype=np.int64))
        size = int(enc.data.shape[0])
        if self.used + size + ringcodec.PAD > self.arena.shape[0]:
            grown = np.zeros(max(2 * self.arena.shape[0], self.used + size + ringcodec.PAD),
                             np.uint8)  # fmt: skip
            grown[: self.used] = self.arena[: self.used]
            self.arena = grown
        self.arena[self.used : self.used + size] = enc.data
        self.offset[rows] = enc.offset + self.used
        self.length[rows] = enc.length
        self.fmt[rows] = enc.fmt
        self.used += size
        if self.dead * 2 > self.used:
            self.repack()

    def grow(self, extra: int) -> None:
        """Empty rows for ``extra`` series more."""
        self.offset = np.concatenate([self.offset, np.zeros(extra, np.int64)])
        self.length = np.concatenate([self.length, np.zeros(extra, np.uint32)])
        self.fmt = np.concatenate([self.fmt, np.zeros(extra, np.uint8)])

    def repack(self) -> None:
        """Copy the live blobs to a new arena of their size, dropping the dead bytes."""
        offset = np.zeros(self.offset.shape[0], np.int64)
        np.cumsum(self.length[:-1], out=offset[1:])
        live = int(self.length.sum(dtype=np.int64))
        arena = np.zeros(live + ringcodec.PAD, np.uint8)
        ringcodec.copy_blobs(self.arena, self.offset, self.length, arena, offset)
        self.arena, self.offset, self.used, self.dead = arena, offset, live, 0


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
    summary: Partials
    #: summaries of ``minutes // sub_minutes`` equal parts, a blob of that many entries per
    #: row (``ringcodec``); None: one part
    subs: Blobs | None = None
    sub_minutes: int = 0
    #: made by ``compact`` (not sealed as it is)
    compacted: bool = False

    @property
    def rows(self) -> int:
        return int(self.offset.shape[0])

    @property
    def end(self) -> int:
        return self.start + self.minutes

    @staticmethod
    def of(start: int, minutes: int, enc: ringcodec.Encoded) -> Block:
        """A block of ``minutes`` holding ``enc``'s blobs, in an arena of their size."""
        arena = ringcodec.padded(enc.data)
        return Block(start, minutes, arena, int(enc.data.shape[0]), 0, enc.offset.copy(),
                     enc.length.copy(), enc.fmt.copy(), enc.summary)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BlockUsage:
    """What one block costs: arena bytes allocated (``arena``) and holding live blobs
    (``live``), index and summary bytes, and its parts' summaries (``subs``: arena and
    index), over ``rows × minutes`` series-minutes."""

    start: int
    minutes: int
    rows: int
    arena: int
    live: int
    index: int
    summary: int
    compacted: bool = False
    subs: int = 0

    @property
    def nbytes(self) -> int:
        return self.arena + self.index + self.summary + self.subs

    @property
    def bytes_per_series_minute(self) -> float:
        return self.nbytes / max(1, self.rows * self.minutes)


class BlockStore:
    """Closed blocks of minute partials for series ``0 .. S-1``, compressed (see the
    module's docstring). Blocks never overlap; ``blocks`` is ordered by start."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        #: ``table()``'s answer until the blocks change
        self._table: I64 | None = None

    # -- writes ----------------------------------------------------------------------------

    def seal(self, start: int, parts: Partials) -> Block:
        """Encode minutes ``[start, start + n)`` of series ``0 .. rows-1`` (``parts`` is
        ``(rows, n)``) as a closed block."""
        n = int(parts.count.shape[1])
        if n == 0:
            msg = "a block needs at least one minute"
            raise ValueError(msg)
        for b in self.blocks:
            if b.start < start + n and start < b.end:
                msg = f"minutes [{start}, {start + n}) overlap the block [{b.start}, {b.end})"
                raise ValueError(msg)
        block = Block.of(start, n, ringcodec.encode(parts))
        self.blocks.append(block)
        self.blocks.sort(key=lambda b: b.start)
        self._table = None
        return block

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
        subs: list[ringcodec.Encoded] = []
        for a in range(0, rows, chunk):
            ids = np.arange(a, min(rows, a + chunk), dtype=np.int32)
            part = Partials.zeros((ids.shape[0], minutes))
            self._decode_into(_pieces(inside, start, start + minutes), ids, start, 1, part, None)
            pieces.append(ringcodec.encode(part))
            if sub_minutes:
                subs.append(ringcodec.encode(restep(part, sub_minutes)))
        enc = _concat(pieces)
        for b in inside:
            self.blocks.remove(b)
        block = Block.of(start, minutes, enc)
        block.compacted = True
        if sub_minutes:
            block.subs = Blobs.of(_concat(subs))
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
        for dst, src in zip(block.summary.fields(), enc.summary.fields(), strict=True):
            dst[rows] = src
        if block.subs is not None:
            block.subs.replace(rows, ringcodec.encode(restep(cells, block.sub_minutes)))
        block.used += size
        if block.dead * 2 > block.used:
            _repack(block)

    # -- reads -----------------------------------------------------------------------------

    def table(self) -> I64:
        """One row per block, oldest first, as ``ringcodec.decode_blocks`` takes them
        (addresses of the arena, offsets and formats; rows; minutes) with the columns from
        ``T_START`` on after; the window columns are left for a read to fill. Kept until the
        blocks change; the addresses hold while the store does not."""
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
                for j, f in enumerate(b.summary.fields()):
                    t[i, T_SUMMARY + j] = f.ctypes.data
                if b.subs is not None:
                    t[i, T_SUB] = b.sub_minutes
                    t[i, T_SUB_ARENA] = b.subs.arena.ctypes.data
                    t[i, T_SUB_BYTES] = b.subs.arena.shape[0]
                    t[i, T_SUB_OFFSET] = b.subs.offset.ctypes.data
                    t[i, T_SUB_FMT] = b.subs.fmt.ctypes.data
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
        minutes inside ``within`` (``[lo, hi)``) are merged, when given. ``read_stores`` of
        this store alone: summaries where they answer, the rest decoded, split over
        ``pool``'s thread when large."""
        at = np.arange(series.shape[0], dtype=np.int64) if rows is None else rows
        lo, hi = (first, first + count) if within is None else within
        read_stores([StoreRead(self, series, at, lo, hi)], first, count, step, out, pool)

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
                b.rows * SUMMARY_BYTES,
                b.compacted,
                0 if b.subs is None else b.subs.nbytes,
            )
            for b in self.blocks
        ]

    @property
    def nbytes(self) -> int:
        return sum(u.nbytes for u in self.usage())


def _pieces(blocks: list[Block], lo: int, hi: int) -> list[tuple[Block, int, int]]:
    """Each block's minutes inside ``[lo, hi)``, as ``_decode_into`` takes them."""
    return [(b, max(lo, b.start), min(hi, b.end)) for b in blocks]


def _grow_rows(block: Block, rows: int) -> None:
    """Give series ``block.rows .. rows-1`` (new since the block closed) empty entries."""
    extra = rows - block.rows
    block.offset = np.concatenate([block.offset, np.zeros(extra, np.int64)])
    block.length = np.concatenate([block.length, np.zeros(extra, np.uint32)])
    block.fmt = np.concatenate([block.fmt, np.zeros(extra, np.uint8)])
    block.summary = _concat_parts([block.summary, Partials.empty(extra)])
    if block.subs is not None:
        block.subs.grow(extra)


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
) -> None:
    """``BlockStore.read`` of every store in ``reads`` into one ``out``, with no Python per
    store or block: blocks inside one bucket merge their summaries
    (``buckets.merge_summaries_at``), compacted blocks whose parts each lie inside one
    bucket decode their parts' summaries, and every other minute decodes, series by series
    (``ringcodec.decode_blocks``, split by rows over ``pool``'s thread from ``SPLIT_CELLS``
    series-minutes): one compiled call for each of the three."""
    if count % step or out.count.shape[1] < count // step:
        msg = (
            f"{count} minutes in buckets of {step} need {count // step} whole columns,"
            f" out has {out.count.shape[1]}"
        )
        raise ValueError(msg)
    reads = [r for r in reads if r.lo < r.hi and r.series.shape[0] and r.store.blocks]
    if not reads:
        return
    tables = [r.store.table() for r in reads]
    table = np.concatenate(tables)
    of = np.repeat(np.arange(len(reads)), [t.shape[0] for t in tables])
    lo = np.array([max(r.lo, first) for r in reads], np.int64)[of]
    hi = np.array([min(r.hi, first + count) for r in reads], np.int64)[of]
    start = table[:, T_START]
    end = start + table[:, ringcodec.T_N]
    a, e = np.maximum(start, lo), np.minimum(end, hi)
    keep = a < e
    whole = keep & (a == start) & (e == end)
    whole &= (start - first) // step == (end - 1 - first) // step
    if whole.any():
        sums = np.zeros((int(whole.sum()), 6), np.int64)
        sums[:, 0] = table[whole, ringcodec.T_ROWS]
        sums[:, 1:5] = table[whole, T_SUMMARY : T_SUMMARY + 4]
        sums[:, 5] = (start[whole] - first) // step
        groups, series, rows = _groups(reads, of[whole])
        merge_summaries_at(sums, groups, series, rows, *out.fields())
    rest = keep & ~whole
    # parts' summaries where each part lies inside one bucket (bucket edges on part edges)
    sub = table[:, T_SUB]
    s = np.maximum(sub, 1)
    parts = rest & (sub > 0) & (step % s == 0) & ((start - first) % s == 0)
    pa = start - (start - a) // s * s  # the first whole part's start
    pe = start + (e - start) // s * s
    parts &= pa < pe
    head_end = np.where(parts, pa, e)
    tail_start = np.where(parts, pe, e)
    for width in np.unique(s[parts]).tolist():
        mine = parts & (s == width)
        t = table[mine].copy()
        t[:, ringcodec.T_ARENA] = t[:, T_SUB_ARENA]
        t[:, ringcodec.T_BYTES] = t[:, T_SUB_BYTES]
        t[:, ringcodec.T_OFFSET] = t[:, T_SUB_OFFSET]
        t[:, ringcodec.T_FMT] = t[:, T_SUB_FMT]
        t[:, ringcodec.T_N] //= width
        t[:, ringcodec.T_LO] = (pa[mine] - start[mine]) // width
        t[:, ringcodec.T_HI] = (pe[mine] - start[mine]) // width
        t[:, ringcodec.T_COL0] = (start[mine] - first) // width
        _decode(reads, t, of[mine], step // width, out, pool)
    # the minutes: whole blocks no summary answers, and a compacted block's cut parts
    head = rest & (a < head_end)
    tail = rest & (tail_start < e)
    if not (head.any() or tail.any()):
        return
    t = np.concatenate([table[head], table[tail]])
    job_of = np.concatenate([of[head], of[tail]])
    job_lo = np.concatenate([a[head], tail_start[tail]])
    job_hi = np.concatenate([head_end[head], e[tail]])
    job_start = t[:, T_START]
    order = np.lexsort((job_lo, job_of))  # each store's pieces in time order
    t[:, ringcodec.T_LO] = job_lo - job_start
    t[:, ringcodec.T_HI] = job_hi - job_start
    t[:, ringcodec.T_COL0] = job_start - first
    _decode(reads, t[order], job_of[order], step, out, pool)


def _groups(reads: list[StoreRead], of: I64) -> tuple[I64, I64, I64]:
    """Table rows ``of`` each read (ascending) as the compiled readers take them: groups
    ``(s0, s1, k0, k1)``, series ``series[s0:s1]`` into out rows ``rows[s0:s1]`` of table
    rows ``[k0, k1)``, with the series and out rows of every read that has a row."""
    per = np.bincount(of, minlength=len(reads))
    used = np.flatnonzero(per)
    sizes = np.array([reads[i].series.shape[0] for i in used.tolist()], np.int64)
    groups = np.zeros((used.shape[0], 4), np.int64)
    groups[:, 1] = np.cumsum(sizes)
    groups[:, 0] = groups[:, 1] - sizes
    groups[:, 3] = np.cumsum(per[used])
    groups[:, 2] = groups[:, 3] - per[used]
    series = np.concatenate([reads[i].series for i in used.tolist()]).astype(np.int64)
    rows = np.concatenate([reads[i].rows for i in used.tolist()]).astype(np.int64)
    return groups, series, rows


def _decode(
    reads: list[StoreRead], table: I64, of: I64, step: int, out: Partials, pool: Executor | None
) -> None:
    """``ringcodec.decode_blocks`` of ``table`` (rows grouped by read, ascending ``of``),
    its rows split over ``pool``'s thread from ``SPLIT_CELLS`` entries decoded."""
    groups, series, rows = _groups(reads, of)
    cells = int(((groups[:, 1] - groups[:, 0]) * np.add.reduceat(
        table[:, ringcodec.T_HI] - table[:, ringcodec.T_LO], groups[:, 2])).sum())  # fmt: skip
    n = int(series.shape[0])
    fields = out.fields()
    if pool is None or cells < SPLIT_CELLS or n < 2:
        ringcodec.decode_blocks(table, groups, series, rows, 0, n, step, *fields)
        return
    half = n // 2
    later = pool.submit(ringcodec.decode_blocks, table, groups, series, rows, half, n, step,
                        *fields)  # fmt: skip
    ringcodec.decode_blocks(table, groups, series, rows, 0, half, step, *fields)
    later.result()
