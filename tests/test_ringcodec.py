"""The block codec: every full entry back bit for bit, whatever the floats and counts."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minutely import ringcodec
from minutely.model import Partials, merge

SPECIAL = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308,
           np.inf, -np.inf, np.nan, 0.1, 0.3, 1 / 3, 2.0**62, 2.0**63, -(2.0**70)]  # fmt: skip


def same_bits(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> bool:
    return bool((a.view(np.uint64) == b.view(np.uint64)).all())


def round_trip(parts: Partials) -> Partials:
    enc = ringcodec.encode(parts)
    out = Partials.zeros(parts.count.shape)
    ringcodec.decode(ringcodec.padded(enc.data), enc.offset, enc.fmt, parts.count.shape[1], out)
    return out


def assert_exact(got: Partials, want: Partials) -> None:
    full = want.count > 0
    np.testing.assert_array_equal(got.count, want.count)
    for g, w in zip(got.fields()[:3], want.fields()[:3], strict=True):
        assert same_bits(g[full], w[full])


@st.composite
def counters(
    draw: st.DrawFn, shape: tuple[int, int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Counter-like min, max and sum: climbing at a drawn rate with jitter, with resets
    and starts anywhere up to 2^62 (where the integer transforms wrap), in decimals."""
    rows = shape[0]
    d = draw(st.integers(0, 3))
    start = draw(hnp.arrays(np.int64, (rows, 1), elements=st.integers(0, 2**62)))
    rate = draw(st.integers(0, 10**9))
    step = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 2 * rate + 1)))
    climb = start + np.cumsum(step * 60, axis=1, dtype=np.int64)
    resets = draw(hnp.arrays(np.bool_, shape, elements=st.sampled_from([False] * 9 + [True])))
    for i in range(rows):  # back to (near) zero at each reset, climbing again from there
        for t in np.flatnonzero(resets[i]):
            climb[i, t:] -= climb[i, t] - step[i, t]
    jitter = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, rate // 10 + 1)))
    mx = climb / 10.0**d
    mn = (climb - step * 59 - jitter) / 10.0**d
    noise = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.5, -1e-3])))
    return mn, mx, (mn + mx) * 30 + noise


