"""``NatsBus``: the ``Bus`` on JetStream: the streams, publish with its bound and dedup,
stats, and the consumer group's members. See the package docstring for the layout and the
rules.

Composes the parts of the package, each built here and used through its public methods: a
``Broker`` (the connection), a ``Layout`` (the names on the broker), a ``Ledger`` (the byte
bound's books, shared with the consumers) and a ``NatsConsumer`` per ``consumer()`` call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import api

from minutely.bus.base import PartitionStats, owned_partitions
from minutely.bus.nats.broker import Broker, StreamState
from minutely.bus.nats.consumer import NatsConsumer
from minutely.bus.nats.layout import Layout
from minutely.bus.nats.ledger import Ledger, Reservation
from minutely.bus.nats.wire import prepare
from minutely.errors import Backpressure, Unavailable
from minutely.model import PointBatch

log = logging.getLogger(__name__)

#: Batches with at least this many points are split and encoded on a worker thread.
SPLIT_OFF_LOOP_POINTS = 1 << 17
#: Room left in a message for its headers, under the server's max_payload.
HEADER_ROOM = 4096
#: JetStream error codes for a publish that a DiscardNew stream has no room for.
STREAM_FULL = frozenset({10077, 10078})  # maximum bytes / maximum messages exceeded


class NatsBus:
    """The ``Bus`` on NATS JetStream: see the package docstring for the layout and the rules.

    ``url`` names the server (``nats://host:4222``; several, comma-separated, for a cluster).
    ``max_bytes`` bounds the uncommitted ``PointBatch.nbytes`` like ``MemoryBus``;
    ``stream_max_bytes`` is JetStream's hard limit per partition stream in stored bytes
    (default: 4 x ``max_bytes / partitions``, at least four maximal messages; JetStream
    reserves it on the server's store). ``max_age`` (seconds, 0 = none) lets JetStream drop
    messages older than that even uncommitted: a loss, so it is off by default.
    ``duplicate_window`` (seconds) is how long an idempotency key is remembered.
    ``subjects``, ``stream`` and ``group`` name the subjects, streams and durable consumers.
    A consumer buffers and asks the server for at most ``prefetch_bytes``: keep it under the
    server's ``max_pending`` (64 MiB by default) and above its ``max_payload``; one ``poll``
    returns at most ``max_poll_bytes`` (at least one message).

    Built without I/O; ``open`` connects and makes the streams: it waits up to ``timeout``
    seconds for the server, then raises ``Unavailable``, and raises ``ConfigError`` if the
    streams exist with another partition count or retention.
    """

    #: what is published stays until committed, through a crash of this process
    durable = True

    def __init__(
        self,
        url: str,
        partitions: int = 16,
        max_bytes: int = 1 << 30,
        stream: str = "MINUTELY",
        max_age: float = 0.0,
        duplicate_window: float = 120.0,
        *,
        subjects: str = "minutely.points",
        group: str = "minutely",
        stream_max_bytes: int | None = None,
        replicas: int = 1,
        ack_wait: float = 600.0,
        timeout: float = 5.0,
        reconnect_wait: float = 0.1,
        reconnect_max_wait: float = 2.0,
        sync_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_poll_bytes: int = 64 << 20,
        prefetch_bytes: int = 32 << 20,
    ) -> None:
        if partitions < 1:
            msg = f"partitions must be at least 1, got {partitions}"
            raise ValueError(msg)
        if min(max_bytes, max_poll_bytes, prefetch_bytes) < 1:
            msg = "max_bytes, max_poll_bytes and prefetch_bytes must be > 0"
            raise ValueError(msg)
        if max_age < 0 or duplicate_window < 0 or timeout <= 0:
            msg = "max_age and duplicate_window must be >= 0 and timeout > 0"
            raise ValueError(msg)
        self.layout = Layout(
            partitions,
            stream=stream,
            subjects=subjects,
            group=group,
            max_age=max_age,
            duplicate_window=duplicate_window,
            replicas=replicas,
            ack_wait=ack_wait,
        )
        self.broker = Broker(
            url,
            timeout=timeout,
            reconnect_wait=reconnect_wait,
            reconnect_max_wait=reconnect_max_wait,
            thread_name=f"minutely-nats-{stream}",
        )
        self.ledger = Ledger(partitions, monotonic)
        #: wall time for the backlog's age (against the broker's stamps), and the
        #: monotonic clock for intervals: both injected, as every clock in minutely is
        self._clock = clock
        self._monotonic = monotonic
        self._max_bytes = max_bytes
        self._stream_max_bytes = stream_max_bytes
        self._sync_interval = sync_interval
        self.max_poll_bytes = max_poll_bytes
        self.prefetch_bytes = prefetch_bytes

        self._lock = threading.Lock()  # guards the owners and the state below
        self._owners: dict[int, NatsConsumer] = {}
        self._opened = False
        self._closed = False
        self._syncing: concurrent.futures.Future[None] | None = None

    # -- properties ----------------------------------------------------------------------

    @property
    def partitions(self) -> int:
        return self.layout.partitions

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self.broker.connected

    def stream_name(self, partition: int) -> str:
        return self.layout.stream_name(partition)

    def subject(self, partition: int) -> str:
        return self.layout.subject(partition)

    # -- Bus -------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, make (or check) the streams and start the ledger's sync. Blocking.

        Raises ``Unavailable`` when no server answers within ``timeout``, ``ConfigError``
        when the streams exist with another partition count or retention, ``ValueError``
        when ``prefetch_bytes`` cannot hold one of the server's messages; the connection is
        closed again then. Once only.
        """
        with self._lock:
            if self._opened or self._closed:
                msg = "a NatsBus opens once, before it is closed"
                raise RuntimeError(msg)
            self._opened = True
        broker = self.broker
        broker.open()
        try:
            if self.prefetch_bytes < broker.max_message:
                msg = f"prefetch_bytes must hold a message of {broker.max_message} bytes"
                raise ValueError(msg)
            broker.call(self._setup(), broker.timeout * 12)
            self._syncing = broker.submit(self._sync_forever())
        except BaseException:
            broker.close(broker.timeout)
            raise

    async def publish(self, batch: PointBatch, idempotency_key: str | None = None) -> None:
        """Split ``batch`` by partition and publish every piece; return once all are acked.

        ``idempotency_key`` (e.g. an ingest request's ``Idempotency-Key``) makes a retry of
        the same batch within ``duplicate_window`` store each piece once. Raises
        ``Backpressure`` when the batch does not fit under ``max_bytes`` (nothing published)
        or JetStream's own limit rejects a piece, ``Unavailable`` when the bus is closed or
        the broker unreachable; in the last two cases earlier pieces may be stored (the
        error says how many): retry with the same key.
        """
        if len(batch) == 0:
            return
        if idempotency_key is not None and any(c in idempotency_key for c in "\r\n"):
            msg = "an idempotency key cannot contain line breaks"
            raise ValueError(msg)
        self._check_open()
        # reserve first: a full bus spends nothing on encoding
        reservation = self.ledger.reserve(batch.nbytes, self._max_bytes)
        try:
            budget = self.broker.max_payload - HEADER_ROOM
            if len(batch) >= SPLIT_OFF_LOOP_POINTS:
                pieces = await asyncio.to_thread(prepare, batch, self.partitions, budget)
            else:
                pieces = prepare(batch, self.partitions, budget)
            self._check_open()
            future = self.broker.submit(self._publish_pieces(pieces, idempotency_key, reservation))
            await asyncio.wrap_future(future)
        finally:
            self.ledger.release(reservation)

    def consumer(self, partitions: Sequence[int] | None = None) -> NatsConsumer:
        """A consumer owning ``partitions`` (all if None); takes them over on the broker.

        Raises ``ValueError`` if one is out of range, repeated, or owned by an open consumer
        of this bus. A consumer of the same group elsewhere (another process) loses them.
        """
        owned = owned_partitions(partitions, self.partitions)
        with self._lock:
            self._check_open()
            taken = [p for p in owned if p in self._owners]
            if taken:
                msg = f"partitions {taken} are owned by another open consumer"
                raise ValueError(msg)
            consumer = NatsConsumer(
                self.broker,
                self.ledger,
                self.layout,
                owned,
                prefetch_bytes=self.prefetch_bytes,
                max_poll_bytes=self.max_poll_bytes,
                on_close=self._release,
            )
            for p in owned:
                self._owners[p] = consumer
        consumer.start()
        return consumer

    def stats(self) -> list[PartitionStats]:
        """Per partition, from the streams' state (fresh) and this bus's ledger.

        ``published`` is the stream's last sequence, ``backlog_messages`` the messages still
        in it, ``backlog_seconds`` the age of the oldest (its broker timestamp against this
        machine's clock). Raises ``Unavailable`` when the broker cannot be asked.
        """
        self._check_open()
        states = self.broker.call(self._sync_all(), self.broker.timeout * 2)
        now = self._clock()
        backlog = self.ledger.backlog_bytes()
        return [
            PartitionStats(
                partition=p,
                published=s.last_seq,
                committed=s.last_seq - s.messages,
                backlog_messages=s.messages,
                backlog_bytes=backlog[p] if s.messages else 0,
                backlog_seconds=max(0.0, now - s.first_ts) if s.messages else 0.0,
                generation=f"{self.stream_name(p)}@{s.created}",
            )
            for p, s in enumerate(states)
        ]

    async def close(self) -> None:
        """Stop taking batches, wake every waiting ``poll``, close the connection.

        Open consumers' partitions stay with the group's durable consumers on the broker:
        the next ``consumer()`` (here or in another process) takes them over, and gets
        every uncommitted message again.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            consumers = set(self._owners.values())
        await asyncio.to_thread(self._shutdown, consumers)

    # -- internals, any thread ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            msg = "the bus is closed"
            raise Unavailable(msg)
        if not self._opened:
            msg = "the bus is not open: call open() first"
            raise RuntimeError(msg)
        if not self.broker.connected:
            msg = f"not connected to NATS at {self.broker.url}; reconnecting"
            raise Unavailable(msg)

    def _release(self, consumer: NatsConsumer) -> None:
        with self._lock:
            for p in consumer.partitions:
                if self._owners.get(p) is consumer:
                    del self._owners[p]

    def _shutdown(self, consumers: set[NatsConsumer]) -> None:
        """Stop the sync and the consumers' pumps, then close the connection (blocking)."""
        if self._syncing is not None:
            self._syncing.cancel()
        for c in consumers:
            c.detach()
        self.broker.close()

    # -- internals, on the loop -----------------------------------------------------------

    async def _setup(self) -> None:
        hard = self._stream_max_bytes
        if hard is None:
            # JetStream reserves each stream's max_bytes on the server's store up front.
            hard = max(4 * self._max_bytes // self.partitions, 4 * self.broker.max_payload)
        await asyncio.gather(
            *(
                self.broker.ensure_stream(self.layout.stream_config(p, hard))
                for p in range(self.partitions)
            )
        )
        for attempt in range(4):  # new replicated streams may elect their leaders late
            try:
                await self._sync_all()
                return
            except Unavailable:
                if attempt == 3:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)

    async def _sync_all(self) -> list[StreamState]:
        asked_at = self._monotonic()
        states = await asyncio.gather(
            *(self.broker.stream_state(self.stream_name(p)) for p in range(self.partitions))
        )
        self.ledger.sync(states, asked_at)
        return states

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sync_interval)
            if self.broker.connected:
                try:
                    await self._sync_all()
                except Unavailable as e:
                    log.debug("bus sync skipped: %s", e)

    async def _publish_pieces(
        self, pieces: list[tuple[int, list[Any]]], key: str | None, reservation: Reservation
    ) -> None:
        total = sum(len(chunks) for _, chunks in pieces)
        results = await asyncio.gather(
            *(self._publish_partition(p, chunks, key, reservation) for p, chunks in pieces),
            return_exceptions=True,
        )
        stored = sum(r if isinstance(r, int) else getattr(r, "stored", 0) for r in results)
        failures = [
            r.error if isinstance(r, _Partial) else r for r in results if not isinstance(r, int)
        ]
        if not failures:
            return
        error = failures[0]
        note = (
            f"{stored} of {total} messages of the batch were stored before it failed;"
            " retry with the same idempotency key to store each once"
        )
        if isinstance(error, nats.js.errors.APIError) and error.err_code in STREAM_FULL:
            msg = f"a JetStream stream is full ({error.description}); {note}"
            raise Backpressure(msg) from error
        if isinstance(error, TimeoutError | nats.errors.Error | OSError):
            msg = f"publishing to NATS at {self.broker.url} failed ({error!r}); {note}"
            raise Unavailable(msg) from error
        raise error

    async def _publish_partition(
        self,
        partition: int,
        chunks: list[tuple[Any, int]],
        key: str | None,
        reservation: Reservation,
    ) -> int | _Partial:
        """Publish one partition's chunks in order; the count stored, or how it failed."""
        ledger, js = self.ledger, self.broker.jetstream
        stream, subject = self.stream_name(partition), self.subject(partition)
        for i, (data, nbytes) in enumerate(chunks):
            headers = None if key is None else {"Nats-Msg-Id": f"{key}:{partition}:{i}"}
            ledger.sending(partition)
            ack: api.PubAck | None = None
            try:
                ack = await js.publish(subject, data, stream=stream, headers=headers)
            except Exception as e:
                return _Partial(i, e)
            finally:
                if ack is None:
                    ledger.failed(partition)
                else:
                    ledger.sent(partition, None if ack.duplicate else ack.seq, nbytes, reservation)
        return len(chunks)


@dataclass(frozen=True, slots=True)
class _Partial:
    stored: int
    error: BaseException
