"""Exactly once on a durable bus: the checkpoint that ties the store to the bus's offsets.

With NATS JetStream as the bus a point answered ``200`` is in the stream until the
aggregator acks it, and a message is acked only once everything it carried is in the store
or in a checkpoint. This module owns that checkpoint; ``docs/exactly-once.md`` argues why no
point is lost or counted twice whatever moment the process dies at.

A checkpoint is one file, ``<data_dir>/checkpoint/aggregator.npz``, replaced atomically
(written beside, fsynced, renamed over, directory fsynced). Checkpoint ``k`` holds:

- ``offsets``: per partition, the last offset folded into the ring;
- ``rows``: every partial the ring handed to the store since checkpoint ``k - 1`` (closed
  minutes, late corrections, points older than the ring): the insert that ``k`` makes;
- ``open``: the live minutes, still filling, which the store has not had;
- ``counters``: each counter series' newest sample (``counters.py``), as of ``offsets``, so
  the increases folded after a restart continue from it;
- ``run`` and ``epoch``: the insert's token, ``<run>-<epoch>``; ``run`` is drawn at random
  when the file is first made, so a lost file never reuses a token the store remembers;
- ``generations``: per partition, which log the offsets count in (``PartitionStats``): a
  partition whose streams were deleted and made again counts from 0 again, and at start-up
  its offset is dropped so that what it holds is folded, not skipped as already seen.

Invariant: the store's rows plus ``open`` are exactly the fold of every message up to
``offsets``. Taking checkpoint ``k`` (in the aggregator's thread, between two polls, so
nothing folds meanwhile): save new names to the store (every id in the file then resolves
at start-up), write the file, insert ``rows`` with the token (chunk ``i`` as
``<token>-<i>``), and only then ack the messages up to ``offsets``. Starting up: insert the
file's ``rows`` again with the same tokens (the store drops the parts it has, adds those a
crash cut off), rebuild the ring from the store, merge ``open`` into the live minutes, and
skip (ack, not fold) messages at or below ``offsets`` that the bus delivers again.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from minutely import failpoints
from minutely.counters import CounterRows
from minutely.hot import HotRing
from minutely.model import I32, I64, U32, Partials
from minutely.registry import Registry
from minutely.store import Store
from minutely.store.errors import StoreCorrupt
from minutely.store.reader import MinuteRows, empty_minutes
from minutely.store_writer import ISOLATE_AFTER, StoreWriter

log = logging.getLogger(__name__)

#: rows per insert of a checkpoint's rows (each chunk carries a token of its own)
INSERT_CHUNK = 1 << 20

#: the file's layout; a file without one is version 1 (the layout before it was recorded);
#: version 2 added ``counters``
FORMAT_VERSION = 2

_FIELDS = ("server_ids", "metric_ids", "minutes", "min", "max", "sum", "count")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint file holds; see the module docstring."""

    run: str
    epoch: int
    #: partition -> the last offset folded
    offsets: dict[int, int]
    rows: MinuteRows
    open: MinuteRows
    #: partition -> the generation of its log that ``offsets`` count in (``PartitionStats``)
    generations: dict[int, str] = field(default_factory=dict)
    #: each counter series' newest sample when ``offsets`` were folded
    counters: CounterRows = field(default_factory=CounterRows.empty)

    @property
    def token(self) -> str:
        return f"{self.run}-{self.epoch}"


class CheckpointStorage(Protocol):
    """Where checkpoints are kept: ``CheckpointFile`` on one node's disk; in a cluster a
    fenced pointer and blob in JetStream, whose ``write`` raises once another node has
    claimed the partition (so a paused owner that wakes up can neither insert nor ack)."""

    def read(self) -> Checkpoint | None: ...

    def write(self, c: Checkpoint) -> None: ...


