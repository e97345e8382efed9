"""The storage tier's figures: write throughput, year-long summaries, bytes on disk.

    python bench/bench_store.py [--dir DIR] [--series 50000] [--minutes 60] [--runs 15]
        [--parts 1,2,3,4]

Runs on the embedded engine (chDB) in a temporary directory unless ``--dir`` names one; pass
``--dsn http://host:8123`` to measure a ClickHouse server with the same code.

1. Write: ``--series`` series (25 servers × 2,000 metrics by default) × ``--minutes`` minutes
   of minute partials, one insert per closed minute (as the service flushes), values from
   ``minutely.sim.Fleet`` sampled 6 times a minute (count set to 60). Minute-rows/s, and the
   headroom against the seed's fleet (2,000,000 rows a minute).
2. Bytes on disk per minute-row for each tier after merging (both sort orders included).
3. A year of rollups written straight into the 1d/1h/1m tiers for one server with 2,000
   metrics and one metric over 1,000 servers; Q3 (one server's summary) and Q4 (one metric's)
   over 365 days with ragged ends, and Q1/Q2 (30 days at step 1 h, read into the dense
   ``(others, buckets)`` block the API answers from): median of ``--runs``, with the rows
   each read touched. Then same-run baselines for Q1, alternating: the answer copied into
   ``bytes`` first; its cells placed by numpy's passes instead of the compiled loop; and its
   engine blocks joined into flat columns first.
4. Q1 over the last 30 days at step 1 h as the API answers it, in this process (no HTTP),
   with a full 2-day ring in front of the store as in ``serve``: the query (store read, dense
   block, ring buckets merged at the seam), rendering JSON or Arrow, and a client turning the
   body into data (``orjson.loads`` / a ``pyarrow`` table); JSON and Arrow alternate, median
   of ``--runs``. Then, through the same ``Query``, Q3 over the last 365 days and Q1 over
   the last 2 days at 1 minute (the dashboard's default view).

``--parts`` runs only some parts (1 and 2 write together, as do 3 and 4's year of rollups).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from minutely.api import arrow, render
from minutely.hot import HotRing
from minutely.model import Partials, PointBatch
from minutely.query import Query
from minutely.registry import Registry
from minutely.sim import Fleet
from minutely.store import TIER_1D, TIER_1H, TIER_1M, Store, StoreConfig, reader

SEED_ROWS_PER_MINUTE = 2_000_000
DAY = 1440
#: 2025-06-01 00:00 UTC, in minutes
T0 = 20_240 * DAY


def fleet_minutes(fleet: Fleet, minute: int) -> Partials:
    """One minute of every series, from 6 samples (min, max, mean scaled to 60 points)."""
    ts = minute * 60 + np.arange(0, 60, 10, dtype=np.float64)
    v = fleet.at(ts).value.reshape(len(ts), -1)
    count = np.full(v.shape[1], 60, dtype=np.uint32)
    return Partials(v.min(axis=0), v.max(axis=0), v.mean(axis=0) * 60, count)


def bench_write(store: Store, n_series: int, minutes: int) -> None:
    metrics = 2000 if n_series >= 2000 else n_series
    fleet = Fleet(max(1, n_series // metrics), metrics)
    n = len(fleet)
    server_ids = np.repeat(np.arange(fleet.servers, dtype=np.uint32), fleet.metrics)
    metric_ids = np.tile(np.arange(fleet.metrics, dtype=np.uint32), fleet.servers)
    blocks = [fleet_minutes(fleet, T0 + i) for i in range(2 * minutes)]
    need = SEED_ROWS_PER_MINUTE / 60
    print(f"write: {n:,} series (values: minutely.sim.Fleet); the seed needs {need:,.0f} rows/s")
    # as the service flushes: one insert per closed minute
    elapsed = 0.0
    for i in range(minutes):
        start = time.perf_counter()
        store.write_minutes(server_ids, metric_ids, T0 + i, blocks[i])
        elapsed += time.perf_counter() - start
    rate = n * minutes / elapsed
    print(
        f"  one insert per minute ({n:,} rows each), {minutes} minutes: {rate:,.0f} rows/s,"
        f" {elapsed / minutes * 1000:.0f} ms per insert; headroom {rate / need:.1f}x"
    )
    # larger inserts, as at the seed's scale (2M rows a minute): ten minutes per insert
    elapsed = 0.0
    for a in range(minutes, 2 * minutes, 10):
        b = min(2 * minutes, a + 10)
        fields = [np.stack([blk.fields()[k] for blk in blocks[a:b]], axis=1) for k in range(4)]
        stacked = Partials(*fields)  # (series, minutes)
        start = time.perf_counter()
        store.write_minutes(server_ids[:, None], metric_ids[:, None], T0 + np.arange(a, b), stacked)
        elapsed += time.perf_counter() - start
    rate = n * minutes / elapsed
    print(
        f"  ten minutes per insert ({n * 10:,} rows each): {rate:,.0f} rows/s ({rate / need:.1f}x)"
    )
    rows = 2 * n * minutes
    start = time.perf_counter()
    store.optimize()
    print(f"  merge (OPTIMIZE FINAL, all tiers): {time.perf_counter() - start:.2f} s")
    usage = store.disk_usage()
    total = sum(u.bytes for u in usage.values())
    print("bytes on disk after merging (by-server table + by-metric table):")
    for name, u in usage.items():
        per = max(1, u.rows)
        print(
            f"  {name}: {u.rows:>10,} rows {u.bytes:>12,} B"
            f" = {u.bytes_by_server / per:5.2f} + {u.bytes_by_metric / per:5.2f}"
            f" B/row; {u.bytes / rows:6.2f} B per minute-row ({u.bytes / total:5.1%} of all)"
        )
    print(f"  all tiers: {total / rows:.2f} B per minute-row")


def _random_parts(rng: np.random.Generator, n: int, per_cell: int) -> Partials:
    lo = np.round(rng.normal(50, 15, n), 2)
    hi = lo + np.round(rng.random(n) * 20, 2)
    count = np.full(n, per_cell, dtype=np.uint32)
    return Partials(lo, hi, count * (lo + hi) / 2, count)


def _grid(pairs: tuple[np.ndarray, np.ndarray], starts: np.ndarray) -> tuple[np.ndarray, ...]:
    s = np.repeat(pairs[0], len(starts))
    m = np.repeat(pairs[1], len(starts))
    t = np.tile(starts, len(pairs[0]))
    return s, m, t


def timed(runs: int, read: Callable[[], object], store: Store) -> tuple[float, float, int]:
    """(median, best) seconds of ``runs`` reads, and the rows one read touched."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    before = store.read_stats().rows
    idle = store.read_stats().rows - before
    start_rows = store.read_stats().rows
    read()
    return statistics.median(times), min(times), store.read_stats().rows - start_rows - idle


