"""Bodies on the wire: ``encode_arrow`` (a ``PointBatch`` as an Arrow IPC stream, the ingest
fast path's body) and ``send``, which posts bodies with bounded concurrency, resends a body
after ``429``/``503`` once ``Retry-After`` has passed (backpressure never drops a point) and
counts every point once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

import httpx
import pyarrow as pa

from minutely import model
from minutely.errors import MinutelyError
from minutely.model import ARROW_SCHEMA, PointBatch

log = logging.getLogger("minutely.sim")

POINTS_PATH: Final = "/api/v1/points"
KINDS_PATH: Final = "/api/v1/kinds"
ARROW_STREAM: Final = model.ARROW_STREAM


# -- the wire --------------------------------------------------------------------------------


def encode_arrow(batch: PointBatch, *, compression: str | None = None) -> bytes:
    """``batch`` as an Arrow IPC stream in ``ARROW_SCHEMA`` (dictionary-encoded names).

    ``compression`` (``"lz4"`` or ``"zstd"``) compresses the buffers; readers decompress them
    transparently. The codes compress well, the values hardly at all.
    """
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, ARROW_SCHEMA, options=options) as writer:
        writer.write_batch(batch.to_arrow())
    body: bytes = sink.getvalue().to_pybytes()
    return body


def auth_headers(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header that carries ``token`` (none without one)."""
    return {"authorization": f"Bearer {token}"} if token else {}


class SendError(MinutelyError):
    """The server refused a body for good (4xx other than 429, 5xx other than 503), or it could
    not be reached after the transport retries. ``status`` is ``None`` for a transport failure.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


#: Per-point error messages kept in ``SendStats.errors`` (all are counted in ``rejected``).
MAX_ERROR_SAMPLES: Final = 20


@dataclass(slots=True)
class SendStats:
    """What a ``send`` or ``run`` has done so far; updated in place as responses arrive."""

    #: points the server accepted / rejected (from its answers; each body counted once)
    accepted: int = 0
    rejected: int = 0
    #: bodies delivered (answered 2xx) and their bytes (each body once, however often resent)
    requests: int = 0
    bytes: int = 0
    #: resends after 429/503 or a transport error
    retries: int = 0
    #: seconds since the send started
    elapsed: float = 0.0
    #: the newest timestamp generated so far (``run`` only), to show how far behind live it is
    latest_ts: float | None = None
    #: the first few per-point errors the server reported
    errors: list[str] = field(default_factory=list)

    @property
    def points_per_second(self) -> float:
        return (self.accepted + self.rejected) / self.elapsed if self.elapsed > 0 else 0.0


Progress = Callable[[SendStats], None]
Sleep = Callable[[float], Awaitable[None]]


def log_progress(clock: Callable[[], float] = time.time) -> Progress:
    """A progress callback that logs one INFO line per call: the rate since the last call and
    how far the newest point is behind ``clock``."""
    last = [0, 0.0]

    def report(stats: SendStats) -> None:
        points = stats.accepted + stats.rejected
        dt = stats.elapsed - last[1]
        rate = (points - last[0]) / dt if dt > 0 else 0.0
        last[:] = [points, stats.elapsed]
        lag = "" if stats.latest_ts is None else f", {clock() - stats.latest_ts:.1f} s behind"
        log.info(
            "%.0f points/s, %d accepted, %d rejected, %d retries, %d requests, %.1f MB%s",
            rate, stats.accepted, stats.rejected, stats.retries, stats.requests,
            stats.bytes / 1e6, lag,
        )  # fmt: skip

    return report


def _retry_after(response: httpx.Response, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds; an HTTP date is not expected)."""
    try:
        value = float(response.headers.get("retry-after", default))
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


def _server_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if key in data:
                return str(data[key])
    return str(data)[:500]


