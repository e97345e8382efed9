"""Driving a ``Bus`` from a test: publish batches, drain a consumer."""

from __future__ import annotations

import asyncio
import time

from minutely.bus import Bus, Consumer, Message
from minutely.model import PointBatch


def publish(bus: Bus, *batches: PointBatch, key: str | None = None) -> None:
    """Publish ``batches`` in order (each with ``key``, if given) from a fresh event loop."""

    async def run() -> None:
        for batch in batches:
            await bus.publish(batch, idempotency_key=key)

    asyncio.run(run())


def drain(
    consumer: Consumer, n_points: int, deadline: float = 5.0, quiet: float = 0.01
) -> list[Message]:
    """Poll until ``n_points`` points came (no commit), then check that nothing more comes
    within ``quiet`` seconds."""
    got: list[Message] = []
    seen = 0
    end = time.monotonic() + deadline
    while seen < n_points:
        assert time.monotonic() < end, f"only {seen} of {n_points} points arrived"
        messages = consumer.poll(0.2)
        got += messages
        seen += sum(len(m.batch) for m in messages)
    assert seen == n_points
    assert consumer.poll(quiet) == []
    return got
