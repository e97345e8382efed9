"""``minutely import``: history from CSV, Parquet or Arrow files into a running minutely.

Files are read with Arrow in blocks (never a Python object per point); each block is sent as
one Arrow IPC body to ``POST /api/v1/points``: the same validation, the same rollups and the
same storage path as live points, resent after 429/503. Points older than the hot window go
to the storage tier.

Columns: ``server``, ``metric`` (strings), ``ts`` (an Arrow timestamp, or int/float unix
seconds; in CSV a number or an RFC 3339 time, both may appear in one file) and ``value``
(numeric). Other columns are ignored. A missing column is an error before anything of the
file is sent.

**Bad rows are reported and left out; the rest is imported.** A CSV is read with ``value``
as float64 and ``ts`` as Arrow infers it from the first block. At the first block that does
not convert (a word for a number, a second ``ts`` format), the rest of the file is read as
text and ``ts`` and ``value`` are converted column by column (numbers, then RFC 3339 times),
with a mask of the rows that did not convert. Those rows, rows with the wrong field count and
the points the server rejects are reported by file and line (``data.csv:1234: value: not a
number ('abc')``; line 1 is the header, line breaks inside quoted fields are not counted) or,
for Parquet and Arrow, by row (``data.parquet:row 17: ...``). The first ``MAX_REPORTED`` of a
run are listed; ``rejected`` counts them all.

**A re-run counts every point once.** Each block is sent with ``Idempotency-Key:
import:<digest>``, where the digest chains the block's body to the blocks before it in the
file: the same file always gives the same keys, and identical blocks at different places get
different ones. The server keeps import keys in a ledger once their block is published
(``minutely.ingest.idempotency``) and answers a known block without applying it again; with
a store the ledger is ``<data_dir>/imports.log``, so this holds minutes, days or restarts
later, and an import that stopped half way sends again only what did not get through. Where
it does not hold:

- without a store (``--store none``) the ledger lives as long as the server process, as the
  points do;
- each server keeps its own ledger: re-run an import against the same address (not another
  of several ``minutely ingest`` nodes);
- a crash of the server between publishing a block and writing its ledger line leaves that
  block unlisted: a re-run within 2 minutes is still deduplicated by the bus, a later one
  counts that block again;
- on the embedded bus a crash loses the points not yet written to the store (README,
  Restart) while their blocks stay listed, so a re-run does not bring them back;
- the keys depend on the bodies, so a file that changed, or an importer that cuts blocks
  differently, imports the changed blocks again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import operator
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from minutely.errors import DecodeError
from minutely.sim.send import ARROW_STREAM, POINTS_PATH, SendError, auth_headers

REQUIRED = ("server", "metric", "ts", "value")
ROWS_PER_BODY = 1_000_000
CSV_BLOCK_BYTES = 64 << 20
#: Problems listed by file and line; all are counted.
MAX_REPORTED: Final = 100
#: The prefix the server keeps import keys under (``minutely.ingest.idempotency``).
KEY_PREFIX: Final = "import:"

_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(?i:inf|infinity|nan)$"
_CSV_TEXT = pacsv.ConvertOptions(
    include_columns=list(REQUIRED), column_types=dict.fromkeys(REQUIRED, pa.string())
)
_CSV_TYPED = pacsv.ConvertOptions(
    include_columns=list(REQUIRED),
    column_types={"server": pa.string(), "metric": pa.string(), "value": pa.float64()},
)

Mask = npt.NDArray[np.bool_]


@dataclass(slots=True)
class ImportStats:
    files: int = 0
    rows: int = 0
    accepted: int = 0
    #: points left out here (bad rows) and points the server rejected
    rejected: int = 0
    seconds: float = 0.0
    #: the first ``MAX_REPORTED`` problems, ``<file>:<line>: <reason>``, by file and line
    errors: list[str] = field(default_factory=list)


#: A problem at a place in a file: (line, or row from 1, in the file; the reason)
Problem = tuple[int, str]


class _FirstProblems:
    """The first ``MAX_REPORTED`` problems of one file by place, whatever order they come in
    (answers arrive out of order)."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, problems: list[Problem]) -> None:
        self.items += problems
        if len(self.items) > 2 * MAX_REPORTED:
            self.items.sort()
            del self.items[MAX_REPORTED:]

    def first(self) -> list[Problem]:
        return sorted(self.items)[:MAX_REPORTED]


@dataclass(frozen=True, slots=True)
class _Block:
    """One body of a file and how its points map back to the file."""

    key: str
    body: bytes
    rows: int  #: rows of the file in this block, sent or not
    first: int  #: the file's row index of the block's first row
    kept: npt.NDArray[np.int64] | None  #: block rows in the body, in order; None for all
    place: Callable[[int], int]  #: the file's row index -> its line (CSV) or row from 1
    left_out: int  #: bad rows not sent
    problems: list[Problem]  #: why, for the first of them

    def locate(self, index: int) -> int:
        """The place in the file of the body's point ``index``."""
        row = index if self.kept is None else int(self.kept[index])
        return self.place(self.first + row)


