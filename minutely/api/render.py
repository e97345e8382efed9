"""Answers as HTTP bodies: columnar JSON (orjson, numpy arrays serialised natively, NaN as
``null``) and CSV (written by Arrow's CSV writer). One function per answer kind and format;
no per-point Python work.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from minutely.model import F64
from minutely.query import SeriesAnswer, SummaryAnswer

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _other(by: str) -> str:
    return "metric" if by == "server" else "server"


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTS)


FIELDS = ("min", "max", "avg", "sum", "count")
DEFAULT_FIELDS = ("min", "max", "avg", "count")


def _columns(a: SeriesAnswer, fields: tuple[str, ...]) -> dict[str, npt.NDArray[Any]]:
    lo, hi, avg = a.parts.masked()
    every: dict[str, npt.NDArray[Any]] = {
        "min": lo,
        "max": hi,
        "avg": avg,
        "sum": a.parts.sum,
        "count": a.parts.count,
    }
    return {f: every[f] for f in fields}


def rates(sums: npt.NDArray[np.float64], count: npt.NDArray[Any], seconds: float) -> F64:
    """A counter's rate per second: its increase (the sum of its folded increases) over the
    bucket's seconds; null (NaN) where the bucket has no sample."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, sums / seconds, np.nan)


def counter_rows(kinds: list[str]) -> npt.NDArray[np.bool_]:
    """Per label of an answer, given each one's kind: is it a counter (``fn=rate``'s rows)."""
    return np.fromiter((k == "counter" for k in kinds), np.bool_, len(kinds))


def rate_fields(fields: tuple[str, ...]) -> tuple[str, ...]:
    """The fields of a columnar ``fn=rate`` answer: those asked for, ``count`` always among
    them, as every counter entry of the JSON answer has it."""
    return fields if "count" in fields else (*fields, "count")


def _series_entry(
    label: str, name: str, i: int, cols: dict[str, npt.NDArray[Any]], kind: str | None
) -> dict[str, Any]:
    if kind != "counter":  # a gauge's entry is as it always was
        return {label: name, **{f: col[i] for f, col in cols.items()}}
    return {label: name, "kind": kind, **{f: col[i] for f, col in cols.items()}}


def series_json(
    a: SeriesAnswer,
    fields: tuple[str, ...] = DEFAULT_FIELDS,
    kinds: list[str] | None = None,
    rate: bool = False,
) -> bytes:
    """``kinds``: each series' kind (a counter's entry says ``"kind": "counter"``, a gauge's
    has no ``kind``); ``rate``: a counter's entry carries ``rate`` (per second) and ``count``
    instead of ``fields``."""
    cols = _columns(a, fields)
    label = _other(a.by)
    series = [
        _series_entry(label, name, i, cols, None if kinds is None else kinds[i])
        for i, name in enumerate(a.labels)
    ]
    if rate and kinds is not None:
        per_second = rates(a.parts.sum, a.parts.count, a.step)
        for i, entry in enumerate(series):
            if kinds[i] == "counter":
                series[i] = {
                    label: entry[label],
                    "kind": "counter",
                    "rate": per_second[i],
                    "count": a.parts.count[i],
                }
    return dumps(
        {
            a.by: a.name,
            "start": a.start,
            "end": a.end,
            "step": a.step,
            "timestamps": a.timestamps,
            "series": series,
            **_partial(a.partial),
        }
    )


def _partial(partial: bool) -> dict[str, bool]:
    """``"partial": true`` on an answer a cluster could give only from its store (absent
    otherwise, so a single node's answers are as they were)."""
    return {"partial": True} if partial else {}


def fleet_json(
    a: SeriesAnswer,
    fields: tuple[str, ...] = DEFAULT_FIELDS,
    kind: str | None = None,
    rate: bool = False,
) -> bytes:
    """As ``series_json``; a counter's fleet rate is the sum of its servers' rates."""
    cols = _columns(a, fields)
    if rate and kind == "counter":
        cols = {"rate": rates(a.parts.sum, a.parts.count, a.step), "count": a.parts.count}
    return dumps(
        {
            "metric": a.name,
            "start": a.start,
            "end": a.end,
            "step": a.step,
            "servers": a.servers,
            **({"kind": kind} if kind == "counter" else {}),
            "timestamps": a.timestamps,
            **{f: col[0] for f, col in cols.items()},
            **_partial(a.partial),
        }
    )


def summary_json(a: SummaryAnswer, kinds: list[str] | None = None, rate: bool = False) -> bytes:
    """As ``series_json``, one row per series over the whole range."""
    lo, hi, avg = a.parts.masked()
    label = _other(a.by)
    count = a.parts.count
    per_second = rates(a.parts.sum, count, a.end - a.start)
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(a.labels):
        kind = None if kinds is None else kinds[i]
        row: dict[str, Any] = {label: name}
        if kind == "counter":
            row["kind"] = kind
        if rate and kind == "counter":
            row |= {"rate": per_second[i], "count": count[i]}
        else:
            row |= {"min": lo[i], "max": hi[i], "avg": avg[i], "count": count[i]}
        rows.append(row)
    return dumps(
        {a.by: a.name, "start": a.start, "end": a.end, "rows": rows, **_partial(a.partial)}
    )


