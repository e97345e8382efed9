"""Rows and points kept on disk until they can go where they belong: dead letters and spills.

A *dead letter* is what failed the same way again with the store answering: minute rows the
engine refuses, or a batch of points the aggregator cannot fold. It is set aside so that
everything behind it moves on, and replayed on request (``POST /api/v1/dead-letters/replay``,
``minutely dead-letters replay``). A *spill* is what a stop could not write to the store
(it is down): the next start inserts it before answering.

Each is one Arrow IPC file (``<box>/<name>.arrow``), written beside and renamed over (fsynced,
directory fsynced), so a crash leaves either the whole file or none. Names are stored, not
ids, so a file means the same whatever the registry holds when it is read. The schema's
metadata says what the file is::

    format   "minutely-letter"      version  "1"
    kind     "rows":   server, metric (string), minute (int64), min, max, sum (float64),
                       count (uint64)
             "points": server, metric (string), ts (float64 unix seconds), value (float64)
    reason   why it is here (the engine's or the fold's error, first line)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from minutely.model import I64, Partials, PointBatch

Kind = Literal["rows", "points"]

FORMAT = "minutely-letter"
#: the file that holds disk space for letters written when the disk is full
RESERVE = ".reserve"
VERSION = "1"


@dataclass(frozen=True, slots=True)
class Letter:
    """One file's contents."""

    path: Path
    kind: Kind
    reason: str
    written_at: float
    table: pa.Table
    #: the insert token the rows go to the store with (rows letters of a spill), or ""
    token: str = ""


def rows_table(servers: np.ndarray, metrics: np.ndarray, minutes: I64, parts: Partials) -> pa.Table:
    """Minute rows with their names, as a ``rows`` letter holds them."""
    return pa.table(
        {
            "server": pa.array(servers, pa.string()),
            "metric": pa.array(metrics, pa.string()),
            "minute": pa.array(np.asarray(minutes, np.int64)),
            "min": pa.array(parts.min),
            "max": pa.array(parts.max),
            "sum": pa.array(parts.sum),
            "count": pa.array(np.asarray(parts.count, np.uint64)),
        }
    )


def rows_of(table: pa.Table) -> tuple[np.ndarray, np.ndarray, I64, Partials]:
    """(servers, metrics, minutes, partials) of a ``rows`` letter."""
    col = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    parts = Partials(
        col["min"].astype(np.float64),
        col["max"].astype(np.float64),
        col["sum"].astype(np.float64),
        col["count"].astype(np.uint32),
    )
    return col["server"], col["metric"], col["minute"].astype(np.int64), parts


def points_table(batch: PointBatch) -> pa.Table:
    """A batch of points with their names, as a ``points`` letter holds them."""
    return pa.table(
        {
            "server": pa.array(batch.server_names[batch.server_codes], pa.string()),
            "metric": pa.array(batch.metric_names[batch.metric_codes], pa.string()),
            "ts": pa.array(batch.ts),
            "value": pa.array(batch.value),
        }
    )


def points_of(table: pa.Table) -> PointBatch:
    """The batch of a ``points`` letter."""
    return PointBatch.from_names(
        table.column("server").to_numpy(zero_copy_only=False),
        table.column("metric").to_numpy(zero_copy_only=False),
        table.column("ts").to_numpy(),
        table.column("value").to_numpy(),
    )


class LetterBox:
    """One directory of letters (dead letters, or spills)."""

    def __init__(self, directory: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.clock = clock

    def put(self, name: str, kind: Kind, table: pa.Table, reason: str, token: str = "") -> Path:
        """Write one letter atomically; a letter of the same name is replaced (a retry of
        the same work writes the same letter once). ``token``: the insert token its rows
        keep, so that inserting them again adds nothing that already landed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "kind": kind,
            "reason": reason.splitlines()[0][:2000] if reason else "",
            "written_at": repr(self.clock()),
            "token": token,
        }
        table = table.replace_schema_metadata(meta)
        path = self.directory / f"{_safe(name)}.arrow"
        tmp = path.with_name(path.name + ".tmp")
        options = ipc.IpcWriteOptions(compression="zstd")  # names repeat row after row
        try:
            with open(tmp, "wb") as f:
                with ipc.new_file(f, table.schema, options=options) as writer:
                    writer.write_table(table)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path

    def reserve(self, nbytes: int) -> bool:
        """Hold ``nbytes`` of disk for the box (a file it gives back with ``release``), so
        that letters can be written when the disk has filled up since. False if the disk
        cannot give that much now."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / RESERVE
        try:
            with open(path, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, nbytes)
        except OSError:
            path.unlink(missing_ok=True)
            return False
        return True

    def release(self) -> None:
        """Give back what ``reserve`` held, for the letters about to be written."""
        (self.directory / RESERVE).unlink(missing_ok=True)

    def paths(self) -> list[Path]:
        """The letters in the box, oldest name first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.arrow"))

    def read(self, path: Path) -> Letter:
        """One letter; ``ValueError`` if it is not one this version can read."""
        try:
            table = ipc.open_file(pa.memory_map(str(path))).read_all()
        except pa.ArrowInvalid as exc:
            msg = f"{path}: not a minutely letter ({exc})"
            raise ValueError(msg) from exc
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        if meta.get("format") != FORMAT:
            msg = f"{path}: not a minutely letter"
            raise ValueError(msg)
        if meta.get("version") != VERSION:
            msg = f"{path}: letter version {meta.get('version')} (this minutely reads {VERSION})"
            raise ValueError(msg)
        kind = meta.get("kind")
        if kind not in ("rows", "points"):
            msg = f"{path}: unknown letter kind {kind!r}"
            raise ValueError(msg)
        return Letter(
            path,
            kind,
            meta.get("reason", ""),
            float(meta["written_at"]),
            table,
            meta.get("token", ""),
        )

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def summary(self) -> dict[str, int]:
        """Letters and the rows or points they hold (for ``/api/v1/status``)."""
        paths = self.paths()
        held = 0
        for path in paths:
            try:
                held += _rows(path)
            except (OSError, pa.ArrowInvalid):
                continue
        return {"files": len(paths), "rows": held}


def _rows(path: Path) -> int:
    reader = ipc.open_file(pa.memory_map(str(path)))
    return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:200]
