"""``Broker``: the one connection to NATS a bus and its consumers share.

Owns the client's event loop thread (``loop.py``), the ``Client`` (``client.py``), its
JetStream context, reconnecting, and the stream-level requests (make or check a stream, read
its state). Built without I/O; ``open`` connects, ``close`` disconnects and stops the loop.
``NatsBus`` and ``NatsConsumer`` run their coroutines on its loop (``call``, ``submit``,
``call_soon``) and use its ``client`` and ``jetstream`` there.

Reconnects forever with capped exponential backoff (``reconnect_wait`` doubling up to
``reconnect_max_wait``), round robin over the servers of ``url``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Server as NatsServerInfo
from nats.js import JetStreamContext, api

from minutely.bus.nats.client import Client
from minutely.bus.nats.loop import LoopThread
from minutely.errors import ConfigError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: what a pull request needs beyond the server's max_payload to carry one message
PULL_PADDING = 64 << 10


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream's state as the broker reported it."""

    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    first_ts: float  # unix seconds of the oldest message; 0.0 if there is none
    created: str = ""  # when the stream was made: its sequence numbers count from then


#: tries at making or reading a stream at open before the broker is deemed unavailable
ENSURE_ATTEMPTS = 8


class Broker:
    """The connection to the NATS servers at ``url`` (comma-separated for a cluster).

    ``timeout`` (seconds) bounds the first connect and every JetStream request;
    ``thread_name`` names the loop's thread.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        reconnect_wait: float = 0.1,
        reconnect_max_wait: float = 2.0,
        thread_name: str = "minutely-nats",
    ) -> None:
        if timeout <= 0:
            msg = f"timeout must be > 0, got {timeout}"
            raise ValueError(msg)
        self.url = url
        self.timeout = timeout
        self.reconnect_wait = reconnect_wait
        #: also how long a consumer's pump pauses after a failed request
        self.reconnect_max_wait = reconnect_max_wait
        self._io = LoopThread(thread_name)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._reconnect_attempt = 0
        self._closed = False

    # -- state ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.is_connected)

    @property
    def client(self) -> Client:
        """The connection (use it on the loop). Raises ``RuntimeError`` before ``open``."""
        if self._client is None:
            msg = f"the connection to NATS at {self.url} is not open"
            raise RuntimeError(msg)
        return self._client

    @property
    def jetstream(self) -> JetStreamContext:
        """The connection's JetStream context (use it on the loop)."""
        if self._js is None:
            msg = f"the connection to NATS at {self.url} is not open"
            raise RuntimeError(msg)
        return self._js

    @property
    def max_payload(self) -> int:
        """The largest message the server takes, in bytes."""
        return int(self.client.max_payload)

    @property
    def max_message(self) -> int:
        """The most one message can take in a pull request: ``max_payload``, padded."""
        return self.max_payload + PULL_PADDING

    # -- open and close -----------------------------------------------------------------------

    def open(self) -> None:
        """Start the loop and connect; ``Unavailable`` if no server answers within
        ``timeout``. Once only."""
        if self._closed or self._io.running:
            msg = "a Broker opens once"
            raise RuntimeError(msg)
        self._io.start()
        try:
            self._client = self._io.call(self._connect(), self.timeout + 5.0)
            self._js = self._client.jetstream(timeout=self.timeout)
        except BaseException:
            self.close(self.timeout)
            raise

    def close(self, timeout: float | None = None) -> None:
        """Close the connection, cancel what still runs on the loop, stop the loop.
        Blocking; idempotent; nothing to do if never opened."""
        if self._closed:
            return
        self._closed = True
        if not self._io.running:
            return
        try:
            future = self._io.submit(self._shutdown())
            try:
                future.result(timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                log.warning("closing the connection to NATS at %s timed out", self.url)
        finally:
            self._io.stop()

    # -- running work on the loop -----------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait; ``Unavailable`` after ``timeout`` seconds."""
        return self._io.call(coro, timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; its outcome in a thread-safe future."""
        return self._io.submit(coro)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop soon; from any thread."""
        self._io.call_soon(callback)

    # -- streams (on the loop) ------------------------------------------------------------------

    async def ensure_stream(self, want: api.StreamConfig) -> None:
        """Make the stream ``want`` describes, or check the one there and update its limits.

        Raises ``ConfigError`` if it exists with other subjects, another description (the
        layout names the partition count in it) or another retention.
        """
        js = self.jetstream
        for attempt in range(ENSURE_ATTEMPTS):
            # several nodes of a cluster make the same replicated streams at once, and the
            # meta leader may then answer late: ask again, the request is idempotent
            try:
                info = await js.stream_info(want.name or "")
                break
            except nats.js.errors.NotFoundError:
                try:
                    await js.add_stream(want)
                    return
                except (TimeoutError, nats.js.errors.BadRequestError) as e:
                    if attempt == ENSURE_ATTEMPTS - 1:
                        msg = f"cannot make stream {want.name}: {e!r}"
                        raise Unavailable(msg) from e
            except TimeoutError as e:
                if attempt == ENSURE_ATTEMPTS - 1:
                    msg = f"cannot read stream {want.name}: {e!r}"
                    raise Unavailable(msg) from e
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        have = info.config
        if have.description != want.description or have.subjects != want.subjects:
            msg = (
                f"stream {want.name} on {self.url} is {have.description!r} with subjects"
                f" {have.subjects}, not {want.description!r}: was the bus made with another"
                " partition count? Drain it and delete its streams first"
            )
            raise ConfigError(msg)
        if have.retention != want.retention:
            wanted = getattr(want.retention, "value", want.retention)
            msg = f"stream {want.name} has retention {have.retention}, not {wanted}"
            raise ConfigError(msg)

        def differs(a: float | None, b: float | None) -> bool:
            return abs((a or 0.0) - (b or 0.0)) > 1e-3

        if (
            have.max_bytes != want.max_bytes
            or have.discard != want.discard
            or have.num_replicas != want.num_replicas
            or differs(have.max_age, want.max_age)
            or differs(have.duplicate_window, want.duplicate_window)
        ):
            await js.update_stream(want)

    async def stream_state(self, name: str) -> StreamState:
        """Stream ``name``'s state, fresh; ``Unavailable`` if the broker cannot say."""
        try:
            reply = await self.client.request(f"$JS.API.STREAM.INFO.{name}", b"", self.timeout)
        except (TimeoutError, nats.errors.Error) as e:
            msg = f"cannot read the state of stream {name}: {e!r}"
            raise Unavailable(msg) from e
        answer = json.loads(reply.data)
        if "error" in answer:
            msg = f"cannot read the state of stream {name}: {answer['error']}"
            raise Unavailable(msg)
        state = answer["state"]
        messages = int(state.get("messages", 0))
        first_ts = 0.0
        if messages:
            first_ts = datetime.fromisoformat(state["first_ts"]).timestamp()
        return StreamState(
            messages,
            int(state.get("bytes", 0)),
            int(state.get("first_seq", 0)),
            int(state.get("last_seq", 0)),
            first_ts,
            str(answer.get("created", "")),
        )

    # -- internals, on the loop -------------------------------------------------------------

    async def _connect(self) -> Client:
        async def disconnected() -> None:
            if not self._closed:
                log.warning("lost the connection to NATS at %s; reconnecting", self.url)

        async def reconnected() -> None:
            self._reconnect_attempt = 0
            log.warning("reconnected to NATS at %s", self.url)

        async def error(e: Exception) -> None:
            log.debug("NATS client error: %r", e)

        def next_server(
            servers: list[NatsServerInfo], info: dict[str, Any]
        ) -> tuple[NatsServerInfo | None, float]:
            attempt = self._reconnect_attempt
            self._reconnect_attempt += 1
            delay = min(self.reconnect_max_wait, self.reconnect_wait * 2 ** min(attempt, 30))
            return (servers[attempt % len(servers)] if servers else None), delay

        try:
            # The client retries forever, also on the first connect: give it ``timeout``.
            nc = Client()
            connecting = nc.connect(
                self.url.split(","),
                name="minutely",
                connect_timeout=max(1, int(self.timeout)),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_to_server_handler=next_server,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
            await asyncio.wait_for(connecting, self.timeout)
            return nc
        except (OSError, TimeoutError, nats.errors.Error) as e:
            msg = f"cannot reach NATS at {self.url} within {self.timeout} s: {e!r}"
            raise Unavailable(msg) from e

    async def _shutdown(self) -> None:
        nc = self._client
        if nc is not None and not nc.is_closed:
            await nc.close()
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
