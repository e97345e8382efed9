"""The Cluster page and the partial-answer notice, against one real cluster node: a
``nats-server`` with JetStream, the ClickHouse stand-in over HTTP and ``minutely serve --node
n0`` owning every partition of both copies.

A partial answer is made deterministically, without waiting on a lease: a second node joins
advertising a URL nobody listens at (with markup in it, which the page must show as text).
It takes its share of the partitions, so n0 routes questions about them to that URL, cannot
reach it and answers from the store alone, marked partial. When the second node stops, it
hands its partitions back and n0's answers are complete again.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from minutely.bus.base import partition_of
from minutely.cluster.keys import assignment, partition_key
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natsserver import NatsServer, free_ports
from minutely.testing.processes import launch, stop_process, wait_healthy

pytestmark = pytest.mark.browser

PARTITIONS = 2
KEYS = [partition_key(c, p) for c in ("server", "metric") for p in range(PARTITIONS)]
SERVERS = [f"web-{i:02d}" for i in range(6)]
METRICS = ["cpu.user", "load.1m", "mem.used_bytes", "disk.io_ms"]
#: a second node's name: with n0 it is wanted for partitions of both copies (checked below)
GHOST = "n2"


@dataclass
class ClusterNode:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def status(self) -> dict[str, Any]:
        resp = httpx.get(f"{self.url}/api/v1/status", timeout=10)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class OneNodeCluster:
    root: Path
    nats: NatsServer
    store: ClickHouseHttpServer
    n0: ClusterNode

    def start_node(self, name: str, advertise: str | None = None) -> ClusterNode:
        port = free_ports(1)[0]
        log = self.root / f"{name}.log"
        extra = ["--advertise", advertise] if advertise else []
        with log.open("ab") as out:
            proc = launch(
                "serve", port, self.root / name,
                "--node", name,
                "--bus", self.nats.url,
                "--store", self.store.url,
                "--partitions", str(PARTITIONS),
                *extra,
                env={"MINUTELY_CHECKPOINT_EVERY": "1"},
                output=out,
            )  # fmt: skip
        node = ClusterNode(name, f"http://127.0.0.1:{port}", proc, log)
        if not wait_healthy(node.url, proc, timeout=60):
            node.stop()
            raise RuntimeError(f"{name} did not answer /healthz:\n{log.read_text()[-3000:]}")
        return node


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def owners(node: ClusterNode) -> dict[str, str | None]:
    return {p["key"]: p["owner"] for p in node.status()["cluster"]["partitions"]}


def ready(node: ClusterNode) -> set[str]:
    return {s["key"] for s in node.status()["shards"] if s["state"] == "ready"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneNodeCluster]:
    """n0 alone, owning (ready, and so in its leases) all four partitions, with some points."""
    root = tmp_path_factory.mktemp("cluster")
    nats = NatsServer(root / "nats")
    store = ClickHouseHttpServer(root / "store")
    nats.start()
    try:
        store.start(timeout=60)
        cluster = OneNodeCluster(root, nats, store, None)  # type: ignore[arg-type]
        cluster.n0 = cluster.start_node("n0")
        try:
            wait_for("n0 owns every partition", lambda: ready(cluster.n0) == set(KEYS)
                     and set(owners(cluster.n0).values()) == {"n0"})  # fmt: skip
            now = int(time.time())
            points = [
                {"server": s, "metric": m, "ts": now - 60 * k - 30, "value": 10.0 + i + j + k % 7}
                for i, s in enumerate(SERVERS)
                for j, m in enumerate(METRICS)
                for k in range(10)
            ]
            resp = httpx.post(f"{cluster.n0.url}/api/v1/points", json=points, timeout=30)
            assert resp.status_code == 200 and resp.json()["accepted"] == len(points), resp.text
            wait_for("every point folded", lambda: sum(
                s["aggregator"]["points"] for s in cluster.n0.status()["shards"]
            ) >= 2 * len(points))  # fmt: skip
            yield cluster
        finally:
            cluster.n0.stop()
    finally:
        store.stop()
        nats.stop()


def console_errors(page: Any) -> list[str]:
    """Console errors from now on (the ``page`` fixture fails a test on uncaught errors)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def test_cluster_page_shows_the_node_owning_every_partition(cluster, page, ui, shoot) -> None:
    errors = console_errors(page)
    n0 = cluster.n0
    ui.open(n0, "/fleet")  # the tab appears once /status says this is a cluster
    tab = page.locator('.tabs a[data-view="cluster"]')
    expect(tab).to_be_visible()
    tab.click()
    ui.wait_drawn("cluster")
    assert ui.hash() == "#/cluster"
    expect(page.locator("#live-status")).to_contain_text("live every 2 s")

    owner_cells = page.locator('table.partitions td[data-col="owner"]')
    expect(owner_cells).to_have_count(2 * PARTITIONS)
    assert {c.get_attribute("data-key") for c in owner_cells.all()} == set(KEYS)
    assert {c.get_attribute("data-owner") for c in owner_cells.all()} == {"n0"}
    expect(page.locator(".ownership.all-owned")).to_contain_text("Every one of the 4 partitions")
    expect(page.locator('.ownership[role="alert"]')).to_have_count(0)

    node_row = page.locator('table.nodes tr[data-node="n0"]')
    expect(node_row).to_contain_text("this node")
    expect(node_row.locator("a.url")).to_have_attribute("href", f"{n0.url}/")
    expect(node_row).to_contain_text(str(n0.proc.pid))
    expect(node_row.locator("td.owns code.key")).to_have_count(4)

    shards = page.locator("table.shards tbody tr")
    expect(shards).to_have_count(4)
    expect(page.locator('table.shards tr[data-state="ready"]')).to_have_count(4)

    # live: the lease ages move with each 2 s refresh (n0 renews every TTL/3)
    lease = page.locator('table.partitions td[data-col="lease"][data-key="s.0"]')
    draws = ui.draws("cluster")
    ui.wait_drawn("cluster", draws + 1)
    assert float(lease.get_attribute("data-value")) < 10.0 * 2 / 3
    shoot("cluster-view")
    assert not errors, errors


