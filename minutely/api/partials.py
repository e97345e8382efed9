"""Answers as exact partials on the wire, between the nodes of a cluster.

A node that routes a question to the partition's owner gets the owner's answer back as
partials (min, max, sum, count per bucket, bit for bit), not as the rendered min/max/avg a
client gets, so it renders exactly what the owner would have. The form is an ``.npz``
archive: the arrays as they are, labels as a string array, no pickles.

A question the owner refuses (a bad parameter, or one over ``max_query_cells``) comes back
as 400 with the refusal's parts in JSON (``refusal_json``), so the asking node raises the
same ``BadParameter`` (``refusal_of``), naming the same limit and smallest step.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from minutely.errors import BadParameter
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


def refusal_json(e: BadParameter) -> dict[str, Any]:
    """What a 400 of a routed question says: the message and the refusal's parts."""
    return {"error": str(e), "param": e.param, "problem": e.problem, "limit": e.limit}


def refusal_of(answer: Any) -> BadParameter:
    """The ``BadParameter`` a routed question's 400 (``refusal_json``) stands for."""
    if not isinstance(answer, dict):
        answer = {}
    param, problem = answer.get("param"), answer.get("problem")
    if not isinstance(param, str) or not isinstance(problem, str):
        said = str(answer.get("error", "refused by the partition's owner"))
        return BadParameter(param="query", problem=said)
    limit = answer.get("limit")
    return BadParameter(param, problem, limit if isinstance(limit, str) else None)
