"""Graphite plaintext over TCP into a real ``minutely serve --graphite-port``: lines sent on a
socket (a bad one among them, which must not close the connection), then Q3 against numpy."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from minutely.testing.natsserver import free_port
from minutely.testing.processes import launch, stop_process, wait_healthy
from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture
def graphite(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    port = free_port()
    server = start_server(
        tmp_path,
        "--store",
        "none",
        "--hot-window",
        "6h",
        "--graphite-port",
        str(port),
        env={"MINUTELY_GRAPHITE_SERVER_NODE": "1"},
    )
    yield server, port
    stop_server(server)


def test_socket_lines_answer_as_numpy_says(graphite: tuple[Server, int]) -> None:
    server, port = graphite
    rng = np.random.default_rng(13)
    now = int(time.time())
    values = np.round(rng.normal(40, 10, 2000), 3)
    stamps = now - 1800 + np.sort(rng.integers(0, 1700, 2000))
    lines = [f"collectd.web_7.cpu.idle {v} {t}\n" for v, t in zip(values, stamps, strict=True)]
    lines.insert(1000, "this is not a graphite line\n")
    payload = "".join(lines).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for i in range(0, len(payload), 4096):  # lines cut across writes
            sock.sendall(payload[i : i + 4096])
    lo, hi = now - 3600, now + 60
    deadline = time.monotonic() + 30
    row: dict[str, float] = {}
    while time.monotonic() < deadline:
        r = httpx.get(f"{server.url}/api/v1/servers/web_7/summary", params={"start": lo, "end": hi})
        rows = {x.pop("metric"): x for x in r.json().get("rows", [])}
        row = rows.get("collectd.cpu.idle", {})
        if row.get("count") == values.size:
            break
        time.sleep(0.1)
    assert row.get("count") == values.size
    assert row["min"] == values.min() and row["max"] == values.max()
    assert row["avg"] == pytest.approx(values.mean(), rel=1e-12)
    status = httpx.get(f"{server.url}/api/v1/status").json()["graphite"]
    assert status["accepted"] == values.size and status["rejected"] == 1
    assert status["connections"] == 1


def test_lines_of_series_past_max_series_are_dropped_counted_and_logged_once(
    tmp_path: Path,
) -> None:
    """No reply channel: a series limit drops the new series' lines, takes the known ones
    from the same chunk and the lines after it, counts the drops by limit on status and
    /metrics, and logs once a minute; the connection is never stuck retrying."""
    port, http_port = free_port(), free_port()
    url = f"http://127.0.0.1:{http_port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = launch(
            "serve", http_port, tmp_path / "data", "--store", "none", "--graphite-port",
            str(port), env={"MINUTELY_GRAPHITE_SERVER_NODE": "1", "MINUTELY_MAX_SERIES": "3"},
            output=log,
        )  # fmt: skip
    try:
        assert wait_healthy(url, proc, timeout=60), log_path.read_text()
        rng = np.random.default_rng(3)
        now = int(time.time())
        known = ["collectd.web_1.cpu", "collectd.web_1.mem"]
        new = [f"collectd.web_2.m{i}" for i in range(5)]
        sent: dict[str, list[float]] = {path: [] for path in known}

        def lines(paths: list[str], n: int) -> tuple[bytes, int]:
            """``n`` lines of ``paths``, and how many are of a new series."""
            out = []
            for path in np.array(paths)[rng.integers(0, len(paths), n)].tolist():
                value = round(float(rng.normal(40, 10)), 3)
                if path in sent:
                    sent[path].append(value)
                out.append(f"{path} {value} {now - int(rng.integers(60, 1200))}\n")
            return "".join(out).encode(), sum(p in new for p in out_paths(out))

        def out_paths(out: list[str]) -> list[str]:
            return [line.split(" ", 1)[0] for line in out]

        def status() -> dict:
            return httpx.get(f"{url}/api/v1/status", timeout=10).json()

        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(lines(known, 50)[0])
            deadline = time.monotonic() + 30
            while status().get("series", 0) < 2:  # held, not pending: the rest is new
                assert time.monotonic() < deadline, log_path.read_text()[-2000:]
                time.sleep(0.1)
            refused = 0
            for _ in range(3):  # each chunk mixes both; the new series' lines are dropped
                body, of_new = lines(known + new, 200)
                refused += of_new
                sock.sendall(body)
                time.sleep(0.3)  # apart: separate chunks
            sock.sendall(lines(known, 50)[0])  # and later lines still go in
        taken = sum(len(v) for v in sent.values())
        deadline = time.monotonic() + 30
        while (graphite := status()["graphite"])["accepted"] < taken:
            assert time.monotonic() < deadline, (graphite, taken)
            time.sleep(0.1)
        assert graphite["accepted"] == taken and graphite["rejected"] == 0
        assert graphite["refused"] == {"max_series": refused}
        assert status()["limits"]["refused"]["max_series"] >= 1
        scraped = httpx.get(f"{url}/metrics", timeout=10).text
        assert (
            f'minutely_graphite_refused_points_total{{limit="max_series"}} {refused}.0' in scraped
        )
        lo, hi = now - 3600, now + 60
        r = httpx.get(f"{url}/api/v1/servers/web_1/summary", params={"start": lo, "end": hi})
        rows = {row["metric"]: row for row in r.json()["rows"]}
        for path in known:
            v = np.array(sent[path])
            row = rows[path.replace("web_1.", "")]
            assert (row["min"], row["max"], row["count"]) == (v.min(), v.max(), v.size)
            assert row["avg"] == pytest.approx(v.mean(), rel=1e-12)
        assert httpx.get(f"{url}/api/v1/servers", timeout=10).json()["servers"] == ["web_1"]
    finally:
        stop_process(proc)
    logged = [line for line in log_path.read_text().splitlines() if "graphite: dropped" in line]
    assert len(logged) == 1, logged
    assert "by max_series" in logged[0] and "over the limit of 3 series" in logged[0]
