"""The accept rules in minutely.ingest.validate, on hand-built columns."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.ingest.validate import MAX_MAGNITUDE, Names, Numbers, format_number, validate
from tests.ingest import helpers

NOW = 1_764_000_000.0
OLDEST = NOW - 2 * 86400
LIMITS: dict[str, Any] = {"now": NOW, "oldest": OLDEST, "max_future": 300.0}


def names(values: list[str | None]) -> Names:
    distinct = sorted({v for v in values if v is not None})
    code = {name: i for i, name in enumerate(distinct)}
    codes = np.array([-1 if v is None else code[v] for v in values], dtype=np.int32)
    return Names(np.array(distinct, dtype=object), codes)


def numbers(values: list[float | None]) -> Numbers:
    present = np.array([v is not None for v in values], dtype=np.bool_)
    raw = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return Numbers(raw, present)


def run(
    server: list[str | None],
    metric: list[str | None],
    ts: list[float | None],
    value: list[float | None],
    max_errors: int = 100,
) -> tuple[list[tuple[str, str, float, float]], list[tuple[int, str]], int]:
    d = validate(
        names(server), names(metric), numbers(ts), numbers(value), max_errors=max_errors, **LIMITS
    )
    assert d.accepted == len(d.batch)
    return helpers.rows(d), helpers.reasons(d), d.rejected


def test_all_good_points_are_kept_as_they_are() -> None:
    rows, errors, rejected = run(["a", "b"], ["m", "m"], [NOW, NOW - 60], [1.5, -2.0])
    assert rows == [("a", "m", NOW, 1.5), ("b", "m", NOW - 60, -2.0)]
    assert errors == []
    assert rejected == 0


def test_all_good_shares_the_decoded_arrays() -> None:
    ts = numbers([NOW, NOW])
    value = numbers([1.0, 2.0])
    d = validate(names(["a", "a"]), names(["m", "m"]), ts, value, max_errors=10, **LIMITS)
    assert d.batch.ts is ts.values
    assert d.batch.value is value.values


@pytest.mark.parametrize(
    ("server", "metric", "ts", "value", "reason"),
    [
        (None, "m", NOW, 1.0, "server: missing or empty"),
        ("", "m", NOW, 1.0, "server: missing or empty"),
        ("a", None, NOW, 1.0, "metric: missing or empty"),
        ("a", "", NOW, 1.0, "metric: missing or empty"),
        ("a", "m", None, 1.0, "ts: missing"),
        ("a", "m", math.nan, 1.0, "ts: not finite (nan)"),
        ("a", "m", math.inf, 1.0, "ts: not finite (inf)"),
        (
            "a",
            "m",
            1_700_000_000,
            1.0,
            "ts: 1700000000 is older than the hot window (oldest accepted 1763827200)",
        ),
        (
            "a",
            "m",
            OLDEST - 0.5,
            1.0,
            "ts: 1763827199.5 is older than the hot window (oldest accepted 1763827200)",
        ),
        ("a", "m", NOW + 301, 1.0, "ts: 1764000301 is more than 300s ahead of the server clock"),
        ("a", "m", NOW, None, "value: missing"),
        ("a", "m", NOW, math.nan, "value: not finite (nan)"),
        ("a", "m", NOW, -math.inf, "value: not finite (-inf)"),
    ],
)
def test_each_reason(
    server: str | None, metric: str | None, ts: float | None, value: float | None, reason: str
) -> None:
    rows, errors, rejected = run(["ok", server], ["ok", metric], [NOW, ts], [0.0, value])
    assert rows == [("ok", "ok", NOW, 0.0)]
    assert errors == [(1, reason)]
    assert rejected == 1


def test_one_reason_for_the_first_failing_field() -> None:
    _, errors, _ = run(
        ["", "a", "a", "a"],
        [None, "", "m", "m"],
        [None, math.nan, 1.0, NOW],
        [math.nan, None, None, math.inf],
    )
    assert [r for _, r in errors] == [
        "server: missing or empty",
        "metric: missing or empty",
        "ts: 1 is older than the hot window (oldest accepted 1763827200)",
        "value: not finite (inf)",
    ]


def test_window_edges_are_inclusive() -> None:
    rows, errors, _ = run(["a"] * 2, ["m"] * 2, [OLDEST, NOW + 300], [1.0, 2.0])
    assert errors == []
    assert [r[2] for r in rows] == [OLDEST, NOW + 300]


def test_error_cap_counts_every_rejected_point() -> None:
    n = 250
    ts: list[float | None] = [NOW if i % 2 else None for i in range(n)]
    rows, errors, rejected = run(["a"] * n, ["m"] * n, ts, [1.0] * n, max_errors=7)
    assert len(rows) == n // 2
    assert rejected == n // 2
    assert [i for i, _ in errors] == [0, 2, 4, 6, 8, 10, 12]


def test_zero_max_errors_lists_nothing() -> None:
    _, errors, rejected = run([None, None], ["m", "m"], [NOW, NOW], [1.0, 1.0], max_errors=0)
    assert (errors, rejected) == ([], 2)


def test_empty_names_are_dropped_from_the_batch() -> None:
    d = validate(
        Names(np.array(["", "b", "a"], dtype=object), np.array([0, 1, 2, 1], dtype=np.int32)),
        names(["m"] * 4),
        numbers([NOW] * 4),
        numbers([1.0, 2.0, 3.0, 4.0]),
        max_errors=10,
        **LIMITS,
    )
    assert d.batch.server_names.tolist() == ["b", "a"]
    assert d.batch.server_codes.tolist() == [0, 1, 0]
    assert d.batch.server_codes.dtype == np.int32
    assert d.batch.value.tolist() == [2.0, 3.0, 4.0]


def test_empty_input() -> None:
    rows, errors, rejected = run([], [], [], [])
    assert (rows, errors, rejected) == ([], [], 0)


def test_explain_overrides_the_generic_reason_only_when_it_answers() -> None:
    def explain(field: str, i: int) -> str | None:
        return "point is not an object" if i == 0 else None

    d = validate(
        names([None, None]),
        names(["m", "m"]),
        numbers([NOW, NOW]),
        numbers([1.0, 1.0]),
        max_errors=10,
        explain=explain,
        **LIMITS,
    )
    assert [e.reason for e in d.errors] == ["point is not an object", "server: missing or empty"]


def test_format_number() -> None:
    assert format_number(1764000000.0) == "1764000000"
    assert format_number(12.5) == "12.5"
    assert format_number(math.nan) == "nan"
    assert format_number(-math.inf) == "-inf"
    assert format_number(1e300) == "1e+300"


point = st.tuples(
    st.sampled_from(["a", "b", "", None]),
    st.sampled_from(["m", "n", "", None]),
    st.one_of(
        st.none(),
        st.floats(OLDEST - 100, NOW + 400),
        st.sampled_from([math.nan, math.inf, OLDEST, NOW + 300]),
    ),
    st.one_of(
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([-MAX_MAGNITUDE, MAX_MAGNITUDE, math.nextafter(MAX_MAGNITUDE, math.inf)]),
    ),
)


@settings(deadline=None)
@given(st.lists(point, max_size=40), st.integers(0, 5))
def test_matches_a_point_by_point_reference(
    points: list[tuple[str | None, str | None, float | None, float | None]], max_errors: int
) -> None:
    def good(p: tuple[str | None, str | None, float | None, float | None]) -> bool:
        s, m, t, v = p
        return (
            bool(s)
            and bool(m)
            and t is not None
            and OLDEST <= t <= NOW + 300
            and v is not None
            and abs(v) <= MAX_MAGNITUDE
        )

    rows, errors, rejected = run(
        [p[0] for p in points],
        [p[1] for p in points],
        [p[2] for p in points],
        [p[3] for p in points],
        max_errors=max_errors,
    )
    expected_good = [p for p in points if good(p)]
    expected_bad = [i for i, p in enumerate(points) if not good(p)]
    assert rows == expected_good
    assert rejected == len(expected_bad)
    assert [i for i, _ in errors] == expected_bad[:max_errors]
