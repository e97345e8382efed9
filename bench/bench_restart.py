"""Start-up: how long rebuilding the hot ring from the store takes.

Writes ``--series`` series × ``--hours`` hours of minute partials into an embedded store
(through ``Store.write_minutes``, so every tier and twin is filled as in production), then
times what ``minutely serve`` does at start: open the store, expire, load the registry and
rebuild the ring (``Service.__init__``), with a 2-day window. Median of ``--runs`` starts,
once after the first half of the hours is written and once after all of them.

    python bench/bench_restart.py                      # 50,000 series x 6 hours
    python bench/bench_restart.py --hours 48           # the full 2-day window (slow to write)
    python bench/bench_restart.py --snapshot           # and after a clean stop, alternating

With ``--snapshot`` each rebuilt start is followed by a clean stop, which writes the ring
to ``<data_dir>/ring-snapshot``, and a start that puts it back: the
restart an operator gets after ``minutely serve`` was stopped, against the rebuild after a
crash, in the same run.

A start costs a fixed part (the engine, the registry, and the first touch of the 2-day
ring's memory, which is zeroed on first write) and a part per hour held; the two sizes
separate them, and the 2-day figure is ``fixed + 48 × per hour``. Each start is timed after
``OPTIMIZE`` (a settled store, as hours-old data is); parts still unmerged right after heavy
writes make the read slower.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import numpy as np

from minutely import ringsnapshot, store_writer
from minutely.config import Settings
from minutely.model import Partials
from minutely.service import Service


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=100)
    ap.add_argument("--metrics", type=int, default=500)
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--baseline-ahead",
        type=int,
        help="also time each start with store_writer.LOAD_AHEAD at this value (0: the reads "
        "one at a time), alternating with the default, for a same-run baseline",
    )
    ap.add_argument(
        "--snapshot",
        action="store_true",
        help="also time a clean stop (the ring's snapshot written) and the start after it",
    )
    args = ap.parse_args()
    n_series = args.servers * args.metrics
    now = time.time()
    last = int(now // 60)
    minutes = args.hours * 60
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=tmp, hot_window=2 * 86400, store="chdb")
        # names first, through a service, so ids are what serve would assign
        service = Service(settings, clock=lambda: now).open()
        store = service.store
        assert store is not None
        servers = np.array([f"srv-{i:04d}" for i in range(args.servers)], dtype=object)
        metrics = np.array([f"metric.{j:04d}" for j in range(args.metrics)], dtype=object)
        store.save_names(list(servers), list(metrics))
        s_ids = np.repeat(np.arange(args.servers), args.metrics).astype(np.uint32)
        m_ids = np.tile(np.arange(args.metrics), args.servers).astype(np.uint32)
        store.save_series(s_ids, m_ids)

        def write(first: int, stop: int) -> float:
            began = time.perf_counter()
            for m in range(first, stop, 10):
                k = min(10, stop - m)
                vals = rng.normal(50, 10, (n_series, k))
                parts = Partials(vals, vals + 1, vals * 60, np.full((n_series, k), 60, np.uint32))
                mins = np.arange(m, m + k)[np.newaxis, :]
                store.write_minutes(s_ids[:, None], m_ids[:, None], mins, parts)
            return time.perf_counter() - began

        def start_once(ahead: int) -> float:
            store_writer.LOAD_AHEAD = ahead
            began = time.perf_counter()
            service = Service(settings, clock=lambda: now).open()
            took = time.perf_counter() - began
            assert service.registry.n_series == n_series
            service.close()
            return took

        default_ahead = store_writer.LOAD_AHEAD

        def restart_once() -> tuple[float, float, float, float]:
            """A rebuilt start, a clean stop (the snapshot written) and the start after it;
            and the snapshot's size in MB."""
            store_writer.LOAD_AHEAD = default_ahead
            began = time.perf_counter()
            service = Service(settings, clock=lambda: now).open()
            rebuilt = time.perf_counter() - began
            sealed = service.ring.memory()
            began = time.perf_counter()
            asyncio.run(service.stop())
            saved = time.perf_counter() - began
            assert (service.snapshot_dir / ringsnapshot.MANIFEST).exists()
            size = sum(f.stat().st_size for f in service.snapshot_dir.iterdir()) / 1e6
            began = time.perf_counter()
            again = Service(settings, clock=lambda: now).open()
            put_back = time.perf_counter() - began
            assert again.ring_start is not None and again.ring_start.source == "snapshot"
            for part in ("sealed_blocks", "compacted_blocks"):
                assert 0 < again.ring.memory()[part] <= sealed[part] or not sealed[part]
            again.close()
            return rebuilt, saved, put_back, size

        def restarts() -> list[float]:
            """Medians of ``restart_once``'s three timings over ``--runs``."""
            got = [restart_once() for _ in range(args.runs)]
            return [statistics.median(col) for col in zip(*got, strict=True)]

        def start_up() -> tuple[float, float | None]:
            """Median start-up at the default and, alternating, at ``--baseline-ahead``."""
            took, base = [], []
            for _ in range(args.runs):
                took.append(start_once(default_ahead))
                if args.baseline_ahead is not None:
                    base.append(start_once(args.baseline_ahead))
            store_writer.LOAD_AHEAD = default_ahead
            return statistics.median(took), statistics.median(base) if base else None

        half = minutes // 2
        wrote = write(last - minutes, last - half)
        store.optimize()  # as the engine's background merges leave a store that has settled
        service.close()
        small, small_base = start_up()
        service = Service(settings, clock=lambda: now).open()
        store = service.store
        assert store is not None
        wrote += write(last - half, last)
        store.optimize()
        service.close()
        rows = n_series * minutes
        print(
            f"# {os.cpu_count()} cores; wrote {rows:,} minute-rows ({n_series:,} series x "
            f"{args.hours} h) in {wrote:.1f}s = {rows / wrote:,.0f} rows/s",
            flush=True,
        )
        full, full_base = start_up()
        snap = restarts() if args.snapshot else None
        per_hour = (full - small) / ((minutes - half) / 60)
        fixed = full - per_hour * minutes / 60
        print()
        print("| measure | result |")
        print("|---|---|")
        for hours, took in ((half / 60, small), (minutes / 60, full)):
            print(
                f"| start-up with {n_series:,} series x {hours:g} h in the store (median of "
                f"{args.runs}) | {took:.2f} s |"
            )
        for hours, took, base in ((half / 60, small, small_base), (minutes / 60, full, full_base)):
            if base is not None:
                print(
                    f"| {hours:g} h with LOAD_AHEAD={args.baseline_ahead}, alternating | "
                    f"{base:.2f} s (default / it: {took / base:.2f}) |"
                )
        if snap is not None:
            rebuilt, saved, put_back, size = snap
            h = minutes / 60
            print(f"| {h:g} h: the start that rebuilds from the store | {rebuilt:.2f} s |")
            print(
                f"| {h:g} h: a clean stop, the ring's snapshot written | {saved:.2f} s "
                f"({size:,.0f} MB) |"
            )
            print(
                f"| {h:g} h: the start after it, the snapshot put back | {put_back:.2f} s "
                f"(against the rebuild: {put_back / rebuilt:.2f}) |"
            )
        print(f"| fixed part; per hour held | {fixed:.1f} s; {per_hour:.2f} s |")
        print(f"| a full 2-day ring (fixed + 48 x per hour) | {fixed + 48 * per_hour:.0f} s |")


if __name__ == "__main__":
    main()
