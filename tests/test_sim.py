"""The fleet simulator: deterministic values, the Arrow wire, and the sender's retry contract."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from minutely.model import ARROW_SCHEMA, PointBatch
from minutely.sim import (
    EPOCH,
    MIN_SPACING,
    Fleet,
    Kind,
    Resolution,
    SendError,
    SendStats,
    encode_arrow,
    log_progress,
    run,
    send,
)
from minutely.testing.clock import FakeClock

T0 = 1_750_000_000  # 2025-06-15 15:06:40 UTC


def grid(batch: PointBatch, rows: int) -> np.ndarray:
    return batch.value.reshape(rows, -1)


def decode(body: bytes) -> PointBatch:
    return PointBatch.from_arrow(pa.ipc.open_stream(body).read_next_batch())


# -- names -----------------------------------------------------------------------------------------


def test_names_are_unique_realistic_and_stable() -> None:
    fleet = Fleet(25, 300, seed=1)
    servers, metrics = list(fleet.server_names), list(fleet.metric_names)
    assert len(set(servers)) == 25
    assert len(set(metrics)) == 300
    assert servers[:4] == ["web-001", "web-002", "web-003", "api-001"]
    assert {"db-001", "cache-001", "worker-001", "queue-001"} <= set(servers)
    assert all(re.fullmatch(r"[a-z]+-\d{3}", s) for s in servers)
    assert metrics[:2] == ["cpu.user", "cpu.system"]
    assert {"mem.used_pct", "disk.sda.read_bytes", "net.eth0.rx_bytes", "load.1m"} <= set(metrics)
    assert {"disk.sdb.read_bytes", "app.requests.0", "app.requests.3"} <= set(metrics)
    assert all(re.fullmatch(r"[a-z][a-z0-9_.]*", m) for m in metrics)
    # A smaller fleet is a prefix of a larger one; the seed changes values, not names.
    small = Fleet(10, 40, seed=2)
    assert list(small.server_names) == servers[:10]
    assert list(small.metric_names) == metrics[:40]
    assert len(fleet) == 25 * 300


def test_names_stay_unique_at_seed_scale() -> None:
    assert len(set(Fleet(1, 2000).metric_names)) == 2000
    servers = Fleet(5000, 1).server_names
    assert len(set(servers)) == 5000
    assert servers[0] == "web-0001"


def test_kinds() -> None:
    fleet = Fleet(1, 60)
    assert fleet.kind("cpu.user") is Kind.PERCENT
    assert fleet.kind("net.eth0.rx_bytes") is Kind.COUNTER
    assert fleet.kind("load.1m") is Kind.GAUGE
    assert set(fleet.metric_kinds) == set(Kind)


def test_rejects_an_empty_fleet() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        Fleet(0, 10)


# -- values ----------------------------------------------------------------------------------------


def test_same_values_however_the_range_is_chunked() -> None:
    fleet = Fleet(7, 50, seed=5)
    whole = fleet.batch(T0, 90)
    parts = [fleet.batch(T0, 25), fleet.batch(T0 + 25, 65)]
    np.testing.assert_array_equal(whole.value, np.concatenate([p.value for p in parts]))
    np.testing.assert_array_equal(whole.ts, np.concatenate([p.ts for p in parts]))


def test_same_values_whichever_servers_are_asked_for() -> None:
    fleet = Fleet(7, 50, seed=5)
    whole = grid(fleet.batch_by_series(T0, 30), 7 * 50)
    groups = [fleet.batch_by_series(T0, 30, servers=s) for s in (slice(0, 3), slice(3, 7))]
    np.testing.assert_array_equal(whole, np.concatenate([grid(g, len(g) // 30) for g in groups]))
    odd = fleet.batch_by_series(T0, 30, servers=slice(1, 7, 2))
    assert list(odd.server_names) == list(fleet.server_names[1::2])
    np.testing.assert_array_equal(grid(odd, 150), whole.reshape(7, 50, 30)[1::2].reshape(150, 30))


def test_values_depend_on_seed_series_and_time_only() -> None:
    a = Fleet(7, 50, seed=5)
    same = grid(Fleet(7, 50, seed=5).batch(T0, 20), 20)
    np.testing.assert_array_equal(grid(a.batch(T0, 20), 20), same)
    # A larger fleet holds the same series with the same values.
    larger = grid(Fleet(9, 80, seed=5).batch(T0, 20), 20).reshape(20, 9, 80)[:, :7, :50]
    np.testing.assert_array_equal(larger.reshape(20, 350), same)
    other_seed = grid(Fleet(7, 50, seed=6).batch(T0, 20), 20)
    assert np.mean(other_seed != same) > 0.5


def test_orders_time_major_and_series_major() -> None:
    fleet = Fleet(3, 4)
    by_time, by_series = fleet.batch(T0, 5), fleet.batch_by_series(T0, 5)
    series_t = by_time.server_codes * 4 + by_time.metric_codes
    assert np.all(np.diff(by_time.ts) >= 0)
    np.testing.assert_array_equal(series_t, np.tile(np.arange(12), 5))
    series_s = by_series.server_codes * 4 + by_series.metric_codes
    np.testing.assert_array_equal(series_s, np.repeat(np.arange(12), 5))
    np.testing.assert_array_equal(by_series.ts, np.tile(np.arange(T0, T0 + 5.0), 12))
    np.testing.assert_array_equal(grid(by_time, 5).T, grid(by_series, 12))
    assert by_time.server_codes.dtype == np.int32 and by_time.metric_codes.dtype == np.int32


def test_empty_requests_give_empty_batches() -> None:
    fleet = Fleet(3, 4)
    assert len(fleet.batch(T0, 0)) == 0
    assert len(fleet.batch(T0, 5, servers=slice(2, 2))) == 0


def kinds_mask(fleet: Fleet, kind: Kind, servers: int) -> np.ndarray:
    return np.tile(np.array([k is kind for k in fleet.metric_kinds]), servers)


def test_counters_never_decrease() -> None:
    fleet = Fleet(2, 100, seed=9)
    counters = kinds_mask(fleet, Kind.COUNTER, 2)
    # Six hours at 1 Hz across midnight, and 10 minutes at the closest spacing allowed.
    day = grid(fleet.batch_by_series(T0 - T0 % 86_400 - 10_800, 21_600), 200)[counters]
    assert np.all(np.diff(day, axis=1) >= 0)
    assert np.all(day[:, -1] > day[:, 0])
    close = T0 + np.arange(6_000) * MIN_SPACING
    fine = grid(fleet.at(close, series_major=True), 200)[counters]
    assert np.all(np.diff(fine, axis=1) >= 0)
    assert np.all(day == np.round(day)), "counters are whole"
    # Rates vary: a day's per-second increments are not constant.
    assert np.all(np.std(np.diff(day[:, ::60], axis=1), axis=1) > 0)
    # Long before the counters' epoch they read 0.
    assert np.all(grid(fleet.at([EPOCH - 40 * 86_400, EPOCH - 31 * 86_400]), 2)[:, counters] == 0)


def test_percentages_in_range_and_every_value_finite() -> None:
    fleet = Fleet(10, 120, seed=3)
    values = grid(fleet.batch(T0, 1_800), 1_800)
    assert np.all(np.isfinite(values))
    assert np.all(values >= 0)
    pct = values[:, kinds_mask(fleet, Kind.PERCENT, 10)]
    assert pct.size and pct.min() >= 0 and pct.max() <= 100
    assert pct.max() == 100, "spikes reach the ceiling sometimes"


def test_gauges_follow_the_day_and_spike_now_and_then() -> None:
    fleet = Fleet(20, 1)  # cpu.user only
    day = grid(fleet.batch_by_series(T0 - T0 % 86_400, 86_400), 20)
    hourly = day.reshape(20, 24, 3_600).mean(axis=2)
    # Busiest around 14:00 UTC, quietest around 02:00.
    assert np.all(hourly[:, 11:17].mean(axis=1) > hourly[:, [0, 1, 2, 3, 4, 23]].mean(axis=1))
    # Spikes: one-second jumps well above both neighbours, about one per series per 30 minutes.
    centre, around = day[:, 1:-1], (day[:, :-2] + day[:, 2:]) / 2
    spikes = int(np.sum(centre - around > 10))
    assert 20 * 48 / 2 < spikes < 20 * 48 * 2


def test_each_metric_is_reported_at_its_agents_resolution() -> None:
    fleet = Fleet(1, 2000)
    assert fleet.resolution("cpu.user") is Resolution.HUNDREDTHS
    assert fleet.resolution("load.1m") is Resolution.HUNDREDTHS
    assert fleet.resolution("temp.cpu_c") is Resolution.TENTHS
    assert fleet.resolution("mem.used_bytes") is Resolution.PAGES
    assert fleet.resolution("proc.count") is Resolution.WHOLE
    assert fleet.resolution("app.latency_ms.7") is Resolution.FULL
    kinds, resolutions = np.array(fleet.metric_kinds), np.array(fleet.metric_resolutions)
    assert np.all(resolutions[kinds == Kind.COUNTER] == Resolution.WHOLE)
    assert 0.04 < np.mean(resolutions == Resolution.FULL) < 0.08
    with pytest.raises(KeyError, match="no metric"):
        fleet.resolution("nope")


def test_values_are_the_unrounded_ones_rounded_at_each_resolution() -> None:
    # Ground truth: the same fleet at full precision, rounded by numpy.
    fleet, precise = Fleet(6, 300, seed=4), Fleet(6, 300, seed=4, full_precision=True)
    assert set(precise.metric_resolutions) == {Resolution.WHOLE, Resolution.FULL}
    got = grid(fleet.batch_by_series(T0, 1_200), 6 * 300)
    raw = grid(precise.batch_by_series(T0, 1_200), 6 * 300)
    resolutions = np.tile(np.array(fleet.metric_resolutions), 6)
    decimals = {Resolution.HUNDREDTHS: 2, Resolution.TENTHS: 1, Resolution.WHOLE: 0}
    for resolution in Resolution:
        rows = resolutions == resolution
        if resolution in decimals:
            want = np.round(raw[rows], decimals[resolution])
        elif resolution is Resolution.PAGES:
            want = np.round(raw[rows] / 4096) * 4096
        else:
            want = raw[rows]
        assert rows.any()
        np.testing.assert_array_equal(got[rows].view(np.uint64), want.view(np.uint64))
    # The unrounded values are not decimals, and rounding changed nearly every gauge's.
    full = raw[resolutions == Resolution.FULL]
    assert np.mean(np.round(full, 6) != full) > 0.99
    gauges = ~np.tile(np.array([k is Kind.COUNTER for k in fleet.metric_kinds]), 6)
    rounded = gauges & (resolutions != Resolution.FULL)
    assert np.mean(got[rounded] != raw[rounded]) > 0.9
    # Every value is positive zero or above: rounding made no -0.0.
    assert not np.signbit(got).any()
    assert "full_precision=True" in repr(precise)


# -- the wire --------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_encode_arrow_round_trips(compression: str | None) -> None:
    batch = Fleet(4, 30, seed=2).batch_by_series(T0, 10, servers=slice(1, 3))
    table = pa.ipc.open_stream(encode_arrow(batch, compression=compression)).read_all()
    assert table.schema.equals(ARROW_SCHEMA)
    assert table.num_rows == len(batch) == 2 * 30 * 10
    assert table.column("server").to_pylist() == list(batch.server_names[batch.server_codes])
    assert table.column("metric").to_pylist() == list(batch.metric_names[batch.metric_codes])
    np.testing.assert_array_equal(table.column("ts").to_numpy(), batch.ts)
    np.testing.assert_array_equal(table.column("value").to_numpy(), batch.value)
    chunk = table.column("server").chunk(0)
    assert chunk.dictionary.to_pylist() == ["web-002", "web-003"]


# -- the sender against a real HTTP server ---------------------------------------------------------


@dataclass
class Script:
    """What the test server answers: queued (status, retry-after) replies, then 200s."""

    replies: list[tuple[int, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    accepted: int = 0


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[Script]]]:
    current = [Script()]

    async def points(request: Request) -> Response:
        script = current[0]
        body = await request.body()
        script.bodies.append(body)
        assert request.headers["content-type"] == "application/vnd.apache.arrow.stream"
        if script.replies:
            status, retry_after = script.replies.pop(0)
            if status in (429, 503):
                headers = {"Retry-After": retry_after}
                return JSONResponse({"error": "busy"}, status_code=status, headers=headers)
            return JSONResponse({"error": f"bad body ({status})"}, status_code=status)
        n = pa.ipc.open_stream(body).read_all().num_rows
        script.accepted += n
        return JSONResponse({"accepted": n, "rejected": 0, "errors": []})

    app = Starlette(routes=[Route("/api/v1/points", points, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none", http="h11"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    port = uv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/", current
    uv.should_exit = True
    thread.join(timeout=10)


def bodies_of(fleet: Fleet, pieces: int) -> list[bytes]:
    return [encode_arrow(fleet.batch(T0 + 10 * i, 10)) for i in range(pieces)]


@pytest.mark.parametrize("status", [429, 503])
def test_send_resends_after_retry_after_and_counts_each_point_once(
    server: tuple[str, list[Script]], status: int
) -> None:
    url, current = server
    current[0] = script = Script(replies=[(status, "0.2")])
    bodies = bodies_of(Fleet(3, 20), 3)
    started = time.monotonic()
    stats = asyncio.run(send(url, bodies, concurrency=1))
    assert time.monotonic() - started >= 0.2
    assert script.bodies[0] == script.bodies[1] == bodies[0], "the refused body is resent as is"
    assert len(script.bodies) == 4
    assert stats.accepted == script.accepted == 3 * 3 * 20 * 10
    assert (stats.rejected, stats.requests, stats.retries) == (0, 3, 1)
    assert stats.bytes == sum(map(len, bodies))
    assert stats.elapsed >= 0.2 and stats.points_per_second > 0


def test_send_takes_an_async_iterator_and_many_in_flight(server: tuple[str, list[Script]]) -> None:
    url, current = server
    current[0] = script = Script(replies=[(429, "0"), (429, "0"), (503, "0")])
    fleet = Fleet(2, 10)

    async def produce() -> AsyncIterator[bytes]:
        for body in bodies_of(fleet, 8):
            await asyncio.sleep(0)
            yield body

    reports: list[SendStats] = []
    stats = asyncio.run(send(url, produce(), concurrency=3, progress=reports.append))
    assert stats.accepted == script.accepted == 8 * 2 * 10 * 10
    assert (stats.requests, stats.retries) == (8, 3)
    assert reports and reports[-1] is stats


def test_send_raises_the_servers_message_on_a_bad_request(
    server: tuple[str, list[Script]],
) -> None:
    url, current = server
    current[0] = Script(replies=[(400, "")])
    with pytest.raises(SendError, match=r"HTTP 400: bad body \(400\)") as caught:
        asyncio.run(send(url, bodies_of(Fleet(1, 1), 1)))
    assert caught.value.status == 400


# -- the sender against fakes ----------------------------------------------------------------------


def test_send_retries_transport_errors_a_bounded_number_of_times() -> None:
    failures = [2]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures[0]:
            failures[0] -= 1
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"accepted": 5, "rejected": 1, "errors": ["x: nan"]})

    stats = asyncio.run(
        send("http://sim", [b"body"], transport=httpx.MockTransport(handler), min_backoff=0.001)
    )
    assert (stats.accepted, stats.rejected, stats.retries, stats.errors) == (5, 1, 2, ["x: nan"])

    failures[0] = 10
    with pytest.raises(SendError, match="failed 3 times") as caught:
        asyncio.run(
            send(
                "http://sim",
                [b"body"],
                transport=httpx.MockTransport(handler),
                max_transport_retries=2,
                min_backoff=0.001,
            )
        )
    assert caught.value.status is None


@dataclass
class Collector:
    """A fake ingest endpoint: decodes each body and keeps what it held."""

    clock: FakeClock
    per_request_seconds: float = 0.0
    batches: list[PointBatch] = field(default_factory=list)
    declared: list[Any] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/kinds":
            self.declared.append(json.loads(request.content))
            return httpx.Response(200, json={"declared": 1, "changed": 1})
        batch = decode(request.content)
        self.batches.append(batch)
        self.clock.now += self.per_request_seconds
        return httpx.Response(200, json={"accepted": len(batch), "rejected": 0, "errors": []})

    def points(self) -> list[tuple[str, str, float]]:
        return [
            (str(b.server_names[s]), str(b.metric_names[m]), float(t))
            for b in self.batches
            for s, m, t in zip(b.server_codes, b.metric_codes, b.ts, strict=True)
        ]


def simulate(fleet: Fleet, clock: FakeClock, collector: Collector, **options: Any) -> SendStats:
    return asyncio.run(
        run(
            "http://sim",
            fleet,
            clock=clock,
            sleep=clock.sleep,
            transport=httpx.MockTransport(collector),
            progress=lambda stats: None,
            **options,
        )
    )


def expected_points(fleet: Fleet, stamps: np.ndarray) -> set[tuple[str, str, float]]:
    return {
        (str(s), str(m), float(t))
        for s in fleet.server_names
        for m in fleet.metric_names
        for t in stamps
    }


def test_run_backfills_then_sends_live_every_second_exactly_once() -> None:
    fleet, clock = Fleet(3, 5), FakeClock(T0 + 0.5)
    collector = Collector(clock)
    stats = simulate(fleet, clock, collector, backfill=30, duration=10)
    points = collector.points()
    assert len(points) == len(set(points)) == stats.accepted
    assert set(points) == expected_points(fleet, np.arange(T0 - 29, T0 + 11.0))
    assert stats.latest_ts == T0 + 10
    # Live: one request per second, each stamped with the second it was sent in.
    live = collector.batches[-10:]
    assert [set(b.ts) for b in live] == [{T0 + i + 1.0} for i in range(10)]
    assert clock.now >= T0 + 10


def test_run_declares_the_fleets_counters_first() -> None:
    fleet, clock = Fleet(2, 100), FakeClock(T0 + 0.5)
    collector = Collector(clock)
    simulate(fleet, clock, collector, backfill=5, duration=0)
    counters = [str(m) for m in fleet.metric_names if fleet.kind(str(m)) is Kind.COUNTER]
    assert counters and "app.requests" in counters and "cpu.user" not in counters
    assert collector.declared == [{"counter": counters}]


def test_run_fills_the_gap_while_the_backfill_was_sent() -> None:
    fleet, clock = Fleet(4, 10), FakeClock(T0 + 0.25)
    collector = Collector(clock, per_request_seconds=3.0)
    stats = simulate(fleet, clock, collector, backfill=60, duration=5, points_per_request=50)
    points = collector.points()
    assert len(points) == len(set(points)) == stats.accepted
    assert all(len(b) <= 50 for b in collector.batches)
    first, last = min(p[2] for p in points), max(p[2] for p in points)
    assert first == T0 - 59
    assert set(points) == expected_points(fleet, np.arange(first, last + 1))
    assert last >= T0 + 140  # 48 backfill requests took 3 s each: the live part caught up


def test_run_spaces_points_by_the_rate() -> None:
    fleet, clock = Fleet(2, 3), FakeClock(T0)
    collector = Collector(clock)
    simulate(fleet, clock, collector, rate=4, backfill=2, duration=2)
    stamps = sorted({p[2] for p in collector.points()})
    np.testing.assert_allclose(stamps, T0 - 2 + np.arange(16) * 0.25)


def test_run_rejects_rates_that_would_break_counters() -> None:
    with pytest.raises(ValueError, match="rate"):
        asyncio.run(run("http://sim", Fleet(1, 1), rate=11, duration=1))


def test_log_progress_reports_rate_and_lag(caplog: pytest.LogCaptureFixture) -> None:
    report = log_progress(clock=lambda: T0 + 3.0)
    with caplog.at_level(logging.INFO, logger="minutely.sim"):
        report(SendStats(accepted=900, rejected=100, requests=2, elapsed=2.0, latest_ts=T0 + 1))
    assert caplog.messages == [
        "500 points/s, 900 accepted, 100 rejected, 0 retries, 2 requests, 0.0 MB, 2.0 s behind"
    ]
