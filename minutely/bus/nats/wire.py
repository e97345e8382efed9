"""A bus message's bytes: one partition's piece of a batch as an Arrow IPC stream, its
columns narrowed losslessly, its server dictionary cut to the piece's partition and its
metric dictionary to the names the batch uses (when that is worth finding out); cut into
several messages when over the broker's ``max_payload``. Payloads are Arrow buffers, sent
as they are (no copy into ``bytes``)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from minutely.bus.base import partition_slices, take_batch, take_points
from minutely.model import ARROW_SCHEMA, PointBatch, ipc_stream

# -- wire form ------------------------------------------------------------------------------


def _used_names(
    names: npt.NDArray[np.object_],
    codes: npt.NDArray[np.int32],
    used: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int32]]:
    """The names ``codes`` use (``used``, when known), and codes into them (vectorised: no
    step per point)."""
    if names.shape[0] <= 1 or codes.shape[0] == 0:
        return names, codes
    if used is None:
        used = np.bincount(codes, minlength=names.shape[0]) > 0
    if bool(used.all()):
        return names, codes
    remap = (np.cumsum(used, dtype=np.int32) - 1).astype(np.int32)
    return names[used], remap[codes]


def _rows(batch: PointBatch, start: int, stop: int) -> PointBatch:
    return PointBatch(
        batch.server_names,
        batch.server_codes[start:stop],
        batch.metric_names,
        batch.metric_codes[start:stop],
        batch.ts[start:stop],
        batch.value[start:stop],
    )


def encode(piece: PointBatch, budget: int) -> list[tuple[pa.Buffer, int]]:
    """``piece`` as Arrow IPC messages of at most ``budget`` bytes: ``(payload, nbytes)``.

    One message unless the piece is too big; then it is cut into row ranges of about equal
    size, in order. Each message's dictionaries hold only the names its rows use.
    """
    n = len(piece)
    if piece.nbytes > budget and n > 1:  # too big whatever the names: cut without encoding
        parts = min(n, -(-piece.nbytes // max(1, budget * 8 // 10)))
        return _cut(piece, parts, budget)
    s_names, s_codes = _used_names(piece.server_names, piece.server_codes)
    m_names, m_codes = _used_names(piece.metric_names, piece.metric_codes)
    wire = _to_wire(PointBatch(s_names, s_codes, m_names, m_codes, piece.ts, piece.value))
    data = ipc_stream(wire)
    if data.size <= budget:
        return [(data, piece.nbytes)]
    if n <= 1:
        msg = f"one point encodes to {data.size} bytes, over the broker's limit of {budget}"
        raise ValueError(msg)
    return _cut(piece, min(n, max(2, -(-data.size // max(1, budget * 9 // 10)))), budget)


def _cut(piece: PointBatch, parts: int, budget: int) -> list[tuple[pa.Buffer, int]]:
    """``encode`` of ``parts`` row ranges of about equal size, in order."""
    bounds = np.linspace(0, len(piece), parts + 1).astype(np.int64).tolist()
    out: list[tuple[pa.Buffer, int]] = []
    for start, stop in itertools.pairwise(bounds):
        out += encode(_rows(piece, start, stop), budget)
    return out


#: schema metadata of a message whose ``ts`` column is whole seconds after this base
TS_BASE = b"minutely.ts_base"


def _codes(codes: npt.NDArray[np.int32], names: npt.NDArray[np.object_]) -> pa.DictionaryArray:
    indices = pa.array(_narrow_codes(codes, names.shape[0]))
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string()))


def _to_wire(piece: PointBatch) -> pa.RecordBatch:
    """The message form: the broker stores and moves every byte, so points are narrowed
    where that loses nothing: dictionary indices in the narrowest integer the names fit
    (int8, int16), and ``ts`` as whole seconds after a base (in the schema's metadata; uint16
    within 18 hours of it, int32 within 68 years) when every ts is a whole second. An
    agent's batch is then 13 bytes a point instead of 24."""
    ts, base = _narrow_ts(piece.ts)
    metadata = None if base is None else {TS_BASE: str(base).encode()}
    ts_column = pa.array(ts)
    return pa.RecordBatch.from_arrays(
        [
            _codes(piece.server_codes, piece.server_names),
            _codes(piece.metric_codes, piece.metric_names),
            ts_column,
            pa.array(piece.value),
        ],
        names=ARROW_SCHEMA.names,
        metadata=metadata,
    )


def decode(data: Any) -> PointBatch:
    """Inverse of ``encode`` for one message.

    The columns are read in place, so a message that does not start 8-byte aligned is copied
    first: misaligned float64 columns make every later numpy pass over them several times
    slower (measured: a fold 2-3x)."""
    buffer = pa.py_buffer(data)
    if buffer.address % 8:
        buffer = pa.py_buffer(buffer.to_pybytes())
    batch = pa.ipc.open_stream(buffer).read_next_batch()
    s, m, ts = batch.column(0), batch.column(1), batch.column(2)
    ts_values = ts.to_numpy(zero_copy_only=False)
    metadata = batch.schema.metadata or {}
    if TS_BASE in metadata:
        ts_values = ts_values + float(int(metadata[TS_BASE]))
    return PointBatch(
        np.asarray(s.dictionary.to_pylist(), dtype=object),
        s.indices.to_numpy(zero_copy_only=False).astype(np.int32),
        np.asarray(m.dictionary.to_pylist(), dtype=object),
        m.indices.to_numpy(zero_copy_only=False).astype(np.int32),
        ts_values.astype(np.float64, copy=False),
        batch.column(3).to_numpy(zero_copy_only=False),
    )