@st.composite
def smooth(
    draw: st.DrawFn, shape: tuple[int, int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Min, max and sum along a drawn cubic with a little noise and the odd spike, so that
    streams take differences of each order and exceptions, in decimals."""
    d = draw(st.integers(0, 3))
    coef = draw(hnp.arrays(np.int64, (shape[0], 4), elements=st.integers(-(10**4), 10**4)))
    t = np.arange(shape[1], dtype=np.int64)
    curve = coef[:, :1] * 10**9 + coef[:, 1:2] * t * 10**4 + coef[:, 2:3] * t**2 * 10
    curve += coef[:, 3:] * t**3
    noise = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 3)))
    spikes = draw(hnp.arrays(np.bool_, shape, elements=st.sampled_from([False] * 15 + [True])))
    spike = draw(st.integers(1, 2**40))
    mx = (curve + noise + spikes * spike) / 10.0**d
    mn = (curve - noise) / 10.0**d
    return mn, mx, (mn + mx) * 30


@st.composite
def blocks(draw: st.DrawFn) -> Partials:
    """Blocks mixing decimal rows (with float-accumulated sums), adversarial floats and
    counts from 0 to 2^32 − 1."""
    rows = draw(st.integers(1, 4))
    n = draw(st.integers(1, 70))
    shape = (rows, n)
    kind = draw(st.sampled_from(["decimal", "floats", "mixed", "counter", "smooth"]))
    if kind == "counter":
        mn, mx, sm = draw(counters(shape))
    elif kind == "smooth":
        mn, mx, sm = draw(smooth(shape))
    elif kind == "floats":
        floats = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_subnormal=True))
        mn = draw(hnp.arrays(np.float64, shape, elements=floats))
        mx = draw(hnp.arrays(np.float64, shape, elements=floats))
        sm = draw(hnp.arrays(np.float64, shape, elements=floats))
    else:
        d = draw(st.integers(0, 14))
        ints = st.integers(-(2**55), 2**55) if kind == "mixed" else st.integers(-(10**6), 10**6)
        factor = draw(st.sampled_from([1, 1, 7, 4096]))
        a = draw(hnp.arrays(np.int64, shape, elements=ints)) * factor / 10.0**d
        span = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1000)))
        mn, mx = a, a + span / 10.0**d
        noise = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1e-9, -3e-7])))
        sm = (mn + mx) * 30 + noise
    counts = st.one_of(st.sampled_from([0, 1, 59, 60, 2**32 - 1]), st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        ct = np.full(shape, draw(counts), np.uint32)
        ct[draw(hnp.arrays(np.bool_, shape))] = 0
    else:
        ct = draw(hnp.arrays(np.uint32, shape, elements=counts))
    return Partials(mn, mx, sm, ct)


@settings(max_examples=300, deadline=None)
@given(blocks())
def test_round_trip_is_bit_exact(parts: Partials) -> None:
    assert_exact(round_trip(parts), parts)


@settings(max_examples=100, deadline=None)
@given(blocks())
def test_summary_merges_each_row(parts: Partials) -> None:
    enc = ringcodec.encode(parts)
    full = parts.count > 0
    for i in range(parts.count.shape[0]):
        f = full[i]
        assert int(enc.summary.count[i]) == int(parts.count[i].sum(dtype=np.uint64)) % 2**32
        if not f.any():
            assert enc.fmt[i] == ringcodec.EMPTY and enc.length[i] == 0
            continue
        total = 0.0
        for v in parts.sum[i][f]:
            total += float(v)
        assert same_bits(np.array([enc.summary.sum[i]]), np.array([total]))
        if not np.isnan(parts.min[i][f]).any():
            assert enc.summary.min[i] == parts.min[i][f].min()
        if not np.isnan(parts.max[i][f]).any():
            assert enc.summary.max[i] == parts.max[i][f].max()


def test_each_kind_of_row_takes_its_format() -> None:
    n = 60
    rng = np.random.default_rng(3)
    gauge = np.round(rng.uniform(0, 100, n), 2)
    noisy = rng.normal(size=n)
    mn = np.stack([gauge, np.round(gauge * 1000), noisy, gauge, np.zeros(n)])
    mx = np.round(mn + 1.0, 2)
    mx[2] = mn[2] + 1.0
    sm = (mn + mx) * 30
    sm[3] = 1e300  # a sum too large for int64 at 10^2
    ct = np.full(mn.shape, 60, np.uint32)
    ct[4] = 0
    parts = Partials(mn, mx, sm, ct)
    enc = ringcodec.encode(parts)
    assert enc.fmt.tolist() == [
        ringcodec.DECIMAL,
        ringcodec.DECIMAL,
        ringcodec.BITS,
        ringcodec.DECIMAL_MINMAX,
        ringcodec.EMPTY,
    ]
    assert_exact(round_trip(parts), parts)


def test_negative_zero_and_subnormals_come_back() -> None:
    mn = np.array([[-0.0, 0.0, 5e-324, -0.0]])
    mx = np.array([[0.0, -0.0, 1e-310, 1e308]])
    sm = np.array([[-0.0, 0.0, 5e-324, -1e308]])
    parts = Partials(mn, mx, sm, np.array([[1, 2, 3, 4]], np.uint32))
    assert_exact(round_trip(parts), parts)


def test_a_constant_series_costs_a_few_bytes() -> None:
    n = 360
    parts = Partials(np.full((1, n), 16.0), np.full((1, n), 16.0),
                     np.full((1, n), 960.0), np.full((1, n), 60, np.uint32))  # fmt: skip
    enc = ringcodec.encode(parts)
    assert int(enc.length[0]) <= 16
    assert_exact(round_trip(parts), parts)


def test_a_counter_takes_its_rate_and_comes_back() -> None:
    """A counter's max goes as differences and its min relative to the rate, fewer bytes
    than the max and min as they are; exact through short minutes, gaps and resets (a
    gap or a reset is an outlier difference, so such a block may keep the plain streams)."""
    rng = np.random.default_rng(5)
    n = 360
    t = np.arange(n + 1) * 60.0
    rate = 5000 * (1 + 0.3 * np.sin(t / 3000))
    climb = np.rint(7e12 + np.cumsum(rate * 60) + rng.uniform(0, 300, n + 1))
    mx = climb[1:].reshape(1, n)
    mn = np.rint(climb[:-1] + rate[1:] + rng.uniform(0, 300, n)).reshape(1, n)
    ct = np.full((1, n), 60, np.uint32)
    ct[0, 90] = 59
    sm = np.rint((mn + mx) * 30 + rng.uniform(-5000, 5000, (1, n)))
    parts = Partials(mn, mx, sm, ct)
    enc = ringcodec.encode(parts)
    variant = int(enc.data[enc.offset[0] + 1])
    want = ringcodec.MIN_AFTER_MAX | ringcodec.MIN_AT_RATE
    assert enc.fmt[0] == ringcodec.DECIMAL and variant == want
    first = int(mn[0, 0] - mx[0, 0])  # N[0] − X[0], a zigzag varint after e and variant
    at = int(enc.offset[0]) + 2 + max(1, -(-((first << 1) ^ (first >> 63)).bit_length() // 7))
    mode, flags = int(enc.data[at]), int(enc.data[at + 1])
    assert mode & 128 and flags & 3 >= 1  # the max's stream is stored as differences
    assert int(enc.length[0]) <= 3000  # 3,398 B as plain streams, most of both in the sum
    assert_exact(round_trip(parts), parts)
    reset = Partials(*(f.copy() for f in parts.fields()))
    reset.count[0, 50:55] = 0
    reset.max[0, 200:] -= reset.max[0, 200] - 1234
    reset.min[0, 200:] -= reset.min[0, 200] - 17
    reset.sum[0, 200:] = (reset.min[0, 200:] + reset.max[0, 200:]) * 30
    assert_exact(round_trip(reset), reset)


def reference(parts: Partials, lo: int, hi: int, shift: int, step: int, out: Partials) -> None:
    """Merge minutes ``[lo, hi)`` into ``out``'s buckets one entry at a time, in order."""
    for i in range(parts.count.shape[0]):
        for t in range(lo, hi):
            if parts.count[i, t] == 0:
                continue
            b = (shift + t - lo) // step
            one = Partials(*(np.array([f[i, t]]) for f in parts.fields()))
            cell = Partials(*(np.array([f[i, b]]) for f in out.fields()))
            merged = merge(cell, one)
            for dst, src in zip(out.fields(), merged.fields(), strict=True):
                dst[i, b] = src[0]


def decode_window(enc: ringcodec.Encoded, n: int, lo: int, hi: int) -> Partials:
    """Row 0's minutes ``[lo, hi)`` decoded alone into zeros."""
    out = Partials.zeros((1, n))
    ringcodec.decode_jobs(
        ringcodec.padded(enc.data), enc.offset[:1], enc.fmt[:1], np.array([n]),
        np.array([lo]), np.array([hi]), np.array([0]), np.array([0]), 1, *out.fields(),
    )  # fmt: skip
    return out


def test_a_spike_is_an_exception_not_a_wider_stream() -> None:
    """Two spikes among values that fit 2 bits: the max's stream packs at its narrow width
    and patches the spikes in, so the blob stays small; every window, whether it takes the
    spikes or stops short of them, comes back exactly."""
    rng = np.random.default_rng(3)
    n = 360
    mx = (50 + rng.integers(0, 4, n)).astype(np.float64)
    mx[100] = 1e6
    mx[300] = 7e5
    mn = mx - rng.integers(0, 4, n)
    parts = Partials(mn.reshape(1, n), mx.reshape(1, n), np.full((1, n), 3000.0),
                     np.full((1, n), 60, np.uint32))  # fmt: skip
    enc = ringcodec.encode(parts)
    mode, flags = (int(v) for v in enc.data[enc.offset[0] + 2 : enc.offset[0] + 4])
    assert mode & 128 and flags & 4 and mode & 127 <= 2  # the max's stream: exceptions
    assert int(enc.length[0]) < 300  # 20 bits a minute (over 900 B) for the max alone
    assert_exact(round_trip(parts), parts)
    for lo, hi in ((0, 100), (0, 101), (99, 301), (101, 300), (250, 360), (300, 301)):
        got = decode_window(enc, n, lo, hi)
        assert same_bits(got.max[0, lo:hi], mx[lo:hi])
        assert same_bits(got.min[0, lo:hi], mn[lo:hi])
        assert (got.count[0, :lo] == 0).all() and (got.count[0, hi:] == 0).all()


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_a_stream_takes_the_order_of_differences_that_makes_it_smallest(order: int) -> None:
    """A max along a polynomial of degree ``order`` (with a bit of noise on top) is stored
    as its differences of that order, where what is left is the noise; exact whole and
    through windows, which must sum the differences back up to where they start."""
    rng = np.random.default_rng(order)
    n = 360
    t = np.arange(n, dtype=np.float64)
    curve = [1e9 + 0 * t, 1e9 + 7_000 * t, 1e9 + 30 * t**2, 1e9 + t**3][order]
    mx = curve + rng.integers(0, 4, n)
    parts = Partials(mx.reshape(1, n), mx.reshape(1, n), (mx * 60).reshape(1, n),
                     np.full((1, n), 60, np.uint32))  # fmt: skip
    enc = ringcodec.encode(parts)
    mode, flags = (int(v) for v in enc.data[enc.offset[0] + 2 : enc.offset[0] + 4])
    assert (flags & 3 if mode & 128 else 0) == order
    assert_exact(round_trip(parts), parts)
    for lo, hi in ((0, 1), (0, 2), (1, 3), (2, 5), (3, 4), (170, 360)):
        got = decode_window(enc, n, lo, hi)
        assert same_bits(got.max[0, lo:hi], mx[lo:hi])


def fold_seconds(seconds: npt.NDArray[np.float64], ct: npt.NDArray[np.uint32]) -> Partials:
    """One series' ``(minutes, 60)`` seconds as minute partials, each sum accumulated point
    after point as the ring does; ``ct`` (``(1, minutes)``) marks the empty minutes."""
    n = seconds.shape[0]
    sm = np.zeros(n)
    for t in range(n):
        for v in seconds[t]:
            sm[t] += v
    return Partials(seconds.min(axis=1).reshape(1, n), seconds.max(axis=1).reshape(1, n),
                    sm.reshape(1, n), ct)  # fmt: skip


def test_a_noisy_gauges_sum_is_kept_as_is() -> None:
    """A percentage near 0 with noise, clipped there as an idle CPU's is: its minimum is
    mostly 0 and its maximum one noisy second, so its sum is nearer the next minute's than
    its own minute's midpoint; the blob keeps the sum as it is and comes back exactly,
    across empty minutes, whole and through windows."""
    rng = np.random.default_rng(11)
    n = 360
    seconds = np.round(np.maximum(0, 1 + rng.triangular(-5, 0, 5, n * 60)), 2)
    ct = np.full((1, n), 60, np.uint32)
    ct[0, [0, 7, 8, 200]] = 0
    parts = fold_seconds(seconds.reshape(n, 60), ct)
    sm = parts.sum[0]
    enc = ringcodec.encode(parts)
    assert enc.fmt[0] == ringcodec.DECIMAL
    assert int(enc.data[enc.offset[0] + 1]) & ringcodec.SUM_AS_IS
    assert_exact(round_trip(parts), parts)
    for lo, hi in ((0, 9), (8, 9), (9, 201), (150, 360)):
        got = decode_window(enc, n, lo, hi)
        full = parts.count[0, lo:hi] > 0
        assert same_bits(got.sum[0, lo:hi][full], sm[lo:hi][full])


def test_a_skewed_gauges_extremes_go_around_its_mean() -> None:
    """A level on a wave under skewed noise (exponential: a queue's or a busy CPU's long
    excursions up): its sum is a steadier guide than its extremes, so the blob keeps the
    sum as it is and the max and min less the minute's mean (the sum over the count);
    exact whole and through windows, empty minutes included."""
    rng = np.random.default_rng(12)
    n = 360
    level = 50 + 10 * np.sin(np.arange(n) / 40)
    seconds = np.round(level[:, None] + rng.exponential(1.0, (n, 60)), 2)
    ct = np.full((1, n), 60, np.uint32)
    ct[0, [5, 6, 300]] = 0
    parts = fold_seconds(seconds, ct)
    enc = ringcodec.encode(parts)
    assert enc.fmt[0] == ringcodec.DECIMAL
    variant = int(enc.data[enc.offset[0] + 1])
    assert variant == ringcodec.AROUND_MEAN | ringcodec.SUM_AS_IS
    assert_exact(round_trip(parts), parts)
    for lo, hi in ((0, 7), (6, 7), (7, 301), (299, 360)):
        got = decode_window(enc, n, lo, hi)
        full = parts.count[0, lo:hi] > 0
        for g, w in zip(got.fields()[:3], parts.fields()[:3], strict=True):
            assert same_bits(g[0, lo:hi][full], w[0, lo:hi][full])


def test_memory_in_pages_packs_by_its_factor() -> None:
    """Values whose differences share a factor (bytes in 4,096-byte pages) pack the
    quotients: a fraction of the bits the differences themselves would take."""
    rng = np.random.default_rng(7)
    pages = 8_000_000 + np.cumsum(rng.integers(-64, 65, (1, 61)), axis=1)
    mn = pages[:, :60] * 4096.0
    mx = mn + rng.integers(0, 64, (1, 60)) * 4096.0
    sm = (mn + mx) * 30
    parts = Partials(mn, mx, sm, np.full((1, 60), 60, np.uint32))
    enc = ringcodec.encode(parts)
    assert enc.fmt[0] == ringcodec.DECIMAL
    assert int(enc.length[0]) < 60 * 3  # under 3 B a minute; without the factor, over 4.5
    assert_exact(round_trip(parts), parts)


@settings(max_examples=100, deadline=None)
@given(blocks(), st.data())
def test_windows_and_steps_merge_into_what_out_holds(parts: Partials, data: st.DataObject) -> None:
    """A window ``[lo, hi)`` of each blob, in buckets of ``step`` minutes, merged into a block
    that holds data already, equals merging minute by minute in order (the reference below,
    one entry at a time as ``model.merge`` defines it)."""
    rows, n = parts.count.shape
    finite = [np.where(np.isfinite(f), f, 1.5) for f in parts.fields()[:3]]
    parts = Partials(*finite, parts.count)  # merging NaN is the ring's question, not the codec's
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    step = data.draw(st.integers(1, 7))
    shift = data.draw(st.integers(0, step - 1))  # where the window starts in its bucket
    buckets = (shift + hi - lo + step - 1) // step
    shape = (rows, buckets)
    base = Partials(np.full(shape, -1.0), np.full(shape, 9.0), np.full(shape, 0.5),
                    np.full(shape, 3, np.uint32))  # fmt: skip
    base.count[:, 0] = 0
    want = Partials(*(f.copy() for f in base.fields()))
    with np.errstate(all="ignore"):
        reference(parts, lo, hi, shift, step, want)
    enc = ringcodec.encode(parts)
    out = Partials(*(f.copy() for f in base.fields()))
    k = rows
    with np.errstate(all="ignore"):
        ringcodec.decode_jobs(
            ringcodec.padded(enc.data), enc.offset, enc.fmt, np.full(k, n, np.int64),
            np.full(k, lo, np.int64), np.full(k, hi, np.int64), np.arange(k, dtype=np.int64),
            np.full(k, shift - lo, np.int64), step, *out.fields(),
        )  # fmt: skip
    np.testing.assert_array_equal(out.count, want.count)
    has = want.count > 0
    for g, w in zip(out.fields()[:3], want.fields()[:3], strict=True):
        np.testing.assert_array_equal(g[has], w[has])


def test_step_one_keeps_what_out_holds_where_a_minute_is_empty() -> None:
    """At step 1 every cell is written back, empty minutes included: those must keep their
    bits, full ones merge into held cells and replace empty ones."""
    rng = np.random.default_rng(11)
    rows, n = 3, 70
    mn = np.round(rng.uniform(-50, 50, (rows, n)), 2)
    mx = mn + np.round(rng.uniform(0, 5, (rows, n)), 2)
    ct = rng.choice(np.array([0, 1, 60], np.uint32), (rows, n))
    parts = Partials(mn, mx, (mn + mx) * 30, ct)
    some = rng.choice(np.array([0, 2], np.uint32), (rows, n))
    held = Partials(np.full((rows, n), -7.25), np.full((rows, n), 99.5),
                    np.full((rows, n), 0.1), some)  # fmt: skip
    want = Partials(*(f.copy() for f in held.fields()))
    reference(parts, 0, n, 0, 1, want)
    out = Partials(*(f.copy() for f in held.fields()))
    enc = ringcodec.encode(parts)
    ringcodec.decode(ringcodec.padded(enc.data), enc.offset, enc.fmt, n, out)
    np.testing.assert_array_equal(out.count, want.count)
    for g, w in zip(out.fields()[:3], want.fields()[:3], strict=True):
        assert same_bits(g, w)


def near_midpoints(rng: np.random.Generator, e: int, k: int) -> npt.NDArray[np.float64]:
    """Whole numbers ``a`` whose ``a / 10^e`` lies as near as they come to a midpoint between
    two float64 (where a quotient off by a hair rounds the other way), and their neighbours."""
    half_ulps = rng.integers(2**53, 2**54, k) | 1  # odd: the midpoints themselves
    a = np.concatenate([np.rint(half_ulps * 2.0**j * 10.0**e) for j in range(-75, 10)])
    a = a[(a >= 1) & (a < 2**62)]
    return np.concatenate([a - 1, a, a + 1, -a])


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**63) + 1, 2**63 - 1), st.integers(1, ringcodec.MAX_DECIMALS))
def test_divide_pow10_is_the_division(a: int, e: int) -> None:
    x = np.array([float(a)])
    assert same_bits(ringcodec.divide_pow10(x, e), x / 10.0**e)


