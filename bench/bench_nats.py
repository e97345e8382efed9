"""Throughput of the JetStream bus: points/s through NatsBus, median of 3 runs (best too).

    python bench/bench_nats.py [batches] [--url nats://host:4222]

Without ``--url`` it starts its own ``nats-server -js`` (8 MiB max_payload, a temporary
store) on this machine. Each run publishes ``batches`` batches of 1M points (1,000 servers x
1,000 metrics, 16 partitions), each publish awaiting every JetStream ack; then one consumer
polls and commits them all. Then the same with producer and consumer running at once.

- publish     split + Arrow IPC encode + publish + ack, one batch after another
- consume     poll (decode) + commit (AckAck), until the backlog is empty
- both        publish and consume concurrently: the end-to-end rate of the bus
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minutely.bus.nats import NatsBus
from minutely.model import PointBatch
from minutely.testing.natsserver import NatsServer

POINTS = 1_000_000
RUNS = 3


def batch(k: int) -> PointBatch:
    rng = np.random.default_rng(k)
    servers = np.array([f"web-{i:03d}" for i in range(1000)], dtype=object)
    metrics = np.array([f"cpu.metric.{i}" for i in range(1000)], dtype=object)
    i = np.arange(POINTS)
    return PointBatch(
        servers,
        (i % 1000).astype(np.int32),
        metrics,
        ((i // 1000) % 1000).astype(np.int32),
        1_764_000_000.0 + k * 60 + (i % 60).astype(np.float64),
        np.round(rng.random(POINTS) * 100, 3),
    )


def publish_all(bus: NatsBus, batches: list[PointBatch]) -> float:
    async def run() -> None:
        for b in batches:
            await bus.publish(b)

    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start


def consume_all(bus: NatsBus, n_points: int) -> float:
    consumer = bus.consumer()
    try:
        start = time.perf_counter()
        seen = 0
        while seen < n_points:
            messages = consumer.poll(5.0)
            if not messages:
                raise RuntimeError(f"only {seen} of {n_points} points arrived")
            seen += sum(len(m.batch) for m in messages)
            consumer.commit(messages)
        return time.perf_counter() - start
    finally:
        consumer.close()


def both(bus: NatsBus, batches: list[PointBatch]) -> float:
    n = len(batches) * POINTS
    took: list[float] = []
    consumer = threading.Thread(target=lambda: took.append(consume_all(bus, n)))
    start = time.perf_counter()
    consumer.start()
    publish_all(bus, batches)
    consumer.join()
    if not took:
        raise RuntimeError("the consumer failed")
    return time.perf_counter() - start


def report(name: str, n_points: int, seconds: list[float]) -> None:
    rates = [n_points / s for s in seconds]
    print(
        f"{name:<8} {statistics.median(rates) / 1e6:6.2f} M points/s median"
        f"  ({max(rates) / 1e6:.2f} best, {len(rates)} runs of {n_points / 1e6:.0f}M points)"
    )


def main(url: str, n_batches: int) -> None:
    batches = [batch(k) for k in range(n_batches)]
    n = n_batches * POINTS
    bus = NatsBus(url, partitions=16, max_bytes=1 << 30, stream="BENCH", subjects="bench")
    bus.open()
    try:
        pub, con, end2end = [], [], []
        for _ in range(RUNS):
            pub.append(publish_all(bus, batches))
            con.append(consume_all(bus, n))
        for _ in range(RUNS):
            end2end.append(both(bus, batches))
        report("publish", n, pub)
        report("consume", n, con)
        report("both", n, end2end)
    finally:
        asyncio.run(bus.close())


if __name__ == "__main__":
    args = sys.argv[1:]
    url = None
    if "--url" in args:
        at = args.index("--url")
        url = args[at + 1]
        del args[at : at + 2]
    n_batches = int(args[0]) if args else 5
    if url is not None:
        main(url, n_batches)
    else:
        with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp)) as server:
            main(server.url, n_batches)
