"""``minutely serve --bus nats://…``: a real nats-server with JetStream between ingest and the
aggregator. Answers equal numpy ground truth; a retried request with the same Idempotency-Key
counts once; points published before a restart are folded after it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from minutely import sim
from minutely.testing.natsserver import NatsServer
from tests.integration.conftest import start_server, stop_server
from tests.integration.truth import check_summary, columns

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
            deadline = time.monotonic() + 30  # acked once a checkpoint holds them
            while True:
                again = httpx.get(f"{server.url}/api/v1/status").json()
                backlog = sum(p["backlog_messages"] for p in again["bus"])
                if backlog == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert backlog == 0
            assert again["aggregator"]["checkpoints"] >= 1
            assert again["aggregator"]["points"] == len(batch)  # counted once, not three times

            end = int(time.time()) // 60 * 60 + 60
            name = str(fleet.server_names[2])
            check_summary(server.url, columns(batch), "server", name, t0 - 60, end)
        finally:
            stop_server(server)


def test_ingest_nodes_in_front_of_one_aggregator(tmp_path: Path) -> None:
    """Two ``minutely ingest`` processes publish to JetStream; one ``minutely serve``
    aggregates: points sent to either node are answered by the aggregator, each once."""
    with NatsServer(tmp_path / "js") as nats:
        server = start_server(tmp_path / "data", "--hot-window", "6h", "--bus", nats.url)
        nodes = [
            start_server(tmp_path / f"in{k}", "--bus", nats.url, command="ingest") for k in range(2)
        ]
        try:
            assert httpx.get(f"{nodes[0].url}/api/v1/status").json()["role"] == "ingest"
            fleet = sim.Fleet(6, 8, seed=9)
            t0 = int(time.time()) - 900
            batch = fleet.batch_by_series(t0, 600)
            halves = [batch.take(np.arange(k, len(batch), 2)) for k in range(2)]
            for node, half in zip(nodes, halves, strict=True):
                r = httpx.post(
                    f"{node.url}/api/v1/points",
                    content=sim.encode_arrow(half),
                    headers={"content-type": ARROW},
                )
                assert r.status_code == 200 and r.json()["accepted"] == len(half)
            status = server.wait_folded(len(batch))
            assert status["aggregator"]["points"] == len(batch)  # type: ignore[index]
            end = int(time.time()) // 60 * 60 + 60
            name = str(fleet.metric_names[4])
            check_summary(server.url, columns(batch), "metric", name, t0 - 60, end)
            # an ingest node answers only what it owns
            assert httpx.get(f"{nodes[1].url}/api/v1/servers").status_code == 404
        finally:
            for node in nodes:
                stop_server(node)
            stop_server(server)
