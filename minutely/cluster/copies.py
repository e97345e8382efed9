"""The two copies on the bus: every batch is published twice, once keyed by server, once by
metric, so each copy's partition holds every point of its servers (or metrics).

The by-metric copy reuses the bus as it is: a batch is published with its server and metric
columns swapped (``swapped``), so the bus's split by "server" is a split by metric, and the
copy's shards swap each message back as they poll it (``SwappedBus``). Both copies are the same
streams, consumers and exactly-once path; only their names on the broker differ.

Why publish twice rather than feed the metric copy from the server copy's partials: each copy
is then exactly once by the same argument (``docs/exactly-once.md``) and shows the live minute
as fresh as the other, for twice the bus bytes (``docs/cluster.md`` weighs the two).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from minutely.bus import Bus, Consumer, Message, PartitionStats
from minutely.model import PointBatch


def swapped(batch: PointBatch) -> PointBatch:
    """The batch with its server and metric columns exchanged (no copy of any array)."""
    return PointBatch(
        batch.metric_names,
        batch.metric_codes,
        batch.server_names,
        batch.server_codes,
        batch.ts,
        batch.value,
    )


class SwappedConsumer:
    """A consumer of the by-metric copy that hands out batches the right way round, and
    commits the messages it was given (the inner consumer knows only its own)."""

    def __init__(self, inner: Consumer) -> None:
        self.inner = inner
        #: (partition, offset) -> the message as the inner consumer delivered it
        self._delivered: dict[tuple[int, int], Message] = {}

    @property
    def partitions(self) -> tuple[int, ...]:
        return self.inner.partitions

    def poll(self, timeout: float) -> list[Message]:
        got = self.inner.poll(timeout)
        for m in got:
            self._delivered[(m.partition, m.offset)] = m
        return [replace(m, batch=swapped(m.batch)) for m in got]

    def commit(self, messages: Sequence[Message]) -> None:
        delivered = self._delivered
        self.inner.commit([delivered.pop((m.partition, m.offset)) for m in messages])

    def close(self) -> None:
        self.inner.close()


class SwappedBus:
    """The by-metric copy's bus as its shards see it: consumers swap batches back. (Its
    producers publish through ``TwoCopies``.)"""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner
        self.durable = inner.durable

    @property
    def partitions(self) -> int:
        return self.inner.partitions

    def open(self) -> None:
        self.inner.open()

    async def publish(self, batch: PointBatch, idempotency_key: str | None = None) -> None:
        await self.inner.publish(swapped(batch), idempotency_key)

    def consumer(self, partitions: Sequence[int] | None = None) -> Consumer:
        return SwappedConsumer(self.inner.consumer(partitions))

    def stats(self) -> list[PartitionStats]:
        return self.inner.stats()

    async def close(self) -> None:
        await self.inner.close()


class TwoCopies:
    """What ingest publishes to: both copies, answered once both have stored the batch.

    A failure of either raises (the client retries with its idempotency key, and the copy
    that had stored the batch stores it once); ``consumer`` is not offered: each copy's
    shards consume their own bus.
    """

    def __init__(self, by_server: Bus, by_metric: Bus) -> None:
        self.by_server = by_server
        self.by_metric = SwappedBus(by_metric)
        self.durable = by_server.durable and by_metric.durable

    @property
    def partitions(self) -> int:
        return self.by_server.partitions

    def open(self) -> None:
        self.by_server.open()
        self.by_metric.open()

    async def publish(self, batch: PointBatch, idempotency_key: str | None = None) -> None:
        results = await asyncio.gather(
            self.by_server.publish(batch, idempotency_key),
            self.by_metric.publish(batch, idempotency_key),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def consumer(self, partitions: Sequence[int] | None = None) -> Consumer:
        msg = "consume each copy from its own bus (by_server, by_metric)"
        raise TypeError(msg)

    def stats(self) -> list[PartitionStats]:
        return self.by_server.stats()

    async def close(self) -> None:
        await asyncio.gather(self.by_server.close(), self.by_metric.close())
