"""Real ``minutely`` processes for tests and benchmarks: one way to start them.

``launch`` runs ``python -m minutely <command> --port P --data-dir D …`` with the caller's
environment minus its ``MINUTELY_*`` settings (so a developer's shell cannot change a test)
plus the ones given; ``wait_healthy`` waits for ``/healthz``. ``ServerProcess`` is the
start/wait/stop life of the other servers the tests run (``nats-server``, the ClickHouse
stand-in).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Self

import httpx

#: the checkout the package runs from (commands run from it, so ``python -m minutely`` is this one)
ROOT = Path(__file__).resolve().parent.parent.parent


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
    own_process_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``minutely <command>`` (serve, ingest) on ``port``; ``output`` takes its
    stdout and stderr (a file, ``None`` for the caller's, DEVNULL by default);
    ``own_process_group`` as in ``ServerProcess``."""
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
        process_group=0 if own_process_group else None,
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


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` (SIGTERM, then SIGKILL after 10 s) and wait for it to exit."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerProcess:
    """A server the tests run as a child process on ``port``: ``start`` launches it and waits
    until ``_answers``; ``stop`` ends it (SIGTERM, then SIGKILL), ``kill`` as a crash would
    (SIGKILL); each may be called again.
    Subclasses say how to launch it (``_launch``) and how to tell it is up (``_answers``)."""

    #: what error messages call it
    label = "server"
    #: launch it in a process group of its own, so that a terminal's Ctrl-C reaches only its
    #: parent, which then stops everything in order (``minutely demo``)
    own_process_group = False

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def _launch(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _answers(self) -> bool:
        raise NotImplementedError

    def _popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen`` as ``_launch`` should call it."""
        group = 0 if self.own_process_group else None
        return subprocess.Popen(args, process_group=group, **kwargs)

    def _exit_detail(self) -> str:
        """Said after "exited with N" (a log tail, a likely cause)."""
        return ""

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (if it is not running) and wait until it answers."""
        if self.proc is not None:
            return
        self.proc = self._launch()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                msg = f"{self.label} exited with {code}{self._exit_detail()}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                self.stop()
                msg = f"{self.label} did not answer on port {self.port} within {timeout} s"
                raise RuntimeError(msg)
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would end it, and wait for it to exit."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    @property
    def pid(self) -> int | None:
        """The running server's process id; None when it is not running."""
        return None if self.proc is None else self.proc.pid

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
