"""Names ↔ dense ids for servers, metrics and series, and the two indexes into the ring.

Server and metric names are interned into dense ids (0, 1, 2, …) in order of first sight. A
series is a (server id, metric id) pair with a dense id of its own: its row in the hot ring.
The series new in one batch are numbered after all earlier ones, in (server id, metric id)
order.

The pair → series map has two layouts, and the registry keeps whichever the series allow:

- **dense**: a 2-D int32 table ``table[server_id, metric_id]`` (``-1`` where there is no
  series). A point is one gather; row ``s`` lists every series of server ``s`` and column
  ``m`` every series of metric ``m`` (the seed's two indexes into the same ring). A fleet
  whose servers share their metric names fills it.
- **sparse**: when the table would be mostly empty (many metric names on few servers, many
  servers with few metrics each), a hash table of ``(server_id << 32) | metric_id`` keys for
  points, and the same keys sorted two ways (by server, then metric; by metric, then server)
  for the two indexes. Memory follows the series that exist.

Interning a batch is a dictionary lookup per *distinct* name in the batch and vectorised
passes over its points in either layout; a batch whose names span a small sub-table is looked
up in that sub-table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
import numpy.typing as npt

from minutely.model import I32, I64, PointBatch

#: The dense table is kept while it has at most this many cells (4 B each) per series: 64 B a
#: series, about what the sparse layout holds (a hash slot of 12 B at most half full, 24-48 B,
#: and 12 B in each of two sorted orders), so the faster layout never costs much more memory ...
DENSE_CELLS_PER_SERIES = 16
#: ... except under this floor (16 MB), where a table is always dense: small registries, and
#: the seed's 1,000 × 2,000 fleet from its first batch on, keep the faster layout.
DENSE_FLOOR_CELLS = 1 << 22

_LOW = np.int64(0xFFFFFFFF)
_EMPTY = np.int64(-1)  # no key is negative: ids are below 2**31
_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: Fibonacci hashing


class Names:
    """One namespace (servers or metrics): name ↔ dense id.

    Alone, a ``Names`` numbers names in order of first sight. In a cluster the ids must be
    the same on every node, so ``allocate`` (given the new names of a batch, in order)
    returns their ids from the cluster's allocator and ``known`` (called when an id is
    asked for that this process has not seen) returns every name the cluster has; ids may
    then have gaps, which hold no name. Thread-safe: the shards of a cluster node share one.
    """

    def __init__(
        self,
        allocate: Callable[[list[str]], list[int]] | None = None,
        known: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.allocate = allocate
        self.known = known
        self._ids: dict[str, int] = {}
        self._names: list[str | None] = []
        self._lock = threading.Lock()
        # The pieces of one split batch share its name array: intern it once.
        self._last: tuple[npt.NDArray[np.object_], I32] | None = None

    def __len__(self) -> int:
        """The size of the id space: one more than the highest id."""
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def get(self, name: str) -> int | None:
        ident = self._ids.get(name)
        if ident is None and self.known is not None:
            self.adopt(self.known())
            ident = self._ids.get(name)
        return ident

    def name(self, ident: int) -> str:
        if ident >= len(self._names) or self._names[ident] is None:
            if self.known is not None:
                self.adopt(self.known())
            if ident >= len(self._names) or self._names[ident] is None:
                msg = f"no name has id {ident}"
                raise KeyError(msg)
        name = self._names[ident]
        assert name is not None
        return name

    def names(self) -> list[str]:
        """Every name, in id order (gaps left out)."""
        return [n for n in self._names if n is not None]

    def adopt(self, mapping: dict[str, int]) -> None:
        """Take names whose ids were given elsewhere (the cluster's allocator)."""
        with self._lock:
            self._place(mapping.items())

    def _place(self, pairs: Iterable[tuple[str, int]]) -> None:
        names, ids = self._names, self._ids
        for name, ident in pairs:
            if ident >= len(names):
                names.extend([None] * (ident + 1 - len(names)))
            names[ident] = name
            ids[name] = ident

    def ids_of(self, names: npt.NDArray[np.object_]) -> I32:
        """Ids of ``names`` (distinct names of one batch), ``-1`` for an unknown one; creates
        nothing."""
        ids = self._ids
        return np.fromiter(
            (ids.get(name, -1) for name in names.tolist()), dtype=np.int32, count=len(names)
        )

    def intern(self, names: npt.NDArray[np.object_]) -> I32:
        """Ids of ``names`` (distinct names of one batch), creating the unknown ones."""
        with self._lock:
            last = self._last
            if last is not None and last[0] is names:
                return last[1]
            ids = self._ids
            listed = names.tolist()
            if self.allocate is not None:
                new = [name for name in listed if name not in ids]
                if new:
                    self._place(zip(new, self.allocate(new), strict=True))
            out = np.empty(len(names), dtype=np.int32)
            known = self._names
            for i, name in enumerate(listed):
                ident = ids.get(name)
                if ident is None:
                    ident = ids[name] = len(known)
                    known.append(name)
                out[i] = ident
            self._last = (names, out)
            return out


class Registry:
    """Servers, metrics and the series map; grows as new names arrive.

    Writers (the aggregator) intern under a lock; readers take consistent snapshots of the
    indexes, so a query never sees a half-grown map. ``dense_floor_cells`` and
    ``dense_cells_per_series`` bound the dense layout (see ``DENSE_CELLS_PER_SERIES``).
    """

    def __init__(
        self,
        *,
        dense_floor_cells: int = DENSE_FLOOR_CELLS,
        dense_cells_per_series: int = DENSE_CELLS_PER_SERIES,
        servers: Names | None = None,
        metrics: Names | None = None,
    ) -> None:
        #: the namespaces, given when several registries share them (a cluster node's shards)
        self.servers = Names() if servers is None else servers
        self.metrics = Names() if metrics is None else metrics
        self._lock = threading.Lock()
        self._floor = dense_floor_cells
        self._per_series = dense_cells_per_series
        self._series_server = np.zeros(0, dtype=np.int32)
        self._series_metric = np.zeros(0, dtype=np.int32)
        self._n_series = 0
        self._index: _Dense | _Sparse = (
            _Dense(_grow(0), _grow(0)) if self._dense_fits(0, 0, 0) else _Sparse()
        )

    @property
    def n_series(self) -> int:
        return self._n_series

    @property
    def nbytes(self) -> int:
        """Bytes of the series map and indexes (arrays; the name dictionaries not counted)."""
        with self._lock:
            own = self._series_server.nbytes + self._series_metric.nbytes
            return own + self._index.nbytes

    @property
    def layout(self) -> Literal["dense", "sparse"]:
        """Which pair → series map is in use (module docstring)."""
        return "dense" if isinstance(self._index, _Dense) else "sparse"

    def series_ids(self, batch: PointBatch) -> I32:
        """The series id of every point in ``batch``, interning new names and series."""
        with self._lock:
            s_map = self.servers.intern(batch.server_names)
            m_map = self.metrics.intern(batch.metric_names)
            index = self._index
            # a new name beyond the map makes a new series: neither quick lookup can answer
            covers = index.covers(len(self.servers), len(self.metrics))
            n_s, n_m = len(s_map), len(m_map)
            if covers and n_s * n_m <= len(batch) and int(batch.metric_codes.max(initial=0)) < n_m:
                # the batch's own names span a small table: look each point up there, in the
                # batch's codes (one multiply-add and a gather from cache per point, against
                # two gathers, a widening and a lookup in the whole map)
                sub = index.sub_table(s_map, m_map)
                if bool((sub >= 0).all()):  # every pair is a series already: no point is new
                    flat = batch.server_codes * np.int32(n_m)
                    flat += batch.metric_codes
                    return sub.reshape(-1).take(flat)
            s_ids = s_map[batch.server_codes]
            m_ids = m_map[batch.metric_codes]
            sids = index.find(s_ids, m_ids) if covers else index.lookup(s_ids, m_ids)
            missing = sids < 0
            if missing.any():
                s_new, m_new = s_ids[missing], m_ids[missing]
                self._add_series(s_new, m_new)
                sids[missing] = self._index.find(s_new, m_new)
            return sids

    def count_new(self, batch: PointBatch) -> int:
        """How many series ``batch`` would add (distinct pairs not yet numbered); interns
        nothing, so ingest can refuse a request before its points are accepted."""
        new = self.new_points(batch)
        if new is None:
            return 0
        return len(_distinct(_pack(batch.server_codes[new], batch.metric_codes[new])))

    def new_points(self, batch: PointBatch) -> npt.NDArray[np.bool_] | None:
        """Per point of ``batch``, whether its series is not yet numbered; None when every
        one is. Interns nothing."""
        with self._lock:
            s_map = self.servers.ids_of(batch.server_names)
            m_map = self.metrics.ids_of(batch.metric_names)
            index = self._index
            if len(batch) == 0:
                return None
            covers = index.covers(len(self.servers), len(self.metrics))
            if covers and bool((s_map >= 0).all() and (m_map >= 0).all()):
                n_s, n_m = len(s_map), len(m_map)
                if n_s * n_m <= len(batch) and bool((index.sub_table(s_map, m_map) >= 0).all()):
                    return None  # every pair of the batch's names is a series: the common case
            s_ids = s_map[batch.server_codes].astype(np.int64)
            m_ids = m_map[batch.metric_codes].astype(np.int64)
            new = index.lookup(s_ids, m_ids) < 0  # -1 for an unknown name too
        return new if bool(new.any()) else None

    def number_series(self, server_ids: I32, metric_ids: I32) -> None:
        """Number these series in the order given, after the ones held: the store's saved
        numbering, so that a restart keeps each series' id (and the ring's snapshot its
        rows). The pairs must be distinct and new."""
        keys = _pack(server_ids, metric_ids)
        if _distinct(keys).shape[0] != keys.shape[0]:
            msg = "series to number in order must be distinct"
            raise ValueError(msg)
        with self._lock:
            if (
                self._index.lookup(server_ids.astype(np.int64), metric_ids.astype(np.int64)) >= 0
            ).any():
                msg = "series to number in order must be new"
                raise ValueError(msg)
            self._add_series(server_ids, metric_ids, ordered=True)

    def _add_series(self, s_ids: I32, m_ids: I32, ordered: bool = False) -> None:
        """Number the distinct new pairs among ``(s_ids, m_ids)`` (in ``(server, metric)``
        order, or as given when ``ordered``: distinct already), then put them in the map of
        the layout that the series, counted with them, allow."""
        pairs = _pack(s_ids, m_ids) if ordered else _distinct(_pack(s_ids, m_ids))
        new_s = (pairs >> 32).astype(np.int32)
        new_m = (pairs & _LOW).astype(np.int32)
        first = self._n_series
        self._series_server = np.concatenate((self._series_server, new_s))
        self._series_metric = np.concatenate((self._series_metric, new_m))
        self._n_series = first + len(pairs)
        # ids read back by number (a shard's series from the store or a checkpoint) may be
        # ahead of the names this process has learnt
        n_servers = max(len(self.servers), int(new_s.max()) + 1)
        n_metrics = max(len(self.metrics), int(new_m.max()) + 1)
        dense = self._dense_fits(n_servers, n_metrics, self._n_series)
        index = self._index
        if dense and isinstance(index, _Dense):
            index.fit(n_servers, n_metrics)
            index.add(new_s, new_m, first)
        elif not dense and isinstance(index, _Sparse):
            index.add(new_s, new_m, first)
        elif dense:  # the series have caught up with the names: back to the table
            self._index = _Dense(_grow(n_servers), _grow(n_metrics))
            self._index.add(self._series_server, self._series_metric, 0)
        else:  # the names have outgrown the series: a table would be mostly empty
            self._index = _Sparse()
            self._index.add(self._series_server, self._series_metric, 0)

    def _dense_fits(self, n_servers: int, n_metrics: int, n_series: int) -> bool:
        """Whether the table that holds these names stays within the dense bound. The layout
        changes only when a dimension's capacity doubles (to sparse) or the series catch up
        (to dense), so it cannot flip back and forth batch after batch."""
        cells = _grow(n_servers) * _grow(n_metrics)
        return cells <= self._floor + self._per_series * n_series

    def lookup(self, server_ids: npt.ArrayLike, metric_ids: npt.ArrayLike) -> I32:
        """Series ids of existing (server id, metric id) pairs; ``-1`` where there is none."""
        s = np.asarray(server_ids, dtype=np.int64)
        m = np.asarray(metric_ids, dtype=np.int64)
        with self._lock:
            return self._index.lookup(s, m)

    def ensure_series(self, server_ids: npt.ArrayLike, metric_ids: npt.ArrayLike) -> I32:
        """Series ids of (server id, metric id) pairs, numbering those that are new (a
        cluster shard's series read from the store); the ids must be interned already."""
        s = np.asarray(server_ids, dtype=np.int32)
        m = np.asarray(metric_ids, dtype=np.int32)
        with self._lock:
            sids = self._index.lookup(s.astype(np.int64), m.astype(np.int64))
            missing = sids < 0
            if missing.any():
                self._add_series(s[missing], m[missing])
                sids[missing] = self._index.lookup(
                    s[missing].astype(np.int64), m[missing].astype(np.int64)
                )
            return sids

    def add_series(self, server: str, metric: str) -> int:
        """Intern one (server, metric) pair; returns its series id."""
        batch = PointBatch.from_names([server], [metric], [0.0], [0.0])
        return int(self.series_ids(batch)[0])

    def by_server(self, server_id: int) -> tuple[I32, I32]:
        """Series ids of one server and their metric ids, in metric-id order."""
        with self._lock:
            if server_id < 0:
                return _none(), _none()
            return self._index.by_server(server_id)

    def by_metric(self, metric_id: int) -> tuple[I32, I32]:
        """Series ids of one metric and their server ids, in server-id order."""
        with self._lock:
            if metric_id < 0:
                return _none(), _none()
            return self._index.by_metric(metric_id)

    def series_of(self, series_ids: I32) -> tuple[I32, I32]:
        """(server ids, metric ids) of the given series."""
        with self._lock:
            return self._series_server[series_ids], self._series_metric[series_ids]


class _Dense:
    """The pair → series table, its capacity a power of two in each dimension."""

    def __init__(self, rows: int, cols: int) -> None:
        self.table = np.full((rows, cols), -1, dtype=np.int32)

    @property
    def nbytes(self) -> int:
        return int(self.table.nbytes)

    def covers(self, n_servers: int, n_metrics: int) -> bool:
        rows, cols = self.table.shape
        return n_servers <= rows and n_metrics <= cols

    def fit(self, n_servers: int, n_metrics: int) -> None:
        if self.covers(n_servers, n_metrics):
            return
        rows, cols = self.table.shape
        grown = np.full(
            (max(rows, _grow(n_servers)), max(cols, _grow(n_metrics))), -1, dtype=np.int32
        )
        grown[:rows, :cols] = self.table
        self.table = grown

    def sub_table(self, s_map: I32, m_map: I32) -> I32:
        return self.table[np.ix_(s_map, m_map)]

    def find(self, s_ids: I32, m_ids: I32) -> I32:
        """Series ids of pairs inside the table; ``-1`` for a pair without one."""
        # one flat gather is ~2x faster than 2-D fancy indexing
        flat = s_ids.astype(np.int64) * self.table.shape[1] + m_ids
        return self.table.reshape(-1).take(flat)

    def lookup(self, s: npt.NDArray[np.integer], m: npt.NDArray[np.integer]) -> I32:
        """``find`` for any ids: ``-1`` outside the table too."""
        rows, cols = self.table.shape
        inside = (s >= 0) & (s < rows) & (m >= 0) & (m < cols)
        out = np.full(s.shape[0], -1, dtype=np.int32)
        out[inside] = self.table.reshape(-1).take(s[inside].astype(np.int64) * cols + m[inside])
        return out

    def add(self, s_new: I32, m_new: I32, first: int) -> None:
        ids = np.arange(first, first + len(s_new), dtype=np.int32)
        self.table[s_new, m_new] = ids

    def by_server(self, server_id: int) -> tuple[I32, I32]:
        if server_id >= self.table.shape[0]:
            return _none(), _none()
        row = self.table[server_id]
        metric_ids = np.flatnonzero(row >= 0).astype(np.int32)
        return row[metric_ids].copy(), metric_ids

    def by_metric(self, metric_id: int) -> tuple[I32, I32]:
        if metric_id >= self.table.shape[1]:
            return _none(), _none()
        col = self.table[:, metric_id]
        server_ids = np.flatnonzero(col >= 0).astype(np.int32)
        return col[server_ids].copy(), server_ids


class _Sparse:
    """The series as packed pair keys: hashed for points, sorted two ways for the indexes."""

    def __init__(self) -> None:
        self._hash = _PairHash()
        self._by_server = _SortedPairs()  # keys (server << 32) | metric
        self._by_metric = _SortedPairs()  # keys (metric << 32) | server

    @property
    def nbytes(self) -> int:
        return self._hash.nbytes + self._by_server.nbytes + self._by_metric.nbytes

    def covers(self, n_servers: int, n_metrics: int) -> bool:
        return True

    def sub_table(self, s_map: I32, m_map: I32) -> I32:
        keys = (s_map.astype(np.int64) << 32)[:, None] | m_map[None, :]
        return self._hash.find(keys.reshape(-1)).reshape(keys.shape)

    def find(self, s_ids: I32, m_ids: I32) -> I32:
        return self._hash.find(_pack(s_ids, m_ids))

    def lookup(self, s: npt.NDArray[np.integer], m: npt.NDArray[np.integer]) -> I32:
        # ids past 2**31 would not pack into a key, and no series has one
        inside = (s >= 0) & (s <= _LOW >> 1) & (m >= 0) & (m <= _LOW >> 1)
        out = np.full(s.shape[0], -1, dtype=np.int32)
        out[inside] = self._hash.find(_pack(s[inside], m[inside]))
        return out

    def add(self, s_new: I32, m_new: I32, first: int) -> None:
        ids = np.arange(first, first + len(s_new), dtype=np.int32)
        self._hash.insert(_pack(s_new, m_new), ids)
        self._by_server.merge(_pack(s_new, m_new), ids)
        self._by_metric.merge(_pack(m_new, s_new), ids)

    def by_server(self, server_id: int) -> tuple[I32, I32]:
        return self._by_server.group(server_id)

    def by_metric(self, metric_id: int) -> tuple[I32, I32]:
        return self._by_metric.group(metric_id)


class _SortedPairs:
    """Series ids in the order of their packed keys ``(major << 32) | minor``: one major's
    series are a run, in minor order."""

    def __init__(self) -> None:
        self._keys = np.zeros(0, dtype=np.int64)
        self._ids = np.zeros(0, dtype=np.int32)

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._ids.nbytes)

    def merge(self, keys: I64, ids: I32) -> None:
        """Add new (absent) keys: one pass over the held ones."""
        order = np.argsort(keys)
        keys, ids = keys[order], ids[order]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._ids = np.insert(self._ids, at, ids)

    def group(self, major: int) -> tuple[I32, I32]:
        """Series ids of ``major`` and their minor ids, in minor order."""
        bounds = np.array([major, major + 1], dtype=np.int64) << 32
        lo, hi = np.searchsorted(self._keys, bounds).tolist()
        return self._ids[lo:hi].copy(), (self._keys[lo:hi] & _LOW).astype(np.int32)


