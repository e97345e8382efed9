"""Fixtures for the dashboard tests: real ``minutely serve`` processes and headless Chromium.

- ``fleet``: one server for the whole session, filled by ``minutely simulate`` (8 servers ×
  12 metrics, 50 minutes of history, so every preset range of an hour or more holds all
  of it and answers stay the same while the tests run) and waited on until every accepted
  point is folded.
- ``start_server``: more servers for a single test (an empty one, one to stop, one with a
  wide server); each is stopped when the test ends.
- ``browser`` / ``page``: the Chromium ``scripts/ensure_chromium.py`` finds (Debian's, else
  Playwright's own; ``make test`` installs one first when there is none), driven by
  Playwright's sync API. A page fails its test if the dashboard throws an uncaught error.
- ``shoot``: saves a screenshot under ``build/screenshots/``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from minutely.testing.natsserver import free_port
from minutely.testing.processes import clean_env, launch, stop_process, wait_healthy
from scripts.ensure_chromium import find_chromium

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
FLEET_SERVERS = 8
FLEET_METRICS = 12


def chromium_path() -> str:
    found = find_chromium()
    if found is None:
        pytest.fail("no Chromium here: `python scripts/ensure_chromium.py` installs one")
    return found


@dataclass
class Server:
    """A ``minutely serve`` subprocess; its output goes to ``log``."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    _log_file: Any = field(repr=False)

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def post_points(self, points: list[dict[str, Any]]) -> dict[str, Any]:
        resp = httpx.post(f"{self.url}/api/v1/points", json=points, timeout=60)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        assert body["rejected"] == 0, body["errors"][:5]
        return body

    def wait_folded(self, points: int, timeout: float = 60.0) -> None:
        """Wait until the aggregator has folded at least ``points`` points."""
        deadline = time.monotonic() + timeout
        while True:
            folded = self.get("/api/v1/status")["aggregator"]["points"]
            if folded >= points:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {folded} of {points} points folded after {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log_file.close()


def launch_server(data_dir: Path, port: int | None = None) -> Server:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    log_file = log.open("wb")
    proc = launch("serve", port, data_dir, output=log_file)
    server = Server(f"http://127.0.0.1:{port}", proc, log, log_file)
    if wait_healthy(server.url, proc):
        return server
    server.stop()
    raise RuntimeError(f"minutely serve did not answer /healthz in 30 s:\n{log.read_text()}")


def simulate(server: Server, *args: str) -> int:
    """Run ``minutely simulate`` against ``server``; the number of points it had accepted."""
    done = subprocess.run(
        [sys.executable, "-m", "minutely", "simulate", "--url", server.url, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=clean_env(),
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"(\d+) points accepted", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return int(found.group(1))


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with 8 servers × 12 metrics and 50 minutes of history, all of it folded."""
    server = launch_server(tmp_path_factory.mktemp("fleet"))
    try:
        accepted = simulate(
            server,
            "--servers",
            str(FLEET_SERVERS),
            "--metrics",
            str(FLEET_METRICS),
            "--backfill",
            "50m",
            "--duration",
            "3",
            "--seed",
            "7",
        )
        server.wait_folded(accepted)
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start extra servers for one test; all are stopped after it."""
    started: list[Server] = []

    def start(name: str = "server", port: int | None = None) -> Server:
        server = launch_server(tmp_path / f"{name}-{len(started)}", port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own context); fails the test on an uncaught error in the dashboard."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, timezone_id="UTC")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def shoot(page: Any) -> Callable[[str], Path]:
    """``shoot("server-view")`` saves build/screenshots/server-view.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(name: str, *, full_page: bool = False, hover: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        if not hover:
            page.mouse.move(0, VIEWPORT["height"] - 1)  # no stray hover state in the picture
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save


#: Share of a canvas's pixels that are painted and differ from the panel background, or, with
#: a colour, that are close to that colour.
PAINTED_JS = """([canvas, color]) => {
  const ctx = canvas.getContext("2d");
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const ref = color || [18, 24, 33];
  let hits = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    const d = Math.abs(data[i] - ref[0]) + Math.abs(data[i + 1] - ref[1])
      + Math.abs(data[i + 2] - ref[2]);
    if (color ? d < 60 : d > 24) hits++;
  }
  return hits / (canvas.width * canvas.height);
}"""

#: A summary table as {src, rows: [{key, <col>: value-or-null}]} from its data attributes.
TABLE_JS = """(table) => ({
  src: table.dataset.src,
  rows: [...table.querySelectorAll("tbody tr")].map((tr) => {
    const row = { key: tr.dataset.key };
    for (const td of tr.querySelectorAll("td[data-col]")) {
      if (!("value" in td.dataset)) continue;
      row[td.dataset.col] = td.dataset.value === "" ? null : Number(td.dataset.value);
    }
    return row;
  }),
})"""


class Dashboard:
    """What a test does with the dashboard in ``page``: open views, wait for draws, read."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def open(
        self, server: Server, hash_: str, view: str | None = None, timeout_ms: float | None = None
    ) -> None:
        self.page.goto(f"{server.url}/#{hash_}")
        if view:
            self.wait_drawn(view, timeout_ms=timeout_ms)

    def draws(self, view: str) -> int:
        return int(
            self.page.evaluate(
                "(v) => (window.__minutely?.draws || []).filter((d) => d.view === v).length", view
            )
        )

    def wait_drawn(
        self, view: str, after: int = 0, timeout_ms: float | None = None
    ) -> dict[str, Any]:
        """Wait for the view's draw number ``after + 1`` (``timeout_ms``: the page's default
        when None); its timings."""
        self.page.wait_for_function(
            "([v, n]) => (window.__minutely?.draws || []).filter((d) => d.view === v).length > n",
            arg=[view, after],
            timeout=timeout_ms,
        )
        entry: dict[str, Any] = self.page.evaluate(
            "(v) => window.__minutely.draws.filter((d) => d.view === v).at(-1)", view
        )
        return entry

    def painted(self, selector: str, color: tuple[int, int, int] | None = None) -> float:
        canvas = self.page.locator(selector).first.element_handle()
        return float(self.page.evaluate(PAINTED_JS, [canvas, color and list(color)]))

    def table(self, selector: str = "table.summary") -> dict[str, Any]:
        result: dict[str, Any] = self.page.locator(selector).evaluate(TABLE_JS)
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate("() => window.__minutely.state")
        return result

    def hash(self) -> str:
        return str(self.page.evaluate("() => location.hash"))


@pytest.fixture
def ui(page: Any) -> Dashboard:
    return Dashboard(page)
