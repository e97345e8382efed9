"""The bus seam: what a producer and a consumer of point batches may rely on.

Owns the ``Bus`` and ``Consumer`` protocols, the two value types that cross them
(``Message``, ``PartitionStats``) and the partitioning rule every implementation shares
(``partition_of``, ``split_by_partition``). Implementations live next to it: ``memory.py``
(embedded, in-process) and ``nats/`` (JetStream); both must pass
``tests/contracts/test_bus_contract.py``.

The contract, in one place:

- **Partitioned by server.** A point goes to ``crc32(server) % partitions``: stable across
  processes, runs and implementations, so every point of a series meets the same aggregator.
- **Ordered within a partition.** Offsets count ``0, 1, 2, ...`` per partition in publish order.
- **Bounded, all or nothing.** ``publish`` either enqueues every piece of a batch or raises
  ``errors.Backpressure`` and enqueues none of it: never a silent, partial loss.
- **At least once, in order.** A consumer group owns each partition through at most one open
  consumer. ``commit`` marks messages done; what a consumer closed without committing is
  delivered again, from the oldest uncommitted offset, to the next consumer of that partition.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from minutely.model import PointBatch


def partition_of(server_names: npt.NDArray[np.object_], partitions: int) -> npt.NDArray[np.int32]:
    """The partition of each server name: ``zlib.crc32(name.encode()) % partitions``.

    Pass a batch's distinct names (``PointBatch.server_names``), not one name per point: this
    is a Python loop, cheap over a thousand names, slow over a million points. Index the
    result with the batch's codes to get one partition per point.
    """
    if partitions < 1:
        msg = f"partitions must be at least 1, got {partitions}"
        raise ValueError(msg)
    return np.fromiter(
        (zlib.crc32(name.encode()) % partitions for name in server_names.tolist()),
        dtype=np.int32,
        count=server_names.shape[0],
    )


def owned_partitions(partitions: Sequence[int] | None, total: int) -> tuple[int, ...]:
    """The partitions a new consumer asks for (all if None), checked: a ``ValueError`` names
    an empty, repeated or out-of-range request."""
    owned = tuple(range(total)) if partitions is None else tuple(partitions)
    if not owned:
        msg = "a consumer needs at least one partition"
        raise ValueError(msg)
    if len(set(owned)) != len(owned):
        msg = f"partitions repeated: {list(owned)}"
        raise ValueError(msg)
    for p in owned:
        if not 0 <= p < total:
            msg = f"partition {p} is not in [0, {total})"
            raise ValueError(msg)
    return owned


def split_by_partition(batch: PointBatch, partitions: int) -> list[tuple[int, PointBatch]]:
    """Split a batch into one piece per partition it touches, in ascending partition order.

    Points keep their relative order inside a piece. Vectorised: one Python step per distinct
    server name, per partition and per long run of one partition's points, none per point. A
    batch that falls in a single partition is returned as is (no copy); otherwise every piece
    owns fresh arrays, so a slow partition never keeps the other partitions' points alive.
    Name arrays are shared, not trimmed.
    """
    _, slices = partition_slices(batch, partitions)
    return [(p, batch if cut is None else take_batch(batch, cut)) for p, cut in slices]


#: which points of a batch one partition's piece has, in order: their positions, or the runs
#: of consecutive points they make (when runs are long, copying runs beats a gather per point)
Cut = npt.NDArray[np.intp] | list[slice]

#: the mean run length from which a piece is cut as runs: per run, a slice and a copy cost
#: about what a gather of ~50 points does
RUNS_FROM = 128


def take_batch(batch: PointBatch, cut: Cut) -> PointBatch:
    """``batch``'s points at ``cut``, in fresh arrays; the name arrays are shared."""
    return PointBatch(
        batch.server_names,
        take_points(batch.server_codes, cut),
        batch.metric_names,
        take_points(batch.metric_codes, cut),
        take_points(batch.ts, cut),
        take_points(batch.value, cut),
    )


def take_points(column: npt.NDArray[Any], cut: Cut) -> npt.NDArray[Any]:
    """``column``'s values at ``cut``, in a fresh array."""
    if isinstance(cut, list):
        return np.concatenate([column[run] for run in cut]) if cut else column[:0].copy()
    return np.take(column, cut)


