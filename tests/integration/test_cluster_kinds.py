"""Metric kinds across a real cluster: two ``minutely serve --node`` on one nats-server
(JetStream) and the ClickHouse stand-in. A counter declared on one node (``POST
/api/v1/kinds``, or an OTLP monotonic sum in the request that carries its points) is folded
as a counter by the other node's shards from its first point on: the rate every node answers
equals numpy's over the raw samples with resets, and every node lists the kind."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from minutely.bus.base import partition_of
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natsserver import NatsServer, free_ports
from minutely.testing.processes import launch, stop_process, wait_healthy
from tests.counter_data import Counters, make_counters, per_minute

pytestmark = pytest.mark.slow

PARTITIONS = 4
N = 4  # counter series per metric
MINUTES = 20


@dataclass
class TwoNodes:
    urls: list[str]

    def shards(self) -> dict[str, str]:
        """Each ready shard's key -> the URL of the node holding it."""
        out: dict[str, str] = {}
        for url in self.urls:
            for s in httpx.get(f"{url}/api/v1/status", timeout=10).json()["shards"]:
                if s["state"] == "ready":
                    out[s["key"]] = url
        return out


def node(i: int, port: int, root: Path, bus: str, store: str) -> subprocess.Popen[bytes]:
    return launch(
        "serve",
        port,
        root / f"n{i}",
        "--node", f"n{i}",
        "--advertise", f"http://127.0.0.1:{port}",
        "--bus", bus,
        "--store", store,
        "--replicas", "1",
        "--partitions", str(PARTITIONS),
        "--lease-ttl", "3s",
        output=None,
    )  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[TwoNodes]:
    with NatsServer(tmp_path / "nats") as nats:
        store = ClickHouseHttpServer(tmp_path / "store")
        store.start(timeout=60)
        ports = free_ports(2)
        procs = [node(i, port, tmp_path, nats.url, store.url) for i, port in enumerate(ports)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            for url, proc in zip(urls, procs, strict=True):
                assert wait_healthy(url, proc, timeout=90)
            nodes = TwoNodes(urls)
            deadline = time.monotonic() + 60
            # every shard ready, and each node holding some (rendezvous over both nodes)
            while len(held := nodes.shards()) < 2 * PARTITIONS or len(set(held.values())) < 2:
                assert time.monotonic() < deadline, f"shards not all owned: {held}"
                time.sleep(0.3)
            yield nodes
        finally:
            for proc in procs:
                stop_process(proc)
            store.stop()


def servers_on(owner: str, held: dict[str, str], prefix: str) -> list[str]:
    """``N`` server names whose by-server partition ``owner`` holds."""
    names = np.array([f"{prefix}-{k}" for k in range(200)], dtype=object)
    part = partition_of(names, PARTITIONS)
    mine = [str(n) for n, p in zip(names, part, strict=True) if held[f"s.{p}"] == owner]
    assert len(mine) >= N
    return mine[:N]


def folding_elsewhere(nodes: TwoNodes, metric: str) -> tuple[str, str, list[str]]:
    """The node holding ``metric``'s by-metric partition, the other one (which takes the
    declaration), and servers whose by-server partitions the first holds too: every fold
    of the metric's points happens on a node the declaration was not sent to."""
    held = nodes.shards()
    p = int(partition_of(np.array([metric], dtype=object), PARTITIONS)[0])
    owner = held[f"m.{p}"]
    other = next(url for url in nodes.urls if url != owner)
    return owner, other, servers_on(owner, held, metric.replace(".", "-"))


def recent_counters(seed: int) -> tuple[Counters, int]:
    now = int(time.time())
    start = now - now % 60 - MINUTES * 60
    return make_counters(N, start, MINUTES * 60, seed=seed, resets=3), start


def check_rates(nodes: TwoNodes, metric: str, servers: list[str], c: Counters, start: int) -> None:
    """On every node: the metric is a counter and ``fn=rate`` per minute is numpy's."""
    want = per_minute(c, N, start // 60, MINUTES) / 60
    has = np.zeros((N, MINUTES))
    np.add.at(has, (c.series, ((c.ts - start) // 60).astype(np.int64)), 1)
    span = {"start": start, "end": start + MINUTES * 60, "step": 60, "fn": "rate"}
    deadline = time.monotonic() + 30
    for url in nodes.urls:
        while True:  # the points are folded (both copies) within a moment
            got = httpx.get(f"{url}/api/v1/metrics/{metric}/series", params=span, timeout=10)
            rows = {r["server"]: r for r in got.json().get("series", [])}
            if len(rows) == N and all(
                sum(rows[s]["count"]) == int(has[i].sum()) for i, s in enumerate(servers)
            ):
                break
            assert time.monotonic() < deadline, got.text
            time.sleep(0.3)
        for i, server in enumerate(servers):
            row = rows[server]
            assert row["kind"] == "counter", row
            rate = np.array(row["rate"], dtype=float)
            assert np.array_equal(np.isnan(rate), has[i] == 0)
            assert np.allclose(rate[has[i] > 0], want[i][has[i] > 0], rtol=1e-12, atol=0)
        q1 = httpx.get(
            f"{url}/api/v1/servers/{servers[0]}/series", params=span, timeout=10
        ).json()  # the by-server copy
        (row,) = [r for r in q1["series"] if r["metric"] == metric]
        rate = np.array(row["rate"], dtype=float)
        assert np.allclose(rate[has[0] > 0], want[0][has[0] > 0], rtol=1e-12, atol=0)


def test_a_counter_declared_on_one_node_is_folded_as_one_on_the_other(cluster: TwoNodes) -> None:
    _, other, servers = folding_elsewhere(cluster, "jobs.done")
    c, start = recent_counters(seed=3)
    r = httpx.post(f"{other}/api/v1/kinds", json={"counter": ["jobs.done"]}, timeout=10)
    assert r.status_code == 200 and r.json() == {"declared": 1, "changed": 1}, r.text
    points = [
        {"server": servers[s], "metric": "jobs.done", "ts": t, "value": v}
        for s, t, v in zip(c.series.tolist(), c.ts.tolist(), c.value.tolist(), strict=True)
    ]
    # at once, before the owner's periodic read: its first fold reads the bucket itself
    r = httpx.post(f"{other}/api/v1/points", json=points, timeout=30)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    check_rates(cluster, "jobs.done", servers, c, start)
    for url in cluster.urls:  # every node lists the kind and the bucket's declarations
        listed = httpx.get(f"{url}/api/v1/metrics", timeout=10).json()
        assert dict(zip(listed["metrics"], listed["kinds"], strict=True))["jobs.done"] == "counter"
        status = httpx.get(f"{url}/api/v1/status", timeout=10).json()
        assert status["kinds"]["declared"] == {"jobs.done": "counter"}
        meta = httpx.get(f"{url}/api/v1/metadata", timeout=10).json()["data"]
        assert meta["jobs.done"][0]["type"] == "counter"


def test_an_otlp_sum_is_a_counter_on_the_node_that_folds_it(cluster: TwoNodes) -> None:
    _, other, servers = folding_elsewhere(cluster, "orders.placed")
    c, start = recent_counters(seed=4)
    req = ExportMetricsServiceRequest()
    for s, server in enumerate(servers):
        rm = req.resource_metrics.add()
        attr = rm.resource.attributes.add(key="host.name")
        attr.value.string_value = server
        total = rm.scope_metrics.add().metrics.add(name="orders.placed")
        total.sum.is_monotonic = True
        total.sum.aggregation_temporality = 2  # cumulative
        at = c.series == s
        for t, v in zip(c.ts[at].tolist(), c.value[at].tolist(), strict=True):
            total.sum.data_points.add(time_unix_nano=round(t * 1e9), as_double=v)
    r = httpx.post(
        f"{other}/v1/metrics",
        content=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    # nanoseconds round the times a little: the truth is what the node was sent
    sent = Counters(c.series, np.array([round(t * 1e9) for t in c.ts.tolist()]) / 1e9, c.value)
    check_rates(cluster, "orders.placed", servers, sent, start)
    for url in cluster.urls:
        status = httpx.get(f"{url}/api/v1/status", timeout=10).json()
        assert status["kinds"]["declared"] == {"orders.placed": "counter"}
