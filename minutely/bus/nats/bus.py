"""``NatsBus``: the streams on the broker, publish with its bound and dedup, stats and
the connection. See the package docstring for the layout and the rules."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Server as NatsServerInfo
from nats.js import api

from minutely.bus.base import PartitionStats, owned_partitions
from minutely.bus.nats.client import Client
from minutely.bus.nats.consumer import NatsConsumer
from minutely.bus.nats.loop import LoopThread
from minutely.bus.nats.wire import prepare
from minutely.errors import Backpressure, ConfigError, Unavailable
from minutely.model import PointBatch

log = logging.getLogger(__name__)

#: Batches with at least this many points are split and encoded on a worker thread.
SPLIT_OFF_LOOP_POINTS = 1 << 17
#: Room left in a message for its headers, under the server's max_payload.
HEADER_ROOM = 4096
#: JetStream error codes for a publish that a DiscardNew stream has no room for.
STREAM_FULL = frozenset({10077, 10078})  # maximum bytes / maximum messages exceeded


# -- the bus --------------------------------------------------------------------------------


@dataclass(slots=True)
class _StreamState:
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    first_ts: float  # unix seconds of the oldest message; 0.0 if there is none
    created: str = ""  # when the stream was made: its sequence numbers count from then


class _Ledger:
    """What this bus knows of one partition's uncommitted messages (guarded by the bus lock)."""

    __slots__ = ("commits", "inflight", "known", "known_bytes", "unknown_bytes")

    def __init__(self) -> None:
        self.known: dict[int, int] = {}  # stream sequence -> PointBatch.nbytes
        self.known_bytes = 0
        self.unknown_bytes = 0  # estimate for messages in the stream not in ``known``
        self.inflight = 0  # publishes sent, not yet recorded
        self.commits: deque[tuple[float, int]] = deque()  # (monotonic time, sequence)

    def add(self, seq: int, nbytes: int) -> None:
        if seq not in self.known:
            self.known[seq] = nbytes
            self.known_bytes += nbytes

    def remove(self, seq: int, now: float) -> None:
        nbytes = self.known.pop(seq, None)
        if nbytes is not None:
            self.known_bytes -= nbytes
        self.commits.append((now, seq))
        while self.commits and self.commits[0][0] < now - 60.0:
            self.commits.popleft()

    def sync(self, state: _StreamState, asked_at: float) -> None:
        """Reconcile with a stream state requested at ``asked_at`` (monotonic)."""
        gone_below = state.last_seq + 1 if state.messages == 0 else state.first_seq
        for seq in [s for s in self.known if s < gone_below]:
            self.known_bytes -= self.known.pop(seq)
        if state.messages == 0:
            self.unknown_bytes = 0
            return
        seen = sum(1 for s in self.known if s <= state.last_seq)
        # Committed after the state was asked for: maybe still counted in it.
        seen += sum(
            1 for t, s in self.commits if t >= asked_at and state.first_seq <= s <= state.last_seq
        )
        unknown = max(0, state.messages - seen - self.inflight)
        self.unknown_bytes = state.bytes * unknown // state.messages


