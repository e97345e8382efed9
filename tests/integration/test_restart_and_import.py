"""A real ``minutely serve`` on the embedded store: history imported from files (CSV, Parquet,
Arrow) older than the hot window, a clean stop and a SIGKILL, and every answer equal to numpy
ground truth after each restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import Server, start_server, stop_server
from tests.integration.truth import check_series, check_summary

pytestmark = pytest.mark.slow

DAY = 86400


def points(seed: int, n: int, since: float, until: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    servers = np.array([f"db-{i}" for i in range(3)], dtype=object)
    metrics = np.array(["cpu", "iops", "lag"], dtype=object)
    return pa.table(
        {
            "server": pa.array(servers[rng.integers(0, 3, n)], pa.string()),
            "metric": pa.array(metrics[rng.integers(0, 3, n)], pa.string()),
            "ts": pa.array(np.sort(rng.uniform(since, until, n))),
            "value": pa.array(np.round(rng.normal(10, 3, n), 3)),
        }
    )


def check(server: Server, truth: pa.Table, start: int, end: int) -> None:
    """Q1 for two servers at three steps and Q4 for one metric, against ``truth`` (avg to
    1e-9, this test's tolerance)."""
    cols = {k: truth.column(k).to_numpy(zero_copy_only=False) for k in truth.column_names}
    for name in ("db-0", "db-2"):
        for step in (60, 3600, DAY):
            check_series(server.url, cols, "server", name, step, start, end, rel=1e-9)
    check_summary(server.url, cols, "metric", "lag", start, end, rel=1e-9)


def wait_written(server: Server, rows_min: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = httpx.get(f"{server.url}/api/v1/status").json()["store"]
        if store["pending"] == 0 and store["rows"] >= rows_min:
            return
        time.sleep(0.1)
    raise AssertionError(f"the store did not catch up: {store}")


def run_import(server: Server, files: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minutely", "import", *files, "--url", server.url],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_restart_and_crash(tmp_path: Path) -> None:
    now = time.time()
    start = int(now // DAY) * DAY - 3 * DAY
    end = int(now // 60) * 60 + 60
    old = points(1, 30_000, start + 100, now - 4 * 3600)  # all before the 2-hour hot window
    recent = points(2, 6_000, now - 3600, now - 400)
    pacsv.write_csv(old.slice(0, 10_000), tmp_path / "a.csv")
    pq.write_table(old.slice(10_000, 10_000), tmp_path / "b.parquet")
    with pa.OSFile(str(tmp_path / "c.arrow"), "wb") as f, pa.ipc.new_file(f, old.schema) as w:
        w.write_table(old.slice(20_000))
    pq.write_table(recent, tmp_path / "recent.parquet")
    data = tmp_path / "data"

    server = start_server(data, "--hot-window", "2h")
    files = [str(tmp_path / n) for n in ("a.csv", "b.parquet", "c.arrow", "recent.parquet")]
    try:
        out = run_import(server, files)
        assert out.returncode == 0, out.stderr
        assert "36,000 points accepted, 0 rejected" in out.stderr
        truth = pa.concat_tables([old, recent])
        server.wait_folded(36_000)
        wait_written(server)  # points older than the ring are visible once written (<= 1 s)
        check(server, truth, start, end)
    finally:
        stop_server(server)  # SIGTERM: a clean stop writes everything

    server = start_server(data, "--hot-window", "2h")
    try:
        check(server, truth, start, end)
        # the same import again after the restart: every block is known, none applied again
        out = run_import(server, files)
        assert out.returncode == 0, out.stderr
        assert "36,000 points accepted, 0 rejected" in out.stderr
        assert server.wait_folded(1, timeout=1.0)["aggregator"]["points"] == 0
        check(server, truth, start, end)
        # late points for minutes the ring already closed: written as corrections
        late = points(3, 2_000, now - 1800, now - 900)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, late.schema) as w:
            w.write_table(late)
        r = httpx.post(
            f"{server.url}/api/v1/points",
            content=sink.getvalue().to_pybytes(),
            headers={"content-type": "application/vnd.apache.arrow.stream"},
        )
        assert r.json()["accepted"] == 2_000
        truth = pa.concat_tables([truth, late])
        server.wait_folded(2_000)
        wait_written(server)
        server.proc.send_signal(signal.SIGKILL)  # everything it holds is already in the store
        server.proc.wait()
    finally:
        stop_server(server)

    server = start_server(data, "--hot-window", "2h")
    try:
        check(server, truth, start, end)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "minutely",
                "import",
                str(tmp_path / "nope.csv"),
                "--url",
                server.url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1 and "no such file" in r.stderr
    finally:
        stop_server(server)
