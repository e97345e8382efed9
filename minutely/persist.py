"""Between the hot ring and the storage tier: batched writes, start-up rebuild, expiry.

``StoreWriter`` is the ring's sink. The ring hands it, under its lock, every partial it has
merged and not handed on yet: each closed minute once, each late point's correction, each
point too old for the ring. ``accept`` only queues them (the aggregator must not wait on
disk); a writer thread turns the queue into one insert about every second (ClickHouse wants
few large inserts), saving new names first so a stored row never names an unknown id. The
same thread drops expired partitions on a schedule. On a durable bus the checkpoints
(``checkpoint.py``) take the queue instead (``interval=None``): each checkpoint is one insert.

``rebuild_ring`` loads the hot window back from the store at start, hour by hour, so a
restart answers every query as before for every minute that reached the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from minutely.hot import HotRing
from minutely.model import I32, I64, Partials
from minutely.registry import Registry
from minutely.store import Store
from minutely.store.reader import MinuteRows

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WriterStats:
    """Running totals since start."""

    rows: int = 0
    inserts: int = 0
    pending: int = 0
    seconds: float = 0.0
    errors: int = 0
    expired_partitions: int = 0


class StoreWriter:
    """Queues minute partials from the ring and inserts them in batches."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        interval: float | None = 1.0,
        expire_every: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.interval = interval
        self.expire_every = expire_every
        self.clock = clock
        self.stats = WriterStats()
        self._queue: list[tuple[I32, I64, Partials]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_expiry = 0.0

    def accept(self, series: I32, minutes: I64, parts: Partials) -> None:
        """The ring's sink: queue and return at once (called under the ring's lock)."""
        with self._lock:
            self._queue.append((series, minutes, parts))
            self.stats.pending += int(series.shape[0])

    def take(self) -> tuple[I32, I64, Partials]:
        """Everything queued so far, as one block, leaving the queue empty."""
        with self._lock:
            queued, self._queue = self._queue, []
            self.stats.pending = 0
        if not queued:
            return np.zeros(0, np.int32), np.zeros(0, np.int64), Partials.empty((0,))
        series = np.concatenate([q[0] for q in queued])
        minutes = np.concatenate([q[1] for q in queued])
        fields = zip(*(q[2].fields() for q in queued), strict=True)
        return series, minutes, Partials(*(np.concatenate(f) for f in fields))

    def put_back(self, series: I32, minutes: I64, parts: Partials) -> None:
        """Queue a block ``take`` gave out again, ahead of what came since."""
        if series.shape[0] == 0:
            return
        with self._lock:
            self._queue.insert(0, (series, minutes, parts))
            self.stats.pending += int(series.shape[0])

    def write(
        self,
        server_ids: npt.ArrayLike,
        metric_ids: npt.ArrayLike,
        minutes: I64,
        parts: Partials,
        token: str | None = None,
    ) -> int:
        """One insert into the store, counted in the stats (``token``: see
        ``Store.write_minutes``)."""
        began = time.perf_counter()
        try:
            written = self.store.write_minutes(server_ids, metric_ids, minutes, parts, token)
        except Exception:
            self.stats.errors += 1
            raise
        self.stats.seconds += time.perf_counter() - began
        self.stats.rows += written
        self.stats.inserts += 1
        return written

    def flush(self) -> int:
        """Insert everything queued so far in one insert; returns the rows written.

        On failure the rows stay queued (in order) for the next flush.
        """
        series, minutes, parts = self.take()
        if series.shape[0] == 0:
            return 0
        try:
            self.store.save_registry(self.registry)
            server_ids, metric_ids = self.registry.series_of(series)
            return self.write(server_ids, metric_ids, minutes, parts)
        except Exception:
            self.put_back(series, minutes, parts)
            raise

    def expire(self) -> None:
        dropped = self.store.expire(self.clock())
        n = sum(len(v) for v in dropped.values())
        if n:
            self.stats.expired_partitions += n
            log.info("retention dropped %d partitions: %s", n, dropped)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="minutely-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left (unless checkpoints do the writing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self.interval is not None:
            self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval or 1.0):
            try:
                if self.interval is not None:
                    self.flush()
                if self.clock() >= self._next_expiry:
                    self.expire()
                    self._next_expiry = self.clock() + self.expire_every
            except Exception:
                log.exception("store write failed; the rows stay queued and are retried")


def rebuild_ring(store: Store, registry: Registry, ring: HotRing, now: float) -> int:
    """Load the hot window's minutes from the store into ``ring``; returns the cells loaded."""
    last = int(now // 60) + 1
    first = last - ring.minutes - 10  # a few minutes of slack for points ahead of the clock
    loaded = 0
    for start in range(first // 60 * 60, last + 10, 60):  # hours: one day partition a read
        loaded += _load_hour(registry, ring, store.read_minutes(start, 60))
    return loaded


def _load_hour(registry: Registry, ring: HotRing, rows: MinuteRows) -> int:
    """One read of ``rebuild_ring`` into the ring; returns the cells loaded."""
    if rows.minutes.shape[0] == 0:
        return 0
    series = registry.lookup(rows.server_ids, rows.metric_ids)
    minutes, parts = rows.minutes, rows.parts
    known = series >= 0
    if not known.all():
        log.warning("%d stored cells name series the registry lacks", int((~known).sum()))
        series, minutes = series[known], minutes[known]
        parts = Partials(*(a[known] for a in parts.fields()))
    return ring.load(series, minutes, parts, distinct=True)
