"""Memory of the registry and the hot ring for fleets of any shape, at the default window.

Each shape runs in a fresh process: its series are interned (``Registry.series_ids``) and
folded into a ``HotRing`` of the default 2-day window, one point per series per minute for
``--minutes`` minutes; we read the process' resident memory before and after, and what the
registry and the ring report. With ``--baseline``, another checkout runs the same shapes in
the same run (alternating).

    flock /tmp/minutely-cpu.lock python bench/bench_ring_memory.py --baseline /work/main

Shapes (servers × metric names, series):
  sparse  17,000 × 17,000 names, 34,000 series (two metrics a server, each name on two servers)
  small   5 × 1,000, 5,000 series
  wide    100 × 1,000, 100,000 series

Then (first, this checkout only: ``--baseline`` trees may predate the simulator's options)
the simulator's fleet over hours (``--sim-metrics`` series of one simulated server,
``--sim-hours`` hours from a 6-hour boundary, minute partials folded from 1 Hz points as
``bench/codec_data.py`` makes them), merged into a 2-day ring a minute at a time as the
live rows take them: the whole ring's bytes per series-minute and per state, the process'
RSS growth, and the CPU sealing and compaction took, extrapolated to the seed's 2 M series
and to a full 2-day window (sealed minutes at the compacted blocks' bytes per
series-minute, the open slots and the hour summaries, sized for the window, as measured).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
SHAPES = {"sparse": 34_000, "small": 5_000, "wide": 100_000}


def names(shape: str) -> tuple[list[str], list[str]]:
    """(server, metric) of every series of ``shape``."""
    if shape == "sparse":
        n = 17_000
        servers = [f"host-{i}" for i in range(n) for _ in range(2)]
        metrics = [f"app.metric.{(i + k) % n}" for i in range(n) for k in range(2)]
        return servers, metrics
    n_servers = {"small": 5, "wide": 100}[shape]
    servers = [f"host-{i}" for i in range(n_servers) for _ in range(1000)]
    metrics = [f"app.metric.{j}" for _ in range(n_servers) for j in range(1000)]
    return servers, metrics


def measure(shape: str, minutes: int) -> dict[str, Any]:
    import numpy as np
    import psutil

    from minutely.hot import HotRing
    from minutely.model import PointBatch
    from minutely.registry import Registry

    servers, metrics = names(shape)
    n = len(servers)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    registry = Registry()
    ring = HotRing(2880, 4)
    head = 29_000_000
    for minute in range(head - minutes + 1, head + 1):
        batch = PointBatch.from_names(servers, metrics, np.full(n, minute * 60.0), np.ones(n))
        series = registry.series_ids(batch)
        ring.fold(series, np.full(n, minute, dtype=np.int64), np.ones(n))
    rss = proc.memory_info().rss - rss0
    memory = ring.memory() if hasattr(ring, "memory") else {"ring": ring.nbytes}
    return {
        "series": registry.n_series,
        "rss_growth": rss,
        "ring_reported": sum(v for k, v in memory.items() if k != "series_minutes"),
        "index": getattr(registry, "nbytes", -1),
        "layout": registry.layout,
    }


SEED_SERIES = 2_000_000
WINDOW = 2880


def measure_sim(metrics: int, hours: int) -> dict[str, Any]:
    from dataclasses import asdict

    import numpy as np
    import psutil

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from codec_data import sim_fleet

    from minutely.blocks import BlockStore
    from minutely.hot import HotRing

    minutes = hours * 60
    parts, _ = sim_fleet(metrics, minutes)
    BlockStore().seal(0, parts.take(np.s_[:1, :60]))  # load the compiled codec before RSS
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    ring = HotRing(WINDOW, 4, capacity=metrics)
    series = np.arange(metrics, dtype=np.int32)
    head0 = 29_000_160  # a 6-hour boundary
    cpu0 = time.process_time()
    for m in range(minutes):
        ring.merge_partials(series, np.full(metrics, head0 + m), parts.take(np.s_[:, m]))
    cpu = time.process_time() - cpu0
    memory = ring.memory()
    held = memory.pop("series_minutes")
    out: dict[str, Any] = {
        "series_minutes": held,
        "bytes": sum(memory.values()),
        "bytes_per_series_minute": sum(memory.values()) / held,
        "rss_growth_per_series_minute": (proc.memory_info().rss - rss0) / held,
        "cpu_per_series_minute_us": cpu / held * 1e6,
    }
    if hasattr(ring, "states"):
        states = ring.states()
        stats = asdict(ring.seal_stats)
        out["states"] = states
        out["sealing"] = stats
        open_ = states["open"]
        compacted = states["compacted_blocks"]["bytes_per_series_minute"]
        full = metrics * WINDOW
        summaries = states.get("hour_summaries", {"bytes": 0})["bytes"]  # the window's already
        out["full_window_bytes_per_series_minute"] = (
            open_["bytes"] + summaries + compacted * (full - open_["series_minutes"])
        ) / full
        # a block is one ring block's hour (or six hours): its CPU per series-hour, scaled
        sealed_hours = metrics * (stats["sealed"])
        if sealed_hours:
            per_hour = stats["seal_seconds"] / sealed_hours * SEED_SERIES
            out["seal_core_share_at_seed"] = per_hour / 3600
        if stats["compacted"]:
            per_span = stats["compact_seconds"] / (metrics * stats["compacted"]) * SEED_SERIES
            out["compact_core_share_at_seed"] = per_span / (6 * 3600)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sim-metrics", type=int, default=4096)
    ap.add_argument("--sim-hours", type=int, default=8)
    ap.add_argument("--skip-shapes", action="store_true")
    ap.add_argument("--child", choices=[*SHAPES, "sim"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "sim":
        print(json.dumps(measure_sim(args.sim_metrics, args.sim_hours)))
        return
    if args.child:
        print(json.dumps(measure(args.child, args.minutes)))
        return
    trees = {"this": HERE} | ({} if args.baseline is None else {"baseline": args.baseline})
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        for name, tree in list(trees.items())[:1]:  # the simulator is this checkout's
            cmd = [sys.executable, __file__, "--child", "sim"]
            cmd += ["--sim-metrics", str(args.sim_metrics), "--sim-hours", str(args.sim_hours)]
            env = dict(os.environ, PYTHONPATH=str(tree))
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.splitlines()[-1])
            got.setdefault((name, "sim"), []).append(r)
            print(f"# {name} sim: {json.dumps(r)}", flush=True)
        for shape in [] if args.skip_shapes else SHAPES:
            for name, tree in trees.items():
                cmd = [sys.executable, __file__, "--child", shape, "--minutes", str(args.minutes)]
                env = dict(os.environ, PYTHONPATH=str(tree))
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                r = json.loads(done.stdout.splitlines()[-1])
                got.setdefault((name, shape), []).append(r)
                print(f"# {name} {shape}: {json.dumps(r)}", flush=True)
    print(
        f"\nSimulator, {args.sim_metrics} series × {args.sim_hours} h into a 2-day ring;"
        f" medians of {args.runs} processes\n"
    )
    keys = [
        "bytes_per_series_minute",
        "rss_growth_per_series_minute",
        "cpu_per_series_minute_us",
        "full_window_bytes_per_series_minute",
        "seal_core_share_at_seed",
        "compact_core_share_at_seed",
    ]
    print("| measure | this |")
    print("|---|---|")
    for key in keys:
        vals = [r[key] for r in got[("this", "sim")] if key in r]
        print(f"| {key} | " + (f"{statistics.median(vals):.3f}" if vals else "-") + " |")
    for state in ("open", "hour_blocks", "compacted_blocks", "hour_summaries"):
        vals = [r["states"][state]["bytes_per_series_minute"] for r in got[("this", "sim")]]
        print(f"| {state}, bytes per series-minute | {statistics.median(vals):.2f} |")
    if args.skip_shapes:
        return
    print(f"\n2-day window, {args.minutes} minutes folded; medians of {args.runs} processes\n")
    print("| shape | checkout | layout | RSS growth | per series | ring (own report) | index |")
    print("|---|---|---|---|---|---|---|")
    for shape, n in SHAPES.items():
        for name in trees:
            runs = got[(name, shape)]
            rss = statistics.median(r["rss_growth"] for r in runs)
            ring = statistics.median(r["ring_reported"] for r in runs)
            index = runs[0]["index"]
            print(
                f"| {shape} ({n:,} series) | {name} | {runs[0]['layout']} | {rss / 1e6:.0f} MB"
                f" | {rss / n / 1e3:.1f} kB | {ring / 1e6:.0f} MB"
                f" | {'-' if index < 0 else f'{index / 1e6:.1f} MB'} |"
            )


if __name__ == "__main__":
    main()
