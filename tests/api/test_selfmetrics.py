"""``GET /metrics``: parsed with prometheus-client's own parser, every figure checked against
what the requests did (the points sent, refused and folded; the routes asked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from minutely.api import create_app, create_ingest_app
from minutely.api.selfmetrics import PROTOCOLS
from minutely.config import Settings
from minutely.ingest.validate import REASONS
from minutely.service import IngestNode, Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import NOW, ingest, make_points


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"sample {key} twice"
            samples[key] = s.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_points_accepted_and_rejected_per_protocol(client: TestClient, service: Service) -> None:
    pts = make_points(n=1000)
    ingest(client, service, pts)  # Arrow
    body = [
        {"server": "a", "metric": "m", "ts": NOW, "value": 1.0},
        {"server": "a", "metric": "m", "ts": NOW, "value": "x"},
        {"server": "", "metric": "m", "ts": NOW, "value": 1.0},
    ]
    assert client.post("/api/v1/points", json=body).json()["rejected"] == 2
    assert (
        client.post(
            "/api/v1/points", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/write", content=b"cpu,host=a v=1 %d\ncpu,host=a v=x" % (NOW * 1e9)
        ).status_code
        == 400
    )
    big = b"0" * (service.max_body_bytes + 1)
    assert (
        client.post(
            "/api/v1/points", content=big, headers={"content-type": "application/json"}
        ).status_code
        == 413
    )
    samples = scrape(client)
    assert value(samples, "minutely_points_accepted_total", protocol="arrow") == 1000
    assert value(samples, "minutely_points_accepted_total", protocol="json") == 1
    rejected = {
        labels: v for (n, labels), v in samples.items() if n == "minutely_points_rejected_total"
    }
    # every protocol (Graphite's listener is off here) × every code, 0 where none: a fixed set
    http = set(PROTOCOLS) - {"graphite"}
    assert {dict(k)["protocol"] for k in rejected} == http
    assert len(rejected) == len(http) * len(REASONS)
    by_reason = {dict(k)["reason"]: v for k, v in rejected.items() if dict(k)["protocol"] == "json"}
    assert by_reason == {**dict.fromkeys(REASONS, 0), "bad_value": 1, "server_missing": 1}
    assert value(samples, "minutely_ingest_requests_total", protocol="json") == 1
    assert (
        value(samples, "minutely_ingest_refused_total", protocol="json", reason="undecodable") == 1
    )
    assert value(samples, "minutely_ingest_refused_total", protocol="json", reason="too_large") == 1
    assert value(samples, "minutely_points_accepted_total", protocol="influx") == 1
    assert (
        value(samples, "minutely_points_rejected_total", protocol="influx", reason="malformed") == 1
    )
    assert value(samples, "minutely_points_accepted_total", protocol="otlp") == 0
    # the fold: every accepted point, in the batches the aggregator folded
    assert value(samples, "minutely_folded_points_total", copy="", partition="") == 1000
    assert value(samples, "minutely_fold_seconds_count", copy="", partition="") >= 1
    assert value(samples, "minutely_fold_seconds_sum", copy="", partition="") > 0
    assert value(samples, "minutely_fold_failing", copy="", partition="") == 0
    # the two points taken after the drain are still on the bus
    backlog = sum(v for (n, _), v in samples.items() if n == "minutely_bus_backlog_messages")
    assert backlog == 2
    status = client.get("/api/v1/status").json()
    assert value(samples, "minutely_series") == status["series"]
    assert value(samples, "minutely_hot_ring_bytes") == status["hot"]["bytes"] > 0


def test_backpressure_is_counted_with_its_reason(service: Service) -> None:
    small = Service(Settings(store="none", bus_max_bytes=1), clock=FakeClock(NOW)).open()
    with TestClient(create_app(small, manage_lifecycle=False, access=TESTSERVER)) as c:
        body = [{"server": "a", "metric": "m", "ts": NOW, "value": 1.0}] * 10
        codes = [c.post("/api/v1/points", json=body).status_code for _ in range(3)]
        assert 429 in codes
        samples = scrape(c)
    refused = value(
        samples, "minutely_ingest_refused_total", protocol="json", reason="backpressure"
    )
    assert refused == codes.count(429)


def test_request_durations_per_route_template(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(n=100))
    for server in ("web-000", "web-001", "web-002"):
        assert client.get(f"/api/v1/servers/{server}/series?start=-1h").status_code == 200
    assert client.get("/api/v1/servers/nobody/series").status_code == 404
    samples = scrape(client)
    template = "/api/v1/servers/{name}/series"
    ok = value(
        samples,
        "minutely_http_request_duration_seconds_count",
        handler=template,
        method="GET",
        code="200",
    )
    assert ok == 3
    missing = value(
        samples,
        "minutely_http_request_duration_seconds_count",
        handler=template,
        method="GET",
        code="404",
    )
    assert missing == 1
    assert (
        value(
            samples,
            "minutely_http_request_duration_seconds_sum",
            handler=template,
            method="GET",
            code="200",
        )
        > 0
    )
    assert not any("web-000" in str(labels) for _, labels in samples)  # no raw paths
    posts = value(
        samples,
        "minutely_http_request_duration_seconds_count",
        handler="/api/v1/points",
        method="POST",
        code="200",
    )
    assert posts == 1


def test_store_writer_figures(tmp_path: Path) -> None:
    settings = Settings(store="chdb", data_dir=str(tmp_path), bus_max_bytes=4 << 20)
    service = Service(settings, clock=FakeClock(NOW)).open()
    try:
        with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as c:
            ingest(c, service, make_points(n=500))
            service.ring.hand_on_live()
            assert service.writer is not None
            written = service.writer.flush()
            assert written > 0
            samples = scrape(c)
    finally:
        service.close()
    assert value(samples, "minutely_store_rows_total") == written
    assert value(samples, "minutely_store_insert_seconds_count") >= 1
    assert value(samples, "minutely_store_insert_seconds_sum") > 0
    assert value(samples, "minutely_store_write_errors_total") == 0
    assert value(samples, "minutely_store_pending_rows") == 0
    assert value(samples, "minutely_store_failing") == 0


def test_openmetrics_when_asked(client: TestClient) -> None:
    r = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")


def test_each_app_has_its_own_registry(service: Service) -> None:
    apps = [
        TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) for _ in range(2)
    ]
    with apps[0] as first, apps[1] as second:
        body = [{"server": "a", "metric": "m", "ts": NOW, "value": 1.0}]
        first.post("/api/v1/points", json=body)
        assert value(scrape(first), "minutely_points_accepted_total", protocol="json") == 1
        assert value(scrape(second), "minutely_points_accepted_total", protocol="json") == 0


def test_a_status_that_fails_still_answers(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away() -> dict[str, object]:
        raise ConnectionError("broker away")

    with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as c:
        monkeypatch.setattr(service, "status", away)
        samples = scrape(c)
    assert value(samples, "minutely_status_up") == 0
    assert value(samples, "minutely_points_accepted_total", protocol="json") == 0


@pytest.fixture
def ingest_node() -> Iterator[IngestNode]:
    from minutely.bus import MemoryBus

    yield IngestNode(
        Settings(bus="nats://unused:4222"), clock=FakeClock(NOW), bus=MemoryBus(2, 1 << 20)
    )


def test_an_ingest_node_has_metrics_too(ingest_node: IngestNode) -> None:
    with TestClient(create_ingest_app(ingest_node, manage_lifecycle=False, access=TESTSERVER)) as c:
        body = json.dumps([{"server": "a", "metric": "m", "ts": NOW, "value": 1.0}])
        c.post("/api/v1/points", content=body, headers={"content-type": "application/json"})
        samples = scrape(c)
    assert value(samples, "minutely_points_accepted_total", protocol="json") == 1
    assert (
        value(samples, "minutely_bus_backlog_messages", copy="", partition="0")
        + value(samples, "minutely_bus_backlog_messages", copy="", partition="1")
        == 1
    )