def partition_slices(
    batch: PointBatch, partitions: int
) -> tuple[npt.NDArray[np.int32], list[tuple[int, Cut | None]]]:
    """The partition of each server name, and for each partition the batch touches (in
    ascending order) the ``Cut`` of its points, in their order: ``None`` when that partition
    has every point (the batch is one piece as it is). ``split_by_partition``'s rule, for
    callers that cut the pieces from other columns than the batch's own."""
    of_name = partition_of(batch.server_names, partitions)
    if len(batch) == 0:
        return of_name, []
    if of_name.shape[0] > 0 and np.all(of_name == of_name[0]):
        return of_name, [(int(of_name[0]), None)]  # one server, or servers sharing a partition
    # Small unsigned keys: a narrower gather, and numpy's stable sort of them is a radix sort.
    per_point: npt.NDArray[np.integer[Any]]
    if partitions <= 1 << 8:
        per_point = of_name.astype(np.uint8)[batch.server_codes]
    elif partitions <= 1 << 16:
        per_point = of_name.astype(np.uint16)[batch.server_codes]
    else:
        per_point = of_name[batch.server_codes]
    n = per_point.shape[0]
    change = np.flatnonzero(per_point[1:] != per_point[:-1]) + 1
    if change.shape[0] == 0:
        return of_name, [(int(per_point[0]), None)]
    if change.shape[0] * RUNS_FROM <= n:
        # long runs (an agent's batch; a simulated fleet's second, server after server):
        # each partition's piece is its runs, copied as they are
        starts = np.concatenate(([0], change))
        stops = np.append(change, n)
        run_part = per_point[starts]
        return of_name, [
            (
                p,
                [
                    slice(a, b)
                    for a, b in zip(starts[mine].tolist(), stops[mine].tolist(), strict=True)
                ],
            )
            for p in np.unique(run_part).tolist()
            for mine in [run_part == p]
        ]
    counts = np.bincount(per_point, minlength=partitions)
    order = np.argsort(per_point, kind="stable")  # short runs: order the points themselves
    ends = np.cumsum(counts)
    present = np.flatnonzero(counts)
    return of_name, [(p, order[ends[p] - counts[p] : ends[p]]) for p in present.tolist()]


@dataclass(frozen=True, slots=True)
class Message:
    """One piece of a published batch, as a consumer receives it."""

    partition: int
    #: 0, 1, 2, ... per partition, in publish order
    offset: int
    #: every point of it belongs to ``partition``
    batch: PointBatch


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """How far the consumer group lags behind the producers on one partition."""

    partition: int
    #: messages published so far (the next offset)
    published: int
    #: messages committed by the consumer group
    committed: int
    #: ``published - committed``
    backlog_messages: int
    #: ``PointBatch.nbytes`` summed over the uncommitted messages
    backlog_bytes: int
    #: age of the oldest uncommitted message in seconds; 0 if there is none
    backlog_seconds: float
    #: names the partition's log that offsets count in: the same for every consumer and
    #: process while the log lives, different once it is made anew (offsets restart at 0)
    generation: str = ""


class Consumer(Protocol):
    """A member of the bus's one consumer group, owning a fixed set of partitions.

    Used from one thread (the aggregator's); ``close`` may come from another.
    """

    @property
    def partitions(self) -> tuple[int, ...]:
        """The partitions this consumer owns, ascending."""
        ...

    def poll(self, timeout: float) -> list[Message]:
        """Wait up to ``timeout`` seconds for messages on this consumer's partitions.

        Blocking. Returns ``[]`` on timeout, otherwise a bounded amount (at least one message),
        in offset order within each partition. A message is returned once, unless this
        consumer is closed without committing it and another consumer takes the partition.
        """
        ...

    def commit(self, messages: Sequence[Message]) -> None:
        """Mark these delivered messages done; their bytes leave the bus's bound."""
        ...

    def close(self) -> None:
        """Give the partitions back; uncommitted messages go to their next consumer."""
        ...


class Bus(Protocol):
    """Partitioned, bounded pub/sub of point batches. See the module docstring.

    Built without I/O; ``open`` (once, before anything else) connects to what the bus runs
    on, ``close`` lets go of it.
    """

    #: True when what is published survives a crash of the process that consumes it (then
    #: the aggregator checkpoints and acks only what a checkpoint holds)
    durable: bool

    @property
    def partitions(self) -> int:
        """How many partitions the bus has; a point goes to ``partition_of(server)``."""
        ...

    def open(self) -> None:
        """Connect and set up what the bus needs (blocking). Raises ``errors.Unavailable``
        when that cannot be reached, ``errors.ConfigError`` when what is there does not fit
        this bus's settings."""
        ...

    async def publish(self, batch: PointBatch, idempotency_key: str | None = None) -> None:
        """Split ``batch`` by partition and enqueue every piece, or none of them.

        A publish with an ``idempotency_key`` already published within the bus's duplicate
        window (default 2 minutes) is answered as done and enqueues nothing: a client that
        retries a request whose answer it lost counts its points once.

        Raises ``errors.Backpressure`` (nothing enqueued) when the pieces do not fit under
        the bound, or when the bus is closed. An empty batch is a no-op. The bus may keep
        the batch's arrays: do not mutate them afterwards.
        """
        ...

    def consumer(self, partitions: Sequence[int] | None = None) -> Consumer:
        """A consumer for ``partitions`` (all if None), in the bus's one consumer group."""
        ...

    def stats(self) -> list[PartitionStats]:
        """One entry per partition, in partition order."""
        ...

    async def close(self) -> None:
        """Stop taking batches and wake every waiting ``poll``."""
        ...
