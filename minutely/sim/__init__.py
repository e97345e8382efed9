"""The fleet simulator and load generator.

Owns three things, each usable alone:

- ``Fleet``: a deterministic, synthetic fleet of servers × metrics. Every value is a pure
  function of ``(seed, server, metric, ts)``: the same timestamps give the same values however
  the range is chunked, whichever servers are asked for and however many metrics the fleet has.
  Generation is columnar numpy (tens of millions of points per second on one core). Each
  metric's values are rounded as its agent reports them (``Resolution``: 2 or 1 decimals,
  whole, 4,096-byte pages, or full precision).
- ``encode_arrow``: a ``PointBatch`` as an Arrow IPC stream, the ingest fast path's body.
- ``send`` and ``run``: an HTTP load generator. ``send`` posts bodies to
  ``{url}/api/v1/points`` with bounded concurrency, resends a body after ``429``/``503`` once
  ``Retry-After`` has passed (backpressure never drops a point) and counts every point once.
  ``run`` backfills history and then sends the fleet live, one batch per tick.

The package: ``fleet.py`` (``Fleet``), ``send.py`` (``encode_arrow``, ``send``) and
``load.py`` (``run``).
"""

from __future__ import annotations

from minutely.sim.fleet import EPOCH, MAX_RATE, MIN_SPACING, Fleet, Kind, Resolution
from minutely.sim.load import run
from minutely.sim.send import (
    SendError,
    SendStats,
    auth_headers,
    encode_arrow,
    log_progress,
    send,
)

__all__ = [
    "EPOCH",
    "MAX_RATE",
    "MIN_SPACING",
    "Fleet",
    "Kind",
    "Resolution",
    "SendError",
    "SendStats",
    "auth_headers",
    "encode_arrow",
    "log_progress",
    "run",
    "send",
]
