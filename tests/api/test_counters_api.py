"""Counters through the API: kinds declared and reported, ``fn=rate`` on every answer and
PromQL's ``rate``/``increase``, each exact against numpy over the raw samples with resets."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import NOW, ingest
from tests.counter_data import Counters, make_counters, per_minute

N = 5
START = int(NOW // 3600) * 3600 - 2 * 3600  # two whole hours before the current one
FIRST = START // 60
MINUTES = 120


def send(client: TestClient, service: Service, c: Counters, metric: str, pieces: int = 4) -> None:
    """The samples in ``pieces`` requests, in time order, each with a gauge beside them."""
    for at in np.array_split(np.arange(len(c.ts)), pieces):
        servers = np.array([f"web-{s}" for s in c.series[at].tolist()], dtype=object)
        ingest(
            client,
            service,
            {
                "server": np.r_[servers, servers],
                "metric": np.array([metric] * len(at) + ["cpu"] * len(at), dtype=object),
                "ts": np.r_[c.ts[at], c.ts[at]],
                "value": np.r_[c.value[at], c.value[at]],
            },
        )


def samples(c: Counters, step: int) -> np.ndarray:
    """How many samples each series has in each bucket of ``step`` seconds."""
    out = np.zeros((N, MINUTES * 60 // step))
    np.add.at(out, (c.series, ((c.ts - START) // step).astype(np.int64)), 1)
    return out


def same(got: list[float | None], want: np.ndarray, has: np.ndarray) -> bool:
    """Equal to float64 rounding where there are samples, null where there are none."""
    values = np.array(got, float)
    return bool(np.array_equal(np.isnan(values), has == 0)) and np.allclose(
        values[has > 0], want[has > 0], rtol=1e-12, atol=0
    )


@pytest.fixture
def counters(client: TestClient, service: Service) -> Counters:
    r = client.post("/api/v1/kinds", json={"counter": ["app.requests"]})
    assert r.status_code == 200 and r.json() == {"declared": 1, "changed": 1}
    c = make_counters(N, START, MINUTES * 60, seed=11, resets=4)
    send(client, service, c, "app.requests")
    return c


def test_fn_rate_is_exact_on_series_summary_and_fleet(
    client: TestClient, counters: Counters
) -> None:
    want = per_minute(counters, N, FIRST, MINUTES)  # increase per series-minute
    span = {"start": START, "end": START + MINUTES * 60}
    for step in (60, 300, 3600):
        got = client.get(
            "/api/v1/metrics/app.requests/series", params={**span, "step": step, "fn": "rate"}
        ).json()
        per_bucket = want.reshape(N, -1, step // 60).sum(axis=2) / step
        for row in got["series"]:
            s = int(row["server"].split("-")[1])
            assert row["kind"] == "counter" and set(row) == {"server", "kind", "rate", "count"}
            assert same(row["rate"], per_bucket[s], samples(counters, step)[s])
        fleet = client.get(
            "/api/v1/metrics/app.requests/fleet", params={**span, "step": step, "fn": "rate"}
        ).json()
        assert fleet["kind"] == "counter"
        assert same(fleet["rate"], per_bucket.sum(axis=0), samples(counters, step).sum(axis=0))
    rows = client.get("/api/v1/metrics/app.requests/summary", params={**span, "fn": "rate"}).json()[
        "rows"
    ]
    for row in rows:
        s = int(row["server"].split("-")[1])
        assert row["rate"] == pytest.approx(want[s].sum() / (MINUTES * 60), rel=1e-12)
    server = client.get(
        "/api/v1/servers/web-2/series", params={**span, "step": 600, "fn": "rate"}
    ).json()
    by_metric = {row["metric"]: row for row in server["series"]}
    assert "kind" not in by_metric["cpu"] and "avg" in by_metric["cpu"]  # a gauge as before
    rate = by_metric["app.requests"]["rate"]
    assert same(rate, want[2].reshape(-1, 10).sum(axis=1) / 600, samples(counters, 600)[2])


def table(body: bytes, fmt: str) -> pa.Table:
    if fmt == "csv":
        return pacsv.read_csv(io.BytesIO(body))
    return pa.ipc.open_stream(body).read_all()


def values(column: pa.ChunkedArray) -> list[float | None]:
    return [None if v is None else float(v) for v in column.to_pylist()]


@pytest.mark.parametrize("fmt", ["csv", "arrow"])
def test_fn_rate_in_csv_and_arrow_is_the_json_answer(
    client: TestClient, counters: Counters, fmt: str
) -> None:
    """Every (label, bucket) of a series, summary and fleet answer with ``fn=rate`` carries
    the JSON answer's numbers: a counter's rate and count, a gauge's fields."""
    span = {"start": START, "end": START + MINUTES * 60, "fn": "rate"}
    for path, step in [
        ("/api/v1/servers/web-2/series", 600),
        ("/api/v1/metrics/app.requests/series", 300),
        ("/api/v1/metrics/cpu/series", 60),
    ]:
        want = client.get(path, params={**span, "step": step}).json()
        got = table(client.get(path, params={**span, "step": step, "format": fmt}).content, fmt)
        label = "metric" if path.startswith("/api/v1/servers") else "server"
        assert set(got.column("kind").to_pylist()) <= {"gauge", "counter"}
        for entry in want["series"]:
            rows = got.filter(pc.equal(got.column(label).cast(pa.string()), entry[label]))
            ts = [
                int(t.timestamp()) if fmt == "arrow" else t for t in rows.column("ts").to_pylist()
            ]
            at = [want["timestamps"].index(t) for t in ts]
            if fmt == "arrow":  # every bucket, empty ones too
                assert at == list(range(len(want["timestamps"])))
            else:  # the buckets with data
                assert at == [i for i, c in enumerate(entry["count"]) if c > 0]
            kind = entry.get("kind", "gauge")
            assert set(rows.column("kind").to_pylist()) == {kind}
            assert rows.column("count").to_pylist() == [entry["count"][i] for i in at]
            fields = ("rate",) if kind == "counter" else ("min", "max", "avg")
            hidden = ("min", "max", "avg") if kind == "counter" else ("rate",)
            for f in fields:
                assert values(rows.column(f)) == [entry[f][i] for i in at]
            for f in hidden:
                assert rows.column(f).null_count == len(rows)
    fleet = client.get("/api/v1/metrics/app.requests/fleet", params={**span, "step": 300}).json()
    got = table(
        client.get(
            "/api/v1/metrics/app.requests/fleet", params={**span, "step": 300, "format": fmt}
        ).content,
        fmt,
    )
    has = [i for i, c in enumerate(fleet["count"]) if c > 0 or fmt == "arrow"]
    assert values(got.column("rate")) == [fleet["rate"][i] for i in has]
    assert got.column("kind").to_pylist() == ["counter"] * len(has)
    for path in ("/api/v1/servers/web-2/summary", "/api/v1/metrics/app.requests/summary"):
        want = client.get(path, params=span).json()["rows"]
        got = table(client.get(path, params={**span, "format": fmt}).content, fmt)
        label = "metric" if path.startswith("/api/v1/servers") else "server"
        assert got.column(label).to_pylist() == [row[label] for row in want]
        assert got.column("count").to_pylist() == [row["count"] for row in want]
        assert values(got.column("rate")) == [row.get("rate") for row in want]
        assert values(got.column("avg")) == [row.get("avg") for row in want]


