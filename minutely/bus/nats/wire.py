"""A bus message's bytes: one partition's piece of a batch as an Arrow IPC stream, its
name dictionaries cut to the names it uses, its columns narrowed losslessly; cut into
several messages when over the broker's ``max_payload``."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from minutely.bus.base import split_by_partition
from minutely.model import ARROW_SCHEMA, PointBatch

# -- wire form ------------------------------------------------------------------------------


def _used_names(
    names: npt.NDArray[np.object_], codes: npt.NDArray[np.int32]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int32]]:
    """The names ``codes`` use, and codes into them (vectorised: no step per point)."""
    if names.shape[0] <= 1 or codes.shape[0] == 0:
        return names, codes
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


def encode(piece: PointBatch, budget: int) -> list[tuple[bytes, int]]:
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
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, wire.schema) as writer:
        writer.write_batch(wire)
    data: bytes = sink.getvalue().to_pybytes()
    if len(data) <= budget:
        return [(data, piece.nbytes)]
    if n <= 1:
        msg = f"one point encodes to {len(data)} bytes, over the broker's limit of {budget}"
        raise ValueError(msg)
    return _cut(piece, min(n, max(2, -(-len(data) // max(1, budget * 9 // 10)))), budget)


def _cut(piece: PointBatch, parts: int, budget: int) -> list[tuple[bytes, int]]:
    """``encode`` of ``parts`` row ranges of about equal size, in order."""
    bounds = np.linspace(0, len(piece), parts + 1).astype(np.int64).tolist()
    out: list[tuple[bytes, int]] = []
    for start, stop in itertools.pairwise(bounds):
        out += encode(_rows(piece, start, stop), budget)
    return out


#: schema metadata of a message whose ``ts`` column is whole seconds after this base
TS_BASE = b"minutely.ts_base"


def _codes(codes: npt.NDArray[np.int32], names: npt.NDArray[np.object_]) -> pa.DictionaryArray:
    if names.shape[0] <= np.iinfo(np.int16).max:
        indices = pa.array(codes.astype(np.int16), pa.int16())
    else:
        indices = pa.array(codes, pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string()))


def _to_wire(piece: PointBatch) -> pa.RecordBatch:
    """The message form: the broker stores and moves every byte, so points are narrowed
    where that loses nothing: dictionary indices as int16 when the names fit, and ``ts``
    as int32 seconds after a base (in the schema's metadata) when every ts is a whole
    second within 68 years of the first. 16 bytes a point instead of 24, typically."""
    ts = piece.ts
    metadata = None
    ts_column = pa.array(ts)
    if ts.shape[0]:
        base = np.floor(ts.min())
        offsets = ts - base
        if float(offsets.max()) < 2**31 and bool(np.all(np.floor(offsets) == offsets)):
            ts_column = pa.array(offsets.astype(np.int32))
            metadata = {TS_BASE: str(int(base)).encode()}
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


def decode(data: bytes) -> PointBatch:
    """Inverse of ``encode`` for one message."""
    batch = pa.ipc.open_stream(pa.py_buffer(data)).read_next_batch()
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


def prepare(batch: PointBatch, partitions: int, budget: int) -> list[tuple[int, list[Any]]]:
    return [(p, encode(piece, budget)) for p, piece in split_by_partition(batch, partitions)]
