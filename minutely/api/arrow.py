"""Answers as Arrow IPC streams (``application/vnd.apache.arrow.stream``): the fast format for
programs. Built from the answer's numpy arrays with no per-point Python work; most columns
are the answer's own buffers, handed to Arrow without a copy.

A series answer (Q1, Q2) is one record batch in *long* layout, one row per (label, bucket),
label-major, every bucket present, empty ones included::

    metric (Q1) / server (Q2)   dictionary<int32, utf8>   the series' label
    ts                          timestamp[s, UTC]          the bucket's start
    min, max, avg               float64                    null where the bucket is empty
    sum                         float64                    as in JSON (only with fields=…sum)
    count                       uint32                     0 where the bucket is empty

The value columns are the ``fields`` asked for, in that order (default min, max, avg, count).
Rows ``i*B .. i*B+B-1`` are label ``i``'s ``B`` buckets, so any column reshaped to
``(labels, buckets)`` is the JSON answer's 2-D block. The dictionary holds the labels in the
JSON answer's order. A fleet answer is the same without the label column. A summary answer
(Q3, Q4) has one row per label: label (utf8), min, max, avg, count.

The schema metadata carries what JSON has at the top level, as strings: ``server`` or
``metric`` (the name asked about), ``start``, ``end`` and ``step`` (unix seconds; no step for
summaries) and, for a fleet answer, ``servers``.

With ``fn=rate`` (counters as rates per second, ``docs/counters.md``) every answer has
``count`` among its value columns and two more after them, the numbers of the JSON answer::

    kind                        dictionary<int8, utf8>     ``gauge`` or ``counter``
    rate                        float64                    a counter's increase per second in
                                                           the bucket; null for a gauge and
                                                           in an empty bucket

and on a counter's rows the value columns but ``count`` are null (JSON's counter entry has
``rate`` and ``count`` only).

Why long and not one ``FixedSizeList`` per label: ``to_pandas()`` gives a ready, tidy frame
(categorical label, UTC datetimes, NaN for empty buckets; ``pl.from_arrow`` likewise in polars)
that pivots with one call, while list cells become per-row objects in pandas.
The price is the ``ts`` and label columns, 12 of ~40 bytes a cell, built by ``np.tile`` and
``np.repeat``; the value columns are zero-copy in both layouts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from minutely.api import render
from minutely.model import ARROW_STREAM, ipc_stream
from minutely.query import SeriesAnswer, SummaryAnswer

MEDIA_TYPE = ARROW_STREAM
#: the ``kind`` column's dictionary: code 0 a gauge, 1 a counter
KIND_NAMES = pa.array(["gauge", "counter"], pa.string())

_TS = pa.timestamp("s", tz="UTC")


def _other(by: str) -> str:
    return "metric" if by == "server" else "server"


def _validity(present: npt.NDArray[np.bool_]) -> tuple[pa.Buffer | None, int]:
    """A validity bitmap (bit set = the row has a value) and its count of nulls."""
    nulls = len(present) - int(np.count_nonzero(present))
    if nulls == 0:
        return None, 0
    return pa.py_buffer(np.packbits(present, bitorder="little")), nulls


def _column(
    values: npt.NDArray[Any], kind: pa.DataType, validity: pa.Buffer | None = None, nulls: int = 0
) -> pa.Array:
    """``values`` (any shape, C order) as a flat Arrow array over the same memory."""
    flat = np.ascontiguousarray(values).reshape(-1)
    return pa.Array.from_buffers(kind, len(flat), [validity, pa.py_buffer(flat)], null_count=nulls)


def _values(
    parts_min: npt.NDArray[np.float64],
    parts_max: npt.NDArray[np.float64],
    parts_sum: npt.NDArray[np.float64],
    count: npt.NDArray[np.uint32],
    fields: tuple[str, ...],
    counter: npt.NDArray[np.bool_] | None = None,
    seconds: int = 0,
) -> dict[str, pa.Array]:
    """The value columns asked for; min, max and avg are null where ``count == 0`` (what JSON
    writes as ``null``), whatever the partial holds there. ``counter`` (``fn=rate``): per
    row, is it a counter's; those rows' fields but ``count`` are null, and ``kind`` and
    ``rate`` (over buckets of ``seconds``) follow."""
    has = count.reshape(-1) > 0
    shown = has if counter is None else has & ~counter
    validity, nulls = _validity(shown)
    out: dict[str, pa.Array] = {}
    for f in fields:
        if f == "count":
            out[f] = _column(count.astype(np.uint32, copy=False), pa.uint32())
        elif f == "sum":
            if counter is None:
                out[f] = _column(parts_sum.astype(np.float64, copy=False), pa.float64())
            else:
                sums = parts_sum.astype(np.float64, copy=False)
                out[f] = _column(sums, pa.float64(), *_validity(~counter))
        else:
            if f == "avg":
                with np.errstate(invalid="ignore", divide="ignore"):
                    raw = parts_sum / count
            else:
                raw = parts_min if f == "min" else parts_max
            out[f] = _column(raw.astype(np.float64, copy=False), pa.float64(), validity, nulls)
    if counter is not None:
        codes = _column(counter.astype(np.int8), pa.int8())
        out["kind"] = pa.DictionaryArray.from_arrays(codes, KIND_NAMES, safe=False)
        rate = render.rates(parts_sum.reshape(-1), count.reshape(-1), seconds)
        out["rate"] = _column(rate, pa.float64(), *_validity(has & counter))
    return out


def _stream(columns: dict[str, pa.Array], metadata: dict[str, str]) -> memoryview:
    batch = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
    # the buffer is the body as it is, no copy into ``bytes``
    return memoryview(ipc_stream(batch.replace_schema_metadata(metadata)))


def _timestamps(a: SeriesAnswer, repeat: int) -> pa.Array:
    return _column(np.tile(a.timestamps.astype(np.int64, copy=False), repeat), _TS)


def series_arrow(
    a: SeriesAnswer, fields: tuple[str, ...], counters: npt.NDArray[np.bool_] | None = None
) -> memoryview:
    """Q1/Q2 as one record batch, one row per (label, bucket); see the module docstring.
    ``counters`` (``fn=rate``): which labels are counters."""
    n, b = a.parts.count.shape
    codes = _column(np.repeat(np.arange(n, dtype=np.int32), b), pa.int32())
    labels = pa.DictionaryArray.from_arrays(codes, pa.array(a.labels, pa.string()), safe=False)
    p = a.parts
    counter = None if counters is None else np.repeat(counters, b)
    columns = {
        _other(a.by): labels,
        "ts": _timestamps(a, n),
        **_values(p.min, p.max, p.sum, p.count, fields, counter, a.step),
    }
    return _stream(columns, _meta(a))


def fleet_arrow(
    a: SeriesAnswer, fields: tuple[str, ...], counters: npt.NDArray[np.bool_] | None = None
) -> memoryview:
    """The fleet's band: one row per bucket (no label column); ``servers`` in the metadata."""
    p = a.parts
    b = len(a.timestamps)
    counter = None if counters is None else np.repeat(counters, b)
    columns = {
        "ts": _timestamps(a, 1),
        **_values(p.min, p.max, p.sum, p.count, fields, counter, a.step),
    }
    return _stream(columns, {**_meta(a), "servers": str(a.servers)})


def summary_arrow(a: SummaryAnswer, counters: npt.NDArray[np.bool_] | None = None) -> memoryview:
    """Q3/Q4: one row per label with min, max, avg and count (and ``fn=rate``'s columns)."""
    p = a.parts
    fields = ("min", "max", "avg", "count")
    columns = {
        _other(a.by): pa.array(a.labels, pa.string()),
        **_values(p.min, p.max, p.sum, p.count, fields, counters, a.end - a.start),
    }
    return _stream(columns, {a.by: a.name, "start": str(a.start), "end": str(a.end)})


def _meta(a: SeriesAnswer) -> dict[str, str]:
    return {a.by: a.name, "start": str(a.start), "end": str(a.end), "step": str(a.step)}
