"""What the ingest limits cost a request: the name rule and the cardinality count, timed in
one process on ``bench_pipeline.py``'s body (1,000,000 points of 100 × 500 series, Arrow).

    python bench/bench_limits.py            # median of 15 each

Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minutely import sim
from minutely.ingest import decode
from minutely.ingest.validate import name_problems
from minutely.limits import CardinalityGuard
from minutely.registry import Registry

ARROW = "application/vnd.apache.arrow.stream"


def median_ms(f: Callable[[], object], n: int = 15) -> float:
    took = []
    for _ in range(n):
        began = time.perf_counter()
        f()
        took.append(time.perf_counter() - began)
    return statistics.median(took) * 1e3


def main() -> None:
    fleet = sim.Fleet(100, 500, seed=1)
    body = sim.encode_arrow(fleet.batch(int(time.time()) - 600, 20))
    now = time.time()

    def decoded() -> object:
        return decode(body, ARROW, now=now, oldest=now - 86400, max_future=300)

    batch = decode(body, ARROW, now=now, oldest=now - 86400, max_future=300).batch
    names = np.concatenate([batch.server_names, batch.metric_names])
    known = Registry()
    known.series_ids(batch)
    guard = CardinalityGuard(known, 1 << 30, 0, time.time)
    rows = [
        ("decode + validate (the name rule included)", median_ms(decoded)),
        (
            f"the name rule alone, {len(names)} distinct names",
            median_ms(lambda: name_problems(names, 256)),
        ),
        (
            "`count_new`, every series known (the common case)",
            median_ms(lambda: known.count_new(batch)),
        ),
        ("`CardinalityGuard.admit`", median_ms(lambda: guard.admit(batch))),
        (
            "`series_ids`, the fold's own lookup, for scale",
            median_ms(lambda: known.series_ids(batch)),
        ),
        (
            "`count_new`, every series new (a fleet's first body)",
            median_ms(lambda: Registry().count_new(batch), 5),
        ),
    ]
    print(f"| step | per {len(batch):,}-point body |\n|---|---|")
    for what, ms in rows:
        print(f"| {what} | {ms:.2f} ms |")


if __name__ == "__main__":
    main()
