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
