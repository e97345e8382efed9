"""The store's tables and materialized views, as DDL; and creating them.

Every statement is idempotent (``IF NOT EXISTS``), so opening a store creates what is missing
and leaves what is there. Identifiers (database, tables) come from checked configuration, never
from a request; the only value in DDL is the checked integer ``index_granularity``.

On a single node only ``minutes_1m`` is written to. Materialized views carry each inserted
block on::

    minutes_1m ──copy──► minutes_1m_by_metric
        ├──GROUP BY hour──► minutes_1h ──copy──► minutes_1h_by_metric
        └──GROUP BY day───► minutes_1d ──copy──► minutes_1d_by_metric

The metric-ordered copies are tables, not projections: a projection of an
``AggregatingMergeTree`` must be rebuilt on every merge, and its parts ignore column codecs,
so they take more bytes than a table with ``FPC, ZSTD`` (figures: docs/performance.md,
Measured choices). A table also shards by metric on a cluster while its twin shards by
server.

A cluster's store (``layout="cluster"``) has no copy views: the by-server copy's owners
write ``minutes_1m`` and the by-metric copy's owners ``minutes_1m_by_metric``, each exactly
once by its own checkpoints, and each 1-minute table rolls up into its own coarse tiers.
"""

from __future__ import annotations

from minutely.store.config import StoreConfig
from minutely.store.tiers import TIER_1H, TIER_1M, TIERS, Tier

#: the layout this code writes; a store records each version it was brought to
SCHEMA_VERSION = 2
#: one row per version the store was created at or migrated to
VERSION_TABLE = "schema_version"

#: server and metric names ↔ ids; one row per name, re-inserts collapse
NAMES_TABLE = "names"
#: every (server, metric) pair the registry holds, in its series-id order
SERIES_TABLE = "series"
#: parts per tier table whose insert tokens the engine remembers, so that an insert repeated
#: with its token after a crash adds nothing twice (``Store.write_minutes(token=…)``); one
#: checkpoint's insert makes far fewer parts than this (about one per day and block it spans)
DEDUP_WINDOW = 10_000


def _columns(tier: Tier) -> str:
    c = tier.codecs
    return f"""
    server_id UInt32 CODEC({c["id"]}),
    metric_id UInt32 CODEC({c["id"]}),
    ts DateTime('UTC') CODEC({c["ts"]}),
    min SimpleAggregateFunction(min, Float64) CODEC({c["value"]}),
    max SimpleAggregateFunction(max, Float64) CODEC({c["value"]}),
    sum SimpleAggregateFunction(sum, Float64) CODEC({c["value"]}),
    count SimpleAggregateFunction(sum, UInt64) CODEC({c["id"]})"""


def _order(tier: Tier, first: str, second: str) -> str:
    block = f"{tier.block}(ts), " if tier.block else ""
    return f"({first}, {block}{second}, ts)"


def _tier_tables(db: str, tier: Tier, granularity: int) -> list[str]:
    out = []
    for table, key in (
        (tier.table, _order(tier, "server_id", "metric_id")),
        (tier.by_metric, _order(tier, "metric_id", "server_id")),
    ):
        out.append(f"""
CREATE TABLE IF NOT EXISTS {db}.{table} ({_columns(tier)}
) ENGINE = AggregatingMergeTree
PARTITION BY {tier.partition_by}
ORDER BY {key}
SETTINGS index_granularity = {int(granularity)},
    non_replicated_deduplication_window = {DEDUP_WINDOW}
""")
    return out


def _copy_view(db: str, tier: Tier) -> str:
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{tier.by_metric}_mv TO {db}.{tier.by_metric} AS
SELECT server_id, metric_id, ts, min, max, sum, count FROM {db}.{tier.table}
"""


def _rollup_view(db: str, tier: Tier, by_metric: bool = False) -> str:
    # Built from the 1-minute partials of each insert block: exact, never from averages.
    # Columns are qualified through the alias ``src`` so that the output aliases (which
    # must match the target's column names) are not taken for the inputs.
    target = tier.by_metric if by_metric else tier.table
    source = TIER_1M.by_metric if by_metric else TIER_1M.table
    view = f"{tier.by_metric}_rollup_mv" if by_metric else f"{tier.table}_mv"
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{view} TO {db}.{target} AS
SELECT
    src.server_id AS server_id,
    src.metric_id AS metric_id,
    {tier.cell_start.format(ts="src.ts")} AS ts,
    min(src.min) AS min,
    max(src.max) AS max,
    sum(src.sum) AS sum,
    sum(src.count) AS count
FROM {db}.{source} AS src
GROUP BY server_id, metric_id, ts
"""


