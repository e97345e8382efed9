"""The HTTP API in-process: ingest answers, every error status, the four queries against numpy.

The service runs with a fake clock and no aggregator thread: each test drains the bus itself,
so nothing sleeps and every answer is deterministic.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.model import PointBatch
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from tests.api.helpers import ARROW, NOW, arrow_body, ingest, make_points, truth


def test_healthz_and_names(client: TestClient, service: Service) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ingest(client, service, make_points(n=100))
    assert client.get("/api/v1/servers").json()["servers"] == [f"web-{i:03d}" for i in range(5)]
    assert client.get("/api/v1/metrics").json()["metrics"] == sorted(
        ["cpu.user", "cpu.sys", "mem.used", "disk.io"]
    )
    status = client.get("/api/v1/status").json()
    assert status["series"] == 20 and status["aggregator"]["points"] == 100


@pytest.mark.parametrize("by", ["server", "metric"])
@pytest.mark.parametrize("step", [60, 300, 3600])
def test_series_match_numpy(client: TestClient, service: Service, by: str, step: int) -> None:
    pts = make_points()
    ingest(client, service, pts)
    name = "web-002" if by == "server" else "cpu.sys"
    other = "metric" if by == "server" else "server"
    r = client.get(f"/api/v1/{by}s/{name}/series", params={"start": "-4h", "step": step})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data[by] == name and data["step"] == step
    stamps = np.array(data["timestamps"])
    assert np.all(stamps % step == 0) and np.all(np.diff(stamps) == step)
    assert data["start"] == stamps[0] and data["end"] == stamps[-1] + step
    labels = {s[other] for s in data["series"]}
    assert labels == set(np.unique(pts[other][pts[by] == name]).tolist())
    for s in data["series"]:
        for i, b in enumerate(data["timestamps"]):
            sel = (pts[by] == name) & (pts[other] == s[other])
            sel &= (pts["ts"] >= b) & (pts["ts"] < b + step)
            if not sel.any():
                assert s["count"][i] == 0 and s["min"][i] is None and s["avg"][i] is None
                continue
            lo, hi, avg, count = truth(pts, sel)
            assert (s["min"][i], s["max"][i], s["count"][i]) == (lo, hi, count)
            assert s["avg"][i] == pytest.approx(avg, rel=1e-12)


@pytest.mark.parametrize("by", ["server", "metric"])
def test_summary_match_numpy(client: TestClient, service: Service, by: str) -> None:
    pts = make_points(seed=3)
    ingest(client, service, pts)
    name = "web-004" if by == "server" else "mem.used"
    other = "metric" if by == "server" else "server"
    start, end = 1_764_000_000 + 1800, 1_764_000_000 + 3 * 3600 + 60
    r = client.get(f"/api/v1/{by}s/{name}/summary", params={"start": start, "end": end})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert len(rows) == len(np.unique(pts[other][pts[by] == name]))
    for row in rows:
        sel = (pts[by] == name) & (pts[other] == row[other])
        sel &= (pts["ts"] >= start) & (pts["ts"] < end)
        lo, hi, avg, count = truth(pts, sel)
        assert (row["min"], row["max"], row["count"]) == (lo, hi, count)
        assert row["avg"] == pytest.approx(avg, rel=1e-12)


def test_filters_and_csv(client: TestClient, service: Service) -> None:
    pts = make_points(seed=5)
    ingest(client, service, pts)
    r = client.get(
        "/api/v1/servers/web-001/summary",
        params=[("start", "-6h"), ("metric", "cpu.user"), ("metric", "disk.io")],
    )
    assert sorted(row["metric"] for row in r.json()["rows"]) == ["cpu.user", "disk.io"]
    r = client.get(
        "/api/v1/metrics/cpu.user/summary",
        params={"start": "-6h"},
        headers={"accept": "text/csv"},
    )
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0].replace('"', "") == "server,min,max,avg,count" and len(lines) == 6
    json_rows = client.get("/api/v1/metrics/cpu.user/summary", params={"start": "-6h"}).json()
    first = lines[1].replace('"', "").split(",")
    assert first[0] == json_rows["rows"][0]["server"]
    assert float(first[1]) == json_rows["rows"][0]["min"]
    r = client.get("/api/v1/servers/web-001/series?start=-1h&format=csv")
    body = r.text.strip().splitlines()
    assert body[0].replace('"', "") == "server,metric,ts,min,max,avg,count"
    series = client.get("/api/v1/servers/web-001/series?start=-1h").json()["series"]
    assert len(body) - 1 == sum(sum(1 for c in s["count"] if c) for s in series)


def test_json_ingest_reports_bad_points(client: TestClient, service: Service) -> None:
    good = {"server": "a", "metric": "m", "ts": NOW - 10, "value": 1.5}
    points = [
        good,
        {"server": "", "metric": "m", "ts": NOW, "value": 1},
        {"server": "a", "metric": "m", "ts": NOW - 7 * 3600, "value": 1},
        {"server": "a", "metric": "m", "ts": NOW + 3600, "value": 1},
        {"server": "a", "metric": "m", "ts": NOW, "value": "high"},
        {**good, "value": 2.5},
    ]
    r = client.post(
        "/api/v1/points", content=orjson.dumps(points), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2 and body["rejected"] == 4
    reasons = {e["index"]: e["reason"] for e in body["errors"]}
    assert set(reasons) == {1, 2, 3, 4}
    assert reasons[1].startswith("server") and reasons[2].startswith("ts")
    assert reasons[3].startswith("ts") and reasons[4].startswith("value")
    codes = {e["index"]: e["code"] for e in body["errors"]}
    assert codes == {1: "server_missing", 2: "too_old", 3: "too_new", 4: "bad_value"}
    service.aggregator.drain(timeout=0)
    rows = client.get("/api/v1/servers/a/summary?start=-1h").json()["rows"]
    assert rows == [{"metric": "m", "min": 1.5, "max": 2.5, "avg": 2.0, "count": 2}]


def test_errors(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(n=50))
    r = client.get("/api/v1/servers/nope/series")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = client.get("/api/v1/metrics/nope/summary")
    assert r.status_code == 404
    r = client.get("/api/v1/servers/web-001/series?step=90")
    assert r.status_code == 400 and "step" in r.json()["error"]
    r = client.get("/api/v1/servers/web-001/series?start=soon")
    assert r.status_code == 400 and "start" in r.json()["error"]
    r = client.get("/api/v1/servers/web-001/series?start=-1h&end=-2h")
    assert r.status_code == 400 and "end" in r.json()["error"]
    r = client.get("/api/v1/servers/web-001/series?start=-1000d")
    assert r.status_code == 400 and "step" in r.json()["error"]
    r = client.post(
        "/api/v1/points", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]
    r = client.post("/api/v1/points", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "content type" in r.json()["error"].lower()


def test_body_too_large(service: Service) -> None:
    small = Service(service.settings.replace(max_body_bytes=1000), clock=service.clock).open()
    with TestClient(create_app(small, manage_lifecycle=False, access=TESTSERVER)) as c:
        r = c.post(
            "/api/v1/points",
            content=b"[" + b" " * 2000 + b"]",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413 and "1000" in r.json()["error"]


def test_full_bus_answers_429_and_applies_nothing(client: TestClient, service: Service) -> None:
    pts = make_points(n=100_000)  # 2.4 MB of columns against a 4 MB bus
    b = PointBatch.from_names(pts["server"], pts["metric"], pts["ts"], pts["value"])
    body = arrow_body(b)
    headers = {"content-type": ARROW}
    assert client.post("/api/v1/points", content=body, headers=headers).status_code == 200
    r = client.post("/api/v1/points", content=body, headers=headers)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    while service.aggregator.drain(timeout=0):
        pass
    # only the first request's points were applied, and the retry now goes through
    assert service.aggregator.stats.points == 100_000
    assert client.post("/api/v1/points", content=body, headers=headers).status_code == 200


def test_a_full_bus_refuses_before_decoding(client: TestClient, service: Service) -> None:
    """Under overload a refusal must be cheap: a bus without room for a body answers 429
    before reading its points (so even a body that is not JSON gets the 429, not a 400)."""
    pts = make_points(n=100_000)  # 2.4 MB of columns against a 4 MB bus
    b = PointBatch.from_names(pts["server"], pts["metric"], pts["ts"], pts["value"])
    headers = {"content-type": ARROW}
    assert client.post("/api/v1/points", content=arrow_body(b), headers=headers).status_code == 200
    garbage = b"x" * (8 << 20)  # a quarter of it does not fit beside the first body's points
    json = {"content-type": "application/json"}
    r = client.post("/api/v1/points", content=garbage, headers=json)
    assert r.status_code == 429 and "the bus is full" in r.json()["error"]
    while service.aggregator.drain(timeout=0):
        pass
    r = client.post("/api/v1/points", content=garbage, headers=json)
    assert r.status_code == 400


def test_fleet_merges_every_server_exactly(client: TestClient, service: Service) -> None:
    pts = make_points(seed=9)
    ingest(client, service, pts)
    step = 600
    r = client.get("/api/v1/metrics/disk.io/fleet", params={"start": "-4h", "step": step})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["metric"] == "disk.io" and data["servers"] == 5
    for i, b in enumerate(data["timestamps"]):
        sel = (pts["metric"] == "disk.io") & (pts["ts"] >= b) & (pts["ts"] < b + step)
        if not sel.any():
            assert data["count"][i] == 0 and data["avg"][i] is None
            continue
        lo, hi, avg, count = truth(pts, sel)
        assert (data["min"][i], data["max"][i], data["count"][i]) == (lo, hi, count)
        assert data["avg"][i] == pytest.approx(avg, rel=1e-12)
    only = client.get(
        "/api/v1/metrics/disk.io/fleet",
        params={"start": "-4h", "step": step, "server": "web-000", "fields": "max,count"},
    ).json()
    assert only["servers"] == 1 and set(only) >= {"max", "count"} and "min" not in only


def test_fields_select_series_arrays(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(n=500))
    r = client.get("/api/v1/servers/web-001/series?start=-1h&fields=avg,sum")
    s = r.json()["series"][0]
    assert set(s) == {"metric", "avg", "sum"}
    r = client.get("/api/v1/servers/web-001/series?start=-1h&fields=median")
    assert r.status_code == 400 and "fields" in r.json()["error"]


def test_stopping_server_answers_503(client: TestClient, service: Service) -> None:
    import asyncio

    asyncio.run(service.bus.close())
    pts = make_points(n=10)
    b = PointBatch.from_names(pts["server"], pts["metric"], pts["ts"], pts["value"])
    r = client.post("/api/v1/points", content=arrow_body(b), headers={"content-type": ARROW})
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert "closed" in r.json()["error"]


def test_series_without_data_in_the_range_are_left_out(
    client: TestClient, service: Service
) -> None:
    pts = make_points(seed=21, n=2000)
    old = pts["metric"] == "disk.io"
    pts["ts"][old] = NOW - 5 * 3600 + pts["ts"][old] % 60  # disk.io only in the 5th hour back
    ingest(client, service, pts)
    recent = client.get("/api/v1/servers/web-001/series?start=-2h&step=300").json()["series"]
    assert sorted(s["metric"] for s in recent) == ["cpu.sys", "cpu.user", "mem.used"]
    assert all(sum(s["count"]) > 0 for s in recent)
    back = client.get("/api/v1/servers/web-001/series?start=-6h&step=300").json()["series"]
    assert sorted(s["metric"] for s in back) == ["cpu.sys", "cpu.user", "disk.io", "mem.used"]
