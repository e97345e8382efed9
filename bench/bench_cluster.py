"""A cluster on this machine: takeover after an owner's SIGKILL, memory and CPU per node on 1
and 3 nodes, and the bus bytes of publishing every point twice.

    python bench/bench_cluster.py takeover  [--runs 3] [--servers 40] [--metrics 50]
    python bench/bench_cluster.py footprint [--servers 200] [--metrics 500] [--history 120]
    python bench/bench_cluster.py bus       [--servers 40] [--metrics 50]

Every part starts its own three clustered ``nats-server`` (JetStream, streams R=3), the
ClickHouse stand-in over HTTP and ``minutely serve --node`` processes with a user's defaults
(16 partitions per copy, lease 10 s, a checkpoint every 5 s, a 2-day hot window).

1. ``takeover``: 3 nodes; ``--backfill`` minutes of history (one point per series-minute),
   then a steady sender: every series at 1 Hz, one Arrow body a second with an
   Idempotency-Key, posted to the nodes in turn and retried on the next node until one
   answers 200. Each run SIGKILLs the node that owns the by-server partition of a chosen
   server and polls every ~100 ms until (a) another node holds the partition's lease (a
   node's cluster status), (b) Q1 for that server from every live node is not partial and
   equals numpy over the points answered 200, (c) the partition's shard is ready on its new
   node (its ring rebuilt: ``opened_in``, ``rebuilt_cells``), (d) every partition of both
   copies is ready again. The killed node is started again between runs.
2. ``footprint``: 1 node, then 3 nodes (a fresh cluster each): ``--history`` minutes of the
   fleet at one point per series-minute sent through every node; once both copies have folded
   every point, each node's RSS and ring bytes, and the CPU seconds each node, the NATS
   servers and the store took for it.
3. ``bus``: no nodes; this process publishes the fleet's 1 Hz batches through both copies'
   buses, as a node's ingest does, and reads each stream's bytes from JetStream before
   anything consumes them; then the bytes of one minute of the fleet as minute partials.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minutely import sim
from minutely.bus.base import partition_of
from minutely.bus.nats import NatsBus
from minutely.cluster.copies import TwoCopies
from minutely.cluster.demo import Node
from minutely.cluster.node import METRIC_GROUP, METRIC_STREAM, METRIC_SUBJECTS
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natscluster import NatsCluster
from minutely.testing.natsserver import free_ports
from minutely.testing.processes import launch, stop_process, wait_healthy

ARROW = "application/vnd.apache.arrow.stream"
PARTITIONS = 16
LEASE_TTL = "10s"
TICK = 1 / os.sysconf("SC_CLK_TCK")


# -- processes ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Cluster:
    root: Path
    nats: NatsCluster
    store: ClickHouseHttpServer
    nodes: list[Node] = field(default_factory=list)

    def start_node(self, node: Node) -> float:
        """Start ``node`` and return the seconds until it answers ``/healthz``."""
        began = time.monotonic()
        with node.log.open("ab") as log:
            node.proc = launch(
                "serve", node.port, node.data_dir,
                "--node", node.name, "--advertise", node.url,
                "--bus", self.nats.urls, "--store", self.store.url,
                "--replicas", "3", "--partitions", str(PARTITIONS), "--lease-ttl", LEASE_TTL,
                output=log,
            )  # fmt: skip
        if not wait_healthy(node.url, node.proc, timeout=180):
            raise RuntimeError(f"{node.name} did not start: {node.log.read_text()[-3000:]}")
        return time.monotonic() - began

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def wait_owned(self, timeout: float = 240.0) -> float:
        """Seconds until every partition of both copies is ready on a live node."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if len(ready_keys(self.live())) == 2 * PARTITIONS:
                return time.monotonic() - began
            time.sleep(0.2)
        raise RuntimeError(f"partitions not all ready within {timeout} s")

    def wait_settled(self, joined: Node, timeout: float = 240.0, quiet: float = 3.0) -> float:
        """Seconds until every partition is ready, ``joined`` holds some, and no shard has
        been opening or stopping for ``quiet`` seconds (the hand-overs a join causes are over)."""
        began = time.monotonic()
        calm_since: float | None = None
        while time.monotonic() - began < timeout:
            ready: set[str] = set()
            moving = False
            mine = 0
            for n in self.live():
                with contextlib.suppress(httpx.HTTPError):
                    for s in status(n)["shards"]:
                        moving |= s["state"] in ("opening", "stopping")
                        if s["state"] == "ready":
                            ready.add(s["key"])
                            mine += n is joined
            if len(ready) == 2 * PARTITIONS and mine and not moving:
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since >= quiet:
                    return calm_since - began
            else:
                calm_since = None
            time.sleep(0.2)
        raise RuntimeError(f"the cluster did not settle within {timeout} s")


