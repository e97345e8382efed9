"""The ``influxdb-client`` package (InfluxDB 2.x API) and raw v1 lines write into a real
``minutely serve``; Q3 then answers what numpy says of what was sent."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.write_api import SYNCHRONOUS

from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture
def minutely(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path, "--store", "none", "--hot-window", "6h")
    yield server
    stop_server(server)


def q3(server: Server, host: str, start: int, end: int, want: int) -> dict[str, dict[str, float]]:
    """The summary rows of ``host`` once ``want`` points answer (they are folded async)."""
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(
            f"{server.url}/api/v1/servers/{host}/summary", params={"start": start, "end": end}
        )
        rows = {row.pop("metric"): row for row in r.json().get("rows", [])}
        if sum(row["count"] for row in rows.values()) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def check(row: dict[str, float], values: np.ndarray) -> None:
    assert row["count"] == values.size
    assert row["min"] == values.min() and row["max"] == values.max()
    assert row["avg"] == pytest.approx(values.mean(), rel=1e-12)


def test_influxdb_client_v2_writes(minutely: Server) -> None:
    rng = np.random.default_rng(5)
    now = int(time.time())
    stamps = now - 1800 + np.sort(rng.choice(1700, 300, replace=False))
    temps = np.round(rng.normal(20, 5, 300), 3)
    counts = rng.integers(0, 1000, 300)
    points = [
        Point("sensor")
        .tag("host", "edge-1")
        .tag("room", "lab")
        .field("temp", float(t))
        .field("hits", int(c))
        .time(int(s), WritePrecision.S)
        for t, c, s in zip(temps, counts, stamps, strict=True)
    ]
    with InfluxDBClient(url=minutely.url, token="any", org="o") as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket="b", record=points)
        with pytest.raises(InfluxDBError) as bad:  # a string field: partial write, 400
            client.write_api(write_options=SYNCHRONOUS).write(
                bucket="b", record='sensor,host=edge-1 note="hi",temp=1.0'
            )
        assert bad.value.response.status == 400
    rows = q3(minutely, "edge-1", now - 3600, now + 60, 601)
    check(rows['sensor.temp{room="lab"}'], temps)
    check(rows["sensor.temp"], np.array([1.0]))  # the good field of the partial write
    check(rows['sensor.hits{room="lab"}'], counts.astype(np.float64))


def test_v1_raw_lines_gzip(minutely: Server) -> None:
    rng = np.random.default_rng(6)
    now = int(time.time())
    values = np.round(rng.uniform(0, 100, 400), 2)
    stamps_ms = (now - 1200) * 1000 + np.sort(rng.choice(1_100_000, 400, replace=False))
    body = "\n".join(
        f"mem,host=db-1 used_percent={v} {t}" for v, t in zip(values, stamps_ms, strict=True)
    )
    r = httpx.post(
        f"{minutely.url}/write",
        params={"db": "telegraf", "precision": "ms"},
        content=gzip.compress(body.encode()),
        headers={"Content-Encoding": "gzip"},
    )
    assert r.status_code == 204, r.text
    rows = q3(minutely, "db-1", now - 3600, now + 60, 400)
    check(rows["mem.used_percent"], values)
