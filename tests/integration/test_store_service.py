"""The service with its storage tier (embedded chDB), in-process with a fake clock.

History spans three days, a 2-hour hot window and every tier seam (minute, hour, day); late
points land in minutes already written to the store. All four questions, at steps of 1 min,
5 min, 1 h and 1 day, over ranges that cross the hot/store seam, equal numpy ground truth;
and they still do after a restart on the same data directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from minutely.config import Settings
from minutely.model import PointBatch
from minutely.service import Service
from minutely.testing.clock import FakeClock

pytestmark = pytest.mark.slow

DAY = 86400
NOW = 1_764_000_000.0 - 1_764_000_000 % DAY + 2 * DAY + 7 * 3600 + 1234.5  # mid-morning, day 3
SERVERS = np.array([f"web-{i}" for i in range(4)], dtype=object)
METRICS = np.array(["cpu", "mem", "disk", "net", "load"], dtype=object)


def make_points(seed: int, n: int, since: float, until: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "server": SERVERS[rng.integers(0, len(SERVERS), n)],
        "metric": METRICS[rng.integers(0, len(METRICS), n)],
        "ts": np.sort(rng.uniform(since, until, n)),
        "value": np.round(rng.normal(100, 30, n), 2),
    }


def settle(service: Service) -> None:
    while service.aggregator.drain(timeout=0):
        pass
    assert service.writer is not None
    service.writer.flush()


def send(service: Service, pts: dict[str, np.ndarray], chunks: int) -> None:
    for idx in np.array_split(np.arange(len(pts["ts"])), chunks):
        batch = PointBatch.from_names(
            pts["server"][idx], pts["metric"][idx], pts["ts"][idx], pts["value"][idx]
        )
        asyncio.run(service.bus.publish(batch))
        settle(service)


def check_all(service: Service, pts: dict[str, np.ndarray]) -> None:
    q = service.query
    minute0 = int(NOW // 60) * 60
    ranges = [
        (minute0 - 3 * DAY, minute0 + 60),  # everything
        (minute0 - 3 * 3600 - 420, minute0 - 3600 + 180),  # across the hot/store seam
        (minute0 - 2 * DAY + 3 * 3600 + 60, minute0 - DAY - 5 * 3600 - 60),  # store, day seam
    ]
    for by, name in (("server", "web-2"), ("metric", "mem")):
        other = "metric" if by == "server" else "server"
        for start, end in ranges:
            for step in (60, 300, 3600, DAY):
                a = q.series(by, name, start, end, step)  # type: ignore[arg-type]
                for i, label in enumerate(a.labels):
                    sel = (pts[by] == name) & (pts[other] == label)
                    bucket = np.floor_divide(pts["ts"][sel], step).astype(np.int64) * step
                    vals = pts["value"][sel]
                    for j, b in enumerate(a.timestamps.tolist()):
                        v = vals[bucket == b]
                        assert a.parts.count[i, j] == v.size, (by, name, label, step, b)
                        if v.size:
                            assert a.parts.min[i, j] == v.min() and a.parts.max[i, j] == v.max()
                            assert a.parts.sum[i, j] == pytest.approx(v.sum(), rel=1e-9)
            s = q.summary(by, name, start, end)  # type: ignore[arg-type]
            inside = (pts[by] == name) & (pts["ts"] >= s.start) & (pts["ts"] < s.end)
            assert sorted(s.labels) == sorted(np.unique(pts[other][inside]).tolist())
            for i, label in enumerate(s.labels):
                v = pts["value"][inside & (pts[other] == label)]
                assert (s.parts.min[i], s.parts.max[i], s.parts.count[i]) == (
                    v.min(),
                    v.max(),
                    v.size,
                )
                assert s.parts.sum[i] == pytest.approx(v.sum(), rel=1e-9)


def test_history_beyond_the_hot_window_is_exact_and_survives_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), hot_window=2 * 3600, store="chdb")
    clock = FakeClock(NOW)
    service = Service(settings, clock=clock).open()
    try:
        history = make_points(1, 40_000, NOW - 3 * DAY + 600, NOW)
        send(service, history, chunks=40)
        # late points: minutes long written (store only) and minutes in the ring
        late = make_points(2, 3_000, NOW - 2 * DAY, NOW - 600)
        send(service, late, chunks=3)
        pts = {k: np.concatenate([history[k], late[k]]) for k in history}
        assert service.aggregator.stats.points == len(pts["ts"])
        check_all(service, pts)
        asyncio.run(service.stop())
        service = Service(settings, clock=clock).open()  # restart on the same data dir
        assert service.registry.n_series == len(SERVERS) * len(METRICS)
        check_all(service, pts)
        # and it keeps going: a new minute after the restart merges with what was loaded
        more = make_points(3, 500, NOW - 100, NOW + 30)
        send(service, more, chunks=2)
        check_all(service, {k: np.concatenate([pts[k], more[k]]) for k in pts})
    finally:
        service.close()
