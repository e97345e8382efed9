"""Issue 11, as a user meets it: a 200 means the points will be answered.

Real ``minutely serve`` processes, driven over HTTP: a year-long backfill in one body, a
SIGKILL on the embedded bus, a damaged store, a store outage with a SIGTERM during it,
extreme but valid batches, and a restart after a quiet spell. After each, the answers equal
numpy ground truth over the points answered 200 (min, max and counts exactly, avg to float64
rounding: 1e-12, or 1e-9 where a cell sums thousands of values in another order), before
and after a restart.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from minutely import sim
from minutely.model import PointBatch
from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natsserver import free_port
from minutely.testing.processes import launch, stop_process, wait_healthy
from tests.integration.conftest import Server
from tests.integration.truth import Points, check_series, check_summary, columns

pytestmark = pytest.mark.slow

ARROW = "application/vnd.apache.arrow.stream"
DAY = 86400


# -- processes ----------------------------------------------------------------------------------


class Serve:
    """``minutely serve`` on one data dir, its output kept in ``<data>.log`` so a test can
    read what it said; started again after each stop, on the same port."""

    def __init__(self, data: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data = data
        self.extra = extra
        self.env = env
        self.port = free_port()
        self.log = data.with_name(data.name + ".log")
        self.server: Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:  # the child keeps its own handle
            proc = launch("serve", self.port, self.data, *self.extra, env=self.env, output=out)
        if not wait_healthy(self.url, proc, timeout=60):
            stop_process(proc)
            said = self.log.read_bytes()[offset:].decode(errors="replace")
            raise RuntimeError(f"minutely serve did not start ({proc.returncode}): {said}")
        self.server = Server(self.url, proc)
        return self.server

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self) -> None:
        """SIGTERM: the process must stop cleanly (uvicorn re-raises the signal once it has
        shut down, so a clean exit is 0 or -SIGTERM)."""
        assert self.server is not None
        proc, self.server = self.server.proc, None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) in (0, -signal.SIGTERM)
        assert "Application shutdown failed" not in self.output()

    def kill(self) -> None:
        assert self.server is not None
        proc, self.server = self.server.proc, None
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        if self.server is not None:
            stop_process(self.server.proc)
            self.server = None


# -- the wire and the truth ---------------------------------------------------------------------


def post(url: str, batch: PointBatch, timeout: float = 120) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/points",
        content=sim.encode_arrow(batch),
        headers={"content-type": ARROW},
        timeout=timeout,
    )


def accept(url: str, batch: PointBatch) -> None:
    """Post ``batch``: it must be answered 200 with every point accepted."""
    r = post(url, batch)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(batch) and not r.json()["rejected"], r.text


def status(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/api/v1/status", timeout=10).json()
    return answer


def store_stats(url: str) -> dict[str, Any]:
    store: dict[str, Any] = status(url)["store"]
    return store


def wait_landed(url: str, points: int, timeout: float = 60) -> dict[str, Any]:
    """Wait until this process has folded ``points`` points and the writer's queue is empty
    with nothing failing; returns the writer's stats."""
    deadline = time.monotonic() + timeout
    while True:
        s = status(url)
        store: dict[str, Any] = s["store"]
        if (
            s["aggregator"]["points"] >= points
            and store["pending"] == 0
            and store["failing_since"] is None
        ):
            return store
        assert time.monotonic() < deadline, f"not landed in {timeout}s: {s}"
        time.sleep(0.2)


def join(*parts: Points) -> Points:
    return {k: np.concatenate([p[k] for p in parts]) for k in ("server", "metric", "ts", "value")}


def batch_of(pts: Points) -> PointBatch:
    return PointBatch.from_names(pts["server"], pts["metric"], pts["ts"], pts["value"])


# -- 1. a year of history in one body ----------------------------------------------------------