@dataclass(slots=True)
class _Sender:
    """One ``send``: a shared client and stats; ``post`` delivers one body exactly once."""

    client: httpx.AsyncClient
    endpoint: str
    stats: SendStats
    sleep: Sleep
    max_transport_retries: int
    min_backoff: float
    max_backoff: float
    progress: Progress | None
    progress_every: float
    content_type: str = ARROW_STREAM
    started: float = field(default_factory=time.monotonic)
    last_progress: float = field(default_factory=time.monotonic)
    reported_requests: int = 0

    async def post(self, body: bytes) -> None:
        failures = 0
        while True:
            try:
                response = await self.client.post(
                    self.endpoint, content=body, headers={"content-type": self.content_type}
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.max_transport_retries:
                    msg = f"POST {self.endpoint} failed {failures} times; last: {exc!r}"
                    raise SendError(msg) from exc
                self.stats.retries += 1
                await self.sleep(min(self.max_backoff, self.min_backoff * 2**failures))
                continue
            status = response.status_code
            if status in (429, 503):
                # Backpressure: nothing of the body was taken. Wait, then resend it as it is.
                self.stats.retries += 1
                wait = _retry_after(response, 1.0)
                await self.sleep(min(self.max_backoff, max(self.min_backoff, wait)))
                continue
            if not 200 <= status < 300:
                msg = f"POST {self.endpoint}: HTTP {status}: {_server_message(response)}"
                raise SendError(msg, status)
            self._count(response, len(body))
            return

    def _count(self, response: httpx.Response, size: int) -> None:
        try:
            answer = response.json()
        except ValueError as exc:
            msg = f"POST {self.endpoint}: the answer is not JSON: {response.text[:200]!r}"
            raise SendError(msg, response.status_code) from exc
        stats = self.stats
        stats.accepted += int(answer.get("accepted", 0))
        stats.rejected += int(answer.get("rejected", 0))
        stats.requests += 1
        stats.bytes += size
        room = MAX_ERROR_SAMPLES - len(stats.errors)
        if room > 0:
            stats.errors.extend(str(e) for e in answer.get("errors", [])[:room])
        now = time.monotonic()
        stats.elapsed = now - self.started
        if self.progress is not None and now - self.last_progress >= self.progress_every:
            self.report()

    def report(self) -> None:
        """Call ``progress``, unless nothing has been delivered since it was last called."""
        if self.progress is not None and self.stats.requests != self.reported_requests:
            self.last_progress = time.monotonic()
            self.reported_requests = self.stats.requests
            self.progress(self.stats)


async def declare_counters(
    url: str,
    names: list[str],
    transport: httpx.AsyncBaseTransport | None = None,
    token: str | None = None,
) -> bool:
    """Tell the server which metrics are counters (``POST /api/v1/kinds``), so it answers
    their rates. A server that will not take it (an older minutely) is warned about, not
    failed on: its points are taken all the same."""
    headers = auth_headers(token)
    async with httpx.AsyncClient(timeout=30.0, transport=transport, headers=headers) as client:
        try:
            r = await client.post(url.rstrip("/") + KINDS_PATH, json={"counter": names})
        except httpx.TransportError as exc:
            log.warning("could not declare the counters: %s", exc)
            return False
    if r.is_success:
        return True
    log.warning("the server did not take the counters (%d): %s", r.status_code, r.text[:300])
    return False


async def send(
    url: str,
    bodies: AsyncIterator[bytes] | Iterable[bytes],
    concurrency: int = 2,
    *,
    stats: SendStats | None = None,
    progress: Progress | None = None,
    progress_every: float = 5.0,
    timeout: float = 120.0,
    max_transport_retries: int = 5,
    min_backoff: float = 0.05,
    max_backoff: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    content_type: str = ARROW_STREAM,
    token: str | None = None,
) -> SendStats:
    """POST each body to ``{url}/api/v1/points`` with up to ``concurrency`` in flight.

    A ``429`` or ``503`` answer means nothing was taken: the same body is resent after
    ``Retry-After`` seconds (at least ``min_backoff``, at most ``max_backoff``), as often as it
    takes. A transport error is retried with exponential backoff ``max_transport_retries``
    times, then raised as ``SendError`` (a body whose answer was lost may then have been
    counted by the server once more). Any other non-2xx answer raises ``SendError`` with the
    server's message. A synchronous ``bodies`` is pulled in a worker thread, so generating the
    next body overlaps with the requests in flight.

    Pass ``stats`` to watch it fill (or to read it after a cancellation); ``progress`` is
    called with it at most every ``progress_every`` seconds. ``token`` is sent as
    ``Authorization: Bearer`` (a server with tokens answers 401 without one).
    """
    if concurrency < 1:
        msg = f"concurrency must be at least 1, not {concurrency}"
        raise ValueError(msg)
    stats = stats if stats is not None else SendStats()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    pull = _puller(bodies)
    async with httpx.AsyncClient(
        http1=True,
        http2=False,
        limits=limits,
        timeout=timeout,
        transport=transport,
        headers=auth_headers(token),
    ) as client:
        sender = _Sender(
            client, url.rstrip("/") + POINTS_PATH, stats, sleep, max_transport_retries,
            min_backoff, max_backoff, progress, progress_every, content_type,
        )  # fmt: skip

        async def worker() -> None:
            while (body := await pull()) is not None:
                await sender.post(body)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            raise _first_leaf(failed) from None
        finally:
            stats.elapsed = time.monotonic() - sender.started
    sender.report()
    return stats


def _puller(
    bodies: AsyncIterator[bytes] | Iterable[bytes],
) -> Callable[[], Awaitable[bytes | None]]:
    """A function that returns the next body, or ``None`` once there are no more; safe to call
    from several tasks at once."""
    lock = asyncio.Lock()
    if isinstance(bodies, AsyncIterator):
        source = bodies

        async def pull_async() -> bytes | None:
            async with lock:
                with contextlib.suppress(StopAsyncIteration):
                    return await anext(source)
                return None

        return pull_async
    iterator: Iterator[bytes] = iter(bodies)

    async def pull_sync() -> bytes | None:
        async with lock:
            return await asyncio.to_thread(next, iterator, None)

    return pull_sync


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