def layout_views(layout: str) -> tuple[str, str]:
    """(a view only the ``layout`` has, a view only the other layout has): a store made
    for one layout is refused by the other, as the two fill the metric tables differently."""
    single, cluster = f"{TIER_1M.by_metric}_mv", f"{TIER_1H.by_metric}_rollup_mv"
    return (single, cluster) if layout == "single" else (cluster, single)


def migrations(config: StoreConfig) -> dict[int, list[str]]:
    """Per version ``v``, the statements that bring a store at ``v - 1`` to ``v``; each is
    idempotent, so a migration cut off by a crash is simply run again.

    Version 1 is every store made before versions were recorded. Version 2: every tier
    table remembers ``DEDUP_WINDOW`` insert tokens, and the coarse tiers' columns take the
    codecs of ``tiers.py`` (parts written from now on, and parts merged, use them; a store
    made before the codec change kept ``T64``/``DoubleDelta``). Each runs once, never at
    every start: an ``ALTER`` rewrites the table's metadata file, which the embedded engine
    can leave empty on a full disk, and such a store no longer starts.
    """
    db = config.database
    to_2 = [
        f"ALTER TABLE {db}.{table} MODIFY SETTING"
        f" non_replicated_deduplication_window = {DEDUP_WINDOW}"
        for tier in TIERS
        for table in tier.tables()
    ]
    for tier in TIERS:
        if tier is TIER_1M:
            continue
        c = tier.codecs
        kinds = {
            "server_id": ("UInt32", c["id"]),
            "metric_id": ("UInt32", c["id"]),
            "ts": ("DateTime('UTC')", c["ts"]),
            "min": ("SimpleAggregateFunction(min, Float64)", c["value"]),
            "max": ("SimpleAggregateFunction(max, Float64)", c["value"]),
            "sum": ("SimpleAggregateFunction(sum, Float64)", c["value"]),
            "count": ("SimpleAggregateFunction(sum, UInt64)", c["id"]),
        }
        for table in tier.tables():
            for column, (kind, codec) in kinds.items():
                to_2.append(
                    f"ALTER TABLE {db}.{table} MODIFY COLUMN {column} {kind} CODEC({codec})"
                )
    return {2: to_2}


def version_table(db: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.{VERSION_TABLE} (
    version UInt32,
    at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree ORDER BY version
"""


def statements(config: StoreConfig) -> list[str]:
    """The DDL that makes an empty store, in order (tables before the views that fill them)."""
    db = config.database
    out = [f"CREATE DATABASE IF NOT EXISTS {db}"]
    for tier in TIERS:
        out += _tier_tables(db, tier, config.index_granularity)
    for tier in TIERS:
        if config.layout == "single":
            out.append(_copy_view(db, tier))
        if tier is not TIER_1M:
            out.append(_rollup_view(db, tier))
            if config.layout == "cluster":  # each copy rolls its own minutes up
                out.append(_rollup_view(db, tier, by_metric=True))
    out.append(f"""
CREATE TABLE IF NOT EXISTS {db}.{NAMES_TABLE} (
    kind Enum8('server' = 1, 'metric' = 2),
    id UInt32,
    name String
) ENGINE = ReplacingMergeTree ORDER BY (kind, id)
""")
    out.append(f"""
CREATE TABLE IF NOT EXISTS {db}.{SERIES_TABLE} (
    seq UInt64,
    server_id UInt32,
    metric_id UInt32
) ENGINE = ReplacingMergeTree ORDER BY seq
""")
    return out
