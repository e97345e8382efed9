"""The service's own rules at its edge: what it tells ingest about the oldest point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from minutely.config import Settings
from minutely.model import PointBatch
from minutely.service import Service


def test_a_point_past_retention_is_refused_naming_the_retention(tmp_path: Path) -> None:
    """With a store the oldest point accepted is the 1-minute tier's retention, and the
    reason says so; without one it is the hot window."""
    now = 1_764_000_000.0
    body = orjson.dumps([{"server": "a", "metric": "m", "ts": now - 401 * 86400, "value": 1}])
    stored = Service(Settings(data_dir=str(tmp_path)), clock=lambda: now)
    try:
        (err,) = stored.decode(body, "application/json").errors
        assert "older than the 1-minute tier's retention (400 days)" in err.reason
    finally:
        stored.close()
    memory = Service(Settings(data_dir=str(tmp_path), store="none"), clock=lambda: now)
    (err,) = memory.decode(body, "application/json").errors
    assert "older than the hot window" in err.reason


def test_the_whole_service_is_assembled_with_nothing_opened(tmp_path: Path) -> None:
    """Building the parts touches nothing outside the process: no data dir, no store, no
    consumer; ``open`` does the I/O, after which a point goes all the way through."""
    data = tmp_path / "data"
    now = 1_764_000_000.0
    service = Service(Settings(data_dir=str(data)), clock=lambda: now)
    assert not data.exists()
    assert service.aggregator.consumer is None
    assert service.writer is not None and service.registry.n_series == 0
    service.open()
    try:
        assert (data / "store").is_dir() and service.aggregator.consumer is not None
        body = orjson.dumps([{"server": "a", "metric": "m", "ts": now - 5, "value": 2.5}])
        decoded = service.decode(body, "application/json")
        assert decoded.accepted == 1
        assert service.status()["store_memory"]["tracked"] > 0  # the engine's own memory
    finally:
        service.close()


def test_status_reports_the_whole_ring_per_series_minute(tmp_path: Path) -> None:
    """The ring's pages, live rows, stamps, blocks and the registry's indexes, over the
    series written × the minutes held."""
    now = 1_700_000_000.0
    service = Service(Settings(data_dir=str(tmp_path), store="none"), clock=lambda: now).open()
    try:
        series = service.registry.series_ids(
            PointBatch.from_names(["a", "a", "b"], ["x", "y", "x"], [now] * 3, [1.0] * 3)
        )
        service.ring.fold(series, np.full(3, int(now // 60)), np.ones(3))
        hot = service.status()["hot"]
        memory = hot["memory"]
        assert set(memory) == {
            "ring", "live", "stamps", "hour_summaries", "sealed_blocks", "compacted_blocks",
            "index",
        }  # fmt: skip
        assert memory["index"] == service.registry.nbytes > 0
        assert hot["series_minutes"] == 3
        assert hot["bytes"] == sum(memory.values()) - memory["index"]
        assert hot["bytes_per_series_minute"] == round(sum(memory.values()) / 3, 2)
        assert hot["states"]["open"]["series_minutes"] == 3  # nothing sealed yet
        assert hot["sealing"]["sealed"] == 0
        assert service.status()["store_memory"] is None  # no store
    finally:
        service.close()