def test_single_node_has_no_cluster_tab(start_server, page, ui) -> None:
    server = start_server("alone")
    ui.open(server, "/cluster")
    ui.wait_drawn("cluster")
    expect(page.locator(".notice")).to_contain_text("This minutely runs alone")
    expect(page.locator('.tabs a[data-view="cluster"]')).to_be_hidden()


def test_partial_answers_show_a_notice_until_complete(cluster, page, ui, shoot) -> None:
    errors = console_errors(page)
    n0 = cluster.n0
    wanted = assignment(KEYS, ["n0", GHOST])
    ghost_keys = sorted(k for k, owner in wanted.items() if owner == GHOST)
    server_key = next(k for k in ghost_keys if k.startswith("s."))
    metric_key = next(k for k in ghost_keys if k.startswith("m."))
    server = pick(SERVERS, int(server_key[2:]))
    metric = pick(METRICS, int(metric_key[2:]))

    # n0 routes the ghost's partitions to a URL nobody listens at, with markup in it
    dead = free_ports(1)[0]
    advertise = f"http://127.0.0.1:{dead}/<img src=x onerror=window.__xss=1>"
    ghost = cluster.start_node(GHOST, advertise)
    try:
        wait_for(f"{GHOST} owns {ghost_keys}", lambda: ready(ghost) == set(ghost_keys)
                 and owners(n0) == wanted)  # fmt: skip
        got = httpx.get(f"{n0.url}/api/v1/servers/{server}/summary", params={"start": "-1h"})
        assert got.json().get("partial") is True and got.headers["X-Minutely-Partial"] == "true"

        note = page.locator("#partial")
        ui.open(n0, f"/server/{server}?refresh=1", "server")
        expect(note).to_be_visible()
        expect(note).to_contain_text("partition without an owner, showing stored minutes only")
        expect(page.locator(".chart-card")).to_have_count(
            len(METRICS)
        )  # the view still shows what it has

        ui.open(n0, f"/metric/{metric}?refresh=1", "metric")
        expect(note).to_be_visible()
        ui.open(n0, f"/fleet?metric={metric}&refresh=1", "fleet")
        expect(note).to_be_visible()
        shoot("partial-notice")

        # complete answers (a server n0 owns) take the notice away
        ui.open(n0, f"/server/{pick(SERVERS, 1 - int(server_key[2:]))}?refresh=1", "server")
        expect(note).to_be_hidden()

        # the cluster page shows the ghost's share, its URL as text, and nothing it injects
        ui.open(n0, "/cluster", "cluster")
        for key in ghost_keys:
            expect(
                page.locator(f'table.partitions td[data-col="owner"][data-key="{key}"]')
            ).to_have_attribute("data-owner", GHOST)
        ghost_row = page.locator(f'table.nodes tr[data-node="{GHOST}"]')
        expect(ghost_row.locator("a.url")).to_have_text(advertise)
        assert page.locator("#view img").count() == 0
        assert page.evaluate("() => window.__xss") is None
        shoot("cluster-two-nodes")

        # back on the fleet view: partial now, complete once the ghost hands its share back
        ui.open(n0, f"/fleet?metric={metric}&refresh=1", "fleet")
        expect(note).to_be_visible()
    finally:
        ghost.stop()
    wait_for("n0 owns every partition again", lambda: ready(n0) == set(KEYS))
    expect(note).to_be_hidden(timeout=15_000)
    ui.open(n0, "/cluster", "cluster")
    expect(page.locator('table.partitions td[data-col="owner"][data-owner="n0"]')).to_have_count(4)
    assert not errors, errors


def pick(names: list[str], partition: int) -> str:
    """The first of ``names`` in ``partition`` (the bus's hash, as the router computes it)."""
    parts = partition_of(np.asarray(names, dtype=object), PARTITIONS)
    return next(n for n, p in zip(names, parts, strict=True) if int(p) == partition)
