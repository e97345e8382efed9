"""Minute partials → one Arrow table for one insert into the 1-minute tier.

The store writes only the 1-minute tier; the engine's materialized views fold each inserted
block into the 1-hour and 1-day tiers from the same partials (``min/max/sum/sum``), so the
three tiers can never disagree and the writer makes one round trip per call.

A long backfill spans many days: ``insert_pieces`` cuts a table into inserts of at most
``MAX_DAYS_PER_INSERT`` day partitions and ``MAX_ROWS_PER_INSERT`` rows, the same cut for the
same rows, so a retry with the same tokens finds what landed.

Rows are *deltas*: a row adds its points to whatever the cell already holds. Write each
accepted point once; a correction is a row holding only the late points (re-writing a whole
minute's partial would count its earlier points twice).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from minutely.model import Partials

_MAX_MINUTE = (1 << 32) // 60  # DateTime is seconds in a UInt32

#: day partitions one insert may touch: the engine refuses a block over
#: ``max_partitions_per_insert_block`` (100 by default), and each partition is a part to merge
MAX_DAYS_PER_INSERT = 64
#: rows one insert may carry, so the engine's memory for one block stays bounded
MAX_ROWS_PER_INSERT = 1 << 20

#: the Arrow schema of an insert; ``ts`` is unix seconds, which ClickHouse takes as DateTime
INSERT_SCHEMA = pa.schema(
    [
        ("server_id", pa.uint32()),
        ("metric_id", pa.uint32()),
        ("ts", pa.uint32()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("sum", pa.float64()),
        ("count", pa.uint64()),
    ]
)


def minute_table(
    server_ids: npt.ArrayLike,
    metric_ids: npt.ArrayLike,
    minutes: npt.ArrayLike,
    parts: Partials,
) -> Any:
    """The non-empty entries of ``parts`` as an Arrow table in ``INSERT_SCHEMA``.

    ``server_ids``, ``metric_ids`` and ``minutes`` are broadcast to the shape of ``parts``
    (a scalar minute for a whole column of series, say); any shape is flattened.
    """
    shape = parts.count.shape
    s = np.broadcast_to(np.asarray(server_ids), shape).reshape(-1)
    m = np.broadcast_to(np.asarray(metric_ids), shape).reshape(-1)
    t = np.broadcast_to(np.asarray(minutes, dtype=np.int64), shape).reshape(-1)
    keep = parts.count.reshape(-1) > 0
    if keep.all():
        idx: slice | npt.NDArray[np.bool_] = slice(None)
    else:
        idx = keep
    s, m, t = s[idx], m[idx], t[idx]
    if t.size and (int(t.min()) < 0 or int(t.max()) >= _MAX_MINUTE):
        msg = f"minutes must lie in [0, {_MAX_MINUTE}) (1970 to 2106), got {t.min()}..{t.max()}"
        raise ValueError(msg)
    for name, ids in (("server_ids", s), ("metric_ids", m)):
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 0xFFFFFFFF):
            msg = f"{name} must fit UInt32"
            raise ValueError(msg)
    columns = [
        s.astype(np.uint32, copy=False),
        m.astype(np.uint32, copy=False),
        (t * 60).astype(np.uint32),
        parts.min.reshape(-1)[idx],
        parts.max.reshape(-1)[idx],
        parts.sum.reshape(-1)[idx],
        parts.count.reshape(-1)[idx].astype(np.uint64),
    ]
    return pa.Table.from_arrays(
        [pa.array(np.ascontiguousarray(c)) for c in columns], schema=INSERT_SCHEMA
    )


def insert_pieces(rows: Any) -> list[Any]:
    """``rows`` (an ``INSERT_SCHEMA`` table) cut into inserts the engine takes: each spans
    at most ``MAX_DAYS_PER_INSERT`` days and holds at most ``MAX_ROWS_PER_INSERT`` rows.

    Deterministic: the same rows give the same pieces, in day order. A table that needs no
    cut comes back whole, as the one piece.
    """
    n = int(rows.num_rows)
    if n == 0:
        return []
    days = rows.column("ts").to_numpy() // 86_400
    lo, hi = int(days.min()), int(days.max())
    if hi - lo < MAX_DAYS_PER_INSERT and n <= MAX_ROWS_PER_INSERT:
        return [rows]
    if hi - lo >= MAX_DAYS_PER_INSERT:
        order = np.argsort(days, kind="stable")
        rows, days = rows.take(pa.array(order)), days[order]
    # piece boundaries: every MAX_DAYS_PER_INSERT distinct days, then every MAX_ROWS rows
    distinct = np.flatnonzero(np.diff(days)) + 1
    day_cuts = distinct[MAX_DAYS_PER_INSERT - 1 :: MAX_DAYS_PER_INSERT]
    bounds = [0, *day_cuts.tolist(), n]
    pieces = []
    for a, b in itertools.pairwise(bounds):
        for start in range(a, b, MAX_ROWS_PER_INSERT):
            pieces.append(rows.slice(start, min(b, start + MAX_ROWS_PER_INSERT) - start))
    return pieces


def piece_tokens(token: str | None, n: int) -> list[str | None]:
    """The insert token of each of ``n`` pieces of an insert made with ``token``: the token
    itself for one piece (so a retry of an insert made before inserts were cut still finds
    it), ``<token>.<i>`` for several."""
    if token is None or n == 1:
        return [token] * n
    return [f"{token}.{i}" for i in range(n)]
