"""Who is alive (``Membership``) and who holds which partition key (``Leases``), in JetStream KV.

Both buckets have a bucket-wide TTL, so an entry nobody rewrites disappears after ``ttl``
seconds. On a 2.9 server that expiry is silent (no marker, no watch event): readers find out
by reading the bucket again, which ``nodes()`` and ``holders()`` do on every call.

A lease is a key ``s.<p>`` or ``m.<p>`` in the leases bucket whose value names the holder.
- ``acquire`` is KV ``create``: it succeeds for exactly one node while the key is absent.
- ``renew`` is KV ``update(last=revision)``: it succeeds only if nobody wrote the key since
  this holder's own last write and the key has not expired. Any failure is ``LeaseLost``: the
  holder must stop at once, since another node may already hold the key.
- ``release`` is a compare-and-set delete, so a holder that already lost the key cannot
  delete its successor's lease.

Ownership is decided by the *result* of the compare-and-set, never by a read: reads may be
answered by a follower and lag behind. A lease alone does not stop a paused holder that wakes
up and acts before it tries to renew; the checkpoint pointer's compare-and-set
(``checkpoints.py``) is the fence for what it writes.

Values are JSON: a node ``{"name", "url", "pid", "started"}``; a lease
``{"node", "url", "since", "renewed"}`` with wall-clock seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import nats.js.errors
from nats.js.kv import KeyValue

from minutely.cluster.keys import decode_name, encode_name
from minutely.cluster.kv import Remote, scan, wrong_last
from minutely.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node of the cluster: its name and the URL other nodes reach its API at."""

    name: str
    url: str
    pid: int = 0
    started: float = 0.0  # wall-clock seconds


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this node holds: ``revision`` is the key's revision after its last write.

    ``valid_until`` is a ``time.monotonic()`` deadline: the lease cannot have expired on the
    server before it, because the server's TTL counts from a write sent after the local clock
    was read. A holder that cannot renew by then must act as if it lost the key.
    """

    key: str
    node: str
    revision: int
    since: float  # wall-clock seconds of the acquire
    url: str = ""
    valid_until: float = 0.0


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds ``key`` now, as the bucket says; ``renewed`` is the last renew's wall time."""

    key: str
    node: str
    url: str
    since: float
    revision: int
    renewed: float


class LeaseLost(Exception):
    """The lease on ``key`` is gone: it expired, or another node holds it now."""

    def __init__(self, key: str, node: str, why: str) -> None:
        super().__init__(f"node {node} lost the lease on {key}: {why}")
        self.key = key
        self.node = node
        self.why = why


class Membership:
    """The live nodes: each announces itself every ``ttl / 3`` seconds, and its entry expires
    ``ttl`` seconds after its last announcement."""

    def __init__(self, remote: Remote, kv: KeyValue, bucket: str) -> None:
        self._remote = remote
        self._kv = kv
        self._bucket = bucket

    def announce(self, node: NodeInfo) -> None:
        """Say that ``node`` is alive (a put); call it every ``ttl / 3`` seconds."""
        value = json.dumps(asdict(node)).encode()
        self._remote.call(self._kv.put(encode_name(node.name), value), f"announce {node.name}")

    def nodes(self) -> list[NodeInfo]:
        """The live nodes, sorted by name."""
        timeout = self._remote.timeout
        read = self._remote.call(
            scan(self._remote.broker.jetstream, self._bucket, timeout=timeout), "list the nodes"
        )
        found = []
        for item in read.items:
            if item.deleted:
                continue
            try:
                found.append(NodeInfo(**json.loads(item.value)))
            except (ValueError, TypeError):
                log.warning("node entry %s is not a node: %r", decode_name(item.key), item.value)
        return sorted(found, key=lambda n: n.name)

    def withdraw(self, name: str) -> None:
        """Remove ``name`` at once (a graceful stop), rather than after the TTL."""
        self._remote.call(self._kv.delete(encode_name(name)), f"withdraw {name}")


