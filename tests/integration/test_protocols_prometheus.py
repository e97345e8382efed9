"""A real Prometheus (Debian's ``prometheus``) scrapes a target and remote-writes into a real
``minutely serve``; minutely's Q3 answer is then compared with numpy over the raw samples
Prometheus itself stored. The target is stopped before the comparison, so the samples are
final, and Prometheus writes stale markers for it, which minutely must drop, not reject."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from minutely.testing.natsserver import free_port
from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus")


class Target:
    """A scrape target whose gauge takes a new random value at every scrape."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                value = round(float(rng.normal(100, 30)), 3)
                body = (
                    f'# TYPE probe_gauge gauge\nprobe_gauge{{room="a b",kind="x"}} {value}\n'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)
                outer.scrapes += 1

            def log_message(self, *args: object) -> None:
                pass

        self.scrapes = 0
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def minutely(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "minutely", "--store", "none", "--hot-window", "6h")
    yield server
    stop_server(server)


def test_prometheus_remote_write_answers_as_numpy_says(minutely: Server, tmp_path: Path) -> None:
    assert PROMETHEUS is not None, (
        "no prometheus binary: make test installs Debian's prometheus package"
        " (scripts/ensure_debian_tools.py); or apt-get install prometheus"
    )
    target = Target()
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""
global: {{scrape_interval: 1s, evaluation_interval: 1m}}
scrape_configs:
  - job_name: probe
    static_configs: [{{targets: ["127.0.0.1:{target.port}"]}}]
remote_write:
  - url: {minutely.url}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
"""
    )
    assert PROMETHEUS is not None
    prom = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while target.scrapes < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        target.stop()  # the next scrape fails: Prometheus writes stale markers
        time.sleep(3)
        r = httpx.get(f"{api}/query", params={"query": "probe_gauge[10m]"}).json()
        (result,) = r["data"]["result"]
        samples = np.array([float(v) for _, v in result["values"]])
        stamps = np.array([float(t) for t, _ in result["values"]])
        assert samples.size >= 8
        start = int(stamps.min() // 60 * 60)
        end = int(stamps.max() // 60 * 60 + 60)
        name = 'probe_gauge{job="probe",kind="x",room="a b"}'
        row: dict[str, float] = {}
        while time.monotonic() < deadline:
            rows = (
                httpx.get(
                    f"{minutely.url}/api/v1/servers/127.0.0.1/summary",
                    params={"start": start, "end": end},
                )
                .json()
                .get("rows", [])
            )
            row = next((x for x in rows if x["metric"] == name), {})
            if row.get("count") == samples.size:
                break
            time.sleep(0.2)
        assert row.get("count") == samples.size, (row, samples.size)
        assert row["min"] == samples.min() and row["max"] == samples.max()
        assert row["avg"] == pytest.approx(samples.mean(), rel=1e-12)
        counts = httpx.get(f"{minutely.url}/api/v1/ingest/protocols").json()["remote_write"]
        assert counts["rejected"] == 0
        assert counts["dropped"] >= 1  # the stale markers of the stopped target
    finally:
        prom.terminate()
        prom.wait(timeout=30)
