"""A real ``Service`` (no store, fake clock), read as the evaluator's ``Source``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.config import Settings
from minutely.query import By, SeriesAnswer, SummaryAnswer
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import NOW, ingest


class NodeSource:
    """A node's names and answers as a ``promql.Source``."""

    def __init__(self, node: Service) -> None:
        self.node = node

    def server_names(self) -> list[str]:
        return self.node.server_names()

    def metric_names(self) -> list[str]:
        return self.node.metric_names()

    def metric_kind(self, metric: str) -> str:
        return self.node.metric_kind(metric)

    def series(
        self, by: By, name: str, start: int, end: int, step: int, only: list[str] | None
    ) -> SeriesAnswer:
        return self.node.answers.series(by, name, start, end, step, only)

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None
    ) -> SummaryAnswer:
        return self.node.answers.summary(by, name, start, end, only)


@pytest.fixture
def service() -> Service:
    settings = Settings(hot_window=6 * 3600, bus_max_bytes=16 << 20, store="none")
    return Service(settings, clock=FakeClock(NOW)).open()


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as c:
        yield c


@pytest.fixture
def source(service: Service) -> NodeSource:
    return NodeSource(service)


def gauges(seed: int = 1, n: int = 40_000) -> dict[str, np.ndarray]:
    """Random gauge points for 3 servers × 3 metrics over the last 3 hours."""
    rng = np.random.default_rng(seed)
    servers = np.array(["web-1", "web-2", "db-1"], dtype=object)
    metrics = np.array(["cpu.user", "mem.used", 'http_requests{code="200"}'], dtype=object)
    return {
        "server": servers[rng.integers(0, 3, n)],
        "metric": metrics[rng.integers(0, 3, n)],
        "ts": NOW - rng.uniform(0, 3 * 3600, n),
        "value": np.round(rng.normal(50, 20, n), 3),
    }


@pytest.fixture
def points(client: TestClient, service: Service) -> dict[str, np.ndarray]:
    pts = gauges()
    ingest(client, service, pts)
    return pts
