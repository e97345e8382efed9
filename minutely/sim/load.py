"""The load generator: ``run`` backfills history, then sends the fleet live, one batch per
tick, through ``send``."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import numpy as np

from minutely.sim.fleet import MAX_RATE, Fleet, Kind
from minutely.sim.send import (
    Progress,
    SendStats,
    Sleep,
    declare_counters,
    encode_arrow,
    log_progress,
    send,
)

# -- the load generator ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Piece:
    """One request's worth of points: grid indices ``[k0, k1)`` × servers ``[s0, s1)``."""

    k0: int
    k1: int
    s0: int
    s1: int


def _plan(
    fleet: Fleet, k0: int, k1: int, rate: float, chunk: int, points_per_request: int
) -> Iterator[_Piece]:
    """Split grid indices ``[k0, k1)`` × the fleet into pieces of about
    ``points_per_request`` points: time chunks aligned to multiples of ``chunk``, each split
    into groups of servers."""
    k = k0
    while k < k1:
        end = min(k1, (k // chunk + 1) * chunk)
        group = max(1, points_per_request // (fleet.metrics * (end - k)))
        for s in range(0, fleet.servers, group):
            yield _Piece(k, end, s, min(fleet.servers, s + group))
        k = end


def _chunk_length(fleet: Fleet, rate: float, batch_seconds: float, points_per_request: int) -> int:
    """Grid points per time chunk: ``batch_seconds`` worth, fewer if one server's series over
    that long would exceed ``points_per_request``, whole minutes where that is possible."""
    length = max(1, min(round(batch_seconds * rate), points_per_request // fleet.metrics))
    minute = 60 * rate
    if minute == int(minute) and length >= minute:
        length = int(length // minute * minute)
    return length


async def run(
    url: str,
    fleet: Fleet,
    *,
    rate: float = 1.0,
    duration: float | None = None,
    backfill: float = 0.0,
    clock: Callable[[], float] = time.time,
    batch_seconds: float = 600.0,
    points_per_request: int = 1_000_000,
    concurrency: int = 2,
    compression: str | None = None,
    stats: SendStats | None = None,
    progress: Progress | None = None,
    progress_every: float = 5.0,
    sleep: Sleep = asyncio.sleep,
    transport: httpx.AsyncBaseTransport | None = None,
    token: str | None = None,
) -> SendStats:
    """Backfill ``backfill`` seconds of history, then send the fleet live for ``duration``.

    Every series gets one point per grid timestamp ``k / rate`` (1 Hz: whole seconds). With
    ``clock()`` at the start ``T``, the backfill covers the grid in ``[T - backfill, T)``, sent
    series-major in pieces of about ``points_per_request`` points (``batch_seconds`` of time ×
    a group of servers). Then live: each grid timestamp is sent once the clock has reached it,
    for points stamped before ``duration`` seconds after the backfill finished (``None``:
    forever; cancel the task to stop). Whatever was due while the backfill ran, or while the
    server pushed back, goes out in the next request(s), so the series have no gaps.

    Returns the stats; pass ``stats`` to read them after a cancellation (Ctrl-C).
    ``progress`` (default: ``log_progress()``, INFO on the ``minutely.sim`` logger) is called
    at most every ``progress_every`` seconds. ``rate`` may not exceed ``MAX_RATE``: counters
    are monotonic only for points at least ``MIN_SPACING`` apart. ``token`` goes with every
    request (``send``).
    """
    if not 0 < rate <= MAX_RATE:
        msg = f"rate must be above 0 and at most {MAX_RATE:g} points per second, not {rate}"
        raise ValueError(msg)
    if backfill < 0 or (duration is not None and duration < 0):
        msg = f"backfill and duration must not be negative, not {backfill} and {duration}"
        raise ValueError(msg)
    stats = stats if stats is not None else SendStats()
    kinds = zip(fleet.metric_names.tolist(), fleet.metric_kinds, strict=True)
    counters = [str(name) for name, kind in kinds if kind is Kind.COUNTER]
    if counters:  # before any point, so each counter folds as its increases from the first
        await declare_counters(url, counters, transport, token)
    chunk = _chunk_length(fleet, rate, batch_seconds, points_per_request)

    def encode(piece: _Piece) -> bytes:
        ts = np.arange(piece.k0, piece.k1, dtype=np.float64) / rate
        batch = fleet.at(ts, slice(piece.s0, piece.s1), series_major=True)
        return encode_arrow(batch, compression=compression)

    async def bodies(k0: int, k1: int) -> AsyncIterator[bytes]:
        for piece in _plan(fleet, k0, k1, rate, chunk, points_per_request):
            body = await asyncio.to_thread(encode, piece)
            newest = (piece.k1 - 1) / rate
            stats.latest_ts = newest if stats.latest_ts is None else max(stats.latest_ts, newest)
            yield body

    async def stream() -> AsyncIterator[bytes]:
        start = clock()
        k_next = math.ceil(start * rate)
        async for body in bodies(math.ceil((start - backfill) * rate), k_next):
            yield body
        live_start = clock()
        k_stop = None if duration is None else math.ceil((live_start + duration) * rate)
        while k_stop is None or k_next < k_stop:
            now = clock()
            k_due = math.floor(now * rate) + 1  # every grid timestamp <= now
            if k_stop is not None:
                k_due = min(k_due, k_stop)
            if k_due <= k_next:
                await sleep(max(0.001, k_next / rate - now))
                continue
            async for body in bodies(k_next, k_due):
                yield body
            k_next = k_due

    return await send(
        url,
        stream(),
        concurrency,
        stats=stats,
        progress=progress if progress is not None else log_progress(clock),
        progress_every=progress_every,
        sleep=sleep,
        transport=transport,
        token=token,
    )