def year_of_history(now: float) -> Points:
    """3 metrics of one server, a point every 10 minutes for 364 days ending 3 h ago."""
    end = (int(now) - 3 * 3600) // 600 * 600
    ts = (end - 600 * np.arange(364 * 144)[::-1]).astype(np.float64) + 17.25
    n = ts.size
    rng = np.random.default_rng(11)
    return {
        "server": np.full(3 * n, "db-1", dtype=object),
        "metric": np.repeat(np.array(["cpu", "iops", "lag"], dtype=object), n),
        "ts": np.tile(ts, 3),
        "value": np.round(rng.normal(50, 20, 3 * n), 3),
    }


def check_year(url: str, pts: Points, start: int, end: int) -> None:
    check_summary(url, pts, "server", "db-1", start, end, rel=1e-9)
    for metric in ("cpu", "iops", "lag"):
        check_summary(url, pts, "metric", metric, start, end, rel=1e-9)
    check_series(url, pts, "server", "db-1", DAY, start, end, rel=1e-9)
    check_series(url, pts, "metric", "lag", DAY, start, end, rel=1e-9)


def test_a_year_backfill_in_one_body_lands_and_later_points_follow(tmp_path: Path) -> None:
    now = time.time()
    history = year_of_history(now)
    assert history["ts"].size == 157_248
    start, end = int(now // DAY) * DAY - 366 * DAY, int(now // 60) * 60 + 120
    serve = Serve(tmp_path / "data")
    try:
        url = serve.start().url
        accept(url, batch_of(history))
        store = wait_landed(url, history["ts"].size, timeout=90)
        assert store["rows"] > 0 and store["errors"] == 0 and store["dead_rows"] == 0, store
        recent = {
            "server": np.array(["db-1", "db-2", "db-1"], dtype=object),
            "metric": np.array(["cpu", "cpu", "mem"], dtype=object),
            "ts": np.array([now - 90, now - 30, now - 5]),
            "value": np.array([1.5, -2.0, 3.25]),
        }
        accept(url, batch_of(recent))
        truth = join(history, recent)
        wait_landed(url, truth["ts"].size)
        check_year(url, truth, start, end)
        check_summary(url, truth, "metric", "cpu", int(now) - 600, end)
        serve.terminate()
        url = serve.start().url
        check_year(url, truth, start, end)
        check_summary(url, truth, "metric", "cpu", int(now) - 600, end)
    finally:
        serve.close()


def test_one_point_requests_on_150_old_days_all_land(tmp_path: Path) -> None:
    now = time.time()
    days = np.arange(150) * 2 + 10  # every other day, from 10 days to 308 days ago
    pts: Points = {
        "server": np.array([f"web-{i % 3}" for i in range(150)], dtype=object),
        "metric": np.full(150, "cpu", dtype=object),
        "ts": now - days * DAY - 321.5,
        "value": np.arange(150) * 0.5 - 7,
    }
    start, end = int(now // DAY) * DAY - 320 * DAY, int(now // 60) * 60 + 60
    serve = Serve(tmp_path / "data")
    try:
        url = serve.start().url
        with httpx.Client(timeout=30) as client:
            for i in range(150):
                one = {k: v[i : i + 1] for k, v in pts.items()}
                r = client.post(
                    f"{url}/api/v1/points",
                    content=sim.encode_arrow(batch_of(one)),
                    headers={"content-type": ARROW},
                )
                assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        store = wait_landed(url, 150)
        assert store["errors"] == 0 and store["dead_rows"] == 0, store
        check_summary(url, pts, "metric", "cpu", start, end)
        check_series(url, pts, "metric", "cpu", DAY, start, end)
        serve.terminate()
        url = serve.start().url
        check_summary(url, pts, "metric", "cpu", start, end)
        check_series(url, pts, "metric", "cpu", DAY, start, end)
    finally:
        serve.close()


# -- 2. SIGKILL on the embedded bus --------------------------------------------------------------

FLEET_SERVERS = np.array([f"app-{i}" for i in range(4)], dtype=object)
FLEET_METRICS = np.array(["cpu", "mem", "disk", "net", "load"], dtype=object)


def fleet_tick(rng: np.random.Generator, ts: float) -> Points:
    """One point for each of the 20 series (4 servers x 5 metrics) at ``ts``."""
    n = FLEET_SERVERS.size * FLEET_METRICS.size
    return {
        "server": np.repeat(FLEET_SERVERS, FLEET_METRICS.size),
        "metric": np.tile(FLEET_METRICS, FLEET_SERVERS.size),
        "ts": np.full(n, ts),
        "value": np.round(rng.normal(40, 15, n), 3),
    }


def summaries(url: str, start: int, end: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Q3 rows of every fleet server, by (server, metric)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for name in FLEET_SERVERS:
        r = httpx.get(
            f"{url}/api/v1/servers/{name}/summary", params={"start": start, "end": end}, timeout=30
        )
        assert r.status_code == 200, r.text
        rows |= {(name, row["metric"]): row for row in r.json()["rows"]}
    return rows


def test_sigkill_while_streaming_loses_at_most_about_a_second(tmp_path: Path) -> None:
    """A fleet streams 5 points a second per series, with the clock's timestamps, and is
    killed mid-stream: every series then holds a prefix of what it was answered 200 for,
    and that prefix holds every point answered more than 1.5 s before the kill."""
    rng = np.random.default_rng(5)
    serve = Serve(tmp_path / "data")
    sent: list[tuple[float, Points]] = []  # (when answered 200, the points) in order
    try:
        url = serve.start().url
        t0 = time.time()
        with httpx.Client(timeout=5) as client:
            while time.time() < t0 + 8:
                tick = fleet_tick(rng, time.time())
                r = client.post(
                    f"{url}/api/v1/points",
                    content=sim.encode_arrow(batch_of(tick)),
                    headers={"content-type": ARROW},
                )
                assert r.status_code == 200, r.text
                sent.append((time.time(), tick))
                time.sleep(0.2)
        killed_at = time.time()  # the sender has just been answered: the kill is mid-stream
        serve.kill()
        url = serve.start().url
        landed = summaries(url, int(t0) - 60, int(time.time()) + 120)
    finally:
        serve.close()
    sure = sum(1 for answered, _ in sent if answered < killed_at - 1.5)
    assert sure >= 20, sent
    values = np.stack([tick["value"] for _, tick in sent])  # (requests, series)
    for j, key in enumerate(zip(sent[0][1]["server"], sent[0][1]["metric"], strict=True)):
        row = landed.get(key)
        assert row is not None, key
        n = int(row["count"])
        assert sure <= n <= len(sent), (key, n, sure, len(sent))
        v = values[:n, j]
        assert (row["min"], row["max"]) == (v.min(), v.max()), key
        assert row["avg"] == pytest.approx(v.mean(), rel=1e-12), key


def test_sigkill_after_a_burst_and_quiet_loses_nothing(tmp_path: Path) -> None:
    """A burst over the last few minutes (open minutes, still in the live buffer), 2.5 s of
    quiet, a SIGKILL: after the restart every point is answered."""
    rng = np.random.default_rng(6)
    now = time.time()
    ticks = [fleet_tick(rng, t) for t in now - 240 + np.sort(rng.uniform(0, 239, 300))]
    burst = join(*ticks)
    start, end = int(now) // 60 * 60 - 300, int(now) // 60 * 60 + 120
    serve = Serve(tmp_path / "data")
    try:
        url = serve.start().url
        for part in np.array_split(np.arange(burst["ts"].size), 10):
            accept(url, batch_of({k: v[part] for k, v in burst.items()}))
        time.sleep(2.5)
        serve.kill()
        url = serve.start().url
        for name in FLEET_SERVERS:
            check_summary(url, burst, "server", name, start, end)
        check_series(url, burst, "server", "app-1", 60, start, end)
        check_series(url, burst, "metric", "mem", 60, start, end)
    finally:
        serve.close()


# -- 3. a damaged store ------------------------------------------------------------------------


def test_a_damaged_part_stops_the_start_unless_allowed(tmp_path: Path) -> None:
    """Six hours of history across a midnight five days ago (two day partitions of the
    1-minute tier); one column file of one part truncated in a copy of the data dir: serve
    refuses to start on it, naming the part and the way to go on; told to go on, it serves,
    lists the part on /api/v1/status and answers the other day exactly."""
    now = time.time()
    midnight = int(now // DAY) * DAY - 5 * DAY
    rng = np.random.default_rng(3)
    n = 20_000
    pts: Points = {
        "server": np.array([f"s-{i % 4}" for i in range(n)], dtype=object),
        "metric": np.array([f"m-{i % 5}" for i in range(n)], dtype=object),
        "ts": np.sort(rng.uniform(midnight - 3 * 3600, midnight + 3 * 3600, n)),
        "value": np.round(rng.normal(0, 10, n), 4),
    }
    serve = Serve(tmp_path / "data")
    try:
        url = serve.start().url
        accept(url, batch_of(pts))
        wait_landed(url, n)
        serve.terminate()
    finally:
        serve.close()

    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "data", copy, symlinks=True)
    table = (copy / "store" / "data" / "minutely" / "minutes_1m").resolve()
    parts = sorted(p for p in table.iterdir() if p.is_dir() and p.name[:1].isdigit())
    day = time.strftime("%Y%m%d", time.gmtime(midnight))
    damaged = next(p for p in parts if p.name.startswith(day))  # the day after midnight
    column = damaged / "data.bin" if (damaged / "data.bin").exists() else damaged / "sum.bin"
    os.truncate(column, column.stat().st_size // 2)

    began = time.monotonic()
    refused = launch("serve", free_port(), copy, output=subprocess.PIPE)
    said = refused.communicate(timeout=60)[0].decode(errors="replace")
    assert refused.returncode != 0, said
    assert time.monotonic() - began < 30
    assert damaged.name in said and "MINUTELY_ALLOW_DAMAGED_STORE" in said, said
    assert "--allow-damaged-store" in said, said

    allowed = Serve(copy, env={"MINUTELY_ALLOW_DAMAGED_STORE": "1"})
    try:
        url = allowed.start().url
        listed = status(url)["damaged_parts"]
        assert [(d["table"], damaged.name in d["part"]) for d in listed] == [("minutes_1m", True)]
        before = midnight - 3 * 3600
        for name in ("s-0", "s-3"):
            check_series(url, pts, "server", name, 60, before, midnight)
            check_summary(url, pts, "server", name, before, midnight)
    finally:
        allowed.close()


# -- 4. a store outage -------------------------------------------------------------------------


class History:
    """Bodies of 2,000 points on 2,000 distinct (series, minute) cells each, one body after
    another on later minutes, all older than the hot window: each point is a row for the
    writer's queue, so a stopped store fills it quickly."""

    def __init__(self, since: int) -> None:
        self.since = since // 60 * 60
        self.bodies = 0
        self.rng = np.random.default_rng(8)

    def next(self) -> Points:
        minutes = self.since + 60 * (100 * self.bodies + np.arange(100))
        self.bodies += 1
        tick = [fleet_tick(self.rng, float(m) + 7.5) for m in minutes]
        return join(*tick)


def test_a_store_outage_answers_503_at_the_bound_and_loses_nothing(tmp_path: Path) -> None:
    now = time.time()
    history = History(int(now) - 5 * DAY)
    start, end = history.since - 60, int(now) // 60 * 60 + 60
    answered: list[Points] = []

    def send(url: str) -> httpx.Response:
        body = history.next()
        r = post(url, batch_of(body), timeout=30)
        if r.status_code == 200:
            assert r.json()["accepted"] == body["ts"].size, r.text
            answered.append(body)
        else:
            history.bodies -= 1  # refused: the next body takes its minutes, never the future
        return r

    def landed() -> int:
        return sum(body["ts"].size for body in answered)

    def check(url: str) -> None:
        truth = join(*answered)
        for name in FLEET_SERVERS:
            check_summary(url, truth, "server", name, start, end)
        for name in ("cpu", "net"):
            check_summary(url, truth, "metric", name, start, end)
        check_series(url, truth, "server", "app-2", 3600, start, end)

    with ClickHouseHttpServer(tmp_path / "ch") as clickhouse:
        serve = Serve(
            tmp_path / "data",
            *("--hot-window", "2h", "--store", clickhouse.url),
            env={"MINUTELY_WRITER_MAX_BYTES": "1MB"},  # 26,214 queued rows: 13 bodies
        )
        try:
            url = serve.start().url
            for _ in range(5):
                assert send(url).status_code == 200
            wait_landed(url, landed())

            clickhouse.stop()  # the first outage: ingest goes on until the queue is full
            refused: list[httpx.Response] = []
            outage = time.monotonic()
            while time.monotonic() < outage + 10:
                r = send(url)
                assert r.status_code in (200, 503), r.text
                if r.status_code == 503:
                    refused.append(r)
                time.sleep(0.1)
            assert refused, "the writer's queue never reached writer_max_bytes"
            assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
            store = store_stats(url)
            assert store["failing_since"] is not None and store["last_error"], store
            assert store["pending_bytes"] >= 1 << 20, store

            clickhouse.start()  # the writer finds it again by itself
            wait_landed(url, landed(), timeout=90)
            assert send(url).status_code == 200
            wait_landed(url, landed())
            check(url)

            clickhouse.stop()  # the second outage, and a stop during it
            for _ in range(3):
                assert send(url).status_code == 200
            serve.terminate()
            spilled = list((tmp_path / "data" / "spill").glob("*.arrow"))
            assert spilled, serve.output()[-3000:]

            clickhouse.start()
            url = serve.start().url
            store = store_stats(url)
            assert store["recovered_rows"] == 3 * 2_000, store
            assert not list((tmp_path / "data" / "spill").glob("*.arrow"))
            check(url)
        finally:
            serve.close()


# -- 5. extreme but valid batches --------------------------------------------------------------

#: how far back ingest takes points: retention_1m (400 days) less an hour
RETENTION = 400 * DAY - 3600


def summary_table(url: str, by: str, name: str, start: int, end: int) -> pa.Table:
    """Q3 or Q4 as Arrow: the format for an answer of many rows."""
    r = httpx.get(
        f"{url}/api/v1/{by}s/{name}/summary",
        params={"start": start, "end": end, "format": "arrow"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return pa.ipc.open_stream(r.content).read_all()


def test_one_series_with_a_million_points_over_the_whole_retention(tmp_path: Path) -> None:
    now = time.time()
    rng = np.random.default_rng(9)
    n = 1_000_000
    pts: Points = {
        "server": np.full(n, "big-1", dtype=object),
        "metric": np.full(n, "temp", dtype=object),
        "ts": np.sort(rng.uniform(now - RETENTION + 60, now - 1, n)),
        "value": np.round(rng.normal(20, 5, n), 2),
    }
    pts["ts"][-1] = now - 1  # the ring's newest minute is now's (see the quiet-spell test)
    start, end = int(now) - 400 * DAY, int(now) // 60 * 60 + 120
    week = int(now) // 3600 * 3600 - 7 * DAY

    def check(url: str) -> None:
        check_summary(url, pts, "server", "big-1", start, end, rel=1e-9)
        check_summary(url, pts, "metric", "temp", week, end, rel=1e-9)
        check_series(url, pts, "server", "big-1", DAY, start, end, rel=1e-9)
        check_series(url, pts, "metric", "temp", 3600, week, end, rel=1e-9)
        check_series(url, pts, "server", "big-1", 60, end - 7200, end, rel=1e-9)

    serve = Serve(tmp_path / "data")
    try:
        url = serve.start().url
        accept(url, batch_of(pts))
        wait_landed(url, n, timeout=120)
        check(url)
        serve.terminate()
        url = serve.start().url
        check(url)
    finally:
        serve.close()


def test_a_hundred_thousand_series_with_one_point_each_over_the_whole_retention(
    tmp_path: Path,
) -> None:
    """10,000 servers x 10 metrics, one point each, in one body: each Q4 answer is 10,000
    rows, one point's value each."""
    now = time.time()
    rng = np.random.default_rng(10)
    servers, metrics = 10_000, 10
    server_names = np.array([f"host-{i:05d}" for i in range(servers)], dtype=object)
    metric_names = np.array([f"m{j}" for j in range(metrics)], dtype=object)
    n = servers * metrics
    batch = PointBatch(  # point i * metrics + j: server i, metric j
        server_names,
        np.repeat(np.arange(servers, dtype=np.int32), metrics),
        metric_names,
        np.tile(np.arange(metrics, dtype=np.int32), servers),
        rng.uniform(now - RETENTION + 60, now - 1, n),
        np.round(rng.normal(0, 100, n), 3),
    )
    batch.ts[-1] = now - 1  # the ring's newest minute is now's (see the quiet-spell test)
    start, end = int(now) - 400 * DAY, int(now) // 60 * 60 + 120

    def check(url: str) -> None:
        for j, metric in enumerate(metric_names):
            rows = summary_table(url, "metric", metric, start, end).sort_by("server")
            value = batch.value[j::metrics]
            assert rows.column("server").to_pylist() == server_names.tolist()
            assert (rows.column("count").to_numpy() == 1).all()
            for field in ("min", "max", "avg"):
                assert np.array_equal(rows.column(field).to_numpy(), value), (metric, field)
        pts = columns(batch.take(np.arange(3 * metrics)))  # the first three servers
        for server in server_names[:3]:
            check_summary(url, pts, "server", server, start, end)
            check_series(url, pts, "server", server, 30 * DAY, start, end)

    serve = Serve(tmp_path / "data", "--hot-window", "10m")
    try:
        url = serve.start().url
        accept(url, batch)
        wait_landed(url, n, timeout=120)
        check(url)
        serve.terminate()
        url = serve.start().url
        check(url)
    finally:
        serve.close()


# -- 6. a restart after a quiet spell ----------------------------------------------------------


def test_a_restart_after_a_quiet_spell_answers_every_stored_minute(tmp_path: Path) -> None:
    """With a 10-minute hot window, two points 4 minutes apart and 20 to 80 minutes old at a
    restart, on either side of the first hour the restart reloads into the ring: both are
    answered after it, as before it."""
    if (int(time.time() // 60) - 19) % 60 == 59:  # the reload's first hour changes within 1 min
        time.sleep(65)
    now = time.time()
    # rebuild_ring's first minute, from the clock: the hour of now + 1 min - 10 - 10 min
    reloaded = (int(now // 60) + 1 - 20) // 60 * 60
    pts: Points = {
        "server": np.array(["quiet-1", "quiet-1"], dtype=object),
        "metric": np.array(["cpu", "cpu"], dtype=object),
        "ts": np.array([60.0 * (reloaded - 3) + 5, 60.0 * (reloaded + 1) + 5]),
        "value": np.array([1.0, 2.0]),
    }
    start, end = 60 * (reloaded - 30), 60 * (reloaded + 30)
    serve = Serve(tmp_path / "data", "--hot-window", "10m")
    try:
        url = serve.start().url
        accept(url, batch_of(pts))
        wait_landed(url, 2)
        check_series(url, pts, "server", "quiet-1", 60, start, end)
        serve.terminate()
        url = serve.start().url
        check_summary(url, pts, "server", "quiet-1", start, end)
        check_series(url, pts, "server", "quiet-1", 60, start, end)
    finally:
        serve.close()