def test_promql_rate_and_increase_agree_with_the_raw_samples(
    client: TestClient, counters: Counters
) -> None:
    want = per_minute(counters, N, FIRST, MINUTES)
    end = START + MINUTES * 60
    answer = client.get(
        "/api/v1/query_range",
        params={
            "query": "increase(app.requests[5m])",
            "start": START + 300,
            "end": end,
            "step": 300,
        },
    ).json()
    assert answer["status"] == "success"
    per_window = want.reshape(N, -1, 5).sum(axis=2)
    for result in answer["data"]["result"]:
        s = int(result["metric"]["instance"].split("-")[1])
        got = {int(t): float(v) for t, v in result["values"]}
        has = samples(counters, 300)[s]
        for i in np.flatnonzero(has):  # a window without samples has no value
            assert got[START + 300 * (int(i) + 1)] == pytest.approx(per_window[s][i], rel=1e-12)
        assert len(got) == int((has > 0).sum())
    total = client.get(
        "/api/v1/query", params={"query": "sum(rate(app.requests[1h]))", "time": end}
    ).json()
    value = float(total["data"]["result"][0]["value"][1])
    assert value == pytest.approx(want[:, 60:].sum() / 3600, rel=1e-12)


def test_kinds_are_reported(client: TestClient, counters: Counters) -> None:
    listed = client.get("/api/v1/metrics").json()
    assert dict(zip(listed["metrics"], listed["kinds"], strict=True)) == {
        "app.requests": "counter",
        "cpu": "gauge",
    }
    meta = client.get("/api/v1/metadata").json()["data"]
    assert meta["app.requests"][0]["type"] == "counter" and meta["cpu"][0]["type"] == "gauge"


