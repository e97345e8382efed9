"""A real Prometheus (Debian's ``prometheus`` 2.42) scrapes a real ``minutely serve``'s own
``/metrics`` every second and remote-writes what it scraped back into that minutely: the
series minutely says about itself then answer through minutely's API, exactly as the samples
Prometheus stored say. Scraping is stopped (a config reload without the job) before the
comparison, so the samples are final."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from minutely.testing.natsserver import free_port
from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus")
#: the series checked: the remote-written points minutely counted, as it counted them
SELECTOR = 'minutely_points_accepted_total{protocol="remote_write"}'
STORED = 'minutely_points_accepted_total{job="minutely",protocol="remote_write"}'


@pytest.fixture
def minutely(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "minutely", "--store", "none", "--hot-window", "6h")
    yield server
    stop_server(server)


def config(minutely: Server, scrape: bool) -> str:
    host = minutely.url.removeprefix("http://")
    job = f"""
scrape_configs:
  - job_name: minutely
    static_configs: [{{targets: ["{host}"]}}]
"""
    return f"""
global: {{scrape_interval: 1s, evaluation_interval: 1m}}
{job if scrape else ""}
remote_write:
  - url: {minutely.url}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
"""


def prometheus_samples(api: str, selector: str) -> tuple[np.ndarray, np.ndarray]:
    """The (timestamps, values) Prometheus stored for the one series of ``selector``."""
    r = httpx.get(f"{api}/query", params={"query": f"{selector}[10m]"}).json()
    (result,) = r["data"]["result"]
    stamps = np.array([float(t) for t, _ in result["values"]])
    values = np.array([float(v) for _, v in result["values"]])
    return stamps, values


def test_prometheus_scrapes_minutely_and_writes_it_back(minutely: Server, tmp_path: Path) -> None:
    assert PROMETHEUS is not None, (
        "no prometheus binary: make test installs Debian's prometheus package"
        " (scripts/ensure_debian_tools.py); or apt-get install prometheus"
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(config(minutely, scrape=True))
    port = free_port()
    prom = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        # scrape until minutely has taken remote-written points and said so a few times
        deadline = time.monotonic() + 90
        values = np.zeros(0)
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                _, values = prometheus_samples(api, SELECTOR)
            except (httpx.HTTPError, ValueError, KeyError):
                continue
            if (values > 0).sum() >= 5:
                break
        assert (values > 0).sum() >= 5, "Prometheus never scraped a remote_write count > 0"
        path.write_text(config(minutely, scrape=False))
        prom.send_signal(signal.SIGHUP)  # reload: scraping stops, remote_write goes on
        time.sleep(4)
        stamps, values = prometheus_samples(api, SELECTOR)
        last = stamps.max()
        time.sleep(2)
        assert prometheus_samples(api, SELECTOR)[0].max() == last, "scraping did not stop"

        start = int(stamps.min() // 60 * 60)
        end = int(last // 60 * 60 + 60)
        server = "127.0.0.1"  # the instance label, its port stripped
        row: dict[str, float] = {}
        while time.monotonic() < deadline + 30:
            rows = httpx.get(
                f"{minutely.url}/api/v1/servers/{server}/summary",
                params={"start": start, "end": end},
            ).json()["rows"]
            row = next((x for x in rows if x["metric"] == STORED), {})
            if row.get("count") == values.size:
                break
            time.sleep(0.2)
        assert row.get("count") == values.size, (row, values.size)
        # a counter (its _total name says so) answers its rate: each sample's increase over
        # the one before it (a drop is a restart), the first one's 0, summed per bucket
        growth = np.diff(values)
        increases = np.r_[0.0, np.where(growth >= 0, growth, values[1:])]
        assert row["kind"] == "counter"
        rates = httpx.get(
            f"{minutely.url}/api/v1/servers/{server}/summary",
            params={"start": start, "end": end, "fn": "rate", "metric": STORED},
        ).json()["rows"]
        assert rates[0]["rate"] == pytest.approx(increases.sum() / (end - start), rel=1e-12)

        # per minute, through the series answer (Q1)
        answer = httpx.get(
            f"{minutely.url}/api/v1/servers/{server}/series",
            params={"start": start, "end": end, "metric": STORED, "fn": "rate"},
        ).json()
        (series,) = answer["series"]
        minutes = (stamps // 60 * 60).astype(np.int64)
        for i, t in enumerate(answer["timestamps"]):
            mine = minutes == t
            assert series["count"][i] == mine.sum()
            if mine.any():
                assert series["rate"][i] == pytest.approx(increases[mine].sum() / 60, rel=1e-12)

        # and through minutely's Prometheus query API, as Grafana would ask
        r = httpx.get(
            f"{minutely.url}/api/v1/query",
            params={"query": f"increase({SELECTOR}[10m])", "time": end},
        ).json()
        assert r["status"] == "success", r
        (result,) = r["data"]["result"]
        assert result["metric"]["instance"] == server
        assert float(result["value"][1]) == pytest.approx(
            increases[stamps >= end - 600].sum(), rel=1e-12
        )
        r = httpx.get(
            f"{minutely.url}/api/v1/query",
            params={"query": f"count_over_time({SELECTOR}[10m])", "time": end},
        ).json()
        assert float(r["data"]["result"][0]["value"][1]) == values.size

        # the other families arrived too: the request histogram by route template
        names = httpx.get(f"{minutely.url}/api/v1/label/__name__/values").json()["data"]
        for name in (
            "minutely_http_request_duration_seconds_bucket",
            "minutely_bus_backlog_seconds",
            "minutely_hot_ring_bytes",
            "minutely_fold_seconds_count",
        ):
            assert name in names, name
        handlers = httpx.get(
            f"{minutely.url}/api/v1/label/handler/values",
            params={"match[]": "minutely_http_request_duration_seconds_count"},
        ).json()["data"]
        assert "/api/v1/write" in handlers and "/metrics" in handlers
    finally:
        prom.terminate()
        prom.wait(timeout=30)
