"""The embedded bus: partitioned, bounded, in-process pub/sub (the default).

Owns ``MemoryBus`` and its ``Consumer``. Producers (``publish``, on the HTTP event loop) and
consumers (``poll``/``commit``, on the aggregator's thread) meet under one
``threading.Condition``; nothing survives the process, which is what ``nats/`` is for.

Structure::

    MemoryBus
    ├── _cond             one lock for all state below; publish/close notify pollers
    ├── _nbytes           bytes of every uncommitted message: the bound (max_bytes)
    └── _logs[p]          one _Log per partition
          ├── owner       the open consumer of p, or None (one consumer group)
          └── entries     deque of _Entry(message, published_at, done), offset order

    offsets of p:  0 ....... base ............. cursor ............. published
                   committed │ delivered, not yet committed │ not yet delivered
                   (dropped) └──────────────── entries ──────────────────────┘

- ``publish`` appends at ``published``; ``poll`` hands out from ``cursor`` and moves it on;
  ``commit`` marks entries done (their bytes leave the bound at once) and drops the done
  prefix, moving ``base``. Entries may be committed out of order; the head entry is never
  done. ``Consumer.close`` moves ``cursor`` back to ``base``, so the next consumer gets every
  uncommitted message again, in order (done ones are skipped). A consumer never sees a
  message twice itself: to retry what it polled but could not handle, close it and open a
  new one on the same partitions.
- The bound counts ``PointBatch.nbytes`` of uncommitted messages. A publish that would pass it
  raises ``Backpressure`` and enqueues nothing, except on an empty bus: there a batch larger
  than the whole bound is accepted, or it could never go through. So the bound can be
  exceeded by at most one batch, and only when that batch alone is bigger than the bound.
- After ``close``: ``publish`` raises ``Backpressure``; ``poll`` no longer waits but still
  hands out what is left, so an owner can drain the bus before it stops.
- ``publish`` splits a batch by partition before taking the lock; a large batch (see
  ``SPLIT_OFF_LOOP_POINTS``) is split on a worker thread, so the event loop keeps serving.
- The injected clock only stamps messages for ``backlog_seconds``; ``poll`` timeouts are real.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from minutely.bus.base import Message, PartitionStats, owned_partitions, split_by_partition
from minutely.errors import Backpressure, Unavailable
from minutely.model import PointBatch

#: Batches with at least this many points are split on a worker thread, off the event loop
#: (numpy releases the GIL while it sorts and gathers); smaller ones are split in place.
SPLIT_OFF_LOOP_POINTS = 1 << 17


class _Entry:
    __slots__ = ("done", "message", "published_at", "seq")

    def __init__(self, message: Message, published_at: float, seq: int) -> None:
        self.message = message
        self.published_at = published_at
        self.seq = seq  # bus-wide publish order, for interleaving partitions in a poll
        self.done = False


class _Log:
    """One partition: its uncommitted messages and the group's position in them."""

    __slots__ = ("base", "committed", "cursor", "entries", "nbytes", "owner", "published")

    def __init__(self) -> None:
        self.entries: deque[_Entry] = deque()
        self.base = 0  # offset of entries[0]: every earlier offset is committed
        self.cursor = 0  # next offset to deliver to the owner
        self.published = 0  # next offset to publish
        self.committed = 0  # committed messages (may exceed base when committed out of order)
        self.nbytes = 0  # bytes of the uncommitted messages
        self.owner: MemoryConsumer | None = None

    def skip_done(self) -> None:
        while self.cursor < self.published and self.entries[self.cursor - self.base].done:
            self.cursor += 1


