"""What the API tests share: a fixed clock, random points around it, ingesting them over HTTP
and the numpy truth they are checked against."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from starlette.testclient import TestClient

from minutely.model import PointBatch
from minutely.service import Service

NOW = 1_764_000_000.0 + 3 * 3600 + 25  # 25 s into a minute
ARROW = "application/vnd.apache.arrow.stream"


def arrow_body(b: PointBatch) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, b.to_arrow().schema) as w:
        w.write_batch(b.to_arrow())
    return sink.getvalue()


def make_points(seed: int = 0, n: int = 30_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    servers = np.array([f"web-{i:03d}" for i in range(5)], dtype=object)
    metrics = np.array(["cpu.user", "cpu.sys", "mem.used", "disk.io"], dtype=object)
    return {
        "server": servers[rng.integers(0, 5, n)],
        "metric": metrics[rng.integers(0, 4, n)],
        "ts": NOW - rng.uniform(0, 5 * 3600, n),
        "value": np.round(rng.normal(50, 20, n), 3),
    }


def ingest(client: TestClient, service: Service, pts: dict[str, np.ndarray]) -> None:
    b = PointBatch.from_names(pts["server"], pts["metric"], pts["ts"], pts["value"])
    r = client.post("/api/v1/points", content=arrow_body(b), headers={"content-type": ARROW})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(pts["ts"])
    while service.aggregator.drain(timeout=0):
        pass


def truth(pts: dict[str, np.ndarray], sel: np.ndarray) -> tuple[float, float, float, int]:
    v = pts["value"][sel]
    return float(v.min()), float(v.max()), float(v.mean()), int(v.size)