# -- reading ---------------------------------------------------------------------------------


class _CsvLines:
    """Row index -> line number in one CSV: rows with the wrong field count are skipped by
    the reader (and noted here, with their line), so the rows after them are further down."""

    def __init__(self) -> None:
        #: per skipped line, how many rows come before it, ascending
        self.rows_before: list[int] = []
        self.problems: list[Problem] = []
        self.skipped = 0
        self.last = 0  # the last line noted: a file read again reports its lines again

    def skip(self, row: Any) -> str:
        """pyarrow's ``invalid_row_handler``: note the line and skip it."""
        number = int(row.number) if row.number is not None else self.last + 1
        if number > self.last:
            self.last = number
            self.rows_before.append(number - 2 - self.skipped)  # the header is line 1
            self.skipped += 1
            if len(self.problems) < MAX_REPORTED:
                want, got = row.expected_columns, row.actual_columns
                self.problems.append((number, f"{got} fields, not {want} ({row.text[:80]!r})"))
        return "skip"

    def line(self, row: int) -> int:
        return row + 2 + int(np.searchsorted(np.asarray(self.rows_before), row, side="right"))


class _CsvReader:
    """A CSV's record batches of the four columns: typed (``value`` float64, ``ts`` as Arrow
    infers it from the first block) while every block converts. From the first block that
    does not, the file is read again from the start as text, the rows already given are
    passed over, and the rest come as text for ``_csv_body`` to convert."""

    def __init__(self, path: Path, block_bytes: int) -> None:
        self.path = path
        self.block_bytes = block_bytes
        self.lines = _CsvLines()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        given = 0
        try:
            for batch in self._open(typed=True):
                given += batch.num_rows
                yield batch
            return
        except pa.ArrowInvalid:
            pass  # a value that does not convert: the rest is read as text
        try:
            for batch in self._open(typed=False):
                passed = min(given, batch.num_rows)
                given -= passed
                if passed < batch.num_rows:
                    yield batch.slice(passed)
        except pa.ArrowInvalid as e:  # not text (bytes that are not UTF-8): no rows to keep
            msg = f"{self.path}: {e}"
            raise DecodeError(msg) from e

    def _open(self, *, typed: bool) -> Iterator[pa.RecordBatch]:
        # One thread: the reader then knows each skipped row's line.
        options = pacsv.ReadOptions(block_size=self.block_bytes, use_threads=False)
        parse = pacsv.ParseOptions(invalid_row_handler=self.lines.skip, ignore_empty_lines=False)
        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=options,
                parse_options=parse,
                convert_options=_CSV_TYPED if typed else _CSV_TEXT,
            )
        except KeyError:  # a column of include_columns is not in the header
            header = pacsv.open_csv(self.path, read_options=pacsv.ReadOptions(block_size=1 << 16))
            _check_columns(header.schema.names, self.path)
            raise
        return iter(reader)


def _check_columns(names: list[str], path: Path) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        msg = f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)})"
        raise DecodeError(msg)


def _other_batches(path: Path) -> tuple[int | None, Iterator[pa.RecordBatch]]:
    """(rows if known up front, record batches) of a Parquet or Arrow file."""
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
    msg = f"{path}: unknown file type {suffix!r} (use .csv, .parquet or .arrow)"
    raise DecodeError(msg)


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".gz")


# -- converting CSV text ---------------------------------------------------------------------


def _numbers(text: pa.Array) -> tuple[pa.Array, Mask]:
    """``text`` as float64, and per row whether it was a number (null where it was not)."""
    try:
        return pc.cast(text, pa.float64()), np.ones(len(text), dtype=np.bool_)
    except pa.ArrowInvalid:
        pass
    trimmed = pc.utf8_trim_whitespace(text)
    ok = pc.fill_null(pc.match_substring_regex(trimmed, _NUMBER), False)
    values = pc.cast(pc.if_else(ok, trimmed, pa.scalar(None, pa.string())), pa.float64())
    return values, ok.to_numpy(zero_copy_only=False)


