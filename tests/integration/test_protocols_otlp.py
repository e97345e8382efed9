"""The OpenTelemetry SDK's OTLP/HTTP exporter (protobuf) exports into a real ``minutely
serve``; Q3 then answers what numpy says of the values exported."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture
def minutely(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path, "--store", "none", "--hot-window", "6h")
    yield server
    stop_server(server)


def test_sdk_exporter_gauges_and_counters(minutely: Server) -> None:
    exporter = OTLPMetricExporter(endpoint=f"{minutely.url}/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create({"host.name": "otel-1", "service.name": "shop"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("tests")
    gauge = meter.create_gauge("queue.depth")
    counter = meter.create_counter("orders")
    rng = np.random.default_rng(11)
    depths = np.round(rng.uniform(0, 50, 12), 2)
    increments = rng.integers(1, 20, 12)
    start = time.time()
    for depth, inc in zip(depths.tolist(), increments.tolist(), strict=True):
        gauge.set(depth, {"queue": "orders"})
        counter.add(inc)
        assert provider.force_flush(10_000)  # one export: one point of each
    provider.shutdown()  # the reader exports once more as it shuts down: the last values
    depths = np.append(depths, depths[-1])
    increments = np.append(increments, 0)
    lo, hi = int(start // 60 * 60), int(time.time() // 60 * 60 + 60)
    deadline = time.monotonic() + 30
    rows: dict[str, dict[str, float]] = {}
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{minutely.url}/api/v1/servers/otel-1/summary", params={"start": lo, "end": hi}
        )
        rows = {row.pop("metric"): row for row in r.json().get("rows", [])}
        if sum(row["count"] for row in rows.values()) >= 26:
            break
        time.sleep(0.1)
    cumulative = np.cumsum(increments).astype(np.float64)  # what a cumulative sum exports
    row = rows['queue.depth{queue="orders"}']
    assert row["count"] == depths.size
    assert row["min"] == depths.min() and row["max"] == depths.max()
    assert row["avg"] == pytest.approx(depths.mean(), rel=1e-12)
    # a monotonic sum is a counter: answered as its rate, the growth after its first export
    rates = httpx.get(
        f"{minutely.url}/api/v1/servers/otel-1/summary",
        params={"start": lo, "end": hi, "fn": "rate", "metric": "orders"},
    ).json()["rows"]
    (orders,) = rates
    assert orders["kind"] == "counter" and orders["count"] == cumulative.size
    growth = cumulative[-1] - cumulative[0]
    assert orders["rate"] == pytest.approx(growth / (hi - lo), rel=1e-12)
