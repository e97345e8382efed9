"""``/metrics`` on a real cluster node: one ``minutely serve --node`` on a real nats-server
(JetStream) and the ClickHouse stand-in, owning every partition of both copies. Its shards'
folds and its streams' backlogs are labelled by copy and partition, and the points it folded
are the points it accepted, once in each copy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natsserver import NatsServer, free_port
from minutely.testing.processes import launch, stop_process, wait_healthy

pytestmark = pytest.mark.slow

PARTITIONS = 2


@pytest.fixture
def node(tmp_path: Path) -> Iterator[str]:
    with NatsServer(tmp_path / "nats") as nats:
        store = ClickHouseHttpServer(tmp_path / "store")
        store.start(timeout=60)
        port = free_port()
        proc = launch(
            "serve",
            port,
            tmp_path / "node",
            "--node", "n0",
            "--advertise", f"http://127.0.0.1:{port}",
            "--bus", nats.url,
            "--store", store.url,
            "--replicas", "1",
            "--partitions", str(PARTITIONS),
            output=None,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_healthy(url, proc, timeout=90)
            yield url
        finally:
            stop_process(proc)
            store.stop()


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_labels(
    got: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str
) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in got.items() if n == name}


def test_a_cluster_node_reports_its_shards_and_streams(node: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every partition of both copies ready here
        shards = httpx.get(f"{node}/api/v1/status", timeout=10).json()["shards"]
        if len([s for s in shards if s["state"] == "ready"]) == 2 * PARTITIONS:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the node never owned every partition: {shards}")
    now = int(time.time())
    points = [
        {"server": f"web-{i}", "metric": f"cpu.{i % 3}", "ts": now - i, "value": float(i)}
        for i in range(50)
    ]
    r = httpx.post(f"{node}/api/v1/points", json=points, timeout=10)
    assert r.status_code == 200 and r.json()["accepted"] == 50, r.text

    got: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    while time.monotonic() < deadline:
        got = samples(node)
        folded = by_labels(got, "minutely_folded_points_total")
        backlogs = by_labels(got, "minutely_bus_backlog_messages")
        # once in the by-server copy, once in by-metric; the backlogs (looked at every 2 s) nil
        if sum(folded.values()) == 2 * 50 and sorted(backlogs.values()) == [0] * 2 * PARTITIONS:
            break
        time.sleep(0.5)
    folded = by_labels(got, "minutely_folded_points_total")
    assert sum(folded.values()) == 2 * 50, folded
    want = {
        (("copy", copy), ("partition", str(p)))
        for copy in ("metric", "server")
        for p in range(PARTITIONS)
    }
    assert set(folded) == want
    batches = by_labels(got, "minutely_fold_seconds_count")
    assert set(batches) == want and sum(batches.values()) >= 2
    assert sum(by_labels(got, "minutely_fold_seconds_sum").values()) > 0
    assert by_labels(got, "minutely_bus_backlog_messages") == dict.fromkeys(want, 0)
    assert got[("minutely_points_accepted_total", (("protocol", "json"),))] == 50
    assert got[("minutely_status_up", ())] == 1
    assert got[("minutely_hot_ring_bytes", ())] > 0
