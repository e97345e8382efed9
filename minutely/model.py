"""The data model: columnar point batches, minute maths and partial aggregates.

Owns the shapes every other module passes around, and imports nothing internal.

- ``PointBatch``: points as columns. Server and metric names are dictionary-encoded (a small
  array of names plus one int32 code per point), exactly like an Arrow dictionary column, so a
  batch of a million points carries each name once.
- ``Partials``: minute aggregates as four parallel arrays ``(min, max, sum, count)``. Partials
  merge with ``min, max, +, +``; the average is ``sum / count`` and is computed only when read.
- ``ipc_stream``: a record batch as one Arrow IPC stream buffer (API answers, bus messages).
- Minute maths: minute ``m`` covers ``[60m, 60m + 60)`` in UTC seconds; a step of ``s`` seconds
  (a multiple of 60) groups minutes by ``floor(60m / s)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

MINUTE = 60

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
U32 = npt.NDArray[np.uint32]

#: the media type of an Arrow IPC stream, on ingest and in answers
ARROW_STREAM = "application/vnd.apache.arrow.stream"

#: Arrow schema of a batch on the wire (Arrow IPC) and on the bus.
ARROW_SCHEMA = pa.schema(
    [
        ("server", pa.dictionary(pa.int32(), pa.string())),
        ("metric", pa.dictionary(pa.int32(), pa.string())),
        ("ts", pa.float64()),
        ("value", pa.float64()),
    ]
)


def ipc_stream(batch: pa.RecordBatch) -> pa.Buffer:
    """``batch`` as an Arrow IPC stream, in a buffer of exactly its size, sent as it is.

    Measured first, then written once: a growing buffer copies and page-faults its way up
    (figures: docs/performance.md, Measured choices)."""
    size = pa.MockOutputStream()
    with pa.ipc.new_stream(size, batch.schema) as writer:
        writer.write_batch(batch)
    out = pa.allocate_buffer(size.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(out), batch.schema) as writer:
        writer.write_batch(batch)
    return out


def _used_names(names: npt.NDArray[np.object_], codes: I32) -> tuple[npt.NDArray[np.object_], I32]:
    """The names ``codes`` use, and the codes renumbered into them (a mark per name)."""
    used = np.zeros(names.shape[0], dtype=np.bool_)
    used[codes] = True
    if bool(used.all()):
        return names, codes
    renumber = (np.cumsum(used, dtype=np.int32) - np.int32(1)).astype(np.int32)
    return names[used], renumber[codes]


def minute_of(ts: F64) -> I64:
    """The minute index (``floor(ts / 60)``) of each unix-seconds timestamp.

    ``floor(ts / 60)`` in floating point is much faster than ``np.floor_divide`` but can
    round across a minute boundary; the two corrections make it exact (``m * 60`` is exact;
    figures: docs/performance.md, Measured choices).
    """
    m = np.floor(ts * (1.0 / MINUTE))
    m -= m * MINUTE > ts
    m += (m + 1) * MINUTE <= ts
    return m.astype(np.int64)


@dataclass(frozen=True, slots=True)
class PointBatch:
    """A columnar batch of points. Codes index into the name arrays."""

    server_names: npt.NDArray[np.object_]
    server_codes: I32
    metric_names: npt.NDArray[np.object_]
    metric_codes: I32
    ts: F64
    value: F64

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the per-point columns (what the bus budgets by)."""
        return int(
            self.server_codes.nbytes + self.metric_codes.nbytes + self.ts.nbytes + self.value.nbytes
        )

    @staticmethod
    def empty() -> PointBatch:
        none = np.array([], dtype=object)
        codes = np.zeros(0, dtype=np.int32)
        return PointBatch(none, codes, none, codes, np.zeros(0), np.zeros(0))

    @staticmethod
    def from_names(
        servers: Any, metrics: Any, ts: npt.ArrayLike, value: npt.ArrayLike
    ) -> PointBatch:
        """Build a batch from per-point names (for tests and small inputs)."""
        s_names, s_codes = np.unique(np.asarray(servers, dtype=object), return_inverse=True)
        m_names, m_codes = np.unique(np.asarray(metrics, dtype=object), return_inverse=True)
        return PointBatch(
            s_names.astype(object),
            s_codes.astype(np.int32).reshape(-1),
            m_names.astype(object),
            m_codes.astype(np.int32).reshape(-1),
            np.asarray(ts, dtype=np.float64).reshape(-1),
            np.asarray(value, dtype=np.float64).reshape(-1),
        )

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> PointBatch:
        """The points at ``index`` (positions or a mask); the name arrays are shared."""
        return PointBatch(
            self.server_names,
            self.server_codes[index],
            self.metric_names,
            self.metric_codes[index],
            self.ts[index],
            self.value[index],
        )

    def compacted(self) -> PointBatch:
        """The same points without the names none of them uses (after a ``take``), so that
        nothing downstream interns a name that has no point."""
        s_names, s_codes = _used_names(self.server_names, self.server_codes)
        m_names, m_codes = _used_names(self.metric_names, self.metric_codes)
        return PointBatch(s_names, s_codes, m_names, m_codes, self.ts, self.value)

    def to_arrow(self) -> pa.RecordBatch:
        servers = pa.DictionaryArray.from_arrays(
            pa.array(self.server_codes, pa.int32()), pa.array(self.server_names, pa.string())
        )
        metrics = pa.DictionaryArray.from_arrays(
            pa.array(self.metric_codes, pa.int32()), pa.array(self.metric_names, pa.string())
        )
        return pa.RecordBatch.from_arrays(
            [servers, metrics, pa.array(self.ts), pa.array(self.value)], schema=ARROW_SCHEMA
        )

    @staticmethod
    def from_arrow(batch: pa.RecordBatch) -> PointBatch:
        """Inverse of ``to_arrow`` for a batch already in ``ARROW_SCHEMA``."""
        s, m = batch.column(0), batch.column(1)
        return PointBatch(
            np.asarray(s.dictionary.to_pylist(), dtype=object),
            s.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
            np.asarray(m.dictionary.to_pylist(), dtype=object),
            m.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False),
            batch.column(2).to_numpy(zero_copy_only=False),
            batch.column(3).to_numpy(zero_copy_only=False),
        )


