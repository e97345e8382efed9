"""Answers as HTTP bodies: columnar JSON (orjson, numpy arrays serialised natively, NaN as
``null``) and CSV (written by Arrow's CSV writer). One function per answer kind and format;
no per-point Python work.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

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


def series_json(a: SeriesAnswer, fields: tuple[str, ...] = DEFAULT_FIELDS) -> bytes:
    cols = _columns(a, fields)
    label = _other(a.by)
    series = [
        {label: name, **{f: col[i] for f, col in cols.items()}} for i, name in enumerate(a.labels)
    ]
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


def fleet_json(a: SeriesAnswer, fields: tuple[str, ...] = DEFAULT_FIELDS) -> bytes:
    cols = _columns(a, fields)
    return dumps(
        {
            "metric": a.name,
            "start": a.start,
            "end": a.end,
            "step": a.step,
            "servers": a.servers,
            "timestamps": a.timestamps,
            **{f: col[0] for f, col in cols.items()},
            **_partial(a.partial),
        }
    )


def summary_json(a: SummaryAnswer) -> bytes:
    lo, hi, avg = a.parts.masked()
    label = _other(a.by)
    count = a.parts.count
    rows = [
        {label: name, "min": lo[i], "max": hi[i], "avg": avg[i], "count": count[i]}
        for i, name in enumerate(a.labels)
    ]
    return dumps(
        {a.by: a.name, "start": a.start, "end": a.end, "rows": rows, **_partial(a.partial)}
    )


def _csv(columns: dict[str, pa.Array]) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(columns), sink)
    return sink.getvalue()


def _nullable(values: npt.NDArray[np.float64]) -> pa.Array:
    return pa.array(values, mask=np.isnan(values))


def series_csv(a: SeriesAnswer) -> bytes:
    """One row per (series, bucket) that has data: by, label, ts, min, max, avg, count."""
    n, b = a.parts.count.shape
    has = a.parts.count.reshape(-1) > 0
    lo, hi, avg = (x.reshape(-1)[has] for x in a.parts.masked())
    label_idx = np.repeat(np.arange(n), b)[has]
    labels = pa.DictionaryArray.from_arrays(
        pa.array(label_idx.astype(np.int32)), pa.array(a.labels, pa.string())
    )
    return _csv(
        {
            a.by: pa.array(np.full(int(has.sum()), a.name, dtype=object), pa.string()),
            _other(a.by): labels.cast(pa.string()),
            "ts": pa.array(np.tile(a.timestamps, n)[has]),
            "min": _nullable(lo),
            "max": _nullable(hi),
            "avg": _nullable(avg),
            "count": pa.array(a.parts.count.reshape(-1)[has]),
        }
    )


def summary_csv(a: SummaryAnswer) -> bytes:
    """One row per series: label, min, max, avg, count."""
    lo, hi, avg = a.parts.masked()
    return _csv(
        {
            _other(a.by): pa.array(a.labels, pa.string()),
            "min": _nullable(lo),
            "max": _nullable(hi),
            "avg": _nullable(avg),
            "count": pa.array(a.parts.count),
        }
    )
