"""Ground truth for the tests that drive a real ``minutely serve``: the four queries'
answers, compared cell by cell with numpy over the raw points that were answered 200."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from minutely.model import PointBatch

#: raw points as columns: server, metric (names), ts, value
Points = dict[str, np.ndarray]


def columns(b: PointBatch) -> Points:
    return {
        "server": b.server_names[b.server_codes],
        "metric": b.metric_names[b.metric_codes],
        "ts": b.ts,
        "value": b.value,
    }


def check_series(
    url: str, pts: Points, by: str, name: str, step: int, start: int, end: int, rel: float = 1e-12
) -> None:
    """Q1 (by server) or Q2 (by metric) at ``step`` over ``[start, end)``, cell by cell; avg
    to ``rel``."""
    other = "metric" if by == "server" else "server"
    r = httpx.get(
        f"{url}/api/v1/{by}s/{name}/series",
        params={"start": start, "end": end, "step": step},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    data = r.json()
    stamps = np.array(data["timestamps"], dtype=np.int64)
    mine = pts[by] == name
    assert {s[other] for s in data["series"]} == set(
        np.unique(pts[other][mine & (pts["ts"] >= data["start"]) & (pts["ts"] < data["end"])])
    )
    for s in data["series"]:
        sel = mine & (pts[other] == s[other])
        bucket = np.floor_divide(pts["ts"][sel], step).astype(np.int64) * step
        vals = pts["value"][sel]
        for i, b in enumerate(stamps.tolist()):
            v = vals[bucket == b]
            assert s["count"][i] == v.size, (name, s[other], b)
            if v.size:
                assert s["min"][i] == v.min() and s["max"][i] == v.max()
                assert s["avg"][i] == pytest.approx(v.mean(), rel=rel)
            else:
                assert s["min"][i] is None and s["avg"][i] is None


def check_summary(
    url: str, pts: Points, by: str, name: str, start: int, end: int, rel: float = 1e-12
) -> None:
    """Q3 (by server) or Q4 (by metric) over ``[start, end)``, row by row; avg to ``rel``."""
    other = "metric" if by == "server" else "server"
    r = httpx.get(
        f"{url}/api/v1/{by}s/{name}/summary",
        params={"start": start, "end": end},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    data = r.json()
    rows = data["rows"]
    start, end = start // 60 * 60, end // 60 * 60  # a summary floors both ends
    assert (data["start"], data["end"]) == (start, end)
    sel = (pts[by] == name) & (pts["ts"] >= start) & (pts["ts"] < end)
    got, want = sorted(r[other] for r in rows), np.unique(pts[other][sel]).tolist()
    assert got == want, (url, by, name, start, end, got, want)
    for row in rows:
        v = pts["value"][sel & (pts[other] == row[other])]
        assert (row["min"], row["max"], row["count"]) == (v.min(), v.max(), v.size), (
            row,
            v.min(),
            v.max(),
            v.size,
        )
        assert row["avg"] == pytest.approx(v.mean(), rel=rel)
