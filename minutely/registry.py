"""Names ↔ dense ids for servers, metrics and series, and the two indexes into the ring.

Server and metric names are interned into dense ids (0, 1, 2, …) in order of first sight. A
series is a (server id, metric id) pair with a dense id of its own: its row in the hot ring.

The pair → series map is a 2-D int32 table ``table[server_id, metric_id]`` (``-1`` where the
series does not exist yet). Its rows and columns are the seed's two indexes: row ``s`` lists
every series of server ``s`` (read one server), column ``m`` every series of metric ``m`` (read
one metric), both pointing into the same ring. Interning a batch is a dictionary lookup per
*distinct* name in the batch and one vectorised gather per point.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from minutely.model import I32, PointBatch


class Names:
    """One namespace (servers or metrics): name ↔ dense id."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        # The pieces of one split batch share its name array: intern it once.
        self._last: tuple[npt.NDArray[np.object_], I32] | None = None

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def get(self, name: str) -> int | None:
        return self._ids.get(name)

    def name(self, ident: int) -> str:
        return self._names[ident]

    def names(self) -> list[str]:
        return list(self._names)

    def intern(self, names: npt.NDArray[np.object_]) -> I32:
        """Ids of ``names`` (distinct names of one batch), creating the unknown ones."""
        if self._last is not None and self._last[0] is names:
            return self._last[1]
        out = np.empty(len(names), dtype=np.int32)
        ids, known = self._ids, self._names
        for i, name in enumerate(names.tolist()):
            ident = ids.get(name)
            if ident is None:
                ident = ids[name] = len(known)
                known.append(name)
            out[i] = ident
        self._last = (names, out)
        return out


class Registry:
    """Servers, metrics and the series table; grows as new names arrive.

    Writers (the aggregator) intern under a lock; readers take consistent snapshots of the
    indexes, so a query never sees a half-grown table.
    """

    def __init__(self) -> None:
        self.servers = Names()
        self.metrics = Names()
        self._lock = threading.Lock()
        self._table = np.full((16, 16), -1, dtype=np.int32)
        self._series_server = np.zeros(0, dtype=np.int32)
        self._series_metric = np.zeros(0, dtype=np.int32)
        self._n_series = 0

    @property
    def n_series(self) -> int:
        return self._n_series

    def series_ids(self, batch: PointBatch) -> I32:
        """The series id of every point in ``batch``, interning new names and series."""
        with self._lock:
            s_map = self.servers.intern(batch.server_names)
            m_map = self.metrics.intern(batch.metric_names)
            self._fit(len(self.servers), len(self.metrics))
            n_s, n_m = len(s_map), len(m_map)
            if n_s * n_m <= len(batch) and int(batch.metric_codes.max(initial=0)) < n_m:
                # the batch's own names span a small table: look each point up there, in the
                # batch's codes (one multiply-add and a gather from cache per point, against
                # two gathers, a widening and a gather from the whole table)
                sub = self._table[np.ix_(s_map, m_map)]
                if bool((sub >= 0).all()):  # every pair is a series already: no point is new
                    flat = batch.server_codes * np.int32(n_m)
                    flat += batch.metric_codes
                    return sub.reshape(-1).take(flat)
            s_ids = s_map[batch.server_codes]
            m_ids = m_map[batch.metric_codes]
            # one flat gather is ~2x faster than 2-D fancy indexing
            flat = s_ids.astype(np.int64) * self._table.shape[1] + m_ids
            sids = self._table.reshape(-1).take(flat)
            missing = sids < 0
            if missing.any():
                self._add_series(s_ids[missing], m_ids[missing])
                sids = self._table.reshape(-1).take(flat)
            return sids

    def _fit(self, n_servers: int, n_metrics: int) -> None:
        rows, cols = self._table.shape
        if n_servers <= rows and n_metrics <= cols:
            return
        grown = np.full(
            (max(rows, _grow(n_servers)), max(cols, _grow(n_metrics))), -1, dtype=np.int32
        )
        grown[:rows, :cols] = self._table
        self._table = grown

    def _add_series(self, s_ids: I32, m_ids: I32) -> None:
        width = self._table.shape[1]
        pairs = np.unique(s_ids.astype(np.int64) * width + m_ids)
        new_s = (pairs // width).astype(np.int32)
        new_m = (pairs % width).astype(np.int32)
        first = self._n_series
        self._table[new_s, new_m] = np.arange(first, first + len(pairs), dtype=np.int32)
        self._series_server = np.concatenate((self._series_server, new_s))
        self._series_metric = np.concatenate((self._series_metric, new_m))
        self._n_series = first + len(pairs)

    def lookup(self, server_ids: npt.ArrayLike, metric_ids: npt.ArrayLike) -> I32:
        """Series ids of existing (server id, metric id) pairs; ``-1`` where there is none."""
        s = np.asarray(server_ids, dtype=np.int64)
        m = np.asarray(metric_ids, dtype=np.int64)
        with self._lock:
            rows, cols = self._table.shape
            inside = (s >= 0) & (s < rows) & (m >= 0) & (m < cols)
            out = np.full(s.shape[0], -1, dtype=np.int32)
            out[inside] = self._table.reshape(-1).take(s[inside] * cols + m[inside])
            return out

    def add_series(self, server: str, metric: str) -> int:
        """Intern one (server, metric) pair; returns its series id."""
        batch = PointBatch.from_names([server], [metric], [0.0], [0.0])
        return int(self.series_ids(batch)[0])

    def by_server(self, server_id: int) -> tuple[I32, I32]:
        """Series ids of one server and their metric ids, in metric-id order."""
        with self._lock:
            row = self._table[server_id, : len(self.metrics)]
            metric_ids = np.flatnonzero(row >= 0).astype(np.int32)
            return row[metric_ids].copy(), metric_ids

    def by_metric(self, metric_id: int) -> tuple[I32, I32]:
        """Series ids of one metric and their server ids, in server-id order."""
        with self._lock:
            col = self._table[: len(self.servers), metric_id]
            server_ids = np.flatnonzero(col >= 0).astype(np.int32)
            return col[server_ids].copy(), server_ids

    def series_of(self, series_ids: I32) -> tuple[I32, I32]:
        """(server ids, metric ids) of the given series."""
        with self._lock:
            return self._series_server[series_ids], self._series_metric[series_ids]


def _grow(n: int) -> int:
    size = 16
    while size < n:
        size *= 2
    return size
