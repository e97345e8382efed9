"""MemoryBus beyond the contract: its own rules (ownership, commit checks, close, poll budget),
the injected clock, and the vectorised split it shares with every bus."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.bus import MemoryBus, Message, partition_of, split_by_partition
from minutely.errors import Backpressure
from minutely.model import PointBatch
from minutely.testing.clock import FakeClock
from tests.buses import publish

SERVERS = np.array([f"host-{k}" for k in range(64)], dtype=object)


def points(n: int, first: int = 0, servers: int = len(SERVERS)) -> PointBatch:
    i = np.arange(first, first + n)
    return PointBatch(
        SERVERS[:servers].copy(),
        (i % servers).astype(np.int32),
        np.array(["cpu", "mem", "disk"], dtype=object),
        (i % 3).astype(np.int32),
        i.astype(np.float64),
        i.astype(np.float64),
    )


# -- the split ------------------------------------------------------------------------------


def test_split_keeps_point_order_and_gives_each_piece_its_own_arrays() -> None:
    batch = points(10_000)
    pieces = split_by_partition(batch, 16)
    assert [p for p, _ in pieces] == sorted({p for p, _ in pieces})
    home = partition_of(batch.server_names, 16)[batch.server_codes]
    for p, piece in pieces:
        np.testing.assert_array_equal(piece.value, batch.value[home == p])
        np.testing.assert_array_equal(piece.server_codes, batch.server_codes[home == p])
        np.testing.assert_array_equal(piece.metric_codes, batch.metric_codes[home == p])
        assert piece.server_names is batch.server_names
        # A copy, not a view: a slow partition must not pin the other partitions' points.
        assert piece.ts.base is None or piece.ts.base is not batch.ts
    assert sum(len(piece) for _, piece in pieces) == len(batch)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 63), st.integers(1, 400)), min_size=1, max_size=40),
    st.sampled_from([1, 2, 5, 16, 300]),
)
def test_split_of_runs_equals_masks(runs: list[tuple[int, int]], partitions: int) -> None:
    """Servers in runs (an agent's batch, a fleet's second) take the run-ordering path; the
    pieces are exactly the points of each partition, in their order."""
    codes = np.repeat([s for s, _ in runs], [n for _, n in runs]).astype(np.int32)
    i = np.arange(codes.shape[0])
    batch = PointBatch(
        SERVERS.copy(),
        codes,
        np.array(["cpu"], dtype=object),
        np.zeros_like(codes),
        i * 1.0,
        -i * 1.0,
    )
    home = partition_of(batch.server_names, partitions)[codes]
    pieces = split_by_partition(batch, partitions)
    assert [p for p, _ in pieces] == sorted(set(home.tolist()))
    for p, piece in pieces:
        np.testing.assert_array_equal(piece.ts, batch.ts[home == p])
        np.testing.assert_array_equal(piece.server_codes, codes[home == p])
        np.testing.assert_array_equal(piece.value, batch.value[home == p])


def test_a_batch_in_one_partition_is_not_copied() -> None:
    batch = points(1000, servers=1)
    [(p, piece)] = split_by_partition(batch, 16)
    assert piece is batch
    assert p == int(partition_of(SERVERS[:1], 16)[0])


def test_split_of_an_empty_batch_is_empty() -> None:
    assert split_by_partition(PointBatch.empty(), 16) == []


def test_split_ignores_names_no_point_uses() -> None:
    batch = points(100, servers=1)
    wide = PointBatch(
        SERVERS.copy(), batch.server_codes, batch.metric_names, batch.metric_codes, batch.ts,
        batch.value,
    )  # fmt: skip
    assert [p for p, _ in split_by_partition(wide, 16)] == [partition_of(SERVERS[:1], 16)[0]]


@settings(max_examples=50, deadline=None)
@given(
    codes=st.lists(st.integers(0, len(SERVERS) - 1), max_size=300),
    partitions=st.sampled_from([1, 2, 3, 16, 300, 1024]),
)
def test_split_is_a_partition_of_the_batch(codes: list[int], partitions: int) -> None:
    n = len(codes)
    batch = PointBatch(
        SERVERS,
        np.array(codes, dtype=np.int32),
        np.array(["m"], dtype=object),
        np.zeros(n, dtype=np.int32),
        np.arange(n, dtype=np.float64),
        np.arange(n, dtype=np.float64),
    )
    pieces = split_by_partition(batch, partitions)
    home = partition_of(SERVERS, partitions)
    for p, piece in pieces:
        assert len(piece) > 0
        assert set(home[piece.server_codes].tolist()) == {p}
        assert np.all(np.diff(piece.ts) > 0)
    got = np.sort(np.concatenate([piece.value for _, piece in pieces] + [np.zeros(0)]))
    np.testing.assert_array_equal(got, batch.value)


def test_partition_of_rejects_no_partitions() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_of(SERVERS, 0)


# -- construction and ownership -------------------------------------------------------------


def test_the_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="partitions"):
        MemoryBus(partitions=0)
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryBus(max_bytes=0)
    assert MemoryBus().partitions == 16
    assert MemoryBus().max_bytes == 512 << 20


def test_a_partition_has_one_open_consumer_at_a_time() -> None:
    bus = MemoryBus(partitions=4)
    first = bus.consumer([0, 2])
    assert first.partitions == (0, 2)
    with pytest.raises(ValueError, match=r"\[2\] are owned"):
        bus.consumer([1, 2])
    with pytest.raises(ValueError, match="owned"):
        bus.consumer()
    assert bus.consumer([3, 1]).partitions == (1, 3)
    first.close()
    first.close()  # closing twice is harmless
    assert bus.consumer([2]).partitions == (2,)


@pytest.mark.parametrize("partitions", [[], [4], [-1], [1, 1]])
def test_a_consumer_needs_distinct_partitions_of_the_bus(partitions: list[int]) -> None:
    with pytest.raises(ValueError):
        MemoryBus(partitions=4).consumer(partitions)


# -- commit ---------------------------------------------------------------------------------


def test_commits_may_come_out_of_order() -> None:
    clock = FakeClock(1000.0)
    bus = MemoryBus(partitions=1, clock=clock)
    for k in range(3):
        publish(bus, points(10, first=10 * k))
        clock.now += 1
    consumer = bus.consumer()
    m0, m1, m2 = consumer.poll(0)
    assert [m.offset for m in (m0, m1, m2)] == [0, 1, 2]

    consumer.commit([m1])
    [s] = bus.stats()
    assert (s.published, s.committed, s.backlog_messages) == (3, 1, 2)
    assert s.backlog_bytes == m0.batch.nbytes + m2.batch.nbytes  # freed at once
    assert s.backlog_seconds == 3.0  # m0, published at 1000, is still the oldest

    consumer.close()  # the next consumer gets 0 and 2, not 1
    consumer = bus.consumer()
    again = consumer.poll(0)
    assert [m.offset for m in again] == [0, 2]
    assert again[0] is m0
    consumer.commit([m0])
    assert bus.stats()[0].backlog_seconds == 1.0  # m2, published at 1002
    consumer.commit([m2, m2, m0])  # repeats and old messages are harmless
    [s] = bus.stats()
    assert (s.committed, s.backlog_messages, s.backlog_bytes, s.backlog_seconds) == (3, 0, 0, 0)


def test_a_bad_commit_commits_nothing() -> None:
    bus = MemoryBus(partitions=4, clock=FakeClock(1000.0))
    other = MemoryBus(partitions=4)
    publish(bus, points(100))
    publish(other, points(100))
    consumer = bus.consumer([0, 1])
    rest = bus.consumer([2, 3])
    mine = consumer.poll(0)
    theirs = rest.poll(0)
    foreign = other.consumer([0, 1]).poll(0)
    assert mine and theirs and foreign
    before = bus.stats()

    with pytest.raises(ValueError, match="not owned"):
        consumer.commit([*mine, theirs[0]])
    with pytest.raises(ValueError, match="not come from this bus"):
        consumer.commit([*mine, foreign[0]])
    with pytest.raises(ValueError, match="not delivered"):
        consumer.commit([Message(mine[0].partition, 5, mine[0].batch)])
    with pytest.raises(ValueError, match="not owned"):
        consumer.commit([Message(99, 0, mine[0].batch)])
    assert bus.stats() == before

    consumer.close()
    with pytest.raises(RuntimeError, match="closed"):
        consumer.commit(mine)
    with pytest.raises(RuntimeError, match="closed"):
        consumer.poll(0)


# -- poll -----------------------------------------------------------------------------------


def test_polls_are_bounded_and_interleave_partitions_in_publish_order() -> None:
    size = points(100, servers=1).nbytes
    bus = MemoryBus(partitions=64, max_poll_bytes=2 * size)
    a, b = SERVERS[0], SERVERS[1]
    pa, pb = partition_of(np.array([a, b], dtype=object), 64).tolist()
    assert pa != pb
    for k in range(4):
        publish(bus, points(100, first=200 * k, servers=1))  # all host-0
        publish(bus, points(100, first=200 * k + 100, servers=2).take(np.arange(1, 100, 2)))
    consumer = bus.consumer([pa, pb])
    got = []
    while batch := consumer.poll(0):
        assert sum(m.batch.nbytes for m in batch) <= 2 * size  # bounded bites
        got += batch
    # one partition's backlog never runs ahead of the other's: publish order across both
    assert [m.partition for m in got] == [pa, pb] * 4
    assert [m.offset for m in got] == [k for k in range(4) for _ in (0, 1)]


def test_a_message_bigger_than_the_poll_budget_still_comes_out() -> None:
    bus = MemoryBus(partitions=1, max_poll_bytes=1)
    publish(bus, points(100), points(100, first=100))
    consumer = bus.consumer()
    assert [m.offset for m in consumer.poll(0)] == [0]
    assert [m.offset for m in consumer.poll(0)] == [1]


def test_closing_a_consumer_wakes_its_poll() -> None:
    bus = MemoryBus(partitions=2)
    consumer = bus.consumer()
    got: list[list[Message]] = []
    poller = threading.Thread(target=lambda: got.append(consumer.poll(10.0)))
    poller.start()
    time.sleep(0.02)
    consumer.close()
    poller.join(5.0)
    assert not poller.is_alive()
    assert got == [[]]


# -- close ----------------------------------------------------------------------------------


def test_a_closed_bus_refuses_batches_and_lets_consumers_drain() -> None:
    bus = MemoryBus(partitions=2)
    p = int(partition_of(SERVERS[:1], 2)[0])
    drainer, waiting = bus.consumer([p]), bus.consumer([1 - p])
    publish(bus, points(10, servers=1))  # all on partition p
    got: list[list[Message]] = []
    poller = threading.Thread(target=lambda: got.append(waiting.poll(10.0)))
    poller.start()
    time.sleep(0.02)

    asyncio.run(bus.close())
    poller.join(5.0)
    assert not poller.is_alive()
    assert got == [[]]  # woken by close
    with pytest.raises(Backpressure, match="closed"):
        publish(bus, points(10))
    start = time.monotonic()
    assert sum(len(m.batch) for m in drainer.poll(10.0)) == 10  # what was left
    assert drainer.poll(10.0) == []  # and no more waiting
    assert time.monotonic() - start < 2.0


def test_publish_after_a_rejection_needs_no_cleanup() -> None:
    clock = FakeClock(1000.0)
    bus = MemoryBus(partitions=4, max_bytes=points(100).nbytes, clock=clock)
    publish(bus, points(100))
    with pytest.raises(Backpressure) as raised:
        publish(bus, points(1, first=100))
    assert raised.value.retry_after == 1.0
    assert "full" in str(raised.value)
    consumer = bus.consumer()
    consumer.commit(consumer.poll(0))
    publish(bus, points(1, first=100))
    assert [m.batch.value.tolist() for m in consumer.poll(0)] == [[100.0]]


def test_a_large_batch_spreads_over_every_partition() -> None:
    n = 200_000
    batch = points(n)
    bus = MemoryBus(partitions=16)
    publish(bus, batch)
    stats = bus.stats()
    home = partition_of(batch.server_names, 16)[batch.server_codes]
    per_partition = np.bincount(home, minlength=16)
    assert [s.published for s in stats] == [int(c > 0) for c in per_partition]
    assert [s.backlog_bytes for s in stats] == (per_partition * 24).tolist()
    assert sum(len(m.batch) for m in bus.consumer().poll(0)) == n