def test_divide_pow10_is_the_division_at_every_exponent() -> None:
    """Every number of decimals, over every magnitude up to 2^62 and next to the midpoints,
    where a product by ``1 / 10^e`` alone is off in about a quarter of the cases."""
    rng = np.random.default_rng(13)
    for e in range(1, ringcodec.MAX_DECIMALS + 1):
        bits = rng.integers(0, 63, 200_000)
        spread = np.floor(rng.random(200_000) * 2.0**bits)  # every magnitude alike
        x = np.concatenate([spread, -spread[spread > 0], near_midpoints(rng, e, 2_000), [0.0]])
        assert same_bits(ringcodec.divide_pow10(x, e), x / 10.0**e), e


@pytest.mark.parametrize("e", range(ringcodec.MAX_DECIMALS + 1))
def test_each_number_of_decimals_comes_back(e: int) -> None:
    """Decimals at each exponent, sums accumulated in float64 as the ring folds them (so
    rarely decimals themselves): the decoder's divisions give every bit back."""
    rng = np.random.default_rng(e)
    rows, n = 6, 360
    scale = [10, 10**6, 10**9, 2**40, 2**52, 2**60]
    ints = np.stack([rng.integers(-s, s, n) for s in scale])
    span = rng.integers(0, 50, (rows, n))
    mn, mx = ints / 10.0**e, (ints + span) / 10.0**e
    for v in (mn, mx):  # keep the decimals float64 holds as such
        v[np.rint(v * 10.0**e) / 10.0**e != v] = 0.0
    sm = mn * 7 + mx * 8 + rng.choice([0.0, 1e-7, 3.3], (rows, n))
    parts = Partials(mn, mx, sm, np.full((rows, n), 15, np.uint32))
    enc = ringcodec.encode(parts)
    assert (enc.fmt != ringcodec.BITS).any()
    assert int(enc.data[enc.offset[0]]) == e  # the smallest decimals that fit
    assert_exact(round_trip(parts), parts)


