"""The four dashboard questions, answered from minute partials.

- ``series(by="server", name=…)``: one server, each of its metrics, bucketed by ``step`` (Q1);
- ``series(by="metric", name=…)``: one metric, each server (Q2);
- ``summary(by="server", …)``: one server, min/max/avg/count of each metric over a range (Q3);
- ``summary(by="metric", …)``: one metric, the same for each server (Q4);
- ``fleet(metric, …)``: one metric merged over every server, per step (the fleet's band).

A range is half-open ``[start, end)`` in unix seconds. Series answers align it to the step:
``start`` is floored and ``end`` ceiled to a multiple of ``step``, and bucket ``b`` covers
``[b, b + step)``. Summaries floor both ends to the minute. Minutes outside the hot window read
from the storage tier when there is one. Re-stepping merges partials, so every answer is
exact: min/max are values that were sent, avg is ``sum / count`` of the raw points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from minutely.errors import BadParameter, NotFound
from minutely.hot import HotRing
from minutely.model import (
    I32,
    I64,
    MINUTE,
    Partials,
    summarize_axis0,
)
from minutely.pool import ENTRY_BYTES, BlockPool, clear
from minutely.registry import Registry
from minutely.store import Store

By = Literal["server", "metric"]

#: the most buckets one series answer may hold (2 days at 1 minute is 2,880)
MAX_BUCKETS = 20_000
#: the most cells (series × buckets) one series answer may allocate by default: the seed's
#: Q1, 2,000 metrics × 2,880 minutes, fits; 28 B of partials a cell (``Settings.max_query_cells``)
MAX_CELLS = 6_000_000
#: the largest step a question may ask for: a century
MAX_STEP = 100 * 366 * 86400


@dataclass(frozen=True, slots=True)
class SeriesAnswer:
    """Per-series buckets: ``parts`` has shape (len(labels), len(timestamps))."""

    by: By
    name: str
    start: int
    end: int
    step: int
    timestamps: I64
    labels: list[str]
    parts: Partials
    #: for a fleet answer: how many servers were merged
    servers: int = 0
    #: in a cluster: the partition had no ready owner, so this holds only what the store
    #: has (every minute up to its last checkpoint), not the newest minutes
    partial: bool = False


@dataclass(frozen=True, slots=True)
class SummaryAnswer:
    """One partial per series over ``[start, end)``; ``parts`` has shape (len(labels),)."""

    by: By
    name: str
    start: int
    end: int
    labels: list[str]
    parts: Partials
    #: as ``SeriesAnswer.partial``
    partial: bool = False


@dataclass(frozen=True, slots=True)
class _Selection:
    """The series one question reads: ring rows, the other dimension's ids and names."""

    own_id: int
    series: I32
    other_ids: I32
    labels: list[str]
    filtered: bool


