"""The hot ring alone: memory per series-minute, query times, fold throughput, maintenance.

Minute partials of the simulator's fleet (``sim.Fleet``: 1 Hz values, min/max/sum summed in
arrival order, count) are made once into ``--data`` and loaded hour by hour, oldest first (as
``rebuild_ring`` loads a start-up), into a ring of the default 2-day window. Each ring runs in
its own process, so its RSS is its own. The baseline is the ring at ``--baseline`` (a git
ref), loaded from ``git show`` into the same kind of process: a same-run comparison.

Scenarios: ``server`` (``--servers`` × ``--metrics``; Q1 = one server's series, Q3 = their
2-day summary) and ``metric`` (``--wide-servers`` × ``--wide-metrics``; Q2 = one metric over
every server, Q4 its summary). Query times are medians of ``--runs`` calls of
``merge_buckets`` into a fresh block (server-side work, no HTTP). Fold: ``--fold-minutes``
of 10-second time-ordered batches, the time inside ``fold`` only, across one seal.

    flock /tmp/minutely-cpu.lock python bench/bench_ring.py
    flock /tmp/minutely-cpu.lock python bench/bench_ring.py --hours 12 --runs 5
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minutely import sim  # noqa: E402
from minutely.model import Partials  # noqa: E402

T0 = 1_700_006_400  # a midnight (UTC) after the fleet's epoch
MINUTES = 2880


def make_data(path: Path, servers: int, metrics: int, hours: int) -> None:
    """One ``.npz`` per hour of ``(series, 60)`` minute partials."""
    path.mkdir(parents=True, exist_ok=True)
    fleet = sim.Fleet(servers, metrics)
    kinds = np.array([str(k) for k in fleet.metric_kinds] * servers)
    np.save(path / "kinds.npy", kinds)
    per = max(1, 4_000_000 // (metrics * 3600))  # servers per generation call
    for h in range(hours):
        t = T0 + 3600 * h
        fields: list[list[np.ndarray]] = [[], [], [], []]
        for a in range(0, servers, per):
            sim_batch = fleet.batch_by_series(t, 3600, servers=slice(a, min(servers, a + per)))
            x = sim_batch.value.reshape(-1, 60, 60)
            total = np.zeros(x.shape[:2])
            for k in range(60):  # in arrival order, as the ring's fold adds them
                total += x[:, :, k]
            for f, arr in zip(fields, (x.min(2), x.max(2), total), strict=False):
                f.append(arr)
            del sim_batch
        parts = [np.concatenate(f) for f in fields[:3]]
        count = np.full(parts[0].shape, 60, np.uint32)
        np.savez(path / f"hour_{h:03d}.npz", mn=parts[0], mx=parts[1], sm=parts[2], ct=count)


def ring_module(which: str, baseline: str) -> ModuleType:
    if which == "new":
        import minutely.hot as hot

        return hot
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{baseline}:minutely/hot.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "hot_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("hot_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hot_baseline"] = module  # dataclasses look their module up while made
    spec.loader.exec_module(module)
    return module


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def median_ms(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def child_load(args: argparse.Namespace) -> dict[str, Any]:
    hot = ring_module(args.child, args.baseline)
    data = Path(args.data)
    hours = sorted(data.glob("hour_*.npz"))
    kinds = np.load(data / "kinds.npy")
    n = kinds.shape[0]
    before = rss()
    ring = hot.HotRing(MINUTES, 4, capacity=n)
    first = T0 // 60
    load_s = 0.0
    for h, path in enumerate(hours):
        z = np.load(path)
        parts = Partials(z["mn"].ravel(), z["mx"].ravel(), z["sm"].ravel(), z["ct"].ravel())
        series = np.repeat(np.arange(n, dtype=np.int32), 60)
        minutes = np.tile(np.arange(first + 60 * h, first + 60 * h + 60, dtype=np.int64), n)
        t = time.perf_counter()
        ring.load(series, minutes, parts, distinct=True)
        load_s += time.perf_counter() - t
        del z, parts, series, minutes
    after = rss()
    held = min(MINUTES, 60 * len(hours))
    last = first + 60 * len(hours)
    out: dict[str, Any] = {
        "ring": args.child,
        "series": n,
        "minutes_held": held,
        "load_s": load_s,
        "rss_per_series_minute": (after - before) / (n * held),
        "bytes_per_series_minute": ring.nbytes / (n * held),
        "maintenance": getattr(ring, "maintenance", None),
    }
    if hasattr(ring, "memory"):
        out["memory"] = ring.memory()
        size, spanned = ring.blob_bytes()
        out["blob_bytes_per_kind"] = {
            str(k): float(size[kinds == k].sum() / max(1, spanned[kinds == k].sum()))
            for k in np.unique(kinds)
        }
    # exactness: one hour of series 0..99 at a step of one minute, against the data
    check_h = len(hours) - 10
    z = np.load(hours[check_h])
    k = min(n, 100)
    got = ring.read(np.arange(k, dtype=np.int32), first + 60 * check_h, 60)
    for name, arr in (("mn", got.min), ("mx", got.max), ("ct", got.count)):
        assert np.array_equal(arr, z[name][:k]), name
    assert np.array_equal(got.sum.view(np.uint64), z["sm"][:k].view(np.uint64))
    lo = last - held
    own = np.arange(min(n, args.group), dtype=np.int32) * args.stride

    def q(step: int) -> None:
        ring.read_buckets(own, lo, held - held % step, step)

    out["queries_ms"] = {
        "1 min": median_ms(lambda: q(1), args.runs),
        "1 h": median_ms(lambda: q(60), args.runs),
        "summary": median_ms(lambda: q(held), args.runs),
    }
    return out


def child_fold(args: argparse.Namespace) -> dict[str, Any]:
    hot = ring_module(args.child, args.baseline)
    fleet = sim.Fleet(args.servers, args.metrics)
    n = args.servers * args.metrics
    ring = hot.HotRing(MINUTES, 4, capacity=n)
    start = T0 + 3600 - 60 * (args.fold_minutes // 2)  # the middle crosses an hour's seal
    spent, points = 0.0, 0
    for t in range(start, start + 60 * args.fold_minutes, 10):
        batch = fleet.batch(t, 10)
        series = batch.server_codes * np.int32(args.metrics) + batch.metric_codes
        minutes = (batch.ts // 60).astype(np.int64)
        began = time.perf_counter()
        ring.fold(series, minutes, batch.value)
        spent += time.perf_counter() - began
        points += len(batch)
    return {"ring": args.child, "points": points, "fold_s": spent, "points_per_s": points / spent}


def run_child(extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *extra]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--metrics", type=int, default=2000)
    ap.add_argument("--wide-servers", type=int, default=1000)
    ap.add_argument("--wide-metrics", type=int, default=2)
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3, help="processes per ring and scenario")
    ap.add_argument("--fold-minutes", type=int, default=20)
    ap.add_argument("--baseline", default="27495bb")
    ap.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "bench_ring"))
    ap.add_argument("--child", choices=["new", "old"])
    ap.add_argument("--mode", choices=["load", "fold"], default="load")
    ap.add_argument("--group", type=int, default=2000)
    ap.add_argument("--stride", type=int, default=1)
    args = ap.parse_args()
    if args.child:
        fn = child_load if args.mode == "load" else child_fold
        print(json.dumps(fn(args)))
        return
    data = Path(args.data)
    scenarios = {
        "server": (args.servers, args.metrics, args.metrics, 1),
        "metric": (args.wide_servers, args.wide_metrics, args.wide_servers, args.wide_metrics),
    }
    results: dict[str, Any] = {}
    for name, (servers, metrics, group, stride) in scenarios.items():
        where = data / f"{name}-{servers}x{metrics}-{args.hours}h"
        if not (where / f"hour_{args.hours - 1:03d}.npz").exists():
            t = time.perf_counter()
            make_data(where, servers, metrics, args.hours)
            print(f"# data {where} made in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        for ring in ("old", "new"):
            runs = [
                run_child(
                    [
                        "--child",
                        ring,
                        "--data",
                        str(where),
                        "--runs",
                        str(args.runs),
                        "--group",
                        str(group),
                        "--stride",
                        str(stride),
                        "--baseline",
                        args.baseline,
                    ]
                )
                for _ in range(args.repeats)
            ]
            results[f"{name}/{ring}"] = runs
            print(json.dumps({f"{name}/{ring}": runs}), file=sys.stderr)
    for ring in ("old", "new"):
        results[f"fold/{ring}"] = [
            run_child(
                [
                    "--child",
                    ring,
                    "--mode",
                    "fold",
                    "--servers",
                    str(args.servers),
                    "--metrics",
                    str(args.metrics),
                    "--fold-minutes",
                    str(args.fold_minutes),
                    "--baseline",
                    args.baseline,
                ]
            )
            for _ in range(args.repeats)
        ]
    report(results)


def med(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v[p]
        values.append(float(v))
    return statistics.median(values)


def report(results: dict[str, Any]) -> None:
    print(json.dumps(results))
    print("\n| figure | old ring | compressed ring |\n|---|---|---|")
    for name, q in (("server", "Q1"), ("metric", "Q2")):
        old, new = results[f"{name}/old"], results[f"{name}/new"]
        n, held = new[0]["series"], new[0]["minutes_held"]
        print(f"| {name} scenario | {n:,} series × {held} min | |")
        for key in ("bytes_per_series_minute", "rss_per_series_minute", "load_s"):
            print(f"| {key} | {med(old, key):.2f} | {med(new, key):.2f} |")
        for step in ("1 min", "1 h"):
            print(
                f"| {q} at {step} (ms) | {med(old, 'queries_ms', step):.1f} |"
                f" {med(new, 'queries_ms', step):.1f} |"
            )
        qs = "Q3" if q == "Q1" else "Q4"
        print(
            f"| {qs} (ms) | {med(old, 'queries_ms', 'summary'):.1f} |"
            f" {med(new, 'queries_ms', 'summary'):.1f} |"
        )
        for state in ("live", "open", "hour", "compacted"):
            b = med(new, "memory", state, "bytes")
            sm = med(new, "memory", state, "series_minutes")
            per = b / max(1, sm)
            print(f"| {state}: B per series-minute | | {per:.2f} ({b / 2**20:.0f} MiB) |")
        for kind in sorted(new[0]["blob_bytes_per_kind"]):
            print(f"| blobs, {kind} | | {med(new, 'blob_bytes_per_kind', kind):.2f} |")
        print(
            f"| seal / compact CPU s | | {med(new, 'maintenance', 'seal'):.1f} /"
            f" {med(new, 'maintenance', 'compact'):.1f} |"
        )
    old, new = results["fold/old"], results["fold/new"]
    print(
        f"| fold, M points/s | {med(old, 'points_per_s') / 1e6:.2f} |"
        f" {med(new, 'points_per_s') / 1e6:.2f} |"
    )


if __name__ == "__main__":
    main()
