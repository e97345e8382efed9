"""A shard: one partition of one copy, owned by this node while it holds the partition's lease.

A shard is a single node's pipeline cut down to one partition: its own registry (series
numbered locally over the node's shared, cluster-wide names), hot ring, aggregator on the
partition's stream and checkpointer, writing its copy's 1-minute table. What differs is
where the checkpoint lives and how a shard starts:

- The checkpoint is a pointer in JetStream KV and a blob in its Object Store
  (``FencedStorage``), so whichever node takes the partition next reads it. ``open`` first
  *claims* the pointer (a compare-and-set naming this node): from then on a checkpoint write
  by the previous owner fails, so a paused owner that wakes up can neither insert (rows go in
  only after their checkpoint is written) nor ack (acks follow the checkpoint). Its inserts
  already in flight carry the checkpoint's tokens and are deduplicated by the store.
- ``open`` then does what a single node's start does, for the partition only: the last
  checkpoint's rows made sure of in the store (same tokens), the partition's series learnt
  from the store and its hot window loaded back, the checkpoint's open minutes put back, and
  the partition's consumer made anew (which hands it every unacked message, and takes the
  stream from the previous owner's consumer). Exactly once then follows as on one node.
- ``stop`` (a graceful hand-over) folds nothing more: it checkpoints what is folded, so the
  next owner starts from there, and closes the consumer. ``abandon`` (the lease is lost) does
  not even checkpoint: the next owner's claim has fenced it already.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from minutely.aggregate import Aggregator
from minutely.bus import Bus
from minutely.bus.base import partition_of
from minutely.checkpoint import Checkpoint, Checkpointer, decode_checkpoint, encode_checkpoint
from minutely.cluster.checkpoints import Checkpoints, Claim
from minutely.cluster.keys import Copy
from minutely.config import Settings
from minutely.hot import HotRing
from minutely.kinds import Kinds
from minutely.letters import LetterBox
from minutely.query import Query
from minutely.registry import Names, Registry
from minutely.store import Store
from minutely.store_writer import StoreWriter

log = logging.getLogger(__name__)

#: series per ring block of a shard: a node holds many shards, each a share of the fleet,
#: so each grows in smaller steps than a single node's ring
SHARD_BLOCK = 256


class ShardClosed(Exception):
    """The shard was let go (its lease lost, or handed over) before it finished opening."""


class FencedStorage:
    """A partition's checkpoint in JetStream, for the ``Checkpointer``: ``write`` raises
    ``Fenced`` once another node has claimed the partition."""

    def __init__(self, checkpoints: Checkpoints, key: str, node: str) -> None:
        self.checkpoints = checkpoints
        self.key = key
        self.node = node
        self._claim: Claim | None = None

    def claim(self) -> None:
        """Name this node in the pointer: every earlier owner's next write fails."""
        self._claim = self.checkpoints.claim(self.key, self.node)

    def read(self) -> Checkpoint | None:
        claim = self._require()
        if claim.blob is None:
            return None
        return decode_checkpoint(claim.blob, f"{self.key} in JetStream")

    def write(self, c: Checkpoint) -> None:
        self._claim = self.checkpoints.write(self._require(), encode_checkpoint(c))

    def _require(self) -> Claim:
        if self._claim is None:
            msg = f"the checkpoint of {self.key} is not claimed: call claim() first"
            raise RuntimeError(msg)
        return self._claim


@dataclass(slots=True)
class ShardState:
    """What the cluster status shows of a shard."""

    key: str
    state: str  # opening, ready, stopping, stopped, failed
    since: float
    opened_in: float | None = None
    rebuilt_cells: int = 0
    error: str | None = None


