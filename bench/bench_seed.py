"""The seed's fleet on one box: 1,000 servers x 2,000 metrics (2M series).

Phase 1, queries at full size: ``--history`` minutes of every series, then Q1-Q4 (median of
20, client and server side) and the ring's memory. With a store (``--history-from store``, the
default) the history is made in the store first (``seed_history.py``: minute partials of 60
points each, made by the engine in bulk) and the server loads its hot window from it as a
restart does; the start-up's seconds, CPU and peak RSS are figures. Without one (``ingest``)
it is sent through ingest at one point per series per minute.

Q1 is also timed as a program reads it, JSON against Arrow in the same run (runs alternate):
the GET plus turning the body into data (``orjson.loads`` / ``pyarrow.ipc`` into a table), the
median of 20 each and their ratio.

Phase 2, real time: ``minutely simulate`` sends the whole fleet at 1 Hz (2M points/s) for
``--live`` seconds; we sample the server's CPU share and how far behind real time the newest
folded minute is, and sample where the server's memory goes (its RSS and the part of it mapped
from files, the ring's own report, the registry's index, the bus's backlog, the store writer's
queue and the storage engine's allocator; what none of them names is "other"). ``--live 0``
skips it.

The server runs with the default store (chDB) unless ``--store none``. A watchdog kills it
when its RSS passes ``--max-rss`` GiB (default 16: the machine is shared), and the run then
says so.

    python bench/bench_seed.py                       # 2 h of history, 5 min live
    python bench/bench_seed.py --window 12h --history 720 --live 180
    python bench/bench_seed.py --servers 100 --live 0   # Q1 at the seed's size, ~1 GiB ring

The hot window is ``--window`` (default 3h): 2 days for 2M series would need ~161 GB; the
ring's memory grows with the minutes it holds, so a longer window costs only what the run
fills.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
import orjson
import psutil
import pyarrow as pa

from minutely import sim
from minutely.model import ARROW_STREAM

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

from bench_pipeline import time_query, wait_folded  # noqa: E402

from minutely.testing.processes import launch, wait_healthy  # noqa: E402

ARROW = ARROW_STREAM


def time_formats(
    url: str, path: str, params: dict[str, int], runs: int
) -> dict[str, tuple[float, float, int]]:
    """Client-side ms until the answer is data (GET + parse), server-side ms and bytes, per
    format: median of ``runs``, JSON and Arrow alternating so both see the same load."""
    client_ms: dict[str, list[float]] = {"json": [], "arrow": []}
    server_ms: dict[str, list[float]] = {"json": [], "arrow": []}
    size = {}
    with httpx.Client(timeout=60) as client:
        for i in range(runs + 1):
            for fmt in ("json", "arrow"):
                began = time.perf_counter()
                r = client.get(
                    f"{url}{path}",
                    params=params,
                    headers={"accept": ARROW} if fmt == "arrow" else {},
                )
                if fmt == "json":
                    data = orjson.loads(r.content)
                    rows = len(data["series"]) * len(data["timestamps"])
                else:
                    table = pa.ipc.open_stream(r.content).read_all()
                    rows = table.num_rows
                took = (time.perf_counter() - began) * 1000
                assert r.status_code == 200 and rows > 0, r.text
                if i:  # the first round warms up
                    client_ms[fmt].append(took)
                    server_ms[fmt].append(float(r.headers["server-timing"].split("dur=")[1]))
                size[fmt] = len(r.content)
    return {
        f: (statistics.median(client_ms[f]), statistics.median(server_ms[f]), size[f])
        for f in client_ms
    }


def start_server(
    port: int, data_dir: str, window: str, store: str, series: int
) -> subprocess.Popen[bytes]:
    """``minutely serve`` taking ``series`` series (``max_series``: the default, derived from
    ``series_memory``, holds fewer at a long window); ``wait_started`` waits for it."""
    return launch(
        "serve",
        port,
        data_dir,
        "--hot-window",
        window,
        "--store",
        store,
        env={"MINUTELY_MAX_SERIES": str(series)},
    )


def wait_started(proc: subprocess.Popen[bytes], port: int, timeout: float) -> float:
    """Seconds until ``proc`` answers: a start with the store loads the hot window from it
    first, which at the seed's size takes minutes, not the 30 s ``bench_pipeline`` waits."""
    began = time.perf_counter()
    if wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=timeout):
        return time.perf_counter() - began
    proc.kill()
    raise RuntimeError("server did not start")


