"""The compressed block store (``minutely.blocks`` over ``minutely.ringcodec``): bytes per
series-minute, read times against the plain hot ring in the same run, encode CPU.

    flock /tmp/minutely-cpu.lock python bench/bench_codec.py [--series N] [--minutes M] [--runs R]
        [--baseline TREE]

Data (``bench/codec_data.py``): minute partials folded from per-second points, ``--series``
series over ``--minutes`` minutes, once for the issue's fleet mix and once for one simulated
server of ``minutely.sim``.

1. Bytes per series-minute in hour blocks and in 6-hour blocks (hours compacted), arenas,
   index and summaries included, overall and per kind; every blob read back and compared
   bit for bit.
2. Reads of the issue mix: Q1 (all series, one server) and Q2 (every other series, as one
   metric over 1,000 servers), 2 days at step 1 minute and at 1 hour, into freshly
   allocated buckets: ``HotRing.read_buckets`` over the same partials, then the store on one
   thread and on two. Medians of ``--runs``. With ``--baseline TREE``, the same reads of the
   same blocks again with ``TREE``'s decoder (its ``minutely/ringcodec.py``, which must read
   this tree's format), alternating with this tree's.
3. Encode CPU: sealing hour blocks and compacting six of them, per series-hour, and what
   2M series would cost per hour of one core.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codec_data import issue_mix, sim_fleet

from minutely import blocks as blocks_module
from minutely.blocks import BlockStore
from minutely.hot import HotRing
from minutely.model import Partials

HOUR = 60
SIX_HOURS = 360
FLEET_SERIES = 2_000_000


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), times


def load_decoder(tree: Path) -> ModuleType:
    """``tree``'s ``minutely/ringcodec.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(
        "baseline_ringcodec", tree / "minutely" / "ringcodec.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's cache finds a kernel's module by its name
    spec.loader.exec_module(module)
    return module


@contextmanager
def decoder(module: ModuleType | None) -> Iterator[None]:
    """Reads through ``BlockStore`` decode with ``module``'s ``decode_jobs`` (this tree's
    when None): the blocks stay the same, only the decoder changes."""
    if module is None:
        yield
        return
    with mock.patch.object(blocks_module, "ringcodec", module):
        yield


def build(parts: Partials, block: int) -> tuple[BlockStore, float, float]:
    """A store of ``parts`` in hour blocks, compacted to ``block`` minutes; seconds spent
    sealing and compacting."""
    store = BlockStore()
    minutes = parts.count.shape[1]
    t = time.perf_counter()
    for m0 in range(0, minutes, HOUR):
        store.seal(m0, parts.take(np.s_[:, m0 : m0 + HOUR]))
    sealed = time.perf_counter() - t
    t = time.perf_counter()
    if block > HOUR:
        for m0 in range(0, minutes, block):
            store.compact(m0, block)
    return store, sealed, time.perf_counter() - t


def check_exact(store: BlockStore, parts: Partials) -> None:
    rows, minutes = parts.count.shape
    out = Partials.empty((rows, minutes))
    store.read(np.arange(rows, dtype=np.int32), 0, minutes, 1, out)
    full = parts.count > 0
    assert (out.count == parts.count).all()
    for a, b in zip(out.fields()[:3], parts.fields()[:3], strict=True):
        assert (a[full].view(np.uint64) == b[full].view(np.uint64)).all()