class CheckpointFile:
    """The checkpoint on disk: read it, replace it atomically."""

    NAME = "aggregator.npz"

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.NAME

    def read(self) -> Checkpoint | None:
        """The checkpoint in place, or None if there is none yet."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            msg = f"checkpoint {self.path} cannot be read ({exc}); refusing to start without it"
            raise StoreCorrupt(msg) from exc
        return decode_checkpoint(data, str(self.path))

    def write(self, c: Checkpoint) -> None:
        """Replace the checkpoint: whatever moment the process dies at, the file in place is
        either the old checkpoint or the new one, whole."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.NAME + ".tmp")
        with open(tmp, "wb") as f:
            f.write(encode_checkpoint(c))
            f.flush()
            os.fsync(f.fileno())
        failpoints.hit("checkpoint.written")
        os.replace(tmp, self.path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        failpoints.hit("checkpoint.renamed")


def encode_checkpoint(c: Checkpoint) -> bytes:
    """A checkpoint's bytes (an ``.npz`` archive): what a file or an object store keeps."""
    parts = sorted(c.offsets)
    arrays = {
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "run": np.array(c.run),
        "epoch": np.array(c.epoch, dtype=np.int64),
        "partitions": np.array(parts, dtype=np.int64),
        "offsets": np.array([c.offsets[p] for p in parts], dtype=np.int64),
        **_arrays(c.rows, "rows"),
        **_arrays(c.open, "open"),
        "generations.partitions": np.array(sorted(c.generations), dtype=np.int64),
        "generations.values": np.array(
            [c.generations[p] for p in sorted(c.generations)], dtype=np.str_
        ),
        **{f"counters.{k}": getattr(c.counters, k) for k in _COUNTER_FIELDS},
    }
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def decode_checkpoint(data: bytes, where: str) -> Checkpoint:
    """The checkpoint in ``data``; ``where`` names its origin in errors (``StoreCorrupt``)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        msg = f"checkpoint {where} cannot be read ({exc}); refusing to start without it"
        raise StoreCorrupt(msg) from exc
    version = int(arrays["version"]) if "version" in arrays else 1
    if version > FORMAT_VERSION:
        msg = (
            f"checkpoint {where} was written by a newer minutely (format {version}; this"
            f" one reads up to {FORMAT_VERSION}): upgrade minutely to start on this data dir"
        )
        raise StoreCorrupt(msg)
    try:
        return Checkpoint(
            run=str(arrays["run"]),
            epoch=int(arrays["epoch"]),
            offsets=dict(
                zip(arrays["partitions"].tolist(), arrays["offsets"].tolist(), strict=True)
            ),
            rows=_rows(arrays, "rows"),
            open=_rows(arrays, "open"),
            generations=dict(
                zip(
                    arrays.get("generations.partitions", np.zeros(0, np.int64)).tolist(),
                    arrays.get("generations.values", np.zeros(0, str)).tolist(),
                    strict=True,
                )
            ),
            counters=_counter_rows(arrays),
        )
    except KeyError as exc:
        msg = f"checkpoint {where} lacks {exc}; refusing to start without it"
        raise StoreCorrupt(msg) from exc


_COUNTER_FIELDS = ("server_ids", "metric_ids", "last_ts", "last_value")


def _counter_rows(arrays: dict[str, np.ndarray]) -> CounterRows:
    if "counters.server_ids" not in arrays:  # version 1: no counter was folded as increases
        return CounterRows.empty()
    return CounterRows(*(arrays[f"counters.{k}"] for k in _COUNTER_FIELDS))


def _arrays(rows: MinuteRows, prefix: str) -> dict[str, np.ndarray]:
    cols: tuple[np.ndarray, ...] = (
        rows.server_ids,
        rows.metric_ids,
        rows.minutes,
        *rows.parts.fields(),
    )
    return {f"{prefix}.{name}": col for name, col in zip(_FIELDS, cols, strict=True)}


def _rows(arrays: dict[str, np.ndarray], prefix: str) -> MinuteRows:
    c = [arrays[f"{prefix}.{name}"] for name in _FIELDS]
    return MinuteRows(c[0], c[1], c[2], Partials(c[3], c[4], c[5], c[6]))


class Checkpointer:
    """Takes checkpoints for one aggregator and recovers from the last one at start-up.

    ``offsets`` is where folding resumes: the last offset folded per partition, as the last
    checkpoint recorded it (empty for a first start).
    """

    def __init__(
        self,
        directory: str | Path | CheckpointStorage,
        store: Store,
        registry: Registry,
        ring: HotRing,
        writer: StoreWriter,
        save_names: bool = True,
    ) -> None:
        self.file: CheckpointStorage = (
            CheckpointFile(directory) if isinstance(directory, str | Path) else directory
        )
        #: save new names to the store before each checkpoint (a cluster keeps them in
        #: JetStream, where they are allocated before any row carries their ids)
        self.save_names = save_names
        self.store = store
        self.registry = registry
        self.ring = ring
        self.writer = writer
        self.offsets: dict[int, int] = {}
        #: the bus's partition generations the offsets count in
        self.generations: dict[int, str] = {}
        self.taken = 0
        self._run = secrets.token_hex(8)
        self._epoch = 0
        #: the last checkpoint, while its rows may not all be in the store
        self._unsent: Checkpoint | None = None
        self._open = empty_minutes()
        #: the recovered checkpoint's counter state, for the aggregator to take at ``open``
        self.counters = CounterRows.empty()

    @property
    def unfinished(self) -> bool:
        """True while the last checkpoint's insert has failed and waits for a retry."""
        return self._unsent is not None

    def recover(self) -> Checkpoint | None:
        """Start-up, before the ring is rebuilt: read the last checkpoint and make sure the
        store has all of its rows (inserting them again adds only what a crash cut off)."""
        last = self.file.read()
        if last is None:
            return None
        self._run, self._epoch = last.run, last.epoch
        self.offsets = dict(last.offsets)
        self.generations = dict(last.generations)
        self._open = last.open
        self.counters = last.counters
        # at start-up the insert has failed before if it fails now: set refused rows aside
        # at once rather than refuse to start
        self._insert(last, patience=1)
        log.info(
            "recovered checkpoint %s: %d rows made sure of in the store, %d open cells, "
            "resuming after offsets %s",
            last.token,
            last.rows.minutes.shape[0],
            last.open.minutes.shape[0],
            last.offsets,
        )
        return last

    def adopt(self, generations: dict[int, str]) -> list[int]:
        """Start-up, once the bus is up: its partitions' current generations. A partition
        whose log was made anew since the checkpoint (its streams deleted and created again)
        counts offsets from 0 again: its offset is dropped, so everything it holds is folded
        rather than skipped. Returns those partitions."""
        renewed = [
            p
            for p in self.offsets
            if p in self.generations
            and generations.get(p, self.generations[p]) != self.generations[p]
        ]
        for p in renewed:
            log.warning(
                "partition %d's log was made anew (%s, was %s): its offsets restart, so "
                "everything in it is folded",
                p,
                generations.get(p),
                self.generations[p],
            )
            del self.offsets[p]
        self.generations = dict(generations)
        return renewed

    def restore_open(self, add_series: bool = False) -> int:
        """Start-up, after the ring is rebuilt: put the checkpoint's open minutes back into
        the ring's live rows. Returns the cells restored. ``add_series``: number series the
        registry lacks (a cluster shard's registry holds only what the store has; a single
        node's was loaded whole, so a lack there is corruption)."""
        rows, self._open = self._open, empty_minutes()
        if rows.minutes.shape[0] == 0:
            return 0
        if add_series:
            series = self.registry.ensure_series(rows.server_ids, rows.metric_ids)
        else:
            series = self.registry.lookup(rows.server_ids, rows.metric_ids)
        if (series < 0).any():
            lacking = int((series < 0).sum())
            msg = f"the checkpoint names {lacking} series the store's registry lacks"
            raise StoreCorrupt(msg)
        self.ring.merge_partials(series, rows.minutes, rows.parts)
        return int(rows.minutes.shape[0])

    def take(self, offsets: dict[int, int], counters: CounterRows | None = None) -> Checkpoint:
        """Checkpoint the fold of every message up to ``offsets`` (and ``counters``, the
        counter state after them): afterwards they may be acked. Raises (store down, disk
        full) with nothing lost: the next call retries."""
        if self._unsent is not None:  # the last one's insert failed: finish it first
            self._insert(self._unsent)
            self._unsent = None
        with self.ring.lock:  # the ring and the writer's queue, at one moment
            series, minutes, parts = self.writer.take()
            open_series, open_minutes, open_parts = self.ring.live_partials()
        try:
            if self.save_names:
                self.store.save_registry(self.registry)
        except BaseException:
            self.writer.put_back(series, minutes, parts)
            raise
        c = Checkpoint(
            run=self._run,
            epoch=self._epoch + 1,
            offsets=dict(offsets),
            rows=self._named(series, minutes, parts),
            open=self._named(open_series, open_minutes, open_parts),
            generations=dict(self.generations),
            counters=CounterRows.empty() if counters is None else counters,
        )
        try:
            self.file.write(c)
        except BaseException:
            self.writer.put_back(series, minutes, parts)
            raise
        self._epoch = c.epoch
        self.offsets = dict(offsets)
        self._unsent = c
        self._insert(c)
        self._unsent = None
        self.taken += 1
        failpoints.hit("checkpoint.inserted")
        return c

    def _named(self, series: I32, minutes: I64, parts: Partials) -> MinuteRows:
        server_ids, metric_ids = self.registry.series_of(series)
        return MinuteRows(
            server_ids.astype(np.uint32), metric_ids.astype(np.uint32), minutes, parts
        )

    def _insert(self, c: Checkpoint, patience: int = ISOLATE_AFTER) -> None:
        """Make sure the store has ``c``'s rows: chunk ``i`` goes in with token
        ``<token>-<i>`` (the writer cuts and, for rows the engine refuses again and again,
        sets aside; see ``StoreWriter.insert``)."""
        rows = c.rows
        n = rows.minutes.shape[0]
        for i, lo in enumerate(range(0, n, INSERT_CHUNK)):
            hi = min(n, lo + INSERT_CHUNK)
            cut = rows.parts.take(slice(lo, hi))
            ids: tuple[U32, U32, I64] = (
                rows.server_ids[lo:hi],
                rows.metric_ids[lo:hi],
                rows.minutes[lo:hi],
            )
            self.writer.insert(*ids, cut, token=f"{c.token}-{i}", patience=patience)
            failpoints.hit("checkpoint.chunk")
