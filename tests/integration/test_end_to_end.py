"""End to end: a real ``minutely serve`` process, simulator data over HTTP (Arrow and JSON),
and every one of the four queries compared with numpy ground truth from the raw points."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import numpy as np
import orjson
import pytest

from minutely import sim
from tests.integration.truth import check_series, check_summary, columns

pytestmark = pytest.mark.slow


def test_four_queries_equal_numpy(server) -> None:  # type: ignore[no-untyped-def]
    fleet = sim.Fleet(5, 12, seed=11)
    t0 = int(time.time()) - 2 * 3600
    history = fleet.batch_by_series(t0, 2 * 3600 - 90)
    bodies = [sim.encode_arrow(history.take(np.arange(i, len(history), 4))) for i in range(4)]
    stats = asyncio.run(sim.send(server.url, bodies, concurrency=2))
    assert stats.accepted == len(history) and stats.rejected == 0

    # the last 90 s as JSON, with bad points mixed in
    recent = fleet.batch(t0 + 2 * 3600 - 90, 60)
    rc = columns(recent)
    rows = [
        {"server": s, "metric": m, "ts": float(t), "value": float(v)}
        for s, m, t, v in zip(rc["server"], rc["metric"], rc["ts"], rc["value"], strict=True)
    ]
    bad = [
        {"server": "web-001", "metric": "cpu.user", "ts": time.time(), "value": float("nan")},
        {"server": "web-001", "metric": "", "ts": time.time(), "value": 1.0},
        {"server": "web-001", "metric": "cpu.user", "ts": time.time() + 3600, "value": 1.0},
    ]
    r = httpx.post(
        f"{server.url}/api/v1/points",
        content=orjson.dumps(rows[:10] + bad + rows[10:]),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == len(rows) and answer["rejected"] == 3
    assert [e["index"] for e in answer["errors"]] == [10, 11, 12]
    assert [e["reason"].split(":")[0] for e in answer["errors"]] == ["value", "metric", "ts"]

    total = len(history) + len(recent)
    status = server.wait_folded(total)
    assert status["aggregator"]["points"] == total  # type: ignore[index]

    pts = {k: np.concatenate([columns(history)[k], rc[k]]) for k in rc}
    server_names = list(fleet.server_names)
    metric_names = list(fleet.metric_names)
    assert httpx.get(f"{server.url}/api/v1/servers").json()["servers"] == sorted(server_names)
    assert httpx.get(f"{server.url}/api/v1/metrics").json()["metrics"] == sorted(metric_names)

    lo = (t0 // 60) * 60 - 600
    hi = lo + 3 * 3600
    for step in (60, 300, 3600):
        check_series(server.url, pts, "server", server_names[1], step, lo, hi)
        check_series(server.url, pts, "metric", metric_names[3], step, lo, hi)
    check_summary(server.url, pts, "server", server_names[4], t0 + 1234, t0 + 6000)
    check_summary(server.url, pts, "metric", metric_names[0], lo, hi)
    check_summary(server.url, pts, "metric", metric_names[7], t0 + 7000, hi)

    # and from a terminal
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "minutely",
            "query",
            "server",
            server_names[0],
            "--summary",
            "--start",
            str(lo),
            "--end",
            str(hi),
            "--url",
            server.url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.splitlines()[0].split()[:2] == ["metric", "min"]
    assert len(out.splitlines()) == 1 + len(metric_names)
