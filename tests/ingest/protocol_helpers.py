"""What the protocol tests share: a service with a fake clock and no store, its HTTP client,
and the numpy truth a Q3 summary is checked against."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock

NOW = 1_764_000_000.0 + 3 * 3600 + 25  # 25 s into a minute


@contextmanager
def serving(**settings: Any) -> Iterator[tuple[Service, TestClient]]:
    """A memory-only service at ``NOW`` and a client of its app."""
    base = {"hot_window": 6 * 3600, "bus_max_bytes": 4 << 20, "store": "none"}
    service = Service(Settings(**(base | settings)), clock=FakeClock(NOW)).open()
    with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as client:
        yield service, client


def drain(service: Service) -> None:
    while service.aggregator.drain(timeout=0):
        pass


def summary(client: TestClient, server: str, start: float, end: float) -> dict[str, Any]:
    """Q3: ``{metric: {"min", "max", "avg", "count"}}`` for ``server`` over [start, end)."""
    r = client.get(
        f"/api/v1/servers/{server}/summary", params={"start": int(start), "end": int(end)}
    )
    assert r.status_code == 200, r.text
    return {row.pop("metric"): row for row in r.json()["rows"]}


def truth(values: Any) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"min": float(v.min()), "max": float(v.max()), "avg": float(v.mean()), "count": v.size}
