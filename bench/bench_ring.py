"""The hot ring alone: a fresh ring's ingest rate at two windows, and its reads, against
another checkout of minutely in the same run.

Ingest: the simulator's fleet (``--servers`` × ``--metrics``, 1 Hz, ``--minutes`` minutes,
~1M-point Arrow bodies) decoded, published and folded in-process (no HTTP, no store) by a
fresh ``Service`` in a fresh process, at the default 2-day window and at 6 h. Reads: a ring of
``--series`` series filled for 2 days (one partial per series-minute, loaded as a start-up
does), then ``read`` and ``read_buckets`` of 2,000 neighbouring series (one server's, Q1) and
of 1,000 series spread over the ring (one metric's, Q2) at steps of 1 min, 1 h and 1 d over
the window, and at 1 min and 1 h over its last 6 hours, with the ends aligned to the step
(as the query API aligns them), the median of ``--reads`` calls each, in CPU time of the
process (a read may decode on a second thread) and in wall time.

Each measurement runs in its own process, this checkout's and ``--baseline``'s alternating,
``--runs`` times; the table gives medians and their ratio.

    flock /tmp/minutely-cpu.lock python bench/bench_ring.py --baseline /work/main
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
WINDOWS = {"2d": 2 * 86400, "6h": 6 * 3600}
STEPS = {"1min": 1, "1h": 60, "1d": 1440}
#: the reads' ranges, ending at the head: the window, and the newest hours a dashboard shows
SPANS = {"2 d": 2880, "6 h": 360}
#: points per series-minute of ``--values sim``
SIM_POINTS = 4


def ingest(window: int, servers: int, metrics: int, minutes: int) -> dict[str, Any]:
    """A fresh service folds the fleet's points: points/s, ring memory, process RSS."""
    import psutil

    from minutely import sim
    from minutely.config import Settings
    from minutely.ingest import decode
    from minutely.model import ARROW_STREAM
    from minutely.service import Service

    fleet = sim.Fleet(servers, metrics, seed=1)
    now = float(int(time.time()) // 60 * 60)
    t0 = int(now) - minutes * 60
    step = max(1, 1_000_000 // len(fleet))
    bodies = [
        sim.encode_arrow(fleet.batch(t, min(step, t0 + minutes * 60 - t)))
        for t in range(t0, t0 + minutes * 60, step)
    ]
    points = len(fleet) * minutes * 60
    settings = Settings(hot_window=window, bus_max_bytes=8 << 30, store="none")
    service = Service(settings, clock=lambda: now).open()
    rss0 = psutil.Process().memory_info().rss

    async def go() -> None:
        for body in bodies:
            d = decode(body, ARROW_STREAM, now=now, oldest=now - window, max_future=300)
            await service.bus.publish(d.batch)
            while service.aggregator.drain(timeout=0):
                pass

    cpu0, began = os.times(), time.perf_counter()
    asyncio.run(go())
    took, cpu1 = time.perf_counter() - began, os.times()
    assert service.aggregator.stats.points == points
    ring = service.ring
    return {
        "rate": points / took,
        "sys": cpu1.system - cpu0.system,
        "user": cpu1.user - cpu0.user,
        "ring_bytes": ring.nbytes,
        "rss_growth": psutil.Process().memory_info().rss - rss0,
    }


def reads(
    n_series: int, runs: int, ring_block: int, values: str, plain: bool, compact: int | None
) -> dict[str, float]:
    """CPU milliseconds of the process per read of a 2-day ring, median of ``runs`` (CPU
    time: the machine is shared; the process', as a read may decode on two threads), and
    wall milliseconds. ``plain``: the ring uncompressed (one block of minutes as long as the
    window, so nothing is sealed), the reads' same-run yardstick; ``compact``: the ring's
    ``compact_minutes`` (its default when None)."""
    import numpy as np

    from minutely.hot import HotRing
    from minutely.model import Partials

    window = 2880
    kw = {"block": ring_block} if ring_block else {}
    if plain:
        kw |= {"block_minutes": window, "compact_minutes": 0, "summary_minutes": window}
    elif compact is not None:
        kw |= {"compact_minutes": compact}
    ring = HotRing(window, 4, **kw)
    rng = np.random.default_rng(1)
    fleet = _fleet_values(n_series) if values == "sim" else None
    head = 30_000_000
    series = np.arange(n_series, dtype=np.int32)
    for hour in range(head - window + 1, head + 1, 60):
        mins = np.arange(hour, min(hour + 60, head + 1), dtype=np.int64)
        s = np.repeat(series, mins.shape[0])
        m = np.tile(mins, n_series)
        if fleet is None:
            v = rng.normal(50, 10, s.shape[0])
            parts = Partials(v - 1, v + 1, v * 60, np.full(s.shape[0], 60, np.uint32))
        else:
            parts = fleet(hour, mins.shape[0])
        ring.load(s, m, parts, True)
    # folds let the ring compact what the load sealed, as a running service's do
    compacted = -1
    while compacted != ring.seal_stats.compacted:
        compacted = ring.seal_stats.compacted
        for _ in range(4):
            ring.fold(series, np.full(n_series, head), np.ones(n_series))  # live rows too
    q1 = np.arange(2000, dtype=np.int32)
    q2 = np.arange(0, n_series, n_series // 1000, dtype=np.int32)[:1000]
    out: dict[str, float] = {}
    asked = [(span, label, step) for span in SPANS for label, step in STEPS.items()]
    for name, ids in (("Q1", q1), ("Q2", q2)):
        for span, label, step in asked:
            if step >= SPANS[span]:
                continue
            first = (head - SPANS[span] + 1) // step * step
            count = -(-(head + 1 - first) // step) * step
            ms, wall = [], []
            for _ in range(runs + 1):
                began, began_wall = time.process_time(), time.perf_counter()
                if step == 1:
                    got = ring.read(ids, first, count)
                else:
                    got = ring.read_buckets(ids, first, count, step)
                ms.append((time.process_time() - began) * 1000)
                wall.append((time.perf_counter() - began_wall) * 1000)
            assert int(got.count.sum()) > 0
            key = f"{name} {len(ids)} series × {span}, step {label}"
            out[f"{key}, CPU"] = statistics.median(ms[1:])
            out[f"{key}, wall"] = statistics.median(wall[1:])
    return out


def _fleet_values(n_series: int) -> Any:
    """Minute partials of the simulator's fleet (its values rounded as agents report them),
    ``n_series`` series as servers of 500 metrics, each minute from a point every
    ``60 // SIM_POINTS`` seconds (a 1 Hz fleet over 2 days is too many points to make
    here): a function of (first minute, minutes) giving them series-major."""
    import numpy as np

    from minutely import sim
    from minutely.model import Partials

    metrics = min(500, n_series)
    fleet = sim.Fleet(-(-n_series // metrics), metrics, seed=1)

    def partials(minute: int, minutes: int) -> Partials:
        ts = minute * 60 + np.arange(minutes * SIM_POINTS) * (60 // SIM_POINTS)
        v = fleet.at(ts, series_major=True).value
        v = v.reshape(-1, minutes, SIM_POINTS)[:n_series].reshape(-1, SIM_POINTS)
        count = np.full(v.shape[0], SIM_POINTS, np.uint32)
        return Partials(v.min(axis=1), v.max(axis=1), v.sum(axis=1), count)

    return partials


def child(args: argparse.Namespace) -> None:
    if args.child in ("reads", "plain"):
        plain = args.child == "plain"
        got = reads(args.series, args.reads, args.ring_block, args.values, plain,
                    args.compact_minutes)  # fmt: skip
        print(json.dumps(got))
    else:
        print(json.dumps(ingest(WINDOWS[args.child], args.servers, args.metrics, args.minutes)))


def run_child(tree: Path, what: str, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", what]
    cmd += ["--servers", str(args.servers), "--metrics", str(args.metrics)]
    cmd += ["--minutes", str(args.minutes), "--series", str(args.series)]
    cmd += ["--reads", str(args.reads), "--ring-block", str(args.ring_block)]
    cmd += ["--values", args.values]
    if tree == HERE and args.compact_minutes is not None:
        cmd += ["--compact-minutes", str(args.compact_minutes)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, help="another checkout to measure in the same run")
    ap.add_argument("--servers", type=int, default=100)
    ap.add_argument("--metrics", type=int, default=500)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--series", type=int, default=32_000, help="series of the 2-day read ring")
    ap.add_argument("--reads", type=int, default=20)
    ap.add_argument(
        "--ring-block",
        type=int,
        default=0,
        help="series per ring block of the read ring (0: the default, 16,384); 256 over"
        " 32,000 series makes Q2 span 125 ring blocks, as at the seed's 2 M series",
    )
    ap.add_argument(
        "--values",
        choices=["random", "sim"],
        default="random",
        help="the read ring's values: random full precision (the codec's worst case) or the"
        " simulator's fleet, rounded as its agents report",
    )
    ap.add_argument(
        "--plain",
        action="store_true",
        help="also read this checkout's ring uncompressed (nothing sealed), the yardstick",
    )
    ap.add_argument(
        "--compact-minutes",
        type=int,
        help="the span this checkout's read ring compacts (its default when not given)",
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-reads", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--child", choices=[*WINDOWS, "reads", "plain"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    trees = {"this": HERE}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    whats = ([] if args.skip_ingest else [*WINDOWS]) + ([] if args.skip_reads else ["reads"])
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in range(args.runs):
        for what in whats:
            for name, tree in trees.items():
                r = run_child(tree, what, args)
                got.setdefault((name, what), []).append(r)
                print(f"# run {i + 1} {name} {what}: {json.dumps(r)}", flush=True)
            if what == "reads" and args.plain:
                r = run_child(HERE, "plain", args)
                got.setdefault(("plain", what), []).append(r)
                print(f"# run {i + 1} plain {what}: {json.dumps(r)}", flush=True)
    points = args.servers * args.metrics * args.minutes * 60
    print(
        f"\n{os.cpu_count()} cores; fleet {args.servers} × {args.metrics}, {args.minutes} min"
        f" ({points / 1e6:.0f}M points); medians of {args.runs} runs, each in a fresh process\n"
    )
    names = list(trees)
    print("| measure | " + " | ".join(names) + (" | this / baseline |" if len(names) > 1 else " |"))
    print("|---|" + "---|" * (len(names) + (len(names) > 1)))

    def row(label: str, values: list[float], fmt: str, ratio: bool = True) -> None:
        cells = [format(v, fmt) for v in values]
        tail = f" {values[0] / values[1]:.2f}x |" if len(values) > 1 and ratio else ""
        print(f"| {label} | " + " | ".join(cells) + " |" + tail)

    for w in [] if args.skip_ingest else WINDOWS:

        def med(key: str, w: str = w) -> list[float]:
            return [statistics.median(r[key] for r in got[(n, w)]) for n in names]

        row(f"fresh ingest, {w} window, M points/s", [v / 1e6 for v in med("rate")], ".2f")
        row(f"fresh ingest, {w} window, kernel CPU s", med("sys"), ".2f")
        ring_mb = [v / 1e6 for v in med("ring_bytes")]
        row(f"ring bytes after, {w} window, MB (own report)", ring_mb, ".0f")
        row(f"RSS growth, {w} window, MB", [v / 1e6 for v in med("rss_growth")], ".0f")
    if not args.skip_reads:
        readers = names + (["plain"] if args.plain else [])
        if args.plain:
            print(f"\nreads ({args.values} values); plain: this checkout's ring uncompressed\n")
            print(
                "| read | "
                + " | ".join(readers)
                + " | this / "
                + " | this / ".join(readers[1:])
                + " |"
            )
            print("|---|" + "---|" * (2 * len(readers) - 1))
        for key in got[(names[0], "reads")][0]:
            vals = [statistics.median(r[key] for r in got[(n, "reads")]) for n in readers]
            if not args.plain:
                row(f"{key}, ms", vals, ".1f")
                continue
            ratios = [f"{vals[0] / v:.2f}x" for v in vals[1:]]
            cells = [f"{v:.1f}" for v in vals] + ratios
            print(f"| {key}, ms | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
