"""End-to-end pipeline benchmark: ingest throughput (Arrow and JSON) and the four queries.

Runs a real ``minutely serve`` process and a sender in this process, both on this machine,
and measures from the first byte sent until the last point is queryable (the aggregator has
folded it). Workload: ``--servers`` × ``--metrics`` series at 1 Hz for ``--minutes`` minutes,
sent by ``--senders`` concurrent connections in ~1M-point Arrow bodies, time-ordered.

Two senders are measured on the same bodies: minutely's own (``sim.send``, httpx on asyncio)
and a lean agent (two threads with a keep-alive ``http.client`` connection each), since the
client shares the 2 cores with the server. Baseline, measured in the same run: the same bodies
decoded, published and folded in-process (no HTTP, no second process). Counters: the fleet's
counter metrics are folded as increases once declared (``kinds.py``); each run measures the
lean sender and the in-process fold with them declared too, beside the same without.

    python bench/bench_pipeline.py                     # 100 x 500 x 10 min = 30M points
    python bench/bench_pipeline.py --runs 3 --json-points 2000000

Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minutely import sim
from minutely.config import Settings
from minutely.ingest import decode
from minutely.model import ARROW_STREAM
from minutely.service import Service
from minutely.testing.processes import launch, wait_healthy

ARROW = ARROW_STREAM


def start_server(
    port: int, data_dir: str, hot_window: str, store: str = "chdb"
) -> subprocess.Popen[bytes]:
    proc = launch("serve", port, data_dir, "--hot-window", hot_window, "--store", store)
    if wait_healthy(f"http://127.0.0.1:{port}", proc):
        return proc
    proc.kill()
    raise RuntimeError("server did not start")


def folded(url: str) -> int:
    return int(httpx.get(f"{url}/api/v1/status", timeout=10).json()["aggregator"]["points"])


def wait_folded(url: str, target: int) -> float:
    while folded(url) < target:
        time.sleep(0.002)
    return time.perf_counter()


def arrow_bodies(fleet: sim.Fleet, t0: int, minutes: int, points_per_body: int) -> list[bytes]:
    seconds_per_body = max(1, points_per_body // len(fleet))
    out = []
    for t in range(t0, t0 + minutes * 60, seconds_per_body):
        n = min(seconds_per_body, t0 + minutes * 60 - t)
        out.append(sim.encode_arrow(fleet.batch(t, n)))
    return out


def json_bodies(fleet: sim.Fleet, t0: int, points: int, per_body: int) -> tuple[list[bytes], int]:
    out = []
    seconds = max(1, per_body // len(fleet))
    t = t0
    made = 0
    while made < points:
        b = fleet.batch(t, seconds)
        servers = b.server_names[b.server_codes].tolist()
        metrics = b.metric_names[b.metric_codes].tolist()
        rows = [
            {"server": s, "metric": m, "ts": ts, "value": v}
            for s, m, ts, v in zip(servers, metrics, b.ts.tolist(), b.value.tolist(), strict=True)
        ]
        out.append(orjson.dumps(rows))
        made += len(rows)
        t += seconds
    return out, made


def lean_send(url: str, bodies: list[bytes], senders: int, content_type: str) -> int:
    """A lean agent: ``senders`` threads, one keep-alive ``http.client`` connection each,
    bodies sent as they are (the kernel copies them), resent after 429/503. Returns the
    points accepted."""
    host, port = url.removeprefix("http://").split(":")
    todo: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        todo.put(body)
    accepted = [0] * senders

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        while True:
            try:
                body = todo.get_nowait()
            except queue.Empty:
                return
            while True:
                conn.request("POST", "/api/v1/points", body, {"content-type": content_type})
                resp = conn.getresponse()
                answer = resp.read()
                if resp.status == 200:
                    accepted[k] += orjson.loads(answer)["accepted"]
                    break
                assert resp.status in (429, 503), answer
                time.sleep(float(resp.getheader("retry-after", "1")))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(accepted)


def ingest_run(
    url: str,
    bodies: list[bytes],
    points: int,
    senders: int,
    content_type: str = ARROW,
    lean: bool = False,
) -> float:
    """Points/s from the first byte sent until the last point is folded."""
    before = folded(url)
    began = time.perf_counter()
    if lean:
        assert lean_send(url, bodies, senders, content_type) == points
    else:
        stats = asyncio.run(
            sim.send(url, bodies, concurrency=senders, timeout=600, content_type=content_type)
        )
        assert stats.rejected == 0, stats.errors
        assert stats.accepted == points, (stats.accepted, points)
    done = wait_folded(url, before + points)
    return points / (done - began)


def counter_names(fleet: sim.Fleet) -> list[str]:
    kinds = zip(fleet.metric_names.tolist(), fleet.metric_kinds, strict=True)
    return [str(name) for name, kind in kinds if kind is sim.Kind.COUNTER]


def in_process_baseline(
    bodies: list[bytes], points: int, now: float, counters: list[str] | None = None
) -> float:
    """Decode + publish + fold without HTTP: the core's own rate (``counters`` declared)."""
    service = Service(
        Settings(hot_window=3600 * 6, bus_max_bytes=8 << 30, store="none"), clock=lambda: now
    ).open()
    if counters:
        service.kinds.declare(dict.fromkeys(counters, "counter"))

    async def go() -> None:
        for body in bodies:
            d = decode(body, ARROW, now=now, oldest=now - 6 * 3600, max_future=300)
            await service.bus.publish(d.batch)
            while service.aggregator.drain(timeout=0):
                pass

    began = time.perf_counter()
    asyncio.run(go())
    took = time.perf_counter() - began
    assert service.aggregator.stats.points == points
    return points / took