class Leases:
    """Leases on partition keys in the bucket ``bucket`` (TTL ``ttl`` seconds).

    ``clock`` gives wall-clock seconds for ``since`` and ``renewed``; ``monotonic`` the
    clock of ``Lease.valid_until``.
    """

    def __init__(
        self,
        remote: Remote,
        kv: KeyValue,
        bucket: str,
        ttl: float,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._remote = remote
        self._kv = kv
        self._bucket = bucket
        self.ttl = ttl
        self._clock = clock
        self._monotonic = monotonic

    def acquire(self, key: str, node: NodeInfo) -> Lease | None:
        """The lease on ``key`` for ``node`` if nobody holds it, else ``None``."""
        since = self._clock()
        value = _lease_value(node.name, node.url, since, since)
        started = self._monotonic()

        async def create() -> int | None:
            try:
                return await self._kv.create(key, value)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None
            except nats.js.errors.KeyNotFoundError:
                return None  # it expired between nats-py's create and its look at the key

        revision = self._remote.call(create(), f"acquire the lease on {key}")
        if revision is None:
            return None
        return Lease(key, node.name, revision, since, node.url, started + self.ttl)

    def renew(self, lease: Lease) -> Lease:
        """``lease`` renewed; ``LeaseLost`` if it expired or another node took the key."""
        value = _lease_value(lease.node, lease.url, lease.since, self._clock())
        started = self._monotonic()

        async def update() -> int | None:
            try:
                return await self._kv.update(lease.key, value, last=lease.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None

        revision = self._remote.call(update(), f"renew the lease on {lease.key}")
        if revision is None:
            why = f"revision {lease.revision} is no longer the key's (expired or taken over)"
            raise LeaseLost(lease.key, lease.node, why)
        return Lease(lease.key, lease.node, revision, lease.since, lease.url, started + self.ttl)

    def renew_all(self, leases: list[Lease]) -> list[Lease | Exception]:
        """Renew every lease in one round trip (a node holds dozens, and a renewal behind
        the others must not come too late): per lease, the renewed one, ``LeaseLost``, or
        ``Unavailable`` when its outcome is unknown."""
        if not leases:
            return []
        now = self._clock()
        started = self._monotonic()

        async def update(lease: Lease) -> int | None:
            value = _lease_value(lease.node, lease.url, lease.since, now)
            try:
                return await self._kv.update(lease.key, value, last=lease.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None

        async def every() -> list[int | BaseException | None]:
            return await asyncio.gather(*(update(x) for x in leases), return_exceptions=True)

        try:
            got = self._remote.call(every(), f"renew {len(leases)} leases")
        except Unavailable as e:
            return [e for _ in leases]
        out: list[Lease | Exception] = []
        for lease, revision in zip(leases, got, strict=True):
            if isinstance(revision, BaseException):
                msg = f"cannot renew the lease on {lease.key}: {revision!r}"
                out.append(Unavailable(msg))
            elif revision is None:
                why = f"revision {lease.revision} is no longer the key's (expired or taken over)"
                out.append(LeaseLost(lease.key, lease.node, why))
            else:
                out.append(
                    Lease(
                        lease.key, lease.node, revision, lease.since, lease.url, started + self.ttl
                    )
                )
        return out

    def release(self, lease: Lease) -> None:
        """Give ``lease`` up so another node can take the key at once. A lease already lost
        is left alone (and logged): its key belongs to someone else now."""

        async def delete() -> bool:
            try:
                await self._kv.delete(lease.key, last=lease.revision)
            except nats.js.errors.APIError as e:
                if wrong_last(e):
                    return False
                raise
            return True

        if not self._remote.call(delete(), f"release the lease on {lease.key}"):
            log.info("lease on %s at revision %d was already lost", lease.key, lease.revision)

    def holders(self) -> dict[str, Holder]:
        """Every key held now, by key."""
        timeout = self._remote.timeout
        read = self._remote.call(
            scan(self._remote.broker.jetstream, self._bucket, timeout=timeout), "list the leases"
        )
        held: dict[str, Holder] = {}
        for item in read.items:
            if item.deleted:
                continue
            try:
                v = json.loads(item.value)
                held[item.key] = Holder(
                    item.key, v["node"], v["url"], v["since"], item.revision, v["renewed"]
                )
            except (ValueError, KeyError, TypeError):
                log.warning("lease entry %s is not a lease: %r", item.key, item.value)
        return dict(sorted(held.items()))


def _lease_value(node: str, url: str, since: float, renewed: float) -> bytes:
    return json.dumps({"node": node, "url": url, "since": since, "renewed": renewed}).encode()
