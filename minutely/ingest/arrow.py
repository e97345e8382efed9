"""The Arrow IPC decoder (``application/vnd.apache.arrow.stream``), ingest's fast path.

Owns reading one or more record batches and turning their columns into the shapes
``validate`` checks, without a Python object per point. The body is an IPC stream, or an IPC
file (what ``pyarrow.ipc.new_file`` and many tools write), told apart by the file's leading
``ARROW1`` magic; the columns are the same:

    server, metric   string, large_string or dictionary<int*, string | large_string>
    ts               timestamp (any unit, any tz), or any integer / floating type = unix seconds
    value            any integer / floating type

Extra columns are ignored; a column of type null counts as missing in every row. Name columns
are dictionary-encoded per record batch, then the batches' dictionaries are concatenated and
encoded once more, which gives one array of distinct names for the request and a remap from
each batch's codes into it (duplicate or null dictionary entries are handled the same way).
The helpers ``names_column`` and ``numbers_column`` are shared with the JSON decoder, which
gets Arrow arrays from ``pyarrow.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from minutely.errors import DecodeError
from minutely.ingest.validate import MAX_NAME_BYTES, Body, Decoded, Names, Numbers, validate
from minutely.model import ARROW_STREAM, F64, I32

CONTENT_TYPE = ARROW_STREAM

#: how an Arrow IPC file begins (the stream form has no magic)
FILE_MAGIC = b"ARROW1"

COLUMNS = ("server", "metric", "ts", "value")

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def decode_arrow(
    body: Body,
    *,
    now: float,
    oldest: float,
    max_future: float,
    max_errors: int,
    horizon: str = "the hot window",
    max_name_bytes: int = MAX_NAME_BYTES,
) -> Decoded:
    """Decode an Arrow IPC stream or file body; raise ``DecodeError`` if it is not one we
    can use."""
    schema, batches = _read_batches(body)
    try:
        where = _locate(schema)
    except UnicodeDecodeError as e:  # pyarrow decodes the column names when they are read
        msg = f"Arrow schema holds a name that is not UTF-8: {e}"
        raise DecodeError(msg) from None
    for batch in batches:
        for name in COLUMNS:
            # The IPC reader checks buffer sizes only; offsets, indices and UTF-8 come from the
            # network, so check them before compute kernels read them (what it costs:
            # docs/performance.md, Measured choices).
            try:
                batch.column(where[name]).validate(full=True)
            except pa.ArrowInvalid as e:
                msg = f"Arrow column {name!r} holds invalid data: {e}"
                raise DecodeError(msg) from None
    server, metric, ts, value = (
        pa.chunked_array([b.column(where[name]) for b in batches], type=schema.field(name).type)
        for name in COLUMNS
    )
    return validate(
        names_column("server", server),
        names_column("metric", metric),
        numbers_column("ts", ts),
        numbers_column("value", value),
        now=now,
        oldest=oldest,
        horizon=horizon,
        max_future=max_future,
        max_errors=max_errors,
        max_name_bytes=max_name_bytes,
    )


def _read_batches(body: Body) -> tuple[Any, list[Any]]:
    """The schema and record batches of an IPC file (by its magic) or stream."""
    buffer = pa.py_buffer(body)
    is_file = bytes(memoryview(body)[: len(FILE_MAGIC)]) == FILE_MAGIC
    try:
        if is_file:
            reader = pa.ipc.open_file(buffer)
            return reader.schema, [reader.get_batch(i) for i in range(reader.num_record_batches)]
        stream = pa.ipc.open_stream(buffer)
        return stream.schema, list(stream)
    except (pa.ArrowException, ValueError, OSError) as e:
        if is_file:
            msg = f"body is not a valid Arrow IPC file: {e}"
        else:
            msg = (
                f"body is not a valid Arrow IPC stream (nor an IPC file, which begins with "
                f"ARROW1): {e}"
            )
        raise DecodeError(msg) from None


def _locate(schema: Any) -> dict[str, int]:
    """Position of each required column; a missing, doubled or mistyped one is a DecodeError."""
    names = list(schema.names)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        got = ", ".join(repr(n) for n in names) or "none"
        msg = (
            f"Arrow stream is missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(required: server, metric, ts, value; got: {got})"
        )
        raise DecodeError(msg)
    where: dict[str, int] = {}
    for name in COLUMNS:
        if names.count(name) > 1:
            msg = f"Arrow stream has column {name!r} more than once"
            raise DecodeError(msg)
        where[name] = names.index(name)
        _check_type(name, schema.field(name).type)
    return where


def _check_type(name: str, t: Any) -> None:
    if pa.types.is_null(t):
        return
    if name in ("server", "metric"):
        if _is_text(t) or (pa.types.is_dictionary(t) and _is_text(t.value_type)):
            return
        expected = "string, large_string or dictionary<int, string>"
    elif name == "ts":
        if pa.types.is_timestamp(t) or _is_number(t):
            return
        expected = "a timestamp, or an integer or floating-point type (unix seconds)"
    else:
        if _is_number(t):
            return
        expected = "an integer or floating-point type"
    msg = f"Arrow column {name!r} has type {t}; expected {expected}"
    raise DecodeError(msg)


def _is_text(t: Any) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_number(t: Any) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def names_column(name: str, column: Any) -> Names:
    """A name column (ChunkedArray of string, large_string or dictionary) as ``Names``."""
    n = len(column)
    if pa.types.is_null(column.type):
        return Names(np.array([], dtype=object), np.full(n, -1, dtype=np.int32))
    if column.num_chunks == 1 and pa.types.is_dictionary(column.type):
        chunk = column.chunk(0)
        if chunk.null_count == 0 and chunk.dictionary.null_count == 0:
            # The fast path (what the simulator and agents send): one dictionary of distinct
            # names, no nulls. Full validation already bounded every index, so the indices
            # are the codes: no pass over the points at all.
            names = np.asarray(chunk.dictionary.to_numpy(zero_copy_only=False), dtype=object)
            if len(set(names.tolist())) == len(names):
                codes = chunk.indices.to_numpy(zero_copy_only=False).astype(np.int32)
                return Names(names, codes)
    dictionaries: list[Any] = []
    local_codes: list[Any] = []
    offset = 0
    for chunk in column.chunks:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        size = len(encoded.dictionary)
        indices = encoded.indices.cast(pa.int64())
        bounds = pc.min_max(indices)
        low, high = bounds["min"], bounds["max"]
        if low.is_valid and (low.as_py() < 0 or high.as_py() >= size):
            msg = f"Arrow column {name!r}: dictionary index out of range"
            raise DecodeError(msg)
        codes = indices.fill_null(-1).to_numpy(zero_copy_only=False) + offset
        if indices.null_count:
            # Nulls become -1, which the remap below sends to its trailing -1.
            codes[_to_numpy(indices.is_null())] = -1
        dictionaries.append(encoded.dictionary.cast(pa.string()))
        local_codes.append(codes)
        offset += size
    everything = pa.concat_arrays(dictionaries) if dictionaries else pa.array([], pa.string())
    try:
        everything.validate(full=True)
    except pa.ArrowInvalid as e:
        msg = f"Arrow column {name!r} holds invalid strings: {e}"
        raise DecodeError(msg) from None
    unified = pc.dictionary_encode(everything)
    # remap[old] = new code, with -1 for null dictionary entries and a trailing -1 for nulls.
    remap = np.append(unified.indices.fill_null(-1).to_numpy(zero_copy_only=False), -1).astype(
        np.int32
    )
    all_codes = np.concatenate(local_codes) if local_codes else np.zeros(0, dtype=np.int64)
    codes32: I32 = remap[all_codes]
    names = np.asarray(unified.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    return Names(names, codes32)


def numbers_column(name: str, column: Any) -> Numbers:
    """A numeric column (ChunkedArray of int, float or timestamp) as float64 seconds."""
    t = column.type
    n = len(column)
    if pa.types.is_null(t):
        return Numbers(np.full(n, np.nan), np.zeros(n, dtype=np.bool_))
    present = _present(column)
    if pa.types.is_timestamp(t):
        values = _timestamp_seconds(column)
    elif pa.types.is_floating(t):
        values = _to_numpy(column.cast(pa.float64()) if t != pa.float64() else column)
    else:
        raw = column.fill_null(0) if column.null_count else column
        values = _to_numpy(raw).astype(np.float64)
    # Own the memory: a zero-copy view would keep the whole request body alive for as long as
    # the batch sits on the bus (which budgets by the batch's own bytes), and be read-only.
    return Numbers(np.require(values, np.float64, ["C", "W", "O"]), present)


def _present(column: Any) -> Any:
    if column.null_count == 0:
        return np.ones(len(column), dtype=np.bool_)
    return _to_numpy(column.is_valid())


def _timestamp_seconds(column: Any) -> F64:
    """Seconds since the epoch, exact enough that ``floor(ts / 60)`` is the right minute.

    Divide as integers in the column's unit, then add the remainder as a fraction. The sum can
    round up to the next whole second (999_999_999 ns at 1.7e9 s is below float64's
    resolution), so clamp it to the largest float below ``whole + 1``.
    """
    per_second = _PER_SECOND[column.type.unit]
    raw = column.cast(pa.int64())
    ticks = _to_numpy(raw.fill_null(0) if raw.null_count else raw)
    if per_second == 1:
        seconds: F64 = ticks.astype(np.float64)
        return seconds
    whole, rest = np.divmod(ticks, per_second)
    whole_f = whole.astype(np.float64)
    seconds = whole_f + rest / per_second
    np.minimum(seconds, np.nextafter(whole_f + 1.0, -np.inf), out=seconds)
    return seconds


def _to_numpy(column: Any) -> Any:
    """A numpy array for an Array or ChunkedArray (zero-copy when it is one chunk, no nulls)."""
    return column.to_numpy(zero_copy_only=False)
