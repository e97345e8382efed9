"""Closed blocks of minute partials, compressed in arenas: what the hot ring holds once its
minutes stop changing often.

Layout (``S`` = series rows of a block, ``n`` = its minutes; one ``Block`` per time span,
never one object per series)::

    Block(start, minutes)             one per span: [start, start + n)
      arena   u8[capacity]            every series' blob back to back (ringcodec), PAD after
      offset  i64[S]  length u32[S]   series s: arena[offset[s] : offset[s] + length[s]]
      fmt     u8[S]                   its ringcodec format (EMPTY: no data, no bytes)
      summary Partials[S]             min, max, sum, count of s over the whole block

- ``seal`` encodes a ``(series, n)`` block of partials (the ring's hour, every series at
  once); ``compact`` decodes consecutive blocks and re-encodes them as one (longer blocks
  need fewer headers and deltas restart less often); ``expire`` drops whole blocks, so
  memory goes back a span at a time.
- ``merge`` takes late partials into closed blocks exactly: the touched series are decoded,
  merged with ``model.merge`` and re-encoded; their new blobs go to the arena's end and the
  old bytes are counted dead until the arena is repacked (when they pass half of it).
- ``read`` merges a set of series over any minute range into bucket arrays, as the ring's
  reads do: a block that lies inside one bucket gives its summary and decodes nothing;
  other blocks decode only the requested series, straight into the buckets, split by rows
  over an executor's threads (the kernel releases the GIL).

Not thread-safe: the owner (the ring, under its lock) serialises writes with reads.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minutely import ringcodec
from minutely.model import I32, I64, U32, Partials, merge, reduce_partials_by_key

U8 = npt.NDArray[np.uint8]

#: bytes one series costs in a block's index: offset, length, format
INDEX_BYTES = 8 + 4 + 1
#: bytes one series costs in a block's summary
SUMMARY_BYTES = 8 + 8 + 8 + 4


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
    (``live``), index and summary bytes, over ``rows × minutes`` series-minutes."""

    start: int
    minutes: int
    rows: int
    arena: int
    live: int
    index: int
    summary: int

    @property
    def nbytes(self) -> int:
        return self.arena + self.index + self.summary

    @property
    def bytes_per_series_minute(self) -> float:
        return self.nbytes / max(1, self.rows * self.minutes)


