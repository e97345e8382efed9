"""The aggregator: bus → registry → ring, counters, expiry, and redelivery after a failure."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from minutely.aggregate import FOLD_ATTEMPTS, Aggregator
from minutely.bus import MemoryBus
from minutely.counters import CounterRows
from minutely.hot import FoldResult, HotRing
from minutely.letters import LetterBox, points_of
from minutely.model import PointBatch
from minutely.registry import Registry
from minutely.testing.clock import FakeClock

T0 = 1_764_000_000.0


def batch(minutes: list[int], value: float = 1.0) -> PointBatch:
    n = len(minutes)
    return PointBatch.from_names(
        ["web-1"] * n, ["cpu"] * n, [T0 + 60 * m + 1 for m in minutes], [value] * n
    )


def read_counts(agg: Aggregator, first: int, count: int) -> list[int]:
    sid = agg.registry.add_series("web-1", "cpu")
    got = agg.ring.read(np.array([sid], dtype=np.int32), int(T0 // 60) + first, count)
    return got.count[0].tolist()


def test_drain_folds_and_commits() -> None:
    bus = MemoryBus(partitions=4)
    agg = Aggregator(Registry(), HotRing(10, 2), bus)
    agg.open()
    asyncio.run(bus.publish(batch([0, 0, 1])))
    assert agg.drain(timeout=0) == 1
    assert agg.stats.points == 3 and agg.stats.batches == 1
    assert read_counts(agg, 0, 2) == [2, 1]
    assert sum(s.backlog_messages for s in bus.stats()) == 0


def test_points_behind_the_window_are_counted_as_expired() -> None:
    agg = Aggregator(Registry(), HotRing(10, 2))
    agg.fold(batch([20]))
    result = agg.fold(batch([5, 19]))
    assert (result.folded, result.expired) == (1, 1)
    assert agg.stats.expired == 1 and agg.stats.points == 2


def test_a_failed_fold_is_redelivered_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = MemoryBus(partitions=2)
    agg = Aggregator(Registry(), HotRing(10, 2), bus)
    agg.open()
    real_fold = agg.fold
    calls = {"n": 0}

    def flaky(b: PointBatch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire")
        return real_fold(b)

    monkeypatch.setattr(agg, "fold", flaky)
    monkeypatch.setattr(agg._stop, "wait", lambda timeout=None: False)  # no back-off sleep
    asyncio.run(bus.publish(batch([3, 3, 3], value=2.0)))
    agg.start()
    deadline = time.monotonic() + 5
    while agg.stats.points < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    agg.stop()
    assert calls["n"] >= 2 and agg.stats.points == 3
    assert read_counts(agg, 3, 1) == [3]


def test_stop_folds_what_the_bus_still_holds() -> None:
    bus = MemoryBus(partitions=2)
    agg = Aggregator(Registry(), HotRing(10, 2), bus)
    agg.open()
    asyncio.run(bus.publish(batch([1])))
    asyncio.run(bus.close())
    agg.stop()
    assert agg.stats.points == 1


def test_lag_is_reported_when_the_backlog_is_old(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    bus = MemoryBus(partitions=2, clock=lambda: now[0])
    agg = Aggregator(Registry(), HotRing(10, 2), bus)
    agg.open()
    asyncio.run(bus.publish(batch([1, 2])))
    agg.report_lag()
    assert "consumer lag" not in caplog.text  # fresh backlog: nothing to say
    now[0] += 30
    agg.report_lag()
    assert "consumer lag: 1 partitions behind" in caplog.text and "30.0s" in caplog.text
    agg.drain(timeout=0)
    caplog.clear()
    agg.report_lag()
    assert "consumer lag" not in caplog.text


def test_a_batch_that_never_folds_is_set_aside_and_the_rest_moves_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A poison batch: ingest's 503 flag is up while it fails, then it is dead-lettered
    (names and values kept) and the batches behind it are folded, each once."""
    bus = MemoryBus(partitions=1)
    box = LetterBox(tmp_path / "dead")
    agg = Aggregator(Registry(), HotRing(10, 2), bus, dead_letters=box)
    agg.open()
    real_fold = agg.fold

    def poisoned(b: PointBatch) -> FoldResult:
        if float(b.value[0]) == 666.0:
            raise MemoryError("cannot allocate a 32 GiB table (injected)")
        return real_fold(b)

    monkeypatch.setattr(agg, "fold", poisoned)
    asyncio.run(bus.publish(batch([1], value=1.0)))
    asyncio.run(bus.publish(batch([2, 2], value=666.0)))
    asyncio.run(bus.publish(batch([3], value=2.0)))
    failures = 0
    for _ in range(FOLD_ATTEMPTS + 2):
        try:
            agg.drain(timeout=0)
        except MemoryError:
            failures += 1
            assert agg.stats.fold_error is not None and "32 GiB" in agg.stats.fold_error
            agg._reopen()  # what the consumer loop does after a failure
    assert failures == FOLD_ATTEMPTS - 1
    assert agg.stats.fold_error is None and agg.stats.dead_batches == 1
    assert agg.stats.points == 2  # the good batches, each once
    assert read_counts(agg, 1, 3) == [1, 0, 1]
    (path,) = box.paths()
    letter = box.read(path)
    assert letter.kind == "points" and "32 GiB" in letter.reason
    assert points_of(letter.table).value.tolist() == [666.0, 666.0]


class RecordingCheckpointer:
    """Stands in for ``Checkpointer``: records when a checkpoint is taken."""

    unfinished = False

    def __init__(self) -> None:
        self.offsets: dict[int, int] = {}
        self.counters = CounterRows.empty()
        self.taken: list[dict[int, int]] = []

    def take(self, offsets: dict[int, int], counters: CounterRows | None = None) -> None:
        self.taken.append(dict(offsets))


def test_checkpoints_follow_the_injected_clock() -> None:
    """The interval is read from the clock the aggregator is given: nothing sleeps."""
    bus = MemoryBus(partitions=1)
    clock = FakeClock(100.0)
    recorder = RecordingCheckpointer()
    agg = Aggregator(
        Registry(),
        HotRing(10, 2),
        bus,
        checkpointer=recorder,
        checkpoint_every=5.0,
        monotonic=clock,
    )  # type: ignore[arg-type]
    agg.open()
    asyncio.run(bus.publish(batch([1])))
    agg.drain(timeout=0)
    assert recorder.taken == []  # not yet due
    clock.advance(5.0)
    asyncio.run(bus.publish(batch([2])))
    agg.drain(timeout=0)
    assert recorder.taken == [{0: 1}]
    assert agg.stats.checkpoints == 1 and sum(s.backlog_messages for s in bus.stats()) == 0
