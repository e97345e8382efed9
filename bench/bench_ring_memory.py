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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", choices=list(SHAPES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.minutes)))
        return
    trees = {"this": HERE} | ({} if args.baseline is None else {"baseline": args.baseline})
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        for shape in SHAPES:
            for name, tree in trees.items():
                cmd = [sys.executable, __file__, "--child", shape, "--minutes", str(args.minutes)]
                env = dict(os.environ, PYTHONPATH=str(tree))
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                r = json.loads(done.stdout.splitlines()[-1])
                got.setdefault((name, shape), []).append(r)
                print(f"# {name} {shape}: {json.dumps(r)}", flush=True)
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
