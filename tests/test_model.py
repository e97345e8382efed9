"""Merge laws of partial aggregates, and re-stepping, against brute force over raw values."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minutely.model import (
    Partials,
    PointBatch,
    merge,
    minute_of,
    reduce_by_key,
    reduce_partials_by_key,
    restep,
    summarize,
)

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
groups = st.lists(st.lists(finite, max_size=6), min_size=1, max_size=8)


def partial_of(values: list[float]) -> Partials:
    if not values:
        return Partials.empty(1)
    v = np.array(values)
    return Partials(
        np.array([v.min()]),
        np.array([v.max()]),
        np.array([v.sum()]),
        np.array([len(v)], dtype=np.uint32),
    )


def same(a: Partials, b: Partials) -> bool:
    if not np.array_equal(a.count, b.count):
        return False
    has = a.count > 0
    return bool(
        np.array_equal(a.min[has], b.min[has])
        and np.array_equal(a.max[has], b.max[has])
        and np.allclose(a.sum[has], b.sum[has], rtol=1e-12, atol=1e-3)
    )


@given(finite_lists=st.tuples(*(st.lists(finite, max_size=6) for _ in range(3))))
def test_merge_is_associative_and_commutative(finite_lists: tuple[list[float], ...]) -> None:
    a, b, c = (partial_of(x) for x in finite_lists)
    assert same(merge(a, b), merge(b, a))
    assert same(merge(merge(a, b), c), merge(a, merge(b, c)))
    assert same(merge(a, Partials.empty(1)), a)


@given(groups)
def test_merge_equals_brute_force(chunks: list[list[float]]) -> None:
    acc = Partials.empty(1)
    for chunk in chunks:
        acc = merge(acc, partial_of(chunk))
    everything = [v for chunk in chunks for v in chunk]
    assert same(acc, partial_of(everything))
    if everything:
        assert acc.min[0] == min(everything) and acc.max[0] == max(everything)


@given(st.lists(st.tuples(st.integers(0, 20), finite), max_size=200))
def test_reduce_by_key_matches_brute_force(points: list[tuple[int, float]]) -> None:
    keys = np.array([k for k, _ in points], dtype=np.int64)
    values = np.array([v for _, v in points], dtype=np.float64)
    uniq, parts = reduce_by_key(keys, values)
    assert uniq.tolist() == sorted({k for k, _ in points})
    for i, k in enumerate(uniq.tolist()):
        vals = values[keys == k]
        assert parts.min[i] == vals.min() and parts.max[i] == vals.max()
        assert parts.count[i] == len(vals)
        assert np.isclose(parts.sum[i], vals.sum(), rtol=1e-12, atol=1e-3)


@given(st.lists(st.tuples(st.integers(0, 5), finite), max_size=100), st.integers(1, 4))
def test_partials_regroup_exactly(points: list[tuple[int, float]], factor: int) -> None:
    """Reducing raw values by a fine key, then partials by a coarse key, equals reducing once."""
    keys = np.array([k for k, _ in points], dtype=np.int64)
    values = np.array([v for _, v in points], dtype=np.float64)
    fine_keys, fine = reduce_by_key(keys, values)
    coarse_keys, coarse = reduce_partials_by_key(fine_keys // factor, fine)
    direct_keys, direct = reduce_by_key(keys // factor, values)
    assert np.array_equal(coarse_keys, direct_keys)
    assert same(coarse, direct)


@given(st.lists(st.lists(finite, max_size=3), min_size=6, max_size=6))
def test_restep_and_summarize_match_brute_force(minutes: list[list[float]]) -> None:
    block = [partial_of(m) for m in minutes]
    parts = Partials(
        np.array([[p.min[0] for p in block]]),
        np.array([[p.max[0] for p in block]]),
        np.array([[p.sum[0] for p in block]]),
        np.array([[p.count[0] for p in block]]),
    )
    stepped = restep(parts, 3)
    for b in range(2):
        expect = partial_of([v for m in minutes[3 * b : 3 * b + 3] for v in m])
        got = Partials(stepped.min[:, b], stepped.max[:, b], stepped.sum[:, b], stepped.count[:, b])
        assert same(got, expect)
    total = summarize(parts)
    assert same(total, partial_of([v for m in minutes for v in m]))


def test_minute_of_is_floor_and_half_open() -> None:
    ts = np.array([0.0, 59.999, 60.0, -0.5, 1764000059.9, 1764000060.0])
    assert minute_of(ts).tolist() == [0, 0, 1, -1, 29400000, 29400001]


def test_point_batch_arrow_round_trip() -> None:
    b = PointBatch.from_names(["a", "b", "a"], ["x", "x", "y"], [1.0, 2.0, 3.0], [0.5, 1.5, -2.0])
    back = PointBatch.from_arrow(b.to_arrow())
    assert back.server_names[back.server_codes].tolist() == ["a", "b", "a"]
    assert back.metric_names[back.metric_codes].tolist() == ["x", "x", "y"]
    assert back.value.tolist() == [0.5, 1.5, -2.0]
    assert len(back) == 3 and b.nbytes == 3 * (4 + 4 + 8 + 8)


def test_avg_is_nan_for_empty() -> None:
    p = Partials(
        np.array([1.0, 0.0]),
        np.array([3.0, 0.0]),
        np.array([4.0, 0.0]),
        np.array([2, 0], dtype=np.uint32),
    )
    lo, hi, avg = p.masked()
    assert avg[0] == 2.0 and np.isnan(avg[1]) and np.isnan(lo[1]) and np.isnan(hi[1])


def test_a_compacted_batch_keeps_its_points_and_only_the_names_they_use() -> None:
    batch = PointBatch.from_names(
        ["a", "b", "c", "b", "a"], ["x", "y", "x", "z", "y"], [1, 2, 3, 4, 5], [10, 20, 30, 40, 50]
    )
    kept = batch.take(np.array([False, True, False, True, False])).compacted()
    assert kept.server_names.tolist() == ["b"] and kept.metric_names.tolist() == ["y", "z"]
    servers = kept.server_names[kept.server_codes].tolist()
    pairs = list(zip(servers, kept.metric_names[kept.metric_codes].tolist(), strict=True))
    assert pairs == [("b", "y"), ("b", "z")]
    assert kept.ts.tolist() == [2, 4] and kept.value.tolist() == [20, 40]
    assert batch.compacted().server_names is batch.server_names  # nothing to drop
    empty = batch.take(np.zeros(5, dtype=bool)).compacted()
    assert len(empty) == 0 and len(empty.server_names) == 0
