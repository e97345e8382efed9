"""The HTTP app: thin adapters that parse a request, call the service, and render the answer.

    GET  /healthz                                   liveness
    GET  /openapi.json                              the OpenAPI 3.1 document of this app's
                                                    routes (``openapi.py``)
    GET  /metrics                                   minutely's own metrics, for Prometheus
                                                    (``selfmetrics.py``)
    GET  /api/v1/status                             ring, aggregator and bus figures
    POST /api/v1/points                             ingest (JSON or Arrow IPC, optionally
                                                    Content-Encoding gzip or zstd; an
                                                    Idempotency-Key header makes retries safe)
    GET  /api/v1/servers | /api/v1/metrics          names, sorted
    GET  /api/v1/servers/{server}/series            Q1: one server, every metric, per step
    GET  /api/v1/metrics/{metric}/series            Q2: one metric, every server, per step
    GET  /api/v1/servers/{server}/summary           Q3: one server, every metric, over a range
    GET  /api/v1/metrics/{metric}/summary           Q4: one metric, every server, over a range
    GET  /api/v1/metrics/{metric}/fleet             one metric merged over all servers, per step
    GET  /api/v1/cluster                            a cluster node: nodes, leases, shards
    GET  /api/v1/local/...                          a cluster node: a question routed to it
                                                    by another node, answered from what it
                                                    holds as exact partials (``partials.py``)
    GET  /                                          the dashboard (static files, from the
                                                    package: its JS libraries are copied into
                                                    dashboard/vendor/ when the package is built)

Before any route, ``auth.Guard`` refuses a ``Host`` that is not allowed (421) and, once a token
exists, a request without one (401) or with too small a scope (403); then
``inflight.BodyBudgetGuard`` refuses a body that would take the bodies in flight past
``max_inflight_body_bytes`` (429 with ``Retry-After``) before any of it is read.

Errors are JSON ``{"error": "..."}``: 400 names the bad parameter, 404 the unknown name, 413
an oversized body (decompressed, too), 415 a Content-Encoding other than gzip or zstd, 422 an
Idempotency-Key reused for another body, 429 a full bus or a request past a series limit
and 503 a closed bus (all with ``Retry-After``); a refusal by a limit names its setting
(``minutely/limits.py``). Query answers are JSON unless
``?format=csv|arrow`` (or ``Accept: text/csv`` or ``application/vnd.apache.arrow.stream``)
asks for CSV or an Arrow IPC stream (layout in ``arrow.py``); an unknown ``format`` is a 400.
Series and fleet answers take ``fields=min,max,avg,sum,count`` (any subset) to carry fewer
arrays. Query answers carry a ``Server-Timing: app;dur=<ms>`` header: the time spent answering,
without the network. An answer of at most ``INLINE_CELLS`` cells (series × buckets, known
from the question and the registry before anything is read) that reads only memory is made
on the event loop, where a thread hop would cost more than the answer; any other is made on a
worker thread, and a series answer of more than ``render.CHUNK_CELLS`` cells is streamed as
JSON or CSV a few series at a time (rendered on a worker thread too), so no question holds up
the others. A streamed answer's headers are sent before its chunks are made, so its
``Server-Timing`` is ``app;desc="until the first chunk";dur=<ms>``; the whole answer's time
is logged at debug level once its last chunk is made. In a cluster, an answer whose
partition has no ready owner is given from the store alone and says so: ``"partial": true``
in JSON and an ``X-Minutely-Partial: true`` header.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Literal, Protocol, cast

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from minutely import warm, workers
from minutely.api import arrow, encoding, openapi, params, partials, protocols, render
from minutely.api.auth import LOOPBACK_ONLY, Access, Guard
from minutely.api.inflight import BodyBudgetGuard
from minutely.api.ports import Answers, ClusterMember, Lifecycle, PointSink, QueryNode
from minutely.api.prometheus import routes as prometheus_routes
from minutely.api.selfmetrics import SelfMetrics
from minutely.errors import (
    Backpressure,
    BadParameter,
    DecodeError,
    IdempotencyConflict,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from minutely.ingest.arrow import CONTENT_TYPE as ARROW_STREAM
from minutely.ingest.validate import Body as RequestBody
from minutely.limits import MAX_INFLIGHT_BODY_BYTES, BodyBudget

JSON = "application/json"
CSV = "text/csv; charset=utf-8"
#: what ``format=`` may say, and the media type each answer is sent as
MEDIA_TYPES = {"json": JSON, "csv": CSV, "arrow": arrow.MEDIA_TYPE}

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
#: the chart library, put into the package by scripts/vendor-js (make does) before it is built
VENDOR_DIR = DASHBOARD_DIR / "vendor" / "uplot"

#: marks an answer given from the store alone (a cluster partition without a ready owner)
PARTIAL_HEADER = "X-Minutely-Partial"
#: where a cluster node answers the questions other nodes route to it
LOCAL_PREFIX = "/api/v1/local"

log = logging.getLogger(__name__)

#: an answer's body: whole, or the chunks of a large JSON or CSV answer, streamed
Body = bytes | memoryview | Iterator[bytes]
#: an answer of at most this many cells, read from memory, is made on the event loop: it
#: holds the loop no longer than one chunk of a streamed answer holds the interpreter
INLINE_CELLS = render.CHUNK_CELLS


def _timed(chunks: Iterator[bytes], path: str, began: float) -> Iterator[bytes]:
    """``chunks``, logging (at debug) how long the whole answer took once the last is made:
    the ``Server-Timing`` header was sent before it."""
    size = 0
    for chunk in chunks:
        size += len(chunk)
        yield chunk
    took = (time.perf_counter() - began) * 1000
    log.debug("streamed %s: %d bytes in %.1f ms", path, size, took)


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(render.dumps({"error": message}), status, headers)


#: the status counted for a request whose client left before its body was read (nginx's):
#: no answer can reach it, and it was not the server's failure
CLIENT_GONE = 499


async def _client_gone(request: Request, error: Exception) -> Response:
    return _error(CLIENT_GONE, "the client closed the connection before its body was read")


def _answer_format(request: Request) -> str:
    """``format=`` if given (one of ``MEDIA_TYPES``), else the Accept header; JSON by default
    and whenever the header names JSON too."""
    asked = request.query_params.get("format")
    if asked is not None:
        if asked not in MEDIA_TYPES:
            problem = f"{asked!r} is not one of {', '.join(MEDIA_TYPES)}"
            raise BadParameter(param="format", problem=problem)
        return asked
    accept = request.headers.get("accept", "")
    if JSON in accept:
        return "json"
    if arrow.MEDIA_TYPE in accept:
        return "arrow"
    return "csv" if "text/csv" in accept else "json"


def _rate_fn(fn: str | None, local: bool) -> bool:
    """Whether ``fn=rate`` was asked for (counters as rates per second, in every format)."""
    if fn is None or local:
        return False
    if fn != "rate":
        raise BadParameter(param="fn", problem=f"{fn!r} is not a function: the one is 'rate'")
    return True


def _kinds_body(body: bytes) -> dict[str, str]:
    """``{"counter": [names], "gauge": [names]}`` as name -> kind."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadParameter(param="body", problem=f"is not JSON: {e}") from None
    if not isinstance(raw, dict) or not set(raw) <= {"counter", "gauge"}:
        problem = 'must be an object {"counter": [names], "gauge": [names]}'
        raise BadParameter(param="body", problem=problem)
    out: dict[str, str] = {}
    for kind, names in raw.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            problem = f"{kind!r} must be a list of non-empty metric names"
            raise BadParameter(param="body", problem=problem)
        out |= dict.fromkeys(names, kind)
    return out