def _csv(columns: dict[str, pa.Array]) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(columns), sink)
    return sink.getvalue()


def _nullable(values: npt.NDArray[np.float64]) -> pa.Array:
    return pa.array(values, mask=np.isnan(values))


def _values_csv(
    lo: F64,
    hi: F64,
    avg: F64,
    count: npt.NDArray[Any],
    counter: npt.NDArray[np.bool_] | None,
    rate: F64,
) -> dict[str, pa.Array]:
    """The value columns; with ``counter`` (``fn=rate``: is each row a counter's), a
    counter row's min, max and avg null (JSON leaves them out), then ``kind`` and ``rate``
    (null on a gauge's rows, which JSON gives no rate)."""
    if counter is None:
        return {
            "min": _nullable(lo),
            "max": _nullable(hi),
            "avg": _nullable(avg),
            "count": pa.array(count),
        }
    return {
        "min": _nullable(np.where(counter, np.nan, lo)),
        "max": _nullable(np.where(counter, np.nan, hi)),
        "avg": _nullable(np.where(counter, np.nan, avg)),
        "count": pa.array(count),
        "kind": pa.array(np.where(counter, "counter", "gauge").astype(object), pa.string()),
        "rate": _nullable(np.where(counter, rate, np.nan)),
    }


def series_csv(a: SeriesAnswer, counters: npt.NDArray[np.bool_] | None = None) -> bytes:
    """One row per (series, bucket) that has data: by, label, ts, min, max, avg, count; with
    ``counters`` (``fn=rate``: which labels are counters), then kind and rate."""
    n, b = a.parts.count.shape
    has = a.parts.count.reshape(-1) > 0
    lo, hi, avg = (x.reshape(-1)[has] for x in a.parts.masked())
    label_idx = np.repeat(np.arange(n), b)[has]
    labels = pa.DictionaryArray.from_arrays(
        pa.array(label_idx.astype(np.int32)), pa.array(a.labels, pa.string())
    )
    counter, rate = None, lo
    if counters is not None:
        counter = counters[label_idx]
        rate = rates(a.parts.sum, a.parts.count, a.step).reshape(-1)[has]
    return _csv(
        {
            a.by: pa.array(np.full(int(has.sum()), a.name, dtype=object), pa.string()),
            _other(a.by): labels.cast(pa.string()),
            "ts": pa.array(np.tile(a.timestamps, n)[has]),
            **_values_csv(lo, hi, avg, a.parts.count.reshape(-1)[has], counter, rate),
        }
    )


def summary_csv(a: SummaryAnswer, counters: npt.NDArray[np.bool_] | None = None) -> bytes:
    """One row per series: label, min, max, avg, count; with ``counters``, kind and rate."""
    lo, hi, avg = a.parts.masked()
    rate = lo if counters is None else rates(a.parts.sum, a.parts.count, a.end - a.start)
    return _csv(
        {
            _other(a.by): pa.array(a.labels, pa.string()),
            **_values_csv(lo, hi, avg, a.parts.count, counters, rate),
        }
    )


#: the cells (series × buckets) rendered at a time when an answer is streamed: a chunk of
#: about 300 KB of JSON, a few milliseconds, so no one call holds the GIL for long
CHUNK_CELLS = 1 << 14


def chunk_rows(a: SeriesAnswer) -> int:
    """How many series one streamed chunk of ``a`` holds."""
    return max(1, CHUNK_CELLS // max(1, len(a.timestamps)))


def _rows(a: SeriesAnswer, lo: int, hi: int) -> SeriesAnswer:
    return replace(a, labels=a.labels[lo:hi], parts=a.parts.take(np.s_[lo:hi]))


def series_json_chunks(
    a: SeriesAnswer,
    fields: tuple[str, ...] = DEFAULT_FIELDS,
    kinds: list[str] | None = None,
    rate: bool = False,
) -> Iterator[bytes]:
    """``series_json``'s bytes, exactly, a few series at a time: each chunk is ``series_json``
    of those series, cut out of its document (a name cannot hold the unescaped ``"series":[``
    that opens the array)."""
    n, rows = len(a.labels), chunk_rows(a)
    if n <= rows:
        yield series_json(a, fields, kinds, rate)
        return
    tail = b"]" + (b',"partial":true' if a.partial else b"") + b"}"
    opening = b'"series":['
    for lo in range(0, n, rows):
        part = _rows(a, lo, lo + rows)
        body = series_json(part, fields, None if kinds is None else kinds[lo : lo + rows], rate)
        if lo == 0:
            yield body[: -len(tail)]
        else:
            yield b"," + body[body.index(opening) + len(opening) : -len(tail)]
    yield tail


def series_csv_chunks(
    a: SeriesAnswer, counters: npt.NDArray[np.bool_] | None = None
) -> Iterator[bytes]:
    """``series_csv``'s bytes, exactly, a few series at a time (the header line once)."""
    rows = chunk_rows(a)
    for lo in range(0, max(1, len(a.labels)), rows):
        part = None if counters is None else counters[lo : lo + rows]
        body = series_csv(_rows(a, lo, lo + rows), part)
        yield body if lo == 0 else body.split(b"\n", 1)[1]