class _PairHash:
    """Packed pair key → series id: open addressing with linear probing, at most half full.

    Lookups and inserts are vectorised: each round is one probe step for every key still
    probing, and at half load nearly every key ends in its first or second slot.
    """

    def __init__(self) -> None:
        self._bits = 4
        self._keys = np.full(1 << self._bits, _EMPTY, dtype=np.int64)
        self._ids = np.full(1 << self._bits, -1, dtype=np.int32)
        self._n = 0

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._ids.nbytes)

    def _home(self, keys: I64) -> I64:
        slots = keys.view(np.uint64) * _MIX  # the top bits mix every bit of the key
        slots >>= np.uint64(64 - self._bits)
        return slots.view(np.int64)

    def find(self, keys: I64) -> I32:
        """Series ids of ``keys``; ``-1`` for a key that is not held."""
        mask = (1 << self._bits) - 1
        slots = self._home(keys)
        held = self._keys.take(slots)
        out = self._ids.take(slots)  # -1 where the slot is empty
        other = held != keys
        out[other] = -1
        todo = np.flatnonzero(other & (held != _EMPTY))
        at = slots[todo]
        while todo.size:
            at = (at + 1) & mask
            held = self._keys.take(at)
            hit = held == keys.take(todo)
            out[todo[hit]] = self._ids.take(at[hit])
            going = ~hit & (held != _EMPTY)
            todo, at = todo[going], at[going]
        return out

    def insert(self, keys: I64, ids: I32) -> None:
        """Add distinct keys that are not held yet."""
        if 2 * (self._n + len(keys)) > 1 << self._bits:
            self._rehash(self._n + len(keys))
        mask = (1 << self._bits) - 1
        todo = np.arange(len(keys))
        at = self._home(keys)
        while todo.size:
            free = np.flatnonzero(self._keys.take(at) == _EMPTY)
            # every key at a free slot writes itself there; of several at one slot, one
            # write lands, and reading back tells which
            claim, slot = todo[free], at[free]
            self._keys[slot] = keys[claim]
            won = self._keys.take(slot) == keys[claim]
            self._ids[slot[won]] = ids[claim[won]]
            going = np.ones(todo.size, dtype=bool)
            going[free[won]] = False
            todo, at = todo[going], (at[going] + 1) & mask
        self._n += len(keys)

    def _rehash(self, n: int) -> None:
        held = np.flatnonzero(self._keys != _EMPTY)
        keys, ids = self._keys[held], self._ids[held]
        while 2 * n > 1 << self._bits:
            self._bits += 1
        self._keys = np.full(1 << self._bits, _EMPTY, dtype=np.int64)
        self._ids = np.full(1 << self._bits, -1, dtype=np.int32)
        self._n = 0
        self.insert(keys, ids)


def _pack(major: npt.NDArray[np.integer], minor: npt.NDArray[np.integer]) -> I64:
    return (major.astype(np.int64) << 32) | minor.astype(np.int64)


def _distinct(keys: I64) -> I64:
    """The distinct ``keys``, ascending: one sort and a comparison of neighbours. ``np.unique``
    (numpy 2.3 on) hashes the keys before it sorts them, many times slower on these."""
    keys = np.sort(keys)
    keep = np.empty(keys.size, dtype=bool)
    keep[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _none() -> I32:
    return np.zeros(0, dtype=np.int32)


def _grow(n: int) -> int:
    """The table capacity for ``n`` ids: a power of two, at least 16."""
    return max(16, 1 << (n - 1).bit_length())
