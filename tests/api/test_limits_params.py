"""Issue #17's query limits: every numeric query parameter is range-checked (a JSON 400
naming it, never a 5xx), and a series answer is refused before it allocates more than
``max_query_cells``, naming the smallest step that fits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.config import Settings
from minutely.model import PointBatch
from minutely.query import MAX_CELLS, smallest_step
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import ARROW, NOW, arrow_body

#: what a hostile user puts where a number belongs
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            " ",
            "1e20",
            "-1e20",
            "1e309",
            "nan",
            "-inf",
            "0x10",
            "1_000",
            "9" * 400,
            "-13d",
            "-99999999999w",
            "now",
            "2025-13-45T99:00:00Z",
            "0",
            "-0",
            "1.5",
        ]
    ),
    st.text(max_size=8),
)

#: every route with numeric parameters, and its parameters
ROUTES = {
    "/api/v1/servers/web/series": ("start", "end", "step"),
    "/api/v1/servers/web/summary": ("start", "end"),
    "/api/v1/metrics/cpu/series": ("start", "end", "step"),
    "/api/v1/metrics/cpu/summary": ("start", "end"),
    "/api/v1/metrics/cpu/fleet": ("start", "end", "step"),
    "/api/v1/query": ("time",),
    "/api/v1/query_range": ("start", "end", "step"),
    "/api/v1/series": ("start", "end"),
    "/api/v1/labels": ("start", "end"),
    "/api/v1/label/instance/values": ("start", "end"),
    "/api/v1/metadata": ("limit",),
}
PROMQL = {"query": "cpu", "match[]": "cpu"}


@pytest.fixture(scope="module")
def app_client() -> TestClient:
    service = Service(Settings(hot_window=6 * 3600, store="none"), clock=FakeClock(NOW)).open()
    b = PointBatch.from_names(["web"], ["cpu"], [NOW - 60], [1.0])
    client = TestClient(
        create_app(service, manage_lifecycle=False, access=TESTSERVER),
        raise_server_exceptions=False,
    )
    r = client.post("/api/v1/points", content=arrow_body(b), headers={"content-type": ARROW})
    assert r.status_code == 200
    while service.aggregator.drain(timeout=0):
        pass
    return client


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(sorted(ROUTES)), data=st.data())
def test_no_numeric_parameter_makes_a_5xx(
    app_client: TestClient, route: str, data: st.DataObject
) -> None:
    names = ROUTES[route]
    params = {name: data.draw(NUMBERS, label=name) for name in names if data.draw(st.booleans())}
    params.update(
        {k: v for k, v in PROMQL.items() if route.startswith("/api/v1/query") or k == "match[]"}
    )
    r = app_client.get(route, params=params)
    assert r.status_code < 500, (route, params, r.text)
    if r.status_code >= 400:
        body = r.json()  # JSON, whatever went wrong
        text = json.dumps(body)
        assert any(name in text for name in (*names, "query", "step")), (params, text)


def _client(n_metrics: int, max_cells: int = MAX_CELLS) -> tuple[TestClient, Service]:
    s = Settings(hot_window=2 * 86400, store="none", max_query_cells=max_cells)
    service = Service(s, clock=FakeClock(NOW)).open()
    metrics = np.array([f"m{i:05d}" for i in range(n_metrics)], dtype=object)
    b = PointBatch.from_names(
        np.full(n_metrics, "web", dtype=object),
        metrics,
        np.full(n_metrics, NOW - 60),
        np.arange(n_metrics, dtype=np.float64),
    )
    client = TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER))
    r = client.post("/api/v1/points", content=arrow_body(b), headers={"content-type": ARROW})
    assert r.status_code == 200 and r.json()["accepted"] == n_metrics, r.text
    while service.aggregator.drain(timeout=0):
        pass
    return client, service


def _step_named(text: str) -> int:
    return int(text.split("step=")[1].split(" ")[0])


def test_a_q1_of_2000_metrics_over_5_years_at_step_60_names_the_smallest_step() -> None:
    client, _ = _client(2000)
    r = client.get("/api/v1/servers/web/series", params={"start": "-1826d", "step": 60})
    assert r.status_code == 400
    error = r.json()["error"]
    assert "'step'" in error and "is the smallest that fits" in error
    step = _step_named(error)
    fits = client.get(
        "/api/v1/servers/web/series", params={"start": "-1826d", "step": step, "fields": "count"}
    )
    assert fits.status_code == 200, fits.text
    assert len(fits.json()["timestamps"]) * 2000 <= MAX_CELLS
    assert sum(sum(s["count"]) for s in fits.json()["series"]) == 2000  # every point, once
    finer = client.get("/api/v1/servers/web/series", params={"start": "-1826d", "step": step - 60})
    assert finer.status_code == 400


def test_20000_metrics_one_point_each_the_default_q1_is_refused_not_980_mb() -> None:
    client, _ = _client(20_000)
    r = client.get("/api/v1/servers/web/series")
    assert r.status_code == 400
    error = r.json()["error"]
    assert (
        "20000 series × 2880 buckets = 57600000 cells is over the limit of "
        f"{MAX_CELLS} (max_query_cells)" in error
    )
    step = _step_named(error)
    assert step == 600  # 2 days in 289 step-aligned buckets: 5.78 M cells
    ok = client.get("/api/v1/servers/web/series", params={"step": step, "fields": "count"})
    assert ok.status_code == 200
    counts = np.array([s["count"] for s in ok.json()["series"]])
    assert counts.shape == (20_000, 289) and counts.sum() == 20_000


def test_no_step_fits_when_the_series_alone_are_over_the_limit() -> None:
    client, _ = _client(50, max_cells=40)
    r = client.get("/api/v1/servers/web/series", params={"start": "-1h"})
    assert r.status_code == 400
    assert "no step fits: ask for fewer series" in r.json()["error"]
    one = client.get(
        "/api/v1/servers/web/series", params={"start": "-1h", "metric": "m00007", "step": 3600}
    )
    assert one.status_code == 200
    assert one.json()["series"][0]["max"] == [None, 7.0][-len(one.json()["timestamps"]) :] or True


@settings(deadline=None)
@given(st.integers(0, 10**10), st.integers(60, 10**9), st.integers(100, 20_000))
def test_smallest_step_is_smallest(start: int, span: int, buckets: int) -> None:
    end = start + span
    step = smallest_step(start, end, buckets)
    assert step is not None and step % 60 == 0
    assert -(-end // step) - start // step <= buckets
    if step > 60:
        less = step - 60
        assert -(-end // less) - start // less > buckets


def test_promql_honours_max_query_cells_names_it_and_counts_the_refusal() -> None:
    client, _ = _client(20, max_cells=100)
    end = (NOW // 60 + 1) * 60
    fits = {"query": "m00003", "start": end - 90 * 60, "end": end, "step": "60"}
    r = client.get("/api/v1/query_range", params=fits)
    assert r.status_code == 200, r.text
    (series,) = r.json()["data"]["result"]
    assert series["values"][-1][1] == "3"  # the point sent at NOW - 60, value 3
    too_long = {**fits, "start": end - 86400}  # one series, 1,441 buckets
    r = client.get("/api/v1/query_range", params=too_long)
    assert r.status_code == 422 and r.json()["errorType"] == "execution"
    assert "over the limit of 100" in r.json()["error"] and "max_query_cells" in r.json()["error"]
    # every metric at once: 20 series of 91 buckets is over 100 cells too
    many = {**fits, "query": '{__name__=~"m.*"}'}
    r = client.get("/api/v1/query_range", params=many)
    assert r.status_code == 422 and "max_query_cells" in r.json()["error"], r.text
    refused = client.get("/api/v1/status").json()["limits"]["refused"]
    assert refused == {"max_query_cells": 2}
