"""The aggregator: takes batches off the bus and folds them into minute partials.

It owns the consumer loop (poll → intern names → fold into the hot ring → commit) and the
counters that say how much it has done. Windows are by event time: a point's minute is
``floor(ts / 60)`` whatever the clock says, so replays and late points land where they belong.
The fold itself is vectorised in ``HotRing.fold``; this module adds no per-point work.

Counters (``kinds.py``) are folded as their increases (``counters.py``), from per-series state
this module keeps, checkpoints with its offsets and restores at ``open``.

It runs in a thread of its own (``start``/``stop``); ``fold`` and ``drain`` are the same work
without the thread, for tests and tools.

Commits: on the embedded bus a message is committed once folded (a crash loses the process's
memory and the bus with it). Given a ``Checkpointer`` (a durable bus with a store), it is
committed only after a checkpoint covers it, at most ``checkpoint_every`` seconds later, and a
message delivered again at or below the checkpoint's offsets is committed without folding:
see ``checkpoint.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from minutely import failpoints
from minutely.bus import Bus, Consumer, Message
from minutely.counters import CounterRows, CounterState
from minutely.hot import FoldResult, HotRing
from minutely.kinds import Kinds
from minutely.letters import LetterBox, points_table
from minutely.model import PointBatch, minute_of
from minutely.registry import Registry

if TYPE_CHECKING:
    from minutely.checkpoint import Checkpointer

log = logging.getLogger(__name__)

#: failed folds of one message before it is set aside as a dead letter
FOLD_ATTEMPTS = 3

#: how often the consumer loop checks the bus's backlog, and the age that is worth a warning
LAG_REPORT_EVERY = 10.0
LAG_WARN_SECONDS = 5.0


@dataclass(slots=True)
class AggregatorStats:
    """Running totals since start."""

    batches: int = 0
    #: points folded into the ring or (older than its window) handed to the store
    points: int = 0
    #: points older than the window with no store to take them: dropped
    expired: int = 0
    #: messages delivered again after a restart that a checkpoint already held: not folded
    replayed: int = 0
    #: checkpoints taken, and the last one's failure if it failed
    checkpoints: int = 0
    checkpoint_error: str | None = None
    #: while batches fail to fold: the last failure (ingest answers 503 meanwhile)
    fold_error: str | None = None
    #: batches that failed to fold again and again, set aside as dead letters
    dead_batches: int = 0
    #: time spent folding batches (``/metrics``' ``minutely_fold_seconds``)
    fold_seconds: float = 0.0


class Aggregator:
    """Folds batches into ``ring``, naming series through ``registry``."""

    def __init__(
        self,
        registry: Registry,
        ring: HotRing,
        bus: Bus | None = None,
        partitions: list[int] | None = None,
        checkpointer: Checkpointer | None = None,
        checkpoint_every: float = 5.0,
        dead_letters: LetterBox | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        reopen_if: Callable[[], bool] | None = None,
        kinds: Kinds | None = None,
    ) -> None:
        self.registry = registry
        self.ring = ring
        self.bus = bus
        self.partitions = partitions
        #: the bus's consumer of ``partitions``, once ``open`` has claimed them
        self.consumer: Consumer | None = None
        self.stats = AggregatorStats()
        self.checkpointer = checkpointer
        self.checkpoint_every = checkpoint_every
        self.dead_letters = dead_letters
        #: (partition, offset) -> failed folds of that message
        self._fold_failures: dict[tuple[int, int], int] = {}
        #: per partition, the last offset folded: from the recovered checkpoint, at ``open``
        self._through: dict[int, int] = {}
        #: delivered messages no checkpoint covers yet (with a checkpointer)
        self._uncommitted: list[Message] = []
        #: the clock of the checkpoint and lag-report intervals
        self.monotonic = monotonic
        #: after a failed fold the consumer is made anew, taking the partitions back, only
        #: while this says so (a cluster shard: while it holds the partition's lease)
        self.reopen_if = reopen_if
        self._next_checkpoint = monotonic() + checkpoint_every
        #: which metrics are counters; None: every metric is a gauge
        self.kinds = kinds
        #: each counter series' newest sample
        self.counters = CounterState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def offsets_folded(self) -> dict[int, int]:
        """Per partition, the last offset folded (what a checkpoint records)."""
        return dict(self._through)

    def open(self) -> None:
        """Resume after the recovered checkpoint's offsets (call after ``Checkpointer.recover``
        and ``adopt``), and claim the partitions: open the consumer ``drain`` polls."""
        if self.checkpointer is not None:
            self._through = dict(self.checkpointer.offsets)
            self.restore_counters(self.checkpointer.counters)
        if self.bus is not None and self.consumer is None:
            self.consumer = self.bus.consumer(self.partitions)

    def fold(self, batch: PointBatch) -> FoldResult:
        """Fold one batch of already validated points.

        Points older than the hot window go to the storage tier only (the ring's sink) and
        count as folded; without a store they are dropped, counted in ``expired`` and logged.
        """
        began = time.perf_counter()
        series = self.registry.series_ids(batch)
        values = batch.value
        if self.kinds is not None and len(batch):
            counter = self.kinds.counter_mask(batch.metric_names)
            if counter.all():
                values = self.counters.increases(series, batch.ts, values)
            elif counter.any():
                at = np.flatnonzero(counter[batch.metric_codes])
                values = values.copy()
                values[at] = self.counters.increases(series[at], batch.ts[at], values[at])
        result = self.ring.fold(series, minute_of(batch.ts), values)
        self.stats.fold_seconds += time.perf_counter() - began
        self.stats.batches += 1
        stored = result.expired if self.ring.sink is not None else 0
        self.stats.points += result.folded + stored
        if result.expired and not stored:
            self.stats.expired += result.expired
            log.warning(
                "%d points were older than the hot window when folded and were dropped",
                result.expired,
            )
        return result

    def counter_rows(self) -> CounterRows:
        """The counter state by (server id, metric id): what a checkpoint or a stop keeps."""
        series = self.counters.known()
        server_ids, metric_ids = self.registry.series_of(series)
        return CounterRows(
            server_ids.astype(np.uint32),
            metric_ids.astype(np.uint32),
            self.counters.last_ts[series],
            self.counters.last_value[series],
        )

    def restore_counters(self, rows: CounterRows) -> None:
        """Take saved counter state (its names must be interned already)."""
        if len(rows.server_ids):
            series = self.registry.ensure_series(rows.server_ids, rows.metric_ids)
            self.counters.restore(series, rows.last_ts, rows.last_value)

    def drain(self, timeout: float = 0.0) -> int:
        """Poll once, fold what came, commit it. Returns the number of messages handled."""
        if self.consumer is None:
            msg = "this aggregator has no consumer to drain: open() it on a bus first"
            raise RuntimeError(msg)
        messages = self.consumer.poll(timeout)
        if self.kinds is not None and messages:  # a cluster's kinds declared elsewhere
            self.kinds.learn(name for m in messages for name in m.batch.metric_names.tolist())
        if self.checkpointer is None:
            for i, message in enumerate(messages):
                try:
                    self._fold_message(message)
                except Exception:
                    if i:  # what was folded is committed, so a redelivery cannot add it twice
                        self.consumer.commit(messages[:i])
                    raise
            if messages:
                self.consumer.commit(messages)
            self.stats.fold_error = None
            return len(messages)
        through = self._through
        for message in messages:
            if message.offset <= through.get(message.partition, -1):
                self.stats.replayed += 1  # folded before a restart: the checkpoint has it
                continue
            self._fold_message(message)
            through[message.partition] = message.offset
            failpoints.hit("aggregate.folded")
        self._uncommitted.extend(messages)
        self.stats.fold_error = None
        if self.monotonic() >= self._next_checkpoint:
            self.checkpoint()
        return len(messages)

    def _fold_message(self, message: Message) -> None:
        """Fold one message; one that has failed ``FOLD_ATTEMPTS`` times is set aside as a
        dead letter instead, so the messages behind it move on."""
        key = (message.partition, message.offset)
        try:
            self.fold(message.batch)
        except Exception as exc:
            failed = self._fold_failures[key] = self._fold_failures.get(key, 0) + 1
            self.stats.fold_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:500]}"
            if failed < FOLD_ATTEMPTS or self.dead_letters is None:
                raise
            self._fold_failures.pop(key, None)
            name = f"points-p{message.partition}-o{message.offset}-{id(self.consumer):x}"
            path = self.dead_letters.put(
                name, "points", points_table(message.batch), self.stats.fold_error
            )
            self.stats.dead_batches += 1
            log.error(
                "a batch of %d points failed to fold %d times (%s); set aside in %s",
                len(message.batch),
                failed,
                self.stats.fold_error,
                path,
            )
            return
        self._fold_failures.pop(key, None)

    def checkpoint(self, force: bool = False) -> bool:
        """Checkpoint what is folded, then commit the messages it covers (when there are
        any, or ``force``). A failure (store down) is logged and retried at the next interval;
        nothing is committed meanwhile, so the bus keeps every message and, past its limits,
        ingest answers 429/503."""
        if self.checkpointer is None:
            return False
        self._next_checkpoint = self.monotonic() + self.checkpoint_every
        if not (force or self._uncommitted or self.checkpointer.unfinished):
            return False
        try:
            self.checkpointer.take(self._through, self.counter_rows())
        except Exception as exc:
            if self.stats.checkpoint_error is None:
                log.exception("checkpoint failed; nothing is acked until one succeeds")
            self.stats.checkpoint_error = f"{type(exc).__name__}: {exc}"
            return False
        self.stats.checkpoints += 1
        self.stats.checkpoint_error = None
        done, self._uncommitted = self._uncommitted, []
        if done and self.consumer is not None:
            try:
                self.consumer.commit(done)
            except Exception as exc:  # harmless: they come again, and are skipped
                log.warning("acks of %d checkpointed messages failed: %s", len(done), exc)
        return True

    def start(self) -> None:
        """Run the consumer loop in a daemon thread until ``stop``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="minutely-aggregator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop, then fold whatever the bus still holds."""
        self.halt(timeout)
        if self.consumer is not None:
            while self.drain(timeout=0):
                pass

    def halt(self, timeout: float = 60.0) -> None:
        """Stop the loop and fold nothing more (a cluster shard handing its partition over:
        what the bus still holds goes to the next owner)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # never fold or checkpoint beside it
                msg = f"the aggregator's thread did not stop within {timeout:.0f}s"
                raise RuntimeError(msg)
            self._thread = None

    def close(self) -> None:
        """Let the partitions go: their unacked messages go to the next consumer."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception as exc:  # the broker hands them over when it notices anyway
                log.warning("closing the consumer of %s failed: %s", self.partitions, exc)

    def _run(self) -> None:
        next_report = self.monotonic() + LAG_REPORT_EVERY
        while not self._stop.is_set():
            try:
                self.drain(timeout=0.2)
                if self.monotonic() >= next_report:
                    next_report = self.monotonic() + LAG_REPORT_EVERY
                    self.report_lag()
            except Exception:
                # What was polled but not committed is redelivered to a new consumer.
                log.exception("aggregator failed to fold a batch; retrying from the bus")
                self._stop.wait(0.5)
                try:
                    self._reopen()
                except Exception:
                    log.exception("the consumer could not be made anew; trying again")

    def report_lag(self) -> None:
        """Log the bus's backlog when the aggregator is behind (also on ``/api/v1/status``)."""
        if self.bus is None:
            return
        try:
            stats = self.bus.stats()
        except Exception as exc:  # the broker is away: no report, and no reason to reopen
            log.debug("no lag report: %s", exc)
            return
        behind = [p for p in stats if p.backlog_seconds >= LAG_WARN_SECONDS]
        if behind:
            worst = max(behind, key=lambda p: p.backlog_seconds)
            log.warning(
                "consumer lag: %d partitions behind by >= %.0fs; worst partition %d: "
                "%d messages, %d bytes, %.1fs",
                len(behind),
                LAG_WARN_SECONDS,
                worst.partition,
                worst.backlog_messages,
                worst.backlog_bytes,
                worst.backlog_seconds,
            )

    def _reopen(self) -> None:
        if self.bus is None or self.consumer is None:
            return
        if self.reopen_if is not None and not self.reopen_if():
            return
        self.consumer.close()
        self._uncommitted = []  # the new consumer is given them again
        self.consumer = self.bus.consumer(self.partitions)
