"""OTLP/HTTP metrics: protobuf and JSON requests on ``/v1/metrics``, gauges and sums kept,
histograms rejected as a partial success, Q3 compared with numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.ingest.protocol_helpers import NOW, drain, serving, summary, truth

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def attrs(**kv: object) -> list[KeyValue]:
    out = []
    for k, v in kv.items():
        kv_ = KeyValue(key=k.replace("_", "."))
        if isinstance(v, str):
            kv_.value.string_value = v
        else:
            kv_.value.int_value = int(v)  # type: ignore[call-overload]
        out.append(kv_)
    return out


def request(values: np.ndarray, stamps: np.ndarray, counters: np.ndarray) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(attrs(host_name="otel-1", service_name="shop"))
    sm = rm.scope_metrics.add()
    gauge = sm.metrics.add(name="queue.depth")
    for v, t in zip(values.tolist(), stamps.tolist(), strict=True):
        p = gauge.gauge.data_points.add(time_unix_nano=int(t * 1e9), as_double=v)
        p.attributes.extend(attrs(queue="orders"))
    total = sm.metrics.add(name="orders.total")
    total.sum.is_monotonic = True
    total.sum.aggregation_temporality = 2
    for c, t in zip(counters.tolist(), stamps.tolist(), strict=True):
        total.sum.data_points.add(time_unix_nano=int(t * 1e9), as_int=c)
    hist = sm.metrics.add(name="latency")
    hist.histogram.data_points.add(time_unix_nano=int(stamps[0] * 1e9), count=3)
    return bytes(req.SerializeToString())


@pytest.mark.parametrize("as_json", [False, True])
def test_gauges_and_sums_kept_histograms_partial_success(as_json: bool) -> None:
    rng = np.random.default_rng(9)
    stamps = np.sort(rng.uniform(NOW - 3000, NOW, 300)).round(3)
    values = np.round(rng.normal(5, 2, 300), 3)
    counters = np.cumsum(rng.integers(0, 10, 300))
    body = request(values, stamps, counters)
    headers = PROTOBUF
    if as_json:
        from google.protobuf import json_format

        msg = ExportMetricsServiceRequest.FromString(body)
        body = json_format.MessageToJson(msg).encode()
        headers = {"Content-Type": "application/json"}
    with serving() as (service, client):
        r = client.post("/v1/metrics", content=body, headers=headers)
        assert r.status_code == 200, r.text
        if as_json:
            partial = r.json()["partialSuccess"]
            assert partial["rejectedDataPoints"] == "1"
            message = partial["errorMessage"]
        else:
            answer = ExportMetricsServiceResponse.FromString(r.content)
            assert answer.partial_success.rejected_data_points == 1
            message = answer.partial_success.error_message
        assert "metric 'latency': a histogram is not supported" in message
        drain(service)
        got = summary(client, "otel-1", NOW - 3600, NOW + 60)
        rates = client.get(
            "/api/v1/servers/otel-1/summary",
            params={"start": int(NOW - 3600), "end": int(NOW + 60), "fn": "rate"},
        ).json()["rows"]
        assert service.metric_kind("orders.total") == "counter"  # a cumulative monotonic sum
        assert service.metric_kind("queue.depth") == "gauge"
    want = truth(values)
    name = 'queue.depth{queue="orders"}'
    assert got[name]["count"] == want["count"] and "kind" not in got[name]
    assert got[name]["min"] == want["min"] and got[name]["max"] == want["max"]
    assert got[name]["avg"] == pytest.approx(want["avg"], rel=1e-12)
    total = next(row for row in rates if row["metric"] == "orders.total")
    assert total["kind"] == "counter" and total["count"] == len(counters)
    growth = float(counters[-1] - counters[0])  # monotonic: the increase is last - first
    assert total["rate"] == pytest.approx(growth / (3600 + 60), rel=1e-12)


def test_a_delta_or_non_monotonic_sum_is_a_gauge() -> None:
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    for name, monotonic, temporality in (("a_total", True, 1), ("b", False, 2), ("c", True, 2)):
        metric = sm.metrics.add(name=name)
        metric.sum.is_monotonic = monotonic
        metric.sum.aggregation_temporality = temporality
        p = metric.sum.data_points.add(time_unix_nano=int(NOW * 1e9), as_int=5)
        p.attributes.extend(attrs(host="h"))
    with serving() as (service, client):
        r = client.post("/v1/metrics", content=req.SerializeToString(), headers=PROTOBUF)
        assert r.status_code == 200, r.text
        kinds = [service.metric_kind(n) for n in ("a_total", "b", "c")]
    assert kinds == ["gauge", "gauge", "counter"]  # a delta sum's points are increases already


def test_bad_points_and_bodies() -> None:
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    g = sm.metrics.add(name="g")
    p = g.gauge.data_points.add(time_unix_nano=int(NOW * 1e9), as_double=1.0)
    p.attributes.extend(attrs(host="h"))
    g.gauge.data_points.add(time_unix_nano=int(NOW * 1e9), as_double=2.0)  # no server
    p = g.gauge.data_points.add(time_unix_nano=int(NOW * 1e9), flags=1)
    p.attributes.extend(attrs(host="h"))
    with serving() as (_, client):
        r = client.post("/v1/metrics", content=req.SerializeToString(), headers=PROTOBUF)
        partial = ExportMetricsServiceResponse.FromString(r.content).partial_success
        assert partial.rejected_data_points == 2
        assert "point 1: metric 'g': server: no label of" in partial.error_message
        assert "point 2: metric 'g': value: no recorded value" in partial.error_message
        r = client.post(
            "/v1/metrics", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400 and json.loads(r.content)["code"] == 3
        r = client.post("/v1/metrics", content=b"\xff\xff", headers=PROTOBUF)
        assert r.status_code == 400
        r = client.post("/v1/metrics", content=b"", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
