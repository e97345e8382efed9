"""Dead letters over HTTP: listed with their reasons, replayed to where they were going,
and the 503 ingest answers while the store's writer is at its bound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.config import Settings
from minutely.letters import points_table, rows_table
from minutely.model import Partials, PointBatch
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import NOW


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[Service]:
    settings = Settings(data_dir=str(tmp_path), hot_window=6 * 3600)
    service = Service(settings, clock=FakeClock(NOW)).open()
    try:
        yield service
    finally:
        service.close()


def test_dead_letters_are_listed_and_replayed(stored: Service) -> None:
    minute = int(NOW // 60) - 3 * 1440  # older than the ring: rows for the store only
    rows = rows_table(
        np.array(["web-1", "web-2"], dtype=object),
        np.array(["cpu", "cpu"], dtype=object),
        np.array([minute, minute], dtype=np.int64),
        Partials(
            np.array([1.0, 2.0]),
            np.array([3.0, 4.0]),
            np.array([4.0, 6.0]),
            np.array([2, 2], np.uint32),
        ),
    )
    stored.dead_letters.put("rows-x", "rows", rows, "Code: 999. refused (test)")
    points = PointBatch.from_names(["web-3"] * 3, ["mem"] * 3, [NOW - 30] * 3, [5.0, 6.0, 7.0])
    stored.dead_letters.put("points-y", "points", points_table(points), "MemoryError (test)")
    with TestClient(create_app(stored, manage_lifecycle=False, access=TESTSERVER)) as client:
        listed = client.get("/api/v1/dead-letters").json()["letters"]
        assert [(x["file"], x["kind"], x["rows"]) for x in listed] == [
            ("points-y.arrow", "points", 3),
            ("rows-x.arrow", "rows", 2),
        ]
        assert listed[1]["reason"] == "Code: 999. refused (test)"
        assert client.get("/api/v1/status").json()["dead_letters"] == {"files": 2, "rows": 5}
        done = client.post("/api/v1/dead-letters/replay").json()
        assert done == {"letters": 2, "rows": 2, "points": 3}
        assert client.get("/api/v1/dead-letters").json()["letters"] == []
        while stored.aggregator.drain(timeout=0):
            pass
        assert stored.writer is not None
        stored.writer.flush()
        start, end = int(NOW) - 4 * 86400, int(NOW) + 60
        got = client.get(f"/api/v1/metrics/cpu/summary?start={start}&end={end}").json()["rows"]
        assert [(r["server"], r["min"], r["max"], r["count"]) for r in got] == [
            ("web-1", 1.0, 3.0, 2),
            ("web-2", 2.0, 4.0, 2),
        ]
        got = client.get(f"/api/v1/servers/web-3/summary?start={start}&end={end}").json()
        assert [(r["min"], r["max"], r["avg"], r["count"]) for r in got["rows"]] == [
            (5.0, 7.0, 6.0, 3)
        ]


def test_ingest_answers_503_while_the_writer_is_at_its_bound(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), hot_window=6 * 3600, writer_max_bytes=1)
    service = Service(settings, clock=FakeClock(NOW)).open()
    try:
        body = b'[{"server": "a", "metric": "m", "ts": %d, "value": 1},' % (int(NOW) - 30)
        body += b' {"server": "a", "metric": "m", "ts": %d, "value": 1}]' % (int(NOW) - 86400)
        with TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER)) as client:
            first = client.post(
                "/api/v1/points", content=body, headers={"content-type": "application/json"}
            )
            assert first.status_code == 200
            while service.aggregator.drain(timeout=0):
                pass  # a row older than the ring now waits for the store
            refused = client.post(
                "/api/v1/points", content=body, headers={"content-type": "application/json"}
            )
            assert refused.status_code == 503 and "Retry-After" in refused.headers
            assert "the store is behind" in refused.text
            assert service.writer is not None
            service.writer.flush()
            again = client.post(
                "/api/v1/points", content=body, headers={"content-type": "application/json"}
            )
            assert again.status_code == 200
    finally:
        service.close()
