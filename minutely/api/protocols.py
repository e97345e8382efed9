"""The ecosystem's write protocols over HTTP: thin adapters onto a node's ``ingest_with``.

    POST /api/v1/write     Prometheus remote_write 1.0 (snappy protobuf)    204 | 400 text
    POST /write            InfluxDB 1.x line protocol (precision=)           204 | 400 JSON
    POST /api/v2/write     InfluxDB 2.x line protocol (precision=)           204 | 400 JSON
    GET  /ping             InfluxDB's liveness probe                         204
    POST /v1/metrics       OTLP/HTTP metrics, protobuf or JSON               200 (partial
                                                                             success) | 400
    GET  /api/v1/ingest/protocols   points taken, rejected and dropped per protocol

Each route reads the body (never past the node's limit, compressed or not), hands the node a
decoder for it (``minutely.ingest.<protocol>``, run on a worker thread with the node's accept
window) and answers in the protocol's own shapes, so its usual clients need nothing special:
success and partial success, per-point reasons where the protocol has a place for them, and
the bus's backpressure as 429 (full) or 503 (closed, store behind) with ``Retry-After``,
which each of these clients retries.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minutely import workers
from minutely.api import encoding, render
from minutely.api.ports import PointSink, ProtocolSink, Refusing
from minutely.errors import Backpressure, DecodeError, PayloadTooLarge, Unavailable
from minutely.ingest import Decoded, graphite, influx, otlp
from minutely.ingest import remote_write as rw
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits
from minutely.ingest.validate import Body


@dataclass
class ProtocolCounts:
    """What one protocol has been sent since the node started."""

    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    #: remote_write's stale markers: dropped by design, neither accepted nor rejected
    dropped: int = 0
    #: requests refused whole, by ``REFUSALS``' reason for their status
    refused: dict[str, int] = field(default_factory=dict)
    #: points rejected one by one, by their code (``minutely.ingest.validate.REASONS``)
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, decoded: Decoded, dropped: int = 0) -> None:
        self.requests += 1
        self.accepted += decoded.accepted
        self.rejected += decoded.rejected
        self.dropped += dropped
        for code, n in decoded.reasons.items():
            self.reasons[code] = self.reasons.get(code, 0) + n

    def refuse(self, status: int) -> None:
        reason = REFUSALS.get(status, str(status))
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def counting(self, error: ErrorAnswer) -> ErrorAnswer:
        """``error``, counting each refusal it answers."""

        def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
            self.refuse(status)
            return error(status, message, headers)

        return refuse


#: why a request is refused whole, by the status it is answered with
REFUSALS = {
    400: "undecodable",
    413: "too_large",
    415: "unsupported",
    422: "conflict",
    429: "backpressure",
    503: "unavailable",
}


#: the largest declared body read into a buffer of its length made at once; a larger one is
#: read into a buffer grown as it comes, since making it at once writes all its zeros then
#: (0.27 s for 500 MB), while past glibc's largest mmap threshold, 32 MiB, growth remaps pages
PREALLOCATE_MAX = 32 << 20


async def read_body(request: Request, limit: int) -> bytearray:
    """The request body as sent, refused past ``limit`` bytes (``PayloadTooLarge``).

    The chunks are copied into one ``bytearray`` as they arrive (never joined, which copies
    the whole body at once while the event loop waits): one of the declared length, or one
    grown as the body comes when its length is not declared or over ``PREALLOCATE_MAX``."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    if size is not None and size > limit:
        msg = f"body of {declared} bytes is over the limit of {limit} bytes"
        raise PayloadTooLarge(msg)
    if size is not None and size <= PREALLOCATE_MAX:
        return await _read_into(request, bytearray(size))
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            msg = f"body is over the limit of {limit} bytes"
            raise PayloadTooLarge(msg)
        body += chunk
    return body


async def _read_into(request: Request, body: bytearray) -> bytearray:
    """The body read into ``body``, its declared length (growing it would copy it again and
    again below the mmap threshold: bytearray grows by an eighth at a time)."""
    filled = 0
    with memoryview(body) as view:
        async for chunk in request.stream():
            end = filled + len(chunk)
            if end > len(body):  # the HTTP parser stops a body at its length; a test app may not
                msg = f"body is longer than its Content-Length of {len(body)} bytes"
                raise PayloadTooLarge(msg)
            view[filled:end] = chunk
            filled = end
    del body[filled:]
    return body


