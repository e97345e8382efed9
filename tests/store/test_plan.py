"""The tier planner: segments cover a range exactly, and coarse cells never straddle buckets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minutely.store import TIER_1D, TIER_1H, TIER_1M, Retention, StoreConfig, plan
from minutely.store.plan import Segment, clamp

DAY = 1440
steps = st.sampled_from([1, 2, 5, 15, 60, 120, 180, 360, 1440, 2880, 10080])


def _check_cover(segments: list[Segment], first: int, n: int, step: int) -> None:
    covered = np.zeros(n, dtype=np.int64)
    for seg in segments:
        size = seg.tier.minutes
        assert seg.first < seg.last
        assert seg.first % size == 0 and seg.last % size == 0
        covered[seg.first - first : seg.last - first] += 1
        if size > 1 and n > step:
            # each cell lies inside one bucket
            starts = np.arange(seg.first, seg.last, size)
            assert np.array_equal((starts - first) // step, (starts + size - 1 - first) // step)
    assert (covered == 1).all()
    assert [s.first for s in segments] == sorted(s.first for s in segments)


@given(first=st.integers(0, 40 * DAY), n=st.integers(1, 20 * DAY), step=steps)
def test_segments_cover_the_range_once(first: int, n: int, step: int) -> None:
    _check_cover(plan(first, n, step), first, n, step)


@given(first=st.integers(0, 40 * DAY), n=st.integers(1, 20 * DAY))
def test_a_summary_reads_every_whole_day_and_hour_from_its_tier(first: int, n: int) -> None:
    segments = plan(first, n, n)
    _check_cover(segments, first, n, n)
    first_day, last_day = -(-first // DAY) * DAY, (first + n) // DAY * DAY
    days = sum(s.last - s.first for s in segments if s.tier is TIER_1D)
    assert days == max(0, last_day - first_day)
    minutes = sum(s.last - s.first for s in segments if s.tier is TIER_1M)
    assert minutes < 2 * 60  # only the ragged edges of the outer hours


def test_aligned_series_reads_use_the_coarsest_exact_tier() -> None:
    assert plan(10 * DAY, 7 * DAY, DAY) == [Segment(TIER_1D, 10 * DAY, 17 * DAY)]
    assert plan(10 * DAY + 60, DAY, 60) == [Segment(TIER_1H, 10 * DAY + 60, 11 * DAY + 60)]
    assert plan(10 * DAY, DAY + 30, 60) == [
        Segment(TIER_1H, 10 * DAY, 11 * DAY),
        Segment(TIER_1M, 11 * DAY, 11 * DAY + 30),
    ]
    # five-minute buckets cannot be served by hours: cells must not straddle buckets ...
    assert plan(10 * DAY + 5, 120, 5) == [Segment(TIER_1M, 10 * DAY + 5, 10 * DAY + 125)]
    # ... and buckets not aligned to the hour cannot either
    assert plan(10 * DAY + 30, 240, 60) == [Segment(TIER_1M, 10 * DAY + 30, 10 * DAY + 270)]
    assert plan(0, 0, 60) == []
    with pytest.raises(ValueError, match="not positive"):
        plan(0, 10, 0)


def test_clamp_cuts_each_tier_at_its_horizon() -> None:
    segments = plan(DAY - 90, 2 * DAY + 150, 3 * DAY)
    assert segments == [
        Segment(TIER_1M, DAY - 90, DAY - 60),
        Segment(TIER_1H, DAY - 60, DAY),
        Segment(TIER_1D, DAY, 3 * DAY),
        Segment(TIER_1H, 3 * DAY, 3 * DAY + 60),
    ]
    assert clamp(segments, {"1m": DAY, "1h": DAY - 60, "1d": 2 * DAY}) == [
        Segment(TIER_1H, DAY - 60, DAY),
        Segment(TIER_1D, 2 * DAY, 3 * DAY),
        Segment(TIER_1H, 3 * DAY, 3 * DAY + 60),
    ]
    assert clamp(segments, {}) == segments


def test_config_checks_what_goes_into_ddl() -> None:
    with pytest.raises(ValueError, match="identifier"):
        StoreConfig("chdb:///tmp/x", database="x; DROP TABLE y")
    with pytest.raises(ValueError, match="index_granularity"):
        StoreConfig("chdb:///tmp/x", index_granularity=1)
    with pytest.raises(ValueError, match="positive"):
        Retention(minute=0)
    assert Retention().of(TIER_1M) == 400 * 86400
    assert TIER_1M.partition_span("20240229") == (1709164800, 1709251200)
    assert TIER_1H.partition_span("202412") == (1733011200, 1735689600)
