"""Ingest through JetStream end to end, recovery after SIGKILL, and catch-up.

    python bench/bench_recovery.py [--servers 100] [--metrics 500] [--minutes 10]
                                   [--backlog-minutes 5] [--runs 5]

Starts its own ``nats-server -js`` and runs, on this machine:

1. **Ingest**: ``minutely serve --bus nats://…`` (chDB store, checkpoints every 5 s), the
   ``servers × metrics × minutes`` workload at 1 Hz as Arrow from 2 lean senders; points/s
   from the first byte sent until the last point is folded (median of ``--runs``). The same
   workload through ``--bus memory`` in the same run is the baseline. Each server first takes
   one run of the workload, reported apart as the *first run*: a fresh process pays once for
   what later runs find in place (the ring's memory touched for the first time, every name
   and series registered), so the median is of the server in its steady state.
2. **Recovery**: wait until every message is acked (checkpointed), SIGKILL the server, send
   ``--backlog-minutes`` of the workload to a ``minutely ingest`` node meanwhile (the
   backlog), start the server again and time it until it answers (``/healthz``), and until
   the backlog is folded and acked. Catch-up rate = backlog points / (caught up − answering).
   Points folded after the restart must equal the backlog exactly.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_pipeline import arrow_bodies, lean_send
from minutely import sim
from minutely.testing.natsserver import NatsServer, free_port
from minutely.testing.processes import launch, wait_healthy

ARROW = "application/vnd.apache.arrow.stream"
SENDERS = 2


def start(command: str, port: int, data: str, *extra: str) -> subprocess.Popen[bytes]:
    return launch(command, port, data, *extra, env={"MINUTELY_BUS_MAX_BYTES": "4GB"})


def wait_up(url: str, timeout: float = 600) -> float:
    if not wait_healthy(url, timeout=timeout):
        raise RuntimeError(f"{url} did not come up")
    return time.perf_counter()


def status(url: str) -> dict[str, object]:
    return dict(httpx.get(f"{url}/api/v1/status", timeout=30).json())


def folded(url: str) -> int:
    return int(status(url)["aggregator"]["points"])  # type: ignore[index]


def wait_folded(url: str, target: int) -> float:
    while folded(url) < target:
        time.sleep(0.05)  # status asks the broker for every stream: do not load it
    return time.perf_counter()


def wait_acked(url: str) -> float:
    while True:
        bus = status(url)["bus"]
        if sum(p["backlog_messages"] for p in bus) == 0:  # type: ignore[attr-defined]
            return time.perf_counter()
        time.sleep(0.02)


def ingest_rate(url: str, bodies: list[bytes], points: int, send_to: str | None = None) -> float:
    """Points/s from the first byte sent (to ``send_to``, else ``url``) until ``url`` has
    folded the last point."""
    before = folded(url)
    began = time.perf_counter()
    assert lean_send(send_to or url, bodies, SENDERS, ARROW) == points
    return points / (wait_folded(url, before + points) - began)


def rates(label: str, runs: list[float], baseline: list[float] | None = None) -> str:
    each = ", ".join(f"{r / 1e6:.2f}" for r in runs)
    text = f"| {label} | {statistics.median(runs) / 1e6:.2f} M points/s median (runs {each})"
    if baseline is not None:
        text += f"; {statistics.median(runs) / statistics.median(baseline):.2f}x the baseline"
    return text + " |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=100)
    ap.add_argument("--metrics", type=int, default=500)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--backlog-minutes", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    fleet = sim.Fleet(args.servers, args.metrics, seed=3)
    per_run = len(fleet) * args.minutes * 60
    now = int(time.time()) // 60 * 60
    span = args.minutes * (args.runs + 1) + args.backlog_minutes + 5
    t0 = now - span * 60
    first, *runs = [
        arrow_bodies(fleet, t0 + k * args.minutes * 60, args.minutes, 1_000_000)
        for k in range(args.runs + 1)
    ]
    print(
        f"workload: {args.servers} x {args.metrics} series x {args.minutes} min at 1 Hz = "
        f"{per_run:,} points per run, {args.runs} runs; 2 lean senders; 2 cores"
    )

    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp) / "js") as nats:
        # -- baseline: the embedded bus ---------------------------------------------------
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start("serve", port, f"{tmp}/mem", "--hot-window", "2h")
        wait_up(url)
        memory_first = ingest_rate(url, first, per_run)
        memory = [ingest_rate(url, bodies, per_run) for bodies in runs]
        proc.send_signal(signal.SIGINT)
        proc.wait(60)

        # -- through JetStream ------------------------------------------------------------
        serve = ["--hot-window", "2h", "--bus", nats.url]
        proc = start("serve", port, f"{tmp}/js-data", *serve)
        wait_up(url)
        jetstream_first = ingest_rate(url, first, per_run)
        jetstream = [ingest_rate(url, bodies, per_run) for bodies in runs]
        # the scale-out shape: an ingest node publishes, the server only folds
        in_port = free_port()
        in_url = f"http://127.0.0.1:{in_port}"
        node = start("ingest", in_port, f"{tmp}/node", "--bus", nats.url)
        wait_up(in_url)
        split = [ingest_rate(url, bodies, per_run, send_to=in_url) for bodies in runs]
        node.send_signal(signal.SIGINT)
        node.wait(60)
        print(rates("ingest, Arrow, --bus memory (baseline)", memory))
        print(rates("ingest, Arrow, --bus nats (JetStream)", jetstream, memory))
        print(
            f"| first run of a fresh server | --bus memory {memory_first / 1e6:.2f},"
            f" --bus nats {jetstream_first / 1e6:.2f} M points/s |"
        )
        print(rates("ingest, Arrow, ingest node + serve on JetStream", split, memory))

        # -- recovery after SIGKILL with a backlog ----------------------------------------
        wait_acked(url)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        node = start("ingest", in_port, f"{tmp}/node", "--bus", nats.url)
        wait_up(in_url)
        backlog_t0 = t0 + (args.runs + 1) * args.minutes * 60
        backlog = arrow_bodies(fleet, backlog_t0, args.backlog_minutes, 1_000_000)
        backlog_points = len(fleet) * args.backlog_minutes * 60
        began = time.perf_counter()
        assert lean_send(in_url, backlog, 2, ARROW) == backlog_points
        published = time.perf_counter() - began
        node.send_signal(signal.SIGINT)
        node.wait(60)

        began = time.perf_counter()
        proc = start("serve", port, f"{tmp}/js-data", *serve)
        up = wait_up(url) - began
        caught_up = wait_folded(url, backlog_points) - began
        acked = wait_acked(url) - began
        after = status(url)
        assert after["aggregator"]["points"] == backlog_points, after["aggregator"]  # type: ignore[index]
        proc.send_signal(signal.SIGINT)
        proc.wait(60)

        folded_after = after["aggregator"]  # type: ignore[index]
        print(
            f"| backlog while the server was down | {backlog_points:,} points "
            f"({args.backlog_minutes} min of the workload), published through an ingest node "
            f"in {published:.1f} s |\n"
            f"| recovery after SIGKILL: answering again (/healthz) | {up:.1f} s (store open, "
            "checkpoint recovered, ring rebuilt from the store) |\n"
            f"| backlog folded | {caught_up:.1f} s after the restart; catch-up "
            f"{backlog_points / (caught_up - up) / 1e6:.2f} M points/s |\n"
            f"| backlog acked (checkpointed) | {acked:.1f} s after the restart |\n"
            f"| points folded after the restart | {folded_after['points']:,} = the backlog "
            f"exactly; replayed messages skipped: {folded_after['replayed']} |"
        )


if __name__ == "__main__":
    main()
