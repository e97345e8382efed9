"""``Idempotency-Key`` on ``POST /api/v1/points``: a retry of the same body counts once, the
key reused for another body is a 422 that applies nothing, an unusable key a 400."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.bus import MemoryBus
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import NOW

JSON = "application/json"


def body(*values: float) -> bytes:
    return orjson.dumps(
        [{"server": "a", "metric": "m", "ts": NOW - 90, "value": v} for v in values]
    )


def post(client: TestClient, content: bytes, key: str) -> Any:
    return client.post(
        "/api/v1/points", content=content, headers={"content-type": JSON, "idempotency-key": key}
    )


def summary(client: TestClient, service: Service, start: str = "-1h") -> list[dict[str, Any]]:
    """Server a's rows, once the bus is folded."""
    while service.aggregator.drain(timeout=0):
        pass
    r = client.get("/api/v1/servers/a/summary", params={"start": start})
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["rows"]
    return rows


def test_a_retry_with_the_same_body_counts_once(client: TestClient, service: Service) -> None:
    for _ in range(2):
        r = post(client, body(1.0, 3.0), "k")
        assert r.status_code == 200
        assert r.json() == {"accepted": 2, "rejected": 0, "errors": []}
    assert summary(client, service) == [
        {"metric": "m", "min": 1.0, "max": 3.0, "avg": 2.0, "count": 2}
    ]


def test_the_key_with_another_body_is_refused_and_nothing_applied(
    client: TestClient, service: Service
) -> None:
    assert post(client, body(1.0, 3.0), "k").status_code == 200
    r = post(client, body(5.0, 7.0), "k")
    assert r.status_code == 422
    assert r.json() == {
        "error": "Idempotency-Key 'k' was used within the last 2 minutes for a different body"
    }
    assert summary(client, service) == [
        {"metric": "m", "min": 1.0, "max": 3.0, "avg": 2.0, "count": 2}
    ]
    assert post(client, body(5.0, 7.0), "other").status_code == 200  # a new key is fine
    assert summary(client, service)[0]["count"] == 4


def test_an_overlong_key_is_a_400(client: TestClient, service: Service) -> None:
    r = post(client, body(1.0), "k" * 257)
    assert r.status_code == 400
    assert r.json()["error"] == (
        "parameter 'Idempotency-Key': is 257 bytes; it must be 1 to 256 bytes"
    )
    while service.aggregator.drain(timeout=0):
        pass
    assert client.get("/api/v1/servers").json()["servers"] == []


def test_an_import_block_counts_once_long_after_the_window() -> None:
    clock = FakeClock(NOW)
    settings = Settings(hot_window=6 * 3600, store="none")
    service = Service(settings, clock=clock, bus=MemoryBus(4, 4 << 20, clock=clock)).open()
    with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as client:
        assert post(client, body(1.0, 3.0), "import:block-0").status_code == 200
        clock.now += 3600  # the bus has long forgotten the key
        r = post(client, body(1.0, 3.0), "import:block-0")
        assert r.status_code == 200 and r.json()["accepted"] == 2
        assert [row["count"] for row in summary(client, service, "-2h")] == [2]
        assert post(client, body(5.0), "import:block-0").status_code == 422