def time_query(url: str, path: str, params: dict[str, str | int], runs: int) -> tuple[float, float]:
    """Median client-side and server-side (Server-Timing) milliseconds over ``runs`` calls."""
    client_ms, server_ms = [], []
    with httpx.Client(timeout=60) as client:
        client.get(f"{url}{path}", params=params)  # warm
        for _ in range(runs):
            began = time.perf_counter()
            r = client.get(f"{url}{path}", params=params)
            client_ms.append((time.perf_counter() - began) * 1000)
            assert r.status_code == 200, r.text
            server_ms.append(float(r.headers["server-timing"].split("dur=")[1]))
    return statistics.median(client_ms), statistics.median(server_ms)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=100)
    ap.add_argument("--metrics", type=int, default=500)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json-points", type=int, default=2_000_000)
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--store", default="chdb", help="the server's store: chdb or none")
    args = ap.parse_args()

    fleet = sim.Fleet(args.servers, args.metrics, seed=1)
    now = time.time()
    points = len(fleet) * args.minutes * 60
    print(
        f"# {os.cpu_count()} cores; {args.servers} x {args.metrics} series x "
        f"{args.minutes} min at 1 Hz = {points:,} points; {args.senders} senders",
        flush=True,
    )

    counters = counter_names(fleet)
    print(f"# {len(counters)} of {args.metrics} metrics are counters", flush=True)
    arrow_rates, lean_rates, base_rates = [], [], []
    counter_lean_rates: list[float] = []
    counter_base_rates: list[float] = []
    for run in range(args.runs):
        # each run sends a fresh range (older first) so every point is new to the server
        t0 = int(now // 60 * 60) - (args.runs - run) * (args.minutes + 1) * 60
        bodies = arrow_bodies(fleet, t0, args.minutes, 1_000_000)
        base_rates.append(in_process_baseline(bodies, points, now))
        counter_base_rates.append(in_process_baseline(bodies, points, now, counters))
        runs = ((False, arrow_rates, False), (True, lean_rates, False))
        for lean, rates, declare in (*runs, (True, counter_lean_rates, True)):
            with tempfile.TemporaryDirectory() as tmp:
                proc = start_server(args.port, tmp, "6h", args.store)
                try:
                    url = f"http://127.0.0.1:{args.port}"
                    if declare:
                        r = httpx.post(f"{url}/api/v1/kinds", json={"counter": counters})
                        assert r.status_code == 200, r.text
                    rates.append(ingest_run(url, bodies, points, args.senders, lean=lean))
                finally:
                    proc.terminate()
                    proc.wait()
        print(
            f"run {run}: arrow {arrow_rates[-1] / 1e6:.2f} M/s end to end (simulator's sender), "
            f"{lean_rates[-1] / 1e6:.2f} M/s (lean sender), in-process "
            f"{base_rates[-1] / 1e6:.2f} M/s; counters declared: lean "
            f"{counter_lean_rates[-1] / 1e6:.2f} M/s, in-process "
            f"{counter_base_rates[-1] / 1e6:.2f} M/s",
            flush=True,
        )
        del bodies

    # one server kept for JSON and the queries
    with tempfile.TemporaryDirectory() as tmp:
        url = f"http://127.0.0.1:{args.port}"
        proc = start_server(args.port, tmp, "2d", args.store)
        try:
            t0 = int(now // 60 * 60) - (args.minutes + 1) * 60
            bodies = arrow_bodies(fleet, t0, args.minutes, 1_000_000)
            ingest_run(url, bodies, points, args.senders)
            del bodies
            jt0 = int(now // 60 * 60) - 60 * 60 * 3
            jbodies, jpoints = json_bodies(fleet, jt0, args.json_points, 250_000)
            json_rates = [ingest_run(url, jbodies, jpoints, args.senders, "application/json")]
            rss = psutil.Process(proc.pid).memory_info().rss
            status = httpx.get(f"{url}/api/v1/status").json()

            server = str(fleet.server_names[7])
            metric = str(fleet.metric_names[3])
            recent = {"start": t0, "end": t0 + args.minutes * 60}
            queries = {
                f"Q1 server series ({args.metrics} metrics x {args.minutes} min, step 60)": (
                    f"/api/v1/servers/{server}/series",
                    recent,
                ),
                f"Q2 metric series ({args.servers} servers x {args.minutes} min, step 60)": (
                    f"/api/v1/metrics/{metric}/series",
                    recent,
                ),
                f"Q3 server summary ({args.metrics} metrics)": (
                    f"/api/v1/servers/{server}/summary",
                    recent,
                ),
                f"Q4 metric summary ({args.servers} servers)": (
                    f"/api/v1/metrics/{metric}/summary",
                    recent,
                ),
                f"Q1 over the default 2 days ({args.metrics} x 2,880 buckets)": (
                    f"/api/v1/servers/{server}/series",
                    {},
                ),
                f"Q2 over the default 2 days ({args.servers} x 2,880 buckets)": (
                    f"/api/v1/metrics/{metric}/series",
                    {},
                ),
            }
            timings = {k: time_query(url, p, q, 20) for k, (p, q) in queries.items()}
        finally:
            proc.terminate()
            proc.wait()

    a = statistics.median(arrow_rates)
    b = statistics.median(base_rates)
    print()
    print("| measure | result |")
    print("|---|---|")
    print(
        f"| Arrow ingest, end to end, minutely's sender (httpx), median of {args.runs} | "
        f"{a / 1e6:.2f} M points/s (runs: {', '.join(f'{r / 1e6:.2f}' for r in arrow_rates)}) |"
    )
    lean_median = statistics.median(lean_rates)
    print(
        f"| Arrow ingest, end to end, lean sender (http.client), median of {args.runs} | "
        f"{lean_median / 1e6:.2f} M points/s "
        f"(runs: {', '.join(f'{r / 1e6:.2f}' for r in lean_rates)}) |"
    )
    print(
        f"| baseline: decode + publish + fold in-process, no HTTP (median) | {b / 1e6:.2f} M "
        f"points/s; end to end is {a / b:.2f}x of it |"
    )
    cl = statistics.median(counter_lean_rates)
    cb = statistics.median(counter_base_rates)
    print(
        f"| the same with the fleet's {len(counters)} counter metrics declared (folded as "
        f"increases): lean sender; in-process (medians) | {cl / 1e6:.2f} M points/s "
        f"({cl / lean_median:.2f}x); {cb / 1e6:.2f} M points/s ({cb / b:.2f}x) |"
    )
    print(
        f"| JSON ingest, end to end ({jpoints:,} points) | "
        f"{statistics.median(json_rates) / 1e6:.2f} M points/s |"
    )
    for k, (c, s) in timings.items():
        print(f"| {k}, median of 20 | client {c:.2f} ms, server {s:.2f} ms |")
    store = status.get("store")
    if store and store["seconds"] > 0:
        rate = store["rows"] / store["seconds"]
        print(
            f"| store writes during that ingest | {store['rows']:,} minute-rows in "
            f"{store['inserts']} inserts, {rate:,.0f} rows/s of insert time = "
            f"{rate * 60 / 2e6:.1f}x the seed's 2M rows/min |"
        )
    hot = status["hot"]
    print(
        f"| hot ring | {status['series']:,} series, {hot['window_minutes']} minutes, "
        f"{hot['bytes_per_series_minute']} B per series-minute, "
        f"{hot['bytes'] / 2**20:.0f} MiB; server RSS {rss / 2**20:.0f} MiB |"
    )


if __name__ == "__main__":
    main()