def status(node: Node, timeout: float = 10) -> dict[str, Any]:
    return dict(httpx.get(f"{node.url}/api/v1/status", timeout=timeout).json())


def ready_keys(nodes: list[Node]) -> dict[str, str]:
    """Partition key -> the live node whose shard of it is ready."""
    out: dict[str, str] = {}
    for n in nodes:
        with contextlib.suppress(httpx.HTTPError):
            out |= {s["key"]: n.name for s in status(n)["shards"] if s["state"] == "ready"}
    return out


@contextlib.contextmanager
def cluster(root: Path, n_nodes: int) -> Iterator[Cluster]:
    nats = NatsCluster(root / "nats", size=3)
    store = ClickHouseHttpServer(root / "store")
    c = Cluster(root, nats, store)
    try:
        nats.start(timeout=60)
        store.start(timeout=60)
        ports = free_ports(n_nodes)
        c.nodes = [
            Node(f"n{i}", ports[i], root / f"n{i}", root / f"n{i}.log") for i in range(n_nodes)
        ]
        for node in c.nodes:
            c.start_node(node)
        c.wait_owned()
        yield c
    finally:
        for node in c.nodes:
            if node.proc is not None:
                stop_process(node.proc)
        store.stop()
        nats.stop()


# -- the takeover -------------------------------------------------------------------------


class SteadySender:
    """Every series once a second, as one Arrow body with an Idempotency-Key, posted to the
    nodes in turn and retried on the next until one answers 200; keeps what was answered 200
    (one record per timestamp: the values, time-major, server-major within it)."""

    def __init__(self, fleet: sim.Fleet, urls: list[str]) -> None:
        self.fleet = fleet
        self.urls = urls
        self.records: list[tuple[float, np.ndarray]] = []
        self.retries = 0
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._turn = 0

    def post(self, ts: list[float], key: str) -> None:
        batch = self.fleet.at(np.asarray(ts, dtype=np.float64))
        body = sim.encode_arrow(batch)
        began = time.monotonic()
        while not self._stop.is_set():
            url = self.urls[self._turn % len(self.urls)]
            self._turn += 1
            host, port = url.removeprefix("http://").split(":")
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                conn.request(
                    "POST", "/api/v1/points", body, {"content-type": ARROW, "idempotency-key": key}
                )
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    break
            except OSError:
                pass
            self.retries += 1
            time.sleep(0.05)
        else:
            return
        self.slowest = max(self.slowest, time.monotonic() - began)
        values = batch.value.reshape(len(ts), -1)
        self.records.extend(zip(ts, values, strict=True))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        t = int(time.time())
        while not self._stop.is_set():
            delay = t + 1 - time.time()  # a second's points are sent once it is over
            if delay > 0:
                time.sleep(delay)
            self.post([float(t)], f"steady-{t}")
            t += 1


