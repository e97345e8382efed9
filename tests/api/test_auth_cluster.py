"""Two cluster nodes with tokens: each sends its admin token (``MINUTELY_TOKEN``) on the
questions it routes to the other, so answers stay whole and exact; a read token cannot use
the internal routes. Real processes: nats-server, the ClickHouse stand-in, two ``serve``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from minutely import auth
from minutely.auth import Scope
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natsserver import NatsServer, free_ports
from minutely.testing.processes import launch, stop_process, wait_healthy

pytestmark = pytest.mark.slow

PARTITIONS = 4
SERVERS = [f"web-{i:02d}" for i in range(8)]
METRICS = ["cpu.user", "mem.used"]


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def ready_keys(url: str, token: str) -> set[str]:
    try:
        status = httpx.get(f"{url}/api/v1/status", headers=bearer(token), timeout=5).json()
    except httpx.HTTPError:
        return set()
    return {s["key"] for s in status.get("shards", []) if s["state"] == "ready"}


def test_two_nodes_with_tokens_answer_each_others_questions(tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats")
    store = ClickHouseHttpServer(tmp_path / "store")
    procs: list[Any] = []
    logs: list[Any] = []
    try:
        nats.start(timeout=30)
        store.start(timeout=60)
        dirs = [tmp_path / "n0", tmp_path / "n1"]
        for d in dirs:
            d.mkdir()
        tokens = auth.tokens_path(dirs[0])
        admin = auth.add_token(tokens, "cluster", Scope.ADMIN)
        reader = auth.add_token(tokens, "grafana", Scope.READ)
        writer = auth.add_token(tokens, "fleet", Scope.WRITE)
        shutil.copy(tokens, auth.tokens_path(dirs[1]))  # only hashes: safe to copy
        ports = free_ports(2)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for i, (port, d) in enumerate(zip(ports, dirs, strict=True)):
            log = (tmp_path / f"n{i}.log").open("wb")
            logs.append(log)
            args = ["--node", f"n{i}", "--advertise", urls[i], "--bus", nats.url]
            args += ["--store", store.url, "--partitions", str(PARTITIONS), "--lease-ttl", "3s"]
            env = {"MINUTELY_TOKEN": admin, "MINUTELY_CHECKPOINT_EVERY": "1"}
            procs.append(launch("serve", port, d, *args, env=env, output=log))
        for i, url in enumerate(urls):
            assert wait_healthy(url, procs[i], timeout=90), (tmp_path / f"n{i}.log").read_text()
        deadline = time.monotonic() + 60
        while True:
            held = [ready_keys(u, reader) for u in urls]
            if len(held[0] | held[1]) == 2 * PARTITIONS and all(held):
                break
            assert time.monotonic() < deadline, f"partitions not all owned: {held}"
            time.sleep(0.2)

        rng = np.random.default_rng(5)
        now = time.time()
        n = 400
        pts = {
            "server": np.array(SERVERS)[rng.integers(0, len(SERVERS), n)],
            "metric": np.array(METRICS)[rng.integers(0, len(METRICS), n)],
            "ts": now - rng.uniform(60, 600, n),
            "value": np.round(rng.normal(50, 20, n), 2),
        }
        body = [
            {"server": s, "metric": m, "ts": float(t), "value": float(v)}
            for s, m, t, v in zip(*pts.values(), strict=True)
        ]
        assert httpx.post(f"{urls[0]}/api/v1/points", json=body).status_code == 401
        r = httpx.post(f"{urls[0]}/api/v1/points", json=body, headers=bearer(writer), timeout=30)
        assert r.status_code == 200 and r.json()["accepted"] == n

        # the internal routes take the cluster's admin token, not a read one
        local = f"{urls[1]}/api/v1/local/servers/{SERVERS[0]}/summary"
        assert httpx.get(local, headers=bearer(reader)).status_code == 403
        assert httpx.get(local, headers=bearer(admin)).status_code in (200, 404)

        start, end = int(now) - 3600, int(now) + 120
        deadline = time.monotonic() + 30
        while True:
            try:
                for url in urls:
                    for server in SERVERS:
                        check(url, reader, pts, server, start, end)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    finally:
        for proc in procs:
            stop_process(proc)
        for log in logs:
            log.close()
        store.stop()
        nats.stop()


def check(url: str, token: str, pts: dict[str, Any], server: str, start: int, end: int) -> None:
    """Q3 for ``server`` asked of ``url``: whole (not partial) and equal to numpy."""
    r = httpx.get(
        f"{url}/api/v1/servers/{server}/summary",
        params={"start": start, "end": end},
        headers=bearer(token),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert data.get("partial") is not True, f"{url} answered {server} from the store alone"
    mine = pts["server"] == server
    assert {row["metric"] for row in data["rows"]} == set(pts["metric"][mine])
    for row in data["rows"]:
        v = pts["value"][mine & (pts["metric"] == row["metric"])]
        assert (row["min"], row["max"], row["count"]) == (v.min(), v.max(), v.size)
        assert row["avg"] == pytest.approx(v.mean(), rel=1e-12)
