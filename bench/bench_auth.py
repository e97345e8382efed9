"""The cost of the Host and token checks on the ingest and query hot paths, same run.

One service (memory only, the embedded bus) behind two apps: ``open`` lets any Host in and
has no tokens, so its ``Guard`` passes each request straight on; ``auth`` checks the Host
against the default names and a tokens file of three tokens, and every request carries a
Bearer token of the right scope. Requests are ASGI calls made directly, without sockets or
an HTTP client, so the figures are the app's own time and the middleware's share of it is as
large as it can look. The apps take turns request by request (ABAB, then BABA), and the table
shows each app's median time per request and their ratio; last, the middleware alone in front
of an app that does nothing, the floor of what it adds.

    flock /tmp/minutely-cpu.lock .venv/bin/python bench/bench_auth.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from minutely import auth
from minutely.api import create_app
from minutely.api.auth import Access, Guard
from minutely.auth import Scope, TokenFile
from minutely.config import Settings
from minutely.model import PointBatch
from minutely.service import Service

NOW = 1_764_000_000.0 + 3 * 3600 + 25
SERVERS, METRICS = 50, 40
INGEST_POINTS = 10_000  # one Arrow body of the fast path, as a collector would send


def arrow_body(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    servers = np.array([f"web-{i:03d}" for i in range(SERVERS)], dtype=object)
    metrics = np.array([f"metric.{i:02d}" for i in range(METRICS)], dtype=object)
    batch = PointBatch.from_names(
        servers[rng.integers(0, SERVERS, n)],
        metrics[rng.integers(0, METRICS, n)],
        NOW - rng.uniform(0, 3600, n),
        np.round(rng.normal(50, 10, n), 3),
    ).to_arrow()
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue()


class Call:
    """One request, made as a direct ASGI call."""

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes):
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        self.body = body

    async def __call__(self, app: Any) -> int:
        status = 0
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(self.scope), receive, send)
        return status


async def alternating(
    apps: dict[str, Any], calls: dict[str, Call], n: int, between: Callable[[], None]
) -> dict[str, list[float]]:
    """Seconds of each of ``n`` requests per app, the apps taking turns request by request
    (which goes first alternating too), so drift and neighbours' load hit both alike."""
    times: dict[str, list[float]] = {name: [] for name in apps}
    names = list(apps)
    for i in range(n):
        for name in names if i % 2 == 0 else names[::-1]:
            began = time.perf_counter()
            status = await calls[name](apps[name])
            times[name].append(time.perf_counter() - began)
            assert status == 200, (name, status)
            between()  # each request finds the bus as empty as the other's did
    return times


async def guard_alone(access: Access, call: Call, n: int) -> float:
    """Seconds per request of ``Guard`` in front of an app that answers at once."""

    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = Guard(nothing, access)
    began = time.perf_counter()
    for _ in range(n):
        status = await call(guard)
        assert status == 200, status
    return (time.perf_counter() - began) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per app, per query workload")
    parser.add_argument("--rounds", type=int, default=15, help="of the middleware alone")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    path = auth.tokens_path(tmp)
    writer = auth.add_token(path, "fleet", Scope.WRITE)
    reader = auth.add_token(path, "grafana", Scope.READ)
    auth.add_token(path, "root", Scope.ADMIN)
    tokens = TokenFile(path).open()

    settings = Settings(hot_window=6 * 3600, store="none", bus_max_bytes=1 << 30)
    service = Service(settings, clock=lambda: NOW).open()
    apps = {
        "open": create_app(service, manage_lifecycle=False, access=Access(None, None)),
        "auth": create_app(service, manage_lifecycle=False, access=Access(tokens=tokens)),
    }

    def drain() -> None:
        while service.aggregator.drain(timeout=0):
            pass

    body = arrow_body(INGEST_POINTS, 0)
    arrow = {"host": "127.0.0.1:8080", "content-type": "application/vnd.apache.arrow.stream"}
    ingest = {
        "open": Call("POST", "/api/v1/points", "", arrow, body),
        "auth": Call(
            "POST", "/api/v1/points", "", arrow | {"authorization": f"Bearer {writer}"}, body
        ),
    }
    # fill the ring so the queries read something (an hour of 50 × 40 series)
    for seed in range(20):
        asyncio.run(
            Call("POST", "/api/v1/points", "", arrow, arrow_body(10_000, seed))(apps["open"])
        )
    drain()

    def query(path: str, q: str) -> dict[str, Call]:
        plain = {"host": "localhost:8080", "accept": "application/json"}
        return {
            "open": Call("GET", path, q, plain, b""),
            "auth": Call("GET", path, q, plain | {"authorization": f"Bearer {reader}"}, b""),
        }

    workloads = [
        ("ingest: POST /api/v1/points, 10,000 points (Arrow)", ingest, 1),
        (
            "query Q1: /api/v1/servers/web-007/series, 1 h",
            query("/api/v1/servers/web-007/series", f"start={int(NOW) - 3600}&end={int(NOW)}"),
            1,
        ),
        (
            "query Q4: /api/v1/metrics/metric.03/summary, 1 h",
            query("/api/v1/metrics/metric.03/summary", f"start={int(NOW) - 3600}&end={int(NOW)}"),
            1,
        ),
        ("names: /api/v1/servers", query("/api/v1/servers", ""), 5),
    ]
    print(f"median time per request (µs), {args.requests:,} requests per app taking turns\n")
    print("| workload | no auth | auth (Host + token) | cost |")
    print("|---|---:|---:|---:|")
    for label, calls, share in workloads:
        n = max(20, int(args.requests * share))
        asyncio.run(alternating(apps, calls, 20, drain))  # warm up
        times = asyncio.run(alternating(apps, calls, n, drain))
        off = statistics.median(times["open"]) * 1e6
        on = statistics.median(times["auth"]) * 1e6
        print(f"| {label} | {off:,.1f} | {on:,.1f} | {(on / off - 1) * 100:+.2f} % |")

    # the middleware by itself, where no other work hides it: the floor of what it adds
    call = query("/api/v1/servers", "")
    n = 20_000
    samples: dict[str, list[float]] = {"open": [], "auth": []}
    for _ in range(args.rounds):
        samples["open"].append(asyncio.run(guard_alone(Access(None, None), call["open"], n)))
        samples["auth"].append(asyncio.run(guard_alone(Access(tokens=tokens), call["auth"], n)))
    off = statistics.median(samples["open"]) * 1e6
    on = statistics.median(samples["auth"]) * 1e6
    print(
        f"\nGuard in front of an app that answers at once: {off:.2f} µs open, {on:.2f} µs with"
        f" the Host and token checks: {on - off:.2f} µs added per request"
    )


if __name__ == "__main__":
    main()
