"""Bytes per series-minute of the simulator's fleet in the compressed block store
(``minutely.blocks.BlockStore``), per metric kind and resolution, with the fleet reported at
its agents' resolutions and, in the same run, at full precision (the simulator before it
rounded).

Data (``bench/codec_data.py`` ``sim_fleet``): one simulated server's ``--series`` metrics over
``--minutes`` minutes at 1 Hz, folded into minute partials as the ring folds them; sealed in
hour blocks, then compacted into 6-hour blocks (and into 24-hour ones), once with each
hour's summary kept (28 B per series-hour, what ``HotRing`` keeps beside its compacted
blocks, in its own array) and once without. Every blob is read back and compared bit for
bit. A group's bytes are its series' blobs plus its share of the index and summaries (the
same per series), over its series-minutes; the whole store's are every byte it allocated
(arenas with their padding, index, summaries). Sizes are exact, so one run suffices.

    flock /tmp/minutely-cpu.lock python bench/bench_fleet_bytes.py [--series 2000] [--minutes 2880]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_codec import check_exact
from codec_data import sim_fleet

from minutely.blocks import BlockStore
from minutely.model import Partials
from minutely.sim import Fleet, Resolution

HOUR = 60
SIX_HOURS = 360
DAY = 1440
#: (label, block minutes, summary minutes kept in a compacted block)
BLOCKS = (
    ("1 h", HOUR, 0),
    ("6 h + hour summaries (the ring's)", SIX_HOURS, HOUR),
    ("6 h", SIX_HOURS, 0),
    ("24 h + hour summaries (the ring's)", DAY, HOUR),
    ("24 h", DAY, 0),
)


def build(parts: Partials, block: int, sub_minutes: int) -> BlockStore:
    """``parts`` sealed in hour blocks, compacted to ``block`` minutes."""
    store = BlockStore()
    minutes = parts.count.shape[1]
    for m0 in range(0, minutes, HOUR):
        store.seal(m0, parts.take(np.s_[:, m0 : m0 + HOUR]))
    if block > HOUR:
        for m0 in range(0, minutes, block):
            store.compact(m0, block, sub_minutes)
    return store


def group_bytes(store: BlockStore, groups: dict[str, npt.NDArray[np.bool_]]) -> dict[str, float]:
    """Bytes per series-minute: the whole store, and each group of series."""
    usage = store.usage()
    rows = usage[0].rows
    minutes = sum(u.minutes for u in usage)
    meta = sum(u.index + u.summary for u in usage)
    out = {"whole store": sum(u.nbytes for u in usage) / (rows * minutes)}
    for name, mine in groups.items():
        n = int(mine.sum())
        held = sum(int(b.length[mine].sum()) for b in store.blocks)
        out[name] = (held + meta * n / rows) / (n * minutes)
    return out


def label(kind: str, resolution: Resolution) -> str:
    step = "full precision" if resolution is Resolution.FULL else f"step {resolution.value}"
    return f"{kind}, {step}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--minutes", type=int, default=2880)
    args = ap.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    # Groups follow the rounded fleet's labels, so both variants are compared series by series.
    fleet = Fleet(1, args.series)
    kinds = np.array([str(k) for k in fleet.metric_kinds])
    labels = np.array(
        [
            label(str(k), r)
            for k, r in zip(fleet.metric_kinds, fleet.metric_resolutions, strict=True)
        ]
    )
    groups = {f"{k} ({int((kinds == k).sum())})": kinds == k for k in dict.fromkeys(kinds)}
    fine = {f"{x} ({int((labels == x).sum())})": labels == x for x in sorted(set(labels))}
    print(f"bench_fleet_bytes: 1 server x {args.series} metrics x {args.minutes} min, {commit}")
    results: dict[tuple[str, str], dict[str, float]] = {}
    for name, full_precision in (("agents' resolutions", False), ("full precision", True)):
        t = time.perf_counter()
        parts, _ = sim_fleet(args.series, args.minutes, full_precision=full_precision)
        made = time.perf_counter() - t
        for blocks, minutes, sub_minutes in BLOCKS:
            store = build(parts, minutes, sub_minutes)
            check_exact(store, parts)
            results[(name, blocks)] = group_bytes(store, groups | fine)
        print(f"({name}: data made in {made:.0f} s; every blob read back bit for bit)")
    for title, cols in (("per kind", ["whole store", *groups]), ("per kind and step", [*fine])):
        print(f"\n### Bytes per series-minute, {title}\n")
        print("| fleet | blocks | " + " | ".join(cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for (name, block), got in results.items():
            cells = " | ".join(f"{got[c]:.2f}" for c in cols)
            print(f"| {name} | {block} | {cells} |")


if __name__ == "__main__":
    main()