def _times(text: pa.Array) -> pa.Array:
    """RFC 3339 times in ``text`` as float64 unix seconds, null where a string is not one (a
    ``T`` or space between date and time; a zone ``Z`` or ``±hh:mm``, none meaning UTC)."""
    t = pc.utf8_upper(pc.utf8_trim_whitespace(text))
    t = pc.replace_substring_regex(t, r"^(\d{4}-\d\d-\d\d) ", r"\1T")
    fraction = pc.struct_field(pc.extract_regex(t, r"^[^.]*(?P<f>\.\d+)"), [0])
    t = pc.replace_substring_regex(t, r"^([^.]*)\.\d+", r"\1")
    t = pc.replace_substring_regex(t, r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)$", r"\1Z")
    whole = pc.strptime(t, format="%Y-%m-%dT%H:%M:%S%z", unit="s", error_is_null=True)
    seconds = pc.cast(pc.cast(whole, pa.int64()), pa.float64())
    return pc.add(seconds, pc.fill_null(pc.cast(fraction, pa.float64()), 0.0))


def _timestamps(text: pa.Array) -> tuple[pa.Array, Mask]:
    """``ts`` text as float64 unix seconds (numbers and RFC 3339 times, mixed), and per row
    whether it converted."""
    seconds, ok = _numbers(text)
    if bool(ok.all()):
        return seconds, ok
    times = _times(text)
    seconds = pc.if_else(pa.array(ok), seconds, times)
    return seconds, np.asarray(pc.is_valid(seconds).to_numpy(zero_copy_only=False))


def _csv_body(batch: pa.RecordBatch) -> tuple[pa.Table, Mask | None, Mask, list[str]]:
    """A CSV block's points to send, the block rows they are (None: all), the rows left out
    as bad (lines with no text at all are left out too, but are no point to report), and why
    for the first ``MAX_REPORTED`` bad ones, in row order. Typed columns are sent as they are."""
    ts_text, value_text = batch.column("ts"), batch.column("value")
    every = np.ones(batch.num_rows, dtype=np.bool_)
    ts, ts_ok = _timestamps(ts_text) if _is_text(ts_text) else (ts_text, every)
    value, value_ok = _numbers(value_text) if _is_text(value_text) else (value_text, every)
    table = pa.table(
        {"server": batch.column("server"), "metric": batch.column("metric"), "ts": ts,
         "value": value}
    )  # fmt: skip
    blank = every.copy()
    for name in REQUIRED:
        blank &= _empty(batch.column(name))
    good = ts_ok & value_ok & ~blank
    if bool(good.all()):
        return table, None, ~good, []
    bad = ~good & ~blank
    problems = []
    for row in np.flatnonzero(bad)[:MAX_REPORTED].tolist():
        if not ts_ok[row]:
            problems.append(_why("ts", ts_text[row].as_py(), "a number or RFC 3339 time"))
        else:
            problems.append(_why("value", value_text[row].as_py(), "a number"))
    return table.filter(pa.array(good)), good, bad, problems


def _is_text(column: pa.Array) -> bool:
    return bool(pa.types.is_string(column.type) or pa.types.is_large_string(column.type))


def _empty(column: pa.Array) -> Mask:
    """Per row: null, or the empty string."""
    empty = pc.is_null(column)
    if _is_text(column):
        empty = pc.or_(empty, pc.fill_null(pc.equal(column, ""), False))
    return np.asarray(empty.to_numpy(zero_copy_only=False))


def _why(name: str, text: str | None, wanted: str) -> str:
    if text is None or not text.strip():
        return f"{name}: missing"
    return f"{name}: not {wanted} ({text[:80]!r})"


# -- blocks ----------------------------------------------------------------------------------


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _chain(previous: bytes, body: bytes) -> bytes:
    """The next key digest: this body's digest bound to every block before it."""
    return hashlib.sha256(previous + hashlib.sha256(body).digest()).digest()


def _blocks(path: Path, block_bytes: int) -> tuple[int | None, Iterator[_Block]]:
    """(rows if known up front, the file's blocks)."""
    lines: _CsvLines | None = None
    batches: Iterator[pa.RecordBatch]
    if _is_csv(path):
        csv = _CsvReader(path, block_bytes)
        lines, batches, total, place = csv.lines, iter(csv), None, csv.lines.line
    else:
        total, batches = _other_batches(path)
        place = functools.partial(operator.add, 1)

    def blocks() -> Iterator[_Block]:
        chain, first, skipped, noted = b"", 0, 0, 0
        for batch in batches:
            _check_columns(batch.schema.names, path)
            keep: Mask | None = None
            left_out, problems = 0, []
            if lines is None:
                table = pa.Table.from_batches([batch]).select(list(REQUIRED))
            else:
                table, keep, bad, why = _csv_body(batch)
                rows = np.flatnonzero(bad)[: len(why)].tolist()
                left_out = int(bad.sum()) + lines.skipped - skipped
                problems = lines.problems[noted:]  # lines with a wrong field count
                problems += [(lines.line(first + r), w) for r, w in zip(rows, why, strict=True)]
                skipped, noted = lines.skipped, len(lines.problems)
            body = _ipc(table)
            chain = _chain(chain, body)
            kept = None if keep is None else np.flatnonzero(keep)
            key = KEY_PREFIX + chain.hex()
            yield _Block(key, body, batch.num_rows, first, kept, place, left_out, problems)
            first += batch.num_rows

    return total, blocks()


