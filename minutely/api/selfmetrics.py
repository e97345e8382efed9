"""minutely's own metrics: ``GET /metrics`` in the Prometheus exposition format.

Each app has a ``SelfMetrics`` of its own (its own ``CollectorRegistry``: tests build many
apps in one process). Almost every figure is read when scraped, from what the node already
keeps for ``/api/v1/status`` and from the per-protocol ingest counts the routes keep, so the
ingest and query paths pay nothing for them; only the request-duration histogram is observed
per request, by a small ASGI middleware that labels it with the matched route's template::

    minutely_ingest_requests_total{protocol}            requests answered (points decoded)
    minutely_points_accepted_total{protocol}            points accepted
    minutely_points_rejected_total{protocol,reason}     points refused one by one, by their
                                                        reason's code (``REASONS`` of
                                                        ``minutely.ingest.validate``; the
                                                        answer lists each one's text)
    minutely_points_dropped_total{protocol}             remote_write's stale markers
    minutely_ingest_refused_total{protocol,reason}      requests refused whole: too_large,
                                                        unsupported, undecodable, conflict,
                                                        backpressure, unavailable
    minutely_graphite_connections_total                 Graphite TCP connections taken
    minutely_graphite_refused_points_total{limit}       Graphite points a limit dropped (the
                                                        protocol has no answer to refuse with)
    minutely_http_request_duration_seconds{handler,method,code}   histogram per route template
    minutely_fold_seconds{copy,partition}               summary: batches folded, time folding
    minutely_folded_points_total{copy,partition}        points folded into the ring (or store)
    minutely_fold_failing{copy,partition}               1 while batches fail to fold
    minutely_store_insert_seconds                       summary: inserts, time inserting
    minutely_store_rows_total, minutely_store_write_errors_total, minutely_store_pending_rows,
    minutely_store_pending_bytes, minutely_store_failing, minutely_store_dead_rows_total
    minutely_bus_backlog_messages{copy,partition}       messages published and not committed
    minutely_bus_backlog_bytes{copy,partition}          their bytes (embedded bus)
    minutely_bus_backlog_seconds{copy,partition}        age of the oldest of them: the lag
    minutely_bus_published_messages_total{copy,partition}
    minutely_hot_ring_bytes                             the ring's memory
    minutely_series, minutely_servers, minutely_metrics, minutely_uptime_seconds
    minutely_status_up                                  0 when ``status()`` failed (the broker
                                                        away, say): the rest still answers

``protocol`` is one of ``PROTOCOLS``; ``copy`` is empty on a single node and ``server`` or
``metric`` on a cluster node, whose shards each have a ``partition``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minutely.api.ports import PointSink
from minutely.api.protocols import ProtocolCounts
from minutely.ingest.validate import REASONS

log = logging.getLogger(__name__)

#: the ways points come in, each counted apart (``json`` and ``arrow`` are ``/api/v1/points``)
PROTOCOLS = ("json", "arrow", "remote_write", "influx", "otlp", "graphite")

#: request durations from 0.5 ms (a ring read) to 10 s (a year from the store)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SelfMetrics:
    """The registry of one app, its ingest counts and its request histogram."""

    def __init__(self, node: PointSink) -> None:
        self.node = node
        #: per protocol, what the ingest routes took and refused (Graphite's: the node's status)
        self.counts = {name: ProtocolCounts() for name in PROTOCOLS if name != "graphite"}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(node, self.counts))
        self.durations = Histogram(
            "minutely_http_request_duration_seconds",
            "Time to answer a request, by route template, method and status code.",
            ["handler", "method", "code"],
            registry=self.registry,
            buckets=BUCKETS,
        )

    def route(self) -> Route:
        """``GET /metrics``: the registry in the format the scraper's Accept asks for."""

        async def metrics(request: Request) -> Response:
            encode, media_type = choose_encoder(request.headers.get("accept", ""))
            body = await run_in_threadpool(encode, self.registry)  # status may ask the bus
            return Response(body, media_type=media_type)

        return Route("/metrics", metrics, methods=["GET"])

    def middleware(self) -> Middleware:
        """Times every request into ``durations``."""
        return Middleware(_Timing, histogram=self.durations)


