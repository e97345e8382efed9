"""The Graphite plaintext listener: a TCP port (``--graphite-port``, 2003 by convention)
whose lines go through the same ingest path as HTTP's.

Each connection is read in chunks; the complete lines of a chunk are one batch, decoded by
``ingest.graphite`` and handed to the node's ``ingest_with``. A bad line is counted and logged
(the first few per connection), never closes the connection. While the bus is full the
listener waits ``Retry-After`` and offers the same batch again without reading more, so TCP
pushes back on the sender, as carbon's cache pauses intake at its high watermark.

A series limit (``max_series``, ``max_new_series_per_minute``) is another matter: the
plaintext protocol has no answer to carry a 429, and waiting would hold up the sender's
known series for as long as the limit holds (for ``max_series``, until an operator acts). So
a batch the limit refuses is offered once more without the points of its new series: those
points are dropped, counted by limit (``GraphiteCounts.refused``, and the node's refusals),
and logged at most once per ``REFUSAL_LOG_EVERY`` seconds naming the limit; the good lines
are taken. The sender resends a series every interval, so it is taken once the limit has
room.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from minutely.errors import Backpressure, PayloadTooLarge, SeriesLimit
from minutely.ingest import Decoded
from minutely.ingest.graphite import decode_graphite, series_cache
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Decoder, Limits
from minutely.ingest.validate import MALFORMED
from minutely.ingest.wire import SeriesCache
from minutely.limits import Refusals
from minutely.model import PointBatch

log = logging.getLogger(__name__)

#: bytes read at a time, and the most a line may hold while it is read: a line still without
#: its end past that is refused whole, and the rest of it dropped up to its end, so no part
#: of it is ever read as a line of its own
CHUNK = 1 << 18
MAX_LINE = 1 << 16
#: bad lines logged per connection (all are counted)
LOGGED_PER_CONNECTION = 5
#: seconds between two log lines about the points a series limit dropped (all are counted)
REFUSAL_LOG_EVERY = 60.0


class _Sink(Protocol):
    @property
    def label_mapping(self) -> LabelMapping: ...

    @property
    def refusals(self) -> Refusals: ...

    async def ingest_with(
        self, decoder: Decoder, body: bytes = b"", idempotency_key: str | None = None
    ) -> Decoded: ...

    def new_points(self, batch: PointBatch) -> npt.NDArray[np.bool_] | None: ...


@dataclass
class GraphiteCounts:
    connections: int = 0
    accepted: int = 0
    rejected: int = 0
    waits: int = 0  #: times a batch waited for a full bus
    #: points dropped because a series limit refused their new series, by the limit's setting
    refused: dict[str, int] = field(default_factory=dict)
    #: rejected points by their code (``minutely.ingest.validate.REASONS``)
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class _Counted:
    """What one batch offered without its new series held: points left out, points kept."""

    new: int = 0
    known: int = 0


class GraphiteListener:
    """Listens on ``host:port``; ``listen()`` binds (raising if it cannot) and serves."""

    def __init__(
        self,
        sink: _Sink,
        host: str,
        port: int,
        server_node: int = -1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.host = host
        self.port = port
        self.server_node = server_node
        self.clock = clock
        self.counts = GraphiteCounts()
        #: when each limit's drops were last logged, and the points dropped since
        self._logged: dict[str, tuple[float, int]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._cache: SeriesCache | None = None

    def listen(self) -> GraphiteListener:
        """Bind now (an ``OSError`` says why not) and serve on the running loop."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._serve(sock))
        log.info("graphite plaintext on %s:%d", self.host, self.port)
        return self

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._connection, sock=sock, limit=CHUNK)

    async def close(self) -> None:
        """Stop listening; connections still open stop at their next batch."""
        self._closing = True
        if self._task is not None:
            await self._task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        peer = writer.get_extra_info("peername")
        pending = b""
        line = 1
        logged = 0
        skipping = False  # in the rest of a line refused as longer than MAX_LINE
        try:
            while True:
                chunk = await reader.read(CHUNK)
                if skipping:
                    end = chunk.find(b"\n")
                    if end < 0:
                        if not chunk:
                            return
                        continue
                    chunk, skipping, line = chunk[end + 1 :], False, line + 1
                    if not chunk:
                        continue
                if chunk:
                    pending += chunk
                    cut = pending.rfind(b"\n") + 1
                    block, pending = pending[:cut], pending[cut:]
                    skipping = len(pending) > MAX_LINE
                    if skipping:
                        pending = b""
                else:
                    block, pending = pending, b""
                if block:
                    decoded = await self._ingest(block, line)
                    line += block.count(b"\n")
                    for error in decoded.errors[: max(0, LOGGED_PER_CONNECTION - logged)]:
                        log.warning("graphite %s: %s", peer, error.reason)
                        logged += 1
                if skipping:
                    reason = f"line {line}: longer than {MAX_LINE} bytes"
                    self._refused_line(peer, reason, logged < LOGGED_PER_CONNECTION)
                    logged += 1
                if not chunk:
                    return
        except (ConnectionError, Backpressure):  # the peer left, or the node is stopping
            return
        finally:
            writer.close()

    def _refused_line(self, peer: object, reason: str, log_it: bool) -> None:
        self.counts.rejected += 1
        self.counts.reasons[MALFORMED] = self.counts.reasons.get(MALFORMED, 0) + 1
        if log_it:
            log.warning("graphite %s: %s", peer, reason)

    async def _ingest(self, block: bytes, first_line: int) -> Decoded:
        mapping = self.sink.label_mapping
        if self._cache is None:  # paths resolved once per listener, not per block
            self._cache = series_cache(mapping, self.server_node)
        cache = self._cache

        def decode(limits: Limits) -> Decoded:
            return decode_graphite(block, mapping, self.server_node, limits, first_line, cache)

        refused: SeriesLimit | None = None
        counted = _Counted()
        while True:
            try:
                decoded = await self.sink.ingest_with(decode)
            except SeriesLimit as e:
                if refused is None:  # once more, without the points of its new series
                    refused, decode = e, self._known_only(decode, counted)
                    continue
                # refused even so: nothing of it is taken, and it is not offered again
                self._dropped(e.limit, str(e), counted.new + counted.known)
                return Decoded(PointBatch.empty(), 0, 0, [])
            except PayloadTooLarge as e:  # more points than a request may hold: none taken
                self._dropped(e.limit, str(e), self._points(block))
                return Decoded(PointBatch.empty(), 0, 0, [])
            except Backpressure as e:  # read nothing more until the bus has room
                if self._closing:
                    raise
                self.counts.waits += 1
                await asyncio.sleep(max(0.05, e.retry_after))
                continue
            self.counts.accepted += decoded.accepted
            self.counts.rejected += decoded.rejected
            for code, n in decoded.reasons.items():
                self.counts.reasons[code] = self.counts.reasons.get(code, 0) + n
            if refused is not None and counted.new:
                self._dropped(refused.limit, str(refused), counted.new)
            return decoded

    def _known_only(self, decode: Decoder, counted: _Counted) -> Decoder:
        """``decode`` without the points of the series the node does not hold yet; how many
        it left out and kept goes in ``counted``."""

        def known(limits: Limits) -> Decoded:
            decoded = decode(limits)
            new = self.sink.new_points(decoded.batch)
            kept = decoded.batch if new is None else decoded.batch.take(~new).compacted()
            counted.new, counted.known = len(decoded.batch) - len(kept), len(kept)
            if new is None:
                return decoded
            return dataclasses.replace(decoded, batch=kept, accepted=len(kept))

        return known

    @staticmethod
    def _points(block: bytes) -> int:
        """The lines of ``block``, each a point (bad ones too: they were not looked at)."""
        return block.count(b"\n") + (0 if block.endswith(b"\n") else 1)

    def _dropped(self, limit: str, reason: str, points: int) -> None:
        """Count ``points`` dropped by ``limit``; log it at most once per interval."""
        self.counts.refused[limit] = self.counts.refused.get(limit, 0) + points
        self.sink.refusals.add(limit)
        now = self.clock()
        last, since = self._logged.get(limit, (-math.inf, 0))
        since += points
        if now - last < REFUSAL_LOG_EVERY:
            self._logged[limit] = (last, since)
            return
        self._logged[limit] = (now, 0)
        # the HTTP wording says nothing was taken: here the other lines were
        reason = reason.partition("; nothing of the request was taken")[0]
        log.warning(
            "graphite: dropped %d points by %s (%s); the other lines are taken, and"
            " this is logged at most once a minute (counted in /api/v1/status, graphite)",
            since,
            limit,
            reason,
        )