def fill_store(data_dir: str, args: argparse.Namespace, first: int, minutes: int) -> None:
    """``seed_history.py`` in a process of its own (the embedded engine is one per process
    and the server opens the same directory next)."""
    subprocess.run(
        [
            sys.executable,
            os.path.join(BENCH_DIR, "seed_history.py"),
            data_dir,
            "--servers",
            str(args.servers),
            "--metrics",
            str(args.metrics),
            "--minutes",
            str(minutes),
            "--first",
            str(first),
        ],
        check=True,
    )


def history_bodies(fleet: sim.Fleet, first_minute: int, minutes: int):  # type: ignore[no-untyped-def]
    for m in range(first_minute, first_minute + minutes):
        yield sim.encode_arrow(fleet.batch(m * 60 + 30, 1))


class Watchdog:
    """Kills ``proc`` when its RSS passes ``limit`` bytes; keeps the highest RSS seen."""

    def __init__(self, proc: subprocess.Popen[bytes], limit: int) -> None:
        self.proc = proc
        self.limit = limit
        self.peak = 0
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        server = psutil.Process(self.proc.pid)
        while not self._stop.wait(0.2):
            try:
                rss = server.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            if rss > self.limit:
                self.killed = True
                self.proc.kill()
                return


def memory_sample(url: str, server: psutil.Process) -> dict[str, int]:
    """Where the server's memory is: its RSS (and the part mapped from files: the engine's
    code), the ring's own report, the registry's index, the bus's backlog, the writer's
    queue and the storage engine's allocator (or its tracker)."""
    status = httpx.get(f"{url}/api/v1/status", timeout=30).json()
    store = status.get("store") or {}
    info = server.memory_info()
    return {
        "rss": info.rss,
        "file": getattr(info, "shared", 0),
        "hot": status["hot"]["bytes"],
        "index": status["hot"].get("memory", {}).get("index", 0),
        "bus": sum(p["backlog_bytes"] for p in status.get("bus", [])),
        "writer_pending": store.get("pending_bytes", 0),
        "engine": (status.get("store_memory") or {}).get("tracked", 0),
        "allocator": (status.get("store_memory") or {}).get("allocator_resident", 0),
    }


def memory_row(m: dict[str, int]) -> str:
    """A memory sample as a table cell, in MiB. The engine's share is its allocator's
    resident pages (what its tracker counts, and the freed pages its allocator keeps) when
    the store reports them, else its tracker; ``other`` is what none of the parts names:
    the runtime, numpy temporaries, request bodies, glibc's free lists."""
    engine = max(m["engine"], m["allocator"])
    named = ("file", "hot", "index", "bus", "writer_pending")
    other = m["rss"] - sum(m[k] for k in named) - engine
    mib = {k: m[k] / 2**20 for k in (*named, "rss", "engine")}
    return (
        f"RSS {mib['rss']:,.0f}: code mapped from files {mib['file']:,.0f}, ring"
        f" {mib['hot']:,.0f}, index {mib['index']:,.0f}, bus {mib['bus']:,.0f}, writer queue"
        f" {mib['writer_pending']:,.0f}, engine {engine / 2**20:,.0f} (tracked"
        f" {mib['engine']:,.0f}), other {other / 2**20:,.0f}"
    )