@pytest.mark.parametrize("factor", [1, 4096])
@pytest.mark.parametrize("w", range(65))
def test_every_width_comes_back(w: int, factor: int) -> None:
    """Raw bit patterns spanning exactly ``w`` bits (times a common factor), so the max's
    stream packs at each width from 0 to 64, at lengths that end mid-group of eight; whole
    and through windows."""
    rng = np.random.default_rng(w)
    for n in (1, 7, 8, 9, 61, 360):
        span = np.uint64(2**w - 1)
        r = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True) & span
        r[:3] = np.array([0, span, 1], np.uint64)[:n] & span  # gcd 1, the whole span
        if factor > 1 and w <= 50:
            r = r * np.uint64(factor)
        bits = (r + np.uint64(2**62 if w < 62 else 0)).view(np.float64)
        finite = bool(np.isfinite(bits).all())
        mx = np.where(np.isfinite(bits), bits, 1.5).reshape(1, n)  # patterns are any floats
        parts = Partials(mx, mx, mx, np.full((1, n), 3, np.uint32))
        enc = ringcodec.encode(parts)
        if n == 360 and finite and w > 0:
            assert enc.fmt[0] == ringcodec.BITS
            mode = int(enc.data[enc.offset[0] + 2])  # the max's stream, after e and variant
            assert mode == (65 + w if factor > 1 and w <= 50 else w)
        assert_exact(round_trip(parts), parts)
        lo, hi = n // 3, n - n // 4
        out = Partials.zeros((1, n))
        ringcodec.decode_jobs(
            ringcodec.padded(enc.data), enc.offset, enc.fmt, np.array([n]), np.array([lo]),
            np.array([hi]), np.array([0]), np.array([0]), 1, *out.fields(),
        )  # fmt: skip
        window = np.zeros(n, bool)
        window[lo:hi] = True
        assert same_bits(out.max[0][window], mx[0][window])
        assert (out.count[0][~window] == 0).all()