class NatsBus:
    """The ``Bus`` on NATS JetStream: see the module docstring for the layout and the rules.

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
    Waits up to ``timeout`` seconds for the server, then raises ``Unavailable``; raises
    ``ConfigError`` if the streams exist with another partition count or retention.
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
        self._url = url
        self._partitions = partitions
        self._max_bytes = max_bytes
        self._stream = stream
        self._max_age = max_age
        self._duplicate_window = duplicate_window
        self._subjects = subjects
        self._group = group
        self._stream_max_bytes = stream_max_bytes
        self._replicas = replicas
        self._ack_wait = ack_wait
        self._timeout = timeout
        self._reconnect_wait = reconnect_wait
        self._reconnect_max_wait = reconnect_max_wait
        self._reconnect_attempt = 0
        self._sync_interval = sync_interval
        self.max_poll_bytes = max_poll_bytes
        self.prefetch_bytes = prefetch_bytes

        self._lock = threading.Lock()
        self._ledgers = [_Ledger() for _ in range(partitions)]
        self._reserved = 0
        self._owners: dict[int, NatsConsumer] = {}
        self._closed = False
        self._sync_task: asyncio.Task[None] | None = None

        self._io = LoopThread(f"minutely-nats-{stream}")
        try:
            self._nc: Client = self._io.call(self._connect(), timeout + 5.0)
            self._js = self._nc.jetstream(timeout=timeout)
            if prefetch_bytes < self._max_message():
                msg = f"prefetch_bytes must hold a message of {self._max_message()} bytes"
                raise ValueError(msg)
            self._io.call(self._setup(), timeout * 4)
        except BaseException:
            try:
                self._io.call(self._shutdown(), timeout)
            finally:
                self._io.stop()
            raise

    # -- properties ----------------------------------------------------------------------

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    def stream_name(self, partition: int) -> str:
        return f"{self._stream}_{partition}"

    def subject(self, partition: int) -> str:
        return f"{self._subjects}.{partition}"

    # -- Bus -------------------------------------------------------------------------------

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
        size = batch.nbytes
        with self._lock:  # reserve first: a full bus spends nothing on encoding
            held = self._held()
            if held > 0 and held + size > self._max_bytes:
                msg = (
                    f"the bus is full: {held} of {self._max_bytes} bytes uncommitted,"
                    f" the batch needs {size}"
                )
                raise Backpressure(msg)
            self._reserved += size
        reservation = [size]  # what is still reserved; _publish_partition moves it to the ledger
        try:
            budget = int(self._nc.max_payload) - HEADER_ROOM
            if len(batch) >= SPLIT_OFF_LOOP_POINTS:
                pieces = await asyncio.to_thread(prepare, batch, self._partitions, budget)
            else:
                pieces = prepare(batch, self._partitions, budget)
            self._check_open()
            future = self._io.submit(self._publish_pieces(pieces, idempotency_key, reservation))
            await asyncio.wrap_future(future)
        finally:
            with self._lock:
                self._reserved -= reservation[0]

    def consumer(self, partitions: Sequence[int] | None = None) -> NatsConsumer:
        """A consumer owning ``partitions`` (all if None); takes them over on the broker.

        Raises ``ValueError`` if one is out of range, repeated, or owned by an open consumer
        of this bus. A consumer of the same group elsewhere (another process) loses them.
        """
        owned = owned_partitions(partitions, self._partitions)
        with self._lock:
            self._check_open()
            taken = [p for p in owned if p in self._owners]
            if taken:
                msg = f"partitions {taken} are owned by another open consumer"
                raise ValueError(msg)
            consumer = NatsConsumer(self, tuple(sorted(owned)))
            for p in owned:
                self._owners[p] = consumer
        try:
            self._io.call(consumer._start(), self._timeout * 4)
        except BaseException:
            consumer._abandon()
            raise
        return consumer

    def stats(self) -> list[PartitionStats]:
        """Per partition, from the streams' state (fresh) and this bus's ledger.

        ``published`` is the stream's last sequence, ``backlog_messages`` the messages still
        in it, ``backlog_seconds`` the age of the oldest (its broker timestamp against this
        machine's clock). Raises ``Unavailable`` when the broker cannot be asked.
        """
        self._check_open()
        states = self._io.call(self._sync_all(), self._timeout * 2)
        now = time.time()
        with self._lock:
            return [
                PartitionStats(
                    partition=p,
                    published=s.last_seq,
                    committed=s.last_seq - s.messages,
                    backlog_messages=s.messages,
                    backlog_bytes=(
                        self._ledgers[p].known_bytes + self._ledgers[p].unknown_bytes
                        if s.messages
                        else 0
                    ),
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
        for c in consumers:
            c._wake()
        try:
            await asyncio.wrap_future(self._io.submit(self._shutdown()))
        finally:
            await asyncio.to_thread(self._io.stop)

    # -- internals, any thread ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            msg = "the bus is closed"
            raise Unavailable(msg)
        if not self._nc.is_connected:
            msg = f"not connected to NATS at {self._url}; reconnecting"
            raise Unavailable(msg)

    def _max_message(self) -> int:
        """The most one message can take in a pull request: the server's max_payload, padded."""
        return int(self._nc.max_payload) + (64 << 10)

    def _held(self) -> int:
        """Uncommitted bytes as far as this bus knows, plus reservations (lock held)."""
        return self._reserved + sum(led.known_bytes + led.unknown_bytes for led in self._ledgers)

    def _learn(self, partition: int, seq: int, nbytes: int) -> None:
        with self._lock:
            self._ledgers[partition].add(seq, nbytes)

    def _forget(self, done: Sequence[tuple[int, int]]) -> None:
        now = time.monotonic()
        with self._lock:
            for partition, seq in done:
                self._ledgers[partition].remove(seq, now)

    def _release(self, consumer: NatsConsumer) -> None:
        with self._lock:
            for p in consumer.partitions:
                if self._owners.get(p) is consumer:
                    del self._owners[p]

    # -- internals, on the loop -----------------------------------------------------------

    async def _connect(self) -> Client:
        async def disconnected() -> None:
            if not self._closed:
                log.warning("lost the connection to NATS at %s; reconnecting", self._url)

        async def reconnected() -> None:
            self._reconnect_attempt = 0
            log.warning("reconnected to NATS at %s", self._url)

        async def error(e: Exception) -> None:
            log.debug("NATS client error: %r", e)

        def next_server(
            servers: list[NatsServerInfo], info: dict[str, Any]
        ) -> tuple[NatsServerInfo | None, float]:
            attempt = self._reconnect_attempt
            self._reconnect_attempt += 1
            delay = min(self._reconnect_max_wait, self._reconnect_wait * 2 ** min(attempt, 30))
            return (servers[attempt % len(servers)] if servers else None), delay

        try:
            # The client retries forever, also on the first connect: give it ``timeout``.
            nc = Client()
            connecting = nc.connect(
                self._url.split(","),
                name="minutely",
                connect_timeout=max(1, int(self._timeout)),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_to_server_handler=next_server,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
            await asyncio.wait_for(connecting, self._timeout)
            return nc
        except (OSError, TimeoutError, nats.errors.Error) as e:
            msg = f"cannot reach NATS at {self._url} within {self._timeout} s: {e!r}"
            raise Unavailable(msg) from e

    async def _setup(self) -> None:
        await asyncio.gather(*(self._ensure_stream(p) for p in range(self._partitions)))
        await self._sync_all()
        self._sync_task = asyncio.get_running_loop().create_task(self._sync_forever())

    def _stream_config(self, partition: int) -> api.StreamConfig:
        hard = self._stream_max_bytes
        if hard is None:
            # JetStream reserves each stream's max_bytes on the server's store up front.
            hard = max(4 * self._max_bytes // self._partitions, 4 * int(self._nc.max_payload))
        return api.StreamConfig(
            name=self.stream_name(partition),
            description=f"minutely bus: partition {partition} of {self._partitions}",
            subjects=[self.subject(partition)],
            retention=api.RetentionPolicy.WORK_QUEUE,
            discard=api.DiscardPolicy.NEW,
            max_bytes=hard,
            max_age=self._max_age,
            storage=api.StorageType.FILE,
            num_replicas=self._replicas,
            duplicate_window=self._duplicate_window,
        )

    async def _ensure_stream(self, partition: int) -> None:
        want = self._stream_config(partition)
        try:
            info = await self._js.stream_info(want.name or "")
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(want)
            return
        have = info.config
        if have.description != want.description or have.subjects != want.subjects:
            msg = (
                f"stream {want.name} on {self._url} is {have.description!r} with subjects"
                f" {have.subjects}, not {want.description!r}: was the bus made with another"
                " partition count? Drain it and delete its streams first"
            )
            raise ConfigError(msg)
        if have.retention != api.RetentionPolicy.WORK_QUEUE:
            msg = f"stream {want.name} has retention {have.retention}, not workqueue"
            raise ConfigError(msg)

        def differs(a: float | None, b: float | None) -> bool:
            return abs((a or 0.0) - (b or 0.0)) > 1e-3

        if (
            have.max_bytes != want.max_bytes
            or have.discard != want.discard
            or have.num_replicas != want.num_replicas
            or differs(have.max_age, want.max_age)
            or differs(have.duplicate_window, want.duplicate_window)
        ):
            await self._js.update_stream(want)

    async def _stream_state(self, partition: int) -> _StreamState:
        name = self.stream_name(partition)
        try:
            reply = await self._nc.request(f"$JS.API.STREAM.INFO.{name}", b"", self._timeout)
        except (TimeoutError, nats.errors.Error) as e:
            msg = f"cannot read the state of stream {name}: {e!r}"
            raise Unavailable(msg) from e
        answer = json.loads(reply.data)
        if "error" in answer:
            msg = f"cannot read the state of stream {name}: {answer['error']}"
            raise Unavailable(msg)
        state = answer["state"]
        messages = int(state.get("messages", 0))
        first_ts = 0.0
        if messages:
            first_ts = datetime.fromisoformat(state["first_ts"]).timestamp()
        return _StreamState(
            messages,
            int(state.get("bytes", 0)),
            int(state.get("first_seq", 0)),
            int(state.get("last_seq", 0)),
            first_ts,
            str(answer.get("created", "")),
        )

    async def _sync_all(self) -> list[_StreamState]:
        asked_at = time.monotonic()
        states = await asyncio.gather(*(self._stream_state(p) for p in range(self._partitions)))
        with self._lock:
            for ledger, state in zip(self._ledgers, states, strict=True):
                ledger.sync(state, asked_at)
        return states

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sync_interval)
            if self._nc.is_connected:
                try:
                    await self._sync_all()
                except Unavailable as e:
                    log.debug("bus sync skipped: %s", e)

    async def _publish_pieces(
        self, pieces: list[tuple[int, list[Any]]], key: str | None, reservation: list[int]
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
            msg = f"publishing to NATS at {self._url} failed ({error!r}); {note}"
            raise Unavailable(msg) from error
        raise error

    async def _publish_partition(
        self,
        partition: int,
        chunks: list[tuple[Any, int]],
        key: str | None,
        reservation: list[int],
    ) -> int | _Partial:
        """Publish one partition's chunks in order; the count stored, or how it failed."""
        ledger = self._ledgers[partition]
        stream, subject = self.stream_name(partition), self.subject(partition)
        for i, (data, nbytes) in enumerate(chunks):
            headers = None if key is None else {"Nats-Msg-Id": f"{key}:{partition}:{i}"}
            with self._lock:
                ledger.inflight += 1
            ack: api.PubAck | None = None
            try:
                ack = await self._js.publish(subject, data, stream=stream, headers=headers)
            except Exception as e:
                return _Partial(i, e)
            finally:
                # One step with the ledger, so a concurrent sync never sees the message twice.
                with self._lock:
                    ledger.inflight -= 1
                    if ack is not None:
                        if not ack.duplicate:
                            ledger.add(ack.seq, nbytes)
                        self._reserved -= nbytes
                        reservation[0] -= nbytes
        return len(chunks)

    async def _shutdown(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
        for consumer in set(self._owners.values()):
            await consumer._stop_pumps()
        nc: Client | None = getattr(self, "_nc", None)
        if nc is not None and not nc.is_closed:
            await nc.close()
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Partial:
    stored: int
    error: BaseException
