"""Checkpoints in-process (a durable bus, embedded chDB, a fake clock): a checkpoint whose
store insert fails acks nothing and is finished by the next one, counted once; a restart
from the checkpoint alone (no clean stop: open minutes never handed to the store) answers
every query as before, also when its insert had already reached the store."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minutely.bus import MemoryBus
from minutely.checkpoint import CheckpointFile
from minutely.config import Settings
from minutely.model import PointBatch
from minutely.service import Service
from minutely.store.errors import StoreError
from minutely.testing.clock import FakeClock
from minutely.testing.natsserver import NatsServer
from tests.counter_data import make_counters, per_minute
from tests.integration.test_store_service import DAY, NOW, check_all, make_points

pytestmark = pytest.mark.slow


def durable_bus() -> MemoryBus:
    bus = MemoryBus(4, 1 << 28)
    bus.durable = True  # type: ignore[misc]  # stands in for JetStream: checkpoints on
    return bus


def publish(service: Service, pts: dict[str, np.ndarray], chunks: int) -> None:
    for idx in np.array_split(np.arange(len(pts["ts"])), chunks):
        batch = PointBatch.from_names(
            pts["server"][idx], pts["metric"][idx], pts["ts"][idx], pts["value"][idx]
        )
        asyncio.run(service.bus.publish(batch))
        while service.aggregator.drain(timeout=0):
            pass


def backlog(service: Service) -> int:
    return sum(p.backlog_messages for p in service.bus.stats())


def concat(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_failed_checkpoint_is_retried_and_a_restart_resumes_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=str(tmp_path), hot_window=2 * 3600, checkpoint_every=1e6)
    service = Service(settings, clock=FakeClock(NOW), bus=durable_bus()).open()
    assert service.checkpointer is not None and service.writer is not None
    assert service.writer.interval is None  # checkpoints write the store, not a timer

    history = make_points(1, 20_000, NOW - 3 * DAY, NOW - 600)  # mostly older than the ring
    recent = make_points(2, 5_000, NOW - 600, NOW)  # closed and open minutes
    publish(service, history, 5)
    assert backlog(service) > 0  # folded, but nothing is acked before a checkpoint

    real_insert = service.store.insert_piece  # type: ignore[union-attr]
    calls: list[str | None] = []

    def failing_once(piece: Any, token: str | None) -> int:
        calls.append(token)
        if len(calls) == 1:
            raise StoreError("the store is down (injected)")
        return real_insert(piece, token)

    monkeypatch.setattr(service.store, "insert_piece", failing_once)
    monkeypatch.setattr(service.store, "reachable", lambda: False)
    assert not service.aggregator.checkpoint()
    assert service.checkpointer.unfinished
    assert "injected" in str(service.aggregator.stats.checkpoint_error)
    assert backlog(service) > 0  # still nothing acked
    written = CheckpointFile(tmp_path / "checkpoint").read()
    assert written is not None and written.rows.minutes.shape[0] > 0

    publish(service, recent, 3)
    assert service.aggregator.checkpoint()
    assert not service.checkpointer.unfinished and backlog(service) == 0
    # the failed checkpoint's insert was finished with its own token, then one more made
    assert calls[0] == calls[1] == f"{written.token}-0"
    assert calls[2] is not None and calls[2] != calls[0]
    pts = concat(history, recent)
    check_all(service, pts)

    # a crash: nothing handed on, nothing flushed; only the store, the checkpoint and the
    # bus remain (its consumer gone, so the next process's consumer takes the partitions)
    last = CheckpointFile(tmp_path / "checkpoint").read()
    assert last is not None and last.open.minutes.shape[0] > 0  # open minutes in the file
    bus = crash(service)
    again = Service(settings, clock=FakeClock(NOW), bus=bus).open()
    check_all(again, pts)  # recovered rows deduplicated; open minutes back in the live rows
    assert again.checkpointer is not None and again.checkpointer.offsets == last.offsets

    # points five minutes on close the restored open minutes: they reach the store, once
    later = make_points(3, 2_000, NOW + 300, NOW + 400)
    publish(again, later, 1)
    assert again.aggregator.checkpoint()
    third = Service(settings, clock=FakeClock(NOW), bus=crash(again)).open()
    check_all(third, concat(pts, later))
    third.close()


def crash(service: Service) -> MemoryBus:
    """Drop ``service`` as a SIGKILL would (its open store handle aside); its bus lives on."""
    assert service.aggregator.consumer is not None
    service.aggregator.consumer.close()
    service.close()
    assert isinstance(service.bus, MemoryBus)
    return service.bus


def test_a_bus_log_made_anew_is_folded_from_its_start(tmp_path: Path) -> None:
    """The checkpoint's offsets count in the logs it saw. When the streams are deleted and
    made again (offsets restart at 0), the new messages are folded, not skipped as old."""
    with NatsServer(tmp_path / "js") as nats:
        settings = Settings(
            data_dir=str(tmp_path / "data"),
            hot_window=2 * 3600,
            checkpoint_every=1e6,
            bus=nats.url,
            partitions=2,
        )
        first = make_points(5, 3_000, NOW - 3000, NOW - 60)
        service = Service(settings, clock=FakeClock(NOW)).open()
        publish_and_fold(service, first, 6)
        assert service.aggregator.checkpoint() and service.checkpointer is not None
        assert max(service.checkpointer.offsets.values()) >= 2
        before = dict(service.checkpointer.generations)
        stop(service)

        nats.stop()  # the broker's streams are gone (and made again on connect)
        shutil.rmtree(nats.store_dir / "jetstream")
        nats.start()
        service = Service(settings, clock=FakeClock(NOW)).open()
        assert service.checkpointer is not None and service.checkpointer.offsets == {}
        assert service.checkpointer.generations.keys() == before.keys()
        assert all(service.checkpointer.generations[p] != before[p] for p in before)
        second = make_points(6, 500, NOW - 50, NOW)  # one message a partition: offset 0
        publish_and_fold(service, second, 1)
        assert service.aggregator.stats.replayed == 0
        check_all(service, concat(first, second))
        stop(service)


def publish_and_fold(service: Service, pts: dict[str, np.ndarray], chunks: int) -> None:
    """Publish on the bus (JetStream here) and fold until every point has arrived."""
    target = service.aggregator.stats.points + len(pts["ts"])
    for idx in np.array_split(np.arange(len(pts["ts"])), chunks):
        batch = PointBatch.from_names(
            pts["server"][idx], pts["metric"][idx], pts["ts"][idx], pts["value"][idx]
        )
        asyncio.run(service.bus.publish(batch))
    deadline = time.monotonic() + 30
    while service.aggregator.stats.points < target:
        assert time.monotonic() < deadline, "the points did not arrive"
        service.aggregator.drain(timeout=0.2)


def stop(service: Service) -> None:
    assert service.aggregator.consumer is not None
    service.aggregator.consumer.close()
    asyncio.run(service.bus.close())
    service.close()


def test_messages_the_checkpoint_holds_are_skipped_after_a_crash_before_their_acks(
    tmp_path: Path,
) -> None:
    """A crash after a checkpoint but before its acks: the bus delivers those messages
    again, and the restarted aggregator, resuming after the checkpoint's offsets, skips
    them (the service's parts are built before the checkpoint is read: open must hand the
    offsets on)."""
    settings = Settings(data_dir=str(tmp_path), hot_window=2 * 3600, checkpoint_every=1e6)
    service = Service(settings, clock=FakeClock(NOW), bus=durable_bus()).open()
    pts = make_points(4, 3_000, NOW - 900, NOW)
    publish(service, pts, 3)
    assert service.checkpointer is not None
    service.checkpointer.take(service.aggregator.offsets_folded)  # the file, no acks
    again = Service(settings, clock=FakeClock(NOW), bus=crash(service)).open()
    while again.aggregator.drain(timeout=0):
        pass
    assert again.aggregator.stats.replayed > 0 and again.aggregator.stats.points == 0
    check_all(again, pts)
    again.close()


def test_a_crash_between_checkpoints_refolds_the_same_counter_increases(tmp_path: Path) -> None:
    """Counters fold as increases over each series' last sample: the checkpoint keeps that
    state, so messages folded after it and lost in a crash fold again into the same minutes."""
    settings = Settings(data_dir=str(tmp_path), hot_window=2 * 3600, checkpoint_every=1e6)
    service = Service(settings, clock=FakeClock(NOW), bus=durable_bus()).open()
    start = int(NOW // 60) * 60 - 3600
    c = make_counters(4, start, 3000, seed=21, resets=3)
    servers = np.array([f"web-{s}" for s in c.series.tolist()], dtype=object)
    pts = {
        "server": servers,
        "metric": np.full(len(c.ts), "jobs_total", dtype=object),  # a counter by its name
        "ts": c.ts,
        "value": c.value,
    }
    half = len(c.ts) // 2
    first = {k: v[:half] for k, v in pts.items()}
    publish(service, first, 4)
    assert service.aggregator.checkpoint()
    rest = {k: v[half:] for k, v in pts.items()}
    publish(service, rest, 4)  # folded, never checkpointed: lost with the process
    again = Service(settings, clock=FakeClock(NOW), bus=crash(service)).open()
    while again.aggregator.drain(timeout=0):
        pass
    got = again.query.series("metric", "jobs_total", start, start + 3000, 60)
    want = per_minute(c, 4, start // 60, 50)
    order = [int(label.split("-")[1]) for label in got.labels]
    assert np.allclose(got.parts.sum, want[order], rtol=1e-12, atol=0)
    assert int(got.parts.count.sum()) == len(c.ts)
    again.close()