class Shard:
    """One partition ``partition`` of copy ``copy`` (see the module docstring)."""

    def __init__(
        self,
        key: str,
        copy: Copy,
        partition: int,
        settings: Settings,
        bus: Bus,
        store: Store,
        servers: Names,
        metrics: Names,
        storage: FencedStorage,
        dead_letters: LetterBox,
        kinds: Kinds,
        holds_lease: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.copy = copy
        self.partition = partition
        self.settings = settings
        self.bus = bus
        self.store = store
        self.storage = storage
        self.clock = clock
        self.registry = Registry(servers=servers, metrics=metrics)
        self.writer = StoreWriter(
            store,
            self.registry,
            interval=None,  # each checkpoint is the insert
            clock=clock,
            max_bytes=settings.writer_max_bytes,
            dead_letters=dead_letters,
        )
        self.ring = HotRing(
            settings.hot_minutes, settings.live_minutes, block=SHARD_BLOCK, sink=self.writer.accept
        )
        self.checkpointer = Checkpointer(
            storage, store, self.registry, self.ring, self.writer, save_names=False
        )
        self.aggregator = Aggregator(
            self.registry,
            self.ring,
            bus,
            partitions=[partition],
            checkpointer=self.checkpointer,
            checkpoint_every=settings.checkpoint_every,
            dead_letters=dead_letters,
            reopen_if=holds_lease,
            kinds=kinds,
        )
        self.query = Query(self.registry, self.ring, store, settings.max_query_cells)
        self.state = ShardState(key, "opening", clock())
        self._lock = threading.Lock()
        #: let go (stopped or abandoned): an ``open`` still running must not start it
        self._closed = False

    @property
    def ready(self) -> bool:
        return self.state.state == "ready"

    def own_ids(self) -> npt.NDArray[np.uint32]:
        """The ids of this partition's servers (the server copy) or metrics."""
        names = self.registry.servers if self.copy == "server" else self.registry.metrics
        if names.known is not None:
            names.adopt(names.known())
        listed = np.asarray(names.names(), dtype=object)
        if listed.shape[0] == 0:
            return np.zeros(0, np.uint32)
        mine = partition_of(listed, self.bus.partitions) == self.partition
        ids = [names.get(n) for n in listed[mine].tolist()]
        return np.asarray([i for i in ids if i is not None], dtype=np.uint32)

    def open(self) -> None:
        """Take the partition over (the module docstring's steps); blocking."""
        began = time.perf_counter()
        self.storage.claim()
        self.checkpointer.recover()
        ids = self.own_ids()
        s_ids, m_ids = self.store.series_pairs(self.copy, ids)
        self.registry.ensure_series(s_ids, m_ids)
        self.state.rebuilt_cells = self._rebuild(ids)
        self.checkpointer.restore_open(add_series=True)
        stats = self.bus.stats()[self.partition]
        self.checkpointer.adopt({self.partition: stats.generation})
        with self._lock:  # a stop while it opened: take nothing, start nothing
            if self._closed:
                msg = f"{self.key} was let go while it opened"
                raise ShardClosed(msg)
            self.aggregator.open()
            self.aggregator.start()
            self.state.opened_in = time.perf_counter() - began
            self.state.state, self.state.since = "ready", self.clock()
        log.info(
            "took over %s: %d series, %d cells rebuilt, in %.1fs",
            self.key,
            self.registry.n_series,
            self.state.rebuilt_cells,
            self.state.opened_in,
        )

    def _rebuild(self, ids: npt.NDArray[np.uint32]) -> int:
        """Load the partition's hot window from its copy's table, hour by hour."""
        last = int(self.clock() // 60) + 1
        first = last - self.ring.minutes - 10
        oldest = self.store.first_minute(first, ids)
        if oldest is None:
            return 0
        loaded = 0
        for start in range(max(first, oldest) // 60 * 60, last + 10, 60):
            rows = self.store.read_minutes(start, 60, ids=ids)
            if rows.minutes.shape[0]:
                series = self.registry.ensure_series(rows.server_ids, rows.metric_ids)
                loaded += self.ring.load(series, rows.minutes, rows.parts, distinct=True)
        return loaded

    def stop(self) -> None:
        """Hand the partition over: checkpoint what is folded, let the consumer go. The
        messages after the checkpoint stay unacked for the next owner."""
        with self._lock:
            self._closed = True
            opened = self.ready
        self.state.state, self.state.since = "stopping", self.clock()
        try:
            self.aggregator.halt()
            if opened:  # a shard that never opened has claimed nothing to checkpoint
                self.aggregator.checkpoint(force=True)
        finally:
            self.aggregator.close()
            self.state.state, self.state.since = "stopped", self.clock()

    def abandon(self, why: str) -> None:
        """The lease is lost: stop at once, write and ack nothing more."""
        log.warning("%s is lost (%s): stopping without a checkpoint", self.key, why)
        with self._lock:
            self._closed = True
        self.state.state, self.state.since = "stopping", self.clock()
        try:
            self.aggregator.halt()
        finally:
            self.aggregator.close()
            self.state.state, self.state.since = "stopped", self.clock()

    def status(self) -> dict[str, Any]:
        ring = self.ring
        return {
            "key": self.key,
            "copy": self.copy,
            "partition": self.partition,
            "state": self.state.state,
            "since": self.state.since,
            "opened_in": self.state.opened_in,
            "rebuilt_cells": self.state.rebuilt_cells,
            "series": self.registry.n_series,
            "ring_bytes": ring.nbytes,
            "newest_minute": None if ring.head is None else ring.head * 60,
            "aggregator": {
                "points": self.aggregator.stats.points,
                "batches": self.aggregator.stats.batches,
                "fold_seconds": self.aggregator.stats.fold_seconds,
                "checkpoints": self.aggregator.stats.checkpoints,
                "checkpoint_error": self.aggregator.stats.checkpoint_error,
                "fold_error": self.aggregator.stats.fold_error,
            },
        }