def live_load(
    args: argparse.Namespace, url: str, server: psutil.Process
) -> tuple[float, float, float, list[float], dict[str, Any], list[dict[str, int]]]:
    """Phase 2: the whole fleet at 1 Hz for ``--live`` seconds. Returns the seconds measured,
    the server's and the simulator's CPU share over them, the lag samples, the final status
    and the memory samples."""
    sim_proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minutely",
            "simulate",
            "--url",
            url,
            "--servers",
            str(args.servers),
            "--metrics",
            str(args.metrics),
            "--seed",
            "2",
            "--duration",
            str(args.live),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = psutil.Process(sim_proc.pid)
    time.sleep(10)  # fleet set-up and the first seconds
    c0, k0, t0 = sum(server.cpu_times()[:2]), sum(client.cpu_times()[:2]), time.time()
    lags, samples = [], []
    while sim_proc.poll() is None and time.time() - t0 < args.live - 15:
        time.sleep(5)
        head = httpx.get(f"{url}/api/v1/status", timeout=30).json()["hot"]["newest_minute"]
        lags.append(time.time() - head)
        samples.append(memory_sample(url, server))
    c1, k1, t1 = sum(server.cpu_times()[:2]), sum(client.cpu_times()[:2]), time.time()
    sim_proc.wait()
    live_status = httpx.get(f"{url}/api/v1/status", timeout=30).json()
    return t1 - t0, (c1 - c0) / (t1 - t0), (k1 - k0) / (t1 - t0), lags, live_status, samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=2000)
    ap.add_argument("--history", type=int, default=120, help="minutes of history")
    ap.add_argument("--live", type=float, default=300, help="seconds of real-time load")
    ap.add_argument("--window", default="3h")
    ap.add_argument("--port", type=int, default=18090)
    ap.add_argument("--store", default="chdb", help="the server's store: chdb (default) or none")
    ap.add_argument("--max-rss", type=float, default=16, help="GiB: kill the server above it")
    ap.add_argument(
        "--history-from",
        choices=("store", "ingest"),
        help="store: made in the store before the server starts, which loads it as a restart"
        " does (the default with a store); ingest: sent through ingest, a point a minute",
    )
    args = ap.parse_args()
    if args.history_from is None:
        args.history_from = "ingest" if args.store == "none" else "store"
    if args.history_from == "store" and args.store == "none":
        ap.error("--history-from store needs a store")

    fleet = sim.Fleet(args.servers, args.metrics, seed=2)
    series = len(fleet)
    url = f"http://127.0.0.1:{args.port}"
    print(
        f"# {os.cpu_count()} cores; {args.servers} x {args.metrics} = {series:,} series; "
        f"hot window {args.window}; store {args.store}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        now_minute = int(time.time() // 60)
        first = now_minute - args.history
        fill = 0.0
        if args.history_from == "store":
            began = time.perf_counter()
            fill_store(tmp, args, first, args.history)
            fill = time.perf_counter() - began
            # the minutes the fill took are filled too, so the history ends at the clock
            while (now := int(time.time() // 60)) > now_minute:
                fill_store(tmp, args, now_minute, now - now_minute)
                now_minute = now
            first = now_minute - args.history
            print(
                f"history in the store: {series * args.history:,} minutes in {fill:.1f}s "
                f"({series * args.history / fill / 1e6:.2f} M series-minutes/s)",
                flush=True,
            )
        proc = start_server(args.port, tmp, args.window, args.store, series)
        server = psutil.Process(proc.pid)
        watchdog = Watchdog(proc, int(args.max_rss * 2**30))
        watchdog.start()
        try:
            startup = wait_started(proc, args.port, timeout=3600)
            startup_peak = watchdog.peak
            startup_cpu = sum(server.cpu_times()[:2])  # the machine is shared: CPU, not wall
            after_start = memory_sample(url, server)
            print(
                f"start-up: {startup:.1f}s ({startup_cpu:.0f} s of CPU), peak RSS "
                f"{startup_peak / 2**30:.1f} GiB",
                flush=True,
            )
            if args.history_from == "ingest":
                began = time.perf_counter()
                stats = asyncio.run(
                    sim.send(
                        url, history_bodies(fleet, first, args.history), concurrency=2, timeout=600
                    )
                )
                assert stats.rejected == 0, stats.errors
                wait_folded(url, stats.accepted)
                fill = time.perf_counter() - began
                print(
                    f"history: {stats.accepted:,} points in {fill:.1f}s "
                    f"({stats.accepted / fill / 1e6:.2f} M/s)",
                    flush=True,
                )
            else:
                held = httpx.get(f"{url}/api/v1/status", timeout=30).json()["hot"]
                print(f"ring after start-up: {orjson.dumps(held.get('states')).decode()}")

            name_s, name_m = str(fleet.server_names[17]), str(fleet.metric_names[5])
            rng = {"start": first * 60, "end": now_minute * 60}
            queries = {
                f"Q1 server series ({args.metrics} metrics x {args.history} min)": (
                    f"/api/v1/servers/{name_s}/series",
                    rng,
                ),
                f"Q2 metric series ({args.servers} servers x {args.history} min)": (
                    f"/api/v1/metrics/{name_m}/series",
                    rng,
                ),
                f"Q3 server summary ({args.metrics} metrics)": (
                    f"/api/v1/servers/{name_s}/summary",
                    rng,
                ),
                f"Q4 metric summary ({args.servers} servers)": (
                    f"/api/v1/metrics/{name_m}/summary",
                    rng,
                ),
            }
            timings = {k: time_query(url, p, q, 20) for k, (p, q) in queries.items()}
            load = os.getloadavg()[0]
            formats = time_formats(url, f"/api/v1/servers/{name_s}/series", rng, 20)
            status = httpx.get(f"{url}/api/v1/status").json()
            rss = server.memory_info().rss
            after_queries = memory_sample(url, server)
            live = live_load(args, url, server) if args.live > 0 else None
        except Exception:
            if watchdog.killed:
                print(f"# the server passed {args.max_rss} GiB of RSS and was killed")
            raise
        finally:
            watchdog.stop()
            proc.terminate()
            proc.wait()

    hot = status["hot"]
    print()
    print(f"load average (1 min) before the format runs: {load:.1f} on {os.cpu_count()} cores")
    print()
    print("| measure | result |")
    print("|---|---|")
    minutes = series * args.history
    if args.history_from == "store":
        print(
            f"| make {args.history} min of history in the store ({minutes:,} series-minutes)"
            f" | {fill:.0f} s, {minutes / fill / 1e6:.2f} M series-minutes/s |"
        )
    else:
        print(
            f"| fill {args.history} min of history ({minutes:,} points) | "
            f"{minutes / fill / 1e6:.2f} M points/s |"
        )
    print(
        f"| server start-up (the ring loaded from the store) | {startup:.1f} s ({startup_cpu:.0f}"
        f" s of CPU), peak RSS {startup_peak / 2**30:.1f} GiB |"
    )
    for k, (c, s) in timings.items():
        print(f"| {k}, median of 20 | client {c:.1f} ms, server {s:.1f} ms |")
    (jc, js, jb), (ac, as_, ab) = formats["json"], formats["arrow"]
    q1 = f"Q1 ({args.metrics} metrics x {args.history} min) as data"
    print(
        f"| {q1}: JSON, GET + orjson.loads, median of 20 | client {jc:.1f} ms, "
        f"server {js:.1f} ms, {jb / 1e6:.1f} MB |"
    )
    print(
        f"| {q1}: Arrow, GET + pyarrow table, median of 20 | client {ac:.1f} ms, "
        f"server {as_:.1f} ms, {ab / 1e6:.1f} MB |"
    )
    print(f"| {q1}: Arrow / JSON, same run | client {ac / jc:.2f}x, server {as_ / js:.2f}x |")
    print(
        f"| hot ring ({hot['window_minutes']} min window) | {hot['bytes'] / 2**30:.1f} GiB, "
        f"{hot['bytes_per_series_minute']} B per series-minute; server RSS "
        f"{rss / 2**30:.1f} GiB |"
    )
    print(f"| server RSS, highest seen (sampled every 0.2 s) | {watchdog.peak / 2**30:.1f} GiB |")
    print(f"| memory after start-up, MiB | {memory_row(after_start)} |")
    print(f"| memory after the queries, MiB | {memory_row(after_queries)} |")
    for state, got in hot.get("states", {}).items():  # the ring's open and sealed minutes
        print(f"| ring, {state} minutes | {orjson.dumps(got).decode()} |")
    if live is None:
        return
    seconds, share, sim_share, lags, live_status, samples = live
    if samples:
        peak = max(samples, key=lambda m: m["rss"])
        for at, m in (("first", samples[0]), ("highest", peak), ("last", samples[-1])):
            print(f"| live, {at} sample (every 5 s), MiB | {memory_row(m)} |")
    print(
        f"| live {series / 1e6:.2f}M points/s for {seconds:.0f} s: server CPU | "
        f"{share * 100:.0f}% of one core "
        f"({share * 50:.0f}% of the machine); simulator {sim_share * 100:.0f}% "
        f"of one core |"
    )
    if lags:
        print(
            f"| live: seconds since the newest folded minute began (< 60 = on time) | median "
            f"{statistics.median(lags):.1f} s, worst {max(lags):.1f} s |"
        )
    print(
        f"| live: points folded | {live_status['aggregator']['points']:,} "
        f"(expired {live_status['aggregator']['expired']}) |"
    )


if __name__ == "__main__":
    main()
