"""A cluster node: ``minutely serve --node NAME`` on a shared NATS JetStream and ClickHouse.

    any node ─ ingest ─► TwoCopies ─┬─► MINUTELY_<p>    (by server)  ─► shard s.<p> on its owner
                                    └─► MINUTELY_M_<q>  (by metric)  ─► shard m.<q> on its owner
    any node ─ query ─► Router ─► the owner's shard (HTTP, exact partials) │ the store, partial

Every node takes points (published to both copies), answers every question (``router.py``)
and owns some partitions of each copy. Who owns what is decided by JetStream KV, never here:

- each node announces itself in the membership bucket every ``lease_ttl / 3`` seconds;
- every node computes the same wanted assignment of every partition key (``s.<p>``,
  ``m.<q>``) over the live nodes by rendezvous hashing, so a join or a death moves only the
  keys it must;
- a node takes a key it is wanted for when nobody holds its lease (a KV ``create``), opens
  the shard (``shard.py``: claims the checkpoint, which fences the previous owner, rebuilds
  the ring, takes the stream over), and renews the lease every ``lease_ttl / 3`` seconds;
- a node holding a key wanted elsewhere (a node joined) checkpoints the shard, lets it go
  and releases the lease, so the wanted node takes it at its next tick;
- a node whose renewal fails, or cannot confirm one before its lease would have expired,
  abandons the shard at once: another node may own it already. A node that dies or pauses
  simply stops renewing; the lease expires after ``lease_ttl`` and the others take over.

Names are global (``registry.Names`` backed by the control plane's allocator); each shard
numbers its own series over them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from minutely.bus import Bus
from minutely.bus.nats import NatsBus
from minutely.cluster.checkpoints import Checkpoints
from minutely.cluster.control import ControlConfig, ControlPlane
from minutely.cluster.copies import SwappedBus, TwoCopies
from minutely.cluster.keys import Copy, assignment, copy_of, partition_key
from minutely.cluster.leases import Holder, Lease, LeaseLost, NodeInfo
from minutely.cluster.router import LocalAnswers, Router
from minutely.cluster.shard import FencedStorage, Shard, ShardClosed
from minutely.config import Settings
from minutely.ingest import Decoded
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Decoder
from minutely.ingest.validate import Body
from minutely.kinds import Kind, Kinds
from minutely.letters import LetterBox, points_of
from minutely.limits import Refusals
from minutely.query import By
from minutely.registry import Names
from minutely.service import IngestNode
from minutely.store import Retention, Store, StoreConfig
from minutely.store_writer import StoreWriter

log = logging.getLogger(__name__)

#: the by-metric copy's names on the broker (the by-server copy keeps the single node's)
METRIC_STREAM, METRIC_SUBJECTS, METRIC_GROUP = "MINUTELY_M", "minutely.mpoints", "minutely-m"
#: seconds between two looks at the cluster (membership, leases, wanted owners)
TICK = 1.0
#: shards opened at once: a dead node's shards are taken over side by side, as their
#: rebuilds mostly wait on the store
OPENERS = 4
#: seconds between two reads of the streams' backlogs (status shows the last one)
LAG_EVERY = 2.0
#: seconds before a shard that failed to open is tried again
RETRY_OPEN = 2.0


class ClusterNode:
    """One node of a cluster (see the module docstring). Built without I/O; ``open``
    connects, ``start`` joins, ``stop`` hands every shard over and leaves."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.name = settings.node
        #: each metric's kind, declarations shared through the control plane (every shard's)
        self.partitions = settings.partitions
        self.info = NodeInfo(settings.node, settings.advertised_url, os.getpid(), clock())
        self.control = ControlPlane(
            ControlConfig(settings.bus, replicas=settings.replicas, lease_ttl=settings.lease_ttl)
        )
        #: each metric's kind, declarations shared through the control plane (every shard's)
        self.kinds = Kinds(settings.counter_patterns, shared=_PlaneKinds(self.control))
        self.bus_by_server = NatsBus(
            settings.bus,
            partitions=settings.partitions,
            max_bytes=settings.bus_max_bytes,
            replicas=settings.replicas,
        )
        self.bus_by_metric = NatsBus(
            settings.bus,
            partitions=settings.partitions,
            max_bytes=settings.bus_max_bytes,
            stream=METRIC_STREAM,
            subjects=METRIC_SUBJECTS,
            group=METRIC_GROUP,
            replicas=settings.replicas,
        )
        self.copies = TwoCopies(self.bus_by_server, self.bus_by_metric)
        self.ingest_node = IngestNode(settings, clock, bus=self.copies, kinds=self.kinds)
        retention = Retention(
            minute=settings.retention_1m, hour=settings.retention_1h, day=settings.retention_1d
        )
        self.stores: dict[Copy, Store] = {
            copy: Store(
                StoreConfig(settings.store, retention=retention, layout="cluster", copy=copy)
            )
            for copy in ("server", "metric")
        }
        self.servers = Names(
            allocate=lambda new: self.control.names.ids("server", new),
            known=lambda: self.control.names.all("server"),
        )
        self.metrics = Names(
            allocate=lambda new: self.control.names.ids("metric", new),
            known=lambda: self.control.names.all("metric"),
        )
        data = Path(settings.data_dir)
        self.dead_letters: dict[Copy, LetterBox] = {
            copy: LetterBox(data / "dead-letters" / copy, clock) for copy in ("server", "metric")
        }
        self.keys = [
            partition_key(c, p) for c in ("server", "metric") for p in range(self.partitions)
        ]
        self.router = Router(self)
        self.local = LocalAnswers(self)
        self.started_at = clock()
        self._shards: dict[str, Shard] = {}
        self._leases: dict[str, Lease] = {}
        self._holders: dict[str, Holder] = {}
        self._nodes: list[NodeInfo] = []
        self._failed_at: dict[str, float] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._keeper: threading.Thread | None = None
        self._opener = concurrent.futures.ThreadPoolExecutor(
            OPENERS, thread_name_prefix="minutely-shard"
        )
        #: hand-overs and drops: they wait for a shard's fold to stop, never in the loops
        self._stopper = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="minutely-stop")
        self._stopping: set[str] = set()
        #: per copy, per partition: the stream's backlog, as the loop last read it
        self._lag: dict[str, dict[int, dict[str, Any]]] = {"server": {}, "metric": {}}
        self._next_lag = 0.0
        self._opening: dict[str, concurrent.futures.Future[None]] = {}
        self._next_announce = 0.0
        self._next_expiry = time.monotonic() + settings.expire_every

    # -- life ------------------------------------------------------------------------------

    def open(self) -> ClusterNode:
        """Connect the control plane, the stores (schema made once) and both buses."""
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        self.control.open()
        try:
            self.stores["server"].migrate()
            self.stores["server"].expire(self.clock())
            self.stores["metric"].expire(self.clock())
            self.copies.open()
            self.servers.adopt(self.control.names.all("server"))
            self.metrics.adopt(self.control.names.all("metric"))
            self.kinds.refresh()
        except BaseException:
            self.close()
            raise
        return self

    def start(self) -> None:
        """Join: announce this node and run the ownership loop in a thread."""
        self.control.membership.announce(self.info)
        self._keeper = threading.Thread(target=self._keep, name="minutely-leases", daemon=True)
        self._keeper.start()
        self._thread = threading.Thread(target=self._run, name="minutely-cluster", daemon=True)
        self._thread.start()
        log.info("cluster node %s started at %s: %s", self.name, self.info.url, self.settings)

    async def stop(self) -> None:
        """Leave: hand every shard over (checkpointed, lease released), then disconnect."""
        self._stop.set()
        for thread in (self._keeper, self._thread):
            if thread is not None:
                thread.join(30)
        self._opener.shutdown(wait=True, cancel_futures=True)
        self._stopper.shutdown(wait=True)
        for key in list(self._shards):
            self._hand_over(key)
        try:
            self.control.membership.withdraw(self.name)
        except Exception as exc:
            log.warning("could not withdraw from the membership bucket: %s", exc)
        await self.copies.close()
        self.close()

    def close(self) -> None:
        self.router.close()
        for store in self.stores.values():
            store.close()
        self.control.close()

    # -- ownership -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.tick()
            except Exception:
                log.exception("the cluster loop failed; trying again")

    def _keep(self) -> None:
        """Announce this node and renew its leases, in a thread of their own: nothing slow
        (a shard's rebuild or hand-over, a scan of the buckets) may delay a renewal."""
        ttl = self.settings.lease_ttl
        while not self._stop.wait(min(1.0, ttl / 6)):
            now = time.monotonic()
            try:
                if now >= self._next_announce:
                    self.control.membership.announce(self.info)
                    self._next_announce = now + ttl / 3
            except Exception as exc:
                log.warning("could not announce %s: %s", self.name, exc)
            self._renew(now, ttl)

    def tick(self) -> None:
        """One look at the cluster: take what is wanted here and free, hand over what is
        wanted elsewhere (leases are renewed by ``_keep``)."""
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + self.settings.expire_every
            self._expire()
        if now >= self._next_lag:
            self._next_lag = now + LAG_EVERY
            self._lag = {"server": _lag(self.bus_by_server), "metric": _lag(self.bus_by_metric)}
        try:  # what other nodes declared, for queries and the folds of known metrics
            self.kinds.refresh()
        except Exception as exc:
            log.warning("could not read the kinds declared in the cluster: %s", exc)
        self._nodes = self.control.membership.nodes()
        self._holders = self.control.leases.holders()
        names = sorted({n.name for n in self._nodes} | {self.name})
        wanted = assignment(self.keys, names)
        for key, owner in wanted.items():
            with self._lock:
                held = key in self._leases
                stopping = key in self._stopping
            if owner == self.name and not held and not stopping and key not in self._holders:
                if now - self._failed_at.get(key, -RETRY_OPEN) >= RETRY_OPEN:
                    self._take(key)
            elif owner != self.name and held and not stopping and self._ready(key):
                self._stop_later(key, self._hand_over, key)

    def _stop_later(self, key: str, stop: Callable[..., None], *args: Any) -> None:
        """Run a hand-over or a drop of ``key`` on the stopper thread, once."""
        with self._lock:
            if key in self._stopping:
                return
            self._stopping.add(key)

        def run() -> None:
            try:
                stop(*args)
            finally:
                with self._lock:
                    self._stopping.discard(key)

        self._stopper.submit(run)

    def _expire(self) -> None:
        """Drop expired partitions (every node does: a drop is idempotent) and move each
        store's read horizons on."""
        for copy, store in self.stores.items():
            try:
                store.expire(self.clock())
            except Exception as exc:
                log.warning("expiry of the %s copy failed: %s", copy, exc)

    def _renew(self, now: float, ttl: float) -> None:
        """Renew every lease renewed a third of its life ago or more, in one round trip."""
        with self._lock:
            due = [x for x in self._leases.values() if now >= x.valid_until - ttl * 2 / 3]
        for lease, got in zip(due, self.control.leases.renew_all(due), strict=True):
            key = lease.key
            if isinstance(got, LeaseLost):
                self._stop_later(key, self._drop, key, str(got))
            elif isinstance(got, Exception):
                if time.monotonic() >= lease.valid_until:
                    why = f"no renewal confirmed before the lease ran out: {got}"
                    self._stop_later(key, self._drop, key, why)
            else:
                with self._lock:
                    if self._leases.get(key) is lease:  # not dropped or handed over meanwhile
                        self._leases[key] = got

    def _take(self, key: str) -> None:
        lease = self.control.leases.acquire(key, self.info)
        if lease is None:
            return
        with self._lock:
            self._leases[key] = lease
        copy, partition = copy_of(key)
        bus: Bus = self.bus_by_server if copy == "server" else self.copies.by_metric
        shard = Shard(
            key,
            copy,
            partition,
            self.settings,
            bus,
            self.stores[copy],
            self.servers,
            self.metrics,
            FencedStorage(self._checkpoints, key, self.name),
            self.dead_letters[copy],
            self.kinds,
            holds_lease=lambda: self._holds(key),
            clock=self.clock,
        )
        with self._lock:
            self._shards[key] = shard
        self._opening[key] = self._opener.submit(self._open_shard, shard)

    def _open_shard(self, shard: Shard) -> None:
        try:
            shard.open()
        except ShardClosed:
            log.info("%s was let go before it finished opening", shard.key)
        except Exception as exc:
            log.exception("opening %s failed; it is let go and tried again", shard.key)
            shard.state.state, shard.state.error = "failed", f"{type(exc).__name__}: {exc}"
            self._failed_at[shard.key] = time.monotonic()
            if self.shard(shard.key) is shard:  # not dropped (and taken again) meanwhile
                self._drop(shard.key, "it failed to open", release=True)

    def _ready(self, key: str) -> bool:
        shard = self.shard(key)
        return shard is not None and shard.ready

    def _holds(self, key: str) -> bool:
        lease = self._leases.get(key)
        return lease is not None and time.monotonic() < lease.valid_until

    def _hand_over(self, key: str) -> None:
        """Checkpoint the shard, let it go, release the lease (a planned move or a stop)."""
        with self._lock:
            shard = self._shards.pop(key, None)
            lease = self._leases.pop(key, None)
        if shard is not None:
            try:
                shard.stop()
            except Exception:
                log.exception("handing %s over did not checkpoint; the next owner refolds", key)
        if lease is not None:
            try:
                self.control.leases.release(lease)
            except Exception as exc:
                log.warning("releasing %s failed (%s); it expires instead", key, exc)

    def _drop(self, key: str, why: str, release: bool = False) -> None:
        """Stop a shard whose lease is lost (or that failed): nothing more is written."""
        with self._lock:
            shard = self._shards.pop(key, None)
            lease = self._leases.pop(key, None)
        if shard is not None:
            shard.abandon(why)
        if release and lease is not None:
            try:
                self.control.leases.release(lease)
            except Exception as exc:
                log.warning("releasing %s failed (%s); it expires instead", key, exc)

    @property
    def _checkpoints(self) -> Checkpoints:
        return self.control.checkpoints

    # -- what the router and the API ask ---------------------------------------------------

    def shard(self, key: str) -> Shard | None:
        with self._lock:
            return self._shards.get(key)

    def holder(self, key: str) -> Holder | None:
        return self._holders.get(key)

    def store_of(self, by: By) -> Store:
        return self.stores[by]

    @property
    def answers(self) -> Router:
        return self.router

    @property
    def local_answers(self) -> LocalAnswers:
        return self.local

    @property
    def max_body_bytes(self) -> int:
        return self.settings.max_body_bytes

    async def ingest(
        self, body: Body, content_type: str, idempotency_key: str | None = None
    ) -> Decoded:
        return await self.ingest_node.ingest(body, content_type, idempotency_key)

    async def ingest_with(
        self, decoder: Decoder, body: Body = b"", idempotency_key: str | None = None
    ) -> Decoded:
        return await self.ingest_node.ingest_with(decoder, body, idempotency_key)

    @property
    def label_mapping(self) -> LabelMapping:
        return self.ingest_node.label_mapping

    @property
    def refusals(self) -> Refusals:
        """The ingest path's refusals per limit (the app counts into them)."""
        return self.ingest_node.refusals

    def server_names(self) -> list[str]:
        self.servers.adopt(self.control.names.all("server"))
        return self.servers.names()

    def metric_names(self) -> list[str]:
        self.metrics.adopt(self.control.names.all("metric"))
        return self.metrics.names()

    def metric_kind(self, metric: str) -> str:
        return self.kinds.of(metric)

    def declare_kinds(self, kinds: dict[str, str]) -> int:
        """Store the kinds in the cluster's bucket before returning (``cluster/kinds.py``)."""
        return self.kinds.declare(kinds)

    def dead_letter_list(self) -> dict[str, Any]:
        out: dict[str, Any] = {"directory": str(Path(self.settings.data_dir) / "dead-letters")}
        letters: list[dict[str, object]] = []
        for copy, box in self.dead_letters.items():
            for path in box.paths():
                try:
                    letter = box.read(path)
                except (OSError, ValueError) as exc:
                    letters.append({"file": path.name, "copy": copy, "error": str(exc)})
                    continue
                letters.append(
                    {
                        "file": path.name,
                        "copy": copy,
                        "kind": letter.kind,
                        "rows": letter.table.num_rows,
                        "reason": letter.reason,
                        "written_at": letter.written_at,
                    }
                )
        out["letters"] = letters
        return out

    async def replay_dead_letters(self) -> dict[str, int]:
        """Each letter back to its own copy only: rows into that copy's table, points
        through that copy's stream (the other copy has them already)."""
        done = {"letters": 0, "rows": 0, "points": 0}
        for copy, box in self.dead_letters.items():
            for path in box.paths():
                letter = box.read(path)
                if letter.kind == "rows":
                    writer = StoreWriter(self.stores[copy], _no_registry(), interval=None)
                    done["rows"] += writer.replay(letter.table, f"replay-{path.stem}")
                else:
                    bus: Bus = self.bus_by_server if copy == "server" else self.copies.by_metric
                    batch = points_of(letter.table)
                    await bus.publish(batch, idempotency_key=f"replay-{path.stem}")
                    done["points"] += len(batch)
                box.remove(path)
                done["letters"] += 1
        return done

    def status(self) -> dict[str, Any]:
        with self._lock:
            shards = [s.status() for s in self._shards.values()]
        return {
            "role": "cluster",
            "node": self.name,
            "url": self.info.url,
            "uptime": self.clock() - self.started_at,
            "servers": len(self.servers.names()),
            "metrics": len(self.metrics.names()),
            "series": sum(s["series"] for s in shards),
            "limits": self.ingest_node.limits_status(),
            "hot": {"bytes": sum(s["ring_bytes"] for s in shards)},
            "kinds": {
                "declared": dict(sorted(self.kinds.declared.items())),
                "read_to": self.control.kinds.read_to,
            },
            "shards": shards,
            "cluster": self.cluster_status(),
        }

    def cluster_status(self) -> dict[str, Any]:
        """Nodes, who holds which partition of which copy since when, lease ages, lag."""
        now = self.clock()
        lag = self._lag
        partitions = []
        for key in self.keys:
            copy, p = copy_of(key)
            holder = self._holders.get(key)
            entry: dict[str, Any] = {"key": key, "copy": copy, "partition": p, "owner": None}
            if holder is not None:
                entry.update(
                    owner=holder.node,
                    url=holder.url,
                    since=holder.since,
                    lease_age=max(0.0, now - holder.renewed),
                )
            entry.update(lag[copy].get(p, {}))
            partitions.append(entry)
        return {
            "node": self.name,
            "lease_ttl": self.settings.lease_ttl,
            "nodes": [asdict(n) for n in self._nodes],
            "partitions": partitions,
            "unowned": [e["key"] for e in partitions if e["owner"] is None],
        }

    def oldest_accepted(self, now: float) -> float:
        return self.ingest_node.oldest_accepted(now)


class _PlaneKinds:
    """The control plane's ``GlobalKinds`` as ``Kinds`` sees it: ``Kinds`` is built with
    the node, the bucket is bound only when the control plane opens."""

    def __init__(self, control: ControlPlane) -> None:
        self.control = control

    def write(self, changed: Mapping[str, Kind]) -> None:
        self.control.kinds.write(changed)

    def changes(self) -> dict[str, Kind]:
        return self.control.kinds.changes()

    def sync(self) -> dict[str, Kind]:
        return self.control.kinds.sync()


def _lag(bus: NatsBus) -> dict[int, dict[str, Any]]:
    """Per partition, the stream's backlog (empty when the broker cannot say)."""
    try:
        stats = bus.stats()
    except Exception:
        return {}
    return {
        s.partition: {
            "backlog_messages": s.backlog_messages,
            "backlog_seconds": round(s.backlog_seconds, 3),
        }
        for s in stats
    }


def _no_registry() -> Any:
    from minutely.registry import Registry

    return Registry()


__all__ = ["METRIC_GROUP", "METRIC_STREAM", "METRIC_SUBJECTS", "ClusterNode", "SwappedBus"]
