"""Issue #17's ingest limits: cardinality (total series, new series per minute) refused with
a 429 naming the limit before any point is taken; points per request and JSON off the fast
path refused with a 413 naming the limit; every refusal counted per limit in
``/api/v1/status`` and ``/metrics``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.config import Settings
from minutely.errors import Backpressure
from minutely.ingest.idempotency import DUPLICATE_WINDOW, IdempotencyKeys
from minutely.limits import Refusals
from minutely.model import PointBatch
from minutely.registry import Registry
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import ARROW, NOW, arrow_body

JSON = {"content-type": "application/json"}


def _node(**settings: object) -> tuple[TestClient, Service, FakeClock]:
    clock = FakeClock(NOW)
    chosen: dict[str, object] = {"store": "none", "hot_window": 6 * 3600, **settings}
    service = Service(Settings(**chosen), clock=clock).open()  # type: ignore[arg-type]
    return (
        TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)),
        service,
        clock,
    )


def _drain(service: Service) -> None:
    while service.aggregator.drain(timeout=0):
        pass


def _metrics_body(first: int, n: int, t: float) -> bytes:
    names = np.array([f"metric.{i:06d}" for i in range(first, first + n)], dtype=object)
    batch = PointBatch.from_names(
        np.full(n, "web-001", dtype=object), names, np.full(n, t), np.ones(n)
    )
    return arrow_body(batch)


def test_200000_metric_names_in_10_requests_are_refused_past_the_total() -> None:
    # 150,000 series of ring memory at the default window (34 × 28 B + 2,846 × 8 B each)
    client, service, clock = _node(hot_window=2 * 86400, series_memory=150_000 * 23_720)
    codes, errors = [], []
    for k in range(10):
        r = client.post(
            "/api/v1/points",
            content=_metrics_body(20_000 * k, 20_000, clock() - 5),
            headers={"content-type": ARROW},
        )
        codes.append(r.status_code)
        errors.append(r.json().get("error", ""))
        _drain(service)
    assert codes == [200] * 7 + [429] * 3, errors
    assert "would make 160000, over the limit of 150000 series (max_series)" in errors[7]
    assert service.registry.n_series == 140_000  # nothing of a refused request was taken
    assert client.get("/healthz").status_code == 200
    summary = client.get("/api/v1/metrics/metric.000007/summary", params={"start": "-1h"})
    assert summary.json()["rows"][0]["count"] == 1
    limits = client.get("/api/v1/status").json()["limits"]
    assert limits["refused"] == {"max_series": 3}
    assert limits["max_series"] == 150_000
    metrics = client.get("/metrics").text
    assert 'minutely_limit_refusals_total{limit="max_series"} 3.0' in metrics


def test_new_series_per_minute_are_refused_with_the_rest_of_the_minute_to_wait() -> None:
    client, service, clock = _node(max_new_series_per_minute=50_000)
    codes, errors, retry = [], [], []
    for k in range(10):
        r = client.post(
            "/api/v1/points",
            content=_metrics_body(20_000 * k, 20_000, clock() - 5),
            headers={"content-type": ARROW},
        )
        codes.append(r.status_code)
        errors.append(r.json().get("error", ""))
        retry.append(r.headers.get("retry-after"))
        _drain(service)
    assert codes == [200, 200] + [429] * 8
    assert "over the limit of 50000 new series per minute (max_new_series_per_minute)" in errors[2]
    assert retry[2] == str(60 - 25)  # the clock is 25 s into its minute
    assert service.registry.n_series == 40_000  # nothing of a refused request was taken
    assert client.get("/healthz").status_code == 200
    summary = client.get("/api/v1/metrics/metric.000007/summary", params={"start": "-1h"})
    assert summary.json()["rows"][0]["count"] == 1
    limits = client.get("/api/v1/status").json()["limits"]
    assert limits["refused"] == {"max_new_series_per_minute": 8}
    assert limits["max_new_series_per_minute"] == 50_000
    metrics = client.get("/metrics").text
    assert 'minutely_limit_refusals_total{limit="max_new_series_per_minute"} 8.0' in metrics


def test_the_total_series_limit_holds_minute_after_minute() -> None:
    client, service, clock = _node(max_series=100_000)
    codes, last = [], ""
    for k in range(7):
        r = client.post(
            "/api/v1/points",
            content=_metrics_body(20_000 * k, 20_000, clock() - 5),
            headers={"content-type": ARROW},
        )
        codes.append(r.status_code)
        last = r.json().get("error", last)
        _drain(service)
        clock.advance(60)
    assert codes == [200] * 5 + [429] * 2
    assert "would make 120000, over the limit of 100000 series (max_series)" in last
    assert service.registry.n_series == 100_000
    # points for the series it holds are still taken
    r = client.post(
        "/api/v1/points",
        content=_metrics_body(0, 20_000, clock() - 5),
        headers={"content-type": ARROW},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 20_000


def test_series_admitted_but_not_yet_folded_count_towards_the_limit() -> None:
    client, _, _ = _node(max_series=30_000)
    ok = client.post(
        "/api/v1/points", content=_metrics_body(0, 20_000, NOW), headers={"content-type": ARROW}
    )
    assert ok.status_code == 200
    # not drained: the registry does not hold them yet, the guard does
    r = client.post(
        "/api/v1/points",
        content=_metrics_body(20_000, 20_000, NOW),
        headers={"content-type": ARROW},
    )
    assert r.status_code == 429
    assert "(max_series)" in r.json()["error"]


def test_one_request_with_more_new_series_than_a_minute_allows_is_told_to_split() -> None:
    client, _, _ = _node(max_new_series_per_minute=100)
    r = client.post(
        "/api/v1/points", content=_metrics_body(0, 101, NOW), headers={"content-type": ARROW}
    )
    assert r.status_code == 429
    assert "send its series in smaller requests" in r.json()["error"]


def test_the_protocols_are_held_to_the_cardinality_limit_too() -> None:
    client, service, _ = _node(max_new_series_per_minute=10)
    t = int(NOW) * 10**9
    lines = "\n".join(f"m{i},host=web v=1 {t}" for i in range(11)).encode()
    r = client.post("/api/v2/write", content=lines)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "35"
    assert "(max_new_series_per_minute)" in r.json()["message"]
    few = "\n".join(f"m{i},host=web v=1 {t}" for i in range(10)).encode()
    assert client.post("/api/v2/write", content=few).status_code == 204
    _drain(service)
    assert service.registry.n_series == 10


def test_points_per_request_are_limited_with_a_413_naming_the_limit() -> None:
    client, service, _ = _node(max_points_per_request=1000)
    body = _metrics_body(0, 1001, NOW)
    r = client.post("/api/v1/points", content=body, headers={"content-type": ARROW})
    assert r.status_code == 413
    assert r.json()["error"] == (
        "1001 points is over the limit of 1000 points per request (max_points_per_request):"
        " send them in smaller requests"
    )
    _drain(service)
    assert service.registry.n_series == 0
    r = client.post(
        "/api/v1/points", content=_metrics_body(0, 1000, NOW), headers={"content-type": ARROW}
    )
    assert r.status_code == 200
    assert client.get("/api/v1/status").json()["limits"]["refused"] == {"max_points_per_request": 1}


def _rows(n: int, bad_at: int | None = None) -> bytes:
    points: list[dict[str, object]] = [
        {"server": "web", "metric": f"m{i % 50}", "ts": NOW, "value": float(i)} for i in range(n)
    ]
    if bad_at is not None:
        points[bad_at]["value"] = "x"
    return json.dumps(points).encode()


def test_json_that_misses_the_fast_path_has_a_lower_bound() -> None:
    client, _, _ = _node(max_slow_json_bytes=1 << 20)
    big = _rows(20_000)
    assert len(big) > 1 << 20
    r = client.post("/api/v1/points", content=big, headers=JSON)  # columnar-typed: fast path
    assert r.status_code == 200 and r.json()["accepted"] == 20_000
    bad = _rows(20_000, bad_at=12_345)
    r = client.post("/api/v1/points", content=bad, headers=JSON)
    assert r.status_code == 413
    error = r.json()["error"]
    assert (
        f"body of {len(bad)} bytes is over the limit of 1048576 bytes (max_slow_json_bytes)"
        in error
    )
    small = client.post("/api/v1/points", content=_rows(100, bad_at=7), headers=JSON)
    assert small.status_code == 200
    want = {"index": 7, "reason": "value: not a number ('x')", "code": "bad_value"}
    assert small.json()["errors"] == [want]
    assert client.get("/api/v1/status").json()["limits"]["refused"] == {"max_slow_json_bytes": 1}


def test_a_body_over_max_body_bytes_is_counted_by_its_limit() -> None:
    client, _, _ = _node(max_body_bytes=1000)
    r = client.post("/api/v1/points", content=_rows(100), headers=JSON)
    assert r.status_code == 413
    assert "over the limit of 1000 bytes" in r.json()["error"]
    assert client.get("/api/v1/status").json()["limits"]["refused"] == {"max_body_bytes": 1}


def test_an_idempotency_key_over_256_bytes_is_a_400_naming_it_and_counted() -> None:
    client, _, _ = _node()
    r = client.post(
        "/api/v1/points", content=_rows(1), headers={**JSON, "idempotency-key": "k" * 257}
    )
    assert r.status_code == 400
    assert (
        r.json()["error"] == "parameter 'Idempotency-Key': is 257 bytes; it must be 1 to 256 bytes"
    )
    refused = client.get("/api/v1/status").json()["limits"]["refused"]
    assert refused == {"idempotency_key_bytes": 1}


def test_a_query_over_the_cells_is_counted() -> None:
    client, service, _ = _node(max_query_cells=10)
    client.post("/api/v1/points", content=_rows(50), headers=JSON)
    _drain(service)
    assert client.get("/api/v1/servers/web/series").status_code == 400
    assert client.get("/api/v1/status").json()["limits"]["refused"] == {"max_query_cells": 1}


@pytest.mark.parametrize(
    "memory,window,expected", [("12GB", "2d", 543_208), ("1GB", "6h", 301_612)]
)
def test_the_default_series_limit_follows_the_ring_memory_model(
    memory: str, window: str, expected: int
) -> None:
    from minutely import config

    s = config.load(environ={"MINUTELY_SERIES_MEMORY": memory, "MINUTELY_HOT_WINDOW": window})
    assert s.series_limit == expected
    assert config.load(environ={"MINUTELY_MAX_SERIES": "5"}).series_limit == 5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 12), st.integers(0, 40)), min_size=0, max_size=60),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_count_new_is_what_interning_then_adds(
    batches: list[list[tuple[int, int]]], sparse: bool
) -> None:
    registry = Registry(dense_floor_cells=0 if sparse else 1 << 22, dense_cells_per_series=0)
    for pairs in batches:
        servers = np.array([f"s{s}" for s, _ in pairs], dtype=object)
        metrics = np.array([f"m{m}" for _, m in pairs], dtype=object)
        batch = PointBatch.from_names(servers, metrics, np.zeros(len(pairs)), np.zeros(len(pairs)))
        before = registry.n_series
        predicted = registry.count_new(batch)
        assert registry.n_series == before  # counting interns nothing
        registry.series_ids(batch)
        assert registry.n_series - before == predicted


def test_remembered_idempotency_keys_are_bounded_in_bytes_not_only_in_count() -> None:
    clock = FakeClock(NOW)
    keys = IdempotencyKeys(max_bytes=10 * (256 + 32 + 200), clock=clock)
    for i in range(10):
        keys.check(f"{i:03d}".ljust(256, "k"), b"body")
    with pytest.raises(Backpressure, match="bytes of Idempotency-Keys seen within the last") as e:
        keys.check("x".ljust(256, "k"), b"body")
    assert f"(the limit idempotency_keys is {10 * (256 + 32 + 200)} bytes)" in str(e.value)
    refusals = Refusals()
    refusals.note(e.value)  # what the app does with it: counted by the limit's name
    assert refusals.snapshot() == {"idempotency_keys": 1}
    keys.check("000".ljust(256, "k"), b"body")  # a retry of a remembered key still answers
    clock.advance(DUPLICATE_WINDOW + 1)  # the window passes: the keys are forgotten
    for i in range(10):
        keys.check(f"new{i:03d}".ljust(256, "k"), b"body")
    assert len(keys) == 10


def test_too_many_idempotency_keys_at_once_name_the_limit_and_its_value() -> None:
    keys = IdempotencyKeys(max_keys=2, clock=FakeClock(NOW))
    keys.check("a", b"body")
    keys.check("b", b"body")
    with pytest.raises(Backpressure, match=r"the limit idempotency_keys is 2 keys\)") as e:
        keys.check("c", b"body")
    assert e.value.limit == "idempotency_keys" and e.value.retry_after >= 1.0
