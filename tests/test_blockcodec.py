"""The block codec's round trip: every full entry back bit for bit, whatever the floats."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minutely import blockcodec
from minutely.model import Partials

EDGE = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308, 1.7976931348623157e308]
finite = st.floats(allow_nan=False, allow_infinity=False)
decimal = st.integers(-(10**9), 10**9).map(lambda k: k / 100)
value = st.one_of(finite, decimal, st.sampled_from(EDGE))


def roundtrip(parts: Partials, config: object = blockcodec.SMALL) -> Partials:
    arena, offset, length = blockcodec.encode(parts, config)  # type: ignore[arg-type]
    out = Partials.zeros(parts.count.shape)
    blockcodec.decode_rows(arena, offset, length, parts.count.shape[1], out)
    return out


def assert_bits_equal(got: Partials, want: Partials) -> None:
    np.testing.assert_array_equal(got.count, want.count)
    full = want.count > 0
    for g, w in zip(got.fields()[:3], want.fields()[:3], strict=True):
        np.testing.assert_array_equal(g[full].view(np.uint64), w[full].view(np.uint64))


@st.composite
def blocks(draw: st.DrawFn) -> Partials:
    rows = draw(st.integers(1, 4))
    n = draw(st.sampled_from([1, 2, 7, 60]))
    kind = draw(st.sampled_from(["any", "decimal", "constant", "counter"]))
    shape = (rows, n)
    if kind == "any":
        mn = draw(hnp.arrays(np.float64, shape, elements=value))
        mx = draw(hnp.arrays(np.float64, shape, elements=value))
        sm = draw(hnp.arrays(np.float64, shape, elements=value))
    elif kind == "decimal":
        mn = draw(hnp.arrays(np.float64, shape, elements=decimal))
        mx = mn + draw(hnp.arrays(np.float64, shape, elements=decimal.map(abs)))
        sm = mn * 60 + draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e6, 1e6)))
    elif kind == "constant":
        c = draw(value)
        mn = mx = np.full(shape, c)
        sm = np.full(shape, c)
    else:
        start = draw(st.integers(0, 2**40))
        rate = draw(st.integers(0, 10**6))
        mn = np.float64(start) + np.arange(rows * n, dtype=np.float64).reshape(shape) * rate
        mx = mn + rate
        sm = mn * 60 + rate * 30
    counts = draw(
        st.one_of(
            st.just(np.full(shape, 60, np.uint32)),
            hnp.arrays(np.uint32, shape, elements=st.integers(0, 2**32 - 1)),
            hnp.arrays(np.uint32, shape, elements=st.sampled_from([0, 1, 59, 60])),
        )
    )
    return Partials(mn, mx, sm, counts)


@given(blocks(), st.sampled_from(["FAST", "SMALL"]))
@settings(max_examples=300, deadline=None)
def test_round_trip_is_bit_exact(parts: Partials, config: str) -> None:
    assert_bits_equal(roundtrip(parts, getattr(blockcodec, config)), parts)


def test_signed_zeros_subnormals_and_extremes_come_back() -> None:
    edge = np.array(EDGE * 8)[:60]
    parts = Partials(edge, edge[::-1].copy(), -edge, np.full(60, 60, np.uint32))
    parts = parts.take(np.newaxis)
    assert_bits_equal(roundtrip(parts), parts)


def test_decimal_blocks_take_the_transform_and_are_smaller() -> None:
    rng = np.random.default_rng(0)
    v = np.round(rng.normal(50, 5, (50, 360)), 2)
    sm = np.zeros_like(v)
    for _ in range(60):  # a float sum of two-decimal values: not decimal itself
        sm += np.round(v + rng.normal(0, 0.5, v.shape), 2)
    parts = Partials(np.round(v - 1, 2), np.round(v + 1, 2), sm, np.full(v.shape, 60, np.uint32))
    arena, offset, _ = blockcodec.encode(parts)
    formats = arena[offset]
    assert (formats == blockcodec.DECIMAL).all()
    assert_bits_equal(roundtrip(parts), parts)
    # the float format on the same data, for comparison: the transform must pay for itself
    plain = Partials(parts.min + 1e-9, parts.max, sm, parts.count)
    assert (blockcodec.encode(plain)[0][blockcodec.encode(plain)[1]] == blockcodec.FLOAT).all()
    assert arena.shape[0] < 0.9 * blockcodec.encode(plain)[0].shape[0]


def test_rows_without_data_cost_nothing_and_gaps_read_empty() -> None:
    parts = Partials.zeros((3, 60))
    parts.count[1, 10:20] = 60
    parts.min[1, 10:20] = parts.max[1, 10:20] = parts.sum[1, 10:20] = 7.5
    arena, _, length = blockcodec.encode(parts)
    assert length.tolist()[0] == 0 and length.tolist()[2] == 0 and length[1] > 0
    assert arena.shape[0] == int(length.sum())
    out = roundtrip(parts)
    assert_bits_equal(out, parts)


def test_an_unknown_format_is_refused() -> None:
    parts = Partials(np.ones((1, 4)), np.ones((1, 4)), np.ones((1, 4)), np.ones((1, 4), np.uint32))
    arena, offset, length = blockcodec.encode(parts)
    arena[0] = 9
    with pytest.raises(ValueError, match="format 9"):
        blockcodec.decode_rows(arena, offset, length, 4, Partials.zeros((1, 4)))
