"""The Graphite plaintext listener: a TCP port (``--graphite-port``, 2003 by convention)
whose lines go through the same ingest path as HTTP's.

Each connection is read in chunks; the complete lines of a chunk are one batch, decoded by
``ingest.graphite`` and handed to the node's ``ingest_with``. A bad line is counted and logged
(the first few per connection), never closes the connection. While the bus is full the
listener waits ``Retry-After`` and offers the same batch again without reading more, so TCP
pushes back on the sender, as carbon's cache pauses intake at its high watermark.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Protocol

from minutely.errors import Backpressure
from minutely.ingest import Decoded
from minutely.ingest.graphite import decode_graphite, series_cache
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Decoder, Limits
from minutely.ingest.wire import SeriesCache

log = logging.getLogger(__name__)

#: bytes read at a time, and the most a line may hold before it is cut off as bad
CHUNK = 1 << 18
MAX_LINE = 1 << 16
#: bad lines logged per connection (all are counted)
LOGGED_PER_CONNECTION = 5


class _Sink(Protocol):
    @property
    def label_mapping(self) -> LabelMapping: ...

    async def ingest_with(
        self, decoder: Decoder, body: bytes = b"", idempotency_key: str | None = None
    ) -> Decoded: ...


@dataclass
class GraphiteCounts:
    connections: int = 0
    accepted: int = 0
    rejected: int = 0
    waits: int = 0  #: times a batch waited for a full bus


class GraphiteListener:
    """Listens on ``host:port``; ``listen()`` binds (raising if it cannot) and serves."""

    def __init__(self, sink: _Sink, host: str, port: int, server_node: int = -1) -> None:
        self.sink = sink
        self.host = host
        self.port = port
        self.server_node = server_node
        self.counts = GraphiteCounts()
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
        try:
            while True:
                chunk = await reader.read(CHUNK)
                if chunk:
                    pending += chunk
                    cut = pending.rfind(b"\n") + 1
                    if cut == 0 and len(pending) <= MAX_LINE:
                        continue
                    block, pending = (pending[:cut], pending[cut:]) if cut else (pending, b"")
                else:
                    block, pending = pending, b""
                if block:
                    decoded = await self._ingest(block, line)
                    line += block.count(b"\n")
                    for error in decoded.errors[: max(0, LOGGED_PER_CONNECTION - logged)]:
                        log.warning("graphite %s: %s", peer, error.reason)
                        logged += 1
                if not chunk:
                    return
        except (ConnectionError, Backpressure):  # the peer left, or the node is stopping
            return
        finally:
            writer.close()

    async def _ingest(self, block: bytes, first_line: int) -> Decoded:
        mapping = self.sink.label_mapping
        if self._cache is None:  # paths resolved once per listener, not per block
            self._cache = series_cache(mapping, self.server_node)
        cache = self._cache

        def decode(limits: Limits) -> Decoded:
            return decode_graphite(block, mapping, self.server_node, limits, first_line, cache)

        while True:
            try:
                decoded = await self.sink.ingest_with(decode)
            except Backpressure as e:  # read nothing more until the bus has room
                if self._closing:
                    raise
                self.counts.waits += 1
                await asyncio.sleep(max(0.05, e.retry_after))
                continue
            self.counts.accepted += decoded.accepted
            self.counts.rejected += decoded.rejected
            return decoded
