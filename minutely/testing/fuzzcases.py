"""The long fuzz pass's cases, made fast: one seeded ``random.Random`` per case, no shrinking.

``Cases(document).make(seed)`` is one request: to an operation of the app's ``/openapi.json``
(its path and query parameters drawn from each parameter's schema, or hostile values in their
place), or to an ingest route with a body of its format. Each ingest format (JSON and Arrow on
``/api/v1/points``, remote_write, InfluxDB v1 and v2, OTLP protobuf and JSON) gets four kinds of
body: a mixed batch of good and bad points whose counts the answer must give back (``Expect``),
a valid body with a few bytes flipped, cut or repeated, random bytes or text shaped like the
format, and numbers at the edges of what the format can hold; headers (content type and
encoding, ``precision=``) are drawn too. ``graphite_body(seed)`` makes Graphite lines, which
come over TCP and are fuzzed through the decoder.

The same seed makes the same case, so a finding is replayed from its seed alone. The bodies are
built here by hand (remote_write field by field, OTLP through the ``opentelemetry-proto``
classes its senders use), not by the decoders' own code.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import cramjam
import pyarrow as pa
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

#: the names good points are written under, so their series exist from the first cases on
SERVERS = ("web-1", "web-2", "db-1")
METRICS = ("cpu", "mem", "disk_io")
#: ingest routes whose bodies are made here, not from the document
INGEST = ("/api/v1/points", "/api/v1/write", "/write", "/api/v2/write", "/v1/metrics")
#: numbers at the edges of what each format's integers and floats can hold, as text
EDGE_NUMBERS = (
    "1e400",
    "-1e400",
    "1E-400",
    "-0",
    "0",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1" + "0" * 40,
    "600000000000000000000",
    "1e20",
    "-1e20",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.5",
    "0x10",
)
#: parameter values no schema allows: empty, edges, odd characters, very long
HOSTILE = (
    "",
    " ",
    *EDGE_NUMBERS,
    "nan",
    "inf",
    "-",
    "--1h",
    "1h1h",
    "-999999999999h",
    "99999999999999999999d",
    "now-",
    "now+1h",
    "9999-99-99T99:99:99Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2025-11-24T16:00:00+99:00",
    "1_000",
    "１２",
    "\x00",
    "é",
    "🙂",
    "%",
    "%zz",
    "'",
    '"',
    "<script>alert(1)</script>",
    "..",
    ".",
    "/",
    "a" * 5000,
    "min,,max",
    "MIN",
    "rate ",
    "JSON",
)
#: name-shaped values for path parameters and ``server=`` / ``metric=`` filters
HOSTILE_NAMES = (
    "..",
    ".",
    "",
    " ",
    "\u3000",
    "a/b",
    "a%2Fb",
    "%",
    "?x=1",
    "#",
    "\x00",
    "\n",
    "\u2028",
    "é",
    "🙂",
    "\ud800",
    'cpu{job="x"}',
    "cpu{",
    "<b>x</b>",
    "x" * 300,
    "x" * 70000,
)
CONTENT_TYPES = (
    "application/json",
    "application/vnd.apache.arrow.stream",
    "application/x-protobuf",
    "application/x-protobuf;proto=prometheus.WriteRequest",
    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "",
    "application/octet-stream",
    "application/json; charset=latin-1",
    "APPLICATION/JSON",
    "multipart/form-data; boundary=x",
)
ENCODINGS = ("", "gzip", "zstd", "deflate", "snappy", "br", "identity", "gzip, zstd", "x-y")
PRECISIONS = ("ns", "us", "u", "ms", "s", "m", "h", "", "fortnight", "-1", "µ", "NS")
ACCEPTS = ("", "application/json", "text/csv", "application/vnd.apache.arrow.stream", "*/*", "x")
#: promql pieces
_FUNCS = (
    "rate",
    "increase",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "abs",
    "histogram_quantile",
    "nosuch",
)
_AGGS = ("sum", "min", "max", "avg", "count", "topk", "bottomk", "stddev", "quantile", "group")
_OPS = ("+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless")
_RANGES = ("1m", "5m", "1h", "0s", "30s", "1d", "999999y", "1m:30s", "5m:", "-1m", "1.5h", "")


@dataclass(frozen=True)
class Expect:
    """A mixed batch: how many of its points are good and bad, and how its answer says so
    (``kind``: points, remote_write, influx-v1, influx-v2, otlp-protobuf or otlp-json)."""

    kind: str
    good: int
    bad: int


@dataclass(frozen=True)
class Case:
    """One request, as sent on the wire (path and query percent-encoded)."""

    seed: int
    label: str  #: the operation or decoder, for the breakdown (``POST /write influx``)
    method: str
    path: str
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    expect: Expect | None = None

    def curl(self) -> str:
        """A shell command that sends this case to a server on localhost:8080 (a body is shown
        to its first 2,000 bytes)."""
        url = "http://localhost:8080" + self.path
        if self.query:
            url += "?" + self.query.decode("latin-1")
        parts = ["curl", "-X", self.method, _shell(url)]
        for k, v in self.headers:
            parts += ["-H", _shell(k.decode("latin-1") + ": " + v.decode("latin-1"))]
        if self.body:
            escaped = self.body[:2000].decode("latin-1").encode("unicode_escape").decode()
            parts += ["--data-binary", "$'" + escaped.replace("'", "\\'") + "'"]
        return " ".join(parts) + f"  # {self.label}, seed {self.seed}, {len(self.body)} bytes"


def _shell(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class _Operation:
    method: str
    path: str  #: the template, ``/api/v1/servers/{name}/series``
    params: tuple[dict[str, Any], ...]
    form: dict[str, Any] | None  #: the properties of a form body, if it takes one
    json_body: bool


class Cases:
    """Makes cases for the operations of one OpenAPI document (``/openapi.json`` as parsed)."""

    def __init__(self, document: dict[str, Any], now: Callable[[], float]) -> None:
        self.now = now
        self.operations: list[_Operation] = []
        for path, methods in document["paths"].items():
            if path in INGEST:
                continue
            for method, op in methods.items():
                content = op.get("requestBody", {}).get("content", {})
                form = content.get("application/x-www-form-urlencoded", {}).get("schema")
                self.operations.append(
                    _Operation(
                        method.upper(),
                        path,
                        tuple(op.get("parameters", ())),
                        None if form is None else form.get("properties", {}),
                        "application/json" in content,
                    )
                )
        #: every kind of case, each with its share of the draws
        self.kinds: list[tuple[str, Callable[[random.Random], Case]]] = [
            *[(f"{o.method} {o.path}", self._operation_case(o)) for o in self.operations],
            ("POST /api/v1/points json", self._points_json),
            ("POST /api/v1/points arrow", self._points_arrow),
            ("POST /api/v1/write remote_write", self._remote_write),
            ("POST /write influx", self._influx),
            ("POST /api/v2/write influx", self._influx_v2),
            ("POST /v1/metrics otlp-protobuf", self._otlp_protobuf),
            ("POST /v1/metrics otlp-json", self._otlp_json),
        ]
        # an operation's share grows with its inputs (one without any, such as /metrics, has
        # little to fuzz); the ingest formats, whose bodies are most of the input, a third
        inputs = [1 + len(o.params) + len(o.form or ()) + o.json_body for o in self.operations]
        scale = 2 * 7 / max(1, sum(inputs))
        self.weights = [scale * n for n in inputs] + [1.0] * 7

    def make(self, seed: int) -> Case:
        """The case of ``seed``: the same seed gives the same case."""
        rng = random.Random(seed)
        _, make = rng.choices(self.kinds, self.weights)[0]
        case = make(rng)
        return Case(seed, *_fields_after_seed(case))

    # -- the document's operations ---------------------------------------------------------

    def _operation_case(self, op: _Operation) -> Callable[[random.Random], Case]:
        label = f"{op.method} {op.path}"

        def make(rng: random.Random) -> Case:
            # a third of the cases carry hostile values; the rest follow the document, so
            # most reach the code behind the parameter checks
            hostile = 0.3 if rng.random() < 0.35 else 0.0
            path = op.path
            pairs: list[tuple[str, str]] = []
            headers: list[tuple[bytes, bytes]] = []
            for p in op.params:
                where, name, schema = p["in"], p["name"], p.get("schema", {})
                if where == "path":
                    path = path.replace(
                        "{" + name + "}", _path_name(rng, self._name(rng, path, hostile))
                    )
                elif where == "query" and (
                    p.get("required") or rng.random() < 0.6 + 0.3 * (not hostile)
                ):
                    pairs += [(name, v) for v in self._values(rng, name, schema, hostile)]
                elif where == "header" and rng.random() < 0.3:
                    headers.append((name.lower().encode(), _header_text(rng, schema)))
            if hostile and rng.random() < 0.3:
                pairs.append(
                    (rng.choice(("x", "format", "step", "start", "")), rng.choice(HOSTILE))
                )
            if hostile and "{" not in op.path and rng.random() < 0.1:
                path += rng.choice(("/", "/x", "%2F", "/.."))
            if rng.random() < 0.3:
                headers.append((b"accept", rng.choice(ACCEPTS).encode()))
            query = _query(rng, pairs)
            body = b""
            if op.form is not None and rng.random() < 0.6:
                form = [
                    (n, v)
                    for n, s in op.form.items()
                    if rng.random() < (0.7 if hostile else 0.95)
                    for v in self._values(rng, n, s, hostile)
                ]
                body, query = _query(rng, form), query if rng.random() < 0.5 else b""
                media = (
                    "application/x-www-form-urlencoded"
                    if rng.random() < 0.9
                    else rng.choice(CONTENT_TYPES)
                )
                headers.append((b"content-type", media.encode()))
            elif op.json_body:
                body = _kinds_body(rng)
                headers.append((b"content-type", b"application/json"))
            return Case(0, label, op.method, path, query, headers, body)

        return make

    def _name(self, rng: random.Random, path: str, hostile: float) -> str:
        if hostile and rng.random() < 0.8:
            return rng.choice(HOSTILE_NAMES) if rng.random() < 0.7 else _text(rng, 12)
        if "/label/" in path:
            return rng.choice(("instance", "__name__", "job", "nosuch"))
        if rng.random() < 0.9:
            return rng.choice(METRICS if "/metrics/" in path else SERVERS)
        return rng.choice(SERVERS + METRICS)

    def _values(
        self, rng: random.Random, name: str, schema: dict[str, Any], hostile: float
    ) -> list[str]:
        """One or more values for a query parameter: from its schema, or with probability
        ``hostile`` a value no schema allows."""
        if schema.get("type") == "array":
            items = schema.get("items", {})
            return [self._value(rng, name, items, hostile) for _ in range(rng.randrange(4))]
        values = [self._value(rng, name, schema, hostile)]
        if hostile and rng.random() < 0.1:  # the parameter twice
            values.append(self._value(rng, name, schema, hostile))
        return values

    def _value(self, rng: random.Random, name: str, schema: dict[str, Any], hostile: float) -> str:
        if hostile and rng.random() < hostile:
            return rng.choice(HOSTILE) if rng.random() < 0.7 else _text(rng, 10)
        if "enum" in schema:
            return str(rng.choice(schema["enum"]))
        if name == "query":
            return promql(rng, broken=hostile > 0)
        if name == "match[]":
            return _selector(rng)
        if name in ("start", "end", "time"):
            relative = "-1h" in schema.get("examples", ())
            return _time(rng, self.now(), name, relative, hostile > 0)
        if name == "step" and schema.get("type") == "string":
            return rng.choice(("60", "5m", "1h", "15s", "2m", "1d", str(rng.randrange(1, 10**5))))
        if name == "fields":
            fields = ("min", "max", "avg", "sum", "count")
            return rng.choice((",", ", ", " , ")).join(rng.sample(fields, rng.randrange(1, 6)))
        if schema.get("type") == "integer":
            low, high = schema.get("minimum", 0), schema.get("maximum", 10**6)
            multiple = schema.get("multipleOf", 1)
            if rng.random() < 0.9:  # most answers small enough to be quick
                return str(multiple * rng.randrange(max(1, low // multiple), low // multiple + 60))
            return str(multiple * rng.randrange(low // multiple, high // multiple + 1))
        if "examples" in schema:
            return str(rng.choice(schema["examples"]))
        if name in ("server", "metric"):
            return rng.choice(SERVERS if name == "server" else METRICS)
        return _text(rng, 8)

    # -- ingest: one maker per format ------------------------------------------------------

    def _good(self, rng: random.Random, n: int) -> list[tuple[str, str, int, float]]:
        now = int(self.now())
        return [
            (
                rng.choice(SERVERS),
                rng.choice(METRICS),
                rng.randrange(now - 3000, now + 1),
                _finite(rng),
            )
            for _ in range(n)
        ]

    def _points_json(self, rng: random.Random) -> Case:
        label = "POST /api/v1/points json"
        now = int(self.now())
        source = rng.random()
        if source < 0.3:
            mix: list[Any] = [
                *self._good(rng, rng.randrange(0, 30)),
                *rng.choices(_bad_json(now), k=rng.randrange(0, 8)),
            ]
            rng.shuffle(mix)
            if not mix:
                mix = self._good(rng, 1)
            body = json.dumps([_as_json(p) if isinstance(p, tuple) else p for p in mix]).encode()
            good = sum(isinstance(p, tuple) for p in mix)
            return _ingest(
                label,
                "/api/v1/points",
                body,
                "application/json",
                rng,
                Expect("points", good, len(mix) - good),
            )
        points = [_as_json(p) for p in self._good(rng, rng.randrange(1, 10))]
        if source < 0.55:
            body = mutated(rng, json.dumps(points).encode())
        elif source < 0.7:
            body = json.dumps(
                _json_value(rng, ("server", "metric", "ts", "value", "x"), 12)
            ).encode()
        elif source < 0.85:
            ts, value = rng.choice(EDGE_NUMBERS), rng.choice(EDGE_NUMBERS)
            name = json.dumps(rng.choice(SERVERS + HOSTILE_NAMES))
            body = f'[{{"server":{name},"metric":"cpu","ts":{ts},"value":{value}}}]'.encode()
        else:
            body = rng.randbytes(rng.randrange(512))
        return _fuzzed(label, "/api/v1/points", body, "application/json", rng)

    def _points_arrow(self, rng: random.Random) -> Case:
        label = "POST /api/v1/points arrow"
        media = "application/vnd.apache.arrow.stream"
        points = self._good(rng, rng.randrange(0, 40))
        bad = rng.choices(("server", "future", "null", "nan", "name"), k=rng.randrange(0, 8))
        body = arrow_stream(points, bad, int(self.now()), rng.randrange(1, 10))
        if rng.random() < 0.4:
            expect = Expect("points", len(points), len(bad)) if points or bad else None
            return _ingest(label, "/api/v1/points", body, media, rng, expect)
        return _fuzzed(label, "/api/v1/points", mutated(rng, body), media, rng)

    def _remote_write(self, rng: random.Random) -> Case:
        label = "POST /api/v1/write remote_write"
        now = int(self.now())
        points = self._good(rng, rng.randrange(0, 30))
        series = [
            ({"__name__": m, "instance": f"{s}:9100", "job": "node"}, [(v, t * 1000)])
            for s, m, t, v in points
        ]
        source = rng.random()
        if source < 0.35:
            bad = rng.choices(("nan", "inf", "future", "no-server"), k=rng.randrange(0, 6))
            for kind in bad:
                labels = (
                    {"__name__": "cpu", "job": "x"}
                    if kind == "no-server"
                    else {"__name__": "cpu", "instance": "web-1:9100"}
                )
                value = math.nan if kind == "nan" else math.inf if kind == "inf" else 1.0
                ms = (now + 10**6) * 1000 if kind == "future" else now * 1000
                series.append((labels, [(value, ms)]))
            rng.shuffle(series)
            body = bytes(cramjam.snappy.compress_raw(write_request(series)))
            headers = [
                (b"content-type", b"application/x-protobuf"),
                (b"content-encoding", b"snappy"),
            ]
            expect = Expect("remote_write", len(points), len(bad))
            return Case(0, label, "POST", "/api/v1/write", b"", headers, body, expect)
        proto = write_request(series)
        if source < 0.6:
            body = bytes(cramjam.snappy.compress_raw(mutated(rng, proto)))
        elif source < 0.8:
            body = mutated(rng, bytes(cramjam.snappy.compress_raw(proto)))
        else:
            body = rng.randbytes(rng.randrange(512))
            if rng.random() < 0.5:
                body = bytes(cramjam.snappy.compress_raw(body))
        media = "application/x-protobuf" if rng.random() < 0.6 else rng.choice(CONTENT_TYPES)
        headers = [(b"content-type", media.encode())]
        if coding := rng.choice(("snappy", "snappy", *ENCODINGS)):
            headers.append((b"content-encoding", coding.encode()))
        if rng.random() < 0.3:
            headers.append(
                (b"x-prometheus-remote-write-version", rng.choice((b"0.1.0", b"2.0.0", b"x")))
            )
        return Case(0, label, "POST", "/api/v1/write", b"", headers, body)

    def _influx(self, rng: random.Random) -> Case:
        return self._line_protocol(rng, "/write", "POST /write influx", "influx-v1", "db=d")

    def _influx_v2(self, rng: random.Random) -> Case:
        return self._line_protocol(
            rng, "/api/v2/write", "POST /api/v2/write influx", "influx-v2", "org=o&bucket=b"
        )

    def _line_protocol(
        self, rng: random.Random, path: str, label: str, kind: str, base: str
    ) -> Case:
        now = int(self.now())
        points = self._good(rng, rng.randrange(0, 30))
        lines = [
            b"%s,host=%s value=%r %d" % (m.encode(), s.encode(), v, t * 10**9)
            for s, m, t, v in points
        ]
        source = rng.random()
        if source < 0.3:
            bad = rng.choices(_bad_lines(now), k=rng.randrange(0, 8))
            mix = lines + bad
            rng.shuffle(mix)
            if not mix:
                mix = lines = [b"cpu,host=web-1 value=1 %d" % (now * 10**9)]
            body = b"\n".join(mix)
            headers: list[tuple[bytes, bytes]] = []
            if rng.random() < 0.3:
                body = gzip.compress(body, compresslevel=1)
                headers.append((b"content-encoding", b"gzip"))
            expect = Expect(kind, len(lines), len(bad))
            return Case(0, label, "POST", path, base.encode(), headers, body, expect)
        if source < 0.5:
            body = mutated(rng, b"\n".join(lines) or b"cpu,host=web-1 value=1")
        elif source < 0.7:
            alphabet = 'cpu,host=web1 v="\\\n.-iTtrue123e+é\x00\t#'
            body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(200))).encode()
        elif source < 0.85:
            field_value = rng.choice(
                (*EDGE_NUMBERS, "1i", "-1i", "1u", "-1u", "9223372036854775808i", "t", '"s"')
            )
            body = f"cpu,host=web-1 v={field_value} {rng.choice(EDGE_NUMBERS)}".encode()
        else:
            body = rng.randbytes(rng.randrange(256))
        pairs = [(k, v) for k, v in (p.split("=") for p in base.split("&"))]
        if rng.random() < 0.7:
            pairs.append(
                ("precision", rng.choice(PRECISIONS) if rng.random() < 0.8 else _text(rng, 4))
            )
        headers = []
        if coding := rng.choice(ENCODINGS):
            headers.append((b"content-encoding", coding.encode()))
            if rng.random() < 0.5:
                body = encode(body, coding)
        return Case(0, label, "POST", path, _query(rng, pairs), headers, body)

    def _otlp_protobuf(self, rng: random.Random) -> Case:
        return self._otlp(
            rng, "application/x-protobuf", "POST /v1/metrics otlp-protobuf", "otlp-protobuf"
        )

    def _otlp_json(self, rng: random.Random) -> Case:
        return self._otlp(rng, "application/json", "POST /v1/metrics otlp-json", "otlp-json")

    def _otlp(self, rng: random.Random, media: str, label: str, kind: str) -> Case:
        now = int(self.now())
        points = self._good(rng, rng.randrange(0, 20 if kind == "otlp-json" else 30))
        bad = rng.choices(("no-value", "future", "no-server", "histogram"), k=rng.randrange(0, 5))
        request = otlp_request(points, bad, now)

        def serialized() -> bytes:
            if media == "application/json":
                return bytes(json_format.MessageToJson(request, indent=None).encode())
            return bytes(request.SerializeToString())

        source = rng.random()
        if source < 0.35:
            headers = [(b"content-type", media.encode())]
            return Case(
                0,
                label,
                "POST",
                "/v1/metrics",
                b"",
                headers,
                serialized(),
                Expect(kind, len(points), len(bad)),
            )
        if source < 0.6:
            body = mutated(rng, serialized())
        elif source < 0.75:
            body = json.dumps(_json_value(rng, OTLP_KEYS, 20)).encode()
        elif source < 0.9 and points:
            point = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
            point.time_unix_nano = rng.choice((0, 1, 2**63 - 1, 2**63, 2**64 - 1))
            if rng.random() < 0.5:
                point.as_int = rng.choice((-(2**63), 2**63 - 1))
            body = serialized()
        else:
            body = rng.randbytes(rng.randrange(256))
        return _fuzzed(label, "/v1/metrics", body, media, rng)


def influx_body(rng: random.Random, now: int) -> bytes:
    """Line protocol for the decoders: good and bad lines, mutated, or random."""
    good = [
        b"%s,host=%s value=%r %d"
        % (
            rng.choice(METRICS).encode(),
            rng.choice(SERVERS).encode(),
            _finite(rng),
            rng.randrange(now - 3000, now + 1) * 10**9,
        )
        for _ in range(rng.randrange(0, 20))
    ]
    source = rng.random()
    if source < 0.3:
        mix = good + rng.choices(_bad_lines(now), k=rng.randrange(0, 6))
        rng.shuffle(mix)
        return b"\n".join(mix)
    if source < 0.6:
        return mutated(rng, b"\n".join(good) or b"cpu,host=web-1 value=1")
    if source < 0.8:
        alphabet = 'cpu,host=web1 v="\\\n.-iTtrue123e+é\x00\t#'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(200))).encode()
    if source < 0.9:
        field_value = rng.choice((*EDGE_NUMBERS, "1i", "-1i", "1u", "9223372036854775808i", "t"))
        return f"cpu,host=web-1 v={field_value} {rng.choice(EDGE_NUMBERS)}".encode()
    return rng.randbytes(rng.randrange(256))


def remote_write_body(rng: random.Random, now: int) -> bytes:
    """An uncompressed WriteRequest for the decoders: good and bad samples, mutated, or
    random bytes."""
    series = [
        (
            {"__name__": rng.choice(METRICS), "instance": rng.choice(SERVERS) + ":9100"},
            [(_finite(rng), rng.randrange(now - 3000, now + 1) * 1000)],
        )
        for _ in range(rng.randrange(0, 20))
    ]
    for _ in range(rng.randrange(0, 4)):
        labels = rng.choice(
            (
                {"__name__": "cpu", "job": "x"},
                {"__name__": "cpu", "instance": "web-1"},
                {"instance": "web-1"},
                {"__name__": "", "instance": "x"},
            )
        )
        value = rng.choice((math.nan, math.inf, 1.0, -0.0))
        series.append((labels, [(value, rng.choice((now * 1000, (now + 10**6) * 1000, 0, -1)))]))
    rng.shuffle(series)
    proto = write_request(series)
    source = rng.random()
    if source < 0.4:
        return proto
    if source < 0.85:
        return mutated(rng, proto)
    return rng.randbytes(rng.randrange(256))


def graphite_body(rng: random.Random, now: int) -> tuple[bytes, int | None, int]:
    """Graphite plaintext lines: (body, how many lines are good when it is a mixed batch,
    else None, and the number of lines the decoder must account for)."""
    if rng.random() < 0.4:
        good = [
            b"servers.%s.%s %r %d"
            % (
                rng.choice(SERVERS).encode(),
                rng.choice(METRICS).encode(),
                _finite(rng),
                rng.randrange(now - 3000, now + 1),
            )
            for _ in range(rng.randrange(0, 30))
        ]
        bad = [
            b"servers.web-1.cpu nan %d" % now,
            b"servers.web-1.cpu 1 %d" % (now + 10**6),
            b"servers.web-1.cpu",
            b"servers.web-1.cpu one %d" % now,
            b"cpu 1 %d" % now,
            b"servers.web-1.cpu;bad 1",
            b"\xff\xfe 1 1",
        ]
        mix = good + rng.choices(bad, k=rng.randrange(0, 8))
        rng.shuffle(mix)
        body = rng.choice((b"\n", b"\r\n")).join(mix)
        return body, len(good), len(mix)
    source = rng.random()
    if source < 0.3:
        body = mutated(rng, b"servers.web-1.cpu 1.5 %d\nservers.db-1.mem 2 %d" % (now, now))
    elif source < 0.6:
        alphabet = "servers.web-1.cpu 0123456789e+-.;=\n\r\t é\x00"
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(200))).encode()
    elif source < 0.8:
        body = f"servers.web-1.cpu {rng.choice(EDGE_NUMBERS)} {rng.choice(EDGE_NUMBERS)}".encode()
    else:
        body = rng.randbytes(rng.randrange(512))
    return body, None, sum(1 for line in body.split(b"\n") if line.split())


# -- bodies ---------------------------------------------------------------------------------


def mutated(rng: random.Random, body: bytes) -> bytes:
    """``body`` with one to four bytes flipped, runs cut, bytes inserted or runs repeated."""
    data = bytearray(body)
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(4)
        at = rng.randrange(max(1, len(data)))
        if op == 0 and data:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[at : at + rng.randrange(1, 17)]
        elif op == 2:
            data[at:at] = rng.randbytes(rng.randrange(1, 9))
        else:
            data[at:at] = data[at : at + rng.randrange(1, 33)]
    return bytes(data)


def encode(body: bytes, coding: str) -> bytes:
    """``body`` compressed as ``coding`` says, where this side can (else as it is)."""
    if coding == "gzip":
        return gzip.compress(body, compresslevel=1)
    if coding == "zstd":
        return bytes(cramjam.zstd.compress(body))
    if coding == "deflate":
        return zlib.compress(body)
    if coding == "snappy":
        return bytes(cramjam.snappy.compress_raw(body))
    return body


_ARROW_SCHEMA = pa.schema(
    [
        ("server", pa.string()),
        ("metric", pa.string()),
        ("ts", pa.float64()),
        ("value", pa.float64()),
    ]
)


def arrow_stream(
    points: Sequence[tuple[str, str, int, float]], bad: Sequence[str], now: int, chunk: int
) -> bytes:
    """An Arrow IPC stream of ``points`` followed by one bad point per ``bad`` kind."""
    servers = [p[0] for p in points]
    metrics = [p[1] for p in points]
    ts: list[float | None] = [float(p[2]) for p in points]
    values: list[float | None] = [p[3] for p in points]
    for kind in bad:
        servers.append("" if kind == "server" else "web-1")
        metrics.append("bad\x00name" if kind == "name" else "cpu")
        ts.append(float(now + 10**6) if kind == "future" else float(now))
        values.append(None if kind == "null" else math.nan if kind == "nan" else 1.0)
    columns = [
        pa.array(servers, pa.string()),
        pa.array(metrics, pa.string()),
        pa.array(ts, pa.float64()),
        pa.array(values, pa.float64()),
    ]
    batch = pa.RecordBatch.from_arrays(columns, schema=_ARROW_SCHEMA)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, _ARROW_SCHEMA) as w:
        for start in range(0, max(1, batch.num_rows), chunk):
            w.write_batch(batch.slice(start, chunk))
    return bytes(sink.getvalue().to_pybytes())


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s go as ten bytes of two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if not n:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_request(series: Sequence[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    """A remote_write 1.0 ``WriteRequest``: (labels, [(value, ms)]) per series."""
    out = bytearray()
    for labels, samples in series:
        ts = b"".join(
            _field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in labels.items()
        )
        ts += b"".join(
            _field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(ms)) for v, ms in samples
        )
        out += _field(1, ts)
    return bytes(out)


def otlp_request(
    points: Sequence[tuple[str, str, int, float]], bad: Sequence[str], now: int
) -> ExportMetricsServiceRequest:
    """An OTLP export request of gauges: one per good point, then one per ``bad`` kind."""
    request = ExportMetricsServiceRequest()
    for server, metric, ts, value in points:
        rm = request.resource_metrics.add()
        attr = rm.resource.attributes.add()
        attr.key, attr.value.string_value = "host.name", server
        m = rm.scope_metrics.add().metrics.add()
        m.name = metric
        dp = m.gauge.data_points.add()
        dp.time_unix_nano, dp.as_double = ts * 10**9, value
    for kind in bad:
        rm = request.resource_metrics.add()
        if kind != "no-server":
            attr = rm.resource.attributes.add()
            attr.key, attr.value.string_value = "host.name", "web-1"
        m = rm.scope_metrics.add().metrics.add()
        m.name = "cpu"
        if kind == "histogram":
            hp = m.histogram.data_points.add()
            hp.time_unix_nano, hp.count = now * 10**9, 1
            continue
        dp = m.gauge.data_points.add()
        dp.time_unix_nano = (now + 10**6 if kind == "future" else now) * 10**9
        dp.as_double = 1.0
        if kind == "no-value":
            dp.flags = 1
    return request


#: the keys of OTLP's JSON, so random JSON shaped like it gets past the outer layers
OTLP_KEYS = (
    "resourceMetrics",
    "scopeMetrics",
    "metrics",
    "name",
    "gauge",
    "sum",
    "histogram",
    "dataPoints",
    "asDouble",
    "asInt",
    "timeUnixNano",
    "flags",
    "attributes",
    "key",
    "value",
    "stringValue",
    "resource",
)


def _bad_json(now: int) -> list[dict[str, Any]]:
    return [
        {"server": "web-1", "metric": "cpu", "ts": now, "value": "x"},
        {"server": "", "metric": "cpu", "ts": now, "value": 1.0},
        {"server": "web-1", "metric": "cpu", "ts": now + 10**6, "value": 1.0},
        {"server": "web-1", "metric": "cpu", "ts": now},
        {"server": "web-1", "metric": None, "ts": now, "value": 1.0},
        {"server": "web-1", "metric": "cpu", "ts": now, "value": 1e300},
        {"server": "web-1", "metric": "cpu", "ts": "soon", "value": 1.0},
        {"server": "web-1", "metric": "cpu", "ts": now, "value": [1]},
        {"server": "..", "metric": "cpu", "ts": now, "value": 1.0},
        {"server": "web-1", "metric": "a\nb", "ts": now, "value": 1.0},
    ]


def _bad_lines(now: int) -> list[bytes]:
    return [
        b'cpu,host=web-1 v="text"',
        b"cpu,host=web-1 v=1 %d" % ((now + 10**6) * 10**9),
        b"cpu,job=x v=1",  # no server tag
        b"!!! not a line",
        b"cpu,host=web-1",
        b"cpu,host=web-1 v=nan",
        b"cpu,host=web-1 v=1 12ab",
    ]


def _as_json(p: tuple[str, str, int, float]) -> dict[str, Any]:
    return {"server": p[0], "metric": p[1], "ts": p[2], "value": p[3]}


def _finite(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.6:
        return round(rng.uniform(-1e6, 1e6), rng.randrange(0, 6))
    if pick < 0.9:
        return rng.uniform(-1e12, 1e12)
    return rng.choice((0.0, -0.0, 5e-324, 1e-300, 1e12, -1e12))


def _json_value(rng: random.Random, keys: Sequence[str], leaves: int) -> Any:
    """Random JSON whose objects have the format's keys, so the fuzz gets past the outer layers."""
    budget = [leaves]

    def value(depth: int) -> Any:
        budget[0] -= 1
        pick = rng.random()
        if depth > 4 or budget[0] <= 0 or pick < 0.4:
            return rng.choice(
                (
                    None,
                    True,
                    False,
                    rng.randrange(-(2**70), 2**70),
                    rng.random() * 1e6,
                    _text(rng, 6),
                    math.inf,
                    -0.0,
                )
            )
        if pick < 0.65:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randrange(5))}

    return value(0)


