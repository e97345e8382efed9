"""Real ``minutely`` processes for tests and benchmarks: one way to start them.

``launch`` runs ``python -m minutely <command> --port P --data-dir D …`` with the caller's
environment minus its ``MINUTELY_*`` settings (so a developer's shell cannot change a test)
plus the ones given; ``wait_healthy`` waits for ``/healthz``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

#: the repository root (commands run from it)
ROOT = Path(__file__).resolve().parent.parent


def clean_env(settings: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without ``MINUTELY_*`` settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINUTELY_")}
    return env | (settings or {})


def launch(
    command: str,
    port: int,
    data_dir: str | Path,
    *extra: str,
    env: dict[str, str] | None = None,
    output: IO[Any] | int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start ``minutely <command>`` (serve, ingest) on ``port``; ``output`` takes its
    stdout and stderr (a file, ``None`` for the caller's, DEVNULL by default)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minutely",
            command,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        env=clean_env(env),
        stdout=output,
        stderr=subprocess.STDOUT if output not in (None, subprocess.DEVNULL) else output,
        cwd=ROOT,
    )


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30
) -> bool:
    """True once ``url`` answers ``/healthz``; False if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    return False
