"""Values near the ingest bound: every sum stays finite, and JSON, CSV and Arrow answers carry
the same avg, equal to numpy's."""

from __future__ import annotations

import csv
import io

import numpy as np
import orjson
import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from minutely.service import Service
from tests.api.helpers import NOW


def test_two_values_at_the_bound_give_a_finite_avg_in_every_format(
    client: TestClient, service: Service
) -> None:
    minute = NOW // 60 * 60 - 120  # a closed minute
    values = np.array([1e288, 1e288])
    sent = [1e308, *values.tolist(), 1e308]  # the two past the bound would overflow the sum
    points = [
        {"server": "big", "metric": "m", "ts": minute + 1 + i, "value": v}
        for i, v in enumerate(sent)
    ]
    r = client.post(
        "/api/v1/points", content=orjson.dumps(points), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200
    assert (r.json()["accepted"], r.json()["rejected"]) == (2, 2)
    while service.aggregator.drain(timeout=0):
        pass
    want = float(np.mean(values))
    assert np.isfinite(want)
    params = {"start": str(int(minute)), "end": str(int(minute) + 60)}
    path = "/api/v1/servers/big/series"

    series = client.get(path, params=params).json()["series"]
    assert [(s["avg"], s["count"]) for s in series] == [([want], [2])]

    text = client.get(path, params={**params, "format": "csv"}).text
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert (float(row["avg"]), int(row["count"])) == (want, 2)

    table = pa.ipc.open_stream(client.get(path, params={**params, "format": "arrow"}).content)
    got = table.read_all()
    assert got.column("avg").to_pylist() == [want]
    assert got.column("count").to_pylist() == [2]

    rows = client.get("/api/v1/servers/big/summary", params=params).json()["rows"]
    assert rows == [{"metric": "m", "min": 1e288, "max": 1e288, "avg": want, "count": 2}]


@pytest.mark.parametrize("value", [1e308, -1e289])
def test_a_value_past_the_bound_is_refused_with_its_reason(
    client: TestClient, value: float
) -> None:
    points = [
        {"server": "big", "metric": "m", "ts": NOW - 60, "value": value},
        {"server": "big", "metric": "m", "ts": NOW - 60, "value": 1.0},
    ]
    r = client.post(
        "/api/v1/points", content=orjson.dumps(points), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 1 and body["rejected"] == 1
    assert body["errors"][0]["index"] == 0
    assert "exceeds 1e+288 (sums would overflow)" in body["errors"][0]["reason"]
