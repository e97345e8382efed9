"""Fixtures for the contract suites: every implementation of a seam, behind one parameter.

``BUS_FACTORIES`` lists how to build each ``Bus`` (built only: ``make_bus`` opens it, as a
caller does); the contract tests run once per entry.
A factory gets the test's ``pytest.FixtureRequest`` first, so it can ask for what it needs:
the JetStream bus asks for ``nats_server``, one real ``nats-server -js`` for the session, and
gives every bus its own streams and subjects on it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minutely.bus import Bus, MemoryBus
from minutely.bus.nats import NatsBus
from minutely.testing.natsserver import NatsServer

#: ``factory(request, partitions, max_bytes) -> Bus``
BusFactory = Callable[[pytest.FixtureRequest, int, int], Bus]

_names = itertools.count()


def _memory(request: pytest.FixtureRequest, partitions: int, max_bytes: int) -> Bus:
    return MemoryBus(partitions=partitions, max_bytes=max_bytes)


def _nats(request: pytest.FixtureRequest, partitions: int, max_bytes: int) -> Bus:
    server: NatsServer = request.getfixturevalue("nats_server")
    k = next(_names)
    return NatsBus(
        server.url,
        partitions=partitions,
        max_bytes=max_bytes,
        stream=f"CONTRACT{k}",
        subjects=f"contract.{k}.points",
    )


BUS_FACTORIES: list[tuple[str, BusFactory]] = [
    ("memory", _memory),
    ("nats", _nats),
]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One ``nats-server`` with JetStream for the session, on a free port and a temp store."""
    store: Path = tmp_path_factory.mktemp("nats")
    with NatsServer(store) as server:
        yield server


@pytest.fixture(params=[factory for _, factory in BUS_FACTORIES], ids=[n for n, _ in BUS_FACTORIES])
def make_bus(request: pytest.FixtureRequest) -> Iterator[Callable[..., Bus]]:
    """Build buses of the parametrised implementation; every one is closed after the test."""
    factory: BusFactory = request.param
    made: list[Bus] = []

    def make(partitions: int = 16, max_bytes: int = 512 << 20) -> Bus:
        bus = factory(request, partitions, max_bytes)
        made.append(bus)
        bus.open()
        return bus

    yield make
    for bus in made:
        asyncio.run(bus.close())