class Query:
    """Answers questions over a registry, a hot ring and (optionally) the storage tier.

    Each minute is read from exactly one place: minutes the ring's window holds from the
    ring, older minutes from the store (which picks its coarsest exact tier). A bucket that
    straddles the seam merges the two partials.

    Series answers from the ring alone are made in ``pool``'s memory (by default a pool
    that keeps one largest answer's, ``max_cells`` entries), so a large answer reuses the
    pages an earlier one gave back instead of faulting fresh ones; the ring's read writes
    over what they held (``HotRing.merge_buckets(overwrite=True)``), so they are not zeroed
    first.
    """

    def __init__(
        self,
        registry: Registry,
        ring: HotRing,
        store: Store | None = None,
        max_cells: int = MAX_CELLS,
        pool: BlockPool | None = None,
    ) -> None:
        self.registry = registry
        self.ring = ring
        self.store = store
        self.max_cells = max_cells
        self.pool = BlockPool(max_cells * ENTRY_BYTES) if pool is None else pool

    def _select(self, by: By, name: str, only: list[str] | None) -> _Selection:
        """The series of ``name`` and their labels, filtered by ``only``."""
        reg = self.registry
        own, other = (reg.servers, reg.metrics) if by == "server" else (reg.metrics, reg.servers)
        ident = own.get(name)
        if ident is None:
            msg = f"unknown {by} {name!r}"
            raise NotFound(msg)
        series, other_ids = reg.by_server(ident) if by == "server" else reg.by_metric(ident)
        labels = [other.name(i) for i in other_ids.tolist()]
        if only:
            wanted = set(only)
            keep = np.array([label in wanted for label in labels], dtype=bool)
            if len(labels):
                series, other_ids = series[keep], other_ids[keep]
            labels = [label for label, k in zip(labels, keep.tolist(), strict=True) if k]
        return _Selection(ident, series, other_ids, labels, bool(only))

    def series_count(self, by: By, name: str) -> int:
        """How many series a question about ``name`` reads (0 if ``name`` is unknown)."""
        reg = self.registry
        ident = (reg.servers if by == "server" else reg.metrics).get(name)
        if ident is None:
            return 0
        series, _ = reg.by_server(ident) if by == "server" else reg.by_metric(ident)
        return len(series)

    def touches_store(self, start: int) -> bool:
        """Would a question starting at ``start`` (unix seconds) read the store?"""
        oldest = self.ring.oldest_minute()
        return self.store is not None and (oldest is None or start // MINUTE < oldest)

    def _seam(self, first: int, last: int) -> int:
        """Minutes before the returned one come from the store, the rest from the ring."""
        oldest = self.ring.oldest_minute()
        seam = last if oldest is None else oldest
        return max(first, min(last, seam))

    def series(
        self,
        by: By,
        name: str,
        start: int,
        end: int,
        step: int = 60,
        only: list[str] | None = None,
    ) -> SeriesAnswer:
        if step <= 0 or step % MINUTE:
            raise BadParameter(
                param="step", problem=f"{step} is not a positive multiple of 60 seconds"
            )
        start = (start // step) * step
        end = -(-end // step) * step
        if end <= start:
            raise BadParameter(param="end", problem="must be after start")
        n_buckets = (end - start) // step
        sel = self._select(by, name, only)
        series, labels = sel.series, sel.labels
        self._check_size(len(labels), start, end, step)
        step_m = step // MINUTE
        first, last = start // MINUTE, end // MINUTE
        seam = self._seam(first, last)
        unzeroed = False
        if self.store is not None and first < seam and len(labels):
            cells = self.store.read(
                by,
                sel.own_id,
                sel.other_ids if sel.filtered else None,
                first,
                seam - first,
                step_m,
            )
            out = cells.dense(sel.other_ids, n_buckets)
        elif step_m == 1:  # the ring's read writes every cell it is given: clear() the others
            out = self.pool.unzeroed((len(labels), n_buckets))
            unzeroed = True
        else:  # coarser steps merge into zeros
            out = self.pool.zeros((len(labels), n_buckets))
        window = self._window()
        if window is not None and len(labels):
            lo = max(first, window[0])
            hi = min(last, window[1])
            if lo < hi:
                lo = first + (lo - first) // step_m * step_m
                hi = first + -(-(hi - first) // step_m) * step_m
                b0, b1 = (lo - first) // step_m, (hi - first) // step_m
                # merged into the store's buckets: the bucket at the seam holds both
                window_out = out.take(np.s_[:, b0:b1])
                if unzeroed:
                    clear(out, np.s_[:, :b0])
                    clear(out, np.s_[:, b1:])
                self.ring.merge_buckets(series, lo, hi - lo, step_m, window_out, unzeroed)
                unzeroed = False
        if unzeroed:
            clear(out, np.s_[:, :])
        keep = np.flatnonzero(out.count.any(axis=1))
        if len(keep) < len(labels):  # leave out the series without data (a copy of the rest)
            labels = [labels[i] for i in keep.tolist()]
            out = Partials(out.min[keep], out.max[keep], out.sum[keep], out.count[keep])
        return SeriesAnswer(
            by, name, start, end, step, np.arange(start, end, step, dtype=np.int64), labels, out
        )

    def _check_size(self, n_series: int, start: int, end: int, step: int) -> None:
        """Refuse, before anything is allocated, an answer over ``MAX_BUCKETS`` per series or
        ``max_cells`` in all, naming the smallest step that would fit."""
        n_buckets = (end - start) // step
        cells = n_series * n_buckets
        if n_buckets <= MAX_BUCKETS and cells <= self.max_cells:
            return
        fits = min(MAX_BUCKETS, self.max_cells // max(1, n_series))
        if n_buckets > MAX_BUCKETS:
            problem = f"{n_buckets} buckets per series is over the limit of {MAX_BUCKETS}"
        else:
            problem = (
                f"{n_series} series × {n_buckets} buckets = {cells} cells is over the limit"
                f" of {self.max_cells} (max_query_cells)"
            )
        smallest = smallest_step(start, end, fits) if fits else None
        if smallest is None:
            problem += "; no step fits: ask for fewer series (metric= or server=)"
        else:
            problem += f"; step={smallest} is the smallest that fits (or use a shorter range)"
        limit = "max_buckets" if n_buckets > MAX_BUCKETS else "max_query_cells"
        raise BadParameter(param="step", problem=problem, limit=limit)

    def fleet(
        self, metric: str, start: int, end: int, step: int = 60, only: list[str] | None = None
    ) -> SeriesAnswer:
        """One metric merged over every server (or the ``only`` ones): one series, per step.

        Exact like every answer here: the per-server partials merge with min, max, +, +.
        ``labels`` holds the one label ``"fleet"``; how many servers reported is in
        ``servers``.
        """
        return fleet_of(self.series("metric", metric, start, end, step, only))

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None = None
    ) -> SummaryAnswer:
        start = (start // MINUTE) * MINUTE
        end = (end // MINUTE) * MINUTE
        if end <= start:
            raise BadParameter(param="end", problem="must be at least one minute after start")
        sel = self._select(by, name, only)
        series, labels = sel.series, sel.labels
        first, last = start // MINUTE, end // MINUTE
        parts = Partials.zeros((len(labels),))
        seam = self._seam(first, last)
        if self.store is not None and first < seam and len(labels):
            cells = self.store.summary(
                by, sel.own_id, sel.other_ids if sel.filtered else None, first, seam - first
            )
            parts = cells.dense(sel.other_ids)
        window = self._window()
        if window is not None and len(labels):
            lo = max(first, window[0])
            hi = min(last, window[1])
            if lo < hi:
                # merged into the store's partials: one bucket over the ring's minutes
                column = parts.take(np.s_[:, np.newaxis])
                self.ring.merge_buckets(series, lo, hi - lo, hi - lo, column)
        keep = np.flatnonzero(parts.count > 0)
        return SummaryAnswer(
            by,
            name,
            start,
            end,
            [labels[i] for i in keep.tolist()],
            Partials(parts.min[keep], parts.max[keep], parts.sum[keep], parts.count[keep]),
        )

    def _window(self) -> tuple[int, int] | None:
        """The minutes the ring holds, as ``[oldest, newest + 1)``."""
        oldest = self.ring.oldest_minute()
        head = self.ring.head
        return None if oldest is None or head is None else (oldest, head + 1)


def smallest_step(start: int, end: int, buckets: int) -> int | None:
    """The smallest multiple of a minute whose step-aligned ``[start, end)`` has at most
    ``buckets`` buckets (None when even a century's step has more). Alignment adds at most
    one bucket, so the answer is within a few minutes of ``span / buckets`` for any bucket
    count a limit allows; past 10,000 tries, a step sure to fit is given instead."""
    span = end - start
    step = max(MINUTE, -(-span // buckets // MINUTE) * MINUTE)
    for _ in range(10_000):
        if -(-end // step) - start // step <= buckets:
            return step if step <= MAX_STEP else None
        step += MINUTE
    if buckets < 2:
        return None
    sure = -(-span // (buckets - 1) // MINUTE) * MINUTE  # span / step + 1 buckets at most
    return sure if sure <= MAX_STEP else None


def fleet_of(per_server: SeriesAnswer) -> SeriesAnswer:
    """One metric's answer per server merged into the fleet's one series (``Query.fleet``)."""
    merged = summarize_axis0(per_server.parts)
    return SeriesAnswer(
        "metric",
        per_server.name,
        per_server.start,
        per_server.end,
        per_server.step,
        per_server.timestamps,
        ["fleet"],
        merged.take(np.newaxis),
        servers=len(per_server.labels),
        partial=per_server.partial,
    )