def note_refusal(node: object, error: BaseException) -> None:
    """Count a refusal by the limit it names, on a node that counts them."""
    if isinstance(node, Refusing):
        node.refusals.note(error)


def retry_after(e: Backpressure) -> tuple[int, dict[str, str]]:
    """The status and ``Retry-After`` header of a backpressure answer."""
    seconds = str(max(1, math.ceil(e.retry_after)))
    return (503 if isinstance(e, Unavailable) else 429), {"Retry-After": seconds}


#: how a route answers an error in its protocol's own shape: (status, message, headers)
ErrorAnswer = Callable[[int, str, "dict[str, str] | None"], Response]


async def take(
    request: Request,
    sink: ProtocolSink,
    decode: Callable[[Body, Limits], Decoded],
    error: ErrorAnswer,
    decompress: bool = True,
) -> Decoded | Response:
    """Read the body (decompressed per ``Content-Encoding`` when ``decompress``), run
    ``decode`` on it through the node, and map what can go wrong to ``error``'s answers:
    413 over the limit, 415 an unknown encoding, 400 undecodable, 429/503 backpressure."""
    try:
        body: Body = await read_body(request, sink.max_body_bytes)
        coding = request.headers.get("content-encoding") if decompress else None
        if coding:
            undo = functools.partial(encoding.decompress, body, coding, sink.max_body_bytes)
            body = await workers.run(undo)
        return await sink.ingest_with(lambda limits: decode(body, limits))
    except PayloadTooLarge as e:
        note_refusal(sink, e)
        return error(413, str(e), None)
    except encoding.UnsupportedEncoding as e:
        return error(415, str(e), None)
    except DecodeError as e:
        return error(400, str(e), None)
    except Backpressure as e:
        note_refusal(sink, e)
        status, headers = retry_after(e)
        return error(status, str(e), headers)


