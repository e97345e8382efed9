"""The service's own rules at its edge: what it tells ingest about the oldest point."""

from __future__ import annotations

from pathlib import Path

import orjson

from minutely.config import Settings
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
