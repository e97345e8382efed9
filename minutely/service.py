"""The composition root: builds every part from ``Settings`` and owns start and stop.

    ingest (decode + validate) ─► bus ─► aggregator ─► hot ring ◄─ query ◄─ api
                                          │ acks          │ sink         │
                                          ▼               ▼              │
                                     Checkpointer ─► StoreWriter ─► store (ClickHouse)

The checkpointer exists on a durable bus (NATS) with a store; it writes the store and acks
the bus (``checkpoint.py``). On the embedded bus the writer inserts about once a second.

Only this module knows the whole chain; every other module gets what it needs passed in.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool

from minutely import failpoints, ringsnapshot, workers
from minutely.aggregate import Aggregator
from minutely.bus import Bus, MemoryBus
from minutely.checkpoint import Checkpointer
from minutely.config import Settings
from minutely.counters import COUNTER_FILE, read_counters, write_counters
from minutely.errors import Backpressure, ConfigError, PayloadTooLarge, Unavailable
from minutely.graphite_server import GraphiteListener
from minutely.hot import HotRing
from minutely.ingest import Decoded, decode
from minutely.ingest.idempotency import LEDGER_NAME, IdempotencyKeys
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Decoder, Limits
from minutely.ingest.validate import Body
from minutely.kinds import Kind, Kinds, KindsFile
from minutely.letters import LetterBox, points_of
from minutely.limits import CardinalityGuard, Refusals
from minutely.model import PointBatch
from minutely.query import Query
from minutely.registry import Registry
from minutely.store import Retention, Store, StoreConfig, StoreCorrupt, StoreError
from minutely.store_writer import CUTS_FILE, StoreWriter, rebuild_ring

log = logging.getLogger(__name__)

#: what Retry-After says while the store or the fold holds ingest back: a few writer passes
STORE_RETRY_AFTER = 5.0


class _IngestPath:
    """Decode, validate and publish: what every process that takes points does."""

    settings: Settings
    clock: Callable[[], float]
    bus: Bus
    #: requests refused per limit (``limits.py``): status and /metrics show them
    refusals: Refusals
    #: refuses new series past the cardinality limits; a node without a registry has none
    cardinality: CardinalityGuard | None = None

    def oldest_accepted(self, now: float) -> float:
        raise NotImplementedError

    @property
    def max_body_bytes(self) -> int:
        return self.settings.max_body_bytes

    def decode(self, body: Body, content_type: str) -> Decoded:
        now = self.clock()
        return decode(
            body,
            content_type,
            now=now,
            oldest=self.oldest_accepted(now),
            max_future=self.settings.max_future,
            max_errors=self.settings.max_errors,
            horizon=self.horizon(),
            max_name_bytes=self.settings.max_name_bytes,
            max_slow_json_bytes=self.settings.max_slow_json_bytes,
        )

    def checked(self, decoded: Decoded) -> Decoded:
        """``decoded`` if it is within the per-request limits (points, new series); raises
        ``PayloadTooLarge`` or ``SeriesLimit`` before any of it is published."""
        points = decoded.accepted + decoded.rejected
        most = self.settings.max_points_per_request
        if points > most:
            msg = (
                f"{points} points is over the limit of {most} points per request"
                " (max_points_per_request): send them in smaller requests"
            )
            raise PayloadTooLarge(msg, "max_points_per_request")
        if self.cardinality is not None:
            self.cardinality.admit(decoded.batch)
        for limit, n in decoded.by_limit.items():  # points, counted once the request is taken
            self.refusals.add(limit, n)
        return decoded

    def new_points(self, batch: PointBatch) -> npt.NDArray[np.bool_] | None:
        """Per point of ``batch``, whether its series is new to the node (None: none is, or
        the node counts no series): Graphite drops these when a series limit refuses."""
        return None if self.cardinality is None else self.cardinality.registry.new_points(batch)

    def limits(self) -> Limits:
        """The accept window now, for a protocol decoder (``ingest_with``)."""
        now = self.clock()
        return Limits(
            now,
            self.oldest_accepted(now),
            self.settings.max_future,
            self.settings.max_errors,
            self.horizon(),
            self.settings.max_name_bytes,
        )

    @functools.cached_property
    def label_mapping(self) -> LabelMapping:
        """How the protocols' labels become (server, metric), from the settings."""
        return label_mapping(self.settings)

    def horizon(self) -> str:
        """What the oldest accepted time is, in the words of a refused point's reason."""
        if self.settings.store != "none":
            days = self.settings.retention_1m / 86400
            return f"the 1-minute tier's retention ({days:g} days)"
        return "the hot window"

    async def ingest(
        self, body: Body, content_type: str, idempotency_key: str | None = None
    ) -> Decoded:
        """Decode, validate and publish one request body; raises Backpressure when full.

        A retry carrying the same ``idempotency_key`` and body within the bus's duplicate
        window (an import block's key: ever after) is answered the same way and its points
        count once; the key with another body raises ``IdempotencyConflict``.
        """
        self.admit()
        self._refuse_when_full(len(body))
        decoded = await workers.run(lambda: self.checked(self.decode(body, content_type)))
        return await self._publish(decoded, body, idempotency_key)

    async def ingest_with(
        self, decoder: Decoder, body: Body = b"", idempotency_key: str | None = None
    ) -> Decoded:
        """As ``ingest``, with a protocol's own decoder (called with ``limits()`` on a worker
        thread); ``body`` is what an ``idempotency_key`` is checked against."""
        self.admit()
        self._refuse_when_full(len(body))
        decoded = await workers.run(lambda: self.checked(decoder(self.limits())))
        return await self._publish(decoded, body, idempotency_key)

    def admit(self) -> None:
        """Raise ``Unavailable`` when a node cannot take points now (nothing here)."""

    def _refuse_when_full(self, body_bytes: int) -> None:
        """429 before decoding when the embedded bus has no room for the body's points: under
        overload a refusal must cost far less than an acceptance, or the refusals take the CPU
        the aggregator needs. The points' bytes in the bus are estimated as a quarter of the
        body's (an Arrow body takes about as many, a JSON one three or more times as many):
        erring towards a refusal for JSON, which the client retries."""
        if isinstance(self.bus, MemoryBus) and (message := self.bus.full_message(body_bytes // 4)):
            raise Backpressure(message)

    def declare_kinds(self, kinds: dict[str, str]) -> int:
        """Take the metric kinds a protocol or client declared (a node that folds keeps
        them; an ingest-only node has none to keep them in)."""
        return 0

    async def _publish(self, decoded: Decoded, body: Body, idempotency_key: str | None) -> Decoded:
        if decoded.kinds:  # kept before the points are published, so a replay sees them
            await run_in_threadpool(self.declare_kinds, decoded.kinds)
        claim = None
        if idempotency_key is not None:
            key = idempotency_key
            claim = await workers.run(lambda: self.idempotency.check(key, body))
            if claim.stored:
                return decoded  # an import block published before: answered, not applied
        await self.bus.publish(decoded.batch, idempotency_key=idempotency_key)
        if claim is not None:  # no await before it: a cancelled request still lists its block
            self.idempotency.published(claim)
        failpoints.hit("ingest.published")
        return decoded

    def limits_status(self) -> dict[str, Any]:
        """The limits in force and how many requests each refused (``/api/v1/status``)."""
        s = self.settings
        return {
            "refused": self.refusals.snapshot(),
            "max_series": s.series_limit if self.cardinality is not None else None,
            "max_new_series_per_minute": s.max_new_series_per_minute,
            "max_points_per_request": s.max_points_per_request,
            "max_body_bytes": s.max_body_bytes,
            "max_inflight_body_bytes": s.max_inflight_body_bytes,
            "max_slow_json_bytes": s.max_slow_json_bytes,
            "max_name_bytes": s.max_name_bytes,
            "max_query_cells": s.max_query_cells,
        }

    graphite: GraphiteListener | None = None

    def start_graphite(self) -> None:
        """Listen for Graphite plaintext when ``graphite_port`` is set (on the running loop)."""
        s = self.settings
        if s.graphite_port:
            listener = GraphiteListener(self, s.host, s.graphite_port, s.graphite_server_node)
            self.graphite = listener.listen()

    async def stop_graphite(self) -> None:
        if self.graphite is not None:
            await self.graphite.close()
            self.graphite = None

    @functools.cached_property
    def idempotency(self) -> IdempotencyKeys:
        """The keys' bodies; import blocks are kept in the data dir when there is a store,
        since only then do their points outlive the process."""
        kept = self.settings.store != "none"
        ledger = Path(self.settings.data_dir) / LEDGER_NAME if kept else None
        return IdempotencyKeys(ledger, clock=self.clock)


class IngestNode(_IngestPath):
    """An ingest-only process (``minutely ingest``): HTTP receivers that validate and publish
    to a shared bus, with no ring, store or queries. Several run side by side in front of one
    ``minutely serve`` that aggregates from the same NATS JetStream stream."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        bus: Bus | None = None,
        kinds: Kinds | None = None,
    ) -> None:
        if bus is None and settings.bus == "memory":
            msg = "bus: an ingest-only node needs a shared bus (--bus nats://host:4222)"
            raise ConfigError(msg)
        self.settings = settings
        self.clock = clock
        self._own_bus = bus is None
        self.bus = bus or _make_bus(settings)
        #: where the protocols' declarations go (a cluster node's); None: nowhere
        self.kinds = kinds
        self.refusals = Refusals()
        self.started_at = clock()

    def declare_kinds(self, kinds: dict[str, str]) -> int:
        return 0 if self.kinds is None else self.kinds.declare(kinds)

    def open(self) -> IngestNode:
        """Connect the bus (unless it was given, opened); returns ``self``."""
        if self._own_bus:
            self.bus.open()
        return self

    def oldest_accepted(self, now: float) -> float:
        """The aggregator's rule, from the same settings: retention with a store, else the
        hot window (the aggregator drops and counts what its window no longer holds)."""
        if self.settings.store != "none":
            return now - self.settings.retention_1m + 3600
        return now - self.settings.hot_window + 60

    def start(self) -> None:
        self.start_graphite()
        log.info("minutely ingest node started: %s", self.settings)

    async def stop(self) -> None:
        await self.stop_graphite()
        await self.bus.close()

    def status(self) -> dict[str, Any]:
        return {
            "role": "ingest",
            "uptime": self.clock() - self.started_at,
            "limits": self.limits_status(),
            "bus": [asdict(s) for s in self.bus.stats()],
        }


@dataclass(frozen=True, slots=True)
class RingStart:
    """How ``open`` filled the hot ring: from its snapshot or rebuilt from the store (and why
    the snapshot was not used), the series-minutes it then held and the seconds it took."""

    source: Literal["snapshot", "store"]
    series_minutes: int
    seconds: float
    snapshot_not_used: str | None


class Service(_IngestPath):
    """One running minutely: registry, hot ring, bus, aggregator and query, wired.

    Life: ``Service(settings)`` builds every part and touches nothing outside the process;
    ``open()`` does the I/O, in this order (each step needs the one before it):

    1. the store: schema made or migrated, damaged parts refused, expiry's horizons set,
       the registry's names loaded;
    2. what an earlier run left: the spill inserted (the writer), the last checkpoint's
       rows made sure of in the store (a durable bus);
    3. the hot window put back from the ring's snapshot a clean stop left, else rebuilt
       from the store; the checkpoint's open minutes put back;
    4. the bus connected, the checkpoint told its partitions' generations, the
       aggregator's consumer opened.

    ``start()`` starts the writer's and the aggregator's threads; ``stop()`` refuses new
    points, folds and writes what is left, and releases everything.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        data = Path(settings.data_dir)
        self.dead_letters = LetterBox(data / "dead-letters", clock)
        #: the store's detached parts found at open (``allow_damaged_store`` let it start)
        self.damaged: list[tuple[str, str, str]] = []
        self.registry = Registry()
        #: each metric's kind; declarations are kept in the data dir when there is a store
        self.kinds = Kinds(
            settings.counter_patterns,
            save=None if settings.store == "none" else KindsFile(data).write,
        )
        #: the counter state a stop leaves for the next start on the embedded bus
        self.counter_file = data / COUNTER_FILE
        #: the ring a clean stop leaves for the next start
        self.snapshot_dir = data / ringsnapshot.DIRECTORY
        self.refusals = Refusals()
        self.cardinality = CardinalityGuard(
            self.registry, settings.series_limit, settings.max_new_series_per_minute, clock
        )
        #: a bus given is the caller's, opened; one made here is opened by ``open``
        self._own_bus = bus is None
        self.bus: Bus = bus or _make_bus(settings)
        # A durable bus keeps what is not acked: checkpoints make the fold exactly once.
        durable = self.bus.durable
        self.store: Store | None = None
        self.writer: StoreWriter | None = None
        self.checkpointer: Checkpointer | None = None
        dsn = settings.store_dsn
        if dsn is not None:
            retention = Retention(
                minute=settings.retention_1m, hour=settings.retention_1h, day=settings.retention_1d
            )
            self.store = Store(
                StoreConfig(
                    dsn=dsn,
                    retention=retention,
                    engine_memory=settings.store_memory,
                    engine_mark_cache=settings.store_mark_cache,
                )
            )
            self.writer = StoreWriter(
                self.store,
                self.registry,
                # checkpoints write on a durable bus; else the open minutes go every interval
                interval=None if durable else settings.open_minutes_every,
                expire_every=settings.expire_every,
                clock=clock,
                max_bytes=settings.writer_max_bytes,
                dead_letters=self.dead_letters,
                # a durable bus keeps what a stop could not write: no spill to hold disk for
                spill=None if durable else LetterBox(data / "spill", clock),
                cuts=data / CUTS_FILE,
            )
        self.ring = HotRing(
            settings.hot_minutes,
            settings.live_minutes,
            sink=None if self.writer is None else self.writer.accept,
        )
        if self.store is not None and self.writer is not None:
            if durable:
                self.checkpointer = Checkpointer(
                    data / "checkpoint", self.store, self.registry, self.ring, self.writer
                )
            else:  # a crash then loses at most one interval of what was folded
                self.writer.before_flush = self.ring.hand_on_live
        self.aggregator = Aggregator(
            self.registry,
            self.ring,
            self.bus,
            checkpointer=self.checkpointer,
            checkpoint_every=settings.checkpoint_every,
            dead_letters=self.dead_letters,
            kinds=self.kinds,
        )
        self.query = Query(self.registry, self.ring, self.store, settings.max_query_cells)
        self._replaying = asyncio.Lock()
        #: rows written to the store and not to the ring (replayed dead letters): the ring
        #: differs from the store, so a stop keeps no snapshot of it
        self._store_only_rows = 0
        #: how the last ``open`` filled the ring (None without a store)
        self.ring_start: RingStart | None = None
        self.started_at = clock()

    def open(self) -> Service:
        """Do the I/O that makes the parts ready (the class docstring's order); returns
        ``self``. Raises ``StoreCorrupt`` (damaged store, newer formats), ``StoreError``
        (unreachable) or the bus's ``Unavailable``, with nothing left open."""
        store, writer = self.store, self.writer
        # a stop that died while it wrote the ring's snapshot: before recovery needs the disk
        ringsnapshot.discard_partial(self.snapshot_dir)
        try:
            if store is not None and writer is not None:
                if self.settings.store_dsn and self.settings.store_dsn.startswith("chdb://"):
                    Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
                store.migrate()
                self.damaged = self._check_damage(store)
                store.expire(self.clock())  # reads stop at each tier's horizon from now on
                store.load_registry(into=self.registry)
                self.kinds.adopt(KindsFile(self.settings.data_dir).read())
                if self.checkpointer is None:  # a durable bus keeps it in its checkpoints
                    self.aggregator.restore_counters(read_counters(self.counter_file))
                recovered = writer.recover_spill()  # the store then has what a stop spilled
                if recovered:
                    log.info("inserted %d rows the last stop had spilled", recovered)
                if self.checkpointer is not None:
                    self.checkpointer.recover()  # the store then has every checkpointed row
                self._fill_ring(store)
                if self.checkpointer is not None:
                    restored = self.checkpointer.restore_open()
                    log.info("restored %d open minute cells from the checkpoint", restored)
            if self._own_bus:
                self.bus.open()
            if self.checkpointer is not None:  # offsets count in the logs the checkpoint saw
                self.checkpointer.adopt({s.partition: s.generation for s in self.bus.stats()})
            self.aggregator.open()
            # read once: a crash later in this run must not give the next start these samples,
            # whose increases this run stores from now on
            self.counter_file.unlink(missing_ok=True)
        except BaseException:
            self.close()
            raise
        return self

    def oldest_accepted(self, now: float) -> float:
        """The oldest timestamp ingest accepts.

        With a store: the minute tier's retention (older points go to the store only).
        Without one: the start of the hot window, which trails the newest minute folded as
        well as the clock, so a point that passes is still inside it when it is folded.
        """
        if self.store is not None:
            return now - self.settings.retention_1m + 3600
        oldest = now - self.settings.hot_window + 60
        ring_oldest = self.ring.oldest_minute()
        if ring_oldest is not None:
            oldest = max(oldest, float(ring_oldest * 60 + 60))
        return oldest

    def _fill_ring(self, store: Store) -> None:
        """Put back the ring a clean stop left, else rebuild it from the store."""
        began = time.perf_counter()
        got, why_not = self._take_snapshot(store)
        if got is None:
            rebuild_ring(store, self.registry, self.ring, self.clock())
            how = "rebuilt the hot ring from the store"
        else:
            how = f"put back the hot ring from its snapshot ({got >> 20} MB)"
        held = self.ring.memory()["series_minutes"]
        took = time.perf_counter() - began
        self.ring_start = RingStart("store" if got is None else "snapshot", held, took, why_not)
        n_series = self.registry.n_series
        log.info("%s: %d series-minutes of %d series in %.1fs", how, held, n_series, took)

    def _take_snapshot(self, store: Store) -> tuple[int | None, str | None]:
        """The ring a clean stop left, put back (the bytes read); else None and why not."""
        if not self.settings.ring_snapshot:
            ringsnapshot.discard(self.snapshot_dir)
            return None, "ring_snapshot is off"
        try:
            got = ringsnapshot.take(
                self.snapshot_dir, self.ring, self.registry, store.change_marker
            )
        except ringsnapshot.Refused as exc:
            log.warning("the hot ring's snapshot is not used (%s): rebuilding from the store", exc)
            return None, f"refused: {exc}"
        if got is None:
            return None, "none was left: the last stop was not clean, or kept none"
        return got, None

    def _save_snapshot(self, store: Store) -> None:
        """Write the ring for the next start (the store holds everything folded and the live
        minutes are handed on: the caller checked); a failure only costs that start a
        rebuild."""
        began = time.perf_counter()
        try:
            nbytes = ringsnapshot.save(
                self.snapshot_dir, self.ring, self.registry, store.change_marker()
            )
        except Exception:
            log.exception("the hot ring's snapshot could not be written; the next start rebuilds")
            ringsnapshot.discard(self.snapshot_dir)
            return
        if nbytes:
            log.info(
                "wrote the hot ring for the next start: %d MB in %.1fs",
                nbytes >> 20,
                time.perf_counter() - began,
            )

    def _check_damage(self, store: Store) -> list[tuple[str, str, str]]:
        """The store's detached parts: refuse to start on them unless told to go on."""
        damaged = store.damaged_parts()
        if not damaged:
            return damaged
        listed = "; ".join(f"{t}/{p} ({r or 'detached'})" for t, p, r in damaged[:5])
        more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
        msg = (
            f"the store has {len(damaged)} damaged or detached parts whose rows are not read:"
            f" {listed}{more}"
        )
        if not self.settings.allow_damaged_store:
            msg += (
                "; restore the data dir from a backup, or start with --allow-damaged-store"
                " (MINUTELY_ALLOW_DAMAGED_STORE=1) to serve what is left"
            )
            raise StoreCorrupt(msg)
        log.error("%s; starting anyway (allow_damaged_store)", msg)
        return damaged

    def admit(self) -> None:
        """503 while the store cannot keep up or batches cannot be folded: a 200 must mean
        the points will be answered."""
        if self.writer is not None and self.writer.full:
            msg = (
                f"the store is behind: {self.writer.stats.pending_bytes} bytes wait for it"
                f" (writer_max_bytes {self.writer.max_bytes}); last error:"
                f" {self.writer.stats.last_error}"
            )
            raise Unavailable(msg, retry_after=STORE_RETRY_AFTER)
        if self.aggregator.stats.fold_error is not None:
            msg = f"points cannot be folded now: {self.aggregator.stats.fold_error}"
            raise Unavailable(msg, retry_after=STORE_RETRY_AFTER)

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
        self.aggregator.start()
        self.start_graphite()
        log.info("minutely started: %s", self.settings)

    async def stop(self) -> None:
        """Refuse new points (503), fold what the bus holds, write everything, stop.

        Never raises for the store or a batch that will not fold: what the store cannot take
        is spilled (embedded bus) or stays unacked on the durable bus, and the next start
        picks it up; the store is released whatever happens."""
        complete = False  # the store holds everything folded: the ring's snapshot may go
        try:
            await self.stop_graphite()
            await self.bus.close()
            try:
                self.aggregator.stop()
                complete = True
            except Exception:
                log.exception("the aggregator could not fold everything at stop")
            if self.writer is not None and self.checkpointer is None:
                try:  # the next start's increases continue from each counter's last sample
                    write_counters(self.counter_file, self.aggregator.counter_rows())
                except Exception:
                    log.exception("the counters' last samples could not be kept at stop")
            if self.writer is not None and self.store is not None:
                try:
                    self.ring.hand_on_live()  # the minutes still filling reach the store too
                    # durable bus: the last checkpoint, which must hold everything folded
                    checkpointed = self.aggregator.checkpoint(force=True)
                    spilled = self.writer.stats.spilled_rows
                    self.writer.stop()
                    complete &= self.checkpointer is None or checkpointed
                    complete &= self.writer.stats.spilled_rows == spilled
                except Exception:
                    complete = False
                    log.exception("the store could not take everything at stop")
                if complete and self.settings.ring_snapshot and self._store_only_rows:
                    log.info(
                        "no snapshot of the hot ring: %d replayed rows went to the store"
                        " alone, and the next start rebuilds the ring with them",
                        self._store_only_rows,
                    )
                elif complete and self.settings.ring_snapshot:
                    self._save_snapshot(self.store)
        finally:
            self.close()

    @property
    def answers(self) -> Query:
        return self.query

    def server_names(self) -> list[str]:
        return self.registry.servers.names()

    def metric_names(self) -> list[str]:
        return self.registry.metrics.names()

    def metric_kind(self, metric: str) -> Kind:
        return self.kinds.of(metric)

    def declare_kinds(self, kinds: dict[str, str]) -> int:
        return self.kinds.declare(kinds)

    def dead_letter_list(self) -> dict[str, Any]:
        """The dead letters with what each holds and why (``GET /api/v1/dead-letters``)."""
        box = self.dead_letters
        letters: list[dict[str, object]] = []
        for path in box.paths():
            try:
                letter = box.read(path)
            except (OSError, ValueError) as exc:
                letters.append({"file": path.name, "error": str(exc)})
                continue
            letters.append(
                {
                    "file": path.name,
                    "kind": letter.kind,
                    "rows": letter.table.num_rows,
                    "reason": letter.reason,
                    "written_at": letter.written_at,
                }
            )
        return {"directory": str(box.directory), "letters": letters}

    async def replay_dead_letters(self) -> dict[str, int]:
        """Send every dead letter where it was going: rows into the store now, points
        through the bus. A letter is removed only once its rows are in the store (inserted
        with a token named after it, so a replay repeated after a crash adds them once) or
        its points are published (with an idempotency key named after it); rows refused
        again become a new letter. One replay at a time. Returns what was replayed."""
        done = {"letters": 0, "rows": 0, "points": 0}
        async with self._replaying:
            for path in self.dead_letters.paths():
                letter = self.dead_letters.read(path)
                if letter.kind == "rows":
                    if self.writer is None:
                        continue  # rows for a store, and this server has none
                    writer = self.writer
                    rows = await run_in_threadpool(
                        writer.replay, letter.table, f"replay-{path.stem}"
                    )
                    done["rows"] += rows
                    self._store_only_rows += rows  # the replay gives them to the store alone
                else:
                    batch = points_of(letter.table)
                    await self.bus.publish(batch, idempotency_key=f"replay-{path.stem}")
                    done["points"] += len(batch)
                self.dead_letters.remove(path)
                done["letters"] += 1
        return done

    def close(self) -> None:
        """Release the store (the embedded engine can then be opened again) and stop the
        ring's decoding thread."""
        self.ring.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    def hot_status(self) -> dict[str, Any]:
        """The ring's size and what its memory holds: ``bytes`` (the ring's own: open
        slots, live rows, stamps and sealed blocks), ``bytes_per_series_minute`` over the
        whole ring (those and the registry's indexes, each in ``memory``) per series-minute
        held, ``states``: bytes per series-minute of open, hour-block and compacted
        minutes, ``sealing``: what sealing and compaction did and the CPU they took, and
        ``start``: how the last start filled the ring (``RingStart``)."""
        ring = self.ring
        memory = ring.memory()
        held = memory.pop("series_minutes")
        own = sum(memory.values())
        memory["index"] = self.registry.nbytes
        return {
            "window_minutes": ring.minutes,
            "newest_minute": None if ring.head is None else ring.head * 60,
            "capacity": ring.capacity,
            "bytes": own,
            "series_minutes": held,
            "memory": memory,
            "bytes_per_series_minute": round(sum(memory.values()) / max(1, held), 2),
            "states": ring.states(),
            "sealing": asdict(ring.seal_stats),
            "start": None if self.ring_start is None else asdict(self.ring_start),
        }

    def store_memory(self) -> dict[str, int] | None:
        """The storage engine's memory by holder; None without a store or while it fails."""
        if self.store is None:
            return None
        try:
            return self.store.memory()
        except StoreError:
            return None

    def status(self) -> dict[str, Any]:
        # The bus is read first: a commit follows its checkpoint, so a backlog read as
        # drained is never shown beside an aggregator that has not yet counted the checkpoint.
        bus = [asdict(s) for s in self.bus.stats()]
        return {
            "role": "serve",
            "uptime": self.clock() - self.started_at,
            "servers": len(self.registry.servers),
            "metrics": len(self.registry.metrics),
            "series": self.registry.n_series,
            "limits": self.limits_status(),
            "hot": self.hot_status(),
            "aggregator": asdict(self.aggregator.stats),
            "store": None if self.writer is None else asdict(self.writer.stats),
            "store_memory": self.store_memory(),
            "dead_letters": self.dead_letters.summary(),
            "damaged_parts": [{"table": t, "part": p, "reason": r} for t, p, r in self.damaged],
            "bus": bus,
            **({} if self.graphite is None else {"graphite": asdict(self.graphite.counts)}),
        }


def label_mapping(settings: Settings) -> LabelMapping:
    return LabelMapping(
        server_labels=LabelMapping.parse_list(settings.server_labels),
        strip_instance_port=settings.strip_instance_port,
        default_server=settings.default_server,
    )


def _make_bus(settings: Settings) -> Bus:
    if settings.bus == "memory":
        return MemoryBus(settings.partitions, settings.bus_max_bytes)
    from minutely.bus.nats import NatsBus  # only when asked for: nats-py is imported with it

    return NatsBus(settings.bus, partitions=settings.partitions, max_bytes=settings.bus_max_bytes)
