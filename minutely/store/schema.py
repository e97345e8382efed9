"""The store's tables, projections and materialized views, as DDL; and creating them.

Every statement is idempotent (``IF NOT EXISTS``), so opening a store creates what is missing
and leaves what is there. Identifiers (database, tables) come from checked configuration, never
from a request; values never appear in DDL except the checked integer ``index_granularity``.

Codecs follow the data: the sorted key columns hold long runs (``T64`` then ``ZSTD``); ``ts``
steps by a constant within a series (``DoubleDelta`` stores that in a few bits); the values are
slowly varying floats (``Gorilla`` XORs each with its predecessor); counts are small integers
that rarely change (``T64``).
"""

from __future__ import annotations

from minutely.store.config import StoreConfig
from minutely.store.tiers import TIER_1M, TIERS, Tier

_COLUMNS = """
    server_id UInt32 CODEC(T64, ZSTD(1)),
    metric_id UInt32 CODEC(T64, ZSTD(1)),
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    min SimpleAggregateFunction(min, Float64) CODEC(Gorilla, ZSTD(1)),
    max SimpleAggregateFunction(max, Float64) CODEC(Gorilla, ZSTD(1)),
    sum SimpleAggregateFunction(sum, Float64) CODEC(Gorilla, ZSTD(1)),
    count SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1))"""

#: the name of the metric-ordered projection every tier carries
BY_METRIC = "by_metric"


def _tier_table(db: str, tier: Tier, granularity: int) -> str:
    # A projection on an AggregatingMergeTree must be rebuilt when parts merge (rows
    # collapse), which 'rebuild' does; the projection copy is a second sort order, the
    # seed's "copy the data twice", kept in step with the table by the engine itself.
    return f"""
CREATE TABLE IF NOT EXISTS {db}.{tier.table} ({_COLUMNS},
    PROJECTION {BY_METRIC} (SELECT * ORDER BY metric_id, server_id, ts)
) ENGINE = AggregatingMergeTree
PARTITION BY {tier.partition_by}
ORDER BY (server_id, metric_id, ts)
SETTINGS index_granularity = {int(granularity)}, deduplicate_merge_projection_mode = 'rebuild'
"""


def _rollup_view(db: str, tier: Tier) -> str:
    # Built from the 1-minute partials of each insert block: exact, never from averages.
    # Columns are qualified through the alias ``src`` so that the output aliases (which
    # must match the target's column names) are not taken for the inputs.
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{tier.table}_mv TO {db}.{tier.table} AS
SELECT
    src.server_id AS server_id,
    src.metric_id AS metric_id,
    {tier.cell_start.format(ts="src.ts")} AS ts,
    min(src.min) AS min,
    max(src.max) AS max,
    sum(src.sum) AS sum,
    sum(src.count) AS count
FROM {db}.{TIER_1M.table} AS src
GROUP BY server_id, metric_id, ts
"""


#: server and metric names ↔ ids; one row per name, re-inserts collapse
NAMES_TABLE = "names"
#: every (server, metric) pair the registry holds, in its series-id order
SERIES_TABLE = "series"


def statements(config: StoreConfig) -> list[str]:
    """The DDL that makes an empty store, in order."""
    db = config.database
    out = [f"CREATE DATABASE IF NOT EXISTS {db}"]
    out += [_tier_table(db, tier, config.index_granularity) for tier in TIERS]
    out += [_rollup_view(db, tier) for tier in TIERS if tier is not TIER_1M]
    out.append(
        f"""
CREATE TABLE IF NOT EXISTS {db}.{NAMES_TABLE} (
    kind Enum8('server' = 1, 'metric' = 2),
    id UInt32,
    name String
) ENGINE = ReplacingMergeTree ORDER BY (kind, id)
"""
    )
    out.append(
        f"""
CREATE TABLE IF NOT EXISTS {db}.{SERIES_TABLE} (
    seq UInt64,
    server_id UInt32,
    metric_id UInt32
) ENGINE = ReplacingMergeTree ORDER BY seq
"""
    )
    return out
