"""The hot ring against a dict model: wrap-around, stale slots, late points, growth."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from minutely.hot import FoldResult, HotRing
from minutely.model import Partials, restep

W, L = 12, 3


class RingModel(RuleBasedStateMachine):
    """The ring against a dict of every point folded, over any folds, jumps and loads."""

    window = W

    def make_ring(self) -> HotRing:
        return HotRing(W, L, capacity=4, block=8)  # series 0..40 span six blocks

    def window_start(self) -> int:
        """The oldest minute the ring holds at the model's head: ``window - 1`` before it."""
        assert self.head is not None
        return self.head - self.window + 1

    def __init__(self) -> None:
        super().__init__()
        self.ring = self.make_ring()
        self.points: dict[tuple[int, int], list[float]] = defaultdict(list)
        self.head: int | None = None
        self.expired = 0
        self.series_seen = 1

    @rule(
        data=st.lists(
            st.tuples(st.integers(0, 40), st.integers(-20, 8), st.integers(-1000, 1000)),
            min_size=1,
            max_size=30,
        ),
        base_shift=st.integers(0, 30),
    )
    def fold(self, data: list[tuple[int, int, int]], base_shift: int) -> None:
        base = (self.head or 1000) + base_shift - 5
        series = np.array([s for s, _, _ in data], dtype=np.int32)
        minutes = np.array([base + m for _, m, _ in data], dtype=np.int64)
        values = np.array([v / 8 for _, _, v in data], dtype=np.float64)
        result = self.ring.fold(series, minutes, values)
        newest = int(minutes.max())
        self.head = newest if self.head is None else max(self.head, newest)
        expired = 0
        for s, m, v in zip(series.tolist(), minutes.tolist(), values.tolist(), strict=True):
            if m < self.window_start():
                expired += 1
            else:
                self.points[(s, m)].append(v)
        assert result.expired == expired
        assert result.folded == len(data) - expired
        self.series_seen = max(self.series_seen, int(series.max()) + 1)

    @rule(jump=st.integers(1, 40))
    def jump_ahead(self, jump: int) -> None:
        """One point far ahead: the ring wraps and older slots must read as empty."""
        minute = (self.head or 1000) + jump
        self.ring.fold(np.array([0], dtype=np.int32), np.array([minute]), np.array([1.0]))
        self.head = max(self.head or minute, minute)
        self.points[(0, minute)].append(1.0)

    @rule(
        data=st.lists(
            st.tuples(st.integers(0, 40), st.integers(-40, 2), st.integers(-1000, 1000)),
            min_size=1,
            max_size=30,
        ),
        how=st.sampled_from(["merge_partials", "load"]),
    )
    def merge_old(self, data: list[tuple[int, int, int]], how: str) -> None:
        """Points as partials of one value (a checkpoint's, or the store's at start-up),
        mostly for minutes already closed: sealed ones too, when the ring seals."""
        base = self.head or 1000
        series = np.array([s for s, _, _ in data], dtype=np.int32)
        minutes = np.array([base + m for _, m, _ in data], dtype=np.int64)
        values = np.array([v / 8 for _, _, v in data], dtype=np.float64)
        parts = Partials(values, values, values, np.ones(len(data), np.uint32))
        if how == "load":
            self.ring.load(series, minutes, parts)
        else:
            self.ring.merge_partials(series, minutes, parts)
        self.head = max(base, int(minutes.max())) if self.head is not None else int(minutes.max())
        for s, m, v in zip(series.tolist(), minutes.tolist(), values.tolist(), strict=True):
            if m >= self.window_start():
                self.points[(s, m)].append(v)
        self.series_seen = max(self.series_seen, int(series.max()) + 1)

    @invariant()
    def reads_match_model(self) -> None:
        if self.head is None:
            return
        W = self.window
        first = self.head - 2 * W
        count = 2 * W + 3
        start = self.window_start()
        assert self.ring.oldest_minute() == start
        series = np.arange(self.series_seen + 2, dtype=np.int32)
        got = self.ring.read(series, first, count)
        for s in series.tolist():
            for i in range(count):
                m = first + i
                vals = self.points.get((s, m), []) if m >= start else []
                assert got.count[s, i] == len(vals), (s, m)
                if vals:
                    assert got.min[s, i] == min(vals)
                    assert got.max[s, i] == max(vals)
                    assert got.sum[s, i] == pytest.approx(sum(vals))
        # read straight into buckets: the same as the minutes merged afterwards, whatever
        # the order of the series asked for (here reversed, unknown ids first)
        backwards = series[::-1]
        for step in (1, 3, 9, count):
            assert_same_buckets(
                self.ring.read_buckets(backwards, first, count, step),
                restep(got.take(np.s_[::-1]), step),
            )
        # buckets on block boundaries, as queries align them: blocks answer from summaries
        for step in (4, 8):
            start = first // step * step + step
            n = (first + count - start) // step * step
            assert_same_buckets(
                self.ring.read_buckets(backwards, start, n, step),
                restep(got.take(np.s_[::-1, start - first : start - first + n]), step),
            )
        # into memory an earlier answer left, before, across and after the window's start
        for step, at in ((1, first), (1, self.window_start()), (1, self.head - 2), (4, first)):
            assert_overwrites_as_merging_into_zeros(self.ring, backwards, at, count // 4 * 4, step)


def assert_overwrites_as_merging_into_zeros(
    ring: HotRing, series: npt.NDArray[np.int32], first: int, count: int, step: int
) -> None:
    """``merge_buckets(overwrite=True)`` into a view of a block of garbage writes each of the
    view's cells as merging into a zeroed block does, all four fields bit for bit, and
    nothing outside the view."""
    shape = (series.shape[0], count // step)
    want = Partials.zeros(shape)
    ring.merge_buckets(series, first, count, step, want)
    rng = np.random.default_rng(first)
    wide = (shape[0], shape[1] + 3)
    bits = rng.integers(0, 2**63, (3, *wide), dtype=np.int64).view(np.float64)
    before = Partials(*bits, rng.integers(0, 2**32, wide, dtype=np.uint32))
    block = Partials(*(f.copy() for f in before.fields()))
    ring.merge_buckets(series, first, count, step, block.take(np.s_[:, 1:-2]), overwrite=True)
    for g, w, b in zip(block.fields(), want.fields(), before.fields(), strict=True):
        u = np.uint32 if g.dtype == np.uint32 else np.uint64
        np.testing.assert_array_equal(g[:, 1:-2].view(u), w.view(u))
        np.testing.assert_array_equal(g[:, [0, -2, -1]].view(u), b[:, [0, -2, -1]].view(u))


def assert_same_buckets(got: Partials, want: Partials) -> None:
    """Equal buckets: counts, and min and max exactly, sums to float64 rounding (added in
    another order) where a bucket has data."""
    np.testing.assert_array_equal(got.count, want.count)
    full = want.count > 0
    np.testing.assert_array_equal(got.min[full], want.min[full])
    np.testing.assert_array_equal(got.max[full], want.max[full])
    np.testing.assert_allclose(got.sum[full], want.sum[full], rtol=1e-12, atol=1e-9)


TestRingModel = RingModel.TestCase
TestRingModel.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


class CompressedRingModel(RingModel):
    """The same over a ring that seals blocks of 4 minutes (13 open slots of a 30-minute
    window) with summaries of 8, grows its open span of 16 a summary at a time, compacts
    it and expires them: late points and loads reach sealed, grown and compacted blocks,
    jumps expire them."""

    window = 30

    def make_ring(self) -> HotRing:
        ring = HotRing(30, L, capacity=4, block=8, block_minutes=4,
                       summary_minutes=8, grace_minutes=3,
                       compact_minutes=16)  # fmt: skip
        assert ring.sealing and ring.slots == 13
        return ring

    def window_start(self) -> int:
        """A sealing ring's window starts where the span of 8 minutes (its summaries') of
        ``head - window`` does."""
        return (super().window_start() - 1) // 8 * 8


TestCompressedRingModel = CompressedRingModel.TestCase
TestCompressedRingModel.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)


def test_empty_ring_reads_empty() -> None:
    ring = HotRing(10, 2)
    got = ring.read(np.arange(3, dtype=np.int32), 0, 5)
    assert got.count.sum() == 0 and ring.oldest_minute() is None


def test_growth_keeps_data_and_reports_bytes() -> None:
    ring = HotRing(10, 2, capacity=2, block=64)
    ring.fold(np.array([0], dtype=np.int32), np.array([100]), np.array([5.0]))
    ring.fold(np.array([5000], dtype=np.int32), np.array([100]), np.array([7.0]))
    assert ring.capacity >= 5001
    got = ring.read(np.array([5000, 0, 77], dtype=np.int32), 100, 1)
    assert got.min[:2, 0].tolist() == [7.0, 5.0] and got.count[:, 0].tolist() == [1, 1, 0]
    # flushing the live rows into the ring (three minutes later) keeps every value
    ring.fold(np.array([1], dtype=np.int32), np.array([103]), np.array([1.0]))
    got = ring.read(np.array([5000, 0, 1], dtype=np.int32), 100, 4)
    assert got.min[:2, 0].tolist() == [7.0, 5.0] and got.count[2].tolist() == [0, 0, 0, 1]
    # rows of 10 cells share pages: 28 B per cell of the 5,001 rows written, over the 4
    # minutes held; the live rows count the pages their 5,001 columns fill, not the capacity
    parts = ring.memory()
    assert parts["series_minutes"] == 5001 * 4
    assert 5001 * 10 * 28 <= parts["ring"] <= 5001 * 10 * 28 + 4 * 4096
    pages = 3 * -(-5001 * 8 // 4096) + -(-5001 * 4 // 4096)
    assert parts["live"] == 2 * pages * 4096


def test_bytes_per_series_minute_of_a_full_window() -> None:
    """A window longer than the open slots: 28 B per open series-minute, the sealed
    20-minute blocks compressed (constant values: almost nothing), live rows and stamps on top."""
    ring = HotRing(600, 4, capacity=1024, block=1024)
    assert ring.sealing and ring.slots == 20 + 2 * 5 + 4
    series = np.arange(1000, dtype=np.int32)
    for minute in range(1000, 1665):
        ring.fold(series, np.full(1000, minute), np.ones(1000))
    # the window starts at the hour that 1065 (600 minutes back from the head) falls in
    assert ring.oldest_minute() == 1020
    parts = ring.memory()
    assert parts["series_minutes"] == 1000 * 645
    # rows of 34 cells share pages: 28 B per cell of the open slots
    assert 28 * 1000 * 34 <= parts["ring"] <= 28 * 1000 * 34 + 4 * 4096
    assert parts["sealed_blocks"] + parts["compacted_blocks"] > 0
    assert parts["sealed_blocks"] + parts["compacted_blocks"] < 1000 * 600 * 2
    states = ring.states()
    held = sum(int(v["series_minutes"] or 0) for k, v in states.items() if k != "hour_summaries")
    assert held == parts["series_minutes"]
    empty = HotRing(minutes=600, capacity=16).states()
    assert all(v["bytes_per_series_minute"] is None for v in empty.values())  # no 0-division
    # 28 B a series for each of the window's 10 blocks of minutes and two more
    assert parts["hour_summaries"] == 1000 * 12 * 28
    # the closed span [1080, 1440) and the open one grown to its last sealed hour, 1620
    assert states["compacted_blocks"]["series_minutes"] == 1000 * (360 + 180)
    assert ring.bytes_per_series_minute < 28 * 34 / 600 + 28 * 4 * 1.024 / 600 + 2
    got = ring.read(series, 1000, 665)  # the first 20 minutes' hour has left the window
    assert (got.count[:, :20] == 0).all() and (got.count[:, 20:] == 1).all()
    assert (got.min[:, 20:] == 1.0).all()


def test_memory_follows_the_series_held_not_the_block() -> None:
    """5,000 series in a block of 16,384 at a 2-day window: the first minutes flushed make
    the open slots of their rows resident (rows of 34 cells share pages), not the block."""
    ring = HotRing(2880, 4)
    series = np.arange(5000, dtype=np.int32)
    for minute in range(1000, 1010):
        ring.fold(series, np.full(5000, minute), np.arange(5000.0))
    assert ring.capacity == 16384
    parts = ring.memory()
    assert 5000 * 34 * 28 <= parts["ring"] <= 5000 * 34 * 28 + 4 * 4096
    assert parts["series_minutes"] == 5000 * 10
    got = ring.read(series, 1000, 5)
    np.testing.assert_array_equal(got.min, np.repeat(np.arange(5000.0)[:, None], 5, axis=1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmRSS")
def test_a_fresh_two_day_ring_makes_resident_what_it_reports() -> None:
    """The process' resident memory grows by about what ``memory`` reports (here 82 MB),
    far below the 16,384-row block (1.3 GB at 2 days) that huge pages made resident."""
    series = np.arange(5000, dtype=np.int32)
    values = np.arange(5000.0)
    before = _rss()
    ring = HotRing(2880, 4)
    for minute in range(1000, 1010):
        ring.fold(series, np.full(5000, minute), values)
    grown = _rss() - before
    assert grown < 2 * ring.nbytes + (32 << 20), (grown, ring.nbytes)
    assert ring.nbytes < 100 << 20


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_rejects_window_not_longer_than_live_rows() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        HotRing(3, 3)


#: ring arguments that seal blocks of 4 minutes (16 open slots), and ones that do not
SEALING = {"block_minutes": 4, "grace_minutes": 4, "compact_minutes": 16, "summary_minutes": 8}
OPEN = {"block_minutes": 30}  # 44 open slots: a window of 40 or 45 minutes seals nothing


@pytest.mark.parametrize("sealing", [OPEN, SEALING], ids=["open", "sealing"])
@pytest.mark.parametrize("distinct", [True, False])
def test_load_writes_stored_partials_and_merges_into_held_minutes(
    distinct: bool, sealing: dict[str, int]
) -> None:
    """A start-up load across several blocks equals a dict of merged partials: cells of
    fresh slots are written, cells of minutes the ring holds already are merged, cells
    older than the window are left out; duplicates are merged when not promised distinct."""
    from minutely.model import Partials

    rng = np.random.default_rng(3)
    ring = HotRing(minutes=40, live_minutes=4, capacity=8, block=16, **sealing)
    assert ring.sealing == (sealing is SEALING)
    fold_series = np.array([5, 17, 40], np.int32)
    ring.fold(fold_series, np.array([1000, 1000, 1000], np.int64), np.array([1.0, 2.0, 3.0]))
    n = 400
    series = rng.integers(0, 48, n).astype(np.int32)  # three blocks of 16
    minutes = rng.integers(950, 1001, n).astype(np.int64)  # some before the window
    if distinct:
        key = series.astype(np.int64) * 10_000 + minutes
        _, first = np.unique(key, return_index=True)
        series, minutes = series[first], minutes[first]
    v = rng.normal(size=series.shape[0])
    parts = Partials(v - 1, v + 1, v, np.ones(series.shape[0], np.uint32))
    ring.load(series, minutes, parts, distinct=distinct)

    want: dict[tuple[int, int], list[float]] = defaultdict(lambda: [np.inf, -np.inf, 0.0, 0])
    for s, m, lo, hi, sm in zip(
        series.tolist(),
        minutes.tolist(),
        (v - 1).tolist(),
        (v + 1).tolist(),
        v.tolist(),
        strict=True,
    ):
        if m > 1000 - 40:
            c = want[(s, m)]
            c[0], c[1], c[2], c[3] = min(c[0], lo), max(c[1], hi), c[2] + sm, c[3] + 1
    for s, x in zip(fold_series.tolist(), [1.0, 2.0, 3.0], strict=True):
        c = want[(s, 1000)]
        c[0], c[1], c[2], c[3] = min(c[0], x), max(c[1], x), c[2] + x, c[3] + 1
    got = ring.read(np.arange(48, dtype=np.int32), 1000 - 39, 40)
    for s in range(48):
        for j in range(40):
            c = want.get((s, 1000 - 39 + j))
            assert got.count[s, j] == (0 if c is None else c[3]), (s, j)
            if c is not None:
                assert (got.min[s, j], got.max[s, j]) == (c[0], c[1])
                assert got.sum[s, j] == pytest.approx(c[2])


def test_a_second_load_of_the_same_cells_merges_with_the_first() -> None:
    from minutely.model import Partials

    ring = HotRing(minutes=30, live_minutes=4, capacity=8, block=4)
    series = np.array([0, 3, 5, 9], np.int32)  # blocks 0, 0, 1, 2
    minutes = np.array([100, 101, 101, 90], np.int64)
    v = np.array([1.0, 2.0, 3.0, 4.0])
    parts = Partials(v, v, v, np.ones(4, np.uint32))
    ring.load(series, minutes, parts, distinct=True)
    ring.load(series, minutes, Partials(v * 2, v * 2, v * 2, np.ones(4, np.uint32)), distinct=True)
    got = ring.read(series, 90, 12)
    cols = (minutes - 90).tolist()
    assert [int(got.count[i, c]) for i, c in enumerate(cols)] == [2, 2, 2, 2]
    assert [got.max[i, c] for i, c in enumerate(cols)] == (v * 2).tolist()
    assert [got.sum[i, c] for i, c in enumerate(cols)] == (v * 3).tolist()


@pytest.mark.parametrize("sealing", [OPEN, SEALING], ids=["open", "sealing"])
def test_read_buckets_merges_loaded_minutes_and_live_rows_into_their_buckets(
    sealing: dict[str, int],
) -> None:
    """Loaded minutes (some in slots the live rows cover, as after a start-up), then points
    folded into the live rows and into older minutes, over four blocks: buckets read
    straight from the ring equal the minute block merged afterwards, for any step and any
    first minute, and ids past the ring's rows read empty."""
    rng = np.random.default_rng(7)
    ring = HotRing(minutes=60, live_minutes=4, capacity=8, block=16, **sealing)
    n = 3000
    series = rng.integers(0, 64, n).astype(np.int32)
    minutes = rng.integers(940, 1001, n).astype(np.int64)
    v = rng.normal(50, 10, n)
    ring.load(series, minutes, Partials(v - 1, v + 1, v * 2, np.full(n, 2, np.uint32)))
    for _ in range(3):
        s = rng.integers(0, 64, 200).astype(np.int32)
        m = rng.integers(985, 1003, 200).astype(np.int64)
        ring.fold(s, m, rng.normal(50, 10, 200))
    assert ring.head == 1002
    asked = rng.permutation(np.arange(70, dtype=np.int32))  # 64..69 were never written
    for first, count, step in (
        (943, 60, 5),
        (943, 60, 60),
        (950, 56, 7),
        (1000, 3, 3),
        (990, 13, 1),
    ):
        want = restep(ring.read(asked, first, count), step)
        assert int(want.count.sum()) > 0
        assert_same_buckets(ring.read_buckets(asked, first, count, step), want)


def test_merge_buckets_merges_into_what_a_block_holds() -> None:
    """Into a view of a larger block: entries with data merge, empty ones (count 0, other
    fields whatever they hold) take the ring's buckets, columns outside the view stay."""
    ring = HotRing(minutes=30, live_minutes=2, capacity=4, block=4)
    series = np.array([0, 1, 2], np.int32)
    ring.load(
        np.repeat(series, 4),
        np.tile(np.arange(100, 104), 3),
        Partials(np.arange(12.0), np.arange(12.0) + 1, np.arange(12.0) * 2, np.ones(12, np.uint32)),
        distinct=True,
    )
    block = Partials(
        np.full((3, 4), 7.0),
        np.full((3, 4), 7.0),
        np.full((3, 4), 5.0),
        np.zeros((3, 4), np.uint32),
    )
    block.count[0, 1] = 3  # series 0, minutes 100-101: held already
    ring.merge_buckets(series, 100, 4, 2, block.take(np.s_[:, 1:3]))
    assert block.count.tolist() == [[0, 5, 2, 0], [0, 2, 2, 0], [0, 2, 2, 0]]
    assert block.min[:, 1:3].tolist() == [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]
    assert block.max[:, 1:3].tolist() == [[7.0, 4.0], [6.0, 8.0], [10.0, 12.0]]
    assert block.sum[0, 1] == 5.0 + 0.0 + 2.0 and block.sum[1, 1] == 8.0 + 10.0
    assert block.count[:, [0, 3]].sum() == 0 and block.min[0, 0] == 7.0


def test_buckets_must_be_whole() -> None:
    ring = HotRing(minutes=10, live_minutes=1)
    ring.fold(np.zeros(5, np.int32), np.arange(100, 105), np.ones(5))
    with pytest.raises(ValueError, match="whole columns"):
        ring.read_buckets(np.array([0], np.int32), 100, 5, 2)
    narrow = Partials(
        *(a[:, :1] for a in ring.read_buckets(np.array([0], np.int32), 100, 4, 2).fields())
    )
    with pytest.raises(ValueError, match="out has 1"):
        ring.merge_buckets(np.array([0], np.int32), 100, 4, 2, narrow)


def test_handing_on_open_minutes_gives_the_sink_deltas_that_merge_to_the_truth() -> None:
    """Every second on the embedded bus: each hand-on gives the sink only what the open
    minutes gained since the last, reads are unchanged, and a minute closing later hands
    on only its remainder."""
    got: list[tuple[np.ndarray, np.ndarray, Partials]] = []
    ring = HotRing(30, 3, sink=lambda s, m, p: got.append((s, m, p)))
    rng = np.random.default_rng(5)
    truth: dict[tuple[int, int], list[float]] = {}
    for round_ in range(6):
        n = 50
        series = rng.integers(0, 4, n).astype(np.int32)
        minutes = (100 + round_ // 2 + rng.integers(0, 2, n)).astype(np.int64)
        values = rng.normal(0, 10, n)
        ring.fold(series, minutes, values)
        for s, m, v in zip(series.tolist(), minutes.tolist(), values.tolist(), strict=True):
            truth.setdefault((s, m), []).append(v)
        before = ring.read(np.arange(4, dtype=np.int32), 100, 6)
        ring.hand_on_live()
        after = ring.read(np.arange(4, dtype=np.int32), 100, 6)
        for a, b in zip(before.fields(), after.fields(), strict=True):
            np.testing.assert_array_equal(a[before.count > 0], b[before.count > 0])
        np.testing.assert_array_equal(before.count, after.count)
    ring.hand_on_live()  # nothing new: nothing handed on
    handed = len(got)
    ring.hand_on_live()
    assert len(got) == handed
    ring.fold(np.array([0], np.int32), np.array([120], np.int64), np.array([1.0]))  # close all
    merged: dict[tuple[int, int], list[float]] = {}
    for s, m, p in got:
        for i in range(len(s)):
            cell = merged.setdefault((int(s[i]), int(m[i])), [np.inf, -np.inf, 0.0, 0])
            cell[0] = min(cell[0], float(p.min[i]))
            cell[1] = max(cell[1], float(p.max[i]))
            cell[2] += float(p.sum[i])
            cell[3] += int(p.count[i])
    for key, values in truth.items():
        mn, mx, total, count = merged[key]
        assert (mn, mx, count) == (min(values), max(values), len(values)), key
        assert total == pytest.approx(sum(values), rel=1e-12, abs=1e-9)
    assert set(merged) == set(truth)  # minute 120 is still open: not handed on


def test_late_points_into_sealed_minutes_merge_and_reach_the_sink_as_corrections() -> None:
    """Points for minutes sealed (and compacted) long ago merge into their blocks exactly,
    and the sink gets their own partials, as the open ring's late points give it."""
    got: list[tuple[np.ndarray, np.ndarray, Partials]] = []
    ring = HotRing(60, 3, capacity=8, block=4, sink=lambda s, m, p: got.append((s, m, p)),
                   **SEALING)  # fmt: skip
    series = np.arange(10, dtype=np.int32)  # three ring blocks of 4
    rng = np.random.default_rng(11)
    truth = np.zeros((10, 60))
    for minute in range(1000, 1060):
        v = np.round(rng.normal(50, 10, 10), 2)
        truth[:, minute - 1000] = v
        ring.fold(series, np.full(10, minute), v)
    states = ring.states()
    assert states["compacted_blocks"]["series_minutes"] > 0
    assert states["sealed_blocks"]["series_minutes"] > 0
    got.clear()
    late_s = np.array([0, 9, 9, 5], np.int32)
    late_m = np.array([1001, 1010, 1010, 1030], np.int64)
    late_v = np.array([-7.0, 1e6, 2.5, 0.125])
    before = ring.seal_stats.late_merged
    assert ring.fold(late_s, late_m, late_v) == FoldResult(4, 0)
    assert ring.seal_stats.late_merged - before == 3  # distinct cells
    assert ring.seal_stats.sealed > 0 and ring.seal_stats.compacted > 0
    sunk = {(int(s), int(m)): (p.min[i], p.max[i], p.sum[i], int(p.count[i]))
            for s_, m_, p in got for i, (s, m) in enumerate(zip(s_, m_, strict=True))}  # fmt: skip
    assert sunk == {
        (0, 1001): (-7.0, -7.0, -7.0, 1),
        (9, 1010): (2.5, 1e6, 1e6 + 2.5, 2),
        (5, 1030): (0.125, 0.125, 0.125, 1),
    }
    read = ring.read(series, 1000, 60)
    want_count = np.ones((10, 60), np.uint32)
    want_min, want_max, want_sum = truth.copy(), truth.copy(), truth.copy()
    for s, m, v in zip(late_s.tolist(), late_m.tolist(), late_v.tolist(), strict=True):
        c = (s, m - 1000)
        want_count[c] += 1
        want_min[c], want_max[c], want_sum[c] = (
            min(want_min[c], v),
            max(want_max[c], v),
            want_sum[c] + v,
        )
    np.testing.assert_array_equal(read.count, want_count)
    np.testing.assert_array_equal(read.min, want_min)
    np.testing.assert_array_equal(read.max, want_max)
    np.testing.assert_allclose(read.sum, want_sum, rtol=1e-15)
    # at step 4 (block summaries) and over the whole window (Q3's one bucket) alike
    for step in (4, 60):
        assert_same_buckets(ring.read_buckets(series, 1000, 60, step), restep(read, step))


def test_a_jump_past_the_window_expires_every_block() -> None:
    ring = HotRing(30, 3, capacity=4, block=4, **SEALING)
    ring.fold(np.zeros(40, np.int32), np.arange(1000, 1040), np.ones(40))
    assert ring.memory()["sealed_blocks"] + ring.memory()["compacted_blocks"] > 0
    ring.fold(np.array([1], np.int32), np.array([1100]), np.array([2.0]))
    assert ring.memory()["sealed_blocks"] + ring.memory()["compacted_blocks"] == 0
    got = ring.read(np.array([0, 1], np.int32), 1000, 101)
    assert got.count[0].sum() == 0 and got.count[1].tolist() == [0] * 100 + [1]


def test_the_block_the_window_starts_in_is_trimmed_to_its_minutes() -> None:
    """A compacted block the window's start has entered is re-encoded from the block of
    minutes the start is in, so it holds no more expired minutes than an hour block would;
    what the window still holds reads back exactly."""
    ring = HotRing(30, 3, capacity=8, block=4, block_minutes=4, summary_minutes=4, grace_minutes=4,
                   compact_minutes=16)  # fmt: skip
    series = np.arange(10, dtype=np.int32)
    rng = np.random.default_rng(3)
    truth = np.zeros((10, 80))
    held = []
    for minute in range(1000, 1080):
        v = np.round(rng.normal(50, 10, 10), 2)
        truth[:, minute - 1000] = v
        ring.fold(series, np.full(10, minute), v)
        states = ring.states()
        sealed = states["sealed_blocks"]["series_minutes"]
        sealed += states["compacted_blocks"]["series_minutes"]
        held.append(sealed)
    assert ring.seal_stats.trimmed > 0 and ring.seal_stats.compacted > 0
    # sealed: at most the window's 30 minutes less the open ones, by a block of 4 (untrimmed,
    # a 16-minute block would hold up to 40 series-minutes a series)
    assert max(held) <= 10 * 28
    got = ring.read(series, 1050, 30)
    np.testing.assert_array_equal(got.count, np.ones((10, 30), np.uint32))
    np.testing.assert_array_equal(got.min, truth[:, 50:])
    np.testing.assert_array_equal(got.max, truth[:, 50:])
    np.testing.assert_array_equal(got.sum, truth[:, 50:])


def test_the_last_window_asked_in_any_second_starts_inside_a_sealing_ring() -> None:
    """A question over the last 45 minutes asked at any second of the head's minute, its
    start aligned down to a block of 4 minutes as a step of 4 aligns it, starts no earlier
    than the ring's window, whichever minute of its block the head is at, and the ring
    answers those minutes: none of them would need the store."""
    ring = HotRing(45, 3, capacity=4, block=4, **SEALING)
    series = np.arange(2, dtype=np.int32)
    for head in range(1000, 1070):
        ring.fold(series, np.full(2, head, np.int64), np.full(2, float(head)))
        oldest = ring.oldest_minute()
        assert oldest is not None
        for second in (0, 30, 59):
            start = (head * 60 + second - 45 * 60) // 240 * 4  # minutes, aligned to 4
            assert start >= oldest, (head, second, start, oldest)
        if head >= 1049:  # every minute of the question is in the ring: numpy's answer
            start = (head * 60 + 59 - 45 * 60) // 240 * 4
            got = ring.read(series, start, head + 1 - start)
            want = np.arange(start, head + 1, dtype=np.float64)
            assert (got.count == 1).all() and (got.min == want).all() and (got.sum == want).all()


def test_a_sealing_ring_holds_the_whole_block_its_window_starts_in() -> None:
    """With blocks of 4 minutes and a 45-minute window, the window starts at the block
    ``head - 44`` falls in: its minutes read back as numpy over the raw points, a late point
    for one of them merges into the ring and reaches the sink as a correction, and a point
    before that block is expired to the sink only."""
    got: list[tuple[np.ndarray, np.ndarray, Partials]] = []
    ring = HotRing(45, 3, capacity=8, block=4, sink=lambda s, m, p: got.append((s, m, p)),
                   **SEALING)  # fmt: skip
    assert ring.sealing
    rng = np.random.default_rng(17)
    raw_s, raw_m, raw_v = [], [], []
    for minute in range(1000, 1062):  # three points a minute for each of 10 series
        s = np.repeat(np.arange(10, dtype=np.int32), 3)
        m = np.full(30, minute, np.int64)
        v = np.round(rng.normal(50, 10, 30), 2)
        ring.fold(s, m, v)
        raw_s.append(s)
        raw_m.append(m)
        raw_v.append(v)
    # the head is 1061: 45 minutes back is 1017, in the block of minutes [1016, 1020)
    assert ring.oldest_minute() == 1016
    assert ring.memory()["series_minutes"] == 10 * 46
    got.clear()
    late_s, late_m = np.array([3, 4], np.int32), np.array([1016, 1015], np.int64)
    late_v = np.array([-1e3, 5.0])
    assert ring.fold(late_s, late_m, late_v) == FoldResult(1, 1)
    sunk = {(int(s), int(m)): (p.min[i], p.max[i], p.sum[i], int(p.count[i]))
            for s_, m_, p in got for i, (s, m) in enumerate(zip(s_, m_, strict=True))}  # fmt: skip
    assert sunk == {(3, 1016): (-1e3, -1e3, -1e3, 1), (4, 1015): (5.0, 5.0, 5.0, 1)}
    raw_s.append(late_s)
    raw_m.append(late_m)
    raw_v.append(late_v)

    s, m, v = np.concatenate(raw_s), np.concatenate(raw_m), np.concatenate(raw_v)
    keep = m >= 1016  # the window's minutes: the expired point is left out
    s, m, v = s[keep], m[keep] - 1000, v[keep]
    want = Partials(
        np.full((10, 62), np.inf), np.full((10, 62), -np.inf), np.zeros((10, 62)),
        np.zeros((10, 62), np.uint32),
    )  # fmt: skip
    np.minimum.at(want.min, (s, m), v)
    np.maximum.at(want.max, (s, m), v)
    np.add.at(want.sum, (s, m), v)
    np.add.at(want.count, (s, m), 1)
    read = ring.read(np.arange(10, dtype=np.int32), 1000, 62)
    assert_same_buckets(read, want)
    assert read.count[:, :16].sum() == 0 and (read.count[:, 16:] > 0).all()
    assert read.min[3, 16] == -1e3
    # from the window's start at step 4 (block summaries) and in one bucket (Q3's)
    for step in (4, 44):
        assert_same_buckets(
            ring.read_buckets(np.arange(10, dtype=np.int32), 1016, 44, step),
            restep(want.take(np.s_[:, 16:60]), step),
        )
