"""``minutely serve --bus nats://…``: a real nats-server with JetStream between ingest and the
aggregator. Answers equal numpy ground truth; a retried request with the same Idempotency-Key
counts once; points published before a restart are folded after it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from minutely import sim
from tests.integration.conftest import start_server, stop_server
from tests.natsserver import NatsServer

pytestmark = pytest.mark.slow

ARROW = "application/vnd.apache.arrow.stream"


def test_serve_on_jetstream(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "js") as nats:
        server = start_server(tmp_path / "data", "--hot-window", "6h", "--bus", nats.url)
        try:
            fleet = sim.Fleet(4, 10, seed=5)
            t0 = int(time.time()) - 1800
            batch = fleet.batch_by_series(t0, 1200)
            body = sim.encode_arrow(batch)
            headers = {"content-type": ARROW, "idempotency-key": "agent-7:42"}
            for _ in range(3):  # the agent never saw the answer and sends it again, twice
                r = httpx.post(f"{server.url}/api/v1/points", content=body, headers=headers)
                assert r.status_code == 200, r.text
                assert r.json()["accepted"] == len(batch)
            status = server.wait_folded(len(batch))
            assert status["aggregator"]["points"] == len(batch)  # type: ignore[index]
            time.sleep(0.5)
            again = httpx.get(f"{server.url}/api/v1/status").json()
            assert again["aggregator"]["points"] == len(batch)  # counted once, not three times
            assert sum(p["backlog_messages"] for p in again["bus"]) == 0

            name = str(fleet.server_names[2])
            rows = httpx.get(
                f"{server.url}/api/v1/servers/{name}/summary", params={"start": t0 - 60}
            ).json()["rows"]
            servers = batch.server_names[batch.server_codes]
            metrics = batch.metric_names[batch.metric_codes]
            assert len(rows) == 10
            for row in rows:
                v = batch.value[(servers == name) & (metrics == row["metric"])]
                assert (row["min"], row["max"], row["count"]) == (v.min(), v.max(), v.size)
                assert row["avg"] == pytest.approx(v.mean(), rel=1e-12)
        finally:
            stop_server(server)
