"""Between the hot ring and the storage tier: batched writes, start-up rebuild, expiry.

``StoreWriter`` is the ring's sink. The ring hands it, under its lock, every partial it has
merged and not handed on yet: each closed minute once, each late point's correction, each
point too old for the ring, and (on the embedded bus) the open minutes' deltas every second,
so a crash costs at most about a second. ``accept`` only queues them (the aggregator must not
wait on disk); a writer thread turns the queue into one insert about every second (ClickHouse
wants few large inserts), saving new names first so a stored row never names an unknown id.
The same thread drops expired partitions on a schedule. On a durable bus the checkpoints
(``checkpoint.py``) take the queue instead (``interval=None``): each checkpoint is one insert.

Nothing accepted is dropped here:

- A taken block keeps its insert token until it lands, so a retry after a failure that did
  land adds nothing twice. Failed writes are retried with backoff (doubling to
  ``MAX_BACKOFF``) while everything newer waits in the queue.
- An insert that fails ``ISOLATE_AFTER`` times while the store answers a probe is not an
  outage but rows the engine refuses: it is split in halves until the refused rows are
  alone, and those are set aside as a dead letter (``letters.py``); the rest lands.
- ``full`` says the queue holds ``max_bytes`` or more: ingest then answers 503.
- A stop that cannot write spills the queue to a file that the next start inserts
  (``recover_spill``) before the ring is rebuilt.

``rebuild_ring`` loads the hot window back from the store at start, hour by hour, so a
restart answers every query as before for every minute that reached the store.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from minutely.hot import HotRing
from minutely.letters import LetterBox, rows_of, rows_table
from minutely.model import I32, I64, Partials, PointBatch
from minutely.registry import Registry
from minutely.store import Store, StoreError
from minutely.store.inserts import MAX_ROWS_PER_INSERT, piece_tokens

log = logging.getLogger(__name__)

#: rows one read of ``rebuild_ring`` asks for, at most about: ~40 bytes each as columns
LOAD_ROWS = 1 << 24
#: reads of ``rebuild_ring`` made ahead of the one the ring is loading (0: one at a time)
LOAD_AHEAD = 1
#: failed attempts of one insert, with the store answering, before its rows are isolated
ISOLATE_AFTER = 3
#: a refused piece this small, or split this often (a bound on the inserts one refused
#: piece costs: 2**MAX_SPLITS), is set aside whole
LEAF_ROWS = 1
#: the data dir's record of pieces split or set aside (``StoreWriter.cuts``)
CUTS_FILE = "insert-cuts.log"
#: how ``StoreWriter.cuts`` records a piece that was split in halves, or set aside
SPLIT = "split"
SET_ASIDE = "aside"
MAX_SPLITS = 12
#: the longest wait between two attempts of a failing write
MAX_BACKOFF = 30.0
#: bytes one queued row holds (series id, minute, min, max, sum, count)
ROW_BYTES = 4 + 8 + 8 + 8 + 8 + 4
#: rows one flush takes from the queue at a time (one insert's worth): the copies an insert
#: makes (the block, its Arrow table, the engine's) scale with this, not with the queue
BLOCK_ROWS = MAX_ROWS_PER_INSERT


#: engine error codes that say "not now" rather than "never": memory (241), space (243),
#: time-outs (159, 209), network (210), too many queries (202), merges behind inserts (252)
_TRANSIENT_CODES = frozenset({159, 202, 209, 210, 241, 243, 252})
_CODE = re.compile(r"Code: (\d+)")


def transient(exc: BaseException) -> bool:
    """Does the store's error say the same insert may succeed later (never dead-letter)?"""
    text = str(exc)
    if "No space left on device" in text or "Cannot reserve" in text:
        return True
    if "partitions for single INSERT" in text:  # 252 too, but the same insert fails again
        return False
    return any(int(code) in _TRANSIENT_CODES for code in _CODE.findall(text))


@dataclass(slots=True)
class WriterStats:
    """Running totals since start."""

    rows: int = 0
    inserts: int = 0
    #: rows waiting for the store, and their bytes (``full`` compares them to the bound)
    pending: int = 0
    pending_bytes: int = 0
    seconds: float = 0.0
    errors: int = 0
    #: the last write's failure while writes fail, and since when (unix seconds)
    last_error: str | None = None
    failing_since: float | None = None
    expired_partitions: int = 0
    #: rows the engine refused, set aside in dead letters (files, rows)
    dead_letters: int = 0
    dead_rows: int = 0
    #: rows of spill files inserted at start, and rows spilled at stop
    recovered_rows: int = 0
    spilled_rows: int = 0


