"""The storage tier: minute partials for years, in ClickHouse (embedded chDB by default).

One client API, ``clickhouse-connect``: ``chdb:///<dir>`` runs the engine in this process,
``http://host:8123`` reaches a server. Same schema, same SQL, same code.

Schema (database ``minutely`` by default)::

    minutes_1m   AggregatingMergeTree  PARTITION BY toYYYYMMDD(ts)  (one partition a day)
    minutes_1h   AggregatingMergeTree  PARTITION BY toYYYYMM(ts)    (one partition a month)
    minutes_1d   AggregatingMergeTree  PARTITION BY toYYYYMM(ts)
    ┌───────────┬───────────┬──────────────────┬────────────┬────────────┬────────────┬────────────┐
    │ server_id │ metric_id │ ts               │ min        │ max        │ sum        │ count      │
    │ UInt32    │ UInt32    │ DateTime('UTC'), │ SimpleAgg  │ SimpleAgg  │ SimpleAgg  │ SimpleAgg  │
    │           │           │ the cell's start │ (min, F64) │ (max, F64) │ (sum, F64) │ (sum, U64) │
    │ T64, ZSTD │ T64, ZSTD │ DoubleDelta, ZSTD│ Gorilla,   │ Gorilla,   │ Gorilla,   │ T64, ZSTD  │
    │           │           │                  │ ZSTD       │ ZSTD       │ ZSTD       │            │
    └───────────┴───────────┴──────────────────┴────────────┴────────────┴────────────┴────────────┘
      ORDER BY (server_id, metric_id, ts)                       reads by server
      PROJECTION by_metric ORDER BY (metric_id, server_id, ts)   reads by metric

    write_minutes ─INSERT─► minutes_1m ─┬─ minutes_1h_mv (GROUP BY hour) ─► minutes_1h
                                        └─ minutes_1d_mv (GROUP BY day)  ─► minutes_1d
      each view merges the inserted block's partials with min/max/sum/sum: exact

    names   (kind Enum8('server','metric'), id UInt32, name String)   ReplacingMergeTree
    series  (seq UInt64, server_id UInt32, metric_id UInt32)           ReplacingMergeTree

Rows are partial aggregates; several rows may hold one cell until merges collapse them, and
every read merges with ``min/max/sum/sum ... GROUP BY``. A read's range is split among the
tiers (``plan``): whole days aligned to the buckets from ``minutes_1d``, whole hours from
``minutes_1h``, the ragged edges from ``minutes_1m``. Retention drops whole partitions.

Modules: ``config`` (settings), ``tiers`` (cells and partitions), ``schema`` (DDL), ``plan``
(tier choice), ``writer`` (insert tables), ``reader`` (read SQL and answers), ``names``
(registry on disk), ``errors``, ``store`` (the ``Store`` object that ties them together).
"""

from minutely.store.config import Retention, StoreConfig
from minutely.store.errors import StoreCorrupt, StoreError
from minutely.store.plan import Segment, plan
from minutely.store.reader import By, MinuteRows, SeriesCells, SummaryCells
from minutely.store.store import ReadStats, Store, TierUsage
from minutely.store.tiers import TIER_1D, TIER_1H, TIER_1M, TIERS, Tier

__all__ = [
    "TIERS",
    "TIER_1D",
    "TIER_1H",
    "TIER_1M",
    "By",
    "MinuteRows",
    "ReadStats",
    "Retention",
    "Segment",
    "SeriesCells",
    "Store",
    "StoreConfig",
    "StoreCorrupt",
    "StoreError",
    "SummaryCells",
    "Tier",
    "TierUsage",
    "plan",
]