def q1_complete(url: str, sender: SteadySender, server: int, start: int, step: int = 60) -> bool:
    """Q1 of ``server`` from ``url`` is whole (not partial) and equals numpy over the first
    ``k`` records answered 200, for a ``k`` between the counts before and after the GET."""
    m = sender.fleet.metrics
    before = len(sender.records)
    try:
        r = httpx.get(
            f"{url}/api/v1/servers/{sender.fleet.server_names[server]}/series",
            params={"start": start, "end": int(time.time()) + 120, "step": step},
            timeout=10,
        )
    except httpx.HTTPError:
        return False
    after = len(sender.records)
    if r.status_code != 200 or r.headers.get("x-minutely-partial") == "true":
        return False
    data = r.json()
    if data.get("partial"):
        return False
    total = sum(sum(c for c in s["count"] if c) for s in data["series"])
    if total % m or not before <= total // m <= after:
        return False
    k = total // m
    recs = sender.records[:k]
    ts = np.array([t for t, _ in recs])
    vals = np.stack([v[server * m : (server + 1) * m] for _, v in recs])  # (k, m)
    buckets = (ts // step * step).astype(np.int64)
    cut = np.flatnonzero(np.diff(buckets)) + 1
    starts = np.concatenate([[0], cut])
    want_ts = buckets[starts]
    counts = np.diff(np.concatenate([starts, [k]]))
    vmin = np.minimum.reduceat(vals, starts, axis=0)
    vmax = np.maximum.reduceat(vals, starts, axis=0)
    vsum = np.add.reduceat(vals, starts, axis=0)
    stamps = np.asarray(data["timestamps"], dtype=np.int64)
    where = np.searchsorted(stamps, want_ts)
    if np.any(where >= stamps.shape[0]):
        return False
    if np.any(stamps[where] != want_ts):
        return False
    by_metric = {s["metric"]: s for s in data["series"]}
    if len(by_metric) != m:
        return False
    for j, name in enumerate(sender.fleet.metric_names.tolist()):
        s = by_metric.get(name)
        if s is None:
            return False
        got = np.asarray([c or 0 for c in s["count"]])
        expect = np.zeros(stamps.shape[0], np.int64)
        expect[where] = counts
        if not np.array_equal(got, expect):
            return False
        mins = np.asarray([s["min"][i] for i in where], dtype=np.float64)
        maxs = np.asarray([s["max"][i] for i in where], dtype=np.float64)
        avgs = np.asarray([s["avg"][i] for i in where], dtype=np.float64)
        if not (np.array_equal(mins, vmin[:, j]) and np.array_equal(maxs, vmax[:, j])):
            return False
        if not np.allclose(avgs, vsum[:, j] / counts, rtol=1e-12, atol=0):
            return False
    return True


def owner_of(nodes: list[Node], key: str, ready_only: bool = True) -> str | None:
    """The node named as ``key``'s owner: its ready shard, else the lease in cluster status."""
    for n in nodes:
        try:
            st = status(n)
        except httpx.HTTPError:
            continue
        if ready_only:
            if any(s["key"] == key and s["state"] == "ready" for s in st["shards"]):
                return n.name
        else:
            for p in st["cluster"]["partitions"]:
                if p["key"] == key and p["owner"]:
                    return str(p["owner"])
    return None


def takeover(args: argparse.Namespace) -> None:
    fleet = sim.Fleet(args.servers, args.metrics, seed=5)
    print(
        f"takeover: 3 nodes, 3 nats-server (R=3), stand-in store; {args.servers} x "
        f"{args.metrics} series at 1 Hz as Arrow with Idempotency-Key retries; "
        f"{args.backfill} min of history; {PARTITIONS} partitions, lease {LEASE_TTL}, "
        f"checkpoint every 5 s, 2-day window; poll every {args.poll * 1000:.0f} ms"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, cluster(Path(tmp), 3) as c:
        urls = [n.url for n in c.nodes]
        sender = SteadySender(fleet, urls)
        now = int(time.time()) // 60 * 60
        t_start = now - args.backfill * 60
        for k in range(args.backfill):  # one point per series-minute, a body per 10 minutes
            if k % 10 == 0:
                ts = [float(t_start + 60 * j) for j in range(k, min(k + 10, args.backfill))]
                sender.post(ts, f"backfill-{k}")
        sender.start()
        rows: list[dict[str, Any]] = []
        for run in range(args.runs):
            server = (run * 13 + 3) % args.servers
            name = fleet.server_names[server]
            p = int(partition_of(np.asarray([name], dtype=object), PARTITIONS)[0])
            key = f"s.{p}"
            steady_began = time.monotonic()
            while not all(q1_complete(n.url, sender, server, t_start - 60) for n in c.live()):
                if time.monotonic() - steady_began > 120:
                    raise RuntimeError(f"Q1 of {name} never complete before the kill")
                time.sleep(0.2)
            owner = owner_of(c.live(), key)
            victim = next(n for n in c.nodes if n.name == owner)
            held = [s["key"] for s in status(victim)["shards"]]
            assert victim.proc is not None
            victim.proc.kill()
            victim.proc.wait()
            killed = time.monotonic()
            got: dict[str, float] = {}
            shard: dict[str, Any] = {}
            while len(got) < 4 and time.monotonic() - killed < args.timeout:
                tick = time.monotonic()
                live = c.live()
                if "lease" not in got:
                    o = owner_of(live, key, ready_only=False)
                    if o is not None and o != victim.name:
                        got["lease"] = time.monotonic() - killed
                if "ready" not in got or "all" not in got:
                    ready = {}
                    for n in live:
                        with contextlib.suppress(httpx.HTTPError):
                            for s in status(n)["shards"]:
                                if s["state"] == "ready":
                                    ready[s["key"]] = n.name
                                    if s["key"] == key and not shard:
                                        shard = {"node": n.name, **s}
                    if key in ready and "ready" not in got:
                        got["ready"] = time.monotonic() - killed
                    if len(ready) == 2 * PARTITIONS and "all" not in got:
                        got["all"] = time.monotonic() - killed
                if "q1" not in got and all(
                    q1_complete(n.url, sender, server, t_start - 60) for n in live
                ):
                    got["q1"] = time.monotonic() - killed
                time.sleep(max(0.0, args.poll - (time.monotonic() - tick)))
            row = {
                "run": run + 1,
                "server": name,
                "key": key,
                "victim": victim.name,
                "victim_keys": len(held),
                **{k: got.get(k) for k in ("lease", "q1", "ready", "all")},
                "taker": shard.get("node"),
                "opened_in": shard.get("opened_in"),
                "rebuilt_cells": shard.get("rebuilt_cells"),
                "series": shard.get("series"),
            }
            rows.append(row)
            print(f"run {run + 1}: {row}", flush=True)
            victim.proc = None
            back = c.start_node(victim)
            settled = c.wait_settled(victim)
            print(
                f"  {victim.name} restarted: healthy in {back:.1f} s, settled {settled:.1f} s later"
            )
        sender.stop()
        print(
            f"sender: {len(sender.records)} records answered 200, {sender.retries} retries, "
            f"slowest request {sender.slowest:.1f} s"
        )
    print(
        "\n| run | server (partition) | killed (its shards) | (a) lease taken | (b) Q1 complete "
        "on every node | (c) shard ready on | (d) all partitions ready | opened_in | "
        "rebuilt cells |\n|---|---|---|---|---|---|---|---|---|"
    )
    fmt = lambda v: "—" if v is None else f"{v:.1f} s"  # noqa: E731
    for r in rows:
        print(
            f"| {r['run']} | {r['server']} ({r['key']}) | {r['victim']} ({r['victim_keys']}) | "
            f"{fmt(r['lease'])} | {fmt(r['q1'])} | {fmt(r['ready'])} ({r['taker']}) | "
            f"{fmt(r['all'])} | {fmt(r['opened_in'])} | {r['rebuilt_cells']} |"
        )
    for k in ("lease", "q1", "ready", "all", "opened_in"):
        vals = [r[k] for r in rows if r[k] is not None]
        if vals:
            print(
                f"median {k}: {statistics.median(vals):.1f} s over {len(vals)} runs "
                f"(runs {', '.join(f'{v:.1f}' for v in vals)})"
            )


# -- memory and CPU -----------------------------------------------------------------------


def send_through(urls: list[str], bodies: list[bytes]) -> int:
    """Each body posted once, the bodies spread over ``urls`` (a thread per node)."""
    accepted = [0] * len(urls)

    def worker(k: int) -> None:
        host, port = urls[k].removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        for body in bodies[k :: len(urls)]:
            while True:
                conn.request("POST", "/api/v1/points", body, {"content-type": ARROW})
                resp = conn.getresponse()
                answer = resp.read()
                if resp.status == 200:
                    import orjson

                    accepted[k] += orjson.loads(answer)["accepted"]
                    break
                assert resp.status in (429, 503), answer
                time.sleep(float(resp.getheader("retry-after", "1")))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(accepted)


def drained(nodes: list[Node]) -> bool:
    """Every message of both copies folded and acked (checkpointed). Per-shard counters
    are not used: they start again at 0 when a shard is retaken."""
    try:
        parts = status(nodes[0], timeout=120)["cluster"]["partitions"]
    except httpx.HTTPError:
        return False
    return all(p.get("backlog_messages") == 0 and p["owner"] for p in parts)


def lost_leases(nodes: list[Node]) -> int:
    return sum(n.log.read_text(errors="replace").count(" is lost (") for n in nodes)


def footprint(args: argparse.Namespace) -> None:
    fleet = sim.Fleet(args.servers, args.metrics, seed=7)
    now = int(time.time()) // 60 * 60
    t0 = now - args.history * 60
    per_body = max(1, 1_000_000 // len(fleet))  # ~1 M points a body
    bodies = [
        sim.encode_arrow(fleet.at(np.arange(t, min(t + per_body * 60, now), 60, dtype=np.float64)))
        for t in range(t0, now, per_body * 60)
    ]
    points = len(fleet) * args.history
    print(
        f"footprint: {args.servers} x {args.metrics} = {len(fleet):,} series x {args.history} "
        f"min at one point per series-minute = {points:,} points in {len(bodies)} Arrow bodies, "
        f"sent through every node; {PARTITIONS} partitions, 2-day window"
    )
    results = {}
    for n_nodes in args.nodes:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp, cluster(Path(tmp), n_nodes) as c:
            time.sleep(2)
            pids = {n.name: n.proc.pid for n in c.nodes if n.proc}
            others = {f"nats-{i}": c.nats.pid(i) for i in range(3)} | {"store": c.store.pid}
            idle = {k: rss_bytes(p) for k, p in pids.items()}
            cpu0 = {k: cpu_seconds(p) for k, p in (pids | others).items() if p}
            began = time.monotonic()
            assert send_through([n.url for n in c.nodes], bodies) == points
            sent = time.monotonic() - began
            slowest_status = 0.0
            while True:
                asked = time.monotonic()
                done = drained(c.nodes)
                slowest_status = max(slowest_status, time.monotonic() - asked)
                if done:
                    break
                time.sleep(0.5)
            took = time.monotonic() - began
            cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in (pids | others).items() if p}
            time.sleep(args.settle)  # a checkpoint and the seals of closed hours
            rss = {k: rss_bytes(p) for k, p in pids.items()}
            ring = {n.name: status(n, 120)["hot"]["bytes"] for n in c.nodes}
            shards = {n.name: len(status(n, 120)["shards"]) for n in c.nodes}
            results[n_nodes] = (idle, rss, ring, cpu, shards)
            mib = lambda b: f"{b / 2**20:,.0f} MiB"  # noqa: E731
            print(
                f"\n{n_nodes} node(s): sent in {sent:.1f} s, both copies folded in {took:.1f} s "
                f"({points / took / 1e6:.2f} M points/s, acked); slowest status answer "
                f"{slowest_status:.1f} s; shards lost for want of a lease renewal: "
                f"{lost_leases(c.nodes)}"
            )
            for k in pids:
                print(
                    f"  {k}: shards {shards[k]}, RSS idle {mib(idle[k])}, after {mib(rss[k])}, "
                    f"ring {mib(ring[k])}, CPU {cpu[k]:.1f} s = "
                    f"{cpu[k] / (points / 1e6):.2f} s per M points"
                )
            for k in others:
                print(f"  {k}: CPU {cpu[k]:.1f} s = {cpu[k] / (points / 1e6):.2f} s per M points")
    if 1 in results and 3 in results:
        one = max(results[1][1].values())
        three = max(results[3][1].values())
        print(
            f"\nlargest node RSS: 1 node {one / 2**20:,.0f} MiB, 3 nodes {three / 2**20:,.0f} MiB"
            f" = {three / one:.2f}x"
        )


# -- bus bytes ----------------------------------------------------------------------------


def stream_bytes(nats: NatsCluster) -> dict[str, tuple[int, int]]:
    """Stream name -> (messages, bytes) as one replica holds them."""
    out: dict[str, tuple[int, int]] = {}
    for i in nats.running():
        jsz = nats.servers[i].jsz(streams="true") or {}
        for account in jsz.get("account_details") or []:
            for d in account.get("stream_detail") or []:
                st = d.get("state") or {}
                out[d["name"]] = (int(st.get("messages", 0)), int(st.get("bytes", 0)))
        if out:
            return out
    return out


def partial_bytes(fleet: sim.Fleet, minute: int) -> tuple[int, int]:
    """One minute of the fleet as minute partials (ids, minute, min, max, sum, count) in Arrow:
    plain and with zstd buffers."""
    batch = fleet.batch(minute, 60)
    n = len(fleet)
    vals = batch.value.reshape(60, n)
    table = pa.table({
        "server": pa.array(np.repeat(np.arange(fleet.servers, dtype=np.uint32), fleet.metrics)),
        "metric": pa.array(np.tile(np.arange(fleet.metrics, dtype=np.uint32), fleet.servers)),
        "minute": pa.array(np.full(n, minute // 60, np.int32)),
        "min": pa.array(vals.min(0)), "max": pa.array(vals.max(0)), "sum": pa.array(vals.sum(0)),
        "count": pa.array(np.full(n, 60, np.uint32)),
    })  # fmt: skip
    sizes = []
    for compression in (None, "zstd"):
        sink = pa.BufferOutputStream()
        opts = pa.ipc.IpcWriteOptions(compression=compression)
        with pa.ipc.new_stream(sink, table.schema, options=opts) as w:
            w.write_table(table)
        sizes.append(sink.getvalue().size)
    return sizes[0], sizes[1]


def bus(args: argparse.Namespace) -> None:
    fleet = sim.Fleet(args.servers, args.metrics, seed=5)
    t0 = int(time.time()) // 60 * 60 - 600
    seconds = args.seconds
    points = len(fleet) * seconds
    print(
        f"bus: {len(fleet):,} series x {seconds} s at 1 Hz = {points:,} points, "
        f"{args.per_body} s a batch, published to both copies ({PARTITIONS} partitions, R=3)"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        nats = NatsCluster(Path(tmp) / "nats", size=3)
        nats.start(timeout=60)
        try:
            kw: dict[str, Any] = {"partitions": PARTITIONS, "replicas": 3}
            copies = TwoCopies(
                NatsBus(nats.urls, **kw),
                NatsBus(nats.urls, stream=METRIC_STREAM, subjects=METRIC_SUBJECTS,
                        group=METRIC_GROUP, **kw),
            )  # fmt: skip
            copies.open()
            bodies = 0

            async def publish() -> None:
                nonlocal bodies
                for t in range(t0, t0 + seconds, args.per_body):
                    batch = fleet.batch(t, min(args.per_body, t0 + seconds - t))
                    bodies += len(sim.encode_arrow(batch))
                    await copies.publish(batch, f"k-{t}")

            began = time.monotonic()
            asyncio.run(publish())
            took = time.monotonic() - began
            time.sleep(1)
            streams = stream_bytes(nats)
            asyncio.run(copies.close())
        finally:
            nats.stop()
    by_server = sum(b for k, (_, b) in streams.items() if not k.startswith(f"{METRIC_STREAM}_"))
    by_metric = sum(b for k, (_, b) in streams.items() if k.startswith(f"{METRIC_STREAM}_"))
    msgs = sum(m for m, _ in streams.values())
    print(
        f"published in {took:.1f} s ({points / took / 1e6:.2f} M points/s, both copies); "
        f"{msgs} messages in {len(streams)} streams"
    )
    print(f"| Arrow request bodies | {bodies / points:.2f} B a point |")
    print(f"| by-server copy (MINUTELY_<p>), one replica | {by_server / points:.2f} B a point |")
    print(f"| by-metric copy (MINUTELY_M_<p>), one replica | {by_metric / points:.2f} B a point |")
    print(
        f"| both copies, one replica | {(by_server + by_metric) / points:.2f} B a point; "
        f"x3 replicas on the brokers' disks: {3 * (by_server + by_metric) / points:.2f} B |"
    )
    plain, zstd = partial_bytes(fleet, t0)
    raw_minute = by_server / points * 60
    print(
        f"| one series-minute as a minute partial, Arrow | {plain / len(fleet):.2f} B "
        f"(zstd buffers {zstd / len(fleet):.2f} B) against {raw_minute:.1f} B of the raw "
        f"copy's 60 points at 1 Hz: {plain / len(fleet) / raw_minute:.3f}x |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    t = sub.add_parser("takeover")
    t.add_argument("--runs", type=int, default=3)
    t.add_argument("--servers", type=int, default=40)
    t.add_argument("--metrics", type=int, default=50)
    t.add_argument("--backfill", type=int, default=30, help="minutes of history first")
    t.add_argument("--poll", type=float, default=0.1)
    t.add_argument("--timeout", type=float, default=120.0)
    f = sub.add_parser("footprint")
    f.add_argument("--servers", type=int, default=200)
    f.add_argument("--metrics", type=int, default=500)
    f.add_argument("--history", type=int, default=120, help="minutes, one point a series-minute")
    f.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    f.add_argument("--settle", type=float, default=8.0)
    b = sub.add_parser("bus")
    b.add_argument("--servers", type=int, default=40)
    b.add_argument("--metrics", type=int, default=50)
    b.add_argument("--seconds", type=int, default=60)
    b.add_argument("--per-body", type=int, default=1, help="seconds of the fleet a batch")
    for p in (t, f, b):
        p.add_argument("--dir", default=None, help="where the temporary directories go")
    args = ap.parse_args()
    {"takeover": takeover, "footprint": footprint, "bus": bus}[args.part](args)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