def sizes(name: str, parts: Partials, kinds: list[str]) -> BlockStore:
    rows, minutes = parts.count.shape
    kind = np.array(kinds)
    per_kind = {k: int((kind == k).sum()) for k in dict.fromkeys(kinds)}
    header = " | ".join(f"{k} ({n})" for k, n in per_kind.items())
    print(f"\n### Bytes per series-minute, {name}: {rows} series x {minutes} min\n")
    print(f"| blocks | whole store | blobs only | index + summaries | {header} |")
    print("|---|---|---|---|" + "---|" * len(per_kind))
    store = BlockStore()
    for block in (HOUR, SIX_HOURS):
        store, _, _ = build(parts, block)
        check_exact(store, parts)
        usage = store.usage()
        total = sum(u.nbytes for u in usage)
        blobs = sum(u.live for u in usage)
        meta = sum(u.index + u.summary for u in usage)
        sm = rows * minutes
        cells = []
        for k, n in per_kind.items():
            mine = kind == k
            held = sum(int(b.length[mine].sum()) for b in store.blocks)
            share = meta * n / rows
            cells.append(f"{(held + share) / (n * minutes):.2f}")
        print(
            f"| {block} min | {total / sm:.2f} | {blobs / sm:.2f} | {meta / sm:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return store


def reads(parts: Partials, runs: int, baseline: ModuleType | None) -> None:
    rows, minutes = parts.count.shape
    ring = HotRing(minutes=minutes, capacity=rows)
    series = np.repeat(np.arange(rows, dtype=np.int32), minutes)
    mins = np.tile(np.arange(minutes, dtype=np.int64), rows)
    flat = Partials(*(f.reshape(-1) for f in parts.fields()))
    full = flat.count > 0
    ring.load(series[full], mins[full], flat.take(full), distinct=True)
    first = int(ring.oldest_minute() or 0)
    stores = {b: build(parts, b)[0] for b in (HOUR, SIX_HOURS)}
    pool = ThreadPoolExecutor(1)
    q1 = np.arange(rows, dtype=np.int32)
    q2 = q1[::2].copy()
    decoders: list[tuple[str, ModuleType | None]] = [("", None)]
    if baseline is not None:
        decoders.append(("baseline ", baseline))
    cases = [(HOUR, 1), (HOUR, 2), (SIX_HOURS, 2)]
    names = [f"{d}{b // HOUR} h blocks, {t} thr." for d, _ in decoders for b, t in cases]
    print(f"\n### Reads over {minutes} min into fresh buckets, median of {runs} (ms)\n")
    print("| query | step | hot ring | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for qname, ids in (("Q1", q1), ("Q2", q2)):
        for step in (1, HOUR):
            count = minutes - minutes % step

            def plain(ids: np.ndarray = ids, step: int = step, count: int = count) -> None:
                ring.read_buckets(ids, first, count, step)

            def blocks(
                store: BlockStore,
                threads: int,
                ids: np.ndarray = ids,
                step: int = step,
                count: int = count,
            ) -> Partials:
                out = Partials.empty((ids.shape[0], count // step))
                store.read(ids, 0, count, step, out, pool if threads == 2 else None)
                return out

            want = ring.read_buckets(ids, first, count, step)
            times: dict[tuple[int, int, int], list[float]] = {}
            for i, (_, module) in enumerate(decoders):
                with decoder(module):
                    got = blocks(stores[HOUR], 2)
                assert (got.count == want.count).all() and (got.min == want.min).all()
                for b, t in cases:
                    times[i, b, t] = []
            ring_times = []
            for _ in range(runs):  # one run of each in turn, so load on the machine hits all
                ring_times.extend(median_ms(plain, 1)[1])
                for i, (_, module) in enumerate(decoders):
                    with decoder(module):
                        for b, t in cases:
                            one = median_ms(lambda b=b, t=t: blocks(stores[b], t), 1)[1]
                            times[i, b, t].extend(one)
            cells = [statistics.median(ring_times)]
            cells += [statistics.median(v) for v in times.values()]
            row = " | ".join(f"{c:.1f}" for c in cells)
            print(f"| {qname} ({ids.shape[0]} series) | {step} min | {row} |")
    pool.shutdown()


def encode_cpu(parts: Partials, runs: int) -> None:
    rows, minutes = parts.count.shape
    seal, compact = [], []
    for _ in range(runs):
        _, s, c = build(parts, SIX_HOURS)
        seal.append(s)
        compact.append(c)
    hours = rows * minutes / HOUR
    s_us = statistics.median(seal) / hours * 1e6
    c_us = statistics.median(compact) / hours * 1e6
    print(f"\n### Encode CPU, median of {runs}\n")
    print("| step | µs per series-hour | one core's share at 2M series |")
    print("|---|---|---|")
    for name, us in (("seal hour blocks", s_us), ("compact 6 hours into one block", c_us)):
        print(f"| {name} | {us:.2f} | {us * FLEET_SERIES / 3.6e9:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--minutes", type=int, default=2880)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", type=Path, help="another tree whose decoder to time as well")
    args = ap.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"bench_codec: {args.series} series x {args.minutes} min, commit {commit}")
    if args.baseline:
        base = subprocess.run(
            ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        print(f"baseline decoder: {args.baseline}, commit {base}")
    t = time.perf_counter()
    mix, kinds = issue_mix(args.series, args.minutes)
    sim, sim_kinds = sim_fleet(args.series, args.minutes)
    print(f"(data made in {time.perf_counter() - t:.0f} s)")
    sizes("issue mix", mix, kinds)
    sizes("simulator fleet (1 server)", sim, sim_kinds)
    baseline = load_decoder(args.baseline) if args.baseline else None
    reads(mix, args.runs, baseline)
    encode_cpu(mix, max(3, args.runs // 2))


if __name__ == "__main__":
    main()