def bench_year(store: Store, runs: int, parts: set[int]) -> None:
    rng = np.random.default_rng(0)
    # server 0 × metrics 0..1999, and metric 0 × servers 0..999
    s = np.concatenate([np.zeros(2000, np.uint32), np.arange(1, 1000, dtype=np.uint32)])
    m = np.concatenate([np.arange(2000, dtype=np.uint32), np.zeros(999, np.uint32)])
    end = T0 + 17 * 60 + 23  # now: 17:23 on the last day
    first = end - 365 * DAY
    first_day, last_day = -(-first // DAY) * DAY, end // DAY * DAY
    written = {}
    start = time.perf_counter()
    days = np.arange(first_day - DAY, last_day + DAY, DAY)
    hours = np.concatenate(
        [
            np.arange(first_day - DAY, first_day, 60),
            np.arange(last_day - 30 * DAY, last_day + DAY, 60),
        ]
    )
    minutes = np.concatenate([np.arange(first - 60, first + 60), np.arange(end - 120, end + 1)])
    for tier, starts, per_cell in (
        (TIER_1D, days, 86_400),
        (TIER_1H, hours, 3600),
        (TIER_1M, minutes, 60),
    ):
        grid = _grid((s, m), starts)
        written[tier.name] = store.write_cells(
            tier, *grid, _random_parts(rng, len(grid[0]), per_cell)
        )
    store.optimize()
    rows = ", ".join(f"{k} {v:,}" for k, v in written.items())
    print(
        f"year of rollups for {len(s):,} series written straight into the tiers ({rows} rows)"
        f" in {time.perf_counter() - start:.1f} s"
    )
    if 3 in parts:
        bench_reads(store, first, end, last_day, runs)
    if 4 in parts:
        bench_answer(store, s, m, end, runs)
    if 5 in parts:
        bench_questions(store, s, m, end, runs)


def bench_reads(store: Store, first: int, end: int, last_day: int, runs: int) -> None:
    """Part 3: the store's own reads over the year (see the module's docstring)."""
    segments = store.segments(first, end - first, end - first)
    print(
        "  a 365-day summary reads: "
        + ", ".join(f"{g.tier.name} {g.last - g.first:,} min" for g in segments)
    )
    queries = {
        "Q3 one server, 2,000 metrics, 365 d": lambda: store.summary(
            "server", 0, None, first, end - first
        ),
        "Q4 one metric, 1,000 servers, 365 d": lambda: store.summary(
            "metric", 0, None, first, end - first
        ),
        "Q1 one server, 2,000 metrics, 30 d step 1h, into its dense block": lambda: store.read(
            "server", 0, None, last_day - 30 * DAY, 30 * DAY, 60
        ).dense(np.arange(2000), 720),
        "Q2 one metric, 1,000 servers, 30 d step 1h, into its dense block": lambda: store.read(
            "metric", 0, None, last_day - 30 * DAY, 30 * DAY, 60
        ).dense(np.arange(1000), 720),
    }
    for name, read in queries.items():
        median, best, touched = timed(runs, read, store)
        print(
            f"  {name}: median {median * 1000:6.1f} ms (best {best * 1000:6.1f}) over {runs} runs,"
            f" {touched:,} rows read"
        )
    bench_copy(store, last_day - 30 * DAY, 30 * DAY, runs)
    bench_blocks(store, last_day - 30 * DAY, 30 * DAY, runs)


def alternating(ways: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median milliseconds of each way over ``runs`` rounds, the ways taking turns in each."""
    took: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(runs):
        for name, read in ways.items():
            start = time.perf_counter()
            read()
            took[name].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in took.items()}


def bench_copy(store: Store, first: int, minutes: int, runs: int) -> None:
    """Q1's store read as it is (the engine's Arrow answer read in place) against the same
    SQL through ``clickhouse_connect``'s ``query_arrow`` (the answer copied into ``bytes``
    first), alternating, median of ``runs``; the baseline of the same run."""
    sql, params = reader.series_query(
        store.config.database, "server", 0, None, store.segments(first, minutes, 60), first, 60
    )
    client = store._clients.get()  # the baseline needs the raw client
    ways: dict[str, Callable[[], object]] = {
        "in place": lambda: store.read("server", 0, None, first, minutes, 60),
        "copied": lambda: reader.series_cells(client.query_arrow(sql, parameters=params)),
    }
    med = alternating(ways, runs)
    print(
        f"  Q1 store read, alternating, median of {runs}: in place {med['in place']:.1f} ms,"
        f" copied into bytes {med['copied']:.1f} ms"
        f" ({med['in place'] / med['copied']:.2f}x)"
    )


def bench_blocks(store: Store, first: int, minutes: int, runs: int) -> None:
    """Q1 into its dense block as it is (each engine block placed by the compiled loop)
    against two baselines of the same run, alternating, median of ``runs``: each block placed
    by numpy's passes (a gather, an add, a scatter per field), and the blocks joined into
    flat columns first, then numpy's passes (as before both)."""
    others = np.arange(2000)
    n = minutes // 60

    def read() -> reader.SeriesCells:
        return store.read("server", 0, None, first, minutes, 60)

    def joined() -> Partials:
        cells = read()
        flat = reader.CellBlock(cells.other_ids, cells.buckets, cells.parts)
        return reader.SeriesCells([flat]).dense(others, n, compiled=False)

    ways: dict[str, Callable[[], object]] = {
        "compiled": lambda: read().dense(others, n),
        "numpy": lambda: read().dense(others, n, compiled=False),
        "joined": joined,
    }
    med = alternating(ways, runs)
    print(
        f"  Q1 into its dense block, alternating, median of {runs}: compiled loop"
        f" {med['compiled']:.1f} ms, numpy's passes {med['numpy']:.1f} ms"
        f" ({med['compiled'] / med['numpy']:.2f}x), blocks joined first {med['joined']:.1f} ms"
    )


