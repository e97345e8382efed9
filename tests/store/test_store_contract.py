"""The store contract: what every ``Store`` must do, run against each implementation.

Parametrised over ``STORE_FACTORIES`` (conftest.py) through ``make_store``. Ground truth is a
dense numpy block of minute partials ``(server, metric, minute)`` merged with
``minutely.model``; the store must give back exactly that, whichever tiers it reads.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from minutely.model import Partials, merge, restep, summarize
from minutely.registry import Registry
from minutely.store import TIER_1D, TIER_1H, TIER_1M, Retention, SeriesCells, Store
from minutely.store.store import ALLOCATOR_MEMORY, ENGINE_MEMORY
from minutely.store.tiers import Tier

MakeStore = Callable[..., Store]

DAY = 1440
#: a UTC midnight, in minutes (2022-01-08)
DAY0 = 19_000 * DAY


@dataclass
class Truth:
    """Dense minute partials of ``servers × metrics × minutes`` from ``first``."""

    first: int
    parts: Partials

    @staticmethod
    def empty(servers: int, metrics: int, first: int, minutes: int) -> Truth:
        shape = (servers, metrics, minutes)
        zeros = Partials(
            np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.uint32)
        )
        return Truth(first, zeros)

    def add(self, s: np.ndarray, m: np.ndarray, t: np.ndarray, p: Partials) -> None:
        idx = (s, m, t - self.first)
        old = Partials(*(f[idx] for f in self.parts.fields()))
        new = merge(old, p)
        for dst, src in zip(self.parts.fields(), new.fields(), strict=True):
            dst[idx] = src

    def block(self, by: str, key: int, first: int, n: int) -> Partials:
        """(others, n) minutes of one server (by server) or one metric (by metric)."""
        lo = first - self.first
        sel = (key, slice(None), slice(lo, lo + n))
        if by == "metric":
            sel = (slice(None), key, slice(lo, lo + n))
        return Partials(*(f[sel].copy() for f in self.parts.fields()))


def random_cells(
    rng: np.random.Generator, servers: int, metrics: int, first: int, minutes: int, p: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Partials]:
    """Random non-empty minute partials over a ``servers × metrics × minutes`` grid."""
    s, m, t = np.nonzero(rng.random((servers, metrics, minutes)) < p)
    n = len(s)
    count = rng.integers(1, 61, n).astype(np.uint32)
    lo = np.round(rng.normal(50, 20, n), 2)
    hi = lo + np.round(rng.random(n) * 10, 2)
    total = count * (lo + hi) / 2
    return s, m, t + first, Partials(lo, hi, total, count)


def assert_same(got: Partials, want: Partials) -> None:
    np.testing.assert_array_equal(got.count, want.count)
    full = want.count > 0
    np.testing.assert_array_equal(got.min[full], want.min[full])
    np.testing.assert_array_equal(got.max[full], want.max[full])
    np.testing.assert_allclose(got.sum[full], want.sum[full], rtol=1e-12)


def dense(cells: SeriesCells, others: int, buckets: int) -> Partials:
    return cells.dense(np.arange(others), buckets)


# -- write and read ----------------------------------------------------------------------


def test_write_then_read_by_server_and_by_metric(store: Store) -> None:
    rng = np.random.default_rng(1)
    truth = Truth.empty(3, 5, DAY0, 120)
    s, m, t, p = random_cells(rng, 3, 5, DAY0, 120, 0.5)
    assert store.write_minutes(s, m, t, p) == len(s)
    truth.add(s, m, t, p)
    for key in range(3):
        got = store.read("server", key, None, DAY0, 120, 1)
        assert_same(dense(got, 5, 120), truth.block("server", key, DAY0, 120))
    for key in range(5):
        got = store.read("metric", key, None, DAY0, 120, 1)
        assert_same(dense(got, 3, 120), truth.block("metric", key, DAY0, 120))


def test_an_answer_outlives_later_reads_and_writes(store: Store) -> None:
    # the embedded engine's answer is read in place: its columns must keep that memory alive
    rng = np.random.default_rng(2)
    truth = Truth.empty(4, 6, DAY0, 90)
    s, m, t, p = random_cells(rng, 4, 6, DAY0, 90, 0.7)
    store.write_minutes(s, m, t, p)
    truth.add(s, m, t, p)
    kept = [store.read("server", key, None, DAY0, 90, 1) for key in range(4)]
    one = Partials(np.array([1.0]), np.array([2.0]), np.array([3.0]), np.array([2], np.uint32))
    for _ in range(5):
        for key in range(4):
            store.read("server", key, None, DAY0, 90, 1)
            store.read("metric", key, None, DAY0, 90, 3)
        store.write_minutes([3], [5], [DAY0 + 200], one)
        gc.collect()
    for key, cells in enumerate(kept):
        assert_same(dense(cells, 6, 90), truth.block("server", key, DAY0, 90))


def test_an_answer_of_many_engine_blocks_lands_in_its_cells(store: Store) -> None:
    # 160,000 cells: more than one engine block (65,536 rows), each placed on its own;
    # the dense rows given in another order than the ids, and one id left out
    rng = np.random.default_rng(3)
    metrics, minutes = 200, 800
    truth = Truth.empty(1, metrics, DAY0, minutes)
    s, m, t, p = random_cells(rng, 1, metrics, DAY0, minutes, 1.0)
    store.write_minutes(s, m, t, p)
    truth.add(s, m, t, p)
    got = store.read("server", 0, None, DAY0, minutes, 1)
    assert len(got.blocks) > 1 and got.other_ids.size == metrics * minutes
    others = np.arange(metrics)[::-1][1:]  # 199 … 1: metric 0 is left out
    want = truth.block("server", 0, DAY0, minutes)
    assert_same(got.dense(others, minutes), Partials(*(f[others] for f in want.fields())))
    # buckets past the requested width are left out, not wrapped
    short = got.dense(others, minutes // 2)
    assert_same(short, Partials(*(f[others, : minutes // 2] for f in want.fields())))


def test_read_lists_only_cells_with_data(store: Store) -> None:
    one = Partials(np.array([1.0]), np.array([2.0]), np.array([3.0]), np.array([2], np.uint32))
    store.write_minutes([7], [9], [DAY0 + 3], one)
    store.write_minutes([7], [4], [DAY0 + 1], one)
    for step in (1, 2):  # a cell per bucket (FINAL), and buckets of cells (GROUP BY)
        got = store.read("server", 7, None, DAY0, 10, step)
        cells = sorted(zip(got.other_ids.tolist(), got.buckets.tolist(), strict=True))
        assert cells == [(4, 1 // step), (9, 3 // step)]
    assert store.read("server", 8, None, DAY0, 10, 1).other_ids.size == 0


def test_other_ids_restrict_the_read(store: Store) -> None:
    rng = np.random.default_rng(2)
    s, m, t, p = random_cells(rng, 2, 6, DAY0, 30, 0.8)
    store.write_minutes(s, m, t, p)
    got = store.read("server", 1, np.array([0, 4, 5]), DAY0, 30, 30)
    assert set(got.other_ids.tolist()) <= {0, 4, 5}
    assert (
        store.read("server", 1, np.array([], dtype=np.uint32), DAY0, 30, 30).parts.count.size == 0
    )
    summary = store.summary("metric", 2, [1], DAY0, 30)
    assert summary.other_ids.tolist() == [1]


def test_scalar_minute_broadcasts_and_empty_entries_are_skipped(store: Store) -> None:
    count = np.array([3, 0, 5], dtype=np.uint32)
    parts = Partials(
        np.array([1.0, np.inf, 2.0]), np.array([4.0, -np.inf, 6.0]), np.array([6.0, 0, 20.0]), count
    )
    assert store.write_minutes(np.array([0, 1, 2]), 0, DAY0 + 5, parts) == 2
    got = store.read("metric", 0, None, DAY0, 10, 10)
    assert got.other_ids.tolist() == [0, 2]
    assert got.parts.count.tolist() == [3, 5]


def test_minutes_outside_datetime_are_refused(store: Store) -> None:
    one = Partials(np.ones(1), np.ones(1), np.ones(1), np.ones(1, np.uint32))
    with pytest.raises(ValueError, match="minutes must lie"):
        store.write_minutes([0], [0], [-1], one)


# -- merging -----------------------------------------------------------------------------


def test_writing_the_same_minute_twice_merges(store: Store) -> None:
    a = Partials(
        np.array([5.0, 1.0]),
        np.array([9.0, 3.0]),
        np.array([20.0, 4.0]),
        np.array([3, 2], np.uint32),
    )
    b = Partials(
        np.array([2.0, 7.0]),
        np.array([6.0, 8.0]),
        np.array([8.0, 15.0]),
        np.array([2, 2], np.uint32),
    )
    s, m, t = np.array([0, 0]), np.array([0, 1]), np.array([DAY0 + 61, DAY0 + 61])
    store.write_minutes(s, m, t, a)
    store.write_minutes(s, m, t, b)
    want = merge(a, b)
    for step in (1, 60, DAY):  # the minute, its hour and its day: every tier merges
        got = store.read("server", 0, None, DAY0, DAY, step)
        assert_same(got.parts, want)
    assert_same(store.summary("server", 0, None, DAY0, DAY).parts, want)
    store.optimize()  # after the background merge too, in both sort orders
    assert_same(store.read("server", 0, None, DAY0, DAY, 1).parts, want)
    assert_same(
        store.read("metric", 1, None, DAY0, DAY, 1).parts, Partials(*(f[1:] for f in want.fields()))
    )
    assert store.disk_usage()["1m"].rows == 2


def test_equal_inserts_both_count_and_a_repeated_token_counts_once(make_store: MakeStore) -> None:
    """Two inserts of the same rows are two corrections; an insert repeated with its token
    (a checkpoint's insert replayed after a crash) adds nothing, in every tier and order."""
    store = make_store()
    one = Partials(np.array([1.5]), np.array([1.5]), np.array([1.5]), np.array([1], np.uint32))
    two = Partials(*(np.repeat(f, 2) for f in one.fields()))
    store.write_minutes([3], [4], [DAY0 + 125], one)
    store.write_minutes([3], [4], [DAY0 + 125], one)  # equal rows, no token: both add
    for k in range(4):
        store.write_minutes([3], [4], [DAY0 + 125], one, token="ckpt-7")  # adds once
        # two days, so two parts; each is recognised; two tokens, so it adds twice
        store.write_minutes([3, 3], [4, 5], [DAY0 + 125, DAY0 + 2 * DAY], two, token=f"c{k % 2}")
    for by, key in (("server", 3), ("metric", 4)):
        for step in (1, 60, DAY):
            cells = store.read(by, key, None, DAY0, DAY, step)
            assert int(cells.parts.count.sum()) == 2 + 1 + 2, (by, step)
    assert int(store.summary("metric", 5, None, DAY0, 3 * DAY).parts.count.sum()) == 2


def test_a_year_of_backfill_in_one_write_lands_whole(make_store: MakeStore) -> None:
    """One write spanning 365 day partitions (the engine refuses over 100 in one insert
    block) is cut into inserts it takes; every tier answers it exactly, and the write
    repeated with its token adds nothing."""
    store = make_store()
    minutes = np.arange(DAY0, DAY0 + 365 * DAY, 10, dtype=np.int64)  # one point per 10 min
    n = minutes.shape[0]
    values = np.round(np.sin(np.arange(n) / 50.0) * 100, 3)
    ones = np.ones(n, np.uint32)
    parts = Partials(values, values, values.copy(), ones)
    for _ in range(2):
        assert (
            store.write_minutes(
                np.zeros(n, np.uint32),
                np.ones(n, np.uint32) * 2,
                minutes,
                parts,
                token="backfill-1",
            )
            == n
        )
    got = store.summary("server", 0, None, DAY0, 365 * DAY).parts
    assert int(got.count.sum()) == n
    assert float(got.min[0]) == float(values.min())
    assert float(got.max[0]) == float(values.max())
    np.testing.assert_allclose(float(got.sum[0]), float(values.sum()), rtol=1e-12)
    for step in (1, 60, DAY):
        cells = store.read("metric", 2, None, DAY0, 365 * DAY, step)
        assert int(cells.parts.count.sum()) == n, step


# -- tiers -------------------------------------------------------------------------------


def test_tiers_answer_exactly_like_minutes_across_day_boundaries(store: Store) -> None:
    """Random data over three days: every tier choice equals numpy ground truth and the
    1-minute-only answer, for series and summaries, aligned and ragged ranges."""
    rng = np.random.default_rng(3)
    servers, metrics, first, minutes = 2, 3, DAY0 - 300, 3 * DAY + 600
    truth = Truth.empty(servers, metrics, first, minutes)
    for _ in range(2):  # two overlapping writes: cells merge
        s, m, t, p = random_cells(rng, servers, metrics, first, minutes, 0.25)
        store.write_minutes(s, m, t, p)
        truth.add(s, m, t, p)
    ranges = [
        (DAY0, 2 * DAY, DAY),  # whole days from 1d
        (DAY0 - 120, 2 * DAY + 180, 60),  # hours from 1h, day in the middle
        (DAY0 - 240, 3 * DAY, 5),  # five-minute buckets: 1m only
        (DAY0 - 60, 2 * DAY, 2 * 60),  # two-hour buckets over a day boundary
        (DAY0 + 7, DAY + 100, 60),  # misaligned first: not hours
        # whole buckets from one tier and a ragged end from finer ones, in two queries
        (DAY0 - 120, 2 * DAY + 150, 60),  # hours, then 30 minutes
        (DAY0, DAY + 90, DAY),  # a day, then an hour and 30 minutes
    ]
    used: set[str] = set()
    for by, keys, others in (("server", servers, metrics), ("metric", metrics, servers)):
        for lo, n, step in ranges:
            used |= {seg.tier.name for seg in store.segments(lo, n, step)}
            n_buckets = -(-n // step)
            for key in range(keys):
                block = truth.block(by, key, lo, n)
                pad = n_buckets * step - n
                padded = Partials(*(np.pad(f, ((0, 0), (0, pad))) for f in block.fields()))
                want = restep(padded, step)
                got = dense(store.read(by, key, None, lo, n, step), others, n_buckets)
                assert_same(got, want)
                minutes_only = dense(store.read(by, key, None, lo, n, 1), others, n)
                padded = Partials(*(np.pad(f, ((0, 0), (0, pad))) for f in minutes_only.fields()))
                assert_same(restep(padded, step), want)
        for lo, n in ((DAY0 - 7, 2 * DAY + 13), (DAY0 + 30, 90), (DAY0, DAY)):
            used |= {seg.tier.name for seg in store.segments(lo, n, n)}
            for key in range(keys):
                got = store.summary(by, key, None, lo, n).dense(np.arange(others))
                assert_same(got, summarize(truth.block(by, key, lo, n)))
    assert used == {"1m", "1h", "1d"}


def test_tiers_are_filled_from_partials(store: Store) -> None:
    rng = np.random.default_rng(4)
    s, m, t, p = random_cells(rng, 2, 2, DAY0, 2 * DAY, 0.3)
    store.write_minutes(s, m, t, p)
    truth = Truth.empty(2, 2, DAY0, 2 * DAY)
    truth.add(s, m, t, p)
    usage = store.disk_usage()
    assert usage["1m"].rows == len(s)
    assert 0 < usage["1d"].rows <= 2 * 2 * 2 < usage["1h"].rows <= 2 * 2 * 48
    want = summarize(truth.block("server", 1, DAY0, 2 * DAY))
    assert_same(store.summary("server", 1, None, DAY0, 2 * DAY).dense(np.arange(2)), want)


# -- retention ---------------------------------------------------------------------------


def _tier_horizon(now: int, retention: float, tier: Tier) -> int:
    cell = tier.minutes * 60
    return int((now - retention) // cell) * tier.minutes


def test_expire_drops_whole_partitions_and_nothing_inside(make_store: MakeStore) -> None:
    retention = Retention(minute=2 * 86400, hour=4 * 86400, day=40 * 86400)
    store = make_store(retention=retention)
    rng = np.random.default_rng(5)
    first, minutes = DAY0 - 3 * DAY, 8 * DAY
    s, m, t, p = random_cells(rng, 2, 2, first, minutes, 0.05)
    store.write_minutes(s, m, t, p)
    truth = Truth.empty(2, 2, first, minutes)
    truth.add(s, m, t, p)
    now = (DAY0 + 3 * DAY + 17 * 60 + 30) * 60 + 11  # an injected clock, mid-hour
    dropped = store.expire(now)
    # 1m keeps days after DAY0 + 1d 17:30: four whole daily partitions before it go
    assert dropped["1m"] == ["20220105", "20220106", "20220107", "20220108"]
    assert dropped["1h"] == [] and dropped["1d"] == []  # monthly partitions: none whole yet
    horizons = store.horizons()
    assert horizons == {
        tier.name: _tier_horizon(now, retention.of(tier), tier)
        for tier in (TIER_1M, TIER_1H, TIER_1D)
    }
    h1m = horizons["1m"]
    rows = store.read_minutes(first, minutes)
    assert rows.minutes.min() >= h1m  # nothing older than retention is readable ...
    kept = truth.parts.count[:, :, h1m - first :].sum()
    assert rows.parts.count.sum() == kept  # ... and nothing inside it is lost
    for key in range(2):
        got = dense(store.read("server", key, None, first, minutes, 1), 2, minutes)
        want = truth.block("server", key, first, minutes)
        want.count[:, : h1m - first] = 0
        assert_same(got, want)
        # hours before the 1m horizon still answer from the 1h tier, up to its horizon
        h1h = horizons["1h"]
        lo = h1h
        n = (h1m - h1m % 60) - lo
        got = dense(store.read("server", key, None, lo, n, 60), 2, n // 60)
        assert_same(got, restep(truth.block("server", key, lo, n), 60))
        got = dense(store.read("server", key, None, first, h1h - first, 60), 2, 1)
        assert got.count.sum() == 0


def test_expire_drops_monthly_partitions_of_coarse_tiers(make_store: MakeStore) -> None:
    retention = Retention(minute=1 * 86400, hour=10 * 86400, day=45 * 86400)
    store = make_store(retention=retention)
    one = Partials(np.ones(3), np.ones(3), np.ones(3), np.ones(3, np.uint32))
    # 2021-11-15, 2021-12-15, 2022-01-15
    days = np.array([18946, 18976, 19007]) * DAY
    store.write_minutes(0, 0, days, one)
    now = 19010 * 86400  # 2022-01-18
    dropped = store.expire(now)
    assert dropped["1h"] == ["202111", "202112"]  # December ends 2022-01-01 < now - 10 d
    assert dropped["1d"] == ["202111"]  # November ends 2021-12-01 < now - 45 d
    assert store.summary("server", 0, None, 0, 19011 * DAY).parts.count.tolist() == [2]


# -- the registry --------------------------------------------------------------------------


def test_registry_round_trip(make_store: MakeStore) -> None:
    store = make_store(database="reg_a")
    reg = Registry()
    for server, metric in [("web-1", "cpu"), ("web-2", "cpu"), ("web-1", "mem"), ("db-1", "disk")]:
        reg.add_series(server, metric)
    store.save_registry(reg)
    reg.add_series("web-3", "cpu")
    store.save_registry(reg)
    store.save_registry(reg)  # nothing new: nothing sent, nothing doubled
    store.close()
    again = make_store(database="reg_a")
    back = again.load_registry()
    assert back.servers.names() == reg.servers.names()
    assert back.metrics.names() == reg.metrics.names()
    assert back.n_series == reg.n_series
    for ident in range(len(reg.servers)):
        _, metrics_of = back.by_server(ident)
        assert metrics_of.tolist() == reg.by_server(ident)[1].tolist()
    assert again.load_series()[0].tolist() == [0, 1, 0, 2, 3]
    # every series keeps its id, not (server, metric) order: the ring's snapshot needs it
    ids = np.arange(reg.n_series, dtype=np.int32)
    for got, want in zip(back.series_of(ids), reg.series_of(ids), strict=True):
        assert got.tolist() == want.tolist()
    assert back.series_of(ids)[1].tolist() == [0, 0, 1, 2, 0]
    back.add_series("web-9", "cpu")
    again.save_registry(back)
    assert again.load_names()[0][-1] == "web-9"


# -- restart and ring rebuild --------------------------------------------------------------


def test_the_change_marker_moves_with_every_write_and_not_with_merges(
    make_store: MakeStore,
) -> None:
    store = make_store(database="marker_a")
    one = Partials(np.ones(1), np.ones(1), np.ones(1), np.ones(1, np.uint32))
    empty = store.change_marker()
    store.write_minutes(0, 0, DAY0 + 10, one)  # day 0
    store.write_minutes(0, 1, DAY0 + DAY + 10, one)  # day 1
    store.write_minutes(1, 1, DAY0 + DAY + 20, one)
    marks = [empty, store.change_marker()]
    store.optimize()  # merges: the same rows, other parts
    assert store.change_marker() == marks[-1]
    store.write_minutes(1, 0, DAY0 + 5, one)  # a late row into the older day
    marks.append(store.change_marker())
    store.optimize()
    assert store.change_marker() == marks[-1]
    retention = store.config.retention.minute
    dropped = store.expire((DAY0 + DAY + 600) * 60 + retention)  # day 0 goes, day 1 stays
    assert len(dropped["1m"]) == 1
    marks.append(store.change_marker())
    assert len(set(marks)) == len(marks)


def test_read_minutes_gives_every_series_for_a_ring_rebuild(make_store: MakeStore) -> None:
    store = make_store(database="ring_a")
    rng = np.random.default_rng(6)
    s, m, t, p = random_cells(rng, 4, 3, DAY0 - 30, 90, 0.4)
    head = Partials(*(f[:5] for f in p.fields()))
    store.write_minutes(s, m, t, p)
    store.write_minutes(s[:5], m[:5], t[:5], head)  # a correction for five cells
    store.close()
    store = make_store(database="ring_a")  # a restart: the data is still there
    truth = Truth.empty(4, 3, DAY0 - 30, 90)
    truth.add(s, m, t, p)
    truth.add(s[:5], m[:5], t[:5], head)
    rows = store.read_minutes(DAY0 - 20, 60)
    got = Truth.empty(4, 3, DAY0 - 30, 90)
    got.add(
        rows.server_ids.astype(np.intp), rows.metric_ids.astype(np.intp), rows.minutes, rows.parts
    )
    cells = np.stack([rows.server_ids, rows.metric_ids, rows.minutes])
    assert np.unique(cells, axis=1).shape[1] == len(rows.minutes)  # one row per cell
    want = Partials(*(f.copy() for f in truth.parts.fields()))
    want.count[:, :, :10] = 0
    want.count[:, :, 70:] = 0
    assert_same(got.parts, want)


# -- read statistics ------------------------------------------------------------------------


def test_reads_touch_only_their_rows(make_store: MakeStore) -> None:
    """The engine's own figures: reads by metric and by server, and the ragged edge of a
    range, read their rows and at most a granule or two more on each side."""
    g = 16
    store = make_store(index_granularity=g)
    servers, metrics, minutes = 6, 64, 150
    grid = np.meshgrid(np.arange(servers), np.arange(metrics), np.arange(minutes), indexing="ij")
    s, m, t = (a.reshape(-1) for a in grid)
    ones = np.ones(len(s))
    store.write_minutes(s, m, t + DAY0, Partials(ones, ones, ones, ones.astype(np.uint32)))
    store.optimize()

    def rows_read(read: Callable[[], object]) -> int:
        before = store.read_stats().rows
        idle = store.read_stats().rows - before  # what asking for the figures costs
        start = store.read_stats().rows
        read()
        return store.read_stats().rows - start - idle

    total = len(s)
    by_metric = rows_read(lambda: store.read("metric", 37, None, DAY0, minutes, 1))
    assert servers * minutes <= by_metric <= servers * minutes + 2 * g, (by_metric, total)
    by_server = rows_read(lambda: store.read("server", 3, None, DAY0, minutes, 1))
    assert metrics * minutes <= by_server <= metrics * minutes + 2 * g, (by_server, total)
    # ten minutes inside an hour: that hour's block of the server, not its whole day
    edge = rows_read(lambda: store.read("server", 3, None, DAY0 + 70, 10, 1))
    assert metrics * 10 <= edge <= metrics * 60 + 2 * g, (edge, total)
    # a summary: two hours from the 1h tier, half an hour from the 1m tier
    summary = rows_read(lambda: store.summary("metric", 37, None, DAY0, minutes))
    assert servers * (2 + 30) <= summary <= servers * (2 + 30) + 4 * g, (summary, total)


# -- threads -------------------------------------------------------------------------------


def test_writes_and_reads_run_on_several_threads(store: Store) -> None:
    one = Partials(np.ones(4), np.ones(4), np.ones(4), np.ones(4, np.uint32))
    errors: list[BaseException] = []

    def write(server: int) -> None:
        try:
            for minute in range(5):
                store.write_minutes(server, np.arange(4), DAY0 + minute, one)
                store.summary("server", server, None, DAY0, 5)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = store.summary("metric", 2, None, DAY0, 5)
    assert got.other_ids.tolist() == [0, 1, 2]
    assert got.parts.count.tolist() == [5, 5, 5]


def test_memory_reports_every_holder_and_the_engine_tracks_its_own(store: Store) -> None:
    one = Partials(np.ones(1000), np.ones(1000), np.ones(1000), np.ones(1000, np.uint32))
    store.write_minutes(0, np.arange(1000), DAY0, one)
    memory = store.memory()
    assert set(memory) == set(ENGINE_MEMORY) | set(ALLOCATOR_MEMORY)
    assert all(isinstance(v, int) and v >= 0 for v in memory.values())
    assert memory["tracked"] > 0  # the engine's tracker holds at least its own state
    # both implementations here run the engine with its own allocator, which maps at least
    # the pages of what it has allocated
    assert memory["allocator_allocated"] > 0
    assert memory["allocator_resident"] > memory["tracked"] // 2
