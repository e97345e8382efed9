"""Counters folded as increases: the state, the aggregator, the checkpoint, against numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minutely.aggregate import Aggregator
from minutely.checkpoint import Checkpoint, CheckpointFile
from minutely.counters import CounterRows, CounterState, read_counters, write_counters
from minutely.hot import HotRing
from minutely.kinds import Kinds, KindsFile
from minutely.model import PointBatch
from minutely.registry import Registry
from minutely.store.reader import empty_minutes
from tests.counter_data import Counters, increases, make_counters, per_minute

T0 = 1_764_000_000.0
SERVERS = 5


def as_batch(c: Counters, at: np.ndarray) -> PointBatch:
    """Points ``at`` as a batch: series ``s`` is server ``web-<s>``'s ``app.requests``, and each
    server also sends a gauge ``cpu`` with the same values, which must fold as sent."""
    servers = [f"web-{s}" for s in c.series[at].tolist()]
    return PointBatch.from_names(
        servers * 2,
        ["app.requests"] * len(at) + ["cpu"] * len(at),
        np.tile(c.ts[at], 2),
        np.tile(c.value[at], 2),
    )


def batches(c: Counters, seed: int, pieces: int = 7) -> list[np.ndarray]:
    """Consecutive runs of the time-ordered points, each shuffled inside."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(c.ts), pieces - 1))
    out = []
    for run in np.split(np.arange(len(c.ts)), cuts):
        out.append(rng.permutation(run))
    return out


def aggregator() -> Aggregator:
    return Aggregator(Registry(), HotRing(120, 4), kinds=Kinds(["app.requests"]))


def read(agg: Aggregator, metric: str, first: int, minutes: int) -> tuple[np.ndarray, np.ndarray]:
    sids = np.array(
        [agg.registry.add_series(f"web-{s}", metric) for s in range(SERVERS)], dtype=np.int32
    )
    got = agg.ring.read(sids, first, minutes)
    return got.sum, got.count


def test_increases_match_numpy_over_resets_and_shuffled_batches() -> None:
    c = make_counters(SERVERS, T0, 3600, seed=1)
    state = CounterState()
    got = np.zeros(len(c.ts))
    for at in batches(c, seed=2):
        got[at] = state.increases(c.series[at].astype(np.int32), c.ts[at], c.value[at])
    assert np.array_equal(got, increases(c))
    assert (increases(c) >= 0).all() and (np.diff(c.value[c.series == 0]) < 0).any()  # resets


def test_a_sample_not_newer_than_the_last_adds_nothing() -> None:
    state = CounterState()
    s = np.zeros(3, np.int32)
    assert state.increases(
        s, np.array([10.0, 20.0, 30.0]), np.array([5.0, 8.0, 12.0])
    ).tolist() == [
        0.0,
        3.0,
        4.0,
    ]
    late = state.increases(s[:2], np.array([25.0, 30.0]), np.array([100.0, 99.0]))
    assert late.tolist() == [0.0, 0.0]  # older than 30, and a second sample at 30
    assert state.increases(s[:1], np.array([40.0]), np.array([2.0])).tolist() == [2.0]  # reset


def test_the_aggregator_folds_counters_as_increases_and_gauges_as_sent() -> None:
    c = make_counters(SERVERS, T0, 3600, seed=3)
    agg = aggregator()
    for at in batches(c, seed=4):
        agg.fold(as_batch(c, at))
    first = int(T0 // 60)
    sums, counts = read(agg, "app.requests", first, 61)
    assert np.allclose(sums, per_minute(c, SERVERS, first, 61), rtol=1e-12, atol=0)
    gauge_sums, gauge_counts = read(agg, "cpu", first, 61)
    want = np.zeros((SERVERS, 61))
    np.add.at(want, (c.series, (c.ts // 60).astype(np.int64) - first), c.value)
    assert np.allclose(gauge_sums, want, rtol=1e-12) and np.array_equal(counts, gauge_counts)
    assert counts.sum() == len(c.ts)  # every sample counts once, the baselines too


def test_state_kept_at_a_checkpoint_gives_the_same_increases_after_a_crash(
    tmp_path: Path,
) -> None:
    """A crash between batches: a new aggregator restores the checkpoint's state and folds
    the batches after it again; every minute is as if nothing had happened."""
    c = make_counters(SERVERS, T0, 1800, seed=5)
    runs = batches(c, seed=6, pieces=9)
    whole = aggregator()
    for at in runs:
        whole.fold(as_batch(c, at))
    crashed = aggregator()
    for at in runs[:4]:
        crashed.fold(as_batch(c, at))
    f = CheckpointFile(tmp_path)
    f.write(
        Checkpoint("r", 1, {0: 3}, empty_minutes(), empty_minutes(), {}, crashed.counter_rows())
    )
    for at in runs[4:6]:  # folded, then lost with the process
        crashed.fold(as_batch(c, at))
    saved = f.read()
    assert saved is not None
    again = aggregator()
    for at in runs[:4]:  # what the store and the checkpoint's open minutes give back
        again.fold(as_batch(c, at))
    again.counters = CounterState()
    again.restore_counters(saved.counters)
    for at in runs[4:]:
        again.fold(as_batch(c, at))
    first = int(T0 // 60)
    assert np.array_equal(
        read(again, "app.requests", first, 31), read(whole, "app.requests", first, 31)
    )


def test_counter_state_survives_a_stop_in_its_file(tmp_path: Path) -> None:
    rows = CounterRows(
        np.array([1, 2], np.uint32),
        np.array([3, 4], np.uint32),
        np.array([5.0, 6.0]),
        np.array([7.0, 8.0]),
    )
    assert len(read_counters(tmp_path / "c.npz").server_ids) == 0
    write_counters(tmp_path / "c.npz", rows)
    got = read_counters(tmp_path / "c.npz")
    assert got.last_value.tolist() == [7.0, 8.0] and got.metric_ids.tolist() == [3, 4]


def test_kinds_come_from_declarations_patterns_and_the_total_convention(tmp_path: Path) -> None:
    kept = KindsFile(tmp_path)
    kinds = Kinds(["disk.*.read_bytes", "app.*"], save=kept.write)
    assert kinds.of("http_requests_total") == "counter"
    assert kinds.of('http_requests_total{code="200"}') == "counter"
    assert kinds.of("disk.sda.read_bytes") == "counter"
    assert kinds.of("cpu.user") == "gauge"
    assert kinds.declare({"cpu.user": "gauge", "jobs_done": "counter"}) == 1  # one change
    assert kinds.declare({"temperature_total": "gauge"}) == 1
    assert kinds.of('jobs_done{queue="a"}') == "counter"
    assert kinds.of("temperature_total") == "gauge"
    again = Kinds(["app.*"])
    again.adopt(kept.read())
    assert again.of("jobs_done") == "counter" and again.of("temperature_total") == "gauge"
    assert kinds.counter_mask(np.array(["cpu.user", "jobs_done"], dtype=object)).tolist() == [
        False,
        True,
    ]
