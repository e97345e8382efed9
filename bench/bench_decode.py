"""Decode throughput of minutely.ingest: points/s for 1M points per body, median of 5 runs
(the best run is printed too: on a shared machine the spread is wide).

    python bench/bench_decode.py [points]

Bodies: 1,000 servers x 1,000 metrics, timestamps inside the window, random values.

- json fast          a clean body: pyarrow.json reads it in C++
- json one bad point the same body with one string value at the end: the fast attempt fails
                     at the end, then the orjson fallback runs (the worst case)
- json fallback      the orjson path alone (read_slow + validate)
- arrow dictionary   one record batch with dictionary<int32, string> names (PointBatch.to_arrow)
- arrow strings      one record batch with plain string names
- arrow 10 batches   ten record batches of dictionary names, each with its own dictionary
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from minutely.ingest import decode
from minutely.ingest.json import read_slow
from minutely.ingest.validate import validate
from minutely.model import ARROW_STREAM, PointBatch

NOW = 1_764_000_000.0
LIMITS: dict[str, Any] = {"now": NOW, "oldest": NOW - 2 * 86400, "max_future": 300.0}
RUNS = 5


def points(n: int) -> PointBatch:
    rng = np.random.default_rng(7)
    servers = np.array([f"web-{i:03d}" for i in range(1000)], dtype=object)
    metrics = np.array([f"cpu.metric.{i}" for i in range(1000)], dtype=object)
    i = np.arange(n)
    return PointBatch(
        servers,
        (i % 1000).astype(np.int32),
        metrics,
        ((i // 1000) % 1000).astype(np.int32),
        NOW - 3600 + (i % 3600).astype(np.float64),
        np.round(rng.random(n) * 100, 3),
    )


def json_body(batch: PointBatch) -> bytes:
    rows = [
        {"server": s, "metric": m, "ts": int(t), "value": v}
        for s, m, t, v in zip(
            batch.server_names[batch.server_codes].tolist(),
            batch.metric_names[batch.metric_codes].tolist(),
            batch.ts.tolist(),
            batch.value.tolist(),
            strict=True,
        )
    ]
    return orjson.dumps(rows)


def arrow_body(batches: list[pa.RecordBatch]) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for b in batches:
            writer.write_batch(b)
    return bytes(sink.getvalue().to_pybytes())


def plain_strings(b: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [b.column(0).cast(pa.string()), b.column(1).cast(pa.string()), b.column(2), b.column(3)],
        names=["server", "metric", "ts", "value"],
    )


def measure(name: str, n: int, run: Callable[[], int]) -> None:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        accepted = run()
        times.append(time.perf_counter() - start)
    median, best = statistics.median(times), min(times)
    print(
        f"{name:20s} {n / median / 1e6:6.2f} M points/s  ({median * 1000:7.1f} ms median, "
        f"{n / best / 1e6:6.2f} M/s best; {accepted:,} accepted)"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    batch = points(n)
    body = json_body(batch)
    bad = body[: body.rindex(b'"value":') + 8] + b'"oops"}]'
    record = batch.to_arrow()
    tenth = max(1, n // 10)
    pieces = [batch.take(np.arange(k, min(n, k + tenth))) for k in range(0, n, tenth)]
    # Each piece gets a dictionary of only the names it uses, so the dictionaries differ.
    pieces = [
        PointBatch.from_names(
            p.server_names[p.server_codes], p.metric_names[p.metric_codes], p.ts, p.value
        )
        for p in pieces
    ]
    print(f"{n:,} points; JSON body {len(body) / n:.0f} B/point")

    def json_fast() -> int:
        return decode(body, "application/json", **LIMITS).accepted

    def json_bad() -> int:
        return decode(bad, "application/json", **LIMITS).accepted

    def json_fallback() -> int:
        columns, explain = read_slow(body)
        return validate(*columns, max_errors=100, explain=explain, **LIMITS).accepted

    arrow_dict = arrow_body([record])
    arrow_plain = arrow_body([plain_strings(record)])
    arrow_many = arrow_body([p.to_arrow() for p in pieces])
    kind = ARROW_STREAM

    measure("json fast", n, json_fast)
    measure("json one bad point", n, json_bad)
    measure("json fallback", n, json_fallback)
    measure("arrow dictionary", n, lambda: decode(arrow_dict, kind, **LIMITS).accepted)
    measure("arrow strings", n, lambda: decode(arrow_plain, kind, **LIMITS).accepted)
    measure("arrow 10 batches", n, lambda: decode(arrow_many, kind, **LIMITS).accepted)


if __name__ == "__main__":
    main()
