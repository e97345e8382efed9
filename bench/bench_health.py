"""How long ``/healthz`` takes while the server is busy: no request may hold up the others.

A real ``minutely serve`` (memory only, 2-day window) is probed every 20 ms, each probe a fresh
connection and a plain socket, for as long as each of these runs:

- ``idle``: nothing else (the machine's own noise: the floor the others are read against);
- ``query``: the biggest series answer ``max_query_cells`` allows (one server, 2,000 metrics
  × 2,880 minutes, about 125 MB of JSON), asked ``QUERIES`` times in a row;
- ``body``: a 500 MB JSON body with one bad value (refused 413), sent from another process;
- ``overload``: 4 sender processes, 2 requests in flight each, posting 50,000-point Arrow
  bodies back to back for ``--overload-seconds`` while 200 idle sockets are held open.

With ``--baseline DIR`` (another checkout, e.g. a worktree of main) every run does each
scenario against both trees, alternating which goes first, so the two compare in the same
run. Prints each probe series' median, 99th percentile and maximum, then per scenario and
tree the medians over the runs.

    flock /tmp/minutely-cpu.lock .venv/bin/python bench/bench_health.py [--runs 2]
        [--baseline /path/to/other/checkout] [--overload-seconds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from minutely.testing.natsserver import free_port
from minutely.testing.processes import clean_env, wait_healthy

HERE = Path(__file__).resolve().parent.parent
METRICS, MINUTES = 2_000, 2_877  # the biggest Q1 the default max_query_cells allows
QUERIES = 4
PROBE_EVERY = 0.02
SENDERS, THREADS, IDLE_SOCKETS = 4, 2, 200


@contextlib.contextmanager
def serving(tree: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``minutely serve`` from the checkout ``tree``, memory only."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data, open(Path(data) / "serve.log", "wb") as log:
        args = [sys.executable, "-m", "minutely", "serve", "--port", str(port)]
        args += ["--data-dir", data, "--store", "none", "--hot-window", "2d", *extra]
        env = clean_env({"PYTHONPATH": str(tree)})
        proc = subprocess.Popen(args, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_healthy(url, proc, timeout=120):
                said = (Path(data) / "serve.log").read_text()[-2000:]
                raise RuntimeError(f"minutely serve from {tree} did not start:\n{said}")
            yield url, proc
        finally:
            proc.terminate()
            proc.wait(30)


def probe(url: str) -> float:
    host, port = url.removeprefix("http://").split(":")
    began = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = s.recv(200)
    took = time.perf_counter() - began
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/healthz answered {answer[:100]!r}")
    return took


def probes_while(url: str, busy: Callable[[], bool]) -> list[float]:
    took = []
    while busy():
        took.append(probe(url))
        time.sleep(PROBE_EVERY)
    return took


def arrow(table: dict[str, Any]) -> bytes:
    t = pa.table(table)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return bytes(sink.getvalue().to_pybytes())


def fill(url: str) -> None:
    first = (int(time.time()) // 60 - MINUTES + 1) * 60
    for part in np.array_split(np.arange(METRICS), 4):
        n = len(part) * MINUTES
        body = arrow(
            {
                "server": np.full(n, "web-001", dtype=object),
                "metric": np.repeat([f"metric.{i:04d}" for i in part], MINUTES),
                "ts": np.tile(first + 60 * np.arange(MINUTES, dtype=np.int64), len(part)),
                "value": np.tile(np.arange(MINUTES, dtype=np.float64), len(part)),
            }
        )
        r = httpx.post(
            f"{url}/api/v1/points",
            content=body,
            headers={"content-type": "application/vnd.apache.arrow.stream"},
            timeout=300,
        )
        r.raise_for_status()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/api/v1/status", timeout=30).json()
        if status["aggregator"]["points"] >= METRICS * MINUTES:
            return
        time.sleep(0.5)
    raise RuntimeError("the points were not folded within 5 minutes")


def _send_big_body(url: str) -> None:
    point = b'{"server":"web-001","metric":"cpu","ts":%d,"value":1.5},' % int(time.time())
    n = (500 << 20) // len(point)
    body = b"[" + point * (n // 2) + point.replace(b"1.5", b'"x"') + point * (n // 2)
    r = httpx.post(
        f"{url}/api/v1/points",
        content=body[:-1] + b"]",
        headers={"content-type": "application/json"},
        timeout=600,
    )
    assert r.status_code == 413, r.text[:300]


def _send_overload(url: str, sender: int, seconds: float) -> None:
    servers, metrics, minutes = 20, 250, 10
    n = servers * metrics * minutes
    start = (int(time.time()) // 60 - 60) * 60
    body = arrow(
        {
            "server": np.repeat(
                [f"ov{sender}-s{i:02d}" for i in range(servers)], metrics * minutes
            ),
            "metric": np.tile(np.repeat([f"m{j:03d}" for j in range(metrics)], minutes), servers),
            "ts": np.tile(start + 60 * np.arange(minutes, dtype=np.int64), servers * metrics),
            "value": np.ones(n),
        }
    )
    deadline = time.monotonic() + seconds

    def loop() -> None:
        headers = {"content-type": "application/vnd.apache.arrow.stream"}
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.monotonic() < deadline:
                r = client.post("/api/v1/points", content=body, headers=headers)
                if r.status_code not in (200, 429, 503):
                    raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
                if r.status_code != 200:
                    time.sleep(0.01)

    threads = [threading.Thread(target=loop) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def scenario(name: str, tree: Path, overload_seconds: float) -> list[float]:
    """The /healthz latencies (seconds) while ``name`` runs against a server from ``tree``."""
    ctx = mp.get_context("spawn")
    with serving(tree) as (url, _):
        if name == "idle":
            deadline = time.monotonic() + 10
            return probes_while(url, lambda: time.monotonic() < deadline)
        if name == "query":
            fill(url)
            httpx.get(f"{url}/api/v1/servers/web-001/series?start=-1h", timeout=60)  # warm

            def ask() -> None:
                for _ in range(QUERIES):
                    with httpx.stream(
                        "GET", f"{url}/api/v1/servers/web-001/series", timeout=600
                    ) as r:
                        assert r.status_code == 200
                        for _ in r.iter_bytes():
                            pass

            asker = threading.Thread(target=ask)
            asker.start()
            took = probes_while(url, asker.is_alive)
            asker.join()
            return took
        if name == "body":
            proc = ctx.Process(target=_send_big_body, args=(url,))
            proc.start()
            took = probes_while(url, proc.is_alive)
            proc.join()
            return took
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(IDLE_SOCKETS)]
        procs = [
            ctx.Process(target=_send_overload, args=(url, i, overload_seconds))
            for i in range(SENDERS)
        ]
        for p in procs:
            p.start()
        took = probes_while(url, lambda: any(p.is_alive() for p in procs))
        for p in procs:
            p.join()
        for s in idle:
            s.close()
        return took


def summary(took: list[float]) -> tuple[float, float, float]:
    """Median, 99th percentile and maximum, in milliseconds."""
    ms = sorted(t * 1000 for t in took)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))], ms[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--baseline", type=Path, help="another checkout to compare against")
    ap.add_argument("--overload-seconds", type=float, default=20.0)
    ap.add_argument("--scenarios", default="idle,query,body,overload")
    args = ap.parse_args()
    trees = {"this": HERE} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    names = args.scenarios.split(",")
    got: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for run in range(args.runs):
        order = list(trees) if run % 2 == 0 else list(reversed(trees))
        for name in names:
            for label in order:
                took = scenario(name, trees[label], args.overload_seconds)
                med, p99, top = summary(took)
                got.setdefault((name, label), []).append((med, p99, top))
                print(
                    f"run {run + 1} {name:9} {label:8} {len(took):5} probes:"
                    f" median {med:6.1f} ms, p99 {p99:7.1f}, max {top:7.1f}",
                    flush=True,
                )
    print(f"\nmedians over {args.runs} runs (ms): median / p99 / max of each run's probes")
    for name in names:
        for label in trees:
            rows = got[(name, label)]
            med, p99, top = (statistics.median(r[i] for r in rows) for i in range(3))
            print(f"  {name:9} {label:8} {med:6.1f} / {p99:7.1f} / {top:7.1f}")


if __name__ == "__main__":
    main()