def routes(node: PointSink, counts: dict[str, ProtocolCounts] | None = None) -> list[Route]:
    """The protocol routes of ``node``; none if it cannot run protocol decoders. They count
    what they take in ``counts`` (by protocol) when it is given."""
    if not isinstance(node, ProtocolSink):
        return []
    sink: ProtocolSink = node
    counts = counts if counts is not None else {}
    for name in ("remote_write", "influx", "otlp"):
        counts.setdefault(name, ProtocolCounts())
    # series resolved once per app, not once per request
    rw_cache = rw.series_cache(sink.label_mapping)
    influx_cache = influx.series_cache(sink.label_mapping)
    otlp_cache = otlp.series_cache(sink.label_mapping)

    async def remote_write(request: Request) -> Response:
        """Prometheus' own receiver answers 204 No Content; a sender counts any 2xx as done,
        drops a batch on another 4xx (so a 400 lists why), and retries 5xx and 429."""
        text = counts["remote_write"].counting(_text)
        refused = rw.check_content_type(request.headers.get("content-type", ""))
        if refused is not None:
            return text(415, refused, None)
        coding = request.headers.get("content-encoding", "snappy").strip().lower()
        if coding != "snappy":
            msg = f"Content-Encoding {coding!r}: remote_write bodies are snappy"
            return text(415, msg, None)
        stale = 0

        def decode(raw: Body, limits: Limits) -> Decoded:
            nonlocal stale
            body = rw.unsnappy(raw, sink.max_body_bytes)
            result = rw.decode_remote_write(body, sink.label_mapping, limits, rw_cache)
            stale = result.stale
            return result.decoded

        decoded = await take(request, sink, decode, text, decompress=False)
        if isinstance(decoded, Response):
            return decoded
        counts["remote_write"].add(decoded, stale)
        if decoded.rejected:
            return _text(400, _summary(decoded))
        return Response(status_code=204)

    def influx_write(v2: bool) -> Callable[[Request], Awaitable[Response]]:
        """InfluxDB answers 204 when every point is written and 400 with its error JSON
        (``{"error"}`` in 1.x, ``{"code", "message"}`` in 2.x) when some are not: the good
        points of the request are kept all the same, as InfluxDB keeps them."""

        def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
            if v2:
                code = _INFLUX_CODES.get(status, "invalid")
                body = render.dumps({"code": code, "message": message})
            else:
                body = render.dumps({"error": message})
            return Response(body, status, media_type="application/json", headers=headers)

        async def write(request: Request) -> Response:
            precision = request.query_params.get("precision", "ns") or "ns"

            def decode(body: Body, limits: Limits) -> Decoded:
                mapping = sink.label_mapping
                return influx.decode_line_protocol(body, precision, mapping, limits, influx_cache)

            decoded = await take(request, sink, decode, counts["influx"].counting(error))
            if isinstance(decoded, Response):
                return decoded
            counts["influx"].add(decoded)
            if decoded.rejected:
                return error(400, "partial write: " + _summary(decoded, _influx_line))
            return Response(status_code=204)

        return write

    async def otlp_metrics(request: Request) -> Response:
        """OTLP/HTTP answers 200 with an ``ExportMetricsServiceResponse`` in the request's
        encoding, its ``partial_success`` counting the rejected points (the others are kept),
        400 with a ``google.rpc.Status`` for a body that is not a request, and 429/503 with
        ``Retry-After``, which OTLP exporters retry."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in (otlp.PROTOBUF, otlp.JSON):
            message = f"Content-Type {media!r}: send {otlp.PROTOBUF} or {otlp.JSON}"
            counts["otlp"].refuse(415)
            return Response(otlp.status(message, otlp.JSON), 415, media_type=otlp.JSON)

        def decode(body: Body, limits: Limits) -> Decoded:
            return otlp.decode_otlp(body, media, sink.label_mapping, limits, otlp_cache)

        def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
            return Response(otlp.status(message, media), status, headers, media_type=media)

        decoded = await take(request, sink, decode, counts["otlp"].counting(error))
        if isinstance(decoded, Response):
            return decoded
        counts["otlp"].add(decoded)
        return Response(otlp.response(decoded, media), media_type=media)

    async def ping(request: Request) -> Response:
        return Response(status_code=204, headers={"X-Influxdb-Version": "minutely"})

    async def protocol_counts(request: Request) -> Response:
        # the refusals by reason are /metrics' (``selfmetrics.py``); this shape stays as it was
        body = {
            name: {k: v for k, v in asdict(counts[name]).items() if k not in ("refused", "reasons")}
            for name in ("remote_write", "influx", "otlp")
        }
        return Response(render.dumps(body), media_type="application/json")

    return [
        Route("/api/v1/write", remote_write, methods=["POST"]),
        Route("/write", influx_write(v2=False), methods=["POST"]),
        Route("/api/v2/write", influx_write(v2=True), methods=["POST"]),
        Route("/ping", ping, methods=["GET", "HEAD"]),
        Route("/v1/metrics", otlp_metrics, methods=["POST"]),
        Route("/api/v1/ingest/protocols", protocol_counts),
    ]


def warm_up() -> None:
    """Load the compiled decoders (numba's cache on disk, or a compile) now, at startup,
    rather than in the first request of each protocol; each decodes twice, so the second
    finds its series in the cache as a running node's requests do."""
    mapping = LabelMapping(default_server="warm-up")
    limits = Limits(now=0.0, oldest=0.0, max_future=0.0)
    request = rw.WriteRequest()
    request.timeseries.add().samples.add(value=1.0, timestamp=0)
    body = request.SerializeToString()
    export = ExportMetricsServiceRequest()
    metric = export.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    metric.gauge.data_points.add(as_double=1.0)
    otlp_body = export.SerializeToString()
    caches = (rw.series_cache(mapping), influx.series_cache(mapping))
    caches_graphite = graphite.series_cache(mapping, 1)
    cache_otlp = otlp.series_cache(mapping)
    for _ in range(2):
        rw.decode_remote_write(body, mapping, limits, caches[0])
        influx.decode_line_protocol(b"m,host=h v=1.5,w=2i 0", "s", mapping, limits, caches[1])
        graphite.decode_graphite(b"a.h.m 1.5 0\n", mapping, 1, limits, 1, caches_graphite)
        otlp.decode_otlp(otlp_body, otlp.PROTOBUF, mapping, limits, cache_otlp)


def _summary(decoded: Decoded, line: Callable[[int, str], str] | None = None) -> str:
    """``accepted N, rejected M: <first reasons>``, one reason a line."""
    head = f"accepted {decoded.accepted} points, rejected {decoded.rejected}"
    show = line or (lambda index, reason: f"point {index}: {reason}")
    return "\n".join([head, *(show(e.index, e.reason) for e in decoded.errors)])


#: InfluxDB 2.x's error codes for the statuses these routes answer
_INFLUX_CODES = {
    400: "invalid",
    413: "request too large",
    415: "invalid",
    429: "too many requests",
    503: "unavailable",
}


def _influx_line(index: int, reason: str) -> str:
    return reason  # the reason already names the line


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message, status_code=status, media_type="text/plain", headers=headers)
