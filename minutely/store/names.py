"""The name registry on disk: server and metric names ↔ ids, and the series that exist.

The store's rows carry ids, not names, so the ids must mean the same after a restart. Names
are written once each, as ``(kind, id, name)``; series as ``(seq, server_id, metric_id)`` in
the registry's series order. Both tables are append-only (``ReplacingMergeTree``: a re-sent
row collapses into the first), so saving is "insert what is new since the last save".

Loading checks the ids are dense (``0 … n-1``) and that no id has two names; anything else
is a damaged store and raises ``StoreCorrupt`` rather than silently renumbering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from minutely.model import U32, PointBatch
from minutely.registry import Registry
from minutely.store.errors import StoreCorrupt
from minutely.store.schema import NAMES_TABLE, SERIES_TABLE

Kind = Literal["server", "metric"]


def names_table(kind: Kind, first_id: int, names: Sequence[str]) -> Any:
    """Arrow rows for ``names`` with ids ``first_id, first_id + 1, …``."""
    n = len(names)
    return pa.table(
        {
            "kind": pa.array([kind] * n, pa.string()),
            "id": pa.array(np.arange(first_id, first_id + n, dtype=np.uint32)),
            "name": pa.array(list(names), pa.string()),
        }
    )


def series_table(first_seq: int, server_ids: U32, metric_ids: U32) -> Any:
    """Arrow rows for series ``first_seq, first_seq + 1, …``."""
    n = len(server_ids)
    return pa.table(
        {
            "seq": pa.array(np.arange(first_seq, first_seq + n, dtype=np.uint64)),
            "server_id": pa.array(np.asarray(server_ids, dtype=np.uint32)),
            "metric_id": pa.array(np.asarray(metric_ids, dtype=np.uint32)),
        }
    )


def names_query(db: str, kind: Kind) -> tuple[str, dict[str, Any]]:
    sql = f"""
SELECT id, any(name) AS first_name, uniqExact(name) AS variants
FROM {db}.{NAMES_TABLE} WHERE kind = {{kind:String}}
GROUP BY id ORDER BY id
"""
    return sql, {"kind": kind}


def series_query(db: str) -> str:
    return f"""
SELECT seq, any(server_id) AS sid, any(metric_id) AS mid
FROM {db}.{SERIES_TABLE} GROUP BY seq ORDER BY seq
"""


def count_query(db: str) -> str:
    """How many names of each kind and how many series are saved."""
    return f"""
SELECT
    (SELECT uniqExact(id) FROM {db}.{NAMES_TABLE} WHERE kind = 'server') AS server,
    (SELECT uniqExact(id) FROM {db}.{NAMES_TABLE} WHERE kind = 'metric') AS metric,
    (SELECT uniqExact(seq) FROM {db}.{SERIES_TABLE}) AS series
"""


def check_names(kind: Kind, table: Any) -> list[str]:
    """The names of a ``names_query`` answer, in id order, after checking it."""
    ids = np.asarray(table.column("id").to_numpy())
    variants = np.asarray(table.column("variants").to_numpy())
    if not np.array_equal(ids, np.arange(len(ids))):
        msg = f"{kind} ids on disk are not 0..{len(ids) - 1}: the names table is damaged"
        raise StoreCorrupt(msg)
    if (variants > 1).any():
        bad = int(ids[np.flatnonzero(variants > 1)[0]])
        msg = f"{kind} id {bad} has more than one name on disk"
        raise StoreCorrupt(msg)
    names: list[str] = table.column("first_name").to_pylist()
    if len(set(names)) != len(names):
        msg = f"two {kind} ids on disk share a name"
        raise StoreCorrupt(msg)
    return names


def check_series(table: Any, n_servers: int, n_metrics: int) -> tuple[U32, U32]:
    """The series of a ``series_query`` answer, after checking it against the names."""
    seq = np.asarray(table.column("seq").to_numpy())
    s = np.asarray(table.column("sid").to_numpy(), dtype=np.uint32)
    m = np.asarray(table.column("mid").to_numpy(), dtype=np.uint32)
    if not np.array_equal(seq, np.arange(len(seq))):
        msg = f"series on disk are not numbered 0..{len(seq) - 1}"
        raise StoreCorrupt(msg)
    if len(s) and (int(s.max()) >= n_servers or int(m.max()) >= n_metrics):
        msg = "a series on disk names a server or metric id that has no name"
        raise StoreCorrupt(msg)
    return s, m


def build_registry(
    servers: list[str], metrics: list[str], s: U32, m: U32, into: Registry | None = None
) -> Registry:
    """A registry with these names at these ids and these series (``into``, which must be
    empty, filled in place; else a new one).

    Series keep the ids they were saved with (``seq``), so the ring's snapshot finds its
    rows where it left them; rows carry server and metric ids, never series ids. A store
    whose saved series repeat a pair is numbered afresh, in (server, metric) order.
    """
    reg = Registry() if into is None else into
    if len(reg.servers) or len(reg.metrics) or reg.n_series:
        msg = "a registry can be loaded from the store only while it is empty"
        raise ValueError(msg)
    reg.servers.intern(np.asarray(servers, dtype=object))
    reg.metrics.intern(np.asarray(metrics, dtype=object))
    if not len(s):
        return reg
    try:
        reg.number_series(s.astype(np.int32), m.astype(np.int32))
    except ValueError:  # the saved series repeat a pair: numbered afresh (nothing was added)
        batch = PointBatch(
            np.asarray(servers, dtype=object),
            s.astype(np.int32),
            np.asarray(metrics, dtype=object),
            m.astype(np.int32),
            np.zeros(len(s)),
            np.zeros(len(s)),
        )
        reg.series_ids(batch)
    return reg
