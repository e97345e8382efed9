"""``minutely demo --nodes N``: a whole cluster on one machine, for a user to watch a takeover.

``ClusterDemo`` owns the child processes of one demo, started in dependency order and stopped
in reverse: a ``NatsCluster`` of three ``nats-server`` (streams R=3), the shared store (a
ClickHouse server when a new enough one is on ``PATH``, else the chDB-backed stand-in of
``minutely.testing.clickhouse_http``, and the output says which), N ``minutely serve`` nodes
given the same bus and store, and the simulated fleet. ``run_cluster_demo`` prints where
everything is and how to kill a node, then keeps the fleet sending until Ctrl-C or SIGTERM.

The fleet sends to one node at a time (the simulator takes one URL, and two simulators over
one fleet would send each point twice); when that node dies the fleet is started again
towards a live one, from the current minute on.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

import httpx

from minutely.testing.clickhouse_http import ClickHouseHttpServer
from minutely.testing.natscluster import NatsCluster
from minutely.testing.natsserver import free_port, free_ports
from minutely.testing.processes import ROOT, ServerProcess, launch, stop_process, wait_healthy

#: the oldest ClickHouse server the store's SQL is written for
MIN_CLICKHOUSE = (23, 8)
#: stream replicas: one copy per NATS server, so any one of them may die
REPLICAS = 3


def find_clickhouse() -> tuple[list[str], str] | None:
    """The command that runs a ClickHouse server found on ``PATH`` and its version, if the
    version is at least ``MIN_CLICKHOUSE``; else None."""
    for name, command in (("clickhouse", ["server"]), ("clickhouse-server", [])):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            answer = subprocess.run(
                [path, *command, "--version"], capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        found = re.search(r"version (\d+)\.(\d+)[.\d]*", answer)
        if found and (int(found[1]), int(found[2])) >= MIN_CLICKHOUSE:
            return [path, *command], found[0]
    return None


class ClickHouseServer(ServerProcess):
    """A real ClickHouse server on loopback with its data under ``directory``.

    Not exercised here (no modern ClickHouse server can be installed on these machines):
    every port it would open is moved to a free one, so it cannot clash with another."""

    label = "clickhouse server"

    def __init__(self, command: list[str], directory: Path, port: int | None = None) -> None:
        super().__init__(free_port() if port is None else port)
        self.command = command
        self.directory = directory
        self.log = directory / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self) -> subprocess.Popen[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        tcp, mysql, postgres, interserver = free_ports(4)
        overrides = [
            f"--http_port={self.port}",
            f"--tcp_port={tcp}",
            f"--mysql_port={mysql}",
            f"--postgresql_port={postgres}",
            f"--interserver_http_port={interserver}",
            "--listen_host=127.0.0.1",
            f"--path={self.directory}/",
            f"--logger.log={self.log}",
            f"--logger.errorlog={self.directory / 'error.log'}",
        ]
        return self._popen(
            [*self.command, "--", *overrides],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _answers(self) -> bool:
        try:
            r = httpx.get(f"{self.url}/ping", timeout=1.0)
        except httpx.TransportError:
            return False
        return r.status_code == 200

    def _exit_detail(self) -> str:
        errors = self.directory / "error.log"
        return ": " + errors.read_text(errors="replace")[-2000:] if errors.exists() else ""


@dataclass
class Node:
    """One ``minutely serve`` of the demo."""

    name: str
    port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class DemoError(RuntimeError):
    """A part of the demo did not start; the message says which and ends with its log."""


class ClusterDemo:
    """The demo's child processes: ``start`` them, ``supervise`` the fleet, ``stop`` them all."""

    def __init__(
        self,
        data_dir: Path,
        nodes: int = 3,
        servers: int = 20,
        metrics: int = 25,
        backfill: str = "15m",
        seed: int = 1,
        base_port: int | None = None,
        partitions: int = 8,
        nats_servers: int = 3,
        out: TextIO | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.n_nodes = nodes
        self.servers = servers
        self.metrics = metrics
        self.backfill = backfill
        self.seed = seed
        self.base_port = base_port
        self.partitions = partitions
        self.n_nats = nats_servers
        self.out = out
        self.nats: NatsCluster | None = None
        self.store: ServerProcess | None = None
        self.store_url = ""
        self.store_kind = ""
        self.nodes: list[Node] = []
        self.fleet: subprocess.Popen[bytes] | None = None
        self.fleet_target: Node | None = None

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> None:
        """Start the NATS cluster, the store, the nodes and the fleet, each once the ones it
        needs answer; raise ``DemoError`` if one does not (``stop`` cleans up either way)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.nats = NatsCluster(self.data_dir / "nats", size=self.n_nats)
        for server in self.nats.servers:
            server.own_process_group = True
        self.nats.start(timeout=60)
        self._start_store()
        self._start_nodes()
        if self.servers > 0:
            self._start_fleet(self.nodes[0], self.backfill)

    def _start_store(self) -> None:
        found = find_clickhouse()
        if found is not None:
            command, version = found
            server: ClickHouseServer | ClickHouseHttpServer = ClickHouseServer(
                command, self.data_dir / "clickhouse"
            )
            self.store_kind = f"ClickHouse server ({version})"
        else:
            server = ClickHouseHttpServer(self.data_dir / "store")
            self.store_kind = (
                "the chDB-backed stand-in for a ClickHouse server "
                "(no ClickHouse server on PATH; see minutely/testing/clickhouse_http.py)"
            )
        self.store = server
        server.own_process_group = True
        server.start(timeout=60)
        self.store_url = server.url

    def _start_nodes(self) -> None:
        assert self.nats is not None
        ports = (
            list(range(self.base_port, self.base_port + self.n_nodes))
            if self.base_port is not None
            else free_ports(self.n_nodes)
        )
        for i, port in enumerate(ports):
            node = Node(f"n{i}", port, self.data_dir / f"n{i}", self.logs / f"n{i}.log")
            with node.log.open("ab") as log:
                node.proc = launch(
                    "serve",
                    port,
                    node.data_dir,
                    *self.node_flags(node),
                    output=log,
                    own_process_group=True,
                )
            self.nodes.append(node)
        for node in self.nodes:  # they start side by side; wait for each in turn
            if not wait_healthy(node.url, node.proc, timeout=120):
                msg = f"node {node.name} did not become healthy: {_tail(node.log)}"
                raise DemoError(msg)

    def node_flags(self, node: Node) -> list[str]:
        """What makes ``minutely serve`` one node of this cluster."""
        assert self.nats is not None
        return [
            "--node",
            node.name,
            "--advertise",
            node.url,
            "--bus",
            self.nats.urls,
            "--store",
            self.store_url,
            "--replicas",
            str(REPLICAS),
            "--partitions",
            str(self.partitions),
        ]

    def _start_fleet(self, target: Node, backfill: str) -> None:
        with (self.logs / "fleet.log").open("ab") as log:
            self.fleet = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "minutely",
                    "simulate",
                    "--url",
                    target.url,
                    "--servers",
                    str(self.servers),
                    "--metrics",
                    str(self.metrics),
                    "--backfill",
                    backfill,
                    "--seed",
                    str(self.seed),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        self.fleet_target = target

    def supervise(self) -> None:
        """Start the fleet again towards a live node if it stopped (its node died)."""
        if self.fleet is None or self.fleet.poll() is None:
            return
        live = [n for n in self.nodes if n.alive()]
        if not live:
            return
        target = live[0]
        self._say(
            f"The fleet stopped (its node {self.fleet_target.name if self.fleet_target else '?'}"
            f" is gone?); sending to {target.name} {target.url} from now on."
        )
        self._start_fleet(target, "0s")

    def describe(self) -> str:
        """Where everything runs, and how to kill a node and watch the takeover."""
        assert self.nats is not None and self.store is not None
        lines = [
            f"minutely cluster demo: {len(self.nodes)} nodes, {self.n_nats} NATS servers "
            f"(streams R={REPLICAS}), {self.partitions} partitions per copy; logs in {self.logs}",
            "",
        ]
        for node in self.nodes:
            pid = node.proc.pid if node.proc is not None else "-"
            lines.append(f"  node  {node.name}  {node.url:<24} pid {pid}")
        for i, server in enumerate(self.nats.servers):
            lines.append(f"  nats  {server.name}  {server.url:<24} pid {self.nats.pid(i)}")
        lines.append(f"  store     {self.store_url:<24} pid {self.store.pid}  {self.store_kind}")
        if self.fleet is not None and self.fleet_target is not None:
            lines.append(
                f"  fleet     {self.servers} servers x {self.metrics} metrics -> "
                f"{self.fleet_target.name}, pid {self.fleet.pid}, {self.backfill} of history first"
            )
        else:
            lines.append("  fleet     none (--servers 0)")
        first = self.nodes[0]
        victim = self.nodes[-1]
        victim_pid = victim.proc.pid if victim.proc is not None else "<pid>"
        lines += [
            "",
            f"Open any node's dashboard: {first.url}/  (the cluster page: {first.url}/#cluster)",
            "Kill a node and watch the others take over its partitions (about 15 s):",
            f"  kill -9 {victim_pid}      # {victim.name}",
            f"  then {first.url}/#cluster  or  curl -s {first.url}/api/v1/status",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop the fleet, then the nodes (side by side), then the store and NATS."""
        if self.fleet is not None:
            stop_process(self.fleet)
        running = [n.proc for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            stop_process(proc)  # SIGKILL after 10 s if it does not stop
        if self.store is not None:
            self.store.stop()
        if self.nats is not None:
            self.nats.stop()

    def _say(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set ``stop`` while inside (only the main thread can take
    signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_cluster_demo(
    *,
    data_dir: Path,
    nodes: int = 3,
    servers: int = 20,
    metrics: int = 25,
    backfill: str = "15m",
    seed: int = 1,
    base_port: int | None = None,
    partitions: int = 8,
    nats_servers: int = 3,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run a demo cluster until Ctrl-C, SIGTERM or ``stop`` is set; 0, or 1 if it could not
    start. ``servers=0`` starts no fleet."""
    demo = ClusterDemo(
        data_dir,
        nodes=nodes,
        servers=servers,
        metrics=metrics,
        backfill=backfill,
        seed=seed,
        base_port=base_port,
        partitions=partitions,
        nats_servers=nats_servers,
        out=out,
    )
    stop = stop or threading.Event()
    with _stop_on_signals(stop):
        try:
            demo._say(f"Starting {nats_servers} NATS servers, the store and {nodes} nodes…")
            demo.start()
            demo._say(demo.describe())
            while not stop.wait(0.5):
                demo.supervise()
        except (DemoError, RuntimeError) as e:
            print(f"minutely demo: {e}", file=sys.stderr)
            return 1
        finally:
            demo._say("Stopping…")
            demo.stop()
    return 0


__all__ = ["ClusterDemo", "DemoError", "find_clickhouse", "run_cluster_demo"]
