"""Prometheus remote_write 1.0: requests built as Prometheus builds them (the prompb messages,
snappy block format, its headers), read back through Q3 and compared with numpy."""

from __future__ import annotations

import struct

import cramjam
import numpy as np
import pytest

from minutely.ingest.labels import LabelMapping
from minutely.ingest.remote_write import (
    STALE_NAN_BITS,
    WriteRequest,
    decode_remote_write,
)
from minutely.ingest.series import Limits
from tests.ingest.helpers import rows
from tests.ingest.protocol_helpers import NOW, drain, serving, summary, truth

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "Prometheus/2.42.0",
}
STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def write_request(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    """A snappy-compressed WriteRequest, labels sorted by name as Prometheus sends them."""
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name in sorted(labels):
            ts.labels.add(name=name, value=labels[name])
        for ms, value in samples:
            ts.samples.add(value=value, timestamp=ms)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def test_samples_answer_through_q3_as_numpy_says() -> None:
    rng = np.random.default_rng(1)
    start = NOW - 3600
    stamps = (start + np.sort(rng.uniform(0, 3500, 200))) * 1000
    values = np.round(rng.normal(50, 10, (3, 200)), 3)
    series = []
    for i, mode in enumerate(["idle", "user", "system"]):
        labels = {"__name__": "node_cpu", "instance": "web-1:9100", "job": "node", "mode": mode}
        series.append(
            (labels, list(zip(stamps.astype(np.int64).tolist(), values[i].tolist(), strict=True)))
        )
    with serving() as (service, client):
        r = client.post("/api/v1/write", content=write_request(series), headers=HEADERS)
        assert r.status_code == 204, r.text
        drain(service)
        got = summary(client, "web-1", start, NOW + 60)
    for i, mode in enumerate(["idle", "user", "system"]):
        want = truth(values[i])
        row = got[f'node_cpu{{job="node",mode="{mode}"}}']
        assert row["count"] == want["count"]
        assert row["min"] == want["min"] and row["max"] == want["max"]
        assert row["avg"] == pytest.approx(want["avg"], rel=1e-12)


def test_stale_markers_dropped_bad_samples_rejected_good_kept() -> None:
    ms = int(NOW * 1000) - 60_000
    series = [
        ({"__name__": "up", "instance": "web-1:9100"}, [(ms, 1.0), (ms + 1, STALE)]),
        ({"__name__": "up", "instance": "web-2:9100"}, [(ms, float("nan")), (ms, 2.0)]),
        ({"__name__": "up", "job": "no-instance"}, [(ms, 3.0)]),
    ]
    with serving() as (service, client):
        r = client.post("/api/v1/write", content=write_request(series), headers=HEADERS)
        assert r.status_code == 400
        assert "accepted 2 points, rejected 2" in r.text
        assert "point 2: series 'up': value: not finite (nan)" in r.text
        assert "point 4: series 'up{job=\"no-instance\"}': server: no label of" in r.text
        counts = client.get("/api/v1/ingest/protocols").json()["remote_write"]
        assert counts == {"requests": 1, "accepted": 2, "rejected": 2, "dropped": 1}
        drain(service)
        assert sorted(service.server_names()) == ["web-1", "web-2"]


def test_decoder_keeps_exact_milliseconds() -> None:
    body = cramjam.snappy.decompress_raw(
        write_request([({"__name__": "m", "host": "h"}, [(1_764_000_000_123, 5.0)])])
    )
    limits = Limits(now=NOW, oldest=0, max_future=1e12)
    result = decode_remote_write(bytes(body), LabelMapping(), limits)
    assert rows(result.decoded) == [("h", "m", 1_764_000_000.123, 5.0)]


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        (
            {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
            415,
            "remote_write 1.0 only",
        ),
        ({"Content-Encoding": "gzip"}, 415, "snappy"),
    ],
)
def test_refused_content(headers: dict[str, str], status: int, says: str) -> None:
    with serving() as (_, client):
        r = client.post("/api/v1/write", content=write_request([]), headers=HEADERS | headers)
        assert r.status_code == status and says in r.text


def test_undecodable_bodies_are_400_with_a_reason() -> None:
    with serving() as (_, client):
        r = client.post("/api/v1/write", content=b"not snappy at all", headers=HEADERS)
        assert r.status_code == 400 and "snappy" in r.text
        junk = bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff"))
        r = client.post("/api/v1/write", content=junk, headers=HEADERS)
        assert r.status_code == 400 and "WriteRequest" in r.text


def test_full_bus_is_429_with_retry_after() -> None:
    ms = int(NOW * 1000)
    big = [
        ({"__name__": f"m{i}", "host": "h"}, [(ms - k, float(k)) for k in range(1000)])
        for i in range(60)
    ]
    with serving(bus_max_bytes=1 << 20) as (_, client):
        first = client.post("/api/v1/write", content=write_request(big), headers=HEADERS)
        assert first.status_code == 204  # an empty bus takes one batch over its bound
        second = client.post("/api/v1/write", content=write_request(big), headers=HEADERS)
        assert second.status_code == 429
        assert second.headers["Retry-After"].isdigit()


def test_metadata_and_the_total_convention_make_counters() -> None:
    """Prometheus sends a family's type as metadata; without it, ``_total`` names a counter.
    A counter then answers its rate, exact over a reset."""
    request = WriteRequest()
    for family, kind in (("jobs_done", 1), ("temperature_total", 2)):
        request.metadata.add(type=kind, metric_family_name=family)
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    start = NOW - 600
    samples = [(int((start + 10 * i) * 1000), v) for i, v in enumerate([5.0, 9.0, 2.0, 7.0])]
    series = [
        ({"__name__": name, "instance": "web-1:9100"}, samples)
        for name in ("jobs_done", "temperature_total", "http_requests_total", "queue")
    ]
    with serving(default_server="") as (service, client):
        assert client.post("/api/v1/write", content=body, headers=HEADERS).status_code == 204
        r = client.post("/api/v1/write", content=write_request(series), headers=HEADERS)
        assert r.status_code == 204, r.text
        drain(service)
        kinds = client.get("/api/v1/metrics").json()
        rows = client.get(
            "/api/v1/servers/web-1/summary",
            params={"start": int(start), "end": int(start + 60), "fn": "rate"},
        ).json()["rows"]
    assert dict(zip(kinds["metrics"], kinds["kinds"], strict=True)) == {
        "http_requests_total": "counter",
        "jobs_done": "counter",
        "queue": "gauge",
        "temperature_total": "gauge",
    }
    got = {row["metric"]: row for row in rows}
    for counter in ("jobs_done", "http_requests_total"):  # 5 → 9 (+4) → 2 (reset: +2) → 7 (+5)
        assert got[counter]["rate"] == pytest.approx(11 / 60, rel=1e-12)
    assert got["queue"]["max"] == 9.0 and "rate" not in got["queue"]
