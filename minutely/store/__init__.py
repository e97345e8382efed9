"""The storage tier: minute partials for years, in ClickHouse (embedded chDB by default).

One client API, ``clickhouse-connect``: ``chdb:///<dir>`` runs the engine in this process,
``http://host:8123`` reaches a server. Same schema, same SQL, same code.

Schema (database ``minutely`` by default); every tier is two tables with the same rows::

    tier  table (by server) / twin (by metric)         partitions   cell     block
    1m    minutes_1m / minutes_1m_by_metric            a day        minute   hour
    1h    minutes_1h / minutes_1h_by_metric            a month      hour     day
    1d    minutes_1d / minutes_1d_by_metric            a month      day      (the partition)

    ┌───────────┬───────────┬──────────────────┬────────────┬────────────┬────────────┬────────────┐
    │ server_id │ metric_id │ ts               │ min        │ max        │ sum        │ count      │
    │ UInt32    │ UInt32    │ DateTime('UTC'), │ SimpleAgg  │ SimpleAgg  │ SimpleAgg  │ SimpleAgg  │
    │           │           │ the cell's start │ (min, F64) │ (max, F64) │ (sum, F64) │ (sum, U64) │
    ├───────────┴───────────┴──────────────────┴────────────┴────────────┴────────────┴────────────┤
    │ 1m:    T64+ZSTD   DoubleDelta+ZSTD    FPC+ZSTD (values)    T64+ZSTD (ids, count)            │
    │ 1h/1d: LZ4 for every column (small tiers, read in bulk: decode fast)                        │
    └──────────────────────────────────────────────────────────────────────────────────────────────┘
    ENGINE AggregatingMergeTree
      by server: ORDER BY (server_id, block(ts), metric_id, ts)
      by metric: ORDER BY (metric_id, block(ts), server_id, ts)

    write_minutes ─INSERT─► minutes_1m ──copy──────────► minutes_1m_by_metric
                                ├─ GROUP BY hour ─► minutes_1h ──copy──► minutes_1h_by_metric
                                └─ GROUP BY day ──► minutes_1d ──copy──► minutes_1d_by_metric
      (materialized views; each merges the inserted block's partials with min/max/sum/sum)

    names   (kind Enum8('server','metric'), id UInt32, name String)   ReplacingMergeTree
    series  (seq UInt64, server_id UInt32, metric_id UInt32)           ReplacingMergeTree

Rows are partial aggregates; several rows may hold one cell until merges collapse them, so
every read merges: ``min/max/sum/sum … GROUP BY``, or ``FINAL`` where each cell is its own
bucket. A read's range is split among the tiers (``plan``): whole days aligned to the
buckets from the 1d tier, whole hours from the 1h tier, the ragged edges from the 1m tier.
Retention drops whole partitions, and reads stop at each tier's horizon.

Modules: ``config`` (settings), ``tiers`` (cells, tables, partitions), ``schema`` (DDL),
``plan`` (tier choice), ``writer`` (insert tables), ``reader`` (read SQL and answers),
``names`` (the registry on disk), ``errors``, ``store`` (the ``Store`` that ties them).
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
