"""The composition root: builds every part from ``Settings`` and owns start and stop.

    ingest (decode + validate) ─► bus ─► aggregator ─► hot ring ◄─ query ◄─ api

Only this module knows the whole chain; every other module gets what it needs passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool

from minutely.aggregate import Aggregator
from minutely.bus import Bus, MemoryBus
from minutely.config import Settings
from minutely.hot import HotRing
from minutely.ingest import Decoded, decode
from minutely.query import Query
from minutely.registry import Registry

log = logging.getLogger(__name__)


class Service:
    """One running minutely: registry, hot ring, bus, aggregator and query, wired."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.registry = Registry()
        self.ring = HotRing(settings.hot_minutes, settings.live_minutes)
        self.bus: Bus = bus or _make_bus(settings)
        self.aggregator = Aggregator(self.registry, self.ring, self.bus)
        self.query = Query(self.registry, self.ring)
        self.started_at = clock()

    def oldest_accepted(self, now: float) -> float:
        """The oldest timestamp ingest accepts: the start of the hot window.

        The window trails the newest minute folded as well as the clock, so a point that
        passes this check is still inside the window when the aggregator folds it.
        """
        oldest = now - self.settings.hot_window + 60
        ring_oldest = self.ring.oldest_minute()
        if ring_oldest is not None:
            oldest = max(oldest, float(ring_oldest * 60 + 60))
        return oldest

    def decode(self, body: bytes, content_type: str) -> Decoded:
        now = self.clock()
        return decode(
            body,
            content_type,
            now=now,
            oldest=self.oldest_accepted(now),
            max_future=self.settings.max_future,
            max_errors=self.settings.max_errors,
        )

    async def ingest(
        self, body: bytes, content_type: str, idempotency_key: str | None = None
    ) -> Decoded:
        """Decode, validate and publish one request body; raises Backpressure when full.

        A retry carrying the same ``idempotency_key`` within the bus's duplicate window is
        answered the same way and its points count once.
        """
        decoded = await run_in_threadpool(self.decode, body, content_type)
        await self.bus.publish(decoded.batch, idempotency_key=idempotency_key)
        return decoded

    def start(self) -> None:
        self.aggregator.start()
        log.info("minutely started: %s", self.settings)

    async def stop(self) -> None:
        """Refuse new points (503), fold what the bus holds, stop."""
        await self.bus.close()
        self.aggregator.stop()

    def status(self) -> dict[str, Any]:
        ring = self.ring
        return {
            "uptime": self.clock() - self.started_at,
            "servers": len(self.registry.servers),
            "metrics": len(self.registry.metrics),
            "series": self.registry.n_series,
            "hot": {
                "window_minutes": ring.minutes,
                "newest_minute": None if ring.head is None else ring.head * 60,
                "capacity": ring.capacity,
                "bytes": ring.nbytes,
                "bytes_per_series_minute": round(ring.bytes_per_series_minute, 2),
            },
            "aggregator": asdict(self.aggregator.stats),
            "bus": [asdict(s) for s in self.bus.stats()],
        }


def _make_bus(settings: Settings) -> Bus:
    if settings.bus == "memory":
        return MemoryBus(settings.partitions, settings.bus_max_bytes)
    from minutely.bus.nats import NatsBus  # only when asked for: it connects at once

    return NatsBus(settings.bus, partitions=settings.partitions, max_bytes=settings.bus_max_bytes)
