"""Any node answers any question: to the owner of the question's partition, or the store.

Q1 and Q3 (one server) belong to the server's partition of the by-server copy, Q2, Q4 and
the fleet band (one metric) to the metric's partition of the by-metric copy, so no question
is sent to more than one node. ``Router`` answers:

- from this node's shard when it owns the partition and the shard is ready;
- else from the partition's lease holder, asked over HTTP for exact partials
  (``/api/v1/local/…``, ``api/partials.py``); the holder merges its ring and the store;
- else (no holder, or the holder cannot be reached, or its shard is still opening) from the
  store alone, marked ``partial``: every minute up to the partition's last checkpoint, never
  a wrong one.

Every one of the three checks a series question against ``max_query_cells`` before it
allocates: a question the holder refuses (400) is refused here with the holder's reason
and smallest step (``partials.refusal_of``), not answered from the store. The holder checks
against its own setting, so the nodes of a cluster are given the same one.

``LocalAnswers`` is what a routed question meets at its holder: the same, minus the HTTP hop.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import httpx
import numpy as np

from minutely.api import partials
from minutely.bus.base import partition_of
from minutely.cluster.keys import partition_key
from minutely.errors import NotFound
from minutely.hot import HotRing
from minutely.query import By, Query, SeriesAnswer, SummaryAnswer, fleet_of
from minutely.registry import Registry

if TYPE_CHECKING:
    from minutely.cluster.leases import Holder
    from minutely.cluster.shard import Shard
    from minutely.config import Settings
    from minutely.registry import Names
    from minutely.store import Store


class Owners(Protocol):
    """What the answers need of their node (``node.ClusterNode``): its shards, who holds
    each key, its names and its stores."""

    name: str
    partitions: int
    settings: Settings
    servers: Names
    metrics: Names

    def shard(self, key: str) -> Shard | None: ...

    def holder(self, key: str) -> Holder | None: ...

    def store_of(self, by: By) -> Store: ...


log = logging.getLogger(__name__)

#: seconds a routed question may take at its owner before the store answers instead (a
#: paused owner accepts connections and never answers), and to connect to it
ROUTE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 1.0


class LocalAnswers:
    """Answers from this node's ready shards, else from the store marked partial."""

    def __init__(self, node: Owners) -> None:
        self.node = node

    @property
    def max_cells(self) -> int:
        return self.node.settings.max_query_cells

    def touches_store(self, start: int) -> bool:
        return True  # a shard may be taken over at any moment: always answer on a thread

    def series_count(self, by: By, name: str) -> int | None:
        return None  # the owner may be another node: not known here

    def _key(self, by: By, name: str) -> str:
        p = int(partition_of(np.asarray([name], dtype=object), self.node.partitions)[0])
        return partition_key(by, p)

    def _shard(self, by: By, name: str) -> Shard | None:
        shard = self.node.shard(self._key(by, name))
        return shard if shard is not None and shard.ready else None

    def _store_only(self, by: By, name: str) -> Query:
        """A query over the store alone, with the series the store knows of ``name``."""
        node = self.node
        own = node.servers if by == "server" else node.metrics
        ident = own.get(name)
        if ident is None:
            msg = f"unknown {by} {name!r}"
            raise NotFound(msg)
        registry = Registry(servers=node.servers, metrics=node.metrics)
        store = node.store_of(by)
        s_ids, m_ids = store.series_pairs(by, [ident])
        registry.ensure_series(s_ids, m_ids)
        empty = HotRing(node.settings.hot_minutes, node.settings.live_minutes, capacity=1, block=1)
        return Query(registry, empty, store, node.settings.max_query_cells)

    def series(
        self,
        by: By,
        name: str,
        start: int,
        end: int,
        step: int = 60,
        only: list[str] | None = None,
    ) -> SeriesAnswer:
        shard = self._shard(by, name)
        if shard is not None:
            return shard.query.series(by, name, start, end, step, only)
        got = self._store_only(by, name).series(by, name, start, end, step, only)
        return _partial(got)

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None = None
    ) -> SummaryAnswer:
        shard = self._shard(by, name)
        if shard is not None:
            return shard.query.summary(by, name, start, end, only)
        got = self._store_only(by, name).summary(by, name, start, end, only)
        return _partial_summary(got)

    def fleet(
        self, metric: str, start: int, end: int, step: int = 60, only: list[str] | None = None
    ) -> SeriesAnswer:
        return fleet_of(self.series("metric", metric, start, end, step, only))


