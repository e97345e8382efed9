"""The evaluator against numpy over the raw points: exact min, max and count, avg and sums to
float64 rounding, increase and rate on counters with and without resets."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from minutely.promql import Evaluator, ExecutionError, NotSupported, Scalar, Vector, parse
from minutely.promql.names import Labels
from minutely.service import Service
from tests.api.helpers import NOW, ingest
from tests.promql.conftest import NodeSource

MINUTE_END = (NOW // 60 + 1) * 60  # the end of the minute NOW is in


def evaluate(source: NodeSource, text: str, times: np.ndarray) -> Scalar | Vector:
    return Evaluator(source).evaluate(parse(text), np.asarray(times, dtype=np.float64))


def by_labels(v: Scalar | Vector) -> dict[Labels, np.ndarray]:
    assert isinstance(v, Vector)
    return dict(zip(v.labels, v.values, strict=True))


def windows(times: np.ndarray, minutes: int) -> list[tuple[float, float]]:
    """The documented window of each instant: ``[T - R, T)`` with ``T = ceil(t / 60) · 60``."""
    return [(np.ceil(t / 60) * 60 - minutes * 60, np.ceil(t / 60) * 60) for t in times]


def truth(pts: dict[str, np.ndarray], server: str, metric: str, lo: float, hi: float) -> np.ndarray:
    sel = (pts["server"] == server) & (pts["metric"] == metric) & (pts["ts"] >= lo)
    return np.asarray(pts["value"][sel & (pts["ts"] < hi)])


GRIDS = {
    "aligned step 5m, [5m]": (MINUTE_END - 7200 + 300 * np.arange(24), 5),
    "aligned step 1m, [7m]": (MINUTE_END - 3600 + 60 * np.arange(60), 7),
    "unaligned step 90s, [10m]": (NOW - 5000 + 90 * np.arange(50), 10),
    "instant inside a minute, [1h]": (np.array([NOW]), 60),
}


@pytest.mark.parametrize("grid", GRIDS)
def test_over_time_functions_match_numpy(
    source: NodeSource, points: dict[str, np.ndarray], grid: str
) -> None:
    times, minutes = GRIDS[grid]
    reducers = {
        "min_over_time": np.min,
        "max_over_time": np.max,
        "count_over_time": np.size,
        "sum_over_time": np.sum,
        "avg_over_time": np.mean,
    }
    for func, reduce in reducers.items():
        got = by_labels(evaluate(source, f"{func}(cpu.user[{minutes}m])", times))
        for server in ("web-1", "web-2", "db-1"):
            row = got[(("instance", server),)]
            for i, (lo, hi) in enumerate(windows(times, minutes)):
                want = truth(points, server, "cpu.user", lo, hi)
                if not want.size:
                    assert np.isnan(row[i])
                elif func in ("min_over_time", "max_over_time", "count_over_time"):
                    assert row[i] == reduce(want), (func, server, i)  # exact
                else:
                    assert row[i] == pytest.approx(reduce(want), rel=1e-12, abs=1e-9)


def test_a_bare_selector_is_the_newest_minute_average(
    source: NodeSource, points: dict[str, np.ndarray]
) -> None:
    times = MINUTE_END - 1800 + 60 * np.arange(30)
    got = by_labels(evaluate(source, '{__name__="mem.used", instance=~"web-.*"}', times))
    assert set(got) == {(("__name__", "mem.used"), ("instance", s)) for s in ("web-1", "web-2")}
    for (_, (_, server)), row in got.items():
        for i, t in enumerate(times):
            want = truth(points, server, "mem.used", t - 60, t)
            assert row[i] == pytest.approx(want.mean(), rel=1e-12)


def test_labels_folded_into_a_metric_name_are_labels(
    source: NodeSource, points: dict[str, np.ndarray]
) -> None:
    got = evaluate(source, 'count_over_time(http_requests{code="200", instance="db-1"}[1h])', [NOW])
    assert isinstance(got, Vector)
    assert got.labels == [(("code", "200"), ("instance", "db-1"))]
    lo, hi = windows(np.array([NOW]), 60)[0]
    assert got.values[0, 0] == truth(points, "db-1", 'http_requests{code="200"}', lo, hi).size


def test_aggregations_match_numpy(source: NodeSource, points: dict[str, np.ndarray]) -> None:
    times = MINUTE_END - 3600 + 600 * np.arange(6)
    inner = "max_over_time({__name__=~'cpu.user|mem.used', instance=~'web-.*'}[10m])"
    cpu = by_labels(evaluate(source, "max_over_time(cpu.user[10m])", times))
    mem = by_labels(evaluate(source, "max_over_time(mem.used[10m])", times))
    cpu_rows = np.array([cpu[(("instance", s),)] for s in ("web-1", "web-2", "db-1")])
    mem_rows = np.array([mem[(("instance", s),)] for s in ("web-1", "web-2", "db-1")])
    for op, reduce in {"sum": np.sum, "min": np.min, "max": np.max, "avg": np.mean}.items():
        got = evaluate(source, f"{op}(max_over_time(cpu.user[10m]))", times)
        assert isinstance(got, Vector) and got.labels == [()]
        np.testing.assert_allclose(got.values[0], reduce(cpu_rows, axis=0), rtol=1e-12)
    count = evaluate(source, "count(max_over_time(cpu.user[10m]))", times)
    assert isinstance(count, Vector) and (count.values == 3).all()
    by = by_labels(evaluate(source, "sum by (instance) (cpu.user + 0)", times))
    assert set(by) == {(("instance", s),) for s in ("web-1", "web-2", "db-1")}
    without = by_labels(
        evaluate(source, "max without (instance) (max_over_time(mem.used[10m]))", times)
    )
    np.testing.assert_array_equal(without[()], mem_rows.max(axis=0))
    with pytest.raises(ExecutionError, match="same labelset"):
        evaluate(source, inner, times)


def test_topk_and_bottomk_pick_per_instant(
    source: NodeSource, points: dict[str, np.ndarray]
) -> None:
    times = MINUTE_END - 3600 + 600 * np.arange(6)
    cpu = by_labels(evaluate(source, "avg_over_time(cpu.user[10m])", times))
    servers = ["web-1", "web-2", "db-1"]
    rows = np.array([cpu[(("instance", s),)] for s in servers])
    for op, k in (("topk", 2), ("bottomk", 1)):
        got = by_labels(evaluate(source, f"{op}({k}, avg_over_time(cpu.user[10m]))", times))
        for i in range(len(times)):
            order = np.argsort(-rows[:, i] if op == "topk" else rows[:, i])[:k]
            chosen = {servers[j] for j in order}
            present = {ls[0][1] for ls, row in got.items() if not np.isnan(row[i])}
            assert present == chosen


def test_scalar_arithmetic(source: NodeSource, points: dict[str, np.ndarray]) -> None:
    two = evaluate(source, "1 + 1", [NOW])
    assert isinstance(two, Scalar) and two.values.tolist() == [2.0]
    assert evaluate(source, "2 * 3 - 8 / 4", [NOW, NOW + 60]).values.tolist() == [4.0, 4.0]
    base = by_labels(evaluate(source, "max_over_time(cpu.user[5m])", [NOW]))
    scaled = by_labels(evaluate(source, "100 - max_over_time(cpu.user[5m]) / 2", [NOW]))
    for labels, row in base.items():
        assert scaled[labels][0] == 100 - row[0] / 2
    negated = by_labels(evaluate(source, "-cpu.user", [NOW]))
    assert all(ls[0][0] == "instance" for ls in negated)  # the name is dropped
    with pytest.raises(NotSupported, match="between two instant vectors"):
        evaluate(source, "cpu.user + mem.used", [NOW])
    with pytest.raises(NotSupported, match="range vector as the answer"):
        evaluate(source, "cpu.user[5m]", [NOW])


def test_a_query_over_the_cell_limit_is_refused(
    source: NodeSource, points: dict[str, np.ndarray]
) -> None:
    evaluator = Evaluator(source, max_cells=300)
    with pytest.raises(ExecutionError, match="over the limit of 300 buckets") as refused:
        evaluator.evaluate(
            parse("max_over_time(cpu.user[1h])"), MINUTE_END - 7200 + 60 * np.arange(120)
        )
    assert refused.value.limit == "max_query_cells"  # counted under it by the API


@pytest.mark.parametrize("query", ["increase(nosuch[999999y])", "rate(cpu.user[999999y])"])
def test_a_range_past_the_cell_limit_is_refused_with_or_without_series(
    client: TestClient, points: dict[str, np.ndarray], query: str
) -> None:
    """The windows are sized per bucket whether any series matches or not: a 10⁶-year range
    once asked numpy for terabytes (a 500; found by bench/bench_fuzz.py)."""
    r = client.get("/api/v1/query", params={"query": query, "time": str(MINUTE_END)})
    assert r.status_code == 422, r.text
    assert "buckets per series" in r.json()["error"]


# counters


def counter_points(
    resets_inside_minutes: bool, seed: int = 3, metric: str = "requests_total"
) -> dict[str, np.ndarray]:
    """One counter on one server, one sample per 10 s, growing by up to 50 a sample, reset
    to a small value now and then once past 2,000 (so a minute after a reset stays below the
    value before it): between minutes, or (with the flag) anywhere."""
    rng = np.random.default_rng(seed)
    ts = np.arange(NOW - 3 * 3600, NOW, 10.0)
    grow = rng.uniform(0, 50, len(ts)).round(0)
    if resets_inside_minutes:
        reset = rng.random(len(ts)) < 0.05
    else:
        reset = (ts % 60 < 10) & (rng.random(len(ts)) < 0.3)  # a minute's first sample
    values = np.empty(len(ts))
    v = 1_000_000.0
    for i in range(len(ts)):
        v = grow[i] if reset[i] and v > 2000 else v + grow[i]
        values[i] = v
    n = len(ts)
    return {
        "server": np.full(n, "web-1", dtype=object),
        "metric": np.full(n, metric, dtype=object),
        "ts": ts,
        "value": values,
    }


def true_increase(pts: dict[str, np.ndarray], lo: float, hi: float) -> float | None:
    """Prometheus's counter arithmetic without extrapolation, the last sample before the
    window (up to 5 minutes back, by minute) as the baseline."""
    ts, v = pts["ts"], pts["value"]
    inside = (ts >= lo) & (ts < hi)
    before = np.flatnonzero((ts < lo) & (ts >= lo - 300))
    idx = np.flatnonzero(inside)
    if before.size:
        idx = np.r_[before[-1], idx]
    if idx.size < 2:
        return None
    seq = v[idx]
    d = np.diff(seq)
    return float(np.where(d >= 0, d, seq[1:]).sum())


@pytest.mark.parametrize("minutes", [1, 5, 13])
def test_increase_and_rate_are_exact_when_resets_fall_between_minutes(
    client: TestClient, service: Service, source: NodeSource, minutes: int
) -> None:
    pts = counter_points(resets_inside_minutes=False)
    assert (np.diff(pts["value"]) < 0).sum() > 10  # it does reset
    ingest(client, service, pts)
    times = MINUTE_END - 7200 + 60 * np.arange(0, 120, 3)
    inc = by_labels(evaluate(source, f"increase(requests_total[{minutes}m])", times))
    rate = by_labels(evaluate(source, f"rate(requests_total[{minutes}m])", times))
    row, rate_row = inc[(("instance", "web-1"),)], rate[(("instance", "web-1"),)]
    for i, (lo, hi) in enumerate(windows(times, minutes)):
        want = true_increase(pts, lo, hi)
        assert want is not None
        assert row[i] == pytest.approx(want, rel=1e-12)
        assert rate_row[i] == pytest.approx(want / (minutes * 60), rel=1e-12)


def test_a_counter_is_exact_when_resets_fall_inside_minutes(
    client: TestClient, service: Service, source: NodeSource
) -> None:
    """A counter (``_total``) is folded as its increases, so any reset is counted exactly."""
    pts = counter_points(resets_inside_minutes=True, seed=5)
    ingest(client, service, pts)
    ts, v = pts["ts"], pts["value"]
    after = np.flatnonzero(np.diff(v) < 0) + 1
    assert (ts[after] % 60 >= 10).sum() > 3  # resets that are not a minute's first sample
    times = MINUTE_END - 7200 + 60 * np.arange(0, 120, 5)
    for func, scale in (("increase", 1.0), ("rate", 1 / 300)):
        row = by_labels(evaluate(source, f"{func}(requests_total[5m])", times))[
            (("instance", "web-1"),)
        ]
        for i, (lo, hi) in enumerate(windows(times, 5)):
            want = true_increase(pts, lo, hi)
            assert want is not None
            assert row[i] == pytest.approx(want * scale, rel=1e-12)


def test_a_reset_inside_a_minute_of_a_gauge_shifts_the_first_value_after_it(
    client: TestClient, service: Service, source: NodeSource
) -> None:
    """``increase`` of a gauge reads its minutes' min and max: a reset inside a minute makes
    that minute and the next estimates; together they are too high by the first value after
    the reset. Windows clear of them stay exact."""
    pts = counter_points(resets_inside_minutes=True, seed=5, metric="requests")
    ingest(client, service, pts)
    ts, v = pts["ts"], pts["value"]
    after = np.flatnonzero(np.diff(v) < 0) + 1
    inside = after[ts[after] % 60 >= 10]  # resets that are not a minute's first sample
    assert inside.size > 3
    touched = np.unique(np.r_[ts[inside] // 60, ts[inside] // 60 + 1])
    times = MINUTE_END - 7200 + 60 * np.arange(0, 120, 5)
    row = by_labels(evaluate(source, "increase(requests[5m])", times))[(("instance", "web-1"),)]
    exact = 0
    for i, (lo, hi) in enumerate(windows(times, 5)):
        want = true_increase(pts, lo, hi)
        if not np.isin(np.arange(lo // 60 - 1, hi // 60), touched).any():
            assert row[i] == pytest.approx(want, rel=1e-12)
            exact += 1
    assert exact > 3
    lo, hi = MINUTE_END - 7200, MINUTE_END
    whole = by_labels(evaluate(source, "increase(requests[120m])", [hi]))
    first_after = v[inside[(ts[inside] >= lo) & (ts[inside] < hi - 60)]].sum()
    total = true_increase(pts, lo, hi)
    assert total is not None
    assert whole[(("instance", "web-1"),)][0] == pytest.approx(total + first_after, rel=1e-12)


def test_increases_of_adjacent_windows_add_up(
    client: TestClient, service: Service, source: NodeSource
) -> None:
    pts = counter_points(resets_inside_minutes=False, seed=9)
    ingest(client, service, pts)
    hour = by_labels(evaluate(source, "increase(requests_total[60m])", [MINUTE_END]))
    tens = by_labels(
        evaluate(source, "increase(requests_total[10m])", MINUTE_END - 600 * np.arange(5, -1, -1))
    )
    key = (("instance", "web-1"),)
    assert hour[key][0] == pytest.approx(tens[key].sum(), rel=1e-12)
