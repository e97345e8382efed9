"""Every decoder fuzzed through the HTTP app: JSON, Arrow, remote_write, Influx v1/v2, OTLP
(protobuf and JSON); Graphite's lines, which come over TCP, through its decoder.

Three properties, over random bodies, valid bodies mutated byte by byte, and random
``Content-Type``, ``Content-Encoding`` and ``precision=``:

- nothing is ever answered with a 5xx;
- every 4xx names its reason (a non-empty message in the protocol's error shape);
- in a batch of good and bad points, every good point is kept: the answer counts them and
  the aggregator folds exactly them, and every bad one is counted as rejected.

The bodies are built by hand in ``minutely.testing.fuzzcases``, which the long pass shares
(the remote_write protobuf field by field; OTLP through the ``opentelemetry-proto`` classes
its senders use), not by the decoders' own code.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any

import cramjam
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from minutely.ingest.graphite import decode_graphite
from minutely.ingest.validate import REASONS
from minutely.service import Service
from minutely.testing.fuzzcases import (
    OTLP_KEYS,
    arrow_stream,
    encode,
    otlp_request,
    write_request,
)
from tests.ingest.protocol_helpers import NOW, drain, serving

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SERVERS = ["web-1", "web-2", "db-1"]
METRICS = ["cpu", "mem", "disk_io"]
#: a good point: (server, metric, unix seconds, value)
Point = tuple[str, str, int, float]
good_points = st.tuples(
    st.sampled_from(SERVERS),
    st.sampled_from(METRICS),
    st.integers(int(NOW) - 3000, int(NOW)),
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
)
FUTURE = int(NOW) + 10**6  # far past max_future: refused

CONTENT_TYPES = [
    "application/json",
    "application/vnd.apache.arrow.stream",
    "application/x-protobuf",
    "application/x-protobuf;proto=prometheus.WriteRequest",
    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "text/plain; charset=utf-8",
    "",
    "application/octet-stream",
]
ENCODINGS = ["", "gzip", "zstd", "deflate", "snappy", "br", "identity", "gzip, zstd", "x-😀"]
PRECISIONS = ["ns", "us", "u", "ms", "s", "m", "h", "", "fortnight", "-1", "µ"]
#: numbers at the edges of what each format's integers and floats can hold, as text
EDGE_NUMBERS = [
    "1e400",
    "-1e400",
    "1E-400",
    "-0",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1" + "0" * 40,
    "NaN",
    "Infinity",
]


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[Service, TestClient]]:
    with serving() as pair:
        yield pair


# -- what every answer must be ----------------------------------------------------------


def check_answer(r: Any) -> None:
    """No 5xx; a 4xx says why, in whatever shape its protocol answers."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code < 400:
        return
    media = r.headers.get("content-type", "")
    if media.startswith("application/json"):
        body = r.json()
        reason = body.get("error") or body.get("message") or ""
    elif media.startswith("application/x-protobuf"):  # OTLP's google.rpc.Status
        reason = r.content.decode("utf-8", "replace")
    else:
        reason = r.text
    assert reason.strip(), (r.status_code, media, r.content[:200])


def check_counted(client: TestClient, protocol: str) -> None:
    """Every point ``protocol`` rejected so far is counted under one code of ``REASONS`` on
    ``/metrics`` (the per-protocol total is ``/api/v1/ingest/protocols``')."""
    total = client.get("/api/v1/ingest/protocols").json()[protocol]["rejected"]
    by_reason = {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
        if s.name == "minutely_points_rejected_total" and s.labels["protocol"] == protocol
    }
    assert set(by_reason) == set(REASONS) and sum(by_reason.values()) == total


