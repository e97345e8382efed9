"""A cluster of real processes: three clustered nats-server (streams and buckets R=3), the
shared store (the chDB-backed ClickHouse stand-in, over HTTP), three ``minutely serve --node``
and a sender that retries with an Idempotency-Key, through the failures the cluster must
survive: an owner SIGKILLed, an owner paused past its lease and woken, the leader of a
stream's NATS server killed, a node added. After each, Q1–Q4 for every server and metric,
asked of every live node, equal numpy over the points answered 200; the time until answers
are complete again is measured and bounded.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import numpy as np
import pytest

from minutely.bus.base import partition_of
from minutely.cluster.demo import Node
from minutely.model import PointBatch
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natscluster import NatsCluster
from minutely.testing.natsserver import free_ports
from minutely.testing.processes import launch, stop_process, wait_healthy
from tests.integration.truth import Points, check_series, check_summary, columns

PARTITIONS = 4
LEASE_TTL = 3.0
SERVERS = [f"web-{i:02d}" for i in range(8)]
METRICS = [f"cpu.{i}" for i in range(5)]
#: how long answers may stay incomplete after a failure: the lease, a tick, the takeover
COMPLETE_WITHIN = LEASE_TTL + 15.0


@dataclass
class Cluster:
    root: Path
    nats: NatsCluster
    store: ClickHouseHttpServer
    nodes: list[Node] = field(default_factory=list)
    sent: list[PointBatch] = field(default_factory=list)
    keys: Iterator[int] = field(default_factory=itertools.count)
    t0: int = 0

    def start_node(self, node: Node) -> None:
        with node.log.open("ab") as log:
            node.proc = self._launch(node, log)
        assert wait_healthy(node.url, node.proc, timeout=90), node.log.read_text()[-3000:]

    def _launch(self, node: Node, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return launch(
            "serve",
            node.port,
            node.data_dir,
            "--node", node.name,
            "--advertise", node.url,
            "--bus", self.nats.urls,
            "--store", self.store.url,
            "--replicas", "3",
            "--partitions", str(PARTITIONS),
            "--lease-ttl", f"{LEASE_TTL}s",
            env={"MINUTELY_CHECKPOINT_EVERY": "1"},
            output=log,
        )  # fmt: skip

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def status(self, node: Node) -> dict:
        return httpx.get(f"{node.url}/api/v1/status", timeout=10).json()

    def wait_owned(self, timeout: float = 60.0) -> float:
        """Seconds until every partition of both copies has a ready owner among live nodes."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            ready: set[str] = set()
            try:
                for n in self.live():
                    ready |= {s["key"] for s in self.status(n)["shards"] if s["state"] == "ready"}
            except httpx.HTTPError:
                pass
            if len(ready) == 2 * PARTITIONS:
                return time.monotonic() - began
            time.sleep(0.2)
        raise AssertionError(f"partitions not all owned within {timeout}s: {ready}")

    def send(self, minutes: int = 2, per_minute: int = 3) -> None:
        """Points for every series over ``minutes`` recent minutes, each request retried
        with its key on any live node until one answers 200."""
        rng = np.random.default_rng(len(self.sent))
        now = int(time.time())
        base = now - now % 60 - 60 * minutes
        for m in range(minutes):
            n = len(SERVERS) * len(METRICS) * per_minute
            servers = np.repeat(SERVERS, len(METRICS) * per_minute)
            metrics = np.tile(np.repeat(METRICS, per_minute), len(SERVERS))
            ts = base + 60 * m + rng.integers(0, 60, n).astype(np.float64)
            values = np.round(rng.normal(50, 20, n), 2)
            batch = PointBatch.from_names(servers.tolist(), metrics.tolist(), ts, values)
            body = [
                {"server": s, "metric": k, "ts": float(t), "value": float(v)}
                for s, k, t, v in zip(servers.tolist(), metrics.tolist(), ts, values, strict=True)
            ]
            key = f"k-{next(self.keys)}"
            for attempt in itertools.count():
                node = self.live()[attempt % len(self.live())]
                try:
                    r = httpx.post(
                        f"{node.url}/api/v1/points",
                        json=body,
                        headers={"Idempotency-Key": key},
                        timeout=30,
                    )
                    if r.status_code == 200:
                        assert r.json()["accepted"] == n, r.text
                        break
                except httpx.HTTPError:
                    pass
                assert attempt < 60, f"no node took request {key}"
                time.sleep(0.5)
            self.sent.append(batch)
        self.t0 = self.t0 or base

    def truth(self) -> Points:
        cols = [columns(b) for b in self.sent]
        return {k: np.concatenate([c[k] for c in cols]) for k in cols[0]}

    def check_everywhere(self) -> None:
        pts = self.truth()
        start, end = self.t0 - 120, int(time.time()) + 120
        for node in self.live():
            for server in SERVERS:
                check_summary(node.url, pts, "server", server, start, end)
                check_series(node.url, pts, "server", server, 60, start, end)
            for metric in METRICS:
                check_summary(node.url, pts, "metric", metric, start, end)
                check_series(node.url, pts, "metric", metric, 60, start, end)

    def wait_complete(self, timeout: float = COMPLETE_WITHIN) -> float:
        """Seconds until every node's answers are whole and equal the truth."""
        began = time.monotonic()
        while True:
            try:
                self.check_everywhere()
                return time.monotonic() - began
            except (AssertionError, httpx.HTTPError) as exc:
                if time.monotonic() - began > timeout:
                    msg = f"answers incomplete after {timeout}s: {exc!r}"
                    raise AssertionError(msg) from exc
                time.sleep(0.3)

    def check_partial(self, server: str) -> None:
        pts = self.truth()
        mine = pts["server"] == server
        for node in self.live():
            r = httpx.get(
                f"{node.url}/api/v1/servers/{server}/summary",
                params={"start": self.t0 - 120, "end": int(time.time()) + 120},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            assert r.json().get("partial") is True and r.headers["X-Minutely-Partial"] == "true"
            for row in r.json()["rows"]:
                v = pts["value"][mine & (pts["metric"] == row["metric"])]
                assert row["count"] <= v.size and row["min"] >= v.min() and row["max"] <= v.max()

    def wait_opening(self, timeout: float = 30.0) -> Node:
        """The first live node seen opening a shard (taking a partition over)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.live():
                try:
                    if any(s["state"] == "opening" for s in self.status(n)["shards"]):
                        return n
                except httpx.HTTPError:
                    continue
            time.sleep(0.05)
        raise AssertionError("no node was seen taking a partition over")

    def wait_drained(self, timeout: float = 30.0) -> None:
        """Until no stream of either copy holds an unacked message."""
        deadline = time.monotonic() + timeout
        while True:
            parts = self.status(self.live()[0])["cluster"]["partitions"]
            behind = {p["key"]: p.get("backlog_messages") for p in parts}
            if all(v == 0 for v in behind.values()):
                return
            assert time.monotonic() < deadline, f"streams still hold messages: {behind}"
            time.sleep(0.5)

    def owner_of(self, key: str) -> Node:
        for n in self.live():
            if any(s["key"] == key and s["state"] == "ready" for s in self.status(n)["shards"]):
                return n
        raise AssertionError(f"no live owner of {key}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nats = NatsCluster(tmp_path / "nats", size=3)
    nats.start(timeout=60)
    store = ClickHouseHttpServer(tmp_path / "store")
    store.start(timeout=60)
    c = Cluster(tmp_path, nats, store)
    ports = free_ports(4)
    c.nodes = [
        Node(f"n{i}", ports[i], tmp_path / f"n{i}", tmp_path / f"n{i}.log") for i in range(4)
    ]
    try:
        for node in c.nodes[:3]:
            c.start_node(node)
        c.wait_owned()
        yield c
    finally:
        for node in c.nodes:
            if node.proc is not None:
                if node.proc.poll() is None:
                    os.kill(node.proc.pid, signal.SIGCONT)
                stop_process(node.proc)
        store.stop()
        nats.stop()


def test_a_cluster_survives_its_failures_with_exact_answers(cluster: Cluster) -> None:
    c = cluster
    c.send()
    c.wait_complete()

    # an owner SIGKILLed: its partitions move, answers are complete again on every node
    key = f"s.{int(partition_of(np.asarray([SERVERS[0]], dtype=object), PARTITIONS)[0])}"
    victim = c.owner_of(key)
    victim.proc.kill()  # type: ignore[union-attr]
    victim.proc.wait()  # type: ignore[union-attr]
    killed_at = time.monotonic()
    # until its lease runs out the partition has no ready owner: answers come from the
    # store, say so, and hold nothing that was not sent
    c.check_partial(SERVERS[0])
    c.send(minutes=1)
    owned = c.wait_owned()
    c.wait_complete()
    took = time.monotonic() - killed_at
    print(f"after a SIGKILL: owned again in {owned:.1f}s, complete in {took:.1f}s")
    assert took < COMPLETE_WITHIN + 10

    # an owner paused past its lease, then woken: it must neither insert nor ack again
    paused = c.live()[0]
    os.kill(paused.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    c.nodes.remove(paused)  # not asked while paused
    time.sleep(LEASE_TTL + 1)
    c.send(minutes=1)
    c.wait_owned()
    os.kill(paused.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
    c.nodes.append(paused)
    time.sleep(LEASE_TTL)
    c.send(minutes=1)
    c.wait_owned()
    c.wait_complete()

    # a node added: it takes its share, and answers stay exact
    victim.proc = None
    c.start_node(victim)
    c.send(minutes=1)
    c.wait_owned()
    c.wait_complete()
    shares = {n.name: len(c.status(n)["shards"]) for n in c.live()}
    assert all(count > 0 for count in shares.values()), shares

    # a node SIGKILLed while it takes partitions over from another SIGKILLed node
    first = c.owner_of(key)
    first.proc.kill()  # type: ignore[union-attr]
    first.proc.wait()  # type: ignore[union-attr]
    second = c.wait_opening()
    second.proc.kill()  # type: ignore[union-attr]
    second.proc.wait()  # type: ignore[union-attr]
    c.start_node(next(n for n in c.nodes if n.proc is None))
    c.send(minutes=1)
    c.wait_owned()
    print(f"after a SIGKILL during a takeover: complete in {c.wait_complete(60):.1f}s")

    # the NATS server leading a stream killed: publishes and folds go on, nothing lost
    leader = c.nats.stream_leader("MINUTELY_0")
    c.nats.kill(leader)
    c.send(minutes=1)
    # clients move to the other servers and streams elect leaders: slower than a takeover
    print(f"after a stream leader's NATS server died: complete in {c.wait_complete(60):.1f}s")

    # every message of both copies is acked once its checkpoint is in: the streams drain
    c.wait_drained()
