"""The three rollup tiers (1 minute, 1 hour, 1 day): their cells, tables and partitions.

A tier's *cell* is its unit of time: minute ``m`` of the 1-minute tier, the hour
``[60h, 60h + 60)`` minutes of the 1-hour tier, the UTC day ``[1440d, 1440d + 1440)`` of the
1-day tier. Every row of a tier is the partial aggregate of one series over one cell, stamped
with the cell's start. Partitions are whole days (1 minute) or whole calendar months (1 hour,
1 day); a partition id is the ``toYYYYMMDD``/``toYYYYMM`` of its rows, so its time span can be
read off the id without asking the engine.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tier:
    """One rollup tier."""

    name: str
    #: minutes in one cell
    minutes: int
    #: the table holding it
    table: str
    #: ClickHouse expression: the start of the cell holding the DateTime ``{ts}``
    cell_start: str
    #: ClickHouse partition key
    partition_by: str

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


TIER_1M = Tier("1m", 1, "minutes_1m", "{ts}", "toYYYYMMDD(ts)")
TIER_1H = Tier("1h", 60, "minutes_1h", "toStartOfHour({ts})", "toYYYYMM(ts)")
TIER_1D = Tier("1d", 1440, "minutes_1d", "toStartOfDay({ts})", "toYYYYMM(ts)")

#: coarse to fine
TIERS: tuple[Tier, ...] = (TIER_1D, TIER_1H, TIER_1M)
