"""Fixtures for the control plane's tests: one real ``nats-server -js`` for the session, and
control planes on it, each test with bucket names of its own."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minutely.cluster.control import ControlConfig, ControlPlane
from minutely.testing.natsserver import NatsServer

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    store: Path = tmp_path_factory.mktemp("nats-cluster")
    with NatsServer(store) as server:
        yield server


@pytest.fixture
def make_plane(nats_server: NatsServer) -> Iterator[Callable[..., ControlPlane]]:
    """``make_plane(**config)``: an open ControlPlane on the session's server, closed after the
    test. Planes made in one test share their buckets (one prefix per test), as the nodes of
    one cluster do."""
    prefix = f"t{next(_prefixes)}"
    made: list[ControlPlane] = []

    def make(**options: object) -> ControlPlane:
        config = ControlConfig(nats_server.url, prefix=prefix, **options)  # type: ignore[arg-type]
        plane = ControlPlane(config).open()
        made.append(plane)
        return plane

    yield make
    for plane in made:
        plane.close()