class Router(LocalAnswers):
    """Answers any question through this node (see the module docstring)."""

    def __init__(self, node: Owners, client: httpx.Client | None = None) -> None:
        super().__init__(node)
        token = node.settings.token  # the owners' /api/v1/local routes need admin scope
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(ROUTE_TIMEOUT, connect=CONNECT_TIMEOUT),
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )

    def _remote(self, by: By, name: str) -> str | None:
        """The URL of the node holding ``name``'s partition, when that is another node."""
        holder = self.node.holder(self._key(by, name))
        if holder is None or holder.node == self.node.name or not holder.url:
            return None
        # a holder renews every third of its lease: one silent for two thirds is dead or
        # paused, and asking it would only wait for the timeout
        if time.time() - holder.renewed > self.node.settings.lease_ttl * 2 / 3 + 1.0:
            return None
        return holder.url

    def _ask(
        self, url: str, by: By, name: str, kind: str, query: list[tuple[str, str | int]]
    ) -> bytes | None:
        """The owner's partials, or None when it cannot answer (the store answers then)."""
        path = f"{url.rstrip('/')}/api/v1/local/{by}s/{quote(name, safe='')}/{kind}"
        try:
            got = self.client.get(path, params=tuple(query))
        except httpx.HTTPError as exc:
            log.warning("the owner at %s did not answer (%s): answering from the store", url, exc)
            return None
        if got.status_code == 404:
            raise NotFound(got.json().get("error", f"unknown {by} {name!r}"))
        if got.status_code == 400:  # refused as this node would: the store cannot do better
            try:
                refusal = got.json()
            except ValueError:
                refusal = {"error": got.text[:500]}
            raise partials.refusal_of(refusal)
        if got.status_code in (401, 403):
            log.warning(
                "the owner at %s refused this node's token (%d): give every node an admin"
                " token (MINUTELY_TOKEN or --token-file); answering from the store",
                url,
                got.status_code,
            )
            return None
        if got.status_code != 200:
            log.warning(
                "the owner at %s answered %d: answering from the store", url, got.status_code
            )
            return None
        return got.content

    def series(
        self,
        by: By,
        name: str,
        start: int,
        end: int,
        step: int = 60,
        only: list[str] | None = None,
    ) -> SeriesAnswer:
        url = None if self._shard(by, name) is not None else self._remote(by, name)
        if url is not None:
            query = [*_query(by, start, end, only), ("step", step)]
            body = self._ask(url, by, name, "series", query)
            if body is not None:
                return partials.series_of(body)
        return super().series(by, name, start, end, step, only)

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None = None
    ) -> SummaryAnswer:
        url = None if self._shard(by, name) is not None else self._remote(by, name)
        if url is not None:
            body = self._ask(url, by, name, "summary", _query(by, start, end, only))
            if body is not None:
                return partials.summary_of(body)
        return super().summary(by, name, start, end, only)

    def close(self) -> None:
        self.client.close()


def _query(by: By, start: int, end: int, only: list[str] | None) -> list[tuple[str, str | int]]:
    other = "metric" if by == "server" else "server"
    return [("start", start), ("end", end), *((other, o) for o in only or [])]


def _partial(a: SeriesAnswer) -> SeriesAnswer:
    return SeriesAnswer(
        a.by, a.name, a.start, a.end, a.step, a.timestamps, a.labels, a.parts, a.servers, True
    )


def _partial_summary(a: SummaryAnswer) -> SummaryAnswer:
    return SummaryAnswer(a.by, a.name, a.start, a.end, a.labels, a.parts, True)
