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


def measure_sim(metrics: int, hours: int, compact: int | None, grace: int | None) -> dict[str, Any]:
    from dataclasses import asdict

    import numpy as np
    import psutil

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from codec_data import sim_fleet

    from minutely.blocks import BlockStore
    from minutely.hot import HotRing

    minutes = hours * 60
    late_after = 7  # minutes past an hour's end when its late points come
    parts, _ = sim_fleet(metrics, minutes + late_after)
    BlockStore().seal(0, parts.take(np.s_[:1, :60]))  # load the compiled codec before RSS
    try:  # and every kernel the ring runs (trees before minutely.warm load them as they go)
        from minutely.warm import compiled
    except ImportError:
        pass
    else:
        compiled()
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    kw = {} if compact is None else {"compact_minutes": compact}
    kw |= {} if grace is None else {"grace_minutes": grace}
    ring = HotRing(WINDOW, 4, capacity=metrics, **kw)
    series = np.arange(metrics, dtype=np.int32)
    head0 = 29_000_160  # a 6-hour and a day boundary
    whole: list[float] = []  # the whole ring per series-minute, at each hour of a full window
    cpu0 = time.process_time()
    for m in range(minutes):
        ring.merge_partials(series, np.full(metrics, head0 + m), parts.take(np.s_[:, m]))
        if m + 1 > WINDOW and (m + 1) % 60 == 0:
            whole.append(ring.bytes_per_series_minute)
    cpu = time.process_time() - cpu0
    stats_full = asdict(ring.seal_stats)
    memory = ring.memory()
    held = memory.pop("series_minutes")
    out: dict[str, Any] = {
        "series_minutes": held,
        "bytes": sum(memory.values()),
        "bytes_per_series_minute": sum(memory.values()) / held,
        "rss_growth_per_series_minute": (proc.memory_info().rss - rss0) / held,
        "cpu_per_series_minute_us": cpu / held * 1e6,
    }
    if whole:  # every state of the day's cycle, measured rather than extrapolated
        out["whole_ring_full_window_mean"] = statistics.mean(whole)
        out["whole_ring_full_window_max"] = max(whole)
        out["hours_sampled"] = len(whole)
    if hasattr(ring, "states"):
        states = ring.states()
        stats = asdict(ring.seal_stats)
        out["states"] = states
        out["sealing"] = stats
        open_ = states["open"]
        compacted = states["compacted_blocks"]["bytes_per_series_minute"] or 0.0
        full = metrics * WINDOW
        summaries = states.get("hour_summaries", {"bytes": 0})["bytes"]  # the window's already
        out["full_window_bytes_per_series_minute"] = (
            open_["bytes"] + summaries + compacted * (full - open_["series_minutes"])
        ) / full
        # a block is one ring block's block of minutes: its CPU per series-block, scaled
        sealed_blocks = metrics * stats["sealed"]
        if sealed_blocks:
            per_block = stats["seal_seconds"] / sealed_blocks * SEED_SERIES
            out["seal_core_share_at_seed"] = per_block / (ring.block_minutes * 60)
        # compaction's CPU (growing the open span's block included) per whole span compacted
        if stats["compacted"]:
            span = ring.compact_minutes * 60
            per_span = stats["compact_seconds"] / (metrics * stats["compacted"]) * SEED_SERIES
            out["compact_core_share_at_seed"] = per_span / span
        if whole and "trim_seconds" in stats_full:  # trims begin once the window is full
            trimmed = stats_full["trim_seconds"] * SEED_SERIES / metrics
            out["trim_core_share_at_seed"] = trimmed / ((minutes - WINDOW) * 60)
    # late points, 1 to 7 minutes after the hour they belong to has had late_after minutes
    # (sealed when the grace is shorter): each series' last minute of it, then 1 % of them
    for m in range(minutes, minutes + late_after):
        ring.merge_partials(series, np.full(metrics, head0 + m), parts.take(np.s_[:, m]))
    late_m = head0 + minutes - 1
    before = ring.nbytes
    for name, ids in (("all", series), ("1pct", series[::100])):
        took = []
        for _ in range(3):
            began = time.process_time()
            ring.fold(ids, np.full(ids.shape[0], late_m), np.zeros(ids.shape[0]))
            took.append(time.process_time() - began)
        out[f"late_batch_{name}_ms"] = statistics.median(took) * 1e3
        out[f"late_batch_{name}_series"] = int(ids.shape[0])
        if name == "all":
            out["late_batch_all_bytes_grown"] = ring.nbytes - before
    out["late_sealed"] = ring.seal_stats.late_merged > 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sim-metrics", type=int, default=4096)
    ap.add_argument("--sim-hours", type=int, default=8)
    ap.add_argument("--skip-shapes", action="store_true")
    ap.add_argument("--compact-minutes", type=int, help="this checkout's ring's compaction span")
    ap.add_argument("--grace", type=int, help="this checkout's ring's grace minutes")
    ap.add_argument(
        "--sim-baseline",
        action="store_true",
        help="the simulator's part with --baseline's ring too, at its defaults",
    )
    ap.add_argument("--child", choices=[*SHAPES, "sim"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "sim":
        print(json.dumps(measure_sim(args.sim_metrics, args.sim_hours, args.compact_minutes,
                                     args.grace)))  # fmt: skip
        return
    if args.child:
        print(json.dumps(measure(args.child, args.minutes)))
        return
    trees = {"this": HERE} | ({} if args.baseline is None else {"baseline": args.baseline})
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        sims = list(trees.items())[: 2 if args.sim_baseline else 1]
        for name, tree in sims:  # this script's measure, each checkout's ring
            cmd = [sys.executable, __file__, "--child", "sim"]
            cmd += ["--sim-metrics", str(args.sim_metrics), "--sim-hours", str(args.sim_hours)]
            for flag, value in (("--compact-minutes", args.compact_minutes),
                                ("--grace", args.grace)):  # fmt: skip
                if name == "this" and value is not None:
                    cmd += [flag, str(value)]
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
        "whole_ring_full_window_mean",
        "whole_ring_full_window_max",
        "seal_core_share_at_seed",
        "compact_core_share_at_seed",
        "trim_core_share_at_seed",
        "late_batch_all_ms",
        "late_batch_all_bytes_grown",
        "late_batch_1pct_ms",
    ]
    sim_names = [name for name in trees if (name, "sim") in got]
    print("| measure | " + " | ".join(sim_names) + " |")
    print("|---|" + "---|" * len(sim_names))
    for key in keys:
        cells = []
        for name in sim_names:
            vals = [r[key] for r in got[(name, "sim")] if key in r]
            cells.append(f"{statistics.median(vals):.3f}" if vals else "-")
        print(f"| {key} | " + " | ".join(cells) + " |")
    for state in ("open", "sealed_blocks", "compacted_blocks", "hour_summaries"):
        cells = []
        for name in sim_names:
            held = [r["states"].get(state) for r in got[(name, "sim")]]  # a tree may lack it
            per = [s["bytes_per_series_minute"] for s in held if s is not None]
            vals = [v for v in per if v is not None]  # None: the state held no minute
            cells.append(f"{statistics.median(vals):.2f}" if vals else "-")
        print(f"| {state}, bytes per series-minute | " + " | ".join(cells) + " |")
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
