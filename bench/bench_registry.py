"""Registry.series_ids: milliseconds per batch, median of several runs (best run too).

    python bench/bench_registry.py [--against REV] [--runs N]

With ``--against REV`` the registry of that git revision (``git show REV:minutely/registry.py``)
is timed in the same process, alternating with this tree's run by run.

- fleet, all servers      1M points of a known 1,000 x 2,000 fleet, one per series, in random
                          order: the batch's names span 2M pairs, so each point is looked up
                          in the whole map
- fleet, one partition    1M points of 125 of its servers (a bus partition), 4 per series: the
                          batch's names span a sub-table of 250,000 pairs
- one server's second     2,000 points of one server (an agent's post), per call
- new series              the fleet known, then 1M points of which 200,000 are on 100 new
                          servers: interning and adding 200,000 series
- start-up, fleet         ``store.names.build_registry`` of the fleet's names and 2M series (the
                          registry class of each revision put in its place)
- unique metric names     1,000 servers with 2,000 metric names each, none shared (the sparse
                          layout), 1M points of its 2M series (this tree only)
- 200k metrics/servers    one server with 200,000 metric names, then 200,000 servers with
                          one of them each (this tree only: a dense table would be 256 GiB);
                          the peak traced by tracemalloc in a run of its own
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import minutely.registry
import minutely.store.names as names_module
from minutely.model import PointBatch

SERVERS, METRICS, POINTS = 1000, 2000, 1_000_000


def load_registry(rev: str) -> ModuleType:
    """``minutely/registry.py`` as it was at ``rev``, imported as a module of its own."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:minutely/registry.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "registry_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("registry_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clone(reg: Any) -> Any:
    """A deep copy of a registry of either version (its lock is not copyable)."""
    out = object.__new__(type(reg))
    for key, value in vars(reg).items():
        is_lock = isinstance(value, type(threading.Lock()))
        out.__dict__[key] = threading.Lock() if is_lock else copy.deepcopy(value)
    return out


def names(prefix: str, n: int) -> np.ndarray[Any, np.dtype[np.object_]]:
    return np.array([f"{prefix}{i}" for i in range(n)], dtype=object)


def batch(servers: Any, s: Any, metrics: Any, m: Any) -> PointBatch:
    zeros = np.zeros(len(s))
    return PointBatch(servers, s.astype(np.int32), metrics, m.astype(np.int32), zeros, zeros)


def fleet_batch(servers: Any, metrics: Any) -> PointBatch:
    s, m = np.divmod(np.arange(len(servers) * len(metrics)), len(metrics))
    return batch(servers, s, metrics, m)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def report(label: str, times: dict[str, list[float]]) -> None:
    cells = [
        f"{impl} {statistics.median(ts):9.3f} ms (best {min(ts):8.3f})"
        for impl, ts in times.items()
    ]
    print(f"{label:<26}" + "   ".join(cells), flush=True)


def compare(
    label: str,
    impls: dict[str, ModuleType],
    prepare: Callable[[ModuleType], Any],
    run: Callable[[Any], object],
    runs: int,
    calls: int = 1,
    fresh: bool = False,
) -> None:
    """Median time of ``run(state)`` per implementation, the implementations alternating;
    ``prepare`` makes the untimed state once, and with ``fresh`` each run works on a clone."""
    states = {name: prepare(mod) for name, mod in impls.items()}
    times: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(runs):
        for name in impls:
            state = clone(states[name]) if fresh else states[name]
            times[name].append(timed(lambda s=state: [run(s) for _ in range(calls)]) / calls)
    report(label, times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="git revision whose registry is timed too")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    impls: dict[str, ModuleType] = {"new": minutely.registry}
    if args.against:
        impls = {"old": load_registry(args.against), **impls}
    runs = args.runs
    rng = np.random.default_rng(7)
    servers, metrics = names("web-", SERVERS), names("metric.", METRICS)
    fleet = fleet_batch(servers, metrics)

    def known(mod: ModuleType) -> Any:
        reg = mod.Registry()
        reg.series_ids(fleet)
        return reg

    # fleet, all servers: one point for each of 1M series, in random order
    pick = rng.permutation(SERVERS * METRICS)[:POINTS]
    s, m = np.divmod(pick, METRICS)
    every = batch(servers, s, metrics, m)
    compare("fleet, all servers", impls, known, lambda r: r.series_ids(every), runs)

    # fleet, one partition: 125 servers x 2,000 metrics, 4 points each, shuffled
    part = np.arange(0, SERVERS, 8)
    order = rng.permutation(len(part) * METRICS * 4) % (len(part) * METRICS)
    s, m = np.divmod(order, METRICS)
    one_part = batch(servers[part], s, metrics, m)
    compare("fleet, one partition", impls, known, lambda r: r.series_ids(one_part), runs)

    one_server = batch(servers[[3]], np.zeros(METRICS), metrics, rng.permutation(METRICS))
    compare(
        "one server's second", impls, known, lambda r: r.series_ids(one_server), runs, calls=200
    )

    # new series: 800,000 known points and 200,000 on 100 new servers, shuffled
    mixed_servers = np.concatenate((servers[:400], names("new-", 100)))
    pairs = rng.permutation(len(mixed_servers) * METRICS)
    s, m = np.divmod(pairs, METRICS)
    mixed = batch(mixed_servers, s, metrics, m)
    compare("new series", impls, known, lambda r: r.series_ids(mixed), runs, fresh=True)

    s, m = np.divmod(np.arange(SERVERS * METRICS, dtype=np.uint32), np.uint32(METRICS))

    def start_up(mod: ModuleType) -> Any:
        names_module.Registry = mod.Registry
        try:
            return names_module.build_registry(list(servers), list(metrics), s, m)
        finally:
            names_module.Registry = minutely.registry.Registry

    compare("start-up, fleet", impls, lambda mod: mod, start_up, min(runs, 3))

    # unique metric names: server i has metrics "i.0" … "i.1999"; this tree only
    own = {"new": minutely.registry}
    unique_metrics = names("own.", SERVERS * METRICS)
    s, m = np.divmod(np.arange(SERVERS * METRICS), METRICS)
    owned = batch(servers, s, unique_metrics, s * METRICS + m)

    def owned_known(mod: ModuleType) -> Any:
        reg = mod.Registry()
        reg.series_ids(owned)
        assert reg.layout == "sparse"
        return reg

    pick = rng.permutation(SERVERS * METRICS)[:POINTS]
    s, m = np.divmod(pick, METRICS)
    owned_points = batch(servers, s, unique_metrics, s * METRICS + m)
    compare("unique metric names", own, owned_known, lambda r: r.series_ids(owned_points), runs)

    # 200k metrics on one server, then 200k servers with one of them each; this tree only
    n = 200_000
    wide_metrics, many_servers = names("metric.", n), names("host-", n)
    codes = np.arange(n)
    wide = batch(np.array(["solo"], dtype=object), codes * 0, wide_metrics, codes)
    tall = batch(many_servers, codes, wide_metrics, codes)
    times: dict[str, list[float]] = {"wide": [], "tall": []}
    for _ in range(runs):
        reg = minutely.registry.Registry()
        times["wide"].append(timed(lambda r=reg: r.series_ids(wide)))
        times["tall"].append(timed(lambda r=reg: r.series_ids(tall)))
    report("200k metrics/servers", times)
    tracemalloc.start()
    reg = minutely.registry.Registry()
    reg.series_ids(wide)
    reg.series_ids(tall)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{'':<26}peak traced {peak / 2**20:.0f} MiB, layout {reg.layout}")


if __name__ == "__main__":
    sys.exit(main())
