"""The JetStream bus: ``NatsBus``, the ``Bus`` on NATS JetStream (durable, clusterable).

Owns the layout of the bus on the broker, the wire form of a message, the byte bound and the
consumer group's pull consumers. Passes ``tests/contracts/test_bus_contract.py`` like
``MemoryBus``; ``tests/bus/test_nats.py`` covers what only a broker can do.

On the broker::

    stream MINUTELY_<p>           one per partition p, subject  minutely.points.<p>
    │   retention WorkQueue       a message stays until it is acked (committed), then it goes
    │   discard New               a full stream rejects a publish: Backpressure, never a drop
    │   stream_max_bytes          JetStream's hard limit per stream, in stored bytes
    │   max_age                   0 (the default): kept until committed, however old
    │   duplicate_window          Nats-Msg-Id "<idempotency key>:<p>:<chunk>" is stored once
    └── consumer "minutely-<id>"  durable pull consumer, AckExplicit: the group's one member

- **One stream per partition**, not one stream with N subjects: a stream's sequence numbers
  are dense (a rejected or deduplicated publish takes none), so ``offset = sequence - 1``
  counts ``0, 1, 2, ...`` per partition in publish order, the same for every consumer and
  every process. It also lets a cluster spread the partitions' stream leaders over its nodes.
- **A message** is one Arrow IPC stream (``PointBatch.to_arrow``) holding one partition's
  piece of a published batch, its name dictionaries cut down to the names it uses. A piece
  larger than the server's ``max_payload`` is cut into row chunks, one message each.
- **publish** splits the batch, checks the bound, publishes every piece and awaits each
  JetStream ack before returning, so an answered ingest is durable: stored by the server
  (on a quorum of replicas in a cluster; flushed to disk per its ``sync_interval``).
  JetStream cannot take back an acked message, so all-or-nothing holds for the bound this
  bus checks itself (nothing is published when the batch does not fit), not for a failure
  half-way (broker full, connection lost): the error says how many pieces were stored, and a
  retry with the same ``idempotency_key`` within ``duplicate_window`` stores each piece once.
- **The bound** counts ``PointBatch.nbytes`` of uncommitted messages, as ``MemoryBus`` does,
  from a ledger this bus keeps (pieces it published or delivered) plus, for messages it never
  saw (other processes', or left from an earlier run), their stored bytes (an overestimate),
  re-read from the streams every ``sync_interval``. JetStream's own ``stream_max_bytes`` is a
  hard backstop in stored bytes for producers the ledger does not see.
- **Redelivery.** ``consumer()`` deletes the group's durable consumer of each partition,
  whoever made it, and creates its own (``<group>-<random id>``, so a consumer that lost a
  partition cannot pull from its successor: its ``poll`` raises ``RuntimeError``), which
  delivers from the oldest message still in the stream: with WorkQueue retention that is
  exactly the oldest uncommitted one (and a committed message is gone: the bus does not
  replay what was committed). So ``close`` (which deletes the consumer) and a crash
  (the next process takes the partition over) both hand every uncommitted message, in
  order, to the next consumer at once. ``ack_wait`` plays no part in that: it only paces
  the redeliveries JetStream makes to a consumer that holds a message longer, and those are
  dropped, not handed out twice. ``commit`` acks with AckAck (``ack_sync``): it returns once
  JetStream has removed the messages.
- **Threads.** The nats client runs on a private event loop thread. ``publish`` is awaited on
  the caller's loop and bridged to it; ``poll`` blocks the aggregator's thread on a
  condition fed by one pump task per owned partition (long-polling pull requests; what is
  buffered plus what they may still bring stays under ``prefetch_bytes``, below the server's
  ``max_pending``); ``stats``, ``consumer``, ``commit`` and ``close`` block on the loop.
- **Connection.** Reconnects forever with capped exponential backoff. While disconnected,
  ``publish`` and ``stats`` raise ``Unavailable`` at once; ``commit`` raises ``Unavailable``
  when an ack cannot be confirmed (the message then goes to the partition's next consumer).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from nats.aio.client import Client
from nats.aio.client import Server as NatsServerInfo
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

from minutely.bus.base import Message, PartitionStats, owned_partitions, split_by_partition
from minutely.errors import Backpressure, ConfigError, Unavailable
from minutely.model import ARROW_SCHEMA, PointBatch

__all__ = ["NatsBus", "NatsConsumer"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Batches with at least this many points are split and encoded on a worker thread.
SPLIT_OFF_LOOP_POINTS = 1 << 17
#: Room left in a message for its headers, under the server's max_payload.
HEADER_ROOM = 4096
#: JetStream error codes for a publish that a DiscardNew stream has no room for.
STREAM_FULL = frozenset({10077, 10078})  # maximum bytes / maximum messages exceeded
#: How long a pull request waits on the server for messages before it is renewed.
PULL_EXPIRES = 2.0
#: Messages asked for by one pull request.
PULL_BATCH = 64
#: Bytes one pull request of an idle partition asks for (a busy one asks for more).
IDLE_CREDIT = 64 << 10
RETRY_AFTER_SECONDS = 1.0


# -- wire form ------------------------------------------------------------------------------


def _used_names(
    names: npt.NDArray[np.object_], codes: npt.NDArray[np.int32]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int32]]:
    """The names ``codes`` use, and codes into them (vectorised: no step per point)."""
    if names.shape[0] <= 1 or codes.shape[0] == 0:
        return names, codes
    used = np.bincount(codes, minlength=names.shape[0]) > 0
    if bool(used.all()):
        return names, codes
    remap = (np.cumsum(used, dtype=np.int32) - 1).astype(np.int32)
    return names[used], remap[codes]


def _rows(batch: PointBatch, start: int, stop: int) -> PointBatch:
    return PointBatch(
        batch.server_names,
        batch.server_codes[start:stop],
        batch.metric_names,
        batch.metric_codes[start:stop],
        batch.ts[start:stop],
        batch.value[start:stop],
    )


def encode(piece: PointBatch, budget: int) -> list[tuple[bytes, int]]:
    """``piece`` as Arrow IPC messages of at most ``budget`` bytes: ``(payload, nbytes)``.

    One message unless the piece is too big; then it is cut into row ranges of about equal
    size, in order. Each message's dictionaries hold only the names its rows use.
    """
    n = len(piece)
    if piece.nbytes > budget and n > 1:  # too big whatever the names: cut without encoding
        parts = min(n, -(-piece.nbytes // max(1, budget * 8 // 10)))
        return _cut(piece, parts, budget)
    s_names, s_codes = _used_names(piece.server_names, piece.server_codes)
    m_names, m_codes = _used_names(piece.metric_names, piece.metric_codes)
    wire = _to_wire(PointBatch(s_names, s_codes, m_names, m_codes, piece.ts, piece.value))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, wire.schema) as writer:
        writer.write_batch(wire)
    data: bytes = sink.getvalue().to_pybytes()
    if len(data) <= budget:
        return [(data, piece.nbytes)]
    if n <= 1:
        msg = f"one point encodes to {len(data)} bytes, over the broker's limit of {budget}"
        raise ValueError(msg)
    return _cut(piece, min(n, max(2, -(-len(data) // max(1, budget * 9 // 10)))), budget)


def _cut(piece: PointBatch, parts: int, budget: int) -> list[tuple[bytes, int]]:
    """``encode`` of ``parts`` row ranges of about equal size, in order."""
    bounds = np.linspace(0, len(piece), parts + 1).astype(np.int64).tolist()
    out: list[tuple[bytes, int]] = []
    for start, stop in itertools.pairwise(bounds):
        out += encode(_rows(piece, start, stop), budget)
    return out


#: schema metadata of a message whose ``ts`` column is whole seconds after this base
TS_BASE = b"minutely.ts_base"


def _codes(codes: npt.NDArray[np.int32], names: npt.NDArray[np.object_]) -> pa.DictionaryArray:
    if names.shape[0] <= np.iinfo(np.int16).max:
        indices = pa.array(codes.astype(np.int16), pa.int16())
    else:
        indices = pa.array(codes, pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string()))


def _to_wire(piece: PointBatch) -> pa.RecordBatch:
    """The message form: the broker stores and moves every byte, so points are narrowed
    where that loses nothing: dictionary indices as int16 when the names fit, and ``ts``
    as int32 seconds after a base (in the schema's metadata) when every ts is a whole
    second within 68 years of the first. 16 bytes a point instead of 24, typically."""
    ts = piece.ts
    metadata = None
    ts_column = pa.array(ts)
    if ts.shape[0]:
        base = np.floor(ts.min())
        offsets = ts - base
        if float(offsets.max()) < 2**31 and bool(np.all(np.floor(offsets) == offsets)):
            ts_column = pa.array(offsets.astype(np.int32))
            metadata = {TS_BASE: str(int(base)).encode()}
    return pa.RecordBatch.from_arrays(
        [
            _codes(piece.server_codes, piece.server_names),
            _codes(piece.metric_codes, piece.metric_names),
            ts_column,
            pa.array(piece.value),
        ],
        names=ARROW_SCHEMA.names,
        metadata=metadata,
    )


def decode(data: bytes) -> PointBatch:
    """Inverse of ``encode`` for one message."""
    batch = pa.ipc.open_stream(pa.py_buffer(data)).read_next_batch()
    s, m, ts = batch.column(0), batch.column(1), batch.column(2)
    ts_values = ts.to_numpy(zero_copy_only=False)
    metadata = batch.schema.metadata or {}
    if TS_BASE in metadata:
        ts_values = ts_values + float(int(metadata[TS_BASE]))
    return PointBatch(
        np.asarray(s.dictionary.to_pylist(), dtype=object),
        s.indices.to_numpy(zero_copy_only=False).astype(np.int32),
        np.asarray(m.dictionary.to_pylist(), dtype=object),
        m.indices.to_numpy(zero_copy_only=False).astype(np.int32),
        ts_values.astype(np.float64, copy=False),
        batch.column(3).to_numpy(zero_copy_only=False),
    )


def _prepare(batch: PointBatch, partitions: int, budget: int) -> list[tuple[int, list[Any]]]:
    return [(p, encode(piece, budget)) for p, piece in split_by_partition(batch, partitions)]


# -- the private event loop -----------------------------------------------------------------


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when present (uvicorn[standard] brings it): its transports write and read the
    client's megabyte payloads in C, which the default loop does in Python."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a plain install without uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _LoopThread:
    """An asyncio loop on a daemon thread, for the nats client; ``call`` blocks on it."""

    def __init__(self, name: str) -> None:
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            msg = "NatsBus blocking call made from its own event loop thread"
            raise RuntimeError(msg)
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            msg = f"NATS did not answer within {timeout} s"
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS) from None

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()


# -- the bus --------------------------------------------------------------------------------


@dataclass(slots=True)
class _StreamState:
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    first_ts: float  # unix seconds of the oldest message; 0.0 if there is none


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

        self._io = _LoopThread(f"minutely-nats-{stream}")
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
                raise Backpressure(msg, retry_after=RETRY_AFTER_SECONDS)
            self._reserved += size
        reservation = [size]  # what is still reserved; _publish_partition moves it to the ledger
        try:
            budget = int(self._nc.max_payload) - HEADER_ROOM
            if len(batch) >= SPLIT_OFF_LOOP_POINTS:
                pieces = await asyncio.to_thread(_prepare, batch, self._partitions, budget)
            else:
                pieces = _prepare(batch, self._partitions, budget)
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
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS)
        if not self._nc.is_connected:
            msg = f"not connected to NATS at {self._url}; reconnecting"
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS)

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
            connecting = nats.connect(
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
            return await asyncio.wait_for(connecting, self._timeout)
        except (OSError, TimeoutError, nats.errors.Error) as e:
            msg = f"cannot reach NATS at {self._url} within {self._timeout} s: {e!r}"
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS) from e

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
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS) from e
        answer = json.loads(reply.data)
        if "error" in answer:
            msg = f"cannot read the state of stream {name}: {answer['error']}"
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS)
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
            raise Backpressure(msg, retry_after=RETRY_AFTER_SECONDS) from error
        if isinstance(error, TimeoutError | nats.errors.Error | OSError):
            msg = f"publishing to NATS at {self._url} failed ({error!r}); {note}"
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS) from error
        raise error

    async def _publish_partition(
        self,
        partition: int,
        chunks: list[tuple[bytes, int]],
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


class NatsConsumer:
    """A ``Consumer`` of a ``NatsBus``: one durable pull consumer per owned partition.

    Pump tasks on the bus's loop fill a buffer that ``poll`` hands out from; the buffer and
    the outstanding pull requests together stay under ``prefetch_bytes``.
    """

    def __init__(self, bus: NatsBus, partitions: tuple[int, ...]) -> None:
        self._bus = bus
        self._partitions = partitions
        self._cond = threading.Condition()
        self._buffer: dict[int, deque[tuple[int, Msg]]] = {p: deque() for p in partitions}
        self._buffered = 0  # messages in _buffer
        self._buffered_bytes = 0
        self._seen: dict[int, set[int]] = {p: set() for p in partitions}  # buffered or delivered
        self._delivered: dict[int, dict[int, tuple[Message, Msg]]] = {p: {} for p in partitions}
        self._cursor = dict.fromkeys(partitions, -1)  # highest offset handed out
        self._next_start = 0
        self._closed = False
        self._lost: str | None = None
        self._subs: list[Subscription] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._requested = 0  # prefetch budget held by outstanding pull requests
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()  # pumps wanting some
        self._max_message = 0  # the most a message can take: the server's max_payload, padded
        #: this consumer's durable name on the broker: the group's, made unique, so that a
        #: consumer that lost its partitions can never pull from its successor
        self._name = f"{bus._group}-{secrets.token_hex(6)}"

    @property
    def partitions(self) -> tuple[int, ...]:
        return self._partitions

    def poll(self, timeout: float) -> list[Message]:
        bus = self._bus
        with self._cond:
            if self._closed:
                msg = "poll on a closed consumer"
                raise RuntimeError(msg)
            if not bus.closed:
                self._cond.wait_for(
                    lambda: self._closed or bus.closed or self._lost is not None or self._buffered,
                    timeout=max(0.0, timeout),
                )
            if self._closed:
                return []
            if self._lost is not None:  # what is buffered is the new owner's now
                raise RuntimeError(self._lost)
            start = self._next_start
            self._next_start = (start + 1) % len(self._partitions)
            order = self._partitions[start:] + self._partitions[:start]
            taken: list[tuple[int, int, Msg]] = []
            budget = bus.max_poll_bytes
            for p in order:
                queue = self._buffer[p]
                while queue and not (taken and len(queue[0][1].data) > budget):
                    seq, raw = queue.popleft()
                    taken.append((p, seq, raw))
                    budget -= len(raw.data)
                    self._buffered -= 1
                    self._buffered_bytes -= len(raw.data)
                if queue:
                    break
        if taken:
            bus._io.loop.call_soon_threadsafe(self._grant)
        out: list[Message] = []
        for p, seq, raw in taken:
            message = Message(p, seq - 1, decode(raw.data))
            bus._learn(p, seq, message.batch.nbytes)
            out.append(message)
        with self._cond:
            for message, (_, _, raw) in zip(out, taken, strict=True):
                self._delivered[message.partition][message.offset] = (message, raw)
                self._cursor[message.partition] = max(
                    self._cursor[message.partition], message.offset
                )
        return out

    def commit(self, messages: Sequence[Message]) -> None:
        """Ack these delivered messages and wait until JetStream has removed them.

        Raises ``Unavailable`` if an ack is not confirmed (connection lost, partition taken
        over): those messages stay uncommitted and go to the partition's next consumer.
        """
        with self._cond:
            if self._closed:
                msg = "commit on a closed consumer: its messages go to the next consumer"
                raise RuntimeError(msg)
            todo: dict[tuple[int, int], Msg] = {}
            for message in messages:
                p = message.partition
                delivered = self._delivered.get(p)
                if delivered is None:
                    msg = f"partition {p} is not owned by this consumer"
                    raise ValueError(msg)
                entry = delivered.get(message.offset)
                if entry is None:
                    if message.offset <= self._cursor[p]:
                        continue  # committed already
                    msg = f"message {p}/{message.offset} was not delivered to this consumer"
                    raise ValueError(msg)
                if entry[0] is not message:
                    msg = f"message {p}/{message.offset} does not come from this bus"
                    raise ValueError(msg)
                todo[(p, message.offset)] = entry[1]
        if not todo:
            return
        keys = list(todo)
        results = self._bus._io.call(self._ack_all([todo[k] for k in keys]), self._bus._timeout * 2)
        done = [k for k, ok in zip(keys, results, strict=True) if ok is None]
        with self._cond:
            for p, offset in done:
                del self._delivered[p][offset]
                self._seen[p].discard(offset + 1)
        self._bus._forget([(p, offset + 1) for p, offset in done])
        failed = [r for r in results if r is not None]
        if failed:
            msg = (
                f"{len(failed)} of {len(keys)} commits were not confirmed ({failed[0]!r});"
                " those messages go to the partition's next consumer"
            )
            raise Unavailable(msg, retry_after=RETRY_AFTER_SECONDS)

    def close(self) -> None:
        """Give the partitions back: delete their durable consumers, so the next consumer
        gets every uncommitted message at once, in order. Safe from any thread, idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._bus._release(self)
        if self._bus.closed:
            return
        try:
            self._bus._io.call(self._stop(), self._bus._timeout * 2)
        except Unavailable as e:  # the next consumer() takes the partitions over anyway
            log.warning("closing a consumer: %s", e)

    # -- internals ------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _abandon(self) -> None:
        with self._cond:
            self._closed = True
        self._bus._release(self)
        if not self._bus.closed:
            self._bus._io.submit(self._stop())

    async def _start(self) -> None:
        self._max_message = self._bus._max_message()
        await asyncio.gather(*(self._take(p) for p in self._partitions))

    async def _take(self, partition: int) -> None:
        """Delete the group's consumer of ``partition`` (whoever made it), create ours."""
        bus = self._bus
        stream = bus.stream_name(partition)
        for info in await bus._js.consumers_info(stream):
            name = info.name or ""
            if name == bus._group or name.startswith(f"{bus._group}-"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await bus._js.delete_consumer(stream, name)
        await bus._js.add_consumer(
            stream,
            api.ConsumerConfig(
                durable_name=self._name,
                description=f"minutely consumer group, partition {partition}",
                deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=bus._ack_wait,
                max_deliver=-1,
                max_ack_pending=-1,
            ),
        )
        inbox = bus._nc.new_inbox()
        sub = await bus._nc.subscribe(
            inbox, pending_msgs_limit=-1, pending_bytes_limit=4 * bus.prefetch_bytes + (64 << 20)
        )
        self._subs.append(sub)
        task = asyncio.get_running_loop().create_task(self._pump(partition, sub, inbox))
        self._pumps.append(task)

    # The prefetch budget (``prefetch_bytes``) covers what is buffered plus what outstanding
    # pull requests may still bring, so the server never queues more than that for this
    # connection (past its ``max_pending``, 64 MiB by default, it cuts the connection).
    # Pumps take credit in FIFO order; an idle partition's long poll holds only IDLE_CREDIT.

    async def _credit(self, size: int) -> None:
        """Wait until ``size`` bytes of the budget are free, and take them."""
        if self._waiting or not self._try_take(size):
            granted = asyncio.get_running_loop().create_future()
            self._waiting.append((size, granted))
            await granted

    def _try_take(self, size: int) -> bool:
        with self._cond:
            if self._bus.prefetch_bytes - self._buffered_bytes - self._requested < size:
                return False
            self._requested += size
            return True

    def _grant(self) -> None:
        """Hand freed budget to waiting pumps, first come first served (on the loop)."""
        while self._waiting:
            size, granted = self._waiting[0]
            if granted.cancelled():
                self._waiting.popleft()
                continue
            if not self._try_take(size):
                return
            self._waiting.popleft()
            granted.set_result(None)

    def _settle(self, credit: int) -> None:
        """Give back what a finished pull request did not use."""
        with self._cond:
            self._requested -= credit
        self._grant()

    async def _pump(self, partition: int, sub: Subscription, inbox: str) -> None:
        bus = self._bus
        stream = bus.stream_name(partition)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{self._name}"
        busy = bus.prefetch_bytes // (2 * len(self._partitions))
        size = IDLE_CREDIT
        while True:
            await self._credit(size)
            # An idle partition waits on the server with a small long poll; a busy one takes
            # what is there (no_wait: the request ends at once, so it never sits on credit).
            request: dict[str, Any] = {"batch": PULL_BATCH, "max_bytes": size}
            if size == IDLE_CREDIT:
                request["expires"] = int(PULL_EXPIRES * 1e9)
            else:
                request["no_wait"] = True
            try:
                await bus._nc.publish(next_subject, json.dumps(request).encode(), reply=inbox)
            except nats.errors.Error:
                self._settle(size)
                await asyncio.sleep(bus._reconnect_max_wait)
                continue
            left = size
            try:
                left, outcome = await self._receive(partition, sub, stream, size)
            finally:
                self._settle(left)
            if outcome == "lost":
                self._lose(partition)
                return
            if outcome == "got":
                size = max(size, busy)
            elif outcome == "too small":  # the next message is bigger than we asked for
                size = min(4 * size, self._max_message)
            else:  # nothing left: back to a small long poll
                size = IDLE_CREDIT

    async def _receive(
        self, partition: int, sub: Subscription, stream: str, credit: int
    ) -> tuple[int, str]:
        """Take one pull request's messages: the credit it left, and how it went:
        ``got`` messages, ``idle``, ``too small`` or ``lost`` (taken over)."""
        bus = self._bus
        left = PULL_BATCH
        arrived = 0
        while left > 0:
            try:
                msg = await sub.next_msg(timeout=PULL_EXPIRES + 1.0)
            except nats.errors.TimeoutError:
                break  # the request got lost (reconnect): ask again
            except nats.errors.Error:
                await asyncio.sleep(bus._reconnect_max_wait)
                break
            status = msg.headers.get("Status") if msg.headers else None
            if status is None:
                left -= 1
                arrived += 1
                used = min(credit, len(msg.data))
                credit -= used
                self._arrive(partition, msg, used)
                continue
            if status == "100":
                continue  # idle heartbeat
            # (the client keys Description by an enum member: read the values)
            description = " ".join(str(v) for v in (msg.headers or {}).values())
            if status == "409" and "Deleted" in description:
                return credit, "lost"
            if status == "409" and "MaxBytes" in description and not arrived:
                return credit, "too small"
            if status == "503":  # no responders: our consumer is gone, or JetStream is down
                try:
                    await bus._js.consumer_info(stream, self._name)
                except nats.js.errors.NotFoundError:
                    return credit, "lost"
                except (TimeoutError, nats.errors.Error):
                    await asyncio.sleep(bus._reconnect_max_wait)
            break  # 404 no messages, 408 expired, 409 limits: this request is over
        return credit, "got" if arrived else "idle"

    def _arrive(self, partition: int, msg: Msg, credit: int) -> None:
        """Buffer a delivered message; ``credit`` of the pull request's budget moves with it."""
        seq = int(msg.metadata.sequence.stream)
        with self._cond:
            self._requested -= credit
            if seq in self._seen[partition]:
                return  # redelivered after ack_wait: this consumer has it already
            self._seen[partition].add(seq)
            self._buffer[partition].append((seq, msg))
            self._buffered += 1
            self._buffered_bytes += len(msg.data)
            self._cond.notify_all()

    def _lose(self, partition: int) -> None:
        with self._cond:
            self._lost = (
                f"partition {partition} was taken over by another consumer of group"
                f" {self._bus._group!r}: close this one"
            )
            self._cond.notify_all()

    async def _ack_all(self, msgs: list[Msg]) -> list[BaseException | None]:
        async def ack(m: Msg) -> None:
            await m.ack_sync(timeout=self._bus._timeout)

        results = await asyncio.gather(*(ack(m) for m in msgs), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    async def _stop_pumps(self) -> None:
        pumps, self._pumps = self._pumps, []
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _stop(self) -> None:
        await self._stop_pumps()
        bus = self._bus

        async def delete(p: int) -> None:
            try:
                await bus._js.delete_consumer(bus.stream_name(p), self._name)
            except nats.js.errors.NotFoundError:
                pass
            except (TimeoutError, nats.errors.Error) as e:
                log.warning("could not delete the consumer of partition %d: %r", p, e)

        await asyncio.gather(*(delete(p) for p in self._partitions))
