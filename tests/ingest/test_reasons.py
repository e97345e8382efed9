"""Every decoder's per-point rejections carry a code of ``REASONS`` beside their text, and
every rejected point, listed or not, is counted by it: in ``Decoded.reasons`` and on
``/metrics`` as ``minutely_points_rejected_total{protocol,reason}``. Each request here is
sent with ``max_errors=1``, so the counts cover points the answer does not list."""

from __future__ import annotations

import io
from collections.abc import Iterator

import cramjam
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from minutely.ingest.graphite import decode_graphite, decode_graphite_reference
from minutely.ingest.remote_write import WriteRequest
from minutely.ingest.validate import REASONS, Decoded
from minutely.service import Service
from tests.ingest.protocol_helpers import NOW, serving
from tests.ingest.test_remote_write import HEADERS, STALE, write_request

OLD = NOW - 7 * 3600  # before the 6-hour window
FUTURE = NOW + 3600


@pytest.fixture
def app() -> Iterator[tuple[Service, TestClient]]:
    with serving(max_errors=1) as (service, client):
        yield service, client


def rejected(client: TestClient, protocol: str) -> dict[str, float]:
    """``/metrics``' rejections of ``protocol`` by reason, the zero ones left out."""
    text = client.get("/metrics").text
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "minutely_points_rejected_total"
        and s.labels["protocol"] == protocol
        and s.value
    }


def test_json_codes(app: tuple[Service, TestClient]) -> None:
    _, client = app
    good = {"server": "a", "metric": "m", "ts": NOW, "value": 1.0}
    body = [
        good,
        {**good, "server": ""},
        {**good, "metric": None},
        {**good, "metric": "x" * 300},
        {**good, "server": "a\nb"},
        {**good, "metric": ".."},
        {**good, "ts": "soon"},
        {**good, "ts": OLD},
        {**good, "ts": FUTURE},
        {**good, "value": "high"},
        {**good, "value": 1e300},
        5,
        {},
    ]
    answer = client.post("/api/v1/points", json=body).json()
    assert answer["rejected"] == len(body) - 1
    assert answer["errors"] == [
        {"index": 1, "reason": "server: missing or empty", "code": "server_missing"}
    ]
    assert rejected(client, "json") == {
        "server_missing": 1,
        "metric_missing": 1,
        "name_too_long": 1,
        "name_chars": 2,
        "bad_time": 1,
        "too_old": 1,
        "too_new": 1,
        "bad_value": 1,
        "value_too_large": 1,
        "malformed": 2,  # not an object; an object with none of the fields
    }


def test_arrow_codes(app: tuple[Service, TestClient]) -> None:
    _, client = app
    table = pa.table(
        {
            "server": ["a", None, "a", "a", "a"],
            "metric": ["m", "m", "m", "m", "m"],
            "ts": [NOW, NOW, OLD, NOW, NOW],
            "value": [1.0, 1.0, 1.0, float("nan"), float("inf")],
        }
    )
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    r = client.post(
        "/api/v1/points",
        content=sink.getvalue(),
        headers={"content-type": "application/vnd.apache.arrow.stream"},
    )
    assert r.json()["rejected"] == 4 and r.json()["errors"][0]["code"] == "server_missing"
    assert rejected(client, "arrow") == {"server_missing": 1, "too_old": 1, "bad_value": 2}


def test_remote_write_codes(app: tuple[Service, TestClient]) -> None:
    _, client = app
    ms = int(NOW * 1000)
    request = WriteRequest()
    request.ParseFromString(
        _unsnappy(
            write_request(
                [
                    ({"__name__": "up", "instance": "a:9100"}, [(ms, 1.0), (ms - 1, STALE)]),
                    ({"__name__": "up", "instance": "b:9100"}, [(ms, float("nan"))]),
                    ({"__name__": "up", "job": "x"}, [(ms, 1.0)]),  # no server label
                    ({"__name__": "up", "instance": "c:9100"}, [(int(OLD * 1000), 1.0)]),
                ]
            )
        )
    )
    hist = request.timeseries.add()
    hist.labels.add(name="__name__", value="latency")
    hist.labels.add(name="instance", value="a:9100")
    hist.histograms.extend([b"\x08\x01"] * 2)  # opaque to minutely: only counted
    body = _snappy(request.SerializeToString())
    r = client.post("/api/v1/write", content=body, headers=HEADERS)
    assert r.status_code == 400, r.text  # remote_write's partial write
    assert rejected(client, "remote_write") == {
        "bad_value": 1,
        "server_missing": 1,
        "too_old": 1,
        "unsupported": 2,
    }
    protocols = client.get("/api/v1/ingest/protocols").json()["remote_write"]
    assert protocols["rejected"] == 5 and protocols["dropped"] == 1  # the stale marker


def test_influx_codes(app: tuple[Service, TestClient]) -> None:
    _, client = app
    ns = int(NOW) * 10**9
    lines = [
        f'cpu,host=a user=1,name="x" {ns}',  # a string field: bad_value
        "cpu,host=a user=",  # does not parse
        f"cpu,host=a user=1 {int(OLD) * 10**9}",
        f"cpu,host=a user=1 {int(FUTURE) * 10**9}",
        f"cpu user=1 {ns}",  # no host tag
    ]
    r = client.post("/write", content="\n".join(lines).encode())
    assert r.status_code == 400, r.text
    assert rejected(client, "influx") == {
        "bad_value": 1,
        "malformed": 1,
        "too_old": 1,
        "too_new": 1,
        "server_missing": 1,
    }


def test_otlp_codes(app: tuple[Service, TestClient]) -> None:
    _, client = app
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    host = rm.resource.attributes.add(key="host.name")
    host.value.string_value = "otel-1"
    sm = rm.scope_metrics.add()
    gauge = sm.metrics.add(name="queue")
    gauge.gauge.data_points.add(time_unix_nano=int(NOW * 1e9), as_double=1.0)
    gauge.gauge.data_points.add(time_unix_nano=int(OLD * 1e9), as_double=1.0)
    gauge.gauge.data_points.add(time_unix_nano=int(NOW * 1e9))  # no value
    hist = sm.metrics.add(name="latency")
    for _ in range(3):
        hist.histogram.data_points.add(time_unix_nano=int(NOW * 1e9), count=3)
    r = client.post(
        "/v1/metrics",
        content=req.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert r.status_code == 200, r.text
    assert rejected(client, "otlp") == {"too_old": 1, "bad_value": 1, "unsupported": 3}


@pytest.mark.parametrize("decode", [decode_graphite, decode_graphite_reference])
def test_graphite_codes(app: tuple[Service, TestClient], decode: object) -> None:
    service, _ = app
    lines = [
        b"servers.web-1.cpu 1 %d" % NOW,
        b"servers.web-1.cpu 1 %d" % OLD,
        b"servers.web-1.cpu 1 %d" % FUTURE,
        b"servers.web-1.cpu nan %d" % NOW,
        b"servers.web-1.cpu",  # does not parse
        b"cpu 1 %d" % NOW,  # no server node
    ]
    decoded: Decoded = decode(  # type: ignore[operator]
        b"\n".join(lines), service.label_mapping, 1, service.limits()
    )
    assert decoded.rejected == 5 and len(decoded.errors) == 1
    assert decoded.reasons == {"too_old": 1, "too_new": 1, "bad_value": 1, "malformed": 2}
    assert all(e.code in REASONS for e in decoded.errors)


def _unsnappy(body: bytes) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(body))


def _snappy(body: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(body))
