"""``ControlPlane``: the cluster's shared state on NATS JetStream, behind one connection.

Owns the connection (its own ``Broker``, so control requests never queue behind bus
traffic), the buckets, and the five parts built on them: ``membership``, ``leases``,
``names``, ``kinds`` and ``checkpoints``. Built from a ``ControlConfig`` without I/O; ``open()``
connects and binds or makes the buckets (see ``minutely.cluster`` for their layout).

Every public method of the parts blocks the calling thread and runs its requests on the
broker's loop, so any thread may call them. NATS failing, or not answering within
``timeout``, is ``minutely.errors.Unavailable``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from minutely.bus.nats import Broker
from minutely.cluster.checkpoints import Checkpoints
from minutely.cluster.kinds import GlobalKinds
from minutely.cluster.kv import Remote, ensure_kv, ensure_objects
from minutely.cluster.leases import Leases, Membership
from minutely.cluster.names import GlobalNames
from minutely.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

_BUCKET_PREFIX = re.compile(r"^[a-zA-Z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """Where the control plane lives and how it behaves.

    ``url`` is one NATS URL or several, comma-separated; ``replicas`` the copies of every
    bucket (3 on a 3-server cluster); ``lease_ttl`` the seconds a lease or a node's
    announcement lasts without renewal; ``prefix`` starts every bucket name, so tests and
    clusters can share a server; ``timeout`` bounds each request, in seconds.
    """

    url: str
    replicas: int = 1
    lease_ttl: float = 10.0
    prefix: str = "minutely"
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            msg = f"replicas must be >= 1, got {self.replicas}"
            raise ConfigError(msg)
        if self.lease_ttl <= 0 or self.timeout <= 0:
            msg = f"lease_ttl and timeout must be > 0, got {self.lease_ttl} and {self.timeout}"
            raise ConfigError(msg)
        if not _BUCKET_PREFIX.match(self.prefix):
            msg = f"prefix {self.prefix!r} may hold only letters, digits, '-' and '_'"
            raise ConfigError(msg)

    @property
    def nodes_bucket(self) -> str:
        return f"{self.prefix}_nodes"

    @property
    def leases_bucket(self) -> str:
        return f"{self.prefix}_leases"

    @property
    def names_bucket(self) -> str:
        return f"{self.prefix}_names"

    @property
    def kinds_bucket(self) -> str:
        return f"{self.prefix}_kinds"

    @property
    def checkpoints_bucket(self) -> str:
        """The KV bucket of checkpoint pointers, and the object store of their blobs."""
        return f"{self.prefix}_checkpoints"


class ControlPlane:
    """The cluster's leases, membership, global names and checkpoints (see the module)."""

    def __init__(self, config: ControlConfig) -> None:
        self.config = config
        self._broker: Broker | None = None
        self._membership: Membership | None = None
        self._leases: Leases | None = None
        self._names: GlobalNames | None = None
        self._kinds: GlobalKinds | None = None
        self._checkpoints: Checkpoints | None = None

    def open(self) -> ControlPlane:
        """Connect and bind or make the buckets; ``Unavailable`` if no server answers,
        ``ConfigError`` if a bucket exists with another TTL or replica count. Once only."""
        if self._broker is not None:
            msg = "a ControlPlane opens once"
            raise RuntimeError(msg)
        c = self.config
        broker = self._broker = Broker(c.url, timeout=c.timeout, thread_name="minutely-control")
        try:
            broker.open()
            remote = Remote(broker, c.timeout)

            async def buckets() -> None:
                js = broker.jetstream
                nodes = await ensure_kv(js, c.nodes_bucket, replicas=c.replicas, ttl=c.lease_ttl)
                leases = await ensure_kv(js, c.leases_bucket, replicas=c.replicas, ttl=c.lease_ttl)
                names = await ensure_kv(js, c.names_bucket, replicas=c.replicas, ttl=None)
                kinds = await ensure_kv(js, c.kinds_bucket, replicas=c.replicas, ttl=None)
                pointers = await ensure_kv(js, c.checkpoints_bucket, replicas=c.replicas, ttl=None)
                blobs = await ensure_objects(js, c.checkpoints_bucket, replicas=c.replicas)
                self._membership = Membership(remote, nodes, c.nodes_bucket)
                self._leases = Leases(remote, leases, c.leases_bucket, c.lease_ttl)
                self._names = GlobalNames(remote, names, c.names_bucket)
                self._kinds = GlobalKinds(remote, kinds, c.kinds_bucket)
                self._checkpoints = Checkpoints(remote, pointers, blobs, broker.max_payload)

            remote.call(buckets(), "set up the control plane's buckets")
        except BaseException:
            broker.close()
            raise
        return self

    def close(self) -> None:
        """Disconnect; idempotent. The parts raise ``Unavailable`` afterwards."""
        if self._broker is None:
            return
        try:
            self._broker.close(self.config.timeout)
        except Exception:
            # nats-py can fail to flush on a connection that died while reconnecting; the
            # broker has stopped its loop by then, so there is nothing left to close.
            log.warning("closing the control plane's connection failed", exc_info=True)

    def __enter__(self) -> ControlPlane:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def broker(self) -> Broker:
        """The connection, for tools and tests; ``RuntimeError`` before ``open``."""
        return _opened(self._broker)

    @property
    def membership(self) -> Membership:
        return _opened(self._membership)

    @property
    def leases(self) -> Leases:
        return _opened(self._leases)

    @property
    def names(self) -> GlobalNames:
        return _opened(self._names)

    @property
    def kinds(self) -> GlobalKinds:
        return _opened(self._kinds)

    @property
    def checkpoints(self) -> Checkpoints:
        return _opened(self._checkpoints)


def _opened(part: T | None) -> T:
    if part is None:
        msg = "the ControlPlane is not open: call open() first"
        raise RuntimeError(msg)
    return part
