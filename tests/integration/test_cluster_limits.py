"""``max_query_cells`` on a cluster: a series question asked of any node, its partition's
owner or another that routes it there, is refused past the configured limit with the
smallest step that fits (as a single node refuses it), counted once on the node asked, and
answered exactly at that step. Real processes: nats-server, the ClickHouse stand-in, two
``minutely serve --node``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from minutely.query import smallest_step
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natsserver import NatsServer, free_ports
from minutely.testing.processes import launch, stop_process, wait_healthy
from tests.integration.truth import check_series

pytestmark = pytest.mark.slow

PARTITIONS = 4
SERVERS = [f"web-{i:02d}" for i in range(8)]
METRICS = ["cpu.user", "mem.used"]
MAX_CELLS = 200


def ready_keys(url: str) -> set[str]:
    try:
        status = httpx.get(f"{url}/api/v1/status", timeout=5).json()
    except httpx.HTTPError:
        return set()
    return {s["key"] for s in status.get("shards", []) if s["state"] == "ready"}


def refusals(url: str) -> int:
    refused = httpx.get(f"{url}/api/v1/status", timeout=10).json()["limits"]["refused"]
    return int(refused.get("max_query_cells", 0))


def test_every_node_refuses_past_max_query_cells_with_the_smallest_step(tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats")
    store = ClickHouseHttpServer(tmp_path / "store")
    procs: list[Any] = []
    logs: list[Any] = []
    try:
        nats.start(timeout=30)
        store.start(timeout=60)
        ports = free_ports(2)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for i, port in enumerate(ports):
            log = (tmp_path / f"n{i}.log").open("wb")
            logs.append(log)
            args = ["--node", f"n{i}", "--advertise", urls[i], "--bus", nats.url]
            args += ["--store", store.url, "--partitions", str(PARTITIONS), "--lease-ttl", "3s"]
            env = {"MINUTELY_MAX_QUERY_CELLS": str(MAX_CELLS), "MINUTELY_CHECKPOINT_EVERY": "1"}
            procs.append(launch("serve", port, tmp_path / f"n{i}", *args, env=env, output=log))
        for i, url in enumerate(urls):
            assert wait_healthy(url, procs[i], timeout=90), (tmp_path / f"n{i}.log").read_text()
        deadline = time.monotonic() + 60
        while True:
            held = [ready_keys(u) for u in urls]
            if len(held[0] | held[1]) == 2 * PARTITIONS and all(held):
                break
            assert time.monotonic() < deadline, f"partitions not all owned: {held}"
            time.sleep(0.2)

        # every series gets points over the last 50 minutes
        rng = np.random.default_rng(17)
        per_series = 20
        now = time.time()
        pts = {
            "server": np.repeat(SERVERS, len(METRICS) * per_series),
            "metric": np.tile(np.repeat(METRICS, per_series), len(SERVERS)),
        }
        n = pts["server"].size
        pts["ts"] = np.round(now - rng.uniform(60, 3000, n), 3)
        pts["value"] = np.round(rng.normal(50, 20, n), 2)
        body = [
            {"server": s, "metric": m, "ts": float(t), "value": float(v)}
            for s, m, t, v in zip(*pts.values(), strict=True)
        ]
        r = httpx.post(f"{urls[0]}/api/v1/points", json=body, timeout=30)
        assert r.status_code == 200 and r.json()["accepted"] == n

        end = int(now) // 60 * 60 + 60  # the API floors times to the minute
        asked = [0, 0]
        questions = [("metric", m, 3600, len(SERVERS)) for m in METRICS]
        questions += [("server", s, 3 * 3600, len(METRICS)) for s in SERVERS[:3]]
        for i, url in enumerate(urls):  # one of the two is the owner, the other routes
            for by, name, span, n_series in questions:
                start = end - span
                # while a partition changes hands (a node's first leases may move at start),
                # the node asked answers from the store alone, marked partial: ask again
                deadline = time.monotonic() + 60
                while True:
                    r = httpx.get(
                        f"{url}/api/v1/{by}s/{name}/series",
                        params={"start": start, "end": end, "step": 60},
                        timeout=30,
                    )
                    if r.status_code != 200 or r.json().get("partial") is not True:
                        break
                    assert time.monotonic() < deadline, (url, by, name, r.text)
                    time.sleep(0.3)
                assert r.status_code == 400, (url, by, name, r.text)
                asked[i] += 1
                error = r.json()["error"]
                buckets = span // 60
                step = smallest_step(start, end, MAX_CELLS // n_series)
                assert step is not None and step > 60
                assert f"{n_series} series × {buckets} buckets" in error, error
                assert f"over the limit of {MAX_CELLS} (max_query_cells)" in error, error
                assert f"step={step} is the smallest that fits" in error, error
                # at that step it is answered whole (not from the store alone) and exactly
                deadline = time.monotonic() + 30
                while True:
                    fits = httpx.get(
                        f"{url}/api/v1/{by}s/{name}/series",
                        params={"start": start, "end": end, "step": step},
                        timeout=30,
                    )
                    try:
                        assert fits.status_code == 200, fits.text
                        assert fits.json().get("partial") is not True
                        check_series(url, pts, by, name, step, start, end)
                        break
                    except AssertionError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.3)
        # each refusal counted once, on the node it was asked of (not again at its owner)
        assert [refusals(url) for url in urls] == asked
        scraped = httpx.get(f"{urls[1]}/metrics", timeout=10).text
        assert f'minutely_limit_refusals_total{{limit="max_query_cells"}} {asked[1]}.0' in scraped
    finally:
        for proc in procs:
            stop_process(proc)
        for log in logs:
            log.close()
        store.stop()
        nats.stop()