class _Timing:
    """ASGI middleware: observes each HTTP request's duration under the template of the
    route that answered it (a raw path would make a series per server name)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram
        #: each label set's child, kept: ``labels()`` takes a lock and builds a key each call
        self._children: dict[tuple[str, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers if the app raises before it starts a response

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # the router puts the matched route in the scope
            template = getattr(route, "path_format", None)
            handler = "unmatched" if template is None else template or "/"
            key = (handler, scope["method"], status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.histogram.labels(handler, key[1], str(status))
            child.observe(time.perf_counter() - began)


class _Collector:
    """Read at scrape time: the ingest counts, and what the node's ``status()`` says (a
    single node's aggregator, store writer and bus, or a cluster node's shards and
    partitions)."""

    def __init__(self, node: PointSink, counts: Mapping[str, ProtocolCounts]) -> None:
        self.node = node
        self.counts = counts

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            status = self.node.status()
        except Exception as exc:  # the broker is away, say: the other figures still answer
            log.warning("no status figures for /metrics: %s", exc)
            yield _gauge("status_up", "1 when the node's status could be read.", value=0)
            yield from _ingest(self.counts, None)
            return
        yield _gauge("status_up", "1 when the node's status could be read.", value=1)
        yield from _ingest(self.counts, status.get("graphite"))
        yield _gauge("uptime_seconds", "Seconds since the node started.", value=status["uptime"])
        for key in ("servers", "metrics", "series"):
            if key in status:
                yield _gauge(key, f"Distinct {key} known.", value=status[key])
        hot = status.get("hot")
        if hot is not None:
            yield _gauge("hot_ring_bytes", "Bytes the hot ring holds.", value=hot["bytes"])
        yield from _folds(status)
        yield from _limits(status)
        if status.get("store") is not None:
            yield from _store(status["store"])
        yield from _bus(status)


def _ingest(
    counts: Mapping[str, ProtocolCounts], graphite: Mapping[str, Any] | None
) -> Iterator[Metric]:
    """The routes' counts per protocol, and the Graphite listener's (``GraphiteCounts``)."""
    requests = _counter("ingest_requests", "Requests whose points were decoded.", "protocol")
    accepted = _counter("points_accepted", "Points accepted.", "protocol")
    rejected = _counter(
        "points_rejected", "Points refused one by one, by reason.", "protocol", "reason"
    )
    dropped = _counter("points_dropped", "remote_write stale markers, dropped.", "protocol")
    refused = _counter("ingest_refused", "Requests refused whole, by reason.", "protocol", "reason")
    for name, c in counts.items():
        requests.add_metric([name], c.requests)
        accepted.add_metric([name], c.accepted)
        _by_reason(rejected, name, c.reasons)
        dropped.add_metric([name], c.dropped)
        for reason, n in sorted(c.refused.items()):
            refused.add_metric([name, reason], n)
    yield from (requests, dropped, refused)
    if graphite is not None:
        accepted.add_metric(["graphite"], graphite["accepted"])
        _by_reason(rejected, "graphite", graphite.get("reasons", {}))
        yield _counter(
            "graphite_connections", "Graphite TCP connections taken.", value=graphite["connections"]
        )
        dropped = _counter(
            "graphite_refused_points", "Graphite points a limit dropped, by its setting.", "limit"
        )
        for limit, n in sorted(graphite.get("refused", {}).items()):
            dropped.add_metric([limit], n)
        yield dropped
    yield from (accepted, rejected)


def _by_reason(family: CounterMetricFamily, protocol: str, reasons: Mapping[str, int]) -> None:
    """One sample per code of ``REASONS``, 0 for those a protocol has not rejected for: a
    fixed set, so a rate over any of them starts from 0."""
    for code in REASONS:
        family.add_metric([protocol, code], reasons.get(code, 0))


def _limits(status: Mapping[str, Any]) -> Iterator[Metric]:
    """Requests refused per limit (``minutely.limits``), from the status's ``limits``."""
    limits = status.get("limits")
    if limits is None:
        return
    family = _counter("limit_refusals", "Requests refused by a limit, by its setting.", "limit")
    for limit, n in limits["refused"].items():
        family.add_metric([limit], n)
    yield family