def _ingest_routes(node: PointSink, selfmon: SelfMetrics) -> list[Route | Mount]:
    """The routes every node that takes points has: health, status, metrics and ingest."""
    limit = node.max_body_bytes

    async def healthz(request: Request) -> Response:
        return _json(b'{"status":"ok"}')

    async def status(request: Request) -> Response:
        # off the loop: it asks the engine and takes the ring's lock, which a fold or an
        # insert may hold for a while
        return _json(render.dumps(await run_in_threadpool(node.status)))

    async def read_body(request: Request) -> RequestBody:
        body = await protocols.read_body(request, limit)
        coding = request.headers.get("content-encoding")
        if coding is None:
            return body
        return await workers.run(lambda: encoding.decompress(body, coding, limit))

    async def points(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        counts = selfmon.counts["arrow" if ARROW_STREAM in content_type.lower() else "json"]
        error = counts.counting(_error)
        try:
            body = await read_body(request)
            decoded = await node.ingest(body, content_type, request.headers.get("idempotency-key"))
        except PayloadTooLarge as e:
            protocols.note_refusal(node, e)
            return error(413, str(e), None)
        except encoding.UnsupportedEncoding as e:
            return error(415, str(e), None)
        except (DecodeError, BadParameter) as e:
            protocols.note_refusal(node, e)
            return error(400, str(e), None)
        except IdempotencyConflict as e:
            return error(422, str(e), None)
        except Backpressure as e:
            protocols.note_refusal(node, e)
            retry = str(max(1, math.ceil(e.retry_after)))
            code = 503 if isinstance(e, Unavailable) else 429
            return error(code, f"{e}; retry after {retry}s", {"Retry-After": retry})
        counts.add(decoded)
        errors = [
            {"index": err.index, "reason": err.reason, "code": err.code} for err in decoded.errors
        ]
        return _json(
            render.dumps(
                {"accepted": decoded.accepted, "rejected": decoded.rejected, "errors": errors}
            )
        )

    return [
        Route("/healthz", healthz),
        Route("/api/v1/status", status),
        Route("/api/v1/points", points, methods=["POST"]),
        selfmon.route(),
        *protocols.routes(node, selfmon.counts),  # remote_write, Influx, OTLP (Graphite: TCP)
    ]


def _lifespan(
    node: Lifecycle, manage: bool
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage:
            began = time.perf_counter()
            protocols.warm_up()  # compiled decoders loaded before the first request
            warm.compiled()  # and the ring's kernels, before the first fold holds its lock
            took = time.perf_counter() - began
            if took > 5:
                log.info("compiled the kernels in %.0fs (`minutely compile` does it ahead)", took)
            node.start()
        try:
            yield
        finally:
            if manage:
                await node.stop()

    return lifespan


class _IngestNode(PointSink, Lifecycle, Protocol):
    """What an ingest-only node offers the app."""


def _middleware(
    node: object, selfmon: SelfMetrics, access: Access, bodies: int
) -> list[Middleware]:
    """The self-metrics outermost, so the request counts see every refusal; then the
    ``Host`` and token guard; then the budget of body bytes in flight (``inflight.py``)."""
    budget = BodyBudget(bodies)
    return [
        selfmon.middleware(),
        Middleware(Guard, access=access),
        Middleware(
            BodyBudgetGuard, budget=budget, on_refusal=lambda e: protocols.note_refusal(node, e)
        ),
    ]


def create_ingest_app(
    node: _IngestNode,
    *,
    manage_lifecycle: bool = True,
    access: Access = LOOPBACK_ONLY,
    max_inflight_body_bytes: int = MAX_INFLIGHT_BODY_BYTES,
) -> Starlette:
    """An ingest-only node's app: health, status, metrics and ``POST /api/v1/points``."""
    selfmon = SelfMetrics(node)
    routes = _ingest_routes(node, selfmon)
    return Starlette(
        routes=[*routes, openapi.route(routes)],
        middleware=_middleware(node, selfmon, access, max_inflight_body_bytes),
        lifespan=_lifespan(node, manage_lifecycle),
        exception_handlers={ClientDisconnect: _client_gone},
    )


def create_app(
    node: QueryNode,
    *,
    manage_lifecycle: bool = True,
    access: Access = LOOPBACK_ONLY,
    max_inflight_body_bytes: int = MAX_INFLIGHT_BODY_BYTES,
) -> Starlette:
    """The ASGI app over ``node`` (a ``Service``, or anything with ``QueryNode``'s methods);
    with ``manage_lifecycle`` it starts and stops it. ``access`` says which ``Host`` names
    and tokens it lets in (``auth.py``): by default loopback names and no tokens;
    ``max_inflight_body_bytes`` bounds the body bytes all requests in flight hold."""

    async def servers(request: Request) -> Response:
        return _json(render.dumps({"servers": sorted(node.server_names())}))

    async def metrics(request: Request) -> Response:
        names = sorted(node.metric_names())
        kinds = [node.metric_kind(name) for name in names]
        return _json(render.dumps({"metrics": names, "kinds": kinds}))

    async def declare_kinds(request: Request) -> Response:
        try:
            declared = _kinds_body(await request.body())
            changed = await run_in_threadpool(node.declare_kinds, declared)
        except BadParameter as e:
            return _error(400, str(e))
        except Unavailable as e:  # a cluster's kinds bucket did not answer: nothing kept
            return _error(503, str(e), {"Retry-After": f"{max(1, math.ceil(e.retry_after))}"})
        return _json(render.dumps({"declared": len(declared), "changed": changed}))

    async def dead_letters(request: Request) -> Response:
        return _json(render.dumps(node.dead_letter_list()))

    async def replay_dead_letters(request: Request) -> Response:
        return _json(render.dumps(await node.replay_dead_letters()))

    async def cluster_status(request: Request) -> Response:
        member = cast(ClusterMember, node)
        return _json(render.dumps(await run_in_threadpool(member.cluster_status)))

    def handler(by: Literal["server", "metric"], kind: str, local: bool = False):  # type: ignore[no-untyped-def]
        other = "metric" if by == "server" else "server"
        # a cluster's owner answers a routed question from what it holds, as exact partials
        answers: Answers = node.answers
        if local:
            answers = cast(ClusterMember, node).local_answers

        def answer(query: QueryParams, name: str, fmt: str) -> tuple[Body, bool]:
            """Parse, ask, render (on a worker thread); the body, or the chunks of a large
            one, and whether the answer is partial."""
            only = query.getlist(other) or None
            start, end = params.parse_range(query, node.clock())
            rate = _rate_fn(query.get("fn"), local)
            if kind == "summary":
                summary = answers.summary(by, name, start, end, only)
                if local:
                    return partials.summary_bytes(summary), summary.partial
                if fmt == "json":
                    kinds = kinds_of(by, name, summary.labels)
                    return render.summary_json(summary, kinds, rate), summary.partial
                counters = None
                if rate:
                    counters = render.counter_rows(kinds_of(by, name, summary.labels))
                if fmt == "arrow":
                    return arrow.summary_arrow(summary, counters), summary.partial
                return render.summary_csv(summary, counters), summary.partial
            step = params.parse_step(query.get("step"))
            if local:
                return partials.series_bytes(
                    answers.series(by, name, start, end, step, only)
                ), False
            fields = params.parse_fields(query.get("fields"), render.FIELDS, render.DEFAULT_FIELDS)
            if kind == "fleet":
                series = answers.fleet(name, start, end, step, only)
            else:
                series = answers.series(by, name, start, end, step, only)
            counters = None
            if rate and fmt != "json":
                counters = render.counter_rows(kinds_of(by, name, series.labels))
            if fmt == "arrow":
                write = arrow.fleet_arrow if kind == "fleet" else arrow.series_arrow
                if counters is not None:
                    fields = render.rate_fields(fields)
                return write(series, fields, counters), series.partial
            big = len(series.labels) > render.chunk_rows(series)
            if fmt == "csv":
                if big:  # streamed: no answer is ever one body in memory
                    return render.series_csv_chunks(series, counters), series.partial
                return render.series_csv(series, counters), series.partial
            if kind == "fleet":
                fleet_kind = node.metric_kind(name)
                return render.fleet_json(series, fields, fleet_kind, rate), series.partial
            kinds = kinds_of(by, name, series.labels)
            if big:
                return render.series_json_chunks(series, fields, kinds, rate), series.partial
            return render.series_json(series, fields, kinds, rate), series.partial

        def kinds_of(by: str, name: str, labels: list[str]) -> list[str]:
            if by == "metric":
                return [node.metric_kind(name)] * len(labels)
            return [node.metric_kind(metric) for metric in labels]

        def small(query: QueryParams, name: str) -> bool:
            """Whether the answer holds at most ``INLINE_CELLS`` cells, read from memory
            alone: known from the question and the registry, before anything is read."""
            if local:
                return False
            start, end = params.parse_range(query, node.clock())
            if answers.touches_store(start):
                return False
            n = answers.series_count(by, name)
            if n is None:
                return False
            if only := query.getlist(other):
                n = min(n, len(only))
            if kind != "summary":
                step = params.parse_step(query.get("step"))
                n *= -(-end // step) - start // step  # the buckets, the range aligned to step
            return n <= INLINE_CELLS

        async def endpoint(request: Request) -> Response:
            began = time.perf_counter()
            try:
                fmt = "partials" if local else _answer_format(request)
                args = (request.query_params, request.path_params["name"], fmt)
                if small(*args[:2]):
                    body, partial = answer(*args)  # a thread hop would cost more than this
                else:
                    # an answer as large as max_query_cells allows takes long enough to stall
                    # every other request on the loop
                    body, partial = await workers.run(lambda: answer(*args))
            except BadParameter as e:
                if local:  # the asking node raises it again, and counts it where it was asked
                    return _json(render.dumps(partials.refusal_json(e)), 400)
                protocols.note_refusal(node, e)
                return _error(400, str(e))
            except NotFound as e:
                return _error(404, str(e))
            except Unavailable as e:
                return _error(503, str(e), {"Retry-After": f"{e.retry_after:.0f}"})
            took = (time.perf_counter() - began) * 1000
            media = partials.MEDIA_TYPE if local else MEDIA_TYPES[fmt]
            if isinstance(body, bytes | memoryview):
                headers = {"Server-Timing": f"app;dur={took:.3f}"}
                if partial:
                    headers[PARTIAL_HEADER] = "true"
                return Response(body, media_type=media, headers=headers)
            # headers go before the chunks are made: they can only say when the first could be
            headers = {"Server-Timing": f'app;desc="until the first chunk";dur={took:.3f}'}
            if partial:
                headers[PARTIAL_HEADER] = "true"
            # Starlette iterates a plain iterator on a worker thread, a chunk at a time
            chunks = _timed(body, request.url.path, began)
            return StreamingResponse(chunks, media_type=media, headers=headers)

        return endpoint

    selfmon = SelfMetrics(node)
    routes: list[Route | Mount] = [
        *_ingest_routes(node, selfmon),
        Route("/api/v1/servers", servers),
        Route("/api/v1/metrics", metrics),
        Route("/api/v1/kinds", declare_kinds, methods=["POST"]),
        Route("/api/v1/dead-letters", dead_letters),
        Route("/api/v1/dead-letters/replay", replay_dead_letters, methods=["POST"]),
        Route("/api/v1/servers/{name:path}/series", handler("server", "series")),
        Route("/api/v1/servers/{name:path}/summary", handler("server", "summary")),
        Route("/api/v1/metrics/{name:path}/series", handler("metric", "series")),
        Route("/api/v1/metrics/{name:path}/summary", handler("metric", "summary")),
        Route("/api/v1/metrics/{name:path}/fleet", handler("metric", "fleet")),
        *prometheus_routes(node),  # the Prometheus query API for Grafana (prometheus.py)
    ]
    if isinstance(node, ClusterMember):
        routes += [
            Route("/api/v1/cluster", cluster_status),
            Route(
                f"{LOCAL_PREFIX}/servers/{{name:path}}/series", handler("server", "series", True)
            ),
            Route(
                f"{LOCAL_PREFIX}/servers/{{name:path}}/summary", handler("server", "summary", True)
            ),
            Route(
                f"{LOCAL_PREFIX}/metrics/{{name:path}}/series", handler("metric", "series", True)
            ),
            Route(
                f"{LOCAL_PREFIX}/metrics/{{name:path}}/summary", handler("metric", "summary", True)
            ),
        ]
    if not VENDOR_DIR.is_dir():
        log.warning(
            "the dashboard's chart library is not in the package (%s): run scripts/vendor-js "
            "(make does) and reinstall",
            VENDOR_DIR,
        )
    routes.append(openapi.route(routes))  # the document of the routes above (openapi.py)
    if DASHBOARD_DIR.is_dir():
        routes.append(Mount("/", StaticFiles(directory=DASHBOARD_DIR, html=True)))

    return Starlette(
        routes=routes,
        middleware=_middleware(node, selfmon, access, max_inflight_body_bytes),
        lifespan=_lifespan(node, manage_lifecycle),
        exception_handlers={ClientDisconnect: _client_gone},
    )