@pytest.mark.parametrize(
    ("path", "params", "reason"),
    [
        ("/api/v1/metrics/cpu/series", {"fn": "irate"}, "fn"),
        ("/api/v1/metrics/cpu/series", {"fn": "irate", "format": "csv"}, "fn"),
    ],
)
def test_a_bad_fn_is_a_400_naming_it(
    client: TestClient, counters: Counters, path: str, params: dict[str, str], reason: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400 and reason in r.text


@pytest.mark.parametrize(
    "body", [b"not json", b'{"counters": ["x"]}', b'{"counter": "x"}', b'{"counter": [""]}']
)
def test_a_bad_kinds_body_is_a_400(client: TestClient, body: bytes) -> None:
    r = client.post("/api/v1/kinds", content=body)
    assert r.status_code == 400 and "body" in r.text


def test_kinds_and_counter_state_survive_a_restart(tmp_path: Path) -> None:
    """Declared before a stop, the kind holds after it, and the first samples after the
    restart count their increase over the last ones before it."""
    c = make_counters(N, START, MINUTES * 60, seed=12, resets=2)
    half = np.flatnonzero(c.ts < START + 3600)
    settings = Settings(hot_window=6 * 3600, data_dir=str(tmp_path), store="chdb")

    def run(at: np.ndarray, declare: bool) -> None:
        service = Service(settings, clock=FakeClock(NOW)).open()
        with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as client:
            if declare:
                assert client.post("/api/v1/kinds", json={"counter": ["jobs"]}).status_code == 200
            sub = Counters(c.series[at], c.ts[at], c.value[at])
            send(client, service, sub, "jobs", pieces=1)
        asyncio.run(service.stop())

    run(half, declare=True)
    run(np.flatnonzero(c.ts >= START + 3600), declare=False)
    service = Service(settings, clock=FakeClock(NOW)).open()
    try:
        assert service.metric_kind("jobs") == "counter"
        got = service.query.series("metric", "jobs", START, START + MINUTES * 60, 60)
        want = per_minute(c, N, FIRST, MINUTES)
        order = [int(label.split("-")[1]) for label in got.labels]
        assert np.allclose(got.parts.sum, want[order], rtol=1e-12, atol=0)
    finally:
        service.close()


def test_a_crash_after_a_clean_restart_counts_no_increase_twice(tmp_path: Path) -> None:
    """The counters' last samples a stop leaves are for the start after it only: a crash later
    in that run must not hand them to the next start again, whose first samples would then
    count from before the run the crash cut short (that run's increases twice)."""
    c = make_counters(N, START, MINUTES * 60, seed=13, resets=1)
    thirds = np.digitize(c.ts, [START + 2400, START + 4800])
    settings = Settings(hot_window=6 * 3600, data_dir=str(tmp_path), store="chdb")

    def run(third: int, clean: bool) -> None:
        service = Service(settings, clock=FakeClock(NOW)).open()
        with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as client:
            if third == 0:
                assert client.post("/api/v1/kinds", json={"counter": ["jobs"]}).status_code == 200
            at = np.flatnonzero(thirds == third)
            send(client, service, Counters(c.series[at], c.ts[at], c.value[at]), "jobs", 1)
        if clean:
            asyncio.run(service.stop())
        else:  # a SIGKILL once the writer has handed the store everything folded
            assert service.writer is not None
            service.ring.hand_on_live()
            service.writer.flush()
            service.close()

    run(0, clean=True)
    run(1, clean=False)
    run(2, clean=True)
    service = Service(settings, clock=FakeClock(NOW)).open()
    try:
        got = service.query.series("metric", "jobs", START, START + MINUTES * 60, 60)
        # the first two runs are one counter; the crash makes the third's first samples baselines
        early, late = np.flatnonzero(thirds < 2), np.flatnonzero(thirds == 2)
        want = per_minute(Counters(c.series[early], c.ts[early], c.value[early]), N, FIRST,
                          MINUTES)  # fmt: skip
        want += per_minute(Counters(c.series[late], c.ts[late], c.value[late]), N, FIRST, MINUTES)
        order = [int(label.split("-")[1]) for label in got.labels]
        assert np.allclose(got.parts.sum, want[order], rtol=1e-12, atol=0)
    finally:
        service.close()
