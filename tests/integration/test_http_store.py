"""``minutely serve --store http://…``: the same service on a ClickHouse HTTP endpoint (the
stand-in of ``minutely/testing/clickhouse_http.py``, the real engine behind it) instead of embedded
chDB, changed by one setting: history older than the hot window goes to the store only,
and every answer equals numpy, before and after a restart that rebuilds the ring from it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from minutely import sim
from minutely.model import PointBatch
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from tests.integration.conftest import start_server, stop_server
from tests.integration.test_restart_and_import import DAY, check, points, wait_written

pytestmark = pytest.mark.slow

ARROW = "application/vnd.apache.arrow.stream"


def test_serve_on_a_clickhouse_http_store(tmp_path: Path) -> None:
    now = time.time()
    start = int(now // DAY) * DAY - 2 * DAY
    end = int(now // 60) * 60 + 60
    truth = pa.concat_tables(
        [points(3, 8_000, start + 100, now - 4 * 3600), points(4, 4_000, now - 3600, now - 200)]
    )
    with ClickHouseHttpServer(tmp_path / "ch") as clickhouse:
        store = ("--hot-window", "2h", "--store", clickhouse.url)
        server = start_server(tmp_path / "data", *store)
        try:
            assert httpx.get(f"{server.url}/api/v1/status").json()["store"] is not None
            body = sim.encode_arrow(batch_of(truth))
            r = httpx.post(
                f"{server.url}/api/v1/points", content=body, headers={"content-type": ARROW}
            )
            assert r.status_code == 200 and r.json()["accepted"] == truth.num_rows, r.text
            server.wait_folded(truth.num_rows)
            wait_written(server)
            check(server, truth, start, end)
        finally:
            stop_server(server)
        server = start_server(tmp_path / "data-2", *store)  # nothing local: all from the store
        try:
            check(server, truth, start, end)
        finally:
            stop_server(server)


def batch_of(table: pa.Table) -> PointBatch:
    cols = {k: table.column(k).to_numpy(zero_copy_only=False) for k in table.column_names}
    return PointBatch.from_names(cols["server"], cols["metric"], cols["ts"], cols["value"])