def bench_answer(store: Store, s: np.ndarray, m: np.ndarray, now: int, runs: int) -> None:
    """Q1 (server 0, 2,000 metrics, last 30 days at step 1 h) and Q3 (its 365-day summary)
    through ``Query`` and the API's writers, as ``serve`` answers them: the store holds the
    older minutes and a 2-day ring the last 2,880 (random partials for the 2,000 series), so
    each answer merges both at the seam."""
    registry = _registry(s, m)
    series, _ = registry.by_server(0)
    ring = HotRing(minutes=2 * DAY, capacity=int(series.max()) + 1)
    rng = np.random.default_rng(1)
    for hour in range(now - 2 * DAY + 1, now + 1, 60):  # an hour of the ring per load
        minutes = np.arange(hour, min(hour + 60, now + 1))
        cells = len(minutes) * len(series)
        ring.load(
            np.repeat(series, len(minutes)),
            np.tile(minutes, len(series)),
            _random_parts(rng, cells, 60),
            distinct=True,
        )
    query = Query(registry, ring, store)
    end = -(-now // 60) * 3600  # the hour after now, in seconds
    start = end - 30 * 86_400

    a = query.series("server", "srv-0000", start, end, 3600)
    cells = a.parts.count.size
    steps: dict[str, list[float]] = {}
    sizes = {}
    for i in range(runs + 1):
        for fmt in ("json", "arrow"):
            t0 = time.perf_counter()
            a = query.series("server", "srv-0000", start, end, 3600)
            t1 = time.perf_counter()
            if fmt == "json":
                body: bytes | memoryview = render.series_json(a, render.DEFAULT_FIELDS)
                t2 = time.perf_counter()
                got = len(orjson.loads(body)["series"])
            else:
                body = arrow.series_arrow(a, render.DEFAULT_FIELDS)
                t2 = time.perf_counter()
                table = pa.ipc.open_stream(body).read_all()
                got = len(table.column("metric").chunk(0).dictionary)
            t3 = time.perf_counter()
            assert got == len(a.labels) == 2000
            sizes[fmt] = len(body)
            if i:  # the first round warms up
                for key, took in (("query", t1 - t0), (fmt, t2 - t1), (f"{fmt} read", t3 - t2)):
                    steps.setdefault(key, []).append(took * 1000)
                steps.setdefault(f"{fmt} all", []).append((t3 - t0) * 1000)
    med = {k: statistics.median(v) for k, v in steps.items()}
    print(
        f"Q1 one server, 2,000 metrics, last 30 d step 1h as the API answers it ({cells:,} cells,"
        f" 2-day ring + store, no HTTP), median of {runs}: query {med['query']:.1f} ms"
    )
    for fmt in ("json", "arrow"):
        print(
            f"  {fmt:5}: render {med[fmt]:6.1f} ms, {sizes[fmt] / 1e6:5.1f} MB; client read "
            f"{med[f'{fmt} read']:6.1f} ms; query + render + read {med[f'{fmt} all']:6.1f} ms"
        )
    print(f"  arrow / json, query + render + read: {med['arrow all'] / med['json all']:.2f}x")
    year = (now + 1) * 60 - 365 * 86_400
    q3, _, _ = timed(runs, lambda: query.summary("server", "srv-0000", year, (now + 1) * 60), store)
    print(
        f"Q3 one server, 2,000 metrics, last 365 d through Query (2-day ring + store):"
        f" median {q3 * 1000:.1f} ms over {runs} runs"
    )
    view, _, _ = timed(
        runs, lambda: query.series("server", "srv-0000", end - 2 * 86_400, end), store
    )
    print(
        f"Q1 one server, 2,000 metrics, last 2 d at 1 min (the dashboard's default view) through"
        f" Query (5,760,000 cells from the ring): median {view * 1000:.1f} ms over {runs} runs"
    )


#: points per series-minute of part 5's ring (a 1 Hz fleet over 2 days is too many to make)
SIM_POINTS = 4


def _registry(s: np.ndarray, m: np.ndarray) -> Registry:
    """A registry whose series ids are the year's rows' (server ``s[i]``, metric ``m[i]``)."""
    registry = Registry()
    names = PointBatch.from_names(
        np.array([f"srv-{i:04d}" for i in s], dtype=object),
        np.array([f"metric-{i:04d}" for i in m], dtype=object),
        np.zeros(len(s)),
        np.zeros(len(s)),
    )
    registry.series_ids(names)  # names get the ids the rows were written with (sorted = id order)
    assert registry.servers.get("srv-0001") == 1 and registry.metrics.get("metric-1999") == 1999
    return registry


def _sim_ring(n_series: int, now: int) -> HotRing:
    """A 2-day ring (the default window and ring blocks) of ``n_series`` series holding the
    simulator's fleet, rounded as its agents report, from ``SIM_POINTS`` points a minute;
    loaded hour by hour from the hour the window starts in, as a start-up does, then folded
    until compaction is done, as a running ring is."""
    ring = HotRing(minutes=2 * DAY, capacity=n_series)
    fleet = Fleet(-(-n_series // 2000), 2000, seed=1)
    ids = np.arange(n_series, dtype=np.int32)
    for hour in range((now - 2 * DAY + 1) // 60 * 60, now + 1, 60):  # an hour per load
        minutes = np.arange(hour, min(hour + 60, now + 1))
        ts = hour * 60 + np.arange(len(minutes) * SIM_POINTS) * (60 // SIM_POINTS)
        v = fleet.at(ts, series_major=True).value.reshape(-1, len(ts))[:n_series]
        v = v.reshape(-1, SIM_POINTS)  # series-major: each series' minutes in turn
        count = np.full(v.shape[0], SIM_POINTS, np.uint32)
        parts = Partials(v.min(axis=1), v.max(axis=1), v.sum(axis=1), count)
        ring.load(np.repeat(ids, len(minutes)), np.tile(minutes, n_series), parts, True)
    compacted = -1
    while compacted != ring.seal_stats.compacted:
        compacted = ring.seal_stats.compacted
        for _ in range(4):
            ring.fold(ids, np.full(n_series, now), np.ones(n_series))
    return ring


def bench_questions(
    store: Store, s: np.ndarray, m: np.ndarray, now: int, runs: int
) -> dict[str, list[float]]:
    """Part 5: Q1–Q4 through ``Query`` with a full 2-day ring of every series in front of
    the year in the store (see the module's docstring): ``[wall, CPU]`` milliseconds of
    each question, medians of ``runs`` after one to warm up. "ring alone" asks a ``Query``
    without the store, so a step-aligned start before the window reads nothing older."""
    registry = _registry(s, m)
    ring = _sim_ring(len(s), now)
    with_store, alone = Query(registry, ring, store), Query(registry, ring, None)
    end = (now + 1) * 60  # the minute after the newest, in seconds: the ring's window ends
    two, thirty = end - 2 * 86_400, end - 30 * 86_400
    server, metric = ("server", "srv-0000"), ("metric", "metric-0000")
    questions: dict[str, Callable[[], object]] = {
        "Q1 2,000 series, 2 d at 1 min": lambda: with_store.series(*server, two, end, 60),
        "Q1 2 d at 1 h, ring alone": lambda: alone.series(*server, two, end, 3600),
        "Q1 2 d at 1 h, ring + store": lambda: with_store.series(*server, two, end, 3600),
        "Q1 30 d at 1 h, ring + store": lambda: with_store.series(*server, thirty, end, 3600),
        "Q3 2 d": lambda: with_store.summary(*server, two, end),
        "Q2 1,000 series, 2 d at 1 min": lambda: with_store.series(*metric, two, end, 60),
        "Q2 2 d at 1 h, ring alone": lambda: alone.series(*metric, two, end, 3600),
        "Q2 2 d at 1 h, ring + store": lambda: with_store.series(*metric, two, end, 3600),
        "Q2 30 d at 1 h, ring + store": lambda: with_store.series(*metric, thirty, end, 3600),
        "Q4 2 d": lambda: with_store.summary(*metric, two, end),
        "Q4 30 d, ring + store": lambda: with_store.summary(*metric, thirty, end),
    }
    got: dict[str, list[float]] = {}
    for name, ask in questions.items():
        wall, cpu = [], []
        for _ in range(runs + 1):
            began, began_cpu = time.perf_counter(), time.process_time()
            answer = ask()
            wall.append((time.perf_counter() - began) * 1000)
            cpu.append((time.process_time() - began_cpu) * 1000)
            del answer  # freed before the next, as a served answer is
        got[name] = [statistics.median(wall[1:]), statistics.median(cpu[1:])]
    ring.close()
    print(f"questions through Query, {len(s):,} series in a 2-day ring + store, median of {runs}:")
    for name, (wall_ms, cpu_ms) in got.items():
        print(f"  {name}: wall {wall_ms:6.1f} ms, CPU {cpu_ms:6.1f} ms")
    print(json.dumps(got))
    return got


def compare(baseline: Path, processes: int, runs: int) -> None:
    """Part 5 in ``processes`` fresh processes of this checkout and of ``baseline``,
    alternating; the medians of their medians, and this / baseline."""
    trees = {"this": Path(__file__).resolve().parent.parent, "baseline": baseline.resolve()}
    got: dict[str, list[dict[str, list[float]]]] = {name: [] for name in trees}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--parts", "5", "--runs", str(runs)]
    for i in range(processes):
        for name, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=str(tree))
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                raise RuntimeError(done.stderr)
            got[name].append(json.loads(done.stdout.splitlines()[-1]))
            print(f"# process {i + 1} {name}: {done.stdout.splitlines()[-1]}", flush=True)
    print(f"\nmedians of {processes} processes each (each the median of {runs} asks)\n")
    print("| question through Query | this wall | baseline wall | ratio | this CPU |"
          " baseline CPU | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for q in got["this"][0]:
        this = [statistics.median(r[q][k] for r in got["this"]) for k in (0, 1)]
        base = [statistics.median(r[q][k] for r in got["baseline"]) for k in (0, 1)]
        print(
            f"| {q} | {this[0]:.1f} | {base[0]:.1f} | {this[0] / base[0]:.2f}x"
            f" | {this[1]:.1f} | {base[1]:.1f} | {this[1] / base[1]:.2f}x |"
        )


def main() -> None:
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", help="engine directory for chDB (default: a temporary one)")
    ap.add_argument("--dsn", help="a DSN instead of chDB in --dir (e.g. http://localhost:8123)")
    ap.add_argument("--series", type=int, default=50_000)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--parts", default="1,2,3,4", help="which of the parts above to run")
    ap.add_argument("--baseline", type=Path, help="part 5 only: another checkout, same run")
    ap.add_argument("--processes", type=int, default=3, help="with --baseline: per checkout")
    args = ap.parse_args()
    if args.baseline is not None:
        compare(args.baseline, args.processes, args.runs)
        return
    parts = {int(p) for p in args.parts.split(",")}
    todo = []
    if parts & {1, 2}:
        todo.append(("bench_write", lambda st: bench_write(st, args.series, args.minutes)))
    if parts & {3, 4, 5}:
        todo.append(("bench_year", lambda st: bench_year(st, args.runs, parts)))
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        dsn = args.dsn or f"chdb://{args.dir or tmp}"
        for database, run in todo:
            store = Store.open(StoreConfig(dsn, database))
            try:
                store.drop()
                store.close()
                store = Store.open(StoreConfig(dsn, database))
                run(store)
            finally:
                store.drop()
                store.close()


if __name__ == "__main__":
    main()