class BlockStore:
    """Closed blocks of minute partials for series ``0 .. S-1``, compressed (see the
    module's docstring). Blocks never overlap; ``blocks`` is ordered by start."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []

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
        return block

    def compact(self, start: int, minutes: int) -> Block | None:
        """Re-encode every block inside ``[start, start + minutes)`` as one block of that
        span (minutes no block held are empty); None when there is none."""
        inside = [b for b in self.blocks if start <= b.start and b.end <= start + minutes]
        if not inside:
            return None
        rows = max(b.rows for b in inside)
        chunk = max(1, ringcodec.SCRATCH // (28 * minutes))  # decoded rows per pass
        pieces: list[ringcodec.Encoded] = []
        for a in range(0, rows, chunk):
            ids = np.arange(a, min(rows, a + chunk), dtype=np.int32)
            part = Partials.zeros((ids.shape[0], minutes))
            self._decode_into(inside, ids, start, minutes, 1, part, None)
            pieces.append(ringcodec.encode(part))
        enc = _concat(pieces)
        for b in inside:
            self.blocks.remove(b)
        block = Block.of(start, minutes, enc)
        self.blocks.append(block)
        self.blocks.sort(key=lambda b: b.start)
        return block

    def expire(self, before: int) -> int:
        """Drop every block that ends at or before minute ``before``; returns how many."""
        keep = [b for b in self.blocks if b.end > before]
        dropped = len(self.blocks) - len(keep)
        self.blocks = keep
        return dropped

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
        return taken

    def _merge_block(self, block: Block, series: I32, minutes: I64, parts: Partials) -> None:
        n = block.minutes
        top = int(series.max()) + 1
        if top > block.rows:
            _grow_rows(block, top)
        rows = np.unique(series).astype(np.int32)
        cells = Partials.zeros((rows.shape[0], n))
        self._decode_into([block], rows, block.start, n, 1, cells, None)
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
        block.used += size
        if block.dead * 2 > block.used:
            _repack(block)

    # -- reads -----------------------------------------------------------------------------

    def read(
        self,
        series: I32,
        first: int,
        count: int,
        step: int,
        out: Partials,
        pool: Executor | None = None,
    ) -> None:
        """Merge minutes ``[first, first + count)`` of ``series`` into ``out``, whose column
        ``b`` is the bucket of minutes ``[first + b·step, first + (b+1)·step)`` and row ``i``
        is ``series[i]`` (as ``HotRing.merge_buckets``). A block inside one bucket merges its
        summary; the others decode, in time order. With ``pool``, rows are split in two and the
        second half decodes on the pool's thread."""
        if count % step or out.count.shape[1] < count // step:
            msg = (
                f"{count} minutes in buckets of {step} need {count // step} whole columns,"
                f" out has {out.count.shape[1]}"
            )
            raise ValueError(msg)
        last = first + count
        touched = [b for b in self.blocks if b.start < last and first < b.end]
        if not touched or series.shape[0] == 0:
            return
        whole = [
            b
            for b in touched
            if first <= b.start
            and b.end <= last
            and (b.start - first) // step == (b.end - 1 - first) // step
        ]
        decode = [b for b in touched if not any(b is w for w in whole)]
        for b in whole:
            _merge_summary(b, series, (b.start - first) // step, out)
        if not decode:
            return
        n = int(series.shape[0])
        if pool is None or n < 2:
            self._decode_into(decode, series, first, count, step, out, None)
            return
        half = n // 2
        rows = np.arange(n, dtype=np.int64)
        later = pool.submit(self._decode_into, decode, series[half:], first, count, step, out,
                            rows[half:])  # fmt: skip
        self._decode_into(decode, series[:half], first, count, step, out, rows[:half])
        later.result()

    def _decode_into(
        self,
        blocks: list[Block],
        series: I32,
        first: int,
        count: int,
        step: int,
        out: Partials,
        out_rows: I64 | None,
    ) -> None:
        """Decode ``series`` of each block over ``[first, first + count)`` into ``out``'s
        rows ``out_rows`` (``0 ..`` when None), in the order of ``blocks``."""
        rows = np.arange(series.shape[0], dtype=np.int64) if out_rows is None else out_rows
        for b in blocks:
            held = series < b.rows
            ids = series[held] if not held.all() else series
            at = rows[held] if not held.all() else rows
            k = int(ids.shape[0])
            if k == 0:
                continue
            lo = max(first, b.start) - b.start
            hi = min(first + count, b.end) - b.start
            if lo >= hi:
                continue
            fmt = b.fmt[ids]
            ringcodec.decode_jobs(
                b.arena, b.offset[ids], fmt, np.full(k, b.minutes, np.int64),
                np.full(k, lo, np.int64), np.full(k, hi, np.int64), at,
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
            )
            for b in self.blocks
        ]

    @property
    def nbytes(self) -> int:
        return sum(u.nbytes for u in self.usage())


def _merge_summary(block: Block, series: I32, bucket: int, out: Partials) -> None:
    """Merge each series' block summary into ``out[:, bucket]``."""
    held = np.flatnonzero(series < block.rows)
    if held.shape[0] == 0:
        return
    cell = out.take(np.s_[held, bucket])
    merged = merge(cell, block.summary.take(series[held]))
    for dst, src in zip(out.fields(), merged.fields(), strict=True):
        dst[held, bucket] = src


def _grow_rows(block: Block, rows: int) -> None:
    """Give series ``block.rows .. rows-1`` (new since the block closed) empty entries."""
    extra = rows - block.rows
    block.offset = np.concatenate([block.offset, np.zeros(extra, np.int64)])
    block.length = np.concatenate([block.length, np.zeros(extra, np.uint32)])
    block.fmt = np.concatenate([block.fmt, np.zeros(extra, np.uint8)])
    fresh = Partials.empty(extra)
    block.summary = Partials(
        *(
            np.concatenate([a, b])
            for a, b in zip(block.summary.fields(), fresh.fields(), strict=True)
        )
    )


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
        Partials(
            *(np.concatenate(f) for f in zip(*(p.summary.fields() for p in pieces), strict=True))
        ),
    )
