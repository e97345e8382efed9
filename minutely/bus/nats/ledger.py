"""``Ledger``: the books of the bus's byte bound, shared by ``NatsBus`` and its consumers.

Counts ``PointBatch.nbytes`` of the uncommitted messages per partition, as ``MemoryBus``
counts them: exactly for the messages this process published or was delivered (``known``),
by their stored size for the rest (other processes', or left from an earlier run), and the
batches being published now (``reserved``). Thread-safe: one lock guards it all.

Who writes what::

    NatsBus.publish      reserve → sending → sent (or failed) → release
    NatsConsumer.poll    learn     a delivered message's sequence and bytes
    NatsConsumer.commit  forget    the committed ones
    NatsBus (sync)       sync      reconcile with the streams' state, every ``sync_interval``
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from minutely.bus.nats.broker import StreamState
from minutely.errors import Backpressure

#: how long a commit is remembered, to reconcile with a stream state asked for before it
COMMITS_KEPT = 60.0


class Reservation:
    """The bytes one publish holds under the bound and has not yet moved into the books."""

    __slots__ = ("held",)

    def __init__(self, held: int) -> None:
        self.held = held


class _Partition:
    """What the ledger knows of one partition's uncommitted messages (under its lock)."""

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
        while self.commits and self.commits[0][0] < now - COMMITS_KEPT:
            self.commits.popleft()

    def sync(self, state: StreamState, asked_at: float) -> None:
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


class Ledger:
    """The uncommitted bytes of ``partitions`` partitions; see the module docstring."""

    def __init__(self, partitions: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._partitions = [_Partition() for _ in range(partitions)]
        self._reserved = 0

    def held(self) -> int:
        """Uncommitted bytes as far as the books know, plus what publishes reserve."""
        with self._lock:
            return self._held()

    def _held(self) -> int:
        return self._reserved + sum(p.known_bytes + p.unknown_bytes for p in self._partitions)

    def backlog_bytes(self) -> list[int]:
        """Per partition, the uncommitted bytes the books know of or estimate."""
        with self._lock:
            return [p.known_bytes + p.unknown_bytes for p in self._partitions]

    # -- publishing -------------------------------------------------------------------------

    def reserve(self, nbytes: int, limit: int) -> Reservation:
        """Hold ``nbytes`` for a publish, or raise ``Backpressure`` when they do not fit
        under ``limit`` (an empty bus takes a batch of any size)."""
        with self._lock:
            held = self._held()
            if held > 0 and held + nbytes > limit:
                msg = (
                    f"the bus is full: {held} of {limit} bytes uncommitted,"
                    f" the batch needs {nbytes}"
                )
                raise Backpressure(msg)
            self._reserved += nbytes
        return Reservation(nbytes)

    def sending(self, partition: int) -> None:
        """A message is on its way to ``partition``'s stream: a sync must not count it as
        unknown while its ack is awaited."""
        with self._lock:
            self._partitions[partition].inflight += 1

    def sent(self, partition: int, seq: int | None, nbytes: int, reservation: Reservation) -> None:
        """JetStream acked a message of ``nbytes``: stored as ``seq``, or (``None``) a
        duplicate of one stored before. Its bytes move from ``reservation`` to the books in
        one step, so a concurrent sync never counts the message twice."""
        with self._lock:
            books = self._partitions[partition]
            books.inflight -= 1
            if seq is not None:
                books.add(seq, nbytes)
            self._reserved -= nbytes
            reservation.held -= nbytes

    def failed(self, partition: int) -> None:
        """A message sent to ``partition`` was not acked; its bytes stay reserved."""
        with self._lock:
            self._partitions[partition].inflight -= 1

    def release(self, reservation: Reservation) -> None:
        """The publish is over: what ``reservation`` still holds leaves the bound."""
        with self._lock:
            self._reserved -= reservation.held
            reservation.held = 0

    # -- consuming --------------------------------------------------------------------------

    def learn(self, partition: int, seq: int, nbytes: int) -> None:
        """A delivered message: ``seq`` in ``partition``'s stream holds ``nbytes``."""
        with self._lock:
            self._partitions[partition].add(seq, nbytes)

    def forget(self, done: Sequence[tuple[int, int]]) -> None:
        """These ``(partition, seq)`` were committed: their bytes leave the bound."""
        now = self._monotonic()
        with self._lock:
            for partition, seq in done:
                self._partitions[partition].remove(seq, now)

    # -- reconciling --------------------------------------------------------------------------

    def sync(self, states: Sequence[StreamState], asked_at: float) -> None:
        """Reconcile every partition with its stream's state, asked for at ``asked_at``
        (``time.monotonic``): committed messages leave, unknown ones are estimated."""
        with self._lock:
            for books, state in zip(self._partitions, states, strict=True):
                books.sync(state, asked_at)
