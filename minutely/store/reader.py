"""Read SQL and its answers: series buckets, summaries and raw minutes, as numpy columns.

Every read merges partial aggregates with ``min(min), max(max), sum(sum), sum(count)`` and
``GROUP BY``: a table may hold several rows for one cell until background merges collapse
them (a late correction, a re-sent minute, one rollup row per insert block), so a single row
is never trusted. Values reach the engine as bound parameters (``{name:Type}``); the only
text spliced into SQL is table and column names chosen from constants here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from minutely.buckets import place_cells
from minutely.model import I64, U32, Partials
from minutely.store.plan import Segment
from minutely.store.tiers import TIER_1D, TIER_1M

By = Literal["server", "metric"]

#: a query and its bound parameters
Sql = tuple[str, dict[str, Any]]


class CellBlock(NamedTuple):
    """One engine block of a series read: cell ``i`` is ``(other_ids[i], buckets[i], parts[i])``.

    The columns are views of the engine's answer, not copies; ``buckets`` is unsigned, so a
    bucket before the range would be a huge number and is dropped like one after it.
    """

    other_ids: U32
    buckets: U32
    parts: Partials


class SeriesCells:
    """Sparse buckets of one read, block by block as the engine answered: only non-empty
    cells are listed, each once, in no particular order (sorting a long answer costs more
    than reading it; ``dense`` places the cells).

    The blocks are kept apart rather than joined: ``dense`` scatters each block while it is
    in cache, and a 1.44 M-cell answer is not first copied into 52 MB of joined columns
    (figures: docs/performance.md, Measured choices).
    ``other_ids``, ``buckets`` and ``parts`` join them for callers that want flat columns.
    """

    __slots__ = ("blocks",)

    def __init__(self, blocks: list[CellBlock]) -> None:
        self.blocks = [b for b in blocks if b.other_ids.shape[0]]

    @property
    def other_ids(self) -> U32:
        return _join([b.other_ids for b in self.blocks], np.uint32)

    @property
    def buckets(self) -> U32:
        return _join([b.buckets for b in self.blocks], np.uint32)

    @property
    def parts(self) -> Partials:
        if not self.blocks:
            return Partials.zeros(0)
        fields = zip(*(b.parts.fields() for b in self.blocks), strict=True)
        return Partials(*(_join(list(f), t) for f, t in zip(fields, _FIELD_TYPES, strict=True)))

    def dense(self, others: npt.NDArray[Any], n_buckets: int, compiled: bool = True) -> Partials:
        """The cells as a ``(len(others), n_buckets)`` block, row ``r`` for id ``others[r]``.

        Cells of ids not in ``others`` or buckets outside ``[0, n_buckets)`` are left out;
        empty entries have ``count == 0``. Each block is placed by one compiled loop
        (``buckets.place_cells``) through an id → row table; ``compiled=False``, or ids too
        large for a table, take numpy's passes instead (a gather, an add, a scatter per field;
        figures: docs/performance.md, Measured choices).
        """
        out = Partials.zeros((len(others), n_buckets))
        if not self.blocks or len(others) == 0:
            return out
        others = np.asarray(others)
        targets = [dst.reshape(-1) for dst in out.fields()]
        rows = _row_table(others, 1) if compiled else None
        if rows is not None:
            for block in self.blocks:
                place_cells(
                    rows, block.other_ids, block.buckets, *block.parts.fields(), *targets, n_buckets
                )
            return out
        first_of = _first_positions(others, n_buckets)
        for block in self.blocks:
            flat = first_of(block.other_ids)
            sources = list(block.parts.fields())
            if int(flat.min()) >= 0 and int(block.buckets.max()) < n_buckets:
                flat += block.buckets  # the usual case: every cell lands, nothing to mask
            else:
                keep = (flat >= 0) & (block.buckets < n_buckets)
                flat = flat[keep] + block.buckets[keep]
                sources = [src[keep] for src in sources]
            for dst, src in zip(targets, sources, strict=True):
                dst[flat] = src
        return out


_FIELD_TYPES: tuple[type[np.generic], ...] = (np.float64, np.float64, np.float64, np.uint32)


def _join(parts: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    if not parts:
        return np.zeros(0, dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


class SummaryCells(NamedTuple):
    """One partial per other id with data, ordered by id."""

    other_ids: U32
    parts: Partials

    def dense(self, others: npt.NDArray[Any]) -> Partials:
        """The partials aligned to ``others``; ids without data have ``count == 0``."""
        out = Partials.zeros(len(others))
        if len(others) == 0:
            return out
        rows = _first_positions(np.asarray(others), 1)(self.other_ids)
        keep = rows >= 0
        for dst, src in zip(out.fields(), self.parts.fields(), strict=True):
            dst[rows[keep]] = src[keep]
        return out


class MinuteRows(NamedTuple):
    """Minute partials of many series: row ``i`` is series ``(server_ids[i], metric_ids[i])``
    at minute ``minutes[i]``; one row per cell, in no particular order."""

    server_ids: U32
    metric_ids: U32
    minutes: I64
    parts: Partials


#: ids below this are looked up in a table (``_row_table``), larger ones by binary search
_TABLE_IDS = 1 << 24


def _row_table(others: npt.NDArray[Any], width: int) -> npt.NDArray[np.int64] | None:
    """A table giving ``row * width`` at index ``others[row]`` and -1 at every other id below
    ``max(others) + 1``; None when the ids are too large for a table."""
    top = int(others.max()) + 1
    if top > _TABLE_IDS:
        return None
    table = np.full(top, -1, dtype=np.int64)
    table[others] = np.arange(len(others), dtype=np.int64) * width
    return table


def _first_positions(
    others: npt.NDArray[Any], width: int
) -> Callable[[U32], npt.NDArray[np.int64]]:
    """A function giving, for each id, ``row * width`` where ``others[row]`` is that id (any
    order), or -1 for an id not in ``others`` (which must not be empty); built once, then
    applied to each block of an answer."""
    table = _row_table(others, width)
    if table is not None:  # ids are dense: a lookup table beats a binary search per cell
        top = table.shape[0]

        def by_table(ids: U32) -> npt.NDArray[np.int64]:
            if len(ids) and int(ids.max()) >= top:
                return np.where(ids < top, table[np.minimum(ids, top - 1)], -1)
            return table[ids]

        return by_table
    order = np.argsort(others, kind="stable")
    ordered = others[order]

    def by_search(ids: U32) -> npt.NDArray[np.int64]:
        pos = np.minimum(np.searchsorted(ordered, ids), len(others) - 1)
        return np.where(ordered[pos] == ids, order[pos].astype(np.int64) * width, -1)

    return by_search


def _columns(by: By) -> tuple[str, str]:
    """(the key column, the other column) of a read by server or by metric."""
    return ("server_id", "metric_id") if by == "server" else ("metric_id", "server_id")


def _union(
    db: str,
    by: By,
    segments: list[Segment],
    with_others: bool,
    params: dict[str, Any],
    final: bool = False,
    index: int = 0,
) -> str:
    """``UNION ALL`` of one ``SELECT`` per segment, each from its tier's table for ``by``;
    ``final`` merges each cell's rows as they are read. Parameters are named from ``index``
    on, so two unions can share one query."""
    key, other = _columns(by)
    selects = []
    for i, seg in enumerate(segments, index):
        tier = seg.tier
        params[f"lo{i}"] = seg.first * 60
        params[f"hi{i}"] = seg.last * 60
        where = (
            f"{key} = {{key:UInt32}}"
            f" AND ts >= toDateTime({{lo{i}:UInt32}}, 'UTC')"
            f" AND ts < toDateTime({{hi{i}:UInt32}}, 'UTC')"
        )
        if tier.block:
            # the same bounds on the block, which is in the sort key: the engine does not
            # derive it from the bounds on ts, and without it reads every block of the key
            params[f"end{i}"] = (seg.last - 1) * 60
            where += (
                f" AND {tier.block}(ts) >= {tier.block}(toDateTime({{lo{i}:UInt32}}, 'UTC'))"
                f" AND {tier.block}(ts) <= {tier.block}(toDateTime({{end{i}:UInt32}}, 'UTC'))"
            )
        if with_others:
            where += f" AND {other} IN {{others:Array(UInt32)}}"
        table = tier.table if by == "server" else tier.by_metric
        selects.append(
            f"SELECT {other} AS other, ts, min, max, sum, count"
            f" FROM {db}.{table}{' FINAL' if final else ''} WHERE {where}"
        )
    return "\nUNION ALL\n".join(selects)


def _params(key_id: int, other_ids: npt.NDArray[Any] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"key": int(key_id)}
    if other_ids is not None:
        params["others"] = np.asarray(other_ids, dtype=np.uint32).tolist()
    return params


def whole_buckets(segment: Segment, first: int, step: int) -> bool:
    """Is each cell of ``segment`` exactly one bucket of ``step`` minutes from ``first``?"""
    return (
        segment.tier.minutes == step
        and (segment.first - first) % step == 0
        and (segment.last - first) % step == 0
    )


def series_query(
    db: str,
    by: By,
    key_id: int,
    other_ids: npt.NDArray[Any] | None,
    segments: list[Segment],
    first: int,
    step: int,
) -> Sql:
    """Buckets of ``step`` minutes from ``first``, per other id, over ``segments``.

    Segments whose cells are whole buckets (the hour tier read at step 1 h) are read with
    ``FINAL``, which merges each cell's rows in the sorted read and costs far less than
    hashing every cell of a long answer; the rest (ragged ends from finer tiers, or every
    segment when no tier's cell is the step) are grouped into buckets. No bucket gets cells
    from both, as a segment of whole buckets holds every minute of its buckets, so the two
    are one query's ``UNION ALL``: the engine reads them side by side, and the ragged ends
    cost no query of their own.
    """
    params = _params(key_id, other_ids)
    params["first"] = int(first)
    params["step"] = int(step)
    bucket = "toUInt32(intDiv(intDiv(toUInt32(ts), 60) - {first:Int64}, {step:Int64}))"
    whole = [g for g in segments if whole_buckets(g, first, step)]
    rest = [g for g in segments if not whole_buckets(g, first, step)]
    selects = []
    if whole:
        union = _union(db, by, whole, other_ids is not None, params, final=True)
        selects.append(f"""
SELECT other, {bucket} AS bucket, min AS mn, max AS mx, sum AS sm, toUInt32(count) AS ct
FROM ({union})
""")
    if rest:
        union = _union(db, by, rest, other_ids is not None, params, index=len(whole))
        selects.append(f"""
SELECT other, {bucket} AS bucket,
       min(min) AS mn, max(max) AS mx, sum(sum) AS sm, toUInt32(sum(count)) AS ct
FROM ({union})
GROUP BY other, bucket
""")
    return "UNION ALL".join(selects), params


def summary_query(
    db: str, by: By, key_id: int, other_ids: npt.NDArray[Any] | None, segments: list[Segment]
) -> Sql:
    """One partial per other id over ``segments``."""
    params = _params(key_id, other_ids)
    union = _union(db, by, segments, other_ids is not None, params)
    sql = f"""
SELECT other, min(min) AS mn, max(max) AS mx, sum(sum) AS sm, toUInt32(sum(count)) AS ct
FROM ({union})
GROUP BY other
ORDER BY other
"""
    return sql, params


def minutes_query(
    db: str,
    first: int,
    last: int,
    table: str = TIER_1M.table,
    by: By = "server",
    ids: npt.NDArray[Any] | None = None,
) -> Sql:
    """Every series' minute partials over minutes ``[first, last)`` from a 1-minute table
    (``ids``: only these servers, or metrics with ``by="metric"``), one row per cell:
    ``FINAL`` merges a cell's rows as the sorted parts are read (a cell never spans two
    partitions), cheaper than hashing every cell in a ``GROUP BY`` (figures:
    docs/performance.md, Measured choices)."""
    params: dict[str, Any] = {"lo": int(first) * 60, "hi": int(last) * 60}
    only = ""
    if ids is not None:
        only = f" AND {_columns(by)[0]} IN {{ids:Array(UInt32)}}"
        params["ids"] = np.asarray(ids, dtype=np.uint32).tolist()
    sql = f"""
