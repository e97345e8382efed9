"""NatsBus beyond the contract: what only a real broker can do.

Durability across a bus restart, deduplication by idempotency key, JetStream's own limit,
the broker going away and coming back, takeover by another process's consumer, chunking of
messages over ``max_payload``, and the wire form. One ``nats-server`` serves the module;
the tests that stop the broker start their own.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minutely.bus import Message, partition_of, split_by_partition
from minutely.bus.nats import Broker, Ledger, NatsBus, NatsConsumer, decode, encode
from minutely.bus.nats.client import LARGE
from minutely.bus.nats.wire import prepare
from minutely.errors import Backpressure, ConfigError, Unavailable
from minutely.model import PointBatch
from minutely.testing.natsserver import NatsServer
from tests import buses
from tests.buses import publish

SERVERS = np.array([f"host-{k:02d}" for k in range(24)], dtype=object)
METRICS = np.array(["cpu", "mem", "disk", "net"], dtype=object)

_names = itertools.count()


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


def close(bus: NatsBus) -> None:
    asyncio.run(bus.close())


def drain(consumer: NatsConsumer, n_points: int) -> list[Message]:
    """``tests.buses.drain`` with a broker's slack: 10 s to arrive, 50 ms of quiet after."""
    return buses.drain(consumer, n_points, deadline=10.0, quiet=0.05)


def values(messages: list[Message]) -> list[float]:
    return sorted(np.concatenate([m.batch.value for m in messages]).tolist())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(tmp_path_factory.mktemp("nats")) as s:
        yield s


@pytest.fixture
def names() -> dict[str, str]:
    """Stream and subject names of a bus of its own, for one test."""
    k = next(_names)
    return {"stream": f"BUSTEST{k}", "subjects": f"bustest.{k}.points"}


@pytest.fixture
def make(server: NatsServer, names: dict[str, str]) -> Iterator[Any]:
    """``make(**options)``: a NatsBus on the module's server, closed after the test."""
    made: list[NatsBus] = []

    def build(**options: Any) -> NatsBus:
        bus = NatsBus(server.url, **{"partitions": 4, **names, **options})
        bus.open()
        made.append(bus)
        return bus

    yield build
    for bus in made:
        close(bus)


def test_points_survive_a_restart_of_the_bus(make: Any) -> None:
    first = make()
    publish(first, points(400), points(400, first=400))
    c = first.consumer()
    delivered = drain(c, 800)
    c.commit([m for m in delivered if m.offset == 0])  # the first batch, in every partition
    close(first)  # c is never closed: as if the process had died

    second = make()
    stats = second.stats()
    assert [s.backlog_messages for s in stats] == [1, 1, 1, 1]
    assert [(s.published, s.committed) for s in stats] == [(2, 1)] * 4
    # Messages it never saw are counted by their stored size: more than their points.
    assert sum(s.backlog_bytes for s in stats) >= points(400).nbytes
    again = drain(second.consumer(), 400)
    assert values(again) == list(range(400, 800))
    assert sorted((m.partition, m.offset) for m in again) == [(p, 1) for p in range(4)]


@pytest.mark.parametrize("key", [None, "big-1"])
def test_large_messages_arrive_whole_with_and_without_headers(make: Any, key: str | None) -> None:
    # messages of megabytes take the client's large path both ways (minutely.bus.nats.client);
    # batches of random values, so that a byte moved or lost anywhere shows
    bus = make(partitions=2)
    rng = np.random.default_rng(7)
    sent = []
    for k in range(3):
        n = 300_000 + 12_345 * k
        batch = points(n, first=k * 1_000_000)
        batch = PointBatch(
            batch.server_names,
            batch.server_codes,
            batch.metric_names,
            batch.metric_codes,
            batch.ts,
            rng.normal(size=n),
        )
        sent.append(batch)
        publish(bus, batch, key=None if key is None else f"{key}-{k}")
    assert (
        min(len(memoryview(d)) for b in sent for _, m in prepare(b, 2, 8 << 20) for d, _ in m)
        > LARGE
    )
    got = drain(bus.consumer(), sum(len(b) for b in sent))
    want = np.sort(np.concatenate([b.value for b in sent]))
    np.testing.assert_array_equal(np.sort(np.concatenate([m.batch.value for m in got])), want)
    for m in got:  # each message's points are one partition's, with their own ts and names
        names = m.batch.server_names[m.batch.server_codes]
        assert set(partition_of(np.unique(names), 2).tolist()) == {m.partition}


