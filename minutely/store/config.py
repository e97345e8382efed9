"""The store's settings: where it lives, how long each tier keeps its data, how it is laid out.

One frozen object, built by the composition root (``service``) from ``minutely.config`` and
passed to ``Store.open``. Nothing here reads the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from minutely.store.tiers import TIER_1H, TIER_1M, Tier

DAY_SECONDS = 86_400

#: a database name goes into DDL as an identifier, so it is checked, never quoted
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each tier keeps its data, in seconds.

    A tier keeps every cell (minute, hour or day) that ends after ``now - retention``; the
    cell that holds that instant stays whole, as the cell is the tier's unit of time.
    """

    minute: float = 400 * DAY_SECONDS
    hour: float = 1827 * DAY_SECONDS  # five years, leap days included
    day: float = 1827 * DAY_SECONDS

    def __post_init__(self) -> None:
        for name in ("minute", "hour", "day"):
            if getattr(self, name) <= 0:
                msg = f"retention.{name} must be positive, not {getattr(self, name)}"
                raise ValueError(msg)

    def of(self, tier: Tier) -> float:
        """The retention of ``tier`` in seconds."""
        if tier is TIER_1M:
            return self.minute
        return self.hour if tier is TIER_1H else self.day


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where the store is and how its tables are made.

    ``dsn`` is ``chdb:///<absolute dir>`` for the embedded engine or ``http(s)://host:port``
    for a ClickHouse server; both go through ``clickhouse_connect.get_client``.
    """

    dsn: str
    database: str = "minutely"
    retention: Retention = Retention()
    #: rows per primary-index granule; the ClickHouse default suits production, tests use less
    index_granularity: int = 8192
    #: "single": one node writes ``minutes_1m`` and views copy it into the metric-ordered
    #: tables; "cluster": each copy's owners write their own 1-minute table (``copy``), so
    #: each copy is exactly once on its own and no view copies between them
    layout: Literal["single", "cluster"] = "single"
    #: which copy's 1-minute table this store's inserts go to (a cluster's metric shards
    #: write ``minutes_1m_by_metric``)
    copy: Literal["server", "metric"] = "server"
    #: the embedded engine's bound on all the memory it holds (``max_server_memory_usage``;
    #: background merges get half): past it an insert fails and is retried while the
    #: writer's queue fills (ingest answers 503), a query fails. 0: the engine's default,
    #: 90% of the machine. A ClickHouse server is bounded by its own configuration
    engine_memory: int = 0
    #: the embedded engine's cache of part marks (``mark_cache_size``); 0: its default, 5 GiB
    engine_mark_cache: int = 0

    def engine_options(self) -> dict[str, int]:
        """The embedded engine's start-up settings that bound its memory (none set: {})."""
        options = {}
        if self.engine_memory:
            options["max_server_memory_usage"] = self.engine_memory
            options["merges_mutations_memory_usage_soft_limit"] = self.engine_memory // 2
        if self.engine_mark_cache:
            options["mark_cache_size"] = self.engine_mark_cache
        return options

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.database):
            msg = f"database {self.database!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"
            raise ValueError(msg)
        if self.layout not in ("single", "cluster") or self.copy not in ("server", "metric"):
            msg = f"layout {self.layout!r} / copy {self.copy!r}: not single|cluster, server|metric"
            raise ValueError(msg)
        if self.layout == "single" and self.copy != "server":
            msg = "a single node's store is written through minutes_1m only (copy='server')"
            raise ValueError(msg)
        if self.engine_memory < 0 or self.engine_mark_cache < 0:
            msg = f"engine_memory {self.engine_memory}, engine_mark_cache"
            msg += f" {self.engine_mark_cache}: sizes cannot be negative"
            raise ValueError(msg)
        if not 16 <= self.index_granularity <= 1 << 20:
            msg = f"index_granularity {self.index_granularity} is outside [16, 1048576]"
            raise ValueError(msg)