def garbage(shape: tuple[int, int], rng: np.random.Generator) -> Partials:
    """A block as a reused buffer holds it: any bits, NaNs and counts."""
    bits = rng.integers(0, 2**63, (3, *shape), dtype=np.int64).view(np.float64)
    return Partials(*bits.copy(), rng.integers(0, 2**32, shape, dtype=np.uint32))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_decode_blocks_overwriting_equals_merging_into_zeros(data: st.DataObject) -> None:
    """``decode_blocks`` at step 1 with ``overwrite``, into a block of garbage, leaves every
    cell of each group's rows and columns as merging into a zeroed block does, all four
    fields bit for bit (empty minutes, ``EMPTY`` blobs, series a block does not hold, minutes
    between and around blocks, windows cutting blocks), and no other cell changes."""
    draw = data.draw
    start, kept, table = draw(st.integers(0, 5)), [], []
    for _ in range(draw(st.integers(0, 3))):
        parts = draw(blocks())
        parts.count[draw(hnp.arrays(np.bool_, parts.count.shape[0]))] = 0  # EMPTY blobs
        enc = ringcodec.encode(parts)
        arena = ringcodec.padded(enc.data)
        kept.append((arena, enc))  # the table holds their addresses
        rows, n = parts.count.shape
        row = np.zeros(ringcodec.TABLE_COLUMNS, np.int64)
        row[ringcodec.T_ARENA] = arena.ctypes.data
        row[ringcodec.T_BYTES] = arena.shape[0]
        row[ringcodec.T_OFFSET] = enc.offset.ctypes.data
        row[ringcodec.T_FMT] = enc.fmt.ctypes.data
        row[ringcodec.T_ROWS] = rows
        row[ringcodec.T_N] = n
        table.append((start, row))
        start += n + draw(st.integers(0, 4))  # minutes no block holds between blocks
    span = start + draw(st.integers(0, 4))
    order = draw(st.permutations(range(12)))  # out rows, disjoint between groups
    groups, pieces, series, at = [], [], [], 0
    for _ in range(draw(st.integers(1, 3))):
        lo = draw(st.integers(0, span))
        hi = draw(st.integers(lo, span))
        k0 = len(pieces)
        for s, row in table:
            a, e = max(lo, s), min(hi, s + int(row[ringcodec.T_N]))
            if a < e:
                piece = row.copy()
                piece[ringcodec.T_LO], piece[ringcodec.T_HI] = a - s, e - s
                piece[ringcodec.T_COL0] = s
                pieces.append(piece)
        ids = draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))
        groups.append([at, at + len(ids), k0, len(pieces), lo, hi])
        series += ids
        at += len(ids)
    table_arr = np.array(pieces, np.int64).reshape(-1, ringcodec.TABLE_COLUMNS)
    group_arr = np.array(groups, np.int64)
    ids_arr = np.array(series, np.int64)
    rows_arr = np.array(order[:at], np.int64)
    want = Partials.zeros((12, span))
    ringcodec.decode_blocks(table_arr, group_arr, ids_arr, rows_arr, 0, at, 1, *want.fields(),
                            False)  # fmt: skip
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    before = garbage((12, span), rng)
    got = Partials(*(f.copy() for f in before.fields()))
    split = draw(st.integers(0, at))  # two calls, as two threads split the rows
    for i0, i1 in ((0, split), (split, at)):
        ringcodec.decode_blocks(table_arr, group_arr, ids_arr, rows_arr, i0, i1, 1,
                                *got.fields(), True)  # fmt: skip
    written = np.zeros((12, span), np.bool_)
    for s0, s1, _, _, lo, hi in groups:
        written[rows_arr[s0:s1], lo:hi] = True
    for g, w, b in zip(got.fields(), want.fields(), before.fields(), strict=True):
        bits = np.uint32 if g.dtype == np.uint32 else np.uint64
        np.testing.assert_array_equal(g.view(bits)[written], w.view(bits)[written])
        np.testing.assert_array_equal(g.view(bits)[~written], b.view(bits)[~written])
