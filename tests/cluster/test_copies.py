"""Both copies on the bus: one publish reaches the by-server and the by-metric partitions;
the metric copy's consumers get batches the right way round and commit what they got."""

from __future__ import annotations

import asyncio

import numpy as np

from minutely.bus import MemoryBus
from minutely.bus.base import partition_of
from minutely.cluster.copies import TwoCopies
from minutely.model import PointBatch

P = 4


def test_a_batch_reaches_both_copies_and_commits_in_each() -> None:
    by_server, by_metric = MemoryBus(P), MemoryBus(P)
    copies = TwoCopies(by_server, by_metric)
    servers = [f"s{i}" for i in range(6) for _ in range(5)]
    metrics = [f"m{j}" for _ in range(6) for j in range(5)]
    values = np.arange(30, dtype=np.float64)
    batch = PointBatch.from_names(servers, metrics, np.full(30, 1.7e9), values)
    asyncio.run(copies.publish(batch, idempotency_key="k1"))
    asyncio.run(copies.publish(batch, idempotency_key="k1"))  # a retry: stored once

    seen = []
    for p in range(P):
        consumer = copies.by_metric.consumer([p])
        got = consumer.poll(0.1)
        for message in got:
            b = message.batch
            names = b.metric_names[b.metric_codes]
            # every point of a by-metric partition is one of its metrics, the right way round
            assert (partition_of(np.unique(names), P) == p).all()
            seen += list(zip(b.server_names[b.server_codes], names, b.value, strict=True))
        consumer.commit(got)
        consumer.close()
    assert sorted(seen) == sorted(zip(servers, metrics, values, strict=True))
    assert all(s.backlog_messages == 0 for s in by_metric.stats())
    # the server copy holds the batch once too, split by server
    assert sum(s.backlog_messages for s in by_server.stats()) == len(
        np.unique(partition_of(np.unique(servers), P))
    )
