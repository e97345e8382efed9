"""Fixtures that run ``minutely serve`` as a real process on a free port."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from minutely.testing.natsserver import free_port
from minutely.testing.processes import launch, stop_process, wait_healthy


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]

    def wait_folded(self, points: int, timeout: float = 30.0) -> dict[str, object]:
        """Wait until the aggregator has folded ``points`` points; return the status."""
        deadline = time.monotonic() + timeout
        while True:
            status = httpx.get(f"{self.url}/api/v1/status").json()
            if status["aggregator"]["points"] >= points or time.monotonic() > deadline:
                return dict(status)
            time.sleep(0.05)


def start_server(
    tmp: Path,
    *extra: str,
    command: str = "serve",
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Server:
    """Start ``minutely <command>`` on ``port`` (a free one by default) with the caller's
    environment minus its ``MINUTELY_*`` settings, plus ``env``."""
    port = port or free_port()
    proc = launch(command, port, tmp, *extra, env=env, output=None)
    url = f"http://127.0.0.1:{port}"
    if wait_healthy(url, proc):
        return Server(url, proc)
    if proc.poll() is not None:
        raise RuntimeError(f"minutely {command} exited with {proc.returncode}")
    proc.kill()
    raise RuntimeError(f"minutely {command} did not answer /healthz within 30 s")


def stop_server(server: Server) -> None:
    stop_process(server.proc)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path, "--hot-window", "6h")
    yield s
    stop_server(s)
