"""``minutely import``: history from CSV, Parquet or Arrow files into a running minutely.

Files are read with Arrow in record batches (never a Python object per point), cast to the
ingest schema and sent as Arrow IPC bodies to ``POST /api/v1/points``: the same validation,
the same rollups and the same storage path as live points, with the sender's retry on
429/503. Points older than the hot window go to the storage tier.

Columns: ``server``, ``metric`` (strings), ``ts`` (an Arrow timestamp, or int/float unix
seconds; in CSV a number or an RFC 3339 time) and ``value`` (numeric). Other columns are
ignored. A missing column is an error before anything is sent.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from minutely import sim
from minutely.errors import DecodeError

REQUIRED = ("server", "metric", "ts", "value")
ROWS_PER_BODY = 1_000_000


@dataclass(slots=True)
class ImportStats:
    files: int = 0
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    seconds: float = 0.0


def _batches(path: Path) -> tuple[int | None, Iterator[pa.RecordBatch]]:
    """(rows if known up front, record batches) of one file, by its extension."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        f = pq.ParquetFile(path)
        return f.metadata.num_rows, f.iter_batches(batch_size=ROWS_PER_BODY)
    if suffix in (".arrow", ".feather", ".ipc", ".arrows"):
        try:
            reader: Any = ipc.open_file(path)
            return None, (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            return None, iter(ipc.open_stream(path))
    if suffix in (".csv", ".gz"):
        options = pacsv.ReadOptions(block_size=64 << 20)
        convert = pacsv.ConvertOptions(column_types={"server": pa.string(), "metric": pa.string()})
        return None, iter(pacsv.open_csv(path, read_options=options, convert_options=convert))
    msg = f"{path}: unknown file type {suffix!r} (use .csv, .parquet or .arrow)"
    raise DecodeError(msg)


def _body(batch: pa.RecordBatch, path: Path) -> bytes:
    missing = [c for c in REQUIRED if c not in batch.schema.names]
    if missing:
        msg = f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)})"
        raise DecodeError(msg)
    table = pa.Table.from_batches([batch]).select(list(REQUIRED))
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def import_files(url: str, paths: list[Path], *, progress: bool = True) -> ImportStats:
    """Send every point of ``paths`` to the server at ``url``; returns the totals."""
    stats = ImportStats()
    began = time.monotonic()
    errors: list[str] = []
    for path in paths:
        if not path.exists():
            msg = f"{path}: no such file"
            raise DecodeError(msg)
        total, batches = _batches(path)
        done = 0

        def bodies(
            batches: Iterator[pa.RecordBatch] = batches,
            path: Path = path,
            total: int | None = total,
        ) -> Iterator[bytes]:
            nonlocal done
            for batch in batches:
                done += batch.num_rows
                yield _body(batch, path)
                if progress:
                    _progress(path, done, total, began)

        sent = asyncio.run(sim.send(url, bodies(), concurrency=2, progress_every=3600))
        stats.files += 1
        stats.rows += done
        stats.accepted += sent.accepted
        stats.rejected += sent.rejected
        errors += sent.errors
        if progress:
            sys.stderr.write("\n")
    stats.seconds = time.monotonic() - began
    if progress:
        print(
            f"imported {stats.files} file(s): {stats.accepted:,} points accepted, "
            f"{stats.rejected:,} rejected in {stats.seconds:.1f}s",
            file=sys.stderr,
        )
        for line in errors[:10]:
            print(f"  rejected: {line}", file=sys.stderr)
    return stats


def _progress(path: Path, done: int, total: int | None, began: float) -> None:
    rate = done / max(1e-9, time.monotonic() - began)
    if total:
        width = 30
        filled = int(width * done / total)
        bar = "#" * filled + "-" * (width - filled)
        line = f"\r{path.name}: [{bar}] {done:,}/{total:,} points, {rate / 1e6:.2f} M/s"
    else:
        line = f"\r{path.name}: {done:,} points, {rate / 1e6:.2f} M/s"
    sys.stderr.write(line)
    sys.stderr.flush()