# -- sending ---------------------------------------------------------------------------------


async def _post(client: httpx.AsyncClient, url: str, block: _Block) -> dict[str, Any]:
    """POST one block until it is answered 2xx: after 429/503 when ``Retry-After`` has passed,
    after a transport error with backoff (the key makes a resend count once)."""
    headers = {"content-type": ARROW_STREAM, "idempotency-key": block.key}
    failures = 0
    while True:
        try:
            response = await client.post(url, content=block.body, headers=headers)
        except httpx.TransportError as exc:
            failures += 1
            if failures > 5:
                msg = f"POST {url} failed {failures} times; last: {exc!r}"
                raise SendError(msg) from exc
            await asyncio.sleep(min(30.0, 0.1 * 2**failures))
            continue
        if response.status_code in (429, 503):
            await asyncio.sleep(_retry_after(response))
            continue
        if not 200 <= response.status_code < 300:
            msg = f"POST {url}: HTTP {response.status_code}: {response.text[:500]}"
            raise SendError(msg, response.status_code)
        answer: dict[str, Any] = response.json()
        return answer


def _retry_after(response: httpx.Response) -> float:
    try:
        wait = float(response.headers.get("retry-after", 1.0))
    except ValueError:
        wait = 1.0
    return min(30.0, max(0.05, wait)) if math.isfinite(wait) else 1.0


async def _send(
    url: str,
    blocks: Iterator[_Block],
    stats: ImportStats,
    problems: _FirstProblems,
    on_sent: Callable[[_Block], None],
    transport: httpx.AsyncBaseTransport | None,
    token: str | None = None,
    concurrency: int = 2,
) -> None:
    """Send ``blocks`` with ``concurrency`` in flight; the server's answers go to ``stats``
    and ``problems``. The next block is read on a worker thread while others are in flight."""
    endpoint = url.rstrip("/") + POINTS_PATH
    lock = asyncio.Lock()

    async def pull() -> _Block | None:
        async with lock:
            return await asyncio.to_thread(next, blocks, None)

    async def worker(client: httpx.AsyncClient) -> None:
        while (block := await pull()) is not None:
            answer = await _post(client, endpoint, block)
            stats.accepted += int(answer.get("accepted", 0))
            stats.rejected += block.left_out + int(answer.get("rejected", 0))
            problems.add(block.problems)
            errors = answer.get("errors", [])
            problems.add([(block.locate(int(e["index"])), str(e["reason"])) for e in errors])
            on_sent(block)

    headers = auth_headers(token)
    async with httpx.AsyncClient(timeout=300.0, transport=transport, headers=headers) as client:
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(worker(client))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None


def import_files(
    url: str,
    paths: list[Path],
    *,
    progress: bool = True,
    block_bytes: int = CSV_BLOCK_BYTES,
    transport: httpx.AsyncBaseTransport | None = None,
    token: str | None = None,
) -> ImportStats:
    """Send every point of ``paths`` to the server at ``url``; returns the totals.

    ``block_bytes`` is how much of a CSV goes into one body; ``transport`` is for tests;
    ``token`` is sent as ``Authorization: Bearer`` (a write token, once the server has any).
    """
    stats = ImportStats()
    began = time.monotonic()
    for path in paths:
        if not path.exists():
            msg = f"{path}: no such file"
            raise DecodeError(msg)
        total, blocks = _blocks(path, block_bytes)
        done = 0

        def sent(block: _Block, path: Path = path, total: int | None = total) -> None:
            nonlocal done
            done += block.rows
            if progress:
                _progress(path, done, total, began)

        problems = _FirstProblems()
        try:
            asyncio.run(_send(url, blocks, stats, problems, sent, transport, token))
        finally:
            label = f"{path}:" if _is_csv(path) else f"{path}:row "
            stats.errors += [f"{label}{n}: {why}" for n, why in problems.first()]
            del stats.errors[MAX_REPORTED:]
        stats.files += 1
        stats.rows += done
        if progress:
            sys.stderr.write("\n")
    stats.seconds = time.monotonic() - began
    if progress:
        print(
            f"imported {stats.files} file(s): {stats.accepted:,} points accepted, "
            f"{stats.rejected:,} rejected in {stats.seconds:.1f}s",
            file=sys.stderr,
        )
        for line in stats.errors:
            print(f"  {line}", file=sys.stderr)
        if stats.rejected > len(stats.errors):
            print(f"  ... and {stats.rejected - len(stats.errors):,} more", file=sys.stderr)
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
