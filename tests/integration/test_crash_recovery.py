"""SIGKILL at any moment: ``minutely serve --bus nats://…`` is killed again and again while a
sender streams a deterministic data set into it, retrying every request not answered 200
with the same ``Idempotency-Key``. At the end every one of the four queries equals numpy
ground truth from the points answered 200: no acknowledged point lost, none counted twice.

Kills come at named phases (``failpoints.py``: the process kills itself the n-th time it
passes the point: mid-request, mid-minute, checkpoint written but not in place, in place but
not inserted, between insert chunks, inserted but not acked) and at random moments from
outside. The data spans more than the hot window, so points reach the store both as closed
minutes and as points older than the ring, and late points come for minutes already stored.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from minutely import sim
from minutely.testing.natsserver import NatsServer, free_port
from minutely.testing.processes import launch
from tests.integration.truth import check_series, check_summary, columns

pytestmark = pytest.mark.slow

ARROW = "application/vnd.apache.arrow.stream"

#: one plan per incarnation, cycled: a failpoint armed (the process dies there), or None
#: for a kill from outside after a random delay
PLANS: list[str | None] = [
    "aggregate.folded=30",
    "checkpoint.written=2",
    None,
    "ingest.published=7",
    "checkpoint.renamed=2",
    None,
    "checkpoint.chunk=3",
    "checkpoint.inserted=2",
    None,
    "aggregate.folded=90",
    "ingest.published=2",
    None,
    "checkpoint.chunk=1",  # may fire during the recovery's insert: a crash while recovering
]


@dataclass
class Sender:
    """Sends ``bodies`` in order, each until it is answered 200, always with its own key."""

    url: str
    bodies: list[bytes]
    sizes: list[int]
    sent: int = 0
    retries: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for i, body in enumerate(self.bodies):
                while True:
                    try:
                        r = client.post(
                            f"{self.url}/api/v1/points",
                            content=body,
                            headers={"content-type": ARROW, "idempotency-key": f"crash-test-{i}"},
                        )
                        outcome = str(r.status_code)
                    except httpx.TransportError as exc:
                        r, outcome = None, type(exc).__name__
                    self.statuses[outcome] = self.statuses.get(outcome, 0) + 1
                    if r is not None and r.status_code == 200:
                        answer = r.json()
                        if answer["accepted"] != self.sizes[i] or answer["rejected"]:
                            self.error = f"request {i}: {answer}"
                            return
                        break
                    self.retries += 1
                    time.sleep(0.05)
                self.sent = i + 1
                time.sleep(0.1)  # paced, so that the sending spans a dozen incarnations


def start(data: Path, port: int, nats_url: str, failpoints: str) -> subprocess.Popen[bytes]:
    settings = {"MINUTELY_CHECKPOINT_EVERY": "0.3", "MINUTELY_FAILPOINTS": failpoints}
    serve = ("--hot-window", "10m", "--partitions", "4", "--bus", nats_url)
    with open(data.parent / "serve.log", "ab") as log:  # the child keeps its own handle
        return launch("serve", port, data, *serve, env=settings, output=log)


def wait_acked(url: str, timeout: float = 60) -> dict[str, object]:
    """Wait until the server answers and the bus holds nothing unacked: every message is
    folded and checkpointed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = httpx.get(f"{url}/api/v1/status", timeout=2).json()
            if sum(p["backlog_messages"] for p in status["bus"]) == 0:
                return dict(status)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the bus was not drained in time"
        time.sleep(0.2)


def test_sigkill_at_any_moment_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(2026)
    fleet = sim.Fleet(6, 16, seed=13)
    now = int(time.time())
    t0 = now // 60 * 60 - 20 * 60  # 20 minutes of data; the hot window holds 10
    batch = fleet.batch(t0, 20 * 60 - 30)
    order = np.argsort(batch.ts, kind="stable")  # in time order, as agents send
    late = order[: len(order) // 10]  # ...but a tenth of the oldest points come at the end
    order = np.concatenate([order[len(order) // 10 :], late])
    pieces = np.array_split(order, 160)
    parts = [batch.take(np.sort(p)) for p in pieces]
    bodies = [sim.encode_arrow(p) for p in parts]

    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with NatsServer(tmp_path / "js") as nats:
        sender = Sender(url, bodies, [len(p) for p in parts])
        thread = threading.Thread(target=sender.run, daemon=True)
        thread.start()
        kills: list[str] = []
        proc: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + 300
            while thread.is_alive() or len(kills) < 10:
                assert time.monotonic() < deadline, f"still sending after kills {kills}"
                # the named points need traffic; once all is sent, kills come from outside
                plan = PLANS[len(kills) % len(PLANS)] if thread.is_alive() else None
                proc = start(data, port, nats.url, plan or "")
                if plan is None:
                    time.sleep(rng.uniform(1.0, 4.0))
                    proc.send_signal(signal.SIGKILL)
                    kills.append(f"outside after random delay (sent {sender.sent})")
                else:
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:  # the point was not reached in time
                        proc.send_signal(signal.SIGKILL)
                        kills.append(f"{plan}: not reached, killed from outside")
                    else:
                        assert proc.returncode == -signal.SIGKILL, (plan, proc.returncode)
                        kills.append(f"{plan} (sent {sender.sent})")
                proc.wait()
                proc = None
            proc = start(data, port, nats.url, "")
            thread.join(120)
            assert sender.error is None, sender.error
            assert sender.sent == len(bodies)
            wait_acked(url)
            check_all(url, columns(batch), t0, fleet)

            # and once more after a clean stop: the ring rebuilt from the store alone
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises it when done
            proc = start(data, port, nats.url, "")
            wait_acked(url)
            check_all(url, columns(batch), t0, fleet)
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        print(f"kills: {kills}; retries: {sender.retries}; outcomes: {sender.statuses}")
        assert len(kills) >= 10
        # the failpoints reached did fire: at least 6 phases killed the process themselves
        assert sum("not reached" not in k and "outside" not in k for k in kills) >= 6, kills


def check_all(url: str, pts: dict[str, np.ndarray], t0: int, fleet: sim.Fleet) -> None:
    lo, hi = t0 - 120, t0 + 22 * 60
    servers, metrics = list(fleet.server_names), list(fleet.metric_names)
    for step in (60, 300):
        for name in servers:
            check_series(url, pts, "server", name, step, lo, hi)
        for name in metrics[::3]:
            check_series(url, pts, "metric", name, step, lo, hi)
    for name in servers:
        check_summary(url, pts, "server", name, lo, hi)
        check_summary(url, pts, "server", name, t0 + 437, t0 + 900)
    for name in metrics:
        check_summary(url, pts, "metric", name, lo, hi)