#: what ``prepare`` makes of a batch: per partition touched, its messages (payload, nbytes)
Prepared = list[tuple[int, list[tuple[Any, int]]]]


def prepare(batch: PointBatch, partitions: int, budget: int) -> Prepared:
    """``batch``'s messages: one piece per partition it touches (``split_by_partition``'s
    pieces, in its order), each ``encode``d.

    The same messages as encoding each piece, at half the cost: the names a piece uses, the
    narrowed columns and the name dictionaries are worked out once for the whole batch, and
    the pieces are cut from the narrowed columns (13 bytes a point to move, not 24).
    """
    n = len(batch)
    of_name, slices = partition_slices(batch, partitions)
    if not slices:
        return []
    if len(slices) == 1 and slices[0][1] is None:  # one piece, the batch as it is
        return [(slices[0][0], encode(batch, budget))]
    per_point_bytes = batch.nbytes // n
    s_used = _used(batch.server_codes, batch.server_names.shape[0], n)
    rank, s_dicts = _partition_dictionaries(batch.server_names, of_name, s_used, partitions)
    s_codes = _narrow_codes(rank, max(len(d) for d in s_dicts.values()))[batch.server_codes]
    # metrics: one dictionary, shared by every piece
    m_used = _used(batch.metric_codes, batch.metric_names.shape[0], n)
    m_names, m_codes = _used_names(batch.metric_names, batch.metric_codes, m_used)
    m_dict = pa.array(m_names, pa.string())
    m_codes_wire = _narrow_codes(m_codes, m_names.shape[0])
    ts, ts_base = _narrow_ts(batch.ts)
    value = batch.value
    metadata = None if ts_base is None else {TS_BASE: str(ts_base).encode()}
    out: Prepared = []
    for p, cut in slices:
        assert cut is not None  # more than one partition has points
        piece_ts = take_points(ts, cut)
        record = pa.RecordBatch.from_arrays(
            [
                # indices are checked against their dictionaries (``safe``): a batch with a
                # bad code fails here, at publish, not in every consumer of the stream
                pa.DictionaryArray.from_arrays(pa.array(take_points(s_codes, cut)), s_dicts[p]),
                pa.DictionaryArray.from_arrays(pa.array(take_points(m_codes_wire, cut)), m_dict),
                pa.array(piece_ts),
                pa.array(take_points(value, cut)),
            ],
            names=ARROW_SCHEMA.names,
            metadata=metadata,
        )
        data = ipc_stream(record)
        nbytes = per_point_bytes * piece_ts.shape[0]
        if data.size <= budget:
            out.append((p, [(data, nbytes)]))
        else:  # too big for one message: cut the piece as ``encode`` does
            out.append((p, encode(take_batch(batch, cut), budget)))
    return out


def _partition_dictionaries(
    names: npt.NDArray[np.object_],
    of_name: npt.NDArray[np.int32],
    used: npt.NDArray[np.bool_],
    partitions: int,
) -> tuple[npt.NDArray[np.int64], dict[int, pa.Array]]:
    """Each partition's dictionary (its ``used`` names, in their order; partitions with none
    have none) and each name's index
    in its partition's dictionary; vectorised over the names."""
    by_part = np.argsort(np.where(used, of_name, partitions), kind="stable")
    sizes = np.bincount(of_name[used], minlength=partitions)
    firsts = np.cumsum(sizes) - sizes
    kept = by_part[: int(sizes.sum())]  # the used names, partition after partition
    rank = np.zeros(names.shape[0], dtype=np.int64)
    rank[kept] = np.arange(kept.shape[0]) - firsts[of_name[kept]]
    dicts = {
        p: pa.array(names[kept[firsts[p] : firsts[p] + sizes[p]]], pa.string())
        for p in np.flatnonzero(sizes).tolist()
    }
    return rank, dicts


def _used(codes: npt.NDArray[np.int32], n_names: int, points: int) -> npt.NDArray[np.bool_]:
    """Which of ``n_names`` names the codes use; all of them when the names are few against
    the points: then the unused ones, if any, cost a message less than finding them."""
    if n_names * 16 <= points:
        return np.ones(n_names, dtype=bool)
    used: npt.NDArray[np.bool_] = np.bincount(codes, minlength=n_names) > 0
    return used


def _narrow_codes(codes: npt.NDArray[Any], n_names: int) -> npt.NDArray[Any]:
    """Dictionary indices in the narrowest signed integer ``n_names`` fit (Arrow's indices
    are signed): int8, int16, else int32."""
    for kind in (np.int8, np.int16):
        if n_names <= np.iinfo(kind).max:
            return codes.astype(kind)
    return codes.astype(np.int32)


def _narrow_ts(ts: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], int | None]:
    """``ts`` as whole seconds after a base (uint16 within 18 hours of it, else int32), and
    the base, when that loses nothing; else ``ts`` as it is and no base."""
    if ts.shape[0] == 0:
        return ts, None
    base = np.floor(ts.min())
    span = float(ts.max()) - base
    if span >= 2**31:
        return ts, None
    offsets = (ts - base).astype(np.uint16 if span < 2**16 else np.int32)
    if not np.array_equal(offsets + base, ts):  # not whole seconds
        return ts, None
    return offsets, int(base)
