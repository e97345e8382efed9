"""Overload against a real ``minutely serve`` (the default store, the embedded bus): several
sender processes offer at least three times what the server was measured to take, for 60 s,
while hundreds of idle and trickling connections are held open.

Every answer must be 200, 429 or 503 with ``Retry-After``; the server's RSS stays under
``RSS_BOUND`` (its bus holds at most ``bus_max_bytes`` of points: the accept window);
``/healthz`` keeps answering; and afterwards every point answered 200 is in the answers, counted
and summed exactly against numpy over the bodies that were accepted."""

from __future__ import annotations

import multiprocessing as mp
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pytest

from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow

SENDERS = 8
THREADS = 2  # requests in flight per sender
SECONDS = 60.0
#: the bus's bound on uncommitted points, set low so the accept window fills within seconds
BUS_MAX_BYTES = "128MB"
#: offered load over capacity that must be reached (the issue's 3)
OVERLOAD = 3.0
#: the slowest /healthz allowed while overloaded: the 100 ms bound is test_connections.py's,
#: without the overload; here the server shares 2 cores with its senders
HEALTHZ_BOUND = 5.0
#: the server's resident memory may not pass the issue's 2 GB (2 GiB): the bus and the
#: writer hold at most BUS_MAX_BYTES each (the writer more by what the bus hands it after it
#: fills), the store's inserts a block of rows at a time, the bodies in flight at most
#: max_inflight_body_bytes (docs/performance.md, Overload, has where the peak goes)
RSS_BOUND = 2 << 30
SERVERS, METRICS, MINUTES = 20, 250, 10  # each body: 50,000 points, one a series-minute
PER_BODY = SERVERS * METRICS * MINUTES
BODIES = 4  # distinct bodies a sender cycles through (other minutes, other values)


def body(sender: int, k: int, start: int) -> tuple[bytes, dict[str, Any]]:
    """An Arrow body of sender ``sender``'s ``k``-th kind, and its points as numpy columns.
    Values are whole numbers, so every sum is exact in float64 whatever the order."""
    rng = np.random.default_rng(sender * 100 + k)
    n = SERVERS * METRICS * MINUTES
    server = np.repeat([f"ov{sender}-s{i:02d}" for i in range(SERVERS)], METRICS * MINUTES)
    metric = np.tile(np.repeat([f"m{j:03d}" for j in range(METRICS)], MINUTES), SERVERS)
    ts = np.tile(start + 60 * (k * MINUTES + np.arange(MINUTES)), SERVERS * METRICS) + 7
    value = rng.integers(-1000, 1000, n).astype(np.float64)
    table = pa.table({"server": server, "metric": metric, "ts": ts, "value": value})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes(), {"server": server, "metric": metric, "value": value}


def send(url: str, sender: int, start: int, seconds: float, threads: int) -> dict[str, Any]:
    """Post this sender's bodies back to back from ``threads`` threads for ``seconds``: the
    answers by status, 200s by body, and any answer that breaks the rules."""
    bodies = [body(sender, k, start)[0] for k in range(BODIES)]
    statuses: Counter[int] = Counter()
    accepted: Counter[int] = Counter()
    bad: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(t: int) -> None:
        headers = {"content-type": "application/vnd.apache.arrow.stream"}
        with httpx.Client(base_url=url, timeout=60) as client:
            i = t
            while time.monotonic() < deadline:
                k = i % BODIES
                i += 1
                try:
                    r = client.post("/api/v1/points", content=bodies[k], headers=headers)
                except httpx.HTTPError as e:
                    with lock:
                        bad.append(f"{type(e).__name__}: {e}")
                    continue
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        if r.json()["rejected"]:
                            bad.append(f"200 with rejected points: {r.text[:300]}")
                        accepted[k] += 1
                    elif r.status_code not in (429, 503) or not r.headers.get("retry-after"):
                        bad.append(f"{r.status_code}: {r.headers} {r.text[:300]}")
                    else:
                        time.sleep(0.01)  # a client that honours Retry-After a little

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for p in pool:
        p.start()
    for p in pool:
        p.join()
    return {"statuses": dict(statuses), "accepted": dict(accepted), "bad": bad}


def _sender_main(url: str, sender: int, start: int, out: Any) -> None:
    out.put((sender, send(url, sender, start, SECONDS, THREADS)))


def folded_points(server: Server) -> int:
    return int(httpx.get(f"{server.url}/api/v1/status", timeout=30).json()["aggregator"]["points"])