def _kinds_body(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.4:
        return json.dumps(
            {
                k: rng.sample(METRICS, rng.randrange(3))
                for k in rng.sample(("counter", "gauge"), rng.randrange(3))
            }
        ).encode()
    if pick < 0.8:
        return json.dumps(_json_value(rng, ("counter", "gauge", "x"), 8)).encode()
    return rng.randbytes(rng.randrange(64))


def promql(rng: random.Random, depth: int = 0, *, broken: bool = False) -> str:
    """A PromQL expression: mostly the supported subset, some not; some ``broken`` too."""
    pick = rng.random()
    if depth > 3 or pick < 0.3:
        text = _selector(rng)
    elif pick < 0.45:
        text = f"{rng.choice(_FUNCS)}({_selector(rng)}[{rng.choice(_RANGES)}])"
    elif pick < 0.6:
        grouping = rng.choice(
            ("", " by (instance)", " without (job)", " by ()", " by (__name__, x)")
        )
        param = rng.choice(("", "", "3, ", "0.5, ", "-1, ", "1e20, "))
        text = f"{rng.choice(_AGGS)}{grouping}({param}{promql(rng, depth + 1)})"
    elif pick < 0.75:
        text = f"{promql(rng, depth + 1)} {rng.choice(_OPS)} {promql(rng, depth + 1)}"
    elif pick < 0.8:
        text = f"-({promql(rng, depth + 1)})"
    elif pick < 0.9 or not broken:
        text = rng.choice(
            ("1", "-1", "1e400", "NaN", "Inf", "0x1f", '"s"', "time()", "vector(1)", "scalar(cpu)")
        )
    else:
        text = _text(rng, 16)
    if depth == 0:
        if rng.random() < 0.1:
            text += rng.choice((" offset 5m", " @ 1764000000", " offset -1h", " @ end()"))
        if broken and rng.random() < 0.4:
            text = mutated(rng, text.encode()).decode("utf-8", "replace")
    return text


def _selector(rng: random.Random) -> str:
    name = rng.choice((*METRICS, "", "nosuch", "cpu_total", "{}"))
    matchers = []
    for _ in range(rng.randrange(3)):
        label = rng.choice(("instance", "__name__", "job", "le", "x", "1bad"))
        op = rng.choice(("=", "!=", "=~", "!~"))
        value = rng.choice((*SERVERS, ".*", "web-.*", "(", "", "a|b", "\\x", "é"))
        matchers.append(f'{label}{op}"{value}"')
    return f"{name}{{{','.join(matchers)}}}" if matchers or not name else name


def _time(rng: random.Random, now: float, name: str, relative: bool, hostile: bool) -> str:
    """A time for ``start``, ``end`` or ``time``: an end recent, a start older (so most
    ranges are the right way round); relative forms where the route takes them."""
    back = rng.uniform(0, 600) if name != "start" else rng.uniform(600, 8 * 3600)
    pick = rng.random()
    if relative and pick < 0.3:
        return "now" if name != "start" and pick < 0.1 else f"-{int(back // 60) + 1}m"
    if pick < 0.7:
        return str(int(now - back))
    if pick < 0.85:
        return f"{now - back:.3f}"
    if not hostile:
        return datetime.fromtimestamp(now - back, UTC).isoformat().replace("+00:00", "Z")
    return rng.choice(
        ("2025-11-24T16:00:00.5+01:00", "2025-11-24", str(rng.randrange(-(2**64), 2**64)))
    )


def _text(rng: random.Random, most: int) -> str:
    alphabet = "abcxyz019 .,-_/%?#&=+:;\"'{}[]()\\<>\x00\x7fé€🙂\u2028"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(most + 1)))


