"""The client commands (``simulate``, ``import``) against a real ``minutely serve`` that has
tokens: taken with a write token (``--token``, ``--token-file`` or ``MINUTELY_TOKEN``), and
refused without one with a message that names the 401 and how to pass a token."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from minutely import auth
from minutely.auth import Scope
from minutely.testing.natsserver import free_port
from minutely.testing.processes import ROOT, clean_env, launch, stop_process, wait_healthy

pytestmark = pytest.mark.slow


class Secured:
    """A running ``serve`` with a write and a read token."""

    def __init__(self, url: str, writer: str, reader: str) -> None:
        self.url = url
        self.writer = writer
        self.reader = reader

    def get(self, path: str, **params: str | int) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.reader}"}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=30)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    data = tmp_path / "data"
    data.mkdir()
    writer = auth.add_token(auth.tokens_path(data), "fleet", Scope.WRITE)
    reader = auth.add_token(auth.tokens_path(data), "grafana", Scope.READ)
    port = free_port()
    proc = launch("serve", port, data, "--store", "none")
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(url, proc), "minutely serve did not start"
        yield Secured(url, writer, reader)
    finally:
        stop_process(proc)


def minutely(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minutely", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=ROOT,
        timeout=120,
    )


def assert_refused_for_want_of_a_token(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1, done.stderr
    assert "HTTP 401" in done.stderr
    assert "pass a write token with --token, --token-file or MINUTELY_TOKEN" in done.stderr


def counts_by_series(server: Secured) -> dict[tuple[str, str], int]:
    names = server.get("/api/v1/servers").json()["servers"]
    out: dict[tuple[str, str], int] = {}
    for name in names:
        rows = server.get(f"/api/v1/servers/{name}/summary", start="-1d").json()["rows"]
        out |= {(name, row["metric"]): row["count"] for row in rows}
    return out


def test_simulate_sends_its_token_and_says_how_to_pass_one_when_refused(
    secured: Secured, tmp_path: Path
) -> None:
    fleet = ["--url", secured.url, "--servers", "2", "--metrics", "3", "--duration", "0"]
    refused = minutely("simulate", *fleet, "--backfill", "2m")
    assert_refused_for_want_of_a_token(refused)
    assert secured.get("/api/v1/servers").json() == {"servers": []}

    done = minutely("simulate", *fleet, "--backfill", "2m", "--token", secured.writer)
    assert done.returncode == 0, done.stderr
    accepted = int(done.stderr.split("simulate: ")[-1].split(" points accepted")[0])
    assert accepted >= 2 * 3 * 120  # two minutes of one point a second, and the live tail

    token_file = tmp_path / "token"
    token_file.write_text(secured.writer + "\n")
    again = minutely("simulate", *fleet, "--token-file", str(token_file))
    assert again.returncode == 0, again.stderr
    accepted += int(again.stderr.split("simulate: ")[-1].split(" points accepted")[0])
    # every point answered 200 is counted (the ring takes them as they are folded)
    deadline = time.monotonic() + 30
    while sum((counts := counts_by_series(secured)).values()) < accepted:
        assert time.monotonic() < deadline, f"{sum(counts.values())} of {accepted} points"
        time.sleep(0.2)
    assert len(counts) == 6 and sum(counts.values()) == accepted


def test_import_sends_minutely_token_and_says_how_to_pass_one_when_refused(
    secured: Secured, tmp_path: Path
) -> None:
    rng = np.random.default_rng(17)
    n = 3000
    now = time.time()
    servers = np.array(["db-1", "db-2", "web-1"])[rng.integers(0, 3, n)]
    metrics = np.array(["cpu", "mem"])[rng.integers(0, 2, n)]
    ts = np.round(now - rng.uniform(120, 3000, n), 3)
    values = np.round(rng.normal(40, 15, n), 3)
    path = tmp_path / "history.csv"
    table = pa.table({"server": servers, "metric": metrics, "ts": ts, "value": values})
    pacsv.write_csv(table, path)

    refused = minutely("import", str(path), "--url", secured.url)
    assert_refused_for_want_of_a_token(refused)
    done = minutely(
        "import", str(path), "--url", secured.url, env={"MINUTELY_TOKEN": secured.writer}
    )
    assert done.returncode == 0, done.stderr
    assert f"{n:,} points accepted, 0 rejected" in done.stderr

    deadline = time.monotonic() + 30
    while True:
        rows = {
            (server, row["metric"]): row
            for server in ("db-1", "db-2", "web-1")
            for row in secured.get(f"/api/v1/servers/{server}/summary", start="-1d")
            .json()
            .get("rows", [])
        }
        if sum(row["count"] for row in rows.values()) == n:
            break
        assert time.monotonic() < deadline, f"{len(rows)} series so far"
        time.sleep(0.2)
    for (server, metric), row in rows.items():
        v = values[(servers == server) & (metrics == metric)]
        assert (row["min"], row["max"], row["count"]) == (v.min(), v.max(), v.size)
        assert row["avg"] == pytest.approx(v.mean(), rel=1e-12)
    assert len(rows) == 6
