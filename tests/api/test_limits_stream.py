"""Large series answers are streamed a few series at a time: the chunks put together are
the very bytes the whole answer would be, in JSON and CSV, and the numbers are exact."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pyarrow.csv as pacsv
import pytest
from starlette.testclient import TestClient

from minutely.api import create_app, render
from minutely.config import Settings
from minutely.model import PointBatch
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import ARROW, NOW, arrow_body

N_METRICS = 300
N_POINTS = 60_000


@pytest.fixture(scope="module")
def node() -> tuple[TestClient, Service, dict[str, np.ndarray]]:
    service = Service(Settings(store="none"), clock=FakeClock(NOW)).open()
    rng = np.random.default_rng(7)
    metric = rng.integers(0, N_METRICS, N_POINTS)
    pts = {
        "metric": np.array([f"m{i:03d}" for i in range(N_METRICS)], dtype=object)[metric],
        "ts": NOW - rng.uniform(0, 2 * 86400 - 120, N_POINTS),
        "value": np.round(rng.normal(0, 100, N_POINTS), 2),
    }
    batch = PointBatch.from_names(
        np.full(N_POINTS, "web-001", dtype=object), pts["metric"], pts["ts"], pts["value"]
    )
    client = TestClient(create_app(service, manage_lifecycle=False, access=TESTSERVER))
    r = client.post("/api/v1/points", content=arrow_body(batch), headers={"content-type": ARROW})
    assert r.status_code == 200 and r.json()["accepted"] == N_POINTS
    while service.aggregator.drain(timeout=0):
        pass
    return client, service, pts


def test_a_large_json_answer_is_streamed_and_is_the_whole_answer_byte_for_byte(
    node: tuple[TestClient, Service, dict[str, np.ndarray]],
) -> None:
    client, service, pts = node
    r = client.get("/api/v1/servers/web-001/series", params={"fields": "min,max,sum,count"})
    assert r.status_code == 200
    assert "content-length" not in r.headers  # sent in chunks
    answer = service.query.series("server", "web-001", r.json()["start"], r.json()["end"])
    assert len(answer.labels) > 10 * render.chunk_rows(answer)
    fields = ("min", "max", "sum", "count")
    assert r.content == render.series_json(answer, fields, ["gauge"] * len(answer.labels))
    got = r.json()["series"]
    for entry in got[::37]:  # exact against numpy over the raw points
        values = pts["value"][pts["metric"] == entry["metric"]]
        assert sum(entry["count"]) == values.size
        assert min(m for m in entry["min"] if m is not None) == values.min()
        assert max(m for m in entry["max"] if m is not None) == values.max()
        assert np.isclose(sum(entry["sum"]), values.sum())


def test_a_large_csv_answer_is_streamed_with_one_header(
    node: tuple[TestClient, Service, dict[str, np.ndarray]],
) -> None:
    client, service, _ = node
    r = client.get("/api/v1/servers/web-001/series", params={"format": "csv"})
    assert r.status_code == 200 and "content-length" not in r.headers
    table = pacsv.read_csv(io.BytesIO(r.content))
    assert table.column("count").to_numpy().sum() == N_POINTS
    assert r.content.count(b'"server","metric","ts"') == 1
    answer = service.query.series("server", "web-001", int(NOW) - 2 * 86400, int(NOW))
    assert len(list(render.series_csv_chunks(answer))) > 10
    assert b"".join(render.series_csv_chunks(answer)) == render.series_csv(answer)


def test_chunks_keep_partial_and_counter_entries(
    node: tuple[TestClient, Service, dict[str, np.ndarray]],
) -> None:
    _, service, _ = node
    answer = replace(
        service.query.series("server", "web-001", int(NOW) - 86400, int(NOW)), partial=True
    )
    kinds = ["counter" if i % 3 == 0 else "gauge" for i in range(len(answer.labels))]
    for rate in (False, True):
        chunks = list(render.series_json_chunks(answer, render.DEFAULT_FIELDS, kinds, rate))
        assert len(chunks) > 3
        assert b"".join(chunks) == render.series_json(answer, render.DEFAULT_FIELDS, kinds, rate)
