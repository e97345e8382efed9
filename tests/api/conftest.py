"""The API tests' service and client: a fake clock (``helpers.NOW``), no store and no
aggregator thread; each test drains the bus itself, so nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import NOW


@pytest.fixture
def service() -> Service:
    settings = Settings(hot_window=6 * 3600, bus_max_bytes=4 << 20, store="none")
    return Service(settings, clock=FakeClock(NOW)).open()


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as c:
        yield c
