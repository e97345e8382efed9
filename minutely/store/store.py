"""``Store``: the storage tier's one object: open, write, read, expire, persist the registry.

It owns the connection (``clickhouse_connect.get_client(dsn=…)``: a ``chdb:///dir`` DSN runs
the ClickHouse engine in this process, an ``http://host:8123`` DSN reaches a server; the SQL
and the code are the same) and the per-tier *horizons*: the first minute each tier still
keeps after the last ``expire``. Reads never return a minute before its tier's horizon, so
what retention has expired is unreadable at once, though partitions go only when whole.

Thread safety: each thread gets its own client (a chDB handle or an HTTP session), so a
flush on one thread and queries on others run side by side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from clickhouse_connect import get_client
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from minutely.model import U32, Partials
from minutely.registry import Registry
from minutely.store import names, reader
from minutely.store.config import StoreConfig
from minutely.store.engine import query_arrow
from minutely.store.errors import StoreCorrupt, StoreError
from minutely.store.inserts import insert_pieces, minute_table, piece_tokens
from minutely.store.plan import Segment, clamp, plan
from minutely.store.reader import By, MinuteRows, SeriesCells, SummaryCells
from minutely.store.schema import (
    NAMES_TABLE,
    SCHEMA_VERSION,
    SERIES_TABLE,
    VERSION_TABLE,
    layout_views,
    migrations,
    statements,
    version_table,
)
from minutely.store.tiers import TIER_1M, TIERS, Tier

log = logging.getLogger(__name__)


class ReadStats(NamedTuple):
    """The engine's running totals of rows and bytes read from tables (``system.events``).

    Totals are engine-wide: diff two snapshots around a read to see what it touched (exact on
    the embedded engine and on an idle server; concurrent queries add to the difference).
    """

    rows: int
    bytes: int


class TierUsage(NamedTuple):
    """Rows (merged or not) of one tier's server-ordered table, and bytes on disk of each
    of its two tables."""

    rows: int
    bytes_by_server: int
    bytes_by_metric: int

    @property
    def bytes(self) -> int:
        """Bytes on disk of both sort orders."""
        return self.bytes_by_server + self.bytes_by_metric


#: settings of the session, given once when a client is made (per-call settings would cost
#: chDB a SET and a restore around every query): the answer's Arrow buffers go uncompressed
#: (in process, compressing them only burns CPU; over HTTP the transport compresses), and
#: ``FINAL`` merges within partitions only (a cell never spans two); strings come as Arrow
#: strings (set here, ``query_arrow`` would otherwise set it per call). Reads come in blocks
#: of ``max_block_size`` rows (65,409), not cut at the default ~1 MB: a 1.44 M-cell answer
#: in 22 blocks, not 88, so less is paid per block (figures: docs/performance.md, Measured
#: choices)
_SESSION = {
    "preferred_block_size_bytes": 100_000_000,
    "output_format_arrow_compression_method": "none",
    "output_format_arrow_string_as_string": 1,
    "do_not_merge_across_partitions_select_final": 1,
}
#: settings given only to an engine that knows them (``system.settings``): the client would
#: send an unknown one with every request, and an older server would refuse every request.
#: The engine's own Arrow writer, on the query's thread, writes the same answer faster than
#: the Arrow library's in parallel (figures: docs/performance.md, Measured choices); both
#: settings are new in ClickHouse 26
_IF_KNOWN = {
    "output_format_arrow_use_native_writer": 1,
    "output_format_arrow_parallel_encoding": 0,
}


#: the engine's memory figures ``Store.memory`` reports (``system.metrics``), by the name it
#: gives them: ``tracked`` is all the engine's allocations hold (inserts, merges, queries,
#: caches), ``merges`` the part background merges hold, the rest its caches
ENGINE_MEMORY = {
    "tracked": "MemoryTracking",
    "merges": "MergesMutationsMemoryTracking",
    "mark_cache": "MarkCacheBytes",
    "uncompressed_cache": "UncompressedCacheBytes",
    "primary_index_cache": "PrimaryIndexCacheBytes",
    "query_condition_cache": "QueryConditionCacheBytes",
    "page_cache": "PageCacheBytes",
}
#: the engine's allocator (its own jemalloc, apart from Python's and numpy's malloc), from
#: the summary line of ``system.jemalloc_stats``: ``allocated`` is what the engine's objects
#: hold, ``resident`` the pages the allocator keeps mapped for it, freed ones included (they
#: go back to the system after its ``dirty_decay_ms``), so an RSS figure can name them
ALLOCATOR_MEMORY = ("allocator_allocated", "allocator_resident")
_JEMALLOC_SUMMARY = re.compile(r"Allocated: (\d+), active: \d+, metadata: (\d+).*?resident: (\d+)")


@dataclass(slots=True)
class _Clients:
    """One client per thread; all closed together."""

    dsn: str
    #: the embedded engine's start-up settings (``StoreConfig.engine_options``); the engine
    #: is one per process, so the first client made in the process sets them
    engine: dict[str, int] = field(default_factory=dict)
    local: threading.local = field(default_factory=threading.local)
    made: list[Client] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> Client:
        client: Client | None = getattr(self.local, "client", None)
        if client is None:
            try:
                if self.dsn.startswith("chdb:"):
                    client = get_client(dsn=self.dsn, settings=_SESSION, chdb_options=self.engine)
                else:
                    client = get_client(dsn=self.dsn, settings=_SESSION)
                for key, value in _IF_KNOWN.items():
                    if key in client.server_settings:
                        client.set_client_setting(key, value)
            except ClickHouseError as exc:
                msg = f"cannot reach the store at {self.dsn}: {exc}"
                raise StoreError(msg) from exc
            self.local.client = client
            with self.lock:
                self.made.append(client)
        return client

    def close(self) -> None:
        with self.lock:
            made, self.made = self.made, []
        for client in made:
            client.close()
        self.local = threading.local()


class Store:
    """Minute partials in three tiers, read back exactly; see the package docstring."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._db = config.database
        self._clients = _Clients(config.dsn, config.engine_options())
        self._lock = threading.Lock()
        #: per tier name: the first minute it keeps (none until the first ``expire``)
        self._horizons: dict[str, int] = {}
        #: names and series already on disk, per kind ("server", "metric", "series")
        self._saved: dict[str, int] | None = None

    @classmethod
    def open(cls, config: StoreConfig) -> Store:
        """A store on ``config``, its schema made or migrated (``migrate``)."""
        store = cls(config)
        store.migrate()
        return store

    def migrate(self) -> None:
        """Connect and bring the schema to ``SCHEMA_VERSION``: create what is missing,
        migrate a store of an older minutely, refuse one of a newer (``StoreCorrupt``).
        On failure every client made is closed."""
        config = self.config
        try:
            found = self.schema_version()
            if found > SCHEMA_VERSION:
                msg = (
                    f"the store in {config.dsn} (database {config.database}) was written by a"
                    f" newer minutely (schema version {found}; this one knows up to"
                    f" {SCHEMA_VERSION}): upgrade minutely, or point it at another store"
                )
                raise StoreCorrupt(msg)
            if found:
                self._check_layout()
            for sql in statements(config):
                self._command(sql)
            self._command(version_table(config.database))
            steps = migrations(config)
            for version in range(max(found, 1) + 1, SCHEMA_VERSION + 1):
                if found:  # a store made now starts at the newest layout
                    for sql in steps.get(version, []):
                        self._command(sql)
                    log.info("store schema migrated to version %d", version)
            if found < SCHEMA_VERSION:
                self._command(
                    f"INSERT INTO {config.database}.{VERSION_TABLE} (version)"
                    f" VALUES ({int(SCHEMA_VERSION)})"
                )
        except BaseException:
            self.close()
            raise

    def _check_layout(self) -> None:
        """Refuse a store made for the other layout (``StoreConfig.layout``)."""
        _, other = layout_views(self.config.layout)
        got = self._arrow(
            "SELECT count() AS n FROM system.tables WHERE database = {db:String}"
            " AND name = {name:String}",
            {"db": self._db, "name": other},
        )
        if int(got.column("n")[0].as_py()):
            other_layout = "cluster" if self.config.layout == "single" else "single"
            msg = (
                f"the store in {self.config.dsn} (database {self._db}) was made for a"
                f" {other_layout} layout, and this node runs as {self.config.layout}: point"
                " it at another database"
            )
            raise StoreCorrupt(msg)

    @property
    def minute_table(self) -> str:
        """The 1-minute table this store's inserts go to (``StoreConfig.copy``)."""
        return TIER_1M.table if self.config.copy == "server" else TIER_1M.by_metric

    def schema_version(self) -> int:
        """The newest version the store records; 1 for a store made before versions were
        recorded, 0 for none at all."""
        tables = self._arrow(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": self._db}
        )
        names = set(tables.column("name").to_pylist())
        if VERSION_TABLE in names:
            got = self._arrow(f"SELECT max(version) AS v FROM {self._db}.{VERSION_TABLE}")
            version = int(got.column("v")[0].as_py() or 0)
            if version:
                return version
        return 1 if TIER_1M.table in names else 0

    def close(self) -> None:
        """Close every client this store made (the embedded engine can then be reopened)."""
        self._clients.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        try:
            self._clients.get().command(sql, parameters=params)
        except ClickHouseError as exc:
            raise StoreError(str(exc)) from exc

    def _arrow(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return query_arrow(self._clients.get(), sql, params)
        except ClickHouseError as exc:
            raise StoreError(str(exc)) from exc

    def _insert(self, table: str, rows: Any, settings: dict[str, Any] | None = None) -> None:
        try:
            self._clients.get().insert_arrow(table, rows, database=self._db, settings=settings)
        except ClickHouseError as exc:
            raise StoreError(str(exc)) from exc

    # -- writes ----------------------------------------------------------------------------

    def write_minutes(
        self,
        server_ids: npt.ArrayLike,
        metric_ids: npt.ArrayLike,
        minutes: npt.ArrayLike,
        parts: Partials,
        token: str | None = None,
    ) -> int:
        """Add minute partials to the store in one insert; returns the rows written.

        The id and minute arrays are broadcast to ``parts``' shape; entries with
        ``count == 0`` are skipped. Rows add to what a cell holds (see ``writer``): a late
        point is written as a row of the late points only, and merges exactly. The 1-hour
        and 1-day tiers follow inside the engine.

        ``token`` makes the insert idempotent: an insert repeated with the same token (after
        a crash in the middle of the first, say) adds only the parts the first did not, in
        every tier (``insert_deduplication_token``, within the last ``DEDUP_WINDOW`` parts
        per table). Repeat a token only with the very same rows. Without a token the insert
        always adds.
        """
        return self.write_cells(TIER_1M, server_ids, metric_ids, minutes, parts, token)

    def write_cells(
        self,
        tier: Tier,
        server_ids: npt.ArrayLike,
        metric_ids: npt.ArrayLike,
        cell_minutes: npt.ArrayLike,
        parts: Partials,
        token: str | None = None,
    ) -> int:
        """Low level: add partials straight to one tier (``cell_minutes`` are cell starts).

        Into the 1-minute tier this is ``write_minutes``. Into a coarser tier it skips the
        finer ones, so they no longer agree: for benchmarks that need years of rollups
        without the minutes, and for repairs. Everything else calls ``write_minutes``.
        """
        starts = np.asarray(cell_minutes, dtype=np.int64)
        if tier.minutes > 1 and (starts % tier.minutes).any():
            msg = f"cell starts of the {tier.name} tier must be multiples of {tier.minutes}"
            raise ValueError(msg)
        pieces = insert_pieces(minute_table(server_ids, metric_ids, starts, parts))
        table = self.minute_table if tier is TIER_1M else tier.table
        for piece, piece_token in zip(pieces, piece_tokens(token, len(pieces)), strict=True):
            self._insert(table, piece, _dedup_settings(piece_token))
        return sum(int(p.num_rows) for p in pieces)

    def minute_pieces(
        self,
        server_ids: npt.ArrayLike,
        metric_ids: npt.ArrayLike,
        minutes: npt.ArrayLike,
        parts: Partials,
    ) -> list[pa.Table]:
        """The inserts ``write_minutes`` would make of these rows, in its order; for a caller
        that inserts them one by one (``insert_piece``) to set aside one the engine refuses."""
        return insert_pieces(
            minute_table(server_ids, metric_ids, np.asarray(minutes, np.int64), parts)
        )

    def insert_piece(self, piece: pa.Table, token: str | None) -> int:
        """One insert of a ``minute_pieces`` table into the 1-minute tier (``token`` as for
        ``write_minutes``); returns its rows."""
        self._insert(self.minute_table, piece, _dedup_settings(token))
        return int(piece.num_rows)

    def reachable(self) -> bool:
        """Does the engine answer a trivial query now? Tells an outage from an insert the
        engine refuses for what it holds."""
        try:
            self._clients.get().command("SELECT 1")
        except Exception:
            return False
        return True

    def damaged_parts(self) -> list[tuple[str, str, str]]:
        """``(table, part, reason)`` of every detached part of this store's tables: the engine
        detaches a part it finds broken at start, and its rows are then no longer read."""
        table = self._arrow(
            "SELECT table, name, ifNull(reason, '') AS reason FROM system.detached_parts"
            " WHERE database = {db:String} ORDER BY table, name",
            {"db": self._db},
        )
        return list(
            zip(
                table.column("table").to_pylist(),
                table.column("name").to_pylist(),
                table.column("reason").to_pylist(),
                strict=True,
            )
        )

    def change_marker(self) -> str:
        """A mark of what this store's 1-minute table holds that writes change and merges
        keep: per partition, the lowest and highest block number among its active parts and
        the highest mutation version. Each insert takes a block number above every earlier
        one; a merge makes one part of several and keeps the blocks they span; dropping a
        partition removes it; a mutation (``ALTER … DELETE``, a lightweight delete) gives
        the parts it rewrote its version. Not seen: ``DROP PART`` of a part that is neither
        a partition's first nor its last."""
        parts = self._arrow(
            "SELECT partition_id, name, min_block_number AS lo, max_block_number AS hi"
            " FROM system.parts WHERE database = {db:String} AND table = {table:String}"
            " AND active",
            {"db": self._db, "table": self.minute_table},
        )
        mark: dict[str, list[int]] = {}
        for pid, name, lo, hi in zip(*(parts.column(c).to_pylist() for c in range(4)), strict=True):
            fields = name[len(pid) + 1 :].split("_")  # min_max_level[_mutation]
            version = int(fields[3]) if len(fields) > 3 else 0
            have = mark.setdefault(pid, [lo, hi, version])
            have[:] = [min(have[0], lo), max(have[1], hi), max(have[2], version)]
        digest = hashlib.sha256(json.dumps(mark, sort_keys=True).encode())
        return f"{self._db}.{self.minute_table}:{digest.hexdigest()[:16]}"

    # -- reads -----------------------------------------------------------------------------

    def segments(self, first_minute: int, n_minutes: int, step_minutes: int) -> list[Segment]:
        """Which tier answers which minutes of a read (after retention), in time order."""
        return clamp(plan(first_minute, n_minutes, step_minutes), self.horizons())

    def read(
        self,
        by: By,
        key_id: int,
        other_ids: npt.ArrayLike | None,
        first_minute: int,
        n_minutes: int,
        step_minutes: int,
    ) -> SeriesCells:
        """Buckets of one server's metrics (``by="server"``) or one metric's servers.

        Bucket ``b`` merges minutes ``[first + b·step, first + (b+1)·step)`` that fall in
        ``[first, first + n)``. ``other_ids`` restricts the other dimension (None: all).
        Each minute is read from the coarsest tier that answers it exactly.

        One query answers every segment (``reader.series_query``): segments whose cells
        are whole buckets (the hour tier read at step 1 h) merge rows as they are read
        (``FINAL``), the ragged ends from finer tiers are grouped into buckets. One grouping
        over both would hash every cell of the long part whenever the read's end, the hot
        ring's seam, is not on an hour (figures: docs/performance.md, Measured choices).
        """
        others = _ids(other_ids)
        segments = self.segments(first_minute, n_minutes, step_minutes)
        if not segments or (others is not None and len(others) == 0):
            return reader.empty_series()
        sql, params = reader.series_query(
            self._db, _by(by), key_id, others, segments, first_minute, step_minutes
        )
        return reader.series_cells(self._arrow(sql, params))

    def summary(
        self,
        by: By,
        key_id: int,
        other_ids: npt.ArrayLike | None,
        first_minute: int,
        n_minutes: int,
    ) -> SummaryCells:
        """One partial per other id over minutes ``[first, first + n)``."""
        others = _ids(other_ids)
        segments = self.segments(first_minute, n_minutes, max(1, n_minutes))
        if not segments or (others is not None and len(others) == 0):
            return reader.empty_summary()
        sql, params = reader.summary_query(self._db, _by(by), key_id, others, segments)
        return reader.summary_cells(self._arrow(sql, params))

    def read_minutes(
        self, first_minute: int, n_minutes: int, ids: npt.ArrayLike | None = None
    ) -> MinuteRows:
        """Every series' minutes in ``[first, first + n)``, one columnar query (ring rebuild),
        from this store's copy (``minute_table``); ``ids`` keeps only those servers (the
        server copy) or metrics (the metric copy): a cluster shard's own.

        For a long window, call it hour by hour to bound memory.
        """
        first = max(first_minute, self.horizons().get(TIER_1M.name, first_minute))
        last = first_minute + n_minutes
        wanted = _ids(ids)
        if first >= last or (wanted is not None and len(wanted) == 0):
            return reader.empty_minutes()
        sql, params = reader.minutes_query(
            self._db, first, last, self.minute_table, self.config.copy, wanted
        )
        return reader.minute_rows(self._arrow(sql, params))

    def first_minute(self, first_minute: int, ids: npt.ArrayLike) -> int | None:
        """The oldest minute at or after ``first_minute`` that these servers (the server
        copy) or metrics have in this store's 1-minute table; None when they have none.
        (A shard's rebuild starts there rather than reading an empty window hour by hour.)"""
        wanted = _ids(ids)
        if wanted is None or len(wanted) == 0:
            return None
        sql, params = reader.first_minute_query(
            self._db, self.minute_table, self.config.copy, wanted, first_minute
        )
        got = self._arrow(sql, params)
        if not int(got.column("n")[0].as_py()):
            return None
        return int(got.column("first")[0].as_py())

    def series_pairs(self, by: By, ids: npt.ArrayLike) -> tuple[U32, U32]:
        """(server ids, metric ids) of every series the store holds of these servers
        (``by="server"``) or metrics: what a cluster shard, which has no saved series
        table, knows of its partition's history. Read from the day tier, which every
        insert reaches at once and which holds the fewest rows."""
        wanted = _ids(ids)
        if wanted is None or len(wanted) == 0:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
        sql, params = reader.pairs_query(self._db, _by(by), wanted)
        table = self._arrow(sql, params)
        return (
            np.asarray(table.column("server_id").to_numpy(), dtype=np.uint32),
            np.asarray(table.column("metric_id").to_numpy(), dtype=np.uint32),
        )

    # -- retention -------------------------------------------------------------------------

    def horizons(self) -> dict[str, int]:
        """Per tier name, the first minute it still keeps (after the last ``expire``)."""
        with self._lock:
            return dict(self._horizons)

    def expire(self, now: float) -> dict[str, list[str]]:
        """Apply retention at ``now`` (unix seconds): drop every partition that ends at or
        before its tier's cutoff, and stop reads short of each tier's horizon.

        Returns the partition ids dropped, per tier name.
        """
        dropped: dict[str, list[str]] = {}
        for tier in TIERS:
            cutoff = now - self.config.retention.of(tier)
            cell = tier.minutes * 60
            horizon = math.floor(cutoff / cell) * tier.minutes
            with self._lock:
                self._horizons[tier.name] = max(horizon, self._horizons.get(tier.name, horizon))
            dropped[tier.name] = []
            for pid in self._partitions(tier):
                if tier.partition_span(pid)[1] <= cutoff:
                    for table in tier.tables():
                        # the id is all digits (partition_span checks): safe to inline, as
                        # ClickHouse takes no bound parameter in ALTER … DROP PARTITION
                        self._command(f"ALTER TABLE {self._db}.{table} DROP PARTITION ID '{pid}'")
                    dropped[tier.name].append(pid)
        return dropped

    def _partitions(self, tier: Tier) -> list[str]:
        """The partition ids either table of ``tier`` holds."""
        table = self._arrow(
            "SELECT DISTINCT partition_id FROM system.parts"
            " WHERE database = {db:String} AND table IN {t:Array(String)} AND active"
            " ORDER BY partition_id",
            {"db": self._db, "t": list(tier.tables())},
        )
        ids: list[str] = [str(p) for p in table.column("partition_id").to_pylist()]
        return ids

    # -- the registry ----------------------------------------------------------------------

    def save_names(self, servers: Sequence[str], metrics: Sequence[str]) -> None:
        """Persist names in id order (``servers[i]`` has id ``i``); only new ones are sent."""
        with self._lock:
            saved = self._saved_counts()
            kinds: tuple[tuple[names.Kind, Sequence[str]], ...] = (
                ("server", servers),
                ("metric", metrics),
            )
            for kind, all_names in kinds:
                done = saved[kind]
                if len(all_names) < done:
                    msg = (
                        f"the store holds {done} {kind} names, the registry only"
                        f" {len(all_names)}: start from load_registry(), not an empty registry"
                    )
                    raise StoreCorrupt(msg)
                if len(all_names) > done:
                    rows = names.names_table(kind, done, all_names[done:])
                    self._insert(NAMES_TABLE, rows)
                    saved[kind] = len(all_names)

    def save_series(self, server_ids: npt.ArrayLike, metric_ids: npt.ArrayLike) -> None:
        """Persist the series in the registry's order; only new ones are sent."""
        s = np.asarray(server_ids, dtype=np.uint32)
        m = np.asarray(metric_ids, dtype=np.uint32)
        with self._lock:
            saved = self._saved_counts()
            done = saved["series"]
            if len(s) > done:
                self._insert(SERIES_TABLE, names.series_table(done, s[done:], m[done:]))
                saved["series"] = len(s)

    def save_registry(self, registry: Registry) -> None:
        """Persist a registry's names and series (call after each flush; cheap when idle)."""
        self.save_names(registry.servers.names(), registry.metrics.names())
        self.save_series(*registry.series_of(np.arange(registry.n_series, dtype=np.int32)))

    def load_names(self) -> tuple[list[str], list[str]]:
        """(server names, metric names), each in id order."""
        servers = names.check_names("server", self._arrow(*names.names_query(self._db, "server")))
        metrics = names.check_names("metric", self._arrow(*names.names_query(self._db, "metric")))
        return servers, metrics

    def load_series(self) -> tuple[U32, U32]:
        """(server ids, metric ids) of every saved series, in the order they were saved."""
        servers, metrics = self.load_names()
        table = self._arrow(names.series_query(self._db))
        return names.check_series(table, len(servers), len(metrics))

    def load_registry(self, into: Registry | None = None) -> Registry:
        """A registry with the saved names at their ids and the saved series: ``into``
        (which must be empty) filled in place, or a new one."""
        servers, metrics = self.load_names()
        table = self._arrow(names.series_query(self._db))
        s, m = names.check_series(table, len(servers), len(metrics))
        return names.build_registry(servers, metrics, s, m, into=into)

    def _saved_counts(self) -> dict[str, int]:
        """How many names and series are on disk (asked once, then kept up to date)."""
        if self._saved is None:
            table = self._arrow(names.count_query(self._db))
            self._saved = {
                k: int(table.column(k)[0].as_py()) for k in ("server", "metric", "series")
            }
        return self._saved

    # -- figures ---------------------------------------------------------------------------

    def read_stats(self) -> ReadStats:
        """The engine's running totals of rows and bytes read (diff around a read)."""
        table = self._arrow(
            "SELECT event, value FROM system.events"
            " WHERE event IN ('SelectedRows', 'SelectedBytes')"
        )
        got = dict(
            zip(table.column("event").to_pylist(), table.column("value").to_pylist(), strict=True)
        )
        return ReadStats(int(got.get("SelectedRows", 0)), int(got.get("SelectedBytes", 0)))

    def memory(self) -> dict[str, int]:
        """The engine's memory by holder, in bytes (``ENGINE_MEMORY``, ``ALLOCATOR_MEMORY``);
        a figure the engine lacks reads 0."""
        table = self._arrow(
            "SELECT metric, toInt64(value) AS value FROM system.metrics"
            " WHERE metric IN {names:Array(String)}",
            {"names": list(ENGINE_MEMORY.values())},
        )
        got = dict(
            zip(table.column("metric").to_pylist(), table.column("value").to_pylist(), strict=True)
        )
        out = {key: int(got.get(name, 0)) for key, name in ENGINE_MEMORY.items()}
        return out | self._allocator_memory()

    def _allocator_memory(self) -> dict[str, int]:
        """``ALLOCATOR_MEMORY`` (its metadata counted as allocated); zeros where the engine
        has no such table or another allocator (a ClickHouse server built without it)."""
        try:
            table = self._arrow("SELECT stats FROM system.jemalloc_stats")
        except StoreError:
            return dict.fromkeys(ALLOCATOR_MEMORY, 0)
        text = "".join(table.column("stats").to_pylist()) if table.num_rows else ""
        found = _JEMALLOC_SUMMARY.search(text)
        if found is None:
            return dict.fromkeys(ALLOCATOR_MEMORY, 0)
        allocated, metadata, resident = (int(v) for v in found.groups())
        return {"allocator_allocated": allocated + metadata, "allocator_resident": resident}

    def release_memory(self) -> None:
        """Have the embedded engine's allocator give its freed pages back to the system now,
        not over its decay time: after a burst of large reads (a start-up's load) they
        are most of what it holds. A ClickHouse server manages its own memory: nothing."""
        if self.config.dsn.startswith("chdb:"):
            self._command("SYSTEM JEMALLOC PURGE")

    def disk_usage(self) -> dict[str, TierUsage]:
        """Rows and bytes on disk of each tier's active parts, per tier name."""
        table = self._arrow(
            "SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts"
            " WHERE database = {db:String} AND active GROUP BY table",
            {"db": self._db},
        )
        got = {
            t: (int(r), int(b))
            for t, r, b in zip(
                table.column("table").to_pylist(),
                table.column("rows").to_pylist(),
                table.column("bytes").to_pylist(),
                strict=True,
            )
        }
        none = (0, 0)
        return {
            tier.name: TierUsage(
                got.get(tier.table, none)[0],
                got.get(tier.table, none)[1],
                got.get(tier.by_metric, none)[1],
            )
            for tier in TIERS
        }

    def optimize(self) -> None:
        """Merge every tier's parts now (background merges do this in time; for figures)."""
        for tier in TIERS:
            for table in tier.tables():
                self._command(f"OPTIMIZE TABLE {self._db}.{table} FINAL")

    def drop(self) -> None:
        """Delete the whole database (tests and benchmarks)."""
        self._command(f"DROP DATABASE IF EXISTS {self._db} SYNC")


def _dedup_settings(token: str | None) -> dict[str, Any]:
    """Insert settings for the tier tables, which deduplicate the last ``DEDUP_WINDOW``
    parts: a given token, or a fresh one so that two inserts of equal rows both count (the
    engine would otherwise take the second for a retry of the first and drop it; chDB
    ignores ``insert_deduplicate = 0``)."""
    return {
        "insert_deduplication_token": token if token is not None else f"once-{uuid.uuid4().hex}",
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }


def _ids(other_ids: npt.ArrayLike | None) -> U32 | None:
    return None if other_ids is None else np.asarray(other_ids, dtype=np.uint32).reshape(-1)


def _by(by: str) -> By:
    if by == "server":
        return "server"
    if by == "metric":
        return "metric"
    msg = f"by must be 'server' or 'metric', not {by!r}"
    raise ValueError(msg)