class Watch:
    """The server's RSS and ``/healthz`` latency, sampled on a thread while it runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.rss: list[int] = []
        self.healthz: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        proc = psutil.Process(self.server.proc.pid)
        host, port = self.server.url.removeprefix("http://").split(":")
        while not self.stop.is_set():
            self.rss.append(proc.memory_info().rss)
            began = time.perf_counter()
            try:
                with socket.create_connection((host, int(port)), timeout=10) as s:
                    s.sendall(
                        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                    )
                    s.settimeout(10)
                    answer = s.recv(100)
                if not answer.startswith(b"HTTP/1.1 200"):
                    self.failures.append(repr(answer[:100]))
            except OSError as e:
                self.failures.append(f"{type(e).__name__}: {e}")
            self.healthz.append(time.perf_counter() - began)
            time.sleep(0.25)


def hold_connections(
    server: Server, idle: int, slow: int, stop: threading.Event
) -> threading.Thread:
    """``idle`` sockets that send nothing and ``slow`` ones trickling a header, reopened as the
    server closes them (its header timeout), until ``stop``."""
    host, port = server.url.removeprefix("http://").split(":")
    addr = (host, int(port))

    def run() -> None:
        socks: list[tuple[socket.socket, bool]] = []
        while not stop.is_set():
            alive = []
            for s, trickling in socks:
                try:
                    if trickling:
                        s.sendall(b"a")
                    alive.append((s, trickling))
                except OSError:
                    s.close()
            socks = alive
            while sum(1 for _, t in socks if not t) < idle:
                socks.append((socket.create_connection(addr), False))
            while sum(1 for _, t in socks if t) < slow:
                s = socket.create_connection(addr)
                s.sendall(b"POST /api/v1/points HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                socks.append((s, True))
            stop.wait(0.2)
        for s, _ in socks:
            s.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_overload_answers_every_request_bounds_memory_and_loses_nothing(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        "--hot-window",
        "6h",
        env={"MINUTELY_BUS_MAX_BYTES": BUS_MAX_BYTES, "MINUTELY_WRITER_MAX_BYTES": BUS_MAX_BYTES},
    )
    try:
        start = (int(time.time()) // 60 - 60) * 60  # an hour back: inside every window
        # capacity: what the server takes in and folds, in points/s, from one sender sending one
        # request at a time for 10 s, and from all of them during the overload: the larger
        began, folded = time.monotonic(), folded_points(server)
        alone = send(server.url, 99, start, 10.0, 1)
        server.wait_folded(sum(alone["accepted"].values()) * PER_BODY, timeout=120)
        capacity = (folded_points(server) - folded) / (time.monotonic() - began)
        assert not alone["bad"]

        watch = Watch(server)
        watch.thread.start()
        stop_holding = threading.Event()
        holder = hold_connections(server, idle=200, slow=100, stop=stop_holding)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_sender_main, args=(server.url, i, start, out))
            for i in range(SENDERS)
        ]
        began, folded = time.monotonic(), folded_points(server)
        for p in procs:
            p.start()
        results = dict(out.get(timeout=SECONDS + 120) for _ in procs)
        took = time.monotonic() - began
        capacity = max(capacity, (folded_points(server) - folded) / took)
        for p in procs:
            p.join(10)
        stop_holding.set()
        holder.join()
        watch.stop.set()
        watch.thread.join()

        statuses: Counter[int] = Counter()
        for r in results.values():
            statuses.update({int(k): v for k, v in r["statuses"].items()})
            assert not r["bad"], r["bad"][:5]
        offered = sum(statuses.values()) * PER_BODY / took
        print(  # the figures, for docs/performance.md
            f"capacity {capacity:,.0f} points/s; offered {offered:,.0f}"
            f" ({offered / capacity:.1f}x);"
            f" answers {dict(statuses)}; max RSS {max(watch.rss) / 2**20:,.0f} MiB;"
            f" /healthz max {max(watch.healthz) * 1000:,.0f} ms"
        )
        assert offered >= OVERLOAD * capacity
        assert statuses[429] + statuses[503] > 0  # it was overloaded
        assert max(watch.rss) < RSS_BOUND
        assert not watch.failures, watch.failures[:5]
        assert max(watch.healthz) < HEALTHZ_BOUND

        # every accepted point is in the answers: counts and sums per series, exactly
        accepted = {s: r["accepted"] for s, r in results.items()}
        points = sum(n for a in accepted.values() for n in a.values()) * PER_BODY
        points += sum(alone["accepted"].values()) * PER_BODY
        status = server.wait_folded(points, timeout=120)
        assert status["aggregator"]["points"] == points  # type: ignore[index]
        for sender in [*range(SENDERS), 99]:
            times = accepted.get(sender, alone["accepted"] if sender == 99 else {})
            count: Counter[tuple[str, str]] = Counter()
            total: dict[tuple[str, str], float] = {}
            for k in range(BODIES):
                n = times.get(k, 0)
                _, cols = body(sender, k, start)
                keys = np.char.add(np.char.add(cols["server"], "|"), cols["metric"])
                uniq, inverse = np.unique(keys, return_inverse=True)
                sums = np.bincount(inverse, weights=cols["value"]) * n
                for key, s in zip(uniq.tolist(), sums.tolist(), strict=True):
                    srv, met = key.split("|")
                    count[(srv, met)] += n * MINUTES
                    total[(srv, met)] = total.get((srv, met), 0.0) + s
            for i in range(SERVERS):
                name = f"ov{sender}-s{i:02d}"
                resp = httpx.get(
                    f"{server.url}/api/v1/servers/{name}/series",
                    params={
                        "start": start,
                        "end": start + 60 * BODIES * MINUTES,
                        "step": 60 * BODIES * MINUTES,
                        "fields": "sum,count",
                    },
                    timeout=60,
                )
                assert resp.status_code == 200, resp.text
                # the buckets are aligned to the step, so the range may span two of them
                got = {
                    s["metric"]: (sum(s["count"]), sum(x or 0.0 for x in s["sum"]))
                    for s in resp.json()["series"]
                }
                for j in range(METRICS):
                    key = (name, f"m{j:03d}")
                    want = (count.get(key, 0), total.get(key, 0.0))
                    assert got.get(key[1], (0, 0.0)) == want, (key, got.get(key[1]), want)
    finally:
        stop_server(server)