SELECT server_id, metric_id, intDiv(toUInt32(ts), 60) AS minute,
       min AS mn, max AS mx, sum AS sm, toUInt32(count) AS ct
FROM {db}.{table} FINAL
WHERE ts >= toDateTime({{lo:UInt32}}, 'UTC') AND ts < toDateTime({{hi:UInt32}}, 'UTC'){only}
"""
    return sql, params


def first_minute_query(db: str, table: str, by: By, ids: npt.NDArray[Any], first: int) -> Sql:
    """The oldest minute at or after ``first`` that these servers (or metrics) have in a
    1-minute table (``0`` when none)."""
    sql = f"""
SELECT toUInt64(intDiv(toUInt32(min(ts)), 60)) AS first, count() AS n FROM {db}.{table}
WHERE {_columns(by)[0]} IN {{ids:Array(UInt32)}} AND ts >= toDateTime({{lo:UInt32}}, 'UTC')
"""
    return sql, {"ids": np.asarray(ids, dtype=np.uint32).tolist(), "lo": int(first) * 60}


def pairs_query(db: str, by: By, ids: npt.NDArray[Any]) -> Sql:
    """The distinct (server id, metric id) pairs of these servers or metrics, from the day
    tier of their copy."""
    table = TIER_1D.table if by == "server" else TIER_1D.by_metric
    sql = f"""
