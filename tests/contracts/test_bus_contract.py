"""The bus contract: what every ``Bus`` implementation must do, run against each of them.

Parametrised over ``BUS_FACTORIES`` (conftest.py) through the ``make_bus`` fixture. Timeouts
are short and there are no long sleeps: a test that waits does so on ``poll``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from minutely.bus import Bus, Message, partition_of
from minutely.errors import Backpressure
from minutely.model import PointBatch
from tests.buses import drain, publish

#: what the ``make_bus`` fixture (conftest.py) returns
BusFactory = Callable[..., Bus]

SERVERS = np.array([f"srv-{k:03d}" for k in range(40)], dtype=object)
METRICS = np.array([f"metric.{k}" for k in range(7)], dtype=object)


def points(n: int, first: int = 0, servers: int = len(SERVERS)) -> PointBatch:
    """``n`` points numbered ``first, first + 1, ...``: that number is their ts and value."""
    i = np.arange(first, first + n)
    return PointBatch(
        SERVERS[:servers].copy(),
        (i % servers).astype(np.int32),
        METRICS.copy(),
        (i % len(METRICS)).astype(np.int32),
        i.astype(np.float64),
        i.astype(np.float64),
    )


def columns(messages: Sequence[Message]) -> dict[str, np.ndarray]:
    """The points of ``messages`` with names decoded, sorted by value (unique in these tests)."""
    if not messages:
        return {"server": np.array([], dtype=object), "value": np.array([])}
    value = np.concatenate([m.batch.value for m in messages])
    order = np.argsort(value, kind="stable")
    return {
        "server": np.concatenate([m.batch.server_names[m.batch.server_codes] for m in messages])[
            order
        ],
        "metric": np.concatenate([m.batch.metric_names[m.batch.metric_codes] for m in messages])[
            order
        ],
        "ts": np.concatenate([m.batch.ts for m in messages])[order],
        "value": value[order],
    }


def counts(bus: Bus) -> list[tuple[int, int, int, int, int]]:
    """``stats()`` without ``backlog_seconds``, which moves with the clock."""
    return [
        (s.partition, s.published, s.committed, s.backlog_messages, s.backlog_bytes)
        for s in bus.stats()
    ]


def by_partition(messages: Sequence[Message]) -> dict[int, list[Message]]:
    out: dict[int, list[Message]] = {}
    for m in messages:
        out.setdefault(m.partition, []).append(m)
    return out


# -- partitioning ---------------------------------------------------------------------------


def test_partition_of_is_crc32_of_the_name_modulo_partitions() -> None:
    names = np.array(["web-01", "db-07", "server-0000", "cache-3"], dtype=object)
    # Fixed numbers, not recomputed: routing must never change between versions or processes.
    assert partition_of(names, 16).tolist() == [5, 7, 13, 10]
    assert partition_of(names, 4).tolist() == [1, 3, 1, 2]
    assert partition_of(names, 16).dtype == np.int32
    assert [zlib.crc32(n.encode()) % 16 for n in names] == [5, 7, 13, 10]
    assert partition_of(np.array([], dtype=object), 16).shape == (0,)


def test_a_message_holds_only_points_of_its_partition(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=8)
    assert bus.partitions == 8
    publish(bus, points(1000), points(1000, first=1000, servers=3))
    messages = drain(bus.consumer(), 2000)
    home = dict(zip(SERVERS.tolist(), partition_of(SERVERS, 8).tolist(), strict=True))
    for m in messages:
        assert 0 <= m.partition < 8
        servers = set(m.batch.server_names[m.batch.server_codes].tolist())
        assert {home[s] for s in servers} == {m.partition}


# -- delivery -------------------------------------------------------------------------------


def test_every_point_comes_out_exactly_once(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=16)
    batches = [points(5000), points(3, first=5000), points(2000, first=5003, servers=1)]
    publish(bus, *batches)
    got = columns(drain(bus.consumer(), 7003))
    want = columns([Message(0, i, b) for i, b in enumerate(batches)])
    for name, column in want.items():
        np.testing.assert_array_equal(got[name], column, err_msg=name)


def test_a_retried_publish_with_the_same_key_counts_once(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=16)
    first, other = points(500), points(300, first=500)

    async def run() -> None:
        await bus.publish(first, idempotency_key="req-1")
        await bus.publish(first, idempotency_key="req-1")  # the client lost the answer
        await bus.publish(other, idempotency_key="req-2")
        await bus.publish(other)  # no key: a new publish

    asyncio.run(run())
    got = columns(drain(bus.consumer(), 1100))
    assert sorted(got["value"].tolist()) == sorted(list(range(800)) + list(range(500, 800)))


def test_an_empty_batch_is_a_no_op(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    publish(bus, points(10, servers=1))
    before = counts(bus)
    publish(bus, PointBatch.empty(), points(0))
    assert counts(bus) == before
    assert len(drain(bus.consumer(), 10)) == 1


def test_offsets_count_up_in_publish_order_within_a_partition(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    publish(bus, *(points(100, first=100 * k) for k in range(10)))
    for p, messages in by_partition(drain(bus.consumer(), 1000)).items():
        assert [m.offset for m in messages] == list(range(len(messages))), p
        ts = np.concatenate([m.batch.ts for m in messages])
        assert np.all(np.diff(ts) > 0), f"partition {p} is out of order"


def test_poll_returns_nothing_when_the_timeout_passes(make_bus: BusFactory) -> None:
    consumer = make_bus(partitions=4).consumer()
    assert consumer.poll(0) == []
    start = time.monotonic()
    assert consumer.poll(0.05) == []
    assert 0.04 <= time.monotonic() - start < 2.0


def test_poll_wakes_up_when_a_batch_arrives(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    consumer = bus.consumer()
    got: list[Message] = []
    poller = threading.Thread(target=lambda: got.extend(consumer.poll(5.0)))
    start = time.monotonic()
    poller.start()
    time.sleep(0.02)
    publish(bus, points(10, servers=1))
    poller.join(5.0)
    assert not poller.is_alive()
    assert time.monotonic() - start < 2.0
    assert sum(len(m.batch) for m in got) == 10


# -- consumers ------------------------------------------------------------------------------


def test_uncommitted_messages_go_to_the_next_consumer(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    publish(bus, *(points(200, first=200 * k) for k in range(3)))
    first = bus.consumer()
    delivered = drain(first, 600)
    done = [m for m in delivered if m.offset == 0]
    first.commit(done)
    first.close()

    second = bus.consumer()
    redelivered = drain(second, 600 - sum(len(m.batch) for m in done))
    expected = [m for m in delivered if m.offset > 0]
    assert sorted((m.partition, m.offset) for m in redelivered) == sorted(
        (m.partition, m.offset) for m in expected
    )
    for p, messages in by_partition(redelivered).items():
        assert [m.offset for m in messages] == sorted(m.offset for m in messages), p
    got, want = columns(redelivered), columns(expected)
    np.testing.assert_array_equal(got["value"], want["value"])
    np.testing.assert_array_equal(got["server"], want["server"])

    second.commit(redelivered)
    second.close()
    assert bus.consumer().poll(0.01) == []


def test_consumers_on_disjoint_partitions_see_only_theirs(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=8)
    low, high = bus.consumer([0, 1, 2, 3]), bus.consumer([4, 5, 6, 7])
    batch = points(4000)
    publish(bus, batch)
    per_point = partition_of(batch.server_names, 8)[batch.server_codes]
    n_low = int(np.count_nonzero(per_point < 4))
    assert 0 < n_low < 4000
    got_low, got_high = drain(low, n_low), drain(high, 4000 - n_low)
    assert {m.partition for m in got_low} <= {0, 1, 2, 3}
    assert {m.partition for m in got_high} <= {4, 5, 6, 7}
    np.testing.assert_array_equal(columns(got_low + got_high)["value"], batch.value)


# -- the bound ------------------------------------------------------------------------------


def test_backpressure_is_all_or_nothing(make_bus: BusFactory) -> None:
    size = points(100).nbytes
    bus = make_bus(partitions=4, max_bytes=2 * size + size // 2)
    publish(bus, points(100), points(100, first=100))
    before = counts(bus)
    with pytest.raises(Backpressure) as raised:
        publish(bus, points(100, first=200))
    assert raised.value.retry_after > 0
    assert counts(bus) == before
    assert columns(drain(bus.consumer(), 200))["value"].tolist() == list(range(200))


def test_commit_frees_room_for_a_rejected_batch(make_bus: BusFactory) -> None:
    size = points(100).nbytes
    bus = make_bus(partitions=4, max_bytes=2 * size + size // 2)
    publish(bus, points(100), points(100, first=100))
    with pytest.raises(Backpressure):
        publish(bus, points(100, first=200))
    consumer = bus.consumer()
    delivered = drain(consumer, 200)
    consumer.commit([m for m in delivered if m.batch.value[0] < 100])  # the first batch only
    publish(bus, points(100, first=200))  # fits next to the second batch now
    assert columns(drain(consumer, 100))["value"].tolist() == list(range(200, 300))


def test_a_batch_bigger_than_the_bound_goes_through_an_empty_bus(make_bus: BusFactory) -> None:
    """Otherwise it could never go through; the bound stops the next batch instead."""
    bus = make_bus(partitions=4, max_bytes=1000)
    big = points(500)
    assert big.nbytes > 1000
    publish(bus, big)
    with pytest.raises(Backpressure):
        publish(bus, points(1, first=500))
    consumer = bus.consumer()
    consumer.commit(drain(consumer, 500))
    publish(bus, points(1, first=500))


def test_stats_count_the_backlog(make_bus: BusFactory) -> None:
    bus = make_bus(partitions=4)
    idle = bus.stats()
    assert [s.partition for s in idle] == [0, 1, 2, 3]
    assert all(
        (s.published, s.committed, s.backlog_messages, s.backlog_bytes, s.backlog_seconds)
        == (0, 0, 0, 0, 0.0)
        for s in idle
    )

    publish(bus, points(1000), points(1000, first=1000))
    time.sleep(0.02)
    busy = bus.stats()
    assert sum(s.backlog_bytes for s in busy) == 2 * points(1000).nbytes
    for s in busy:
        assert s.committed == 0
        assert s.backlog_messages == s.published
        assert s.published in (0, 2)  # 40 servers over 4 partitions: each batch touches all
        assert (s.backlog_seconds > 0.01) == (s.published > 0)

    consumer = bus.consumer()
    delivered = drain(consumer, 2000)
    assert sum(s.backlog_messages for s in bus.stats()) == len(delivered)  # polled is not done
    consumer.commit(delivered)
    for s in bus.stats():
        assert s.committed == s.published
        assert (s.backlog_messages, s.backlog_bytes, s.backlog_seconds) == (0, 0, 0.0)


def test_each_partition_names_the_log_its_offsets_count_in(make_bus: BusFactory) -> None:
    """A checkpoint keeps offsets with the generation they count in: it must be there, and
    stay the same while the log lives (through publishes, consumers and commits)."""
    bus = make_bus(partitions=3)
    before = [s.generation for s in bus.stats()]
    assert all(before) and len(before) == 3
    publish(bus, points(300))
    consumer = bus.consumer()
    consumer.commit(drain(consumer, 300))
    consumer.close()
    assert [s.generation for s in bus.stats()] == before


# -- concurrency ----------------------------------------------------------------------------


def test_a_producer_thread_and_a_consumer_thread(make_bus: BusFactory) -> None:
    """Publish under backpressure while another thread polls: all points arrive, in order."""
    n_batches, per_batch = 200, 300
    bus = make_bus(partitions=4, max_bytes=4 * points(per_batch).nbytes)
    errors: list[BaseException] = []
    received: list[Message] = []
    rejected = 0

    async def produce() -> None:
        nonlocal rejected
        for k in range(n_batches):
            while True:
                try:
                    await bus.publish(points(per_batch, first=k * per_batch))
                    break
                except Backpressure:
                    rejected += 1
                    await asyncio.sleep(0.001)

    def producer() -> None:
        try:
            asyncio.run(produce())
        except BaseException as e:
            errors.append(e)

    def consumer() -> None:
        try:
            c = bus.consumer()
            seen, end = 0, time.monotonic() + 30
            while seen < n_batches * per_batch and time.monotonic() < end:
                messages = c.poll(0.05)
                received.extend(messages)
                seen += sum(len(m.batch) for m in messages)
                c.commit(messages)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    values = columns(received)["value"]
    np.testing.assert_array_equal(values, np.arange(n_batches * per_batch, dtype=np.float64))
    for p, messages in by_partition(received).items():
        assert [m.offset for m in messages] == list(range(len(messages))), p
        assert np.all(np.diff(np.concatenate([m.batch.ts for m in messages])) > 0), p
    assert all(s.backlog_messages == 0 for s in bus.stats())