def _path_name(rng: random.Random, name: str) -> str:
    """``name`` as a path segment: percent-encoded, mostly as clients do."""
    if rng.random() < 0.85:
        return quote(name, safe="", errors="surrogatepass")
    return quote(name, safe="/%?#.", errors="surrogatepass")


def _query(rng: random.Random, pairs: Sequence[tuple[str, str]]) -> bytes:
    parts = [f"{quote(k, safe='[]')}={quote(v, safe='', errors='surrogatepass')}" for k, v in pairs]
    if rng.random() < 0.03:
        parts.append(rng.choice(("=", "&", "%zz", "a", "a=b=c", "%ff=%fe")))
    return "&".join(parts).encode()


def _header_text(rng: random.Random, schema: dict[str, Any]) -> bytes:
    if "enum" in schema and rng.random() < 0.6:
        return str(rng.choice(schema["enum"])).encode()
    return rng.choice(("", "x", "a" * 300, "gzip", "é", "0.1.0", "2.0.0")).encode("utf-8")


def _ingest(
    label: str, path: str, body: bytes, media: str, rng: random.Random, expect: Expect | None
) -> Case:
    headers = [(b"content-type", media.encode())]
    if rng.random() < 0.3:
        coding = rng.choice(("gzip", "zstd"))
        body = encode(body, coding)
        headers.append((b"content-encoding", coding.encode()))
    return Case(0, label, "POST", path, b"", headers, body, expect)


def _fuzzed(label: str, path: str, body: bytes, media: str, rng: random.Random) -> Case:
    """A fuzzed body with a content type and encoding drawn as well."""
    headers = [
        (b"content-type", (media if rng.random() < 0.7 else rng.choice(CONTENT_TYPES)).encode())
    ]
    if rng.random() < 0.3:
        coding = rng.choice(ENCODINGS)
        headers.append((b"content-encoding", coding.encode()))
        if rng.random() < 0.6:
            body = encode(body, coding)
    if rng.random() < 0.05:
        headers.append((b"idempotency-key", rng.choice((b"k", b"", b"x" * 300, b"\xe9"))))
    return Case(0, label, "POST", path, b"", headers, body)


def _fields_after_seed(case: Case) -> tuple[Any, ...]:
    return (case.label, case.method, case.path, case.query, case.headers, case.body, case.expect)