SELECT DISTINCT server_id, metric_id FROM {db}.{table}
WHERE {_columns(by)[0]} IN {{ids:Array(UInt32)}}
"""
    return sql, {"ids": np.asarray(ids, dtype=np.uint32).tolist()}


def _column(table: Any, name: str, dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.asarray(table.column(name).to_numpy(), dtype=dtype)


def _partials(table: Any) -> Partials:
    return Partials(
        _column(table, "mn", np.float64),
        _column(table, "mx", np.float64),
        _column(table, "sm", np.float64),
        _column(table, "ct", np.uint32),
    )


def series_cells(table: Any) -> SeriesCells:
    """A ``series_query`` answer (an Arrow table) as numpy views of its blocks."""
    return SeriesCells(
        [
            CellBlock(
                _column(batch, "other", np.uint32),
                _column(batch, "bucket", np.uint32),
                _partials(batch),
            )
            for batch in table.to_batches()
        ]
    )


def summary_cells(table: Any) -> SummaryCells:
    """A ``summary_query`` answer as numpy columns."""
    return SummaryCells(_column(table, "other", np.uint32), _partials(table))


def minute_rows(table: Any) -> MinuteRows:
    """A ``minutes_query`` answer as numpy columns."""
    return MinuteRows(
        _column(table, "server_id", np.uint32),
        _column(table, "metric_id", np.uint32),
        _column(table, "minute", np.int64),
        _partials(table),
    )


def empty_series() -> SeriesCells:
    return SeriesCells([])


def empty_summary() -> SummaryCells:
    return SummaryCells(np.zeros(0, np.uint32), Partials.zeros(0))


def empty_minutes() -> MinuteRows:
    return MinuteRows(
        np.zeros(0, np.uint32), np.zeros(0, np.uint32), np.zeros(0, np.int64), Partials.zeros(0)
    )
