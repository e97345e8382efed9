"""``NatsConsumer``: a member of the consumer group on JetStream: one durable pull consumer
per owned partition, pump tasks feeding ``poll``, ``commit`` by AckAck.

Stands on its own: built from a ``Broker`` (the connection), the ``Ledger`` it reports
deliveries and commits to, the ``Layout`` (streams and group) and its partitions, so any
owner (``NatsBus.consumer``, a second copy, a takeover) can make one. ``start`` takes the
partitions over on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from minutely.bus.base import Message
from minutely.bus.nats.broker import Broker
from minutely.bus.nats.layout import Layout
from minutely.bus.nats.ledger import Ledger
from minutely.bus.nats.wire import decode
from minutely.errors import Unavailable

log = logging.getLogger(__name__)

#: How long a pull request waits on the server for messages before it is renewed.
PULL_EXPIRES = 2.0
#: Messages asked for by one pull request.
PULL_BATCH = 64
#: Bytes one pull request of an idle partition asks for (a busy one asks for more).
IDLE_CREDIT = 64 << 10


class NatsConsumer:
    """A ``Consumer`` on JetStream: one durable pull consumer per partition of ``partitions``.

    Pump tasks on the broker's loop fill a buffer that ``poll`` hands out from; the buffer
    and the outstanding pull requests together stay under ``prefetch_bytes`` (keep it under
    the server's ``max_pending`` and above a message's size); one ``poll`` returns at most
    ``max_poll_bytes`` (at least one message). ``on_close`` is called once with this
    consumer when it closes (its owner's bookkeeping).

    Built without I/O; ``start`` takes the partitions over (from whichever member of the
    group holds them) and starts pulling.
    """

    def __init__(
        self,
        broker: Broker,
        ledger: Ledger,
        layout: Layout,
        partitions: Sequence[int],
        *,
        prefetch_bytes: int = 32 << 20,
        max_poll_bytes: int = 64 << 20,
        on_close: Callable[[NatsConsumer], None] | None = None,
    ) -> None:
        self._broker = broker
        self._ledger = ledger
        self._layout = layout
        self._partitions = tuple(sorted(partitions))
        self._prefetch_bytes = prefetch_bytes
        self._max_poll_bytes = max_poll_bytes
        self._on_close = on_close
        self._cond = threading.Condition()
        self._buffer: dict[int, deque[tuple[int, Msg]]] = {p: deque() for p in self._partitions}
        self._buffered = 0  # messages in _buffer
        self._buffered_bytes = 0
        # buffered or delivered
        self._seen: dict[int, set[int]] = {p: set() for p in self._partitions}
        self._delivered: dict[int, dict[int, tuple[Message, Msg]]] = {
            p: {} for p in self._partitions
        }
        self._cursor = dict.fromkeys(self._partitions, -1)  # highest offset handed out
        self._next_start = 0
        self._started = False
        self._closed = False
        self._detached = False  # the owner stopped it without giving the partitions back
        self._lost: str | None = None
        self._subs: list[Subscription] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._requested = 0  # prefetch budget held by outstanding pull requests
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()  # pumps wanting some
        self._max_message = 0  # the most a message can take: the server's max_payload, padded
        #: this consumer's durable name on the broker: unique in the group
        self._name = layout.member_name()

    @property
    def partitions(self) -> tuple[int, ...]:
        return self._partitions

    def poll(self, timeout: float) -> list[Message]:
        with self._cond:
            if self._closed:
                msg = "poll on a closed consumer"
                raise RuntimeError(msg)
            if not (self._detached or self._broker.closed):
                self._cond.wait_for(
                    lambda: (
                        self._closed or self._detached or self._lost is not None or self._buffered
                    ),
                    timeout=max(0.0, timeout),
                )
            if self._closed:
                return []
            if self._lost is not None:  # what is buffered is the new owner's now
                raise RuntimeError(self._lost)
            start = self._next_start
            self._next_start = (start + 1) % len(self._partitions)
            order = self._partitions[start:] + self._partitions[:start]
            taken: list[tuple[int, int, Msg]] = []
            budget = self._max_poll_bytes
            for p in order:
                queue = self._buffer[p]
                while queue and not (taken and len(queue[0][1].data) > budget):
                    seq, raw = queue.popleft()
                    taken.append((p, seq, raw))
                    budget -= len(raw.data)
                    self._buffered -= 1
                    self._buffered_bytes -= len(raw.data)
                if queue:
                    break
        if taken:
            self._broker.call_soon(self._grant)
        out: list[Message] = []
        for p, seq, raw in taken:
            message = Message(p, seq - 1, decode(raw.data))
            self._ledger.learn(p, seq, message.batch.nbytes)
            out.append(message)
        with self._cond:
            for message, (_, _, raw) in zip(out, taken, strict=True):
                self._delivered[message.partition][message.offset] = (message, raw)
                self._cursor[message.partition] = max(
                    self._cursor[message.partition], message.offset
                )
        return out

    def commit(self, messages: Sequence[Message]) -> None:
        """Ack these delivered messages and wait until JetStream has removed them.

        Raises ``Unavailable`` if an ack is not confirmed (connection lost, partition taken
        over): those messages stay uncommitted and go to the partition's next consumer.
        """
        with self._cond:
            if self._closed:
                msg = "commit on a closed consumer: its messages go to the next consumer"
                raise RuntimeError(msg)
            todo: dict[tuple[int, int], Msg] = {}
            for message in messages:
                p = message.partition
                delivered = self._delivered.get(p)
                if delivered is None:
                    msg = f"partition {p} is not owned by this consumer"
                    raise ValueError(msg)
                entry = delivered.get(message.offset)
                if entry is None:
                    if message.offset <= self._cursor[p]:
                        continue  # committed already
                    msg = f"message {p}/{message.offset} was not delivered to this consumer"
                    raise ValueError(msg)
                if entry[0] is not message:
                    msg = f"message {p}/{message.offset} does not come from this bus"
                    raise ValueError(msg)
                todo[(p, message.offset)] = entry[1]
        if not todo:
            return
        keys = list(todo)
        broker = self._broker
        results = broker.call(self._ack_all([todo[k] for k in keys]), broker.timeout * 2)
        done = [k for k, ok in zip(keys, results, strict=True) if ok is None]
        with self._cond:
            for p, offset in done:
                del self._delivered[p][offset]
                self._seen[p].discard(offset + 1)
        self._ledger.forget([(p, offset + 1) for p, offset in done])
        failed = [r for r in results if r is not None]
        if failed:
            msg = (
                f"{len(failed)} of {len(keys)} commits were not confirmed ({failed[0]!r});"
                " those messages go to the partition's next consumer"
            )
            raise Unavailable(msg)

    def close(self) -> None:
        """Give the partitions back: delete their durable consumers, so the next consumer
        gets every uncommitted message at once, in order. Safe from any thread, idempotent.
        A detached consumer (or one whose broker is closed) leaves them on the broker."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._on_close is not None:
            self._on_close(self)
        if self._detached or self._broker.closed or not self._started:
            return
        try:
            self._broker.call(self._stop(), self._broker.timeout * 2)
        except Unavailable as e:  # the next consumer() takes the partitions over anyway
            log.warning("closing a consumer: %s", e)

    # -- the owner's steps ------------------------------------------------------------------

    def start(self) -> None:
        """Take the partitions over on the broker (deleting the group's durable consumer of
        each, whoever made it, and making this one's) and start pulling. Blocking.

        Raises ``Unavailable`` when the broker does not answer, or JetStream's error; the
        consumer is closed then, and what it made on the broker is being removed.
        """
        with self._cond:
            if self._started or self._closed:
                msg = "a NatsConsumer starts once, before it is closed"
                raise RuntimeError(msg)
            self._started = True
        try:
            self._broker.call(self._start(), self._broker.timeout * 4)
        except BaseException:
            with self._cond:
                self._closed = True
            if self._on_close is not None:
                self._on_close(self)
            if not self._broker.closed:
                self._broker.submit(self._stop())
            raise

    def detach(self) -> None:
        """Stop pulling without giving the partitions back (the owner is going away): their
        durable consumers stay on the broker, and the group's next member takes them over
        with every uncommitted message, as after a crash. A waiting ``poll`` wakes; ``poll``
        then hands out what is buffered without waiting. Blocking; idempotent."""
        with self._cond:
            if self._detached:
                return
            self._detached = True
            self._cond.notify_all()
        if not self._started or self._broker.closed:
            return
        try:
            self._broker.call(self._stop_pumps(), self._broker.timeout * 2)
        except Unavailable as e:  # closing the broker cancels them anyway
            log.warning("detaching a consumer: %s", e)

    # -- internals, on the broker's loop ----------------------------------------------------

    async def _start(self) -> None:
        self._max_message = self._broker.max_message
        await asyncio.gather(*(self._take(p) for p in self._partitions))

    async def _take(self, partition: int) -> None:
        """Delete the group's consumer of ``partition`` (whoever made it), create ours."""
        js, nc = self._broker.jetstream, self._broker.client
        stream = self._layout.stream_name(partition)
        for info in await js.consumers_info(stream):
            name = info.name or ""
            if self._layout.is_member(name):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_consumer(stream, name)
        await js.add_consumer(stream, self._layout.consumer_config(partition, self._name))
        inbox = nc.new_inbox()
        sub = await nc.subscribe(
            inbox, pending_msgs_limit=-1, pending_bytes_limit=4 * self._prefetch_bytes + (64 << 20)
        )
        self._subs.append(sub)
        task = asyncio.get_running_loop().create_task(self._pump(partition, sub, inbox))
        self._pumps.append(task)

    # The prefetch budget (``prefetch_bytes``) covers what is buffered plus what outstanding
    # pull requests may still bring, so the server never queues more than that for this
    # connection (past its ``max_pending``, 64 MiB by default, it cuts the connection).
    # Pumps take credit in FIFO order; an idle partition's long poll holds only IDLE_CREDIT.

    async def _credit(self, size: int) -> None:
        """Wait until ``size`` bytes of the budget are free, and take them."""
        if self._waiting or not self._try_take(size):
            granted = asyncio.get_running_loop().create_future()
            self._waiting.append((size, granted))
            await granted

    def _try_take(self, size: int) -> bool:
        with self._cond:
            if self._prefetch_bytes - self._buffered_bytes - self._requested < size:
                return False
            self._requested += size
            return True

    def _grant(self) -> None:
        """Hand freed budget to waiting pumps, first come first served (on the loop)."""
        while self._waiting:
            size, granted = self._waiting[0]
            if granted.cancelled():
                self._waiting.popleft()
                continue
            if not self._try_take(size):
                return
            self._waiting.popleft()
            granted.set_result(None)

    def _settle(self, credit: int) -> None:
        """Give back what a finished pull request did not use."""
        with self._cond:
            self._requested -= credit
        self._grant()

    async def _pump(self, partition: int, sub: Subscription, inbox: str) -> None:
        broker = self._broker
        nc = broker.client
        stream = self._layout.stream_name(partition)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{self._name}"
        busy = self._prefetch_bytes // (2 * len(self._partitions))
        size = IDLE_CREDIT
        while True:
            await self._credit(size)
            # An idle partition waits on the server with a small long poll; a busy one takes
            # what is there (no_wait: the request ends at once, so it never sits on credit).
            request: dict[str, Any] = {"batch": PULL_BATCH, "max_bytes": size}
            if size == IDLE_CREDIT:
                request["expires"] = int(PULL_EXPIRES * 1e9)
            else:
                request["no_wait"] = True
            try:
                await nc.publish(next_subject, json.dumps(request).encode(), reply=inbox)
            except nats.errors.Error:
                self._settle(size)
                await asyncio.sleep(broker.reconnect_max_wait)
                continue
            left = size
            try:
                left, outcome = await self._receive(partition, sub, stream, size)
            finally:
                self._settle(left)
            if outcome == "lost":
                self._lose(partition)
                return
            if outcome == "got":
                size = max(size, busy)
            elif outcome == "too small":  # the next message is bigger than we asked for
                size = min(4 * size, self._max_message)
            else:  # nothing left: back to a small long poll
                size = IDLE_CREDIT

    async def _receive(
        self, partition: int, sub: Subscription, stream: str, credit: int
    ) -> tuple[int, str]:
        """Take one pull request's messages: the credit it left, and how it went:
        ``got`` messages, ``idle``, ``too small`` or ``lost`` (taken over)."""
        broker = self._broker
        left = PULL_BATCH
        arrived = 0
        while left > 0:
            try:
                msg = await sub.next_msg(timeout=PULL_EXPIRES + 1.0)
            except nats.errors.TimeoutError:
                break  # the request got lost (reconnect): ask again
            except nats.errors.Error:
                await asyncio.sleep(broker.reconnect_max_wait)
                break
            status = msg.headers.get("Status") if msg.headers else None
            if status is None:
                left -= 1
                arrived += 1
                used = min(credit, len(msg.data))
                credit -= used
                self._arrive(partition, msg, used)
                continue
            if status == "100":
                continue  # idle heartbeat
            # (the client keys Description by an enum member: read the values)
            description = " ".join(str(v) for v in (msg.headers or {}).values())
            if status == "409" and "Deleted" in description:
                return credit, "lost"
            if status == "409" and "MaxBytes" in description and not arrived:
                return credit, "too small"
            if status == "503":  # no responders: our consumer is gone, or JetStream is down
                try:
                    await broker.jetstream.consumer_info(stream, self._name)
                except nats.js.errors.NotFoundError:
                    return credit, "lost"
                except (TimeoutError, nats.errors.Error):
                    await asyncio.sleep(broker.reconnect_max_wait)
            break  # 404 no messages, 408 expired, 409 limits: this request is over
        return credit, "got" if arrived else "idle"

    def _arrive(self, partition: int, msg: Msg, credit: int) -> None:
        """Buffer a delivered message; ``credit`` of the pull request's budget moves with it."""
        seq = int(msg.metadata.sequence.stream)
        with self._cond:
            self._requested -= credit
            if seq in self._seen[partition]:
                return  # redelivered after ack_wait: this consumer has it already
            self._seen[partition].add(seq)
            self._buffer[partition].append((seq, msg))
            self._buffered += 1
            self._buffered_bytes += len(msg.data)
            self._cond.notify_all()

    def _lose(self, partition: int) -> None:
        with self._cond:
            self._lost = (
                f"partition {partition} was taken over by another consumer of group"
                f" {self._layout.group!r}: close this one"
            )
            self._cond.notify_all()

    async def _ack_all(self, msgs: list[Msg]) -> list[BaseException | None]:
        async def ack(m: Msg) -> None:
            await m.ack_sync(timeout=self._broker.timeout)

        results = await asyncio.gather(*(ack(m) for m in msgs), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    async def _stop_pumps(self) -> None:
        pumps, self._pumps = self._pumps, []
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _stop(self) -> None:
        await self._stop_pumps()
        js = self._broker.jetstream

        async def delete(p: int) -> None:
            try:
                await js.delete_consumer(self._layout.stream_name(p), self._name)
            except nats.js.errors.NotFoundError:
                pass
            except (TimeoutError, nats.errors.Error) as e:
                log.warning("could not delete the consumer of partition %d: %r", p, e)

        await asyncio.gather(*(delete(p) for p in self._partitions))
