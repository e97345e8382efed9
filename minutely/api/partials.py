"""Answers as exact partials on the wire, between the nodes of a cluster.

A node that routes a question to the partition's owner gets the owner's answer back as
partials (min, max, sum, count per bucket, bit for bit), not as the rendered min/max/avg a
client gets, so it renders exactly what the owner would have. The form is an ``.npz``
archive: the arrays as they are, labels as a string array, no pickles.
"""

from __future__ import annotations

import io

import numpy as np

from minutely.model import Partials
from minutely.query import SeriesAnswer, SummaryAnswer

MEDIA_TYPE = "application/vnd.minutely.partials+npz"


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def _unpack(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _common(
    by: str, name: str, start: int, end: int, labels: list[str], partial: bool
) -> dict[str, np.ndarray]:
    return {
        "by": np.array(by),
        "name": np.array(name),
        "range": np.array([start, end], dtype=np.int64),
        "labels": np.array(labels, dtype=np.str_),
        "partial": np.array(partial),
    }


def series_bytes(a: SeriesAnswer) -> bytes:
    return _pack(
        {
            **_common(a.by, a.name, a.start, a.end, a.labels, a.partial),
            "kind": np.array("series"),
            "step": np.array(a.step, dtype=np.int64),
            "servers": np.array(a.servers, dtype=np.int64),
            "timestamps": a.timestamps,
            "min": a.parts.min,
            "max": a.parts.max,
            "sum": a.parts.sum,
            "count": a.parts.count,
        }
    )


def summary_bytes(a: SummaryAnswer) -> bytes:
    return _pack(
        {
            **_common(a.by, a.name, a.start, a.end, a.labels, a.partial),
            "kind": np.array("summary"),
            "min": a.parts.min,
            "max": a.parts.max,
            "sum": a.parts.sum,
            "count": a.parts.count,
        }
    )


def _parts(f: dict[str, np.ndarray]) -> Partials:
    return Partials(f["min"], f["max"], f["sum"], f["count"].astype(np.uint32))


def series_of(data: bytes) -> SeriesAnswer:
    f = _unpack(data)
    start, end = (int(x) for x in f["range"].tolist())
    labels = [str(x) for x in f["labels"].tolist()]
    return SeriesAnswer(
        str(f["by"]),  # type: ignore[arg-type]
        str(f["name"]),
        start,
        end,
        int(f["step"]),
        f["timestamps"].astype(np.int64),
        labels,
        _parts(f),
        servers=int(f["servers"]),
        partial=bool(f["partial"]),
    )


def summary_of(data: bytes) -> SummaryAnswer:
    f = _unpack(data)
    start, end = (int(x) for x in f["range"].tolist())
    labels = [str(x) for x in f["labels"].tolist()]
    return SummaryAnswer(
        str(f["by"]),  # type: ignore[arg-type]
        str(f["name"]),
        start,
        end,
        labels,
        _parts(f),
        partial=bool(f["partial"]),
    )