@dataclass(frozen=True, slots=True)
class Partials:
    """Partial aggregates, one entry per (series, bucket): the four arrays are parallel.

    An entry with ``count == 0`` is empty whatever its other fields hold.
    """

    min: F64
    max: F64
    sum: F64
    count: U32

    def __len__(self) -> int:
        return int(self.count.shape[0])

    def fields(
        self,
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
        """The four arrays, for copying all of them alike."""
        return self.min, self.max, self.sum, self.count

    def take(self, index: Any) -> Partials:
        """The entries at ``index`` (a mask, positions, slices: whatever numpy indexes
        with), every field alike; a view where numpy gives one."""
        return Partials(self.min[index], self.max[index], self.sum[index], self.count[index])

    @staticmethod
    def zeros(shape: int | tuple[int, ...]) -> Partials:
        """Empty entries (``count == 0``) that cost nothing until written: zeroed memory is
        mapped lazily, where ``empty``'s infinities touch every page. For blocks that are
        written into, not merged into."""
        return Partials(
            np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.uint32)
        )

    @staticmethod
    def empty(shape: int | tuple[int, ...]) -> Partials:
        return Partials(
            np.full(shape, np.inf),
            np.full(shape, -np.inf),
            np.zeros(shape),
            np.zeros(shape, dtype=np.uint32),
        )

    def neutral(self) -> Partials:
        """A copy whose empty entries hold merge's identity (``inf, -inf, 0, 0``), so that
        reductions over min, max and sum can ignore them without a mask each."""
        empty = self.count == 0
        return Partials(
            np.where(empty, np.inf, self.min),
            np.where(empty, -np.inf, self.max),
            np.where(empty, 0.0, self.sum),
            self.count,
        )

    def avg(self) -> F64:
        """``sum / count``; NaN where the entry is empty."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out: F64 = self.sum / self.count
        return out

    def masked(self) -> tuple[F64, F64, F64]:
        """``(min, max, avg)`` with NaN where ``count == 0``."""
        empty = self.count == 0
        return (
            np.where(empty, np.nan, self.min),
            np.where(empty, np.nan, self.max),
            self.avg(),
        )


def merge(a: Partials, b: Partials) -> Partials:
    """Merge two partial aggregates element-wise; empty entries are the identity."""
    a_empty, b_empty = a.count == 0, b.count == 0
    a_min = np.where(a_empty, np.inf, a.min)
    b_min = np.where(b_empty, np.inf, b.min)
    a_max = np.where(a_empty, -np.inf, a.max)
    b_max = np.where(b_empty, -np.inf, b.max)
    a_sum = np.where(a_empty, 0.0, a.sum)
    b_sum = np.where(b_empty, 0.0, b.sum)
    return Partials(
        np.minimum(a_min, b_min),
        np.maximum(a_max, b_max),
        a_sum + b_sum,
        (a.count + b.count).astype(np.uint32),
    )


def reduce_by_key(keys: I64, values: F64) -> tuple[I64, Partials]:
    """Fold raw values into one partial per distinct key (sort, then reduce each run).

    Returns the distinct keys in ascending order and their partials.
    """
    if keys.shape[0] == 0:
        return keys, Partials.empty(0)
    if bool(np.all(keys[1:] >= keys[:-1])):  # series-major backfill arrives sorted
        k, v = keys, values
    else:
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        v = values[order]
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    counts = np.diff(np.append(starts, k.shape[0])).astype(np.uint32)
    return k[starts], Partials(
        np.minimum.reduceat(v, starts),
        np.maximum.reduceat(v, starts),
        np.add.reduceat(v, starts),
        counts,
    )


def reduce_partials_by_key(keys: I64, parts: Partials) -> tuple[I64, Partials]:
    """Merge partials that share a key (used to re-step minutes into coarser buckets)."""
    if keys.shape[0] == 0:
        return keys, parts
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    p = parts.neutral().take(order)
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    return k[starts], Partials(
        np.minimum.reduceat(p.min, starts),
        np.maximum.reduceat(p.max, starts),
        np.add.reduceat(p.sum, starts),
        np.add.reduceat(p.count, starts).astype(np.uint32),
    )


def restep(parts: Partials, step_minutes: int) -> Partials:
    """Merge a ``(series, minutes)`` block into ``(series, minutes // step_minutes)`` buckets.

    The minute axis must start on a bucket boundary and have a length that is a multiple of
    ``step_minutes``.
    """
    if step_minutes == 1:
        return parts
    n, m = parts.count.shape
    shape = (n, m // step_minutes, step_minutes)
    p = parts.neutral()
    return Partials(
        p.min.reshape(shape).min(axis=2),
        p.max.reshape(shape).max(axis=2),
        p.sum.reshape(shape).sum(axis=2),
        p.count.reshape(shape).sum(axis=2, dtype=np.uint32),
    )


def summarize(parts: Partials) -> Partials:
    """Merge a ``(series, minutes)`` block along time into one partial per series."""
    p = parts.neutral()
    return Partials(
        p.min.min(axis=1, initial=np.inf),
        p.max.max(axis=1, initial=-np.inf),
        p.sum.sum(axis=1),
        p.count.sum(axis=1, dtype=np.uint32),
    )


def summarize_axis0(parts: Partials) -> Partials:
    """Merge a ``(series, buckets)`` block across series into one partial per bucket."""
    p = parts.neutral()
    return Partials(
        p.min.min(axis=0, initial=np.inf),
        p.max.max(axis=0, initial=-np.inf),
        p.sum.sum(axis=0),
        p.count.sum(axis=0, dtype=np.uint32),
    )
