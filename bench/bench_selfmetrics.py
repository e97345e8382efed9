"""What ``/metrics`` costs: the request-timing middleware per request, and one scrape.

    python bench/bench_selfmetrics.py [--runs N]

- middleware      a trivial ASGI app called directly, with and without the middleware that
                  ``SelfMetrics.middleware()`` gives (same run, alternating): the difference
                  per request is what every request pays for its histogram observation
- scrape          ``GET /metrics`` through the whole app (httpx's ASGI transport) of a
                  service with 100 servers x 500 metrics folded, 16 bus partitions, no store
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
import numpy as np

from minutely.api import create_app
from minutely.api.selfmetrics import SelfMetrics
from minutely.config import Settings
from minutely.model import PointBatch
from minutely.service import Service

CALLS = 20_000


async def _plain(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = None
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _calls(app: Any, n: int) -> float:
    """Seconds for ``n`` requests to ``app``."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    began = time.perf_counter()
    for _ in range(n):
        scope = {"type": "http", "method": "GET", "path": "/api/v1/servers/x/series"}
        await app(scope, receive, send)
    return time.perf_counter() - began


def middleware_cost(service: Service, runs: int) -> tuple[float, float, float]:
    """Median µs per request without and with the middleware, and their difference."""
    cls, args, kwargs = SelfMetrics(service).middleware()
    timed = cls(_plain, *args, **kwargs)
    plain, wrapped = [], []
    for _ in range(runs):
        plain.append(asyncio.run(_calls(_plain, CALLS)) / CALLS * 1e6)
        wrapped.append(asyncio.run(_calls(timed, CALLS)) / CALLS * 1e6)
    diffs = [w - p for p, w in zip(plain, wrapped, strict=True)]
    return statistics.median(plain), statistics.median(wrapped), statistics.median(diffs)


def scrape_cost(service: Service, runs: int) -> tuple[float, int]:
    """Median ms of one ``GET /metrics``, and its bytes."""
    app = create_app(service, manage_lifecycle=False)

    async def scrapes() -> tuple[list[float], int]:
        transport = httpx.ASGITransport(app=app)
        times = []
        size = 0
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            for _ in range(runs):
                began = time.perf_counter()
                r = await c.get("/metrics")
                times.append((time.perf_counter() - began) * 1000)
                assert r.status_code == 200, r.text
                size = len(r.content)
        return times, size

    times, size = asyncio.run(scrapes())
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    now = time.time()
    service = Service(Settings(store="none"), clock=lambda: now).open()
    rng = np.random.default_rng(0)
    n = 100 * 500 * 10
    servers = np.array([f"web-{i:03d}" for i in range(100)], dtype=object)
    metrics = np.array([f"m.{i:03d}" for i in range(500)], dtype=object)
    batch = PointBatch.from_names(
        servers[np.arange(n) % 100],
        metrics[(np.arange(n) // 100) % 500],
        now - rng.uniform(0, 600, n),
        rng.normal(50, 10, n),
    )
    service.aggregator.fold(batch)
    plain, wrapped, diff = middleware_cost(service, args.runs)
    scrapes = 4 * args.runs
    scrape_ms, size = scrape_cost(service, scrapes)
    rows = [
        (f"a trivial ASGI request, without / with the middleware ({CALLS:,} calls a run)",
         f"{plain:.2f} µs / {wrapped:.2f} µs"),
        ("the middleware's cost per request", f"{diff:.2f} µs"),
        (f"one `GET /metrics` (100 × 500 series, 16 partitions), median of {scrapes}",
         f"{scrape_ms:.2f} ms, {size:,} B"),
    ]  # fmt: skip
    print(f"| measure (median of {args.runs} runs) | figure |")
    print("|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")


if __name__ == "__main__":
    main()