def _folds(status: Mapping[str, Any]) -> Iterator[Metric]:
    """The aggregator's (a single node) or each shard's (a cluster node)."""
    folds: list[tuple[str, str, Mapping[str, Any]]] = []
    if status.get("aggregator") is not None:
        folds.append(("", "", status["aggregator"]))
    for shard in status.get("shards", []):
        folds.append((shard["copy"], str(shard["partition"]), shard["aggregator"]))
    if not folds:
        return
    seconds = SummaryMetricFamily(
        "minutely_fold_seconds",
        "Batches folded into the ring, and the time folding them.",
        labels=["copy", "partition"],
    )
    points = _counter("folded_points", "Points folded.", "copy", "partition")
    failing = _gauge("fold_failing", "1 while batches fail to fold.", "copy", "partition")
    for copy, partition, stats in folds:
        labels = [copy, partition]
        if "batches" in stats:
            seconds.add_metric(labels, stats["batches"], stats.get("fold_seconds", 0.0))
        points.add_metric(labels, stats["points"])
        failing.add_metric(labels, 0 if stats["fold_error"] is None else 1)
    yield from (seconds, points, failing)


def _store(stats: Mapping[str, Any]) -> Iterator[Metric]:
    """The store writer's figures (``store_writer.WriterStats``)."""
    yield SummaryMetricFamily(
        "minutely_store_insert_seconds",
        "Inserts into the store, and the time they took.",
        count_value=stats["inserts"],
        sum_value=stats["seconds"],
    )
    yield _counter("store_rows", "Minute rows written to the store.", value=stats["rows"])
    yield _counter("store_write_errors", "Failed store writes.", value=stats["errors"])
    yield _counter(
        "store_dead_rows", "Rows the store refused, set aside.", value=stats["dead_rows"]
    )
    yield _gauge("store_pending_rows", "Rows waiting for the store.", value=stats["pending"])
    yield _gauge(
        "store_pending_bytes", "Bytes waiting for the store.", value=stats["pending_bytes"]
    )
    failing = 0 if stats["failing_since"] is None else 1
    yield _gauge("store_failing", "1 while writes to the store fail.", value=failing)


def _bus(status: Mapping[str, Any]) -> Iterator[Metric]:
    """The bus's backlog per partition: a single node's bus, or a cluster's streams."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = [
        ("", str(p["partition"]), p) for p in status.get("bus", [])
    ]
    cluster = status.get("cluster")
    if cluster is not None:
        rows += [(p["copy"], str(p["partition"]), p) for p in cluster["partitions"]]
    if not rows:
        return
    families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
        "backlog_messages": _gauge(
            "bus_backlog_messages", "Messages published and not committed.", "copy", "partition"
        ),
        "backlog_bytes": _gauge(
            "bus_backlog_bytes", "Bytes published and not committed.", "copy", "partition"
        ),
        "backlog_seconds": _gauge(
            "bus_backlog_seconds", "Age of the oldest message not committed.", "copy", "partition"
        ),
        "published": _counter("bus_published_messages", "Messages published.", "copy", "partition"),
    }
    for copy, partition, stats in rows:
        for key, family in families.items():
            if key in stats:
                family.add_metric([copy, partition], stats[key])
    yield from families.values()


def _counter(name: str, doc: str, *labels: str, value: float | None = None) -> CounterMetricFamily:
    """``minutely_<name>_total``: one sample (``value``) or a family by ``labels``."""
    if value is not None:
        return CounterMetricFamily(f"minutely_{name}", doc, value=value)
    return CounterMetricFamily(f"minutely_{name}", doc, labels=list(labels))


def _gauge(name: str, doc: str, *labels: str, value: float | None = None) -> GaugeMetricFamily:
    if value is not None:
        return GaugeMetricFamily(f"minutely_{name}", doc, value=value)
    return GaugeMetricFamily(f"minutely_{name}", doc, labels=list(labels))
