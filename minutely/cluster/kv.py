"""How the control plane talks to JetStream: blocking calls onto the broker's loop, bucket
setup, and reading a whole bucket in batches.

Owns three things the parts of the control plane share:

- ``Remote``: runs a coroutine on the ``Broker``'s loop from any thread, and turns every
  way NATS can fail (timeout, lost connection, no responders, a JetStream API error) into
  ``minutely.errors.Unavailable`` naming what was being done. A compare-and-set that loses is
  *not* such a failure: the callers catch it inside their coroutine (``wrong_last``) before
  it gets here.
- ``ensure_kv`` and ``ensure_objects``: bind a bucket, or make it if it is missing, and check
  that one already there has the TTL and replicas asked for.
- ``scan``: every entry of a bucket (or of one key prefix) through one ephemeral pull
  consumer fetched in large batches, rather than nats-py's ``watch``, which hands entries
  over one by one through a bounded queue. Optionally only the entries after a stream
  sequence, so a reader that keeps what it has read fetches only what is new.

The KV layout is JetStream's documented one: bucket ``b`` is stream ``KV_b`` on subjects
``$KV.b.<key>``, and a key's revision is its message's stream sequence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from minutely.bus.nats import Broker
from minutely.errors import ConfigError, Unavailable

T = TypeVar("T")

#: JetStream's error codes for "the subject's last sequence is not the one expected"
WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
#: the header a KV delete or purge carries
KV_OPERATION = "KV-Operation"
#: how many entries one pull request asks for while scanning
SCAN_BATCH = 4096
#: how long a scan waits for entries the server counted but has not sent
FETCH_WAIT = 0.5


def wrong_last(error: BaseException) -> bool:
    """True if ``error`` is a lost compare-and-set (the key's revision was not ``last``)."""
    if isinstance(error, nats.js.errors.KeyWrongLastSequenceError):
        return True
    return isinstance(error, nats.js.errors.APIError) and error.err_code in WRONG_LAST_SEQUENCE


class Remote:
    """Blocking calls onto ``broker``'s loop, bounded by ``timeout`` seconds each."""

    def __init__(self, broker: Broker, timeout: float) -> None:
        self.broker = broker
        self.timeout = timeout

    def call(self, coro: Coroutine[Any, Any, T], what: str, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait; ``Unavailable`` naming ``what`` if NATS fails."""
        if self.broker.closed:
            coro.close()
            msg = f"cannot {what}: the control plane's connection to NATS is closed"
            raise Unavailable(msg)
        try:
            return self.broker.call(coro, self.timeout if timeout is None else timeout)
        except Unavailable as e:
            msg = f"cannot {what}: {e}"
            raise Unavailable(msg) from e
        except (TimeoutError, nats.errors.Error, OSError) as e:
            msg = f"cannot {what}: NATS at {self.broker.url} failed: {e!r}"
            raise Unavailable(msg) from e


@dataclass(frozen=True, slots=True)
class Item:
    """One key's entry as a scan read it."""

    key: str
    value: bytes
    revision: int
    deleted: bool  # a delete or purge marker: the key has no value


@dataclass(frozen=True, slots=True)
class Scan:
    """What ``scan`` read, and the stream's last sequence it covered."""

    items: list[Item]
    last: int
    complete: bool = True


async def ensure_kv(
    js: JetStreamContext, bucket: str, *, replicas: int, ttl: float | None, history: int = 1
) -> KeyValue:
    """Bucket ``bucket``, made if missing; ``ConfigError`` if it has another TTL or replicas."""
    try:
        kv = await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        # Two nodes may make it at once: the server takes an identical second config.
        return await js.create_key_value(bucket=bucket, history=history, ttl=ttl, replicas=replicas)
    status = await kv.status()
    config = status.stream_info.config
    have_ttl = config.max_age or None
    if abs((have_ttl or 0.0) - (ttl or 0.0)) > 1e-3 or config.num_replicas != replicas:
        msg = (
            f"KV bucket {bucket} has ttl {have_ttl} s and {config.num_replicas} replicas,"
            f" not {ttl} s and {replicas}: every node must use the same settings"
            " (or delete the bucket while the cluster is stopped)"
        )
        raise ConfigError(msg)
    return kv


async def ensure_objects(js: JetStreamContext, bucket: str, *, replicas: int) -> ObjectStore:
    """Object store ``bucket``, made if missing."""
    try:
        return await js.object_store(bucket)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_object_store(bucket=bucket, replicas=replicas)


async def scan(
    js: JetStreamContext,
    bucket: str,
    keys: str = ">",
    *,
    after: int | None = None,
    limit: int | None = None,
    timeout: float,
) -> Scan:
    """The entries of ``bucket`` whose key matches ``keys`` (a subject pattern).

    With ``after`` None, each key's latest entry. With a sequence ``after``, every entry
    written after it, oldest first (the caller keeps the newest per key), and at most
    ``limit`` of them: ``Scan.complete`` says whether that was all, and ``Scan.last`` is
    where to go on from.
    """
    stream = f"KV_{bucket}"
    prefix = f"$KV.{bucket}."
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=max(10.0, 4 * timeout),
    )
    if after is not None:
        config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = after + 1
    else:
        config.deliver_policy = api.DeliverPolicy.LAST_PER_SUBJECT
    sub = await js.pull_subscribe(prefix + keys, stream=stream, config=config)
    consumer = config.name or ""  # pull_subscribe names the ephemeral consumer in ``config``
    try:
        info = await sub.consumer_info()
        done = not info.num_pending
        last = after or 0
        items: list[Item] = []
        room = limit or (1 << 62)
        while not done and len(items) < room:
            try:
                batch = await sub.fetch(min(SCAN_BATCH, room - len(items)), timeout=FETCH_WAIT)
            except TimeoutError:  # nats-py raises the builtin one and its own subclass
                # Entries can expire (a bucket TTL) between the count and the fetch.
                done = not (await sub.consumer_info()).num_pending
                continue
            for m in batch:
                meta = m.metadata
                op = m.headers.get(KV_OPERATION) if m.headers else None
                items.append(
                    Item(
                        m.subject[len(prefix) :],
                        bytes(m.data),
                        meta.sequence.stream,
                        op is not None,
                    )
                )
                last = max(last, meta.sequence.stream)
                done = meta.num_pending == 0
        return Scan(items, last, done)
    finally:
        await sub.unsubscribe()
        # If this fails the server drops the consumer after inactive_threshold anyway.
        with contextlib.suppress(nats.errors.Error):
            await js.delete_consumer(stream, consumer)
