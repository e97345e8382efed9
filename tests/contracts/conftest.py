"""Fixtures for the contract suites: every implementation of a seam, behind one parameter.

``BUS_FACTORIES`` lists how to build each ``Bus``; the contract tests run once per entry.
A JetStream bus joins the list with a factory that starts (or reuses) a nats-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from minutely.bus import Bus, MemoryBus

#: ``factory(partitions, max_bytes) -> Bus``
BusFactory = Callable[[int, int], Bus]


def _memory(partitions: int, max_bytes: int) -> Bus:
    return MemoryBus(partitions=partitions, max_bytes=max_bytes)


BUS_FACTORIES: list[tuple[str, BusFactory]] = [
    ("memory", _memory),
]


@pytest.fixture(params=[factory for _, factory in BUS_FACTORIES], ids=[n for n, _ in BUS_FACTORIES])
def make_bus(request: pytest.FixtureRequest) -> Iterator[BusFactory]:
    """Build buses of the parametrised implementation; every one is closed after the test."""
    factory: BusFactory = request.param
    made: list[Bus] = []

    def make(partitions: int = 16, max_bytes: int = 512 << 20) -> Bus:
        bus = factory(partitions, max_bytes)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        asyncio.run(bus.close())