def test_an_idempotency_key_stores_a_batch_once(make: Any) -> None:
    bus = make()
    batch = points(200)
    publish(bus, batch, key="req-1")
    publish(bus, batch, key="req-1")  # a retry: answered, not stored again
    publish(bus, points(200, first=200), key="req-2")
    assert sum(s.published for s in bus.stats()) == 8
    assert values(drain(bus.consumer(), 400)) == list(range(400))
    with pytest.raises(ValueError, match="line breaks"):
        publish(bus, batch, key="bad\r\nkey")


def test_a_full_stream_rejects_with_backpressure_and_a_retry_completes_it(make: Any) -> None:
    """JetStream's own limit (stored bytes) as a backstop: its Backpressure is a real outcome.

    A batch that fits partly is stored partly (JetStream cannot take a message back); the
    retry with the same key stores what was missing, once.
    """
    home = partition_of(SERVERS, 2)
    s0, s1 = SERVERS[home == 0][0], SERVERS[home == 1][0]

    def on(servers: list[str], n: int, first: int) -> PointBatch:
        i = np.arange(first, first + n)
        return PointBatch.from_names([servers[k % len(servers)] for k in range(n)], ["m"] * n, i, i)

    first, both = on([s0], 700, 0), on([s0, s1], 400, 700)
    size = {p: sum(len(memoryview(d)) for d, _ in m) for p, m in prepare(both, 2, 1 << 20)}
    [(_, [(first_data, _)])] = prepare(first, 2, 1 << 20)
    # each stream holds the first batch and half of the second's piece: partition 0 is full
    # for that piece, partition 1 takes its own (the byte bound itself is far away)
    bus = make(partitions=2, stream_max_bytes=len(memoryview(first_data)) + size[0] // 2 + 256)
    publish(bus, first)
    with pytest.raises(Backpressure, match="1 of 2 messages") as raised:
        publish(bus, both, key="k")
    assert raised.value.retry_after > 0
    assert not isinstance(raised.value, Unavailable)
    assert [s.published for s in bus.stats()] == [1, 1]
    consumer = bus.consumer()
    consumer.commit(drain(consumer, 900))
    publish(bus, both, key="k")  # partition 1's piece is a duplicate now
    assert [s.published for s in bus.stats()] == [2, 1]
    assert values(drain(consumer, 200)) == list(range(700, 1100, 2))


def test_a_piece_over_max_payload_is_cut_into_messages_in_order(tmp_path: Path) -> None:
    with NatsServer(tmp_path, max_payload=64 << 10) as small:
        bus = NatsBus(small.url, partitions=2, stream="CHUNKS", subjects="chunks")
        bus.open()
        try:
            batch = points(20_000, servers=1)  # one partition, 480 kB of points
            publish(bus, batch)
            messages = drain(bus.consumer(), 20_000)
            assert len(messages) > 7
            assert [m.offset for m in messages] == list(range(len(messages)))
            ts = np.concatenate([m.batch.ts for m in messages])
            np.testing.assert_array_equal(ts, batch.ts)
            assert sum(s.backlog_bytes for s in bus.stats()) == batch.nbytes
        finally:
            close(bus)


def test_prefetch_stays_under_what_the_server_queues_for_a_client(tmp_path: Path) -> None:
    """Past ``max_pending`` the server cuts a slow client; pulls ask for no more than that."""
    with NatsServer(tmp_path, max_payload=256 << 10, max_pending=2 << 20) as tight:
        bus = NatsBus(
            tight.url, partitions=8, stream="TIGHT", subjects="tight", prefetch_bytes=1 << 20
        )
        bus.open()
        try:
            publish(bus, *(points(40_000, first=40_000 * k) for k in range(4)))  # 3.8 MB
            consumer = bus.consumer()
            got = drain(consumer, 160_000)
            assert bus.connected
            assert values(got) == list(range(160_000))
        finally:
            close(bus)


def test_a_broker_outage_is_unavailable_then_heals(tmp_path: Path) -> None:
    broker = NatsServer(tmp_path)
    broker.start()
    bus = NatsBus(broker.url, partitions=2, stream="OUTAGE", subjects="outage", timeout=2.0)
    bus.open()
    try:
        publish(bus, points(100))
        consumer = bus.consumer()
        delivered = drain(consumer, 100)
        broker.stop()
        with pytest.raises(Unavailable):
            publish(bus, points(100, first=100))
        with pytest.raises(Unavailable):
            bus.stats()
        with pytest.raises(Unavailable):
            consumer.commit(delivered)
        broker.start()
        end = time.monotonic() + 10
        while True:
            try:
                publish(bus, points(100, first=100))
                break
            except Unavailable:
                assert time.monotonic() < end, "the bus did not reconnect"
                time.sleep(0.1)
        # The pump renews its pull request after the reconnect; nothing was lost.
        got = drain(consumer, 100)
        assert values(got) == list(range(100, 200))
        consumer.commit(delivered + got)
        assert all(s.backlog_messages == 0 for s in bus.stats())
    finally:
        close(bus)
        broker.stop()


def test_an_unreachable_broker_is_unavailable_after_the_timeout(tmp_path: Path) -> None:
    broker = NatsServer(tmp_path)  # never started: nobody listens on its port
    bus = NatsBus(broker.url, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(Unavailable, match="cannot reach NATS"):
        bus.open()
    assert time.monotonic() - start < 3.0


def test_a_bus_is_built_without_io_and_opened_once(tmp_path: Path) -> None:
    broker = NatsServer(tmp_path)  # never started: building must not need it
    bus = NatsBus(broker.url, stream="UNOPENED", timeout=0.5)
    assert not bus.connected
    assert "minutely-nats-UNOPENED" not in [t.name for t in threading.enumerate()]
    with pytest.raises(RuntimeError, match="open"):
        bus.stats()
    with pytest.raises(Unavailable):
        bus.open()
    with pytest.raises(RuntimeError, match="opens once"):
        bus.open()
    close(bus)
    assert "minutely-nats-UNOPENED" not in [t.name for t in threading.enumerate()]


def test_a_consumer_built_from_its_parts_takes_the_partitions_over(
    make: Any, server: NatsServer
) -> None:
    """Any owner (a second copy, a takeover) makes a group member from a broker of its own,
    a ledger and the bus's layout, without going through ``NatsBus.consumer``."""
    bus = make()
    publish(bus, points(300))
    held = bus.consumer()
    broker = Broker(server.url)
    broker.open()
    try:
        member = NatsConsumer(broker, Ledger(bus.partitions), bus.layout, range(bus.partitions))
        member.start()
        got = drain(member, 300)
        assert values(got) == list(range(300))
        member.commit(got)
        member.close()
    finally:
        broker.close()
    assert all(s.backlog_messages == 0 for s in bus.stats())
    with pytest.raises(RuntimeError, match="taken over"):
        end = time.monotonic() + 5
        while time.monotonic() < end:
            held.poll(0.2)


def test_another_process_takes_the_partitions_over(make: Any) -> None:
    """A crashed aggregator never closes its consumer: the next one takes over at once."""
    old = make()
    publish(old, points(300))
    stale = old.consumer()
    held = drain(stale, 300)
    new = make()  # another process on the same streams
    successor = new.consumer()
    taken = drain(successor, 300)
    assert values(taken) == list(range(300))
    with pytest.raises(RuntimeError, match="taken over"):
        end = time.monotonic() + 5
        while time.monotonic() < end:
            stale.poll(0.2)
    with pytest.raises(Unavailable, match="next consumer"):
        stale.commit(held)  # its consumer is gone: these belong to the successor now
    assert sum(s.backlog_messages for s in new.stats()) == len(taken)
    successor.commit(taken)
    assert sum(s.backlog_messages for s in new.stats()) == 0


def test_a_redelivery_after_ack_wait_is_not_handed_out_twice(make: Any) -> None:
    bus = make(partitions=1, ack_wait=0.3)
    publish(bus, points(50))
    consumer = bus.consumer()
    delivered = drain(consumer, 50)
    assert consumer.poll(0.8) == []  # JetStream redelivered it meanwhile
    consumer.commit(delivered)
    assert bus.stats()[0].backlog_messages == 0


def test_reopening_with_another_partition_count_is_refused(make: Any) -> None:
    make(partitions=4)
    with pytest.raises(ConfigError, match="partition count"):
        make(partitions=8)


def test_a_message_read_from_a_misaligned_buffer_decodes_to_aligned_columns() -> None:
    batch = points(1000)
    [(data, _)] = encode(batch, 1 << 20)
    for offset in range(9):
        holder = bytearray(offset + data.size)
        holder[offset:] = data.to_pybytes()
        got = decode(memoryview(holder)[offset:])
        for column in (got.ts, got.value):
            assert column.ctypes.data % 8 == 0
        np.testing.assert_array_equal(got.value, batch.value)
        np.testing.assert_array_equal(got.ts, batch.ts)


def test_the_wire_form_keeps_points_and_only_the_names_they_use() -> None:
    batch = points(1000, servers=24)
    piece = batch.take(np.flatnonzero(partition_of(SERVERS, 4)[batch.server_codes] == 1))
    [(data, nbytes)] = encode(piece, 1 << 20)
    assert nbytes == piece.nbytes
    back = decode(data)
    used = sorted(set(piece.server_names[piece.server_codes].tolist()))
    assert sorted(back.server_names.tolist()) == used
    np.testing.assert_array_equal(
        back.server_names[back.server_codes], piece.server_names[piece.server_codes]
    )
    np.testing.assert_array_equal(
        back.metric_names[back.metric_codes], piece.metric_names[piece.metric_codes]
    )
    np.testing.assert_array_equal(back.ts, piece.ts)
    np.testing.assert_array_equal(back.value, piece.value)
    assert len(data) < 17 * len(piece) + 2048  # int16 codes, int32 seconds: 16 B a point

    # timestamps that are not whole seconds (or too far apart) travel as they are
    for ts in (piece.ts + 0.25, np.where(np.arange(len(piece)) % 2, piece.ts, 2.0**40)):
        odd = PointBatch(
            piece.server_names,
            piece.server_codes,
            piece.metric_names,
            piece.metric_codes,
            ts,
            piece.value,
        )
        [(data, _)] = encode(odd, 1 << 20)
        np.testing.assert_array_equal(decode(data).ts, ts)
        assert len(data) > 20 * len(piece)

    chunks = encode(batch, 4096)
    assert len(chunks) > 1 and all(len(d) <= 4096 for d, _ in chunks)
    assert sum(n for _, n in chunks) == batch.nbytes
    np.testing.assert_array_equal(np.concatenate([decode(d).ts for d, _ in chunks]), batch.ts)


@pytest.mark.parametrize(
    ("n", "servers", "runs", "budget"),
    [
        (5000, 24, 50, 1 << 20),  # servers in short runs
        (20000, 24, 24, 1 << 20),  # each server's points in one long run: cut as runs
        (20000, 24, 24, 8192),  # … and over the broker's limit
        (5000, 24, 1, 1 << 20),  # servers interleaved point by point
        (40, 24, 1, 1 << 20),  # more names than points: the dictionaries are trimmed
        (5000, 24, 50, 2048),  # pieces over the broker's limit are cut
        (300, 1, 1, 1 << 20),  # one server, one partition
    ],
)
def test_prepare_makes_each_partitions_points_once_in_order(
    n: int, servers: int, runs: int, budget: int
) -> None:
    rng = np.random.default_rng(n + servers + runs)
    batch = points(n, servers=servers)
    order = np.argsort(np.arange(n) % runs, kind="stable") if runs > 1 else np.arange(n)
    batch = PointBatch(
        batch.server_names,
        batch.server_codes[order],
        batch.metric_names,
        batch.metric_codes[order],
        1.7e9 + batch.ts[order] // 7,  # whole seconds: ts travels narrowed
        rng.normal(size=n),
    )
    prepared = prepare(batch, 4, budget)
    expected = split_by_partition(batch, 4)
    assert [p for p, _ in prepared] == [p for p, _ in expected]
    assert sum(nbytes for _, msgs in prepared for _, nbytes in msgs) == batch.nbytes
    for (p, messages), (_, piece) in zip(prepared, expected, strict=True):
        assert all(len(memoryview(data)) <= budget for data, _ in messages)
        back = [decode(data) for data, _ in messages]
        for column in (
            lambda b: b.server_names[b.server_codes],
            lambda b: b.metric_names[b.metric_codes],
            lambda b: b.ts,
            lambda b: b.value,
        ):
            np.testing.assert_array_equal(np.concatenate([column(b) for b in back]), column(piece))
        names = set(np.concatenate([b.server_names for b in back]).tolist())
        assert set((partition_of(np.array(sorted(names), dtype=object), 4) == p).tolist()) == {True}
        if n < servers * 16:  # few points: only the names the batch uses travel
            used = set(batch.metric_names[batch.metric_codes].tolist())
            assert set(np.concatenate([b.metric_names for b in back]).tolist()) == used
            assert names == set(piece.server_names[piece.server_codes].tolist())
