"""A clean stop keeps the hot ring (``<data_dir>/ring-snapshot``) and the next start puts it
back instead of rebuilding it from the store. In-process, embedded
chDB, a fake clock: after such a start every answer equals numpy ground truth, as after a
rebuild; a store written to in between, a crash, or a stop on a durable bus whose last
checkpoint failed rebuild from the store instead."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minutely import ringsnapshot
from minutely.config import Settings
from minutely.letters import rows_table
from minutely.model import Partials
from minutely.service import Service
from minutely.store import Store, StoreConfig
from minutely.store.errors import StoreError
from minutely.testing.clock import FakeClock
from tests.integration.test_checkpoint_service import concat, durable_bus, publish
from tests.integration.test_store_service import NOW, check_all, make_points, send

pytestmark = pytest.mark.slow

PUT_BACK = "put back the hot ring from its snapshot"
REBUILT = "rebuilt the hot ring from the store"


def snapshot(tmp_path: Path) -> Path:
    return tmp_path / ringsnapshot.DIRECTORY / ringsnapshot.MANIFEST


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """A 3-hour window: it seals hours, and five hours of history leave it full."""
    return Settings(data_dir=str(tmp_path), hot_window=3 * 3600, **overrides)


def one_point(server: str, metric: str, ts: float, value: float) -> dict[str, np.ndarray]:
    """A point as ``make_points`` gives them, for the ground truth."""
    return {
        "server": np.array([server], dtype=object),
        "metric": np.array([metric], dtype=object),
        "ts": np.array([ts]),
        "value": np.array([value]),
    }


def started_from(service: Service) -> tuple[str, str | None]:
    """Where the last start filled the ring from, and why not from the snapshot, as
    ``/api/v1/status`` shows it."""
    start = service.status()["hot"]["start"]
    assert (
        start["seconds"] >= 0 and start["series_minutes"] == service.ring.memory()["series_minutes"]
    )
    return start["source"], start["snapshot_not_used"]


def sealed_bytes(service: Service) -> int:
    memory = service.ring.memory()
    return memory["sealed_blocks"] + memory["compacted_blocks"]


def test_a_clean_restart_puts_the_ring_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path)
    clock = FakeClock(NOW)
    service = Service(settings, clock=clock).open()
    try:
        history = make_points(1, 30_000, NOW - 5 * 3600, NOW)
        send(service, history, chunks=30)
        late = make_points(2, 2_000, NOW - 2.5 * 3600, NOW - 1800)  # into sealed minutes
        send(service, late, chunks=2)
        pts = concat(history, late)
        before = sealed_bytes(service)
        assert before > 0 and service.ring.seal_stats.late_merged > 0
        asyncio.run(service.stop())
        assert snapshot(tmp_path).exists()

        with caplog.at_level(logging.INFO, logger="minutely.service"):
            service = Service(settings, clock=clock).open()
        assert PUT_BACK in caplog.text and REBUILT not in caplog.text
        assert started_from(service) == ("snapshot", None)
        assert not snapshot(tmp_path).parent.exists()  # a crash from here rebuilds
        assert 0 < sealed_bytes(service) <= before  # arenas come back without their spare room
        check_all(service, pts)

        more = make_points(3, 3_000, NOW - 3 * 3600, NOW + 90)  # late, sealed, and new
        send(service, more, chunks=3)
        pts = concat(pts, more)
        check_all(service, pts)
        assert service.writer is not None
        service.ring.hand_on_live()  # as the writer's thread does every second
        service.writer.flush()
        service.close()  # then a crash: no snapshot, the next start rebuilds from the store
        assert not snapshot(tmp_path).exists()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="minutely.service"):
            service = Service(settings, clock=clock).open()
        assert PUT_BACK not in caplog.text and REBUILT in caplog.text
        assert started_from(service) == ("store", "none was left: the last stop was not clean"
                                         ", or kept none")  # fmt: skip
        check_all(service, pts)

        asyncio.run(service.stop())
        off = settings_for(tmp_path, ring_snapshot=False)
        service = Service(off, clock=clock).open()  # switched off: left unread and removed
        assert not snapshot(tmp_path).parent.exists()
        assert started_from(service) == ("store", "ring_snapshot is off")
        check_all(service, pts)
        asyncio.run(service.stop())
        assert not snapshot(tmp_path).exists()
    finally:
        service.close()


def test_a_store_written_between_stop_and_start_refuses_the_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path)
    clock = FakeClock(NOW)
    service = Service(settings, clock=clock).open()
    try:
        pts = make_points(4, 20_000, NOW - 5 * 3600, NOW)
        send(service, pts, chunks=20)
        asyncio.run(service.stop())
        assert snapshot(tmp_path).exists()

        # another process (an import, say) adds a point to a minute the ring had sealed
        ts = NOW - 2 * 3600 + 7.0
        assert settings.store_dsn is not None
        with Store(StoreConfig(settings.store_dsn)) as store:
            registry = store.load_registry()
            server, metric = registry.servers.get("web-2"), registry.metrics.get("mem")
            assert server is not None and metric is not None
            one = np.array([1234.5])
            store.write_minutes([server], [metric], [int(ts // 60)],
                                Partials(one, one, one, np.ones(1, np.uint32)))  # fmt: skip
        extra = one_point("web-2", "mem", ts, 1234.5)

        with caplog.at_level(logging.INFO, logger="minutely.service"):
            service = Service(settings, clock=clock).open()
        assert "the store changed since the stop" in caplog.text
        source, why = started_from(service)
        assert source == "store" and why is not None
        assert why.startswith("refused: the store changed since the stop")
        assert PUT_BACK not in caplog.text
        assert not snapshot(tmp_path).parent.exists()
        check_all(service, concat(pts, extra))
    finally:
        service.close()


def test_on_a_durable_bus_only_a_stop_whose_last_checkpoint_landed_keeps_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path, checkpoint_every=1e6)
    clock = FakeClock(NOW)
    service = Service(settings, clock=clock, bus=durable_bus()).open()
    try:
        pts = make_points(5, 20_000, NOW - 5 * 3600, NOW)
        publish(service, pts, 10)
        asyncio.run(service.stop())  # the last checkpoint holds every message folded
        assert snapshot(tmp_path).exists()
        with caplog.at_level(logging.INFO, logger="minutely.service"):
            service = Service(settings, clock=clock, bus=durable_bus()).open()
        assert PUT_BACK in caplog.text
        check_all(service, pts)

        more = make_points(6, 2_000, NOW - 2 * 3600, NOW + 60)
        publish(service, more, 2)
        assert service.store is not None

        def down(piece: Any, token: str | None) -> int:
            raise StoreError("the store is down (injected)")

        monkeypatch.setattr(service.store, "insert_piece", down)
        asyncio.run(service.stop())  # unacked messages stay on the bus: no snapshot
        assert not snapshot(tmp_path).parent.exists()
    finally:
        service.close()


def test_rows_replayed_into_the_store_alone_keep_the_next_start_from_the_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A dead letter of rows goes to the store, never the ring: a snapshot taken after it
    would leave its points out of the ring, so the stop keeps none and the next start
    rebuilds the ring from the store, with them."""
    settings = settings_for(tmp_path)
    clock = FakeClock(NOW)
    service = Service(settings, clock=clock).open()
    try:
        pts = make_points(7, 20_000, NOW - 5 * 3600, NOW)
        send(service, pts, chunks=20)
        ts = NOW - 2 * 3600 + 11.0  # a minute the ring has sealed
        one = np.array([4321.0])
        letter = rows_table(
            np.array(["web-1"], dtype=object),
            np.array(["cpu"], dtype=object),
            np.array([int(ts // 60)]),
            Partials(one, one, one, np.ones(1, np.uint32)),
        )
        service.dead_letters.put("refused-once", "rows", letter, "injected")
        assert asyncio.run(service.replay_dead_letters())["rows"] == 1
        with caplog.at_level(logging.INFO, logger="minutely.service"):
            asyncio.run(service.stop())
        assert "no snapshot of the hot ring: 1 replayed rows" in caplog.text
        assert not snapshot(tmp_path).exists()
        service = Service(settings, clock=clock).open()
        extra = one_point("web-1", "cpu", ts, 4321.0)
        check_all(service, concat(pts, extra))
    finally:
        service.close()