def raw(headers: dict[str, str]) -> dict[bytes, bytes]:
    """Headers as bytes: a client may send any, not only ASCII."""
    return {k.encode(): v.encode() for k, v in headers.items()}


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` with a few bytes flipped, cut, inserted or repeated."""
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 32))]
    return bytes(data)


def folded_by(service: Service, post: Callable[[], Any]) -> tuple[Any, int]:
    """The answer to ``post()`` and the points the aggregator folded because of it."""
    drain(service)
    before = service.aggregator.stats.points
    r = post()
    drain(service)
    return r, service.aggregator.stats.points - before


# -- JSON and Arrow (/api/v1/points) -----------------------------------------------------

BAD_JSON: list[dict[str, Any]] = [
    {"server": "web-1", "metric": "cpu", "ts": NOW, "value": "x"},
    {"server": "", "metric": "cpu", "ts": NOW, "value": 1.0},
    {"server": "web-1", "metric": "cpu", "ts": FUTURE, "value": 1.0},
    {"server": "web-1", "metric": "cpu", "ts": NOW},
    {"server": "web-1", "metric": None, "ts": NOW, "value": 1.0},
    {"server": "web-1", "metric": "cpu", "ts": NOW, "value": 1e300},
    {"server": "web-1", "metric": "cpu", "ts": "soon", "value": 1.0},
    {"server": "web-1", "metric": "cpu", "ts": NOW, "value": [1]},
]


def as_json(p: Point) -> dict[str, Any]:
    return {"server": p[0], "metric": p[1], "ts": p[2], "value": p[3]}


@FUZZ
@given(st.lists(st.one_of(good_points, st.sampled_from(BAD_JSON)), min_size=1, max_size=40))
def test_json_keeps_every_good_point(
    app: tuple[Service, TestClient], mix: list[Point | dict[str, Any]]
) -> None:
    service, client = app
    body = [as_json(p) if isinstance(p, tuple) else p for p in mix]
    good = sum(isinstance(p, tuple) for p in mix)
    r, folded = folded_by(service, lambda: client.post("/api/v1/points", json=body))
    check_answer(r)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["accepted"], answer["rejected"]) == (good, len(mix) - good)
    assert all(e["reason"] and e["code"] in REASONS for e in answer["errors"])
    assert folded == good


ARROW = {"content-type": "application/vnd.apache.arrow.stream"}


@FUZZ
@given(
    st.lists(good_points, max_size=40),
    st.lists(st.sampled_from(["server", "future", "null", "nan"]), max_size=10),
)
def test_arrow_keeps_every_good_point(
    app: tuple[Service, TestClient], points: list[Point], bad: list[str]
) -> None:
    service, client = app
    body = arrow_stream(points, bad, int(NOW), 7)
    r, folded = folded_by(
        service, lambda: client.post("/api/v1/points", content=body, headers=ARROW)
    )
    check_answer(r)
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["rejected"]) == (len(points), len(bad))
    assert folded == len(points)


@FUZZ
@given(st.data())
def test_points_route_never_fails(app: tuple[Service, TestClient], data: st.DataObject) -> None:
    _, client = app
    points = data.draw(st.lists(good_points, min_size=1, max_size=10))
    sources = ["json", "arrow", "random", "json-value", "edges"]
    source = data.draw(st.sampled_from(sources), label="source")
    if source == "edges":
        ts, value = (
            data.draw(st.sampled_from(EDGE_NUMBERS)),
            data.draw(st.sampled_from(EDGE_NUMBERS)),
        )
        body = f'[{{"server":"web-1","metric":"cpu","ts":{ts},"value":{value}}}]'.encode()
    elif source == "json":
        body = data.draw(mutated(json.dumps([as_json(p) for p in points]).encode()))
    elif source == "arrow":
        body = data.draw(mutated(arrow_stream(points, ["nan"], int(NOW), 7)))
    elif source == "json-value":
        shaped = data.draw(
            st.recursive(
                st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(["server", "metric", "ts", "value", "x"]), inner, max_size=5
                    )
                ),
                max_leaves=12,
            )
        )
        body = json.dumps(shaped).encode()
    else:
        body = data.draw(st.binary(max_size=512))
    coding = data.draw(st.sampled_from(ENCODINGS))
    headers = {
        "content-type": data.draw(
            st.sampled_from(CONTENT_TYPES) | st.text(max_size=20).filter(str.isprintable)
        )
    }
    if coding:
        headers["content-encoding"] = coding
        if data.draw(st.booleans()):
            body = encode(body, coding)
    check_answer(client.post("/api/v1/points", content=body, headers=raw(headers)))


# -- Prometheus remote_write ------------------------------------------------------------


STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
#: a bad sample, as (labels change, value, ms): each is rejected, one by one
BAD_SAMPLES = {
    "nan": (None, math.nan, None),
    "inf": (None, math.inf, None),
    "future": (None, 1.0, FUTURE * 1000),
    "no-server": ({"__name__": "cpu", "job": "x"}, 1.0, None),
}
REMOTE_WRITE = {"content-type": "application/x-protobuf", "content-encoding": "snappy"}


def _counts(text: str) -> tuple[int, int]:
    m = re.search(r"accepted (\d+) points, rejected (\d+)", text)
    assert m is not None, text
    return int(m.group(1)), int(m.group(2))


@FUZZ
@given(
    st.lists(good_points, max_size=30),
    st.lists(st.sampled_from(sorted(BAD_SAMPLES)), max_size=6),
    st.integers(0, 3),
)
def test_remote_write_keeps_every_good_sample(
    app: tuple[Service, TestClient], points: list[Point], bad: list[str], stale: int
) -> None:
    service, client = app
    series = [
        ({"__name__": p[1], "instance": f"{p[0]}:9100", "job": "node"}, [(p[3], p[2] * 1000)])
        for p in points
    ]
    for kind in bad:
        labels, value, ms = BAD_SAMPLES[kind]
        labels = labels or {"__name__": "cpu", "instance": "web-1:9100"}
        series.append((labels, [(value, int(NOW * 1000) if ms is None else ms)]))
    series += [({"__name__": "cpu", "instance": "web-1"}, [(STALE_NAN, int(NOW * 1000))])] * stale
    body = bytes(cramjam.snappy.compress_raw(write_request(series)))
    r, folded = folded_by(
        service, lambda: client.post("/api/v1/write", content=body, headers=REMOTE_WRITE)
    )
    check_answer(r)
    if bad:
        assert r.status_code == 400
        assert _counts(r.text) == (len(points), len(bad))
    else:
        assert r.status_code == 204, r.text
    assert folded == len(points)
    check_counted(client, "remote_write")


@FUZZ
@given(st.data())
def test_remote_write_never_fails(app: tuple[Service, TestClient], data: st.DataObject) -> None:
    _, client = app
    points = data.draw(st.lists(good_points, min_size=1, max_size=8))
    proto = write_request(
        [({"__name__": p[1], "instance": p[0]}, [(p[3], p[2] * 1000)]) for p in points]
    )
    source = data.draw(st.sampled_from(["mutated-proto", "mutated-snappy", "random"]))
    if source == "mutated-proto":
        body = bytes(cramjam.snappy.compress_raw(data.draw(mutated(proto))))
    elif source == "mutated-snappy":
        body = data.draw(mutated(bytes(cramjam.snappy.compress_raw(proto))))
    else:
        body = data.draw(st.binary(max_size=512))
        if data.draw(st.booleans()):
            body = bytes(cramjam.snappy.compress_raw(body))
    headers = {"content-type": data.draw(st.sampled_from(CONTENT_TYPES))}
    coding = data.draw(st.sampled_from(ENCODINGS))
    if coding:
        headers["content-encoding"] = coding
    check_answer(client.post("/api/v1/write", content=body, headers=raw(headers)))


# -- InfluxDB line protocol (v1 and v2) ----------------------------------------------------

BAD_LINES = [
    b'cpu,host=web-1 v="text"',
    b"cpu,host=web-1 v=1 %d" % (FUTURE * 10**9),
    b"cpu,job=x v=1",  # no server tag
    b"!!! not a line",
    b"cpu,host=web-1",
    b"cpu,host=web-1 v=nan",
    b"cpu,host=web-1 v=1 12ab",
]


@FUZZ
@given(
    st.lists(st.one_of(good_points, st.sampled_from(BAD_LINES)), min_size=1, max_size=30),
    st.booleans(),
    st.booleans(),
)
def test_influx_keeps_every_good_line(
    app: tuple[Service, TestClient], mix: list[Point | bytes], v2: bool, gzipped: bool
) -> None:
    service, client = app
    lines = [
        b"%s,host=%s value=%r %d" % (p[1].encode(), p[0].encode(), p[3], p[2] * 10**9)
        if isinstance(p, tuple)
        else p
        for p in mix
    ]
    good = sum(isinstance(p, tuple) for p in mix)
    body = b"\n".join(lines)
    headers = {"content-encoding": "gzip"} if gzipped else {}
    path = "/api/v2/write?org=o&bucket=b" if v2 else "/write?db=d"
    r, folded = folded_by(
        service,
        lambda: client.post(
            path, content=encode(body, "gzip") if gzipped else body, headers=headers
        ),
    )
    check_answer(r)
    if good == len(mix):
        assert r.status_code == 204, r.text
    else:
        assert r.status_code == 400
        message = r.json()["message" if v2 else "error"]
        assert _counts(message) == (good, len(mix) - good)
    assert folded == good
    check_counted(client, "influx")


influx_text = st.lists(
    st.text(
        alphabet=st.sampled_from([*'cpu,host=web1 v="\\\n.-iTtrue123e+', "é", "\x00"]),
        max_size=40,
    ),
    max_size=8,
).map(lambda lines: "\n".join(lines).encode())


@FUZZ
@given(st.data())
def test_influx_never_fails(app: tuple[Service, TestClient], data: st.DataObject) -> None:
    _, client = app
    points = data.draw(st.lists(good_points, min_size=1, max_size=8))
    valid = b"\n".join(
        b"%s,host=%s value=%r %d" % (p[1].encode(), p[0].encode(), p[3], p[2]) for p in points
    )
    edges = st.tuples(
        st.sampled_from([*EDGE_NUMBERS, "1i", "-1i", "1u", "-1u", "9223372036854775808i"]),
        st.sampled_from(EDGE_NUMBERS),
    ).map(lambda e: f"cpu,host=web-1 v={e[0]} {e[1]}".encode())
    body = data.draw(st.one_of(mutated(valid), influx_text, st.binary(max_size=256), edges))
    path = data.draw(st.sampled_from(["/write", "/api/v2/write"]))
    precision = data.draw(st.sampled_from(PRECISIONS) | st.text(max_size=6))
    headers = {}
    coding = data.draw(st.sampled_from(ENCODINGS))
    if coding:
        headers["content-encoding"] = coding
        if data.draw(st.booleans()):
            body = encode(body, coding)
    r = client.post(path, params={"precision": precision}, content=body, headers=raw(headers))
    check_answer(r)


# -- OTLP/HTTP metrics, protobuf and JSON -------------------------------------------------

BAD_OTLP = ["no-value", "future", "no-server", "histogram"]


@FUZZ
@given(
    st.lists(good_points, max_size=30),
    st.lists(st.sampled_from(BAD_OTLP), max_size=6),
    st.sampled_from(["application/x-protobuf", "application/json"]),
)
def test_otlp_keeps_every_good_point(
    app: tuple[Service, TestClient], points: list[Point], bad: list[str], media: str
) -> None:
    service, client = app
    request = otlp_request(points, bad, int(NOW))
    if media == "application/json":
        body = json_format.MessageToJson(request).encode()
    else:
        body = request.SerializeToString()
    r, folded = folded_by(
        service, lambda: client.post("/v1/metrics", content=body, headers={"content-type": media})
    )
    check_answer(r)
    assert r.status_code == 200, r.text
    response = ExportMetricsServiceResponse()
    if media == "application/json":
        json_format.Parse(r.content, response)
    else:
        response.ParseFromString(r.content)
    assert response.partial_success.rejected_data_points == len(bad)
    assert folded == len(points)
    check_counted(client, "otlp")


def _otlp_json_values() -> st.SearchStrategy[Any]:
    """Random JSON shaped roughly like OTLP's, so the fuzz gets past the outer layers."""
    leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
    keys = st.sampled_from(OTLP_KEYS)
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=20,
    )


@FUZZ
@given(st.data())
def test_otlp_never_fails(app: tuple[Service, TestClient], data: st.DataObject) -> None:
    _, client = app
    points = data.draw(st.lists(good_points, min_size=1, max_size=5))
    request = otlp_request(
        points, data.draw(st.lists(st.sampled_from(BAD_OTLP), max_size=2)), int(NOW)
    )
    media = data.draw(st.sampled_from(["application/x-protobuf", "application/json"]))
    source = data.draw(st.sampled_from(["mutated", "shaped", "random", "edges"]))
    if source == "mutated":
        valid = (
            request.SerializeToString()
            if media.endswith("protobuf")
            else json_format.MessageToJson(request).encode()
        )
        body = data.draw(mutated(valid))
    elif source == "shaped":
        body = json.dumps(data.draw(_otlp_json_values())).encode()
    elif source == "edges":  # the edges of the integer fields
        point = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
        point.time_unix_nano = data.draw(st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1]))
        if data.draw(st.booleans()):
            point.as_int = data.draw(st.sampled_from([-(2**63), 2**63 - 1]))
        body = (
            request.SerializeToString()
            if media.endswith("protobuf")
            else json_format.MessageToJson(request).encode()
        )
    else:
        body = data.draw(st.binary(max_size=256))
    headers = {"content-type": data.draw(st.just(media) | st.sampled_from(CONTENT_TYPES))}
    coding = data.draw(st.sampled_from(ENCODINGS))
    if coding:
        headers["content-encoding"] = coding
        if data.draw(st.booleans()):
            body = encode(body, coding)
    check_answer(client.post("/v1/metrics", content=body, headers=raw(headers)))


# -- Graphite plaintext (TCP: its decoder) --------------------------------------------------

BAD_GRAPHITE = [
    b"servers.web-1.cpu nan %d" % int(NOW),
    b"servers.web-1.cpu 1 %d" % FUTURE,
    b"servers.web-1.cpu",
    b"servers.web-1.cpu one %d" % int(NOW),
    b"cpu 1 %d" % int(NOW),  # no node 1 before the metric
    b"servers.web-1.cpu;bad 1",
    b"\xff\xfe 1 1",
]


@FUZZ
@given(st.lists(st.one_of(good_points, st.sampled_from(BAD_GRAPHITE)), min_size=1, max_size=40))
def test_graphite_keeps_every_good_line(
    app: tuple[Service, TestClient], mix: list[Point | bytes]
) -> None:
    service, _ = app
    lines = [
        b"servers.%s.%s %r %d" % (p[0].encode(), p[1].encode(), p[3], p[2])
        if isinstance(p, tuple)
        else p
        for p in mix
    ]
    good = sum(isinstance(p, tuple) for p in mix)
    decoded = decode_graphite(b"\r\n".join(lines), service.label_mapping, 1, service.limits())
    assert (decoded.accepted, decoded.rejected) == (good, len(mix) - good)
    assert all(e.reason.strip() and e.code in REASONS for e in decoded.errors)
    assert sum(decoded.reasons.values()) == decoded.rejected


graphite_edges = st.tuples(st.sampled_from(EDGE_NUMBERS), st.sampled_from(EDGE_NUMBERS)).map(
    lambda e: f"servers.web-1.cpu {e[0]} {e[1]}".encode()
)


@FUZZ
@given(
    st.one_of(st.binary(max_size=512), st.text(max_size=200).map(str.encode), graphite_edges),
    st.integers(-1, 3),
)
def test_graphite_never_raises(
    app: tuple[Service, TestClient], body: bytes, server_node: int
) -> None:
    service, _ = app
    decoded = decode_graphite(body, service.label_mapping, server_node, service.limits())
    lines = sum(1 for line in body.split(b"\n") if line.split())
    assert decoded.accepted + decoded.rejected == lines
    assert all(e.reason.strip() and e.code in REASONS for e in decoded.errors)
    assert sum(decoded.reasons.values()) == decoded.rejected


@pytest.mark.parametrize("media", ["application/x-protobuf", "application/json"])
@pytest.mark.parametrize("nanos", [2**63, 2**64 - 1])
def test_otlp_time_past_int64_is_a_400(
    app: tuple[Service, TestClient], media: str, nanos: int
) -> None:
    _, client = app
    request = otlp_request([("web-1", "cpu", int(NOW), 1.0)], [], int(NOW))
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    point.time_unix_nano = nanos
    if media == "application/json":
        body = json_format.MessageToJson(request).encode()
    else:
        body = request.SerializeToString()
    r = client.post("/v1/metrics", content=body, headers={"content-type": media})
    check_answer(r)
    assert r.status_code in (200, 400)
