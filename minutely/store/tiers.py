"""The three rollup tiers (1 minute, 1 hour, 1 day): their cells, tables, order and partitions.

A tier's *cell* is its unit of time: minute ``m`` of the 1-minute tier, the hour
``[60h, 60h + 60)`` minutes of the 1-hour tier, the UTC day ``[1440d, 1440d + 1440)`` of the
1-day tier. Every row of a tier is the partial aggregate of one series over one cell, stamped
with the cell's start.

Each tier is two tables holding the same rows in two orders, one per access path: by server
``(server_id, block, metric_id, ts)`` and by metric ``(metric_id, block, server_id, ts)``.
The *block* is the next coarser cell (an hour of minutes, a day of hours): inside a block each
series' cells lie together, which keeps the values compressible, while a read of a few
minutes or hours at the ragged end of a range touches one block per series, not every row of
the day. Both orders share the partitioning: whole days (1 minute) or whole calendar months
(1 hour, 1 day); a partition id is the ``toYYYYMMDD``/``toYYYYMM`` of its rows, so its span
is read off the id.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

#: codecs of the 1-minute tier: ~95% of the bytes, so compress hard (``FPC`` predicts each
#: float from its predecessors; it compresses the simulated fleet's values better than
#: ``Gorilla``: figures in docs/performance.md, Measured choices)
_DENSE = {"id": "T64, ZSTD(1)", "ts": "DoubleDelta, ZSTD(1)", "value": "FPC, ZSTD(1)"}
#: codecs of the coarse tiers: a few percent of the bytes, read in bulk by year-long and
#: month-long queries, so decode fast: LZ4 alone (several GB/s). ``T64`` on the ids and
#: ``DoubleDelta`` on ts cost more to decode than they save here, since sorted ids and hour
#: steps already compress well under LZ4 (figures: docs/performance.md, Measured choices)
_FAST = {"id": "LZ4", "ts": "LZ4", "value": "LZ4"}


@dataclass(frozen=True, slots=True)
class Tier:
    """One rollup tier."""

    name: str
    #: minutes in one cell
    minutes: int
    #: the table ordered by server; the one ordered by metric is ``by_metric``
    table: str
    #: ClickHouse expression for the start of the cell holding the DateTime ``{ts}``
    cell_start: str
    #: ClickHouse partition key
    partition_by: str
    #: ClickHouse function giving the block (next coarser cell) of a DateTime, or "" for none
    block: str
    #: codec of each kind of column: "id", "ts", "value"
    codecs: dict[str, str]

    @property
    def by_metric(self) -> str:
        return f"{self.table}_by_metric"

    def tables(self) -> tuple[str, str]:
        """(the server-ordered table, the metric-ordered table)."""
        return self.table, self.by_metric

    def partition_span(self, partition_id: str) -> tuple[int, int]:
        """The unix seconds ``[start, end)`` a partition id covers."""
        if not partition_id.isdigit():
            msg = f"partition id {partition_id!r} of {self.table} is not numeric"
            raise ValueError(msg)
        if self.partition_by.startswith("toYYYYMMDD"):
            y, m, d = int(partition_id[:4]), int(partition_id[4:6]), int(partition_id[6:])
            start = calendar.timegm((y, m, d, 0, 0, 0))
            return start, start + 86_400
        y, m = int(partition_id[:4]), int(partition_id[4:])
        start = calendar.timegm((y, m, 1, 0, 0, 0))
        end = calendar.timegm((y + m // 12, m % 12 + 1, 1, 0, 0, 0))
        return start, end


TIER_1M = Tier("1m", 1, "minutes_1m", "{ts}", "toYYYYMMDD(ts)", "toStartOfHour", _DENSE)
TIER_1H = Tier("1h", 60, "minutes_1h", "toStartOfHour({ts})", "toYYYYMM(ts)", "toStartOfDay", _FAST)
# a month partition is already the 1-day tier's block
TIER_1D = Tier("1d", 1440, "minutes_1d", "toStartOfDay({ts})", "toYYYYMM(ts)", "", _FAST)

#: coarse to fine
TIERS: tuple[Tier, ...] = (TIER_1D, TIER_1H, TIER_1M)