@dataclass(slots=True)
class _Block:
    """Rows taken from the queue for one insert, named, with the token they keep."""

    server_ids: npt.NDArray[np.uint32]
    metric_ids: npt.NDArray[np.uint32]
    minutes: I64
    parts: Partials
    token: str

    @property
    def rows(self) -> int:
        return int(self.minutes.shape[0])


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
        max_bytes: int = 256 << 20,
        dead_letters: LetterBox | None = None,
        spill: LetterBox | None = None,
        before_flush: Callable[[], None] | None = None,
        block_rows: int = BLOCK_ROWS,
        cuts: Path | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.interval = interval
        self.expire_every = expire_every
        self.clock = clock
        self.max_bytes = max_bytes
        self.dead_letters = dead_letters
        self.spill_box = spill
        #: called by the writer's thread before each timed flush (the ring's open minutes)
        self.before_flush = before_flush
        self.block_rows = block_rows
        self.stats = WriterStats()
        self._queue: list[tuple[I32, I64, Partials]] = []
        self._retry: list[_Block] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_expiry = 0.0
        self._run_id = secrets.token_hex(6)
        self._seq = 0
        self._failures: dict[str, int] = {}
        #: per insert token: the pieces still to insert after a failure (split ones included)
        self._unfinished: dict[str, list[tuple[pa.Table, str, int]]] = {}
        #: where the tokens of pieces split or set aside are kept, so that an insert made
        #: again with its token after a restart (a checkpoint's, a spill's) is cut as before
        self.cuts = cuts
        self._cut: dict[str, str] | None = None

    # -- the queue -------------------------------------------------------------------------

    @property
    def spill_bytes(self) -> int:
        """Disk held for a spill: a full queue, compressed, with room to spare."""
        return max(8 << 20, self.max_bytes // 2)

    @property
    def full(self) -> bool:
        """Is the queue at its bound? (Ingest answers 503 until it drains.)"""
        return self.stats.pending_bytes >= self.max_bytes

    def accept(self, series: I32, minutes: I64, parts: Partials) -> None:
        """The ring's sink: queue and return at once (called under the ring's lock)."""
        with self._lock:
            self._queue.append((series, minutes, parts))
            self._count(int(series.shape[0]))

    def _count(self, rows: int) -> None:
        self.stats.pending += rows
        self.stats.pending_bytes += rows * ROW_BYTES

    def take(self) -> tuple[I32, I64, Partials]:
        """Everything queued so far, as one block, leaving the queue empty."""
        with self._lock:
            queued, self._queue = self._queue, []
            self._count(-sum(int(q[0].shape[0]) for q in queued))
        return _joined(queued)

    def _take_block(self, limit: int) -> int:
        """Move the queue's oldest ``limit`` rows (or all, if fewer) into a block of their
        own, to be inserted with its token; returns the rows taken. The rows stay counted in
        ``pending`` throughout: it never reads 0 while rows are on their way to the store."""
        with self._lock:
            queued, rows = [], 0
            while self._queue and rows < limit:
                series, minutes, parts = self._queue.pop(0)
                k = limit - rows
                if series.shape[0] > k:  # the rest stays first in the queue
                    rest = Partials(*(f[k:] for f in parts.fields()))
                    self._queue.insert(0, (series[k:], minutes[k:], rest))
                    series, minutes = series[:k], minutes[:k]
                    parts = Partials(*(f[:k] for f in parts.fields()))
                queued.append((series, minutes, parts))
                rows += int(series.shape[0])
        try:
            series, minutes, parts = _joined(queued)
            server_ids, metric_ids = self.registry.series_of(series)
        except BaseException:  # (memory, say) the rows go back, ahead of what came since
            with self._lock:
                self._queue[:0] = queued
            raise
        if rows == 0:
            return 0
        self._seq += 1
        block = _Block(
            server_ids.astype(np.uint32),
            metric_ids.astype(np.uint32),
            minutes,
            parts,
            f"w-{self._run_id}-{self._seq}",
        )
        with self._lock:
            self._retry.append(block)
        return rows

    def put_back(self, series: I32, minutes: I64, parts: Partials) -> None:
        """Queue a block ``take`` gave out again, ahead of what came since."""
        if series.shape[0] == 0:
            return
        with self._lock:
            self._queue.insert(0, (series, minutes, parts))
            self._count(int(series.shape[0]))

    # -- inserts ---------------------------------------------------------------------------

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

    def insert(
        self,
        server_ids: npt.ArrayLike,
        metric_ids: npt.ArrayLike,
        minutes: I64,
        parts: Partials,
        token: str,
        patience: int = ISOLATE_AFTER,
    ) -> int:
        """Insert rows so that none the engine refuses holds back the others; returns the
        rows written (dead-lettered ones not counted).

        Each piece of the insert (``Store.minute_pieces``) goes in with its own token. A
        piece that has failed ``patience`` times, with the store answering a probe, is split
        in halves (fresh tokens: a refused insert added nothing) until the refused rows are
        alone, and those go to a dead letter. Raises ``StoreError`` when the store does not
        answer (an outage), the failure is one that passes (``transient``: space, memory,
        time-outs, merges behind) or a piece has not yet failed ``patience`` times: the
        caller retries with the same ``token``, which resumes where this call stopped.
        """
        todo = self._unfinished.pop(token, None)
        if todo is None:
            todo = self._pieces(server_ids, metric_ids, minutes, parts, token)
        written = 0
        while todo:
            piece, piece_token, splits = todo[0]
            began = time.perf_counter()
            try:
                written += self.store.insert_piece(piece, piece_token)
            except StoreError as exc:
                self.stats.errors += 1
                if transient(exc) or not self.store.reachable():
                    # an outage, or "not now": never counted towards isolating the rows;
                    # a retry resumes here, and pieces split off keep their own tokens
                    self._unfinished[token] = todo
                    raise
                tries = self._failures[piece_token] = self._failures.get(piece_token, 0) + 1
                if tries < patience:
                    self._unfinished[token] = todo
                    raise
                n = int(piece.num_rows)
                if n <= LEAF_ROWS or splits >= MAX_SPLITS:
                    try:
                        self._dead_letter(piece, piece_token, exc)
                        self._keep_cut(piece_token, SET_ASIDE)
                    except BaseException:
                        self._unfinished[token] = todo
                        raise
                    self._failures.pop(piece_token, None)
                    todo.pop(0)
                    continue
                try:  # before either half lands: a repeat must cut the piece the same way
                    self._keep_cut(piece_token, SPLIT)
                except BaseException:
                    self._unfinished[token] = todo
                    raise
                self._failures.pop(piece_token, None)
                halves = [
                    (piece.slice(0, n // 2), f"{piece_token}a", splits + 1),
                    (piece.slice(n // 2), f"{piece_token}b", splits + 1),
                ]
                for half in halves:
                    self._failures[half[1]] = patience - 1  # its next failure splits it
                todo[:1] = halves
                continue
            self._failures.pop(piece_token, None)
            todo.pop(0)
            self.stats.seconds += time.perf_counter() - began
            self.stats.rows += int(piece.num_rows)
            self.stats.inserts += 1
        return written

    def _pieces(
        self,
        server_ids: npt.ArrayLike,
        metric_ids: npt.ArrayLike,
        minutes: I64,
        parts: Partials,
        token: str,
    ) -> list[tuple[pa.Table, str, int]]:
        """The inserts of these rows with their tokens, as ``Store.write_minutes`` makes
        them: (piece, token, splits so far)."""
        pieces = self.store.minute_pieces(server_ids, metric_ids, minutes, parts)
        tokens = piece_tokens(token, len(pieces))
        return self._as_cut_before([(p, str(t), 0) for p, t in zip(pieces, tokens, strict=True)])

    def _as_cut_before(
        self, todo: list[tuple[pa.Table, str, int]]
    ) -> list[tuple[pa.Table, str, int]]:
        """``todo`` with each piece an earlier insert split cut into the same halves (their
        tokens then say which landed) and each piece it set aside left out (its dead letter
        holds the rows, replayed or not): inserting a split piece whole would add again
        what its halves added."""
        cut = self._cuts()
        if not cut:
            return todo
        out: list[tuple[pa.Table, str, int]] = []
        stack = todo[::-1]
        while stack:
            piece, piece_token, splits = stack.pop()
            how = cut.get(piece_token)
            if how == SET_ASIDE:
                continue
            if how == SPLIT:
                n = int(piece.num_rows)
                stack.append((piece.slice(n // 2), f"{piece_token}b", splits + 1))
                stack.append((piece.slice(0, n // 2), f"{piece_token}a", splits + 1))
                continue
            out.append((piece, piece_token, splits))
        return out

    def _cuts(self) -> dict[str, str]:
        """The pieces split or set aside so far, read from ``cuts`` at the first use."""
        if self._cut is None:
            self._cut = {}
            if self.cuts is not None and self.cuts.exists():
                for line in self.cuts.read_text().splitlines():
                    how, _, piece_token = line.partition(" ")
                    if how in (SPLIT, SET_ASIDE) and piece_token:
                        self._cut[piece_token] = how
        return self._cut

    def _keep_cut(self, piece_token: str, how: str) -> None:
        """Record that the piece ``piece_token`` was split or set aside, durably."""
        self._cuts()[piece_token] = how
        if self.cuts is None:
            return
        self.cuts.parent.mkdir(parents=True, exist_ok=True)
        with self.cuts.open("a") as f:
            f.write(f"{how} {piece_token}\n")
            f.flush()
            os.fsync(f.fileno())

    def _by_name(self, piece: pa.Table) -> pa.Table:
        """An insert piece (ids) as a ``rows`` letter's table (names)."""
        servers = np.asarray(self.registry.servers.names(), dtype=object)
        metrics = np.asarray(self.registry.metrics.names(), dtype=object)
        s = piece.column("server_id").to_numpy()
        m = piece.column("metric_id").to_numpy()
        minutes = piece.column("ts").to_numpy().astype(np.int64) // 60
        parts = Partials(
            piece.column("min").to_numpy(),
            piece.column("max").to_numpy(),
            piece.column("sum").to_numpy(),
            piece.column("count").to_numpy().astype(np.uint32),
        )
        return rows_table(servers[s], metrics[m], minutes, parts)

    def _dead_letter(self, piece: pa.Table, token: str, exc: Exception) -> None:
        """Set refused rows aside, by name, and log the engine's reason once."""
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        table = self._by_name(piece)
        if self.dead_letters is None:
            msg = f"the store refuses {piece.num_rows} rows ({reason}) and no dead-letter box"
            raise StoreError(msg) from exc
        path = self.dead_letters.put(f"rows-{token}", "rows", table, reason)
        self.stats.dead_letters += 1
        self.stats.dead_rows += int(piece.num_rows)
        log.error(
            "the store refused %d rows again and again (%s); set aside in %s: replay them with"
            " `minutely dead-letters replay` once the cause is fixed",
            piece.num_rows,
            reason,
            path,
        )

    def flush(self) -> int:
        """Insert everything queued so far, a block of at most ``block_rows`` at a time;
        returns the rows written.

        Blocks that failed before go first. On failure the rows stay taken, with their
        token, and are retried first next time; what was queued since waits behind them,
        as do rows queued while this runs (their names may not be saved yet).
        """
        with self._flushing:
            with self._lock:
                due = self.stats.pending - sum(b.rows for b in self._retry)
            if not self._retry and due <= 0:
                return 0
            self.store.save_registry(self.registry)  # every name the due rows use
            written = 0
            while self._retry or due > 0:
                if not self._retry:
                    taken = self._take_block(min(due, self.block_rows))
                    if taken == 0:
                        break
                    due -= taken
                b = self._retry[0]
                written += self.insert(b.server_ids, b.metric_ids, b.minutes, b.parts, b.token)
                with self._lock:
                    self._retry.pop(0)
                    self._count(-b.rows)
            return written

    # -- spills and dead letters -------------------------------------------------------------

    def spill(self, reason: str) -> int:
        """Write every row not yet in the store to spill files; returns the rows spilled.

        Each file is one insert piece still to make, with the token it would have gone in
        with (pieces of a block that landed are not spilled), so inserting the spill adds
        nothing that is already in the store, even when an insert landed unanswered."""
        if self.spill_box is None:
            return 0
        with self._flushing:
            while self._take_block(self.block_rows):
                pass
            with self._lock:
                blocks, self._retry = self._retry, []
                self._count(-sum(b.rows for b in blocks))
        todo: list[tuple[pa.Table, str, int]] = []
        for b in blocks:
            left = self._unfinished.pop(b.token, None)
            if left is None:
                left = self._pieces(b.server_ids, b.metric_ids, b.minutes, b.parts, b.token)
            todo += left
        spilled = 0
        self.spill_box.release()  # the disk may be full: the space held at start is for this
        for i, (piece, token, _) in enumerate(todo):
            try:
                path = self.spill_box.put(
                    f"spill-{token}", "rows", self._by_name(piece), reason, token=token
                )
            except OSError as exc:
                lost = sum(int(p.num_rows) for p, _, _ in todo[i:])
                log.critical(
                    "%d rows answered 200 could be written neither to the store (%s) nor to"
                    " a spill file in %s (%s): they are lost",
                    lost,
                    reason,
                    self.spill_box.directory,
                    exc,
                )
                raise
            spilled += int(piece.num_rows)
            log.warning(
                "the store could not take %d rows at stop; spilled to %s", piece.num_rows, path
            )
        self.stats.spilled_rows += spilled
        return spilled

    def recover_spill(self) -> int:
        """Start-up, before the ring is rebuilt: insert what the last stop spilled, each
        piece with its own token. Rows the engine refuses become dead letters; an
        unreachable store raises. Returns rows."""
        if self.spill_box is None:
            return 0
        recovered = 0
        for path in self.spill_box.paths():
            letter = self.spill_box.read(path)
            server_ids, metric_ids, minutes, parts = self._named(letter.table)
            self.store.save_registry(self.registry)
            token = letter.token or path.stem
            self.insert(server_ids, metric_ids, minutes, parts, token=token, patience=1)
            self.spill_box.remove(path)
            recovered += int(minutes.shape[0])
            log.info("inserted %d rows spilled at the last stop (%s)", minutes.shape[0], path)
        self.stats.recovered_rows += recovered
        return recovered

    def replay(self, table: pa.Table, token: str) -> int:
        """Insert a ``rows`` dead letter's rows now, with ``token`` (the same replay twice
        adds them once); rows refused again become a new letter. Returns rows written."""
        server_ids, metric_ids, minutes, parts = self._named(table)
        self.store.save_registry(self.registry)
        return self.insert(server_ids, metric_ids, minutes, parts, token=token, patience=1)

    def _named(
        self, table: pa.Table
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], I64, Partials]:
        """A ``rows`` letter's rows with ids from the registry (new names and series added)."""
        servers, metrics, minutes, parts = rows_of(table)
        batch = PointBatch.from_names(
            servers, metrics, np.zeros(len(minutes)), np.zeros(len(minutes))
        )
        series = self.registry.series_ids(batch)
        server_ids, metric_ids = self.registry.series_of(series)
        return server_ids, metric_ids, minutes, parts

    # -- the thread ------------------------------------------------------------------------

    def expire(self) -> None:
        dropped = self.store.expire(self.clock())
        n = sum(len(v) for v in dropped.values())
        if n:
            self.stats.expired_partitions += n
            log.info("retention dropped %d partitions: %s", n, dropped)

    def start(self) -> None:
        """Hold disk space for a spill (``spill_bytes``), then start the writer's thread."""
        if self.spill_box is not None and not self.spill_box.reserve(self.spill_bytes):
            log.warning(
                "cannot hold %d bytes in %s for a spill at stop: the disk is nearly full",
                self.spill_bytes,
                self.spill_box.directory,
            )
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="minutely-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left (unless checkpoints do the writing); what
        the store cannot take is spilled to a file the next start inserts."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        if self.interval is None:
            return
        try:
            self.flush()
        except Exception as exc:
            spilled = self.spill(f"{type(exc).__name__}: {exc}")
            if self.spill_box is None:
                raise
            log.warning("stopped with the store failing (%s); %d rows spilled", exc, spilled)

    def _run(self) -> None:
        delay = self.interval or 1.0
        while not self._stop.wait(delay):
            try:
                if self.before_flush is not None:
                    self.before_flush()
                if self.interval is not None:
                    self.flush()
                if self.clock() >= self._next_expiry:
                    self.expire()
                    self._next_expiry = self.clock() + self.expire_every
            except Exception as exc:
                if self.stats.failing_since is None:
                    self.stats.failing_since = self.clock()
                    log.exception("store write failed; the rows stay queued and are retried")
                self.stats.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                delay = min(MAX_BACKOFF, delay * 2)
                continue
            if self.stats.failing_since is not None:
                log.info(
                    "store writes succeed again after %.0fs",
                    self.clock() - self.stats.failing_since,
                )
            self.stats.failing_since = None
            self.stats.last_error = None
            delay = self.interval or 1.0


def _joined(queued: list[tuple[I32, I64, Partials]]) -> tuple[I32, I64, Partials]:
    """Queued pieces as one block."""
    if not queued:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), Partials.empty((0,))
    series = np.concatenate([q[0] for q in queued])
    minutes = np.concatenate([q[1] for q in queued])
    fields = zip(*(q[2].fields() for q in queued), strict=True)
    return series, minutes, Partials(*(np.concatenate(f) for f in fields))


def rebuild_ring(store: Store, registry: Registry, ring: HotRing, now: float) -> int:
    """Load the hot window's minutes from the store into ``ring``; returns the cells loaded."""
    last = int(now // 60) + 1
    first = last - ring.minutes - 10  # a few minutes of slack for points ahead of the clock
    slices = _load_slices(store, registry)
    # hours: one day partition a read
    loaded = _load_hours(registry, ring, store, range(first // 60 * 60, last + 10, 60), slices)
    # the window ends at the newest minute stored, not the clock: after a quiet spell it
    # reaches further back, and queries read those minutes from the ring, so load them too
    oldest = ring.oldest_minute()
    if oldest is not None:
        older = range(oldest // 60 * 60, first // 60 * 60, 60)
        loaded += _load_hours(registry, ring, store, older, slices)
    # the reads' answers are freed, but the engine's allocator keeps their pages for a while
    store.release_memory()
    return loaded


def _load_slices(store: Store, registry: Registry) -> list[npt.NDArray[np.uint32] | None]:
    """The ids (servers, or metrics on the metric copy) of each read of an hour: slices of
    about ``LOAD_ROWS`` rows, so a start-up's memory holds one slice's columns, not an
    hour of every series (the primary key leads with these ids, so a slice reads only its
    own rows)."""
    names = registry.servers if store.config.copy == "server" else registry.metrics
    n_ids = len(names)
    n_slices = -(-registry.n_series * 60 // LOAD_ROWS)
    if n_slices <= 1 or n_ids <= 1:
        return [None]
    return list(np.array_split(np.arange(n_ids, dtype=np.uint32), min(n_slices, n_ids)))


def _load_hours(
    registry: Registry,
    ring: HotRing,
    store: Store,
    hours: range,
    slices: list[npt.NDArray[np.uint32] | None],
) -> int:
    """Each hour of ``rebuild_ring``, a slice of ids at a time, into the ring. The next
    slice is read on a thread of its own while the ring loads and seals the one before (the
    engine's reads and the ring's codec release the GIL), so a start-up keeps two cores
    busy; at most ``LOAD_AHEAD + 1`` slices' columns are held at once."""
    reads = [(start, ids) for start in hours for ids in slices]
    loaded = 0
    with ThreadPoolExecutor(1, thread_name_prefix="ring-load") as pool:
        ahead: deque[Future[tuple[I32, I64, Partials]]] = deque()
        for k in range(len(reads)):
            while len(ahead) <= LOAD_AHEAD and k + len(ahead) < len(reads):
                ahead.append(pool.submit(_read_cells, registry, store, *reads[k + len(ahead)]))
            series, minutes, parts = ahead.popleft().result()
            if series.shape[0]:
                loaded += ring.load(series, minutes, parts, distinct=True)
    return loaded


def _read_cells(
    registry: Registry, store: Store, start: int, ids: npt.NDArray[np.uint32] | None
) -> tuple[I32, I64, Partials]:
    """One read of ``rebuild_ring``: an hour of these ids' stored cells, by series id."""
    rows = store.read_minutes(start, 60, ids)
    series = registry.lookup(rows.server_ids, rows.metric_ids)
    minutes, parts = rows.minutes, rows.parts
    known = series >= 0
    if not known.all():
        log.warning("%d stored cells name series the registry lacks", int((~known).sum()))
        series, minutes = series[known], minutes[known]
        parts = parts.take(known)
    return series, minutes, parts