class MemoryBus:
    """The in-process ``Bus``: see the module docstring for the structure and the rules.

    ``max_bytes`` bounds the uncommitted bytes; ``max_poll_bytes`` bounds one ``poll``'s
    answer (at least one message is always returned, whatever its size).
    """

    #: in this process's memory: a crash loses what is not yet folded and stored
    durable = False

    def __init__(
        self,
        partitions: int = 16,
        max_bytes: int = 512 << 20,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_poll_bytes: int = 64 << 20,
        duplicate_window: float = 120.0,
    ) -> None:
        if partitions < 1:
            msg = f"partitions must be at least 1, got {partitions}"
            raise ValueError(msg)
        if max_bytes < 1 or max_poll_bytes < 1:
            msg = f"max_bytes ({max_bytes}) and max_poll_bytes ({max_poll_bytes}) must be > 0"
            raise ValueError(msg)
        self._partitions = partitions
        self._max_bytes = max_bytes
        #: this bus lives as long as the process: its logs are new with every instance
        self._generation = f"memory@{secrets.token_hex(8)}"
        self._max_poll_bytes = max_poll_bytes
        self._clock = clock
        self._cond = threading.Condition()
        self._logs = [_Log() for _ in range(partitions)]
        self._nbytes = 0
        self._closed = False
        self._seq = 0  # bus-wide publish counter
        self._duplicate_window = duplicate_window
        self._seen: dict[str, float] = {}  # idempotency key -> when it was published

    @property
    def partitions(self) -> int:
        return self._partitions

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def open(self) -> None:
        """Nothing to connect to: the bus is ready once built (``Bus.open``)."""

    def full_message(self, incoming: int = 0) -> str | None:
        """Why a publish of about ``incoming`` bytes would be refused now, or None; read
        without the lock, so ingest can refuse before it decodes a body (the publish checks
        again, exactly)."""
        nbytes = self._nbytes
        if nbytes < self._max_bytes and (nbytes == 0 or nbytes + incoming <= self._max_bytes):
            return None
        return (
            f"the bus is full: {nbytes} of {self._max_bytes} bytes uncommitted,"
            f" the body needs about {incoming}"
        )

    async def publish(self, batch: PointBatch, idempotency_key: str | None = None) -> None:
        if len(batch) == 0:
            return
        if idempotency_key is not None and self._seen_recently(idempotency_key):
            return  # a retry of a publish that went through: it counts once
        # Split outside the lock: numpy work must not hold up the aggregator's poll.
        if len(batch) >= SPLIT_OFF_LOOP_POINTS:
            pieces = await asyncio.to_thread(split_by_partition, batch, self._partitions)
        else:
            pieces = split_by_partition(batch, self._partitions)
        size = sum(piece.nbytes for _, piece in pieces)
        with self._cond:
            if self._closed:
                msg = "the bus is closed"
                raise Unavailable(msg)
            if self._nbytes > 0 and self._nbytes + size > self._max_bytes:
                msg = (
                    f"the bus is full: {self._nbytes} of {self._max_bytes} bytes uncommitted,"
                    f" the batch needs {size}"
                )
                raise Backpressure(msg)
            now = self._clock()
            if idempotency_key is not None:
                if self._seen_recently(idempotency_key):
                    return
                self._seen[idempotency_key] = now
            self._seq += 1
            for p, piece in pieces:
                log = self._logs[p]
                log.entries.append(_Entry(Message(p, log.published, piece), now, self._seq))
                log.published += 1
                log.nbytes += piece.nbytes
            self._nbytes += size
            self._cond.notify_all()

    def _seen_recently(self, key: str) -> bool:
        """Was ``key`` published within the duplicate window? Forgets older keys."""
        with self._cond:
            now = self._clock()
            horizon = now - self._duplicate_window
            if len(self._seen) > 4096:
                self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
            seen = self._seen.get(key)
            return seen is not None and seen >= horizon

    def consumer(self, partitions: Sequence[int] | None = None) -> MemoryConsumer:
        """A consumer owning ``partitions`` (all if None).

        Raises ``ValueError`` if one is out of range, repeated, or owned by an open consumer.
        """
        owned = owned_partitions(partitions, self._partitions)
        with self._cond:
            taken = [p for p in owned if self._logs[p].owner is not None]
            if taken:
                msg = f"partitions {taken} are owned by another open consumer"
                raise ValueError(msg)
            consumer = MemoryConsumer(self, tuple(sorted(owned)))
            for p in owned:
                self._logs[p].owner = consumer
            return consumer

    def stats(self) -> list[PartitionStats]:
        with self._cond:
            now = self._clock()
            return [
                PartitionStats(
                    partition=p,
                    published=log.published,
                    committed=log.committed,
                    backlog_messages=log.published - log.committed,
                    backlog_bytes=log.nbytes,
                    backlog_seconds=max(0.0, now - log.entries[0].published_at)
                    if log.entries
                    else 0.0,
                    generation=self._generation,
                )
                for p, log in enumerate(self._logs)
            ]

    async def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- called by MemoryConsumer, which shares the lock --------------------------------------

    def _poll(self, consumer: MemoryConsumer, timeout: float) -> list[Message]:
        logs = [self._logs[p] for p in consumer.partitions]
        with self._cond:
            if consumer.closed:
                msg = "poll on a closed consumer"
                raise RuntimeError(msg)
            if not self._closed:
                self._cond.wait_for(
                    lambda: (
                        consumer.closed
                        or self._closed
                        or any(log.cursor < log.published for log in logs)
                    ),
                    timeout=max(0.0, timeout),
                )
            if consumer.closed:
                return []
            # Hand out messages in the order they were published, across partitions: the
            # aggregator then sees event time advance evenly, and no partition is starved.
            out: list[Message] = []
            budget = self._max_poll_bytes
            pending = [log for log in logs if log.cursor < log.published]
            while pending:
                log = min(pending, key=lambda lg: lg.entries[lg.cursor - lg.base].seq)
                message = log.entries[log.cursor - log.base].message
                size = message.batch.nbytes
                if out and size > budget:
                    return out
                out.append(message)
                budget -= size
                log.cursor += 1
                log.skip_done()
                if log.cursor >= log.published:
                    pending.remove(log)
            return out

    def _commit(self, consumer: MemoryConsumer, messages: Sequence[Message]) -> None:
        with self._cond:
            if consumer.closed:
                msg = "commit on a closed consumer: its messages go to the next consumer"
                raise RuntimeError(msg)
            # Check every message before marking any, so a bad call commits nothing.
            entries: list[tuple[_Log, _Entry]] = []
            for message in messages:
                p = message.partition
                log = self._logs[p] if 0 <= p < self._partitions else None
                if log is None or log.owner is not consumer:
                    msg = f"partition {p} is not owned by this consumer"
                    raise ValueError(msg)
                if message.offset < log.base:
                    continue  # committed already
                if message.offset >= log.cursor:
                    msg = f"message {p}/{message.offset} was not delivered to this consumer"
                    raise ValueError(msg)
                entry = log.entries[message.offset - log.base]
                if entry.message is not message:
                    msg = f"message {p}/{message.offset} does not come from this bus"
                    raise ValueError(msg)
                entries.append((log, entry))
            for log, entry in entries:
                if entry.done:
                    continue  # listed twice
                entry.done = True
                size = entry.message.batch.nbytes
                log.nbytes -= size
                log.committed += 1
                self._nbytes -= size
            for log, _ in entries:
                while log.entries and log.entries[0].done:
                    log.entries.popleft()
                    log.base += 1

    def _release(self, consumer: MemoryConsumer) -> None:
        with self._cond:
            if consumer.closed:
                return
            consumer.closed = True
            for p in consumer.partitions:
                log = self._logs[p]
                log.owner = None
                log.cursor = log.base
                log.skip_done()
            self._cond.notify_all()


class MemoryConsumer:
    """A ``Consumer`` of a ``MemoryBus``: a handle; the state lives in the bus's logs."""

    __slots__ = ("_bus", "_partitions", "closed")

    def __init__(self, bus: MemoryBus, partitions: tuple[int, ...]) -> None:
        self._bus = bus
        self._partitions = partitions
        self.closed = False

    @property
    def partitions(self) -> tuple[int, ...]:
        return self._partitions

    def poll(self, timeout: float) -> list[Message]:
        return self._bus._poll(self, timeout)

    def commit(self, messages: Sequence[Message]) -> None:
        self._bus._commit(self, messages)

    def close(self) -> None:
        self._bus._release(self)
