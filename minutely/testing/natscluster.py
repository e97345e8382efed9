"""Clustered ``nats-server`` processes with JetStream on loopback, for tests and the demo.

``NatsCluster`` owns N (3 by default) ``nats-server`` processes that form one cluster: each
has its own client port, route port, monitoring port, ``server_name`` and store directory
under a directory the caller owns, and routes to all the others. ``start`` returns once the
JetStream meta group has a leader that every running server agrees on and that sees all
of them as current, so a stream with R=3 can be created at once. A server can be killed
(``kill``, SIGKILL), stopped and started again on the same ports and store, as a crashed
broker would be restarted; ``stream_leader`` says which server leads a stream, read from
the monitoring endpoint (``/jsz``), so a test can kill exactly that one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Self

import httpx

from minutely.testing.natsserver import MAX_PAYLOAD, NatsServer, free_ports


class ClusteredNatsServer(NatsServer):
    """One ``nats-server -js`` of a cluster: a name, a route port and the others' routes."""

    def __init__(
        self,
        store_dir: Path,
        port: int,
        *,
        name: str,
        cluster: str,
        route_port: int,
        routes: list[int],
        monitor_port: int,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        super().__init__(store_dir, port, max_payload=max_payload)
        self.name = name
        self.cluster = cluster
        self.route_port = route_port
        self.routes = routes
        self.monitor_port = monitor_port
        self.log = store_dir / "server.log"
        self.label = f"nats-server {name}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def _config_lines(self) -> list[str]:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
        return [
            *super()._config_lines(),
            f"server_name: {self.name}",
            f'http: "127.0.0.1:{self.monitor_port}"',
            f'log_file: "{self.log}"',
            "cluster {",
            f"  name: {self.cluster}",
            f'  listen: "127.0.0.1:{self.route_port}"',
            f"  routes: [{routes}]",
            "}",
        ]

    def _exit_detail(self) -> str:
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return f" (port {self.port} or {self.route_port} taken?): {tail}"

    def jsz(self, **params: str) -> dict[str, Any] | None:
        """The server's ``/jsz`` monitoring answer; None if it does not answer."""
        try:
            r = httpx.get(f"{self.monitor_url}/jsz", params=params, timeout=1.0)
        except httpx.TransportError:
            return None
        if r.status_code != 200:
            return None
        answer: dict[str, Any] = r.json()
        return answer


class NatsCluster:
    """``size`` clustered ``nats-server`` processes with JetStream, stores under ``directory``.

    Ports are chosen when the cluster is built and kept for its life, so a server started
    again comes back where its peers and clients expect it."""

    def __init__(
        self,
        directory: Path,
        size: int = 3,
        name: str = "minutely",
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        self.directory = directory
        self.name = name
        ports = free_ports(3 * size)
        clients, routes, monitors = ports[:size], ports[size : 2 * size], ports[2 * size :]
        self.servers = [
            ClusteredNatsServer(
                directory / f"s{i}",
                clients[i],
                name=f"s{i}",
                cluster=name,
                route_port=routes[i],
                routes=[p for j, p in enumerate(routes) if j != i],
                monitor_port=monitors[i],
                max_payload=max_payload,
            )
            for i in range(size)
        ]

    @property
    def urls(self) -> str:
        """Every server's client URL, comma-separated (what ``--bus`` takes)."""
        return ",".join(s.url for s in self.servers)

    def url(self, i: int) -> str:
        return self.servers[i].url

    def pid(self, i: int) -> int | None:
        """Server ``i``'s process id; None while it is not running."""
        return self.servers[i].pid

    def start(self, i: int | None = None, timeout: float = 30.0) -> None:
        """Start server ``i`` (all of them if None) and wait until every running server
        agrees on a JetStream meta leader that sees all the running ones as current."""
        deadline = time.monotonic() + timeout
        for server in self.servers if i is None else [self.servers[i]]:
            server.start(timeout)
        self.wait_for_meta_leader(max(0.0, deadline - time.monotonic()))

    def stop(self, i: int | None = None) -> None:
        """Stop server ``i`` (all of them if None): SIGTERM, then SIGKILL."""
        for server in self.servers if i is None else [self.servers[i]]:
            server.stop()

    def kill(self, i: int) -> None:
        """SIGKILL server ``i``, as a crash would end it."""
        self.servers[i].kill()

    def running(self) -> list[int]:
        return [i for i, s in enumerate(self.servers) if s.proc is not None]

    def meta_leader(self) -> int | None:
        """The index of the meta group's leader if every running server names the same one
        and it sees every other running server as current; else None."""
        running = self.running()
        leaders = set()
        for i in running:
            jsz = self.servers[i].jsz()
            meta = (jsz or {}).get("meta_cluster") or {}
            leaders.add(meta.get("leader"))
        if len(leaders) != 1 or None in leaders or "" in leaders:
            return None
        leader = self._index(str(leaders.pop()))
        if leader is None or leader not in running:
            return None
        meta = (self.servers[leader].jsz() or {}).get("meta_cluster") or {}
        current = {r.get("name") for r in meta.get("replicas") or [] if r.get("current")}
        others = {self.servers[i].name for i in running if i != leader}
        return leader if others <= current else None

    def wait_for_meta_leader(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while (leader := self.meta_leader()) is None:
            if time.monotonic() > deadline:
                msg = f"the NATS cluster {self.name} has no JetStream meta leader after {timeout} s"
                raise RuntimeError(msg)
            time.sleep(0.1)
        return leader

    def stream_leader(self, stream: str, timeout: float = 10.0) -> int:
        """The index of the server that leads ``stream``, once one does."""
        deadline = time.monotonic() + timeout
        while True:
            for i in self.running():
                jsz = self.servers[i].jsz(streams="true") or {}
                for account in jsz.get("account_details") or []:
                    for detail in account.get("stream_detail") or []:
                        if detail.get("name") != stream:
                            continue
                        leader = self._index((detail.get("cluster") or {}).get("leader") or "")
                        if leader is not None and leader in self.running():
                            return leader
            if time.monotonic() > deadline:
                msg = f"stream {stream!r} has no leader in the NATS cluster after {timeout} s"
                raise RuntimeError(msg)
            time.sleep(0.1)

    def _index(self, server_name: str) -> int | None:
        for i, s in enumerate(self.servers):
            if s.name == server_name:
                return i
        return None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
