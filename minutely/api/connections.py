"""Connection-level limits for the HTTP server: header size, header and idle timeouts, and a
cap on open connections, as a subclass of uvicorn's httptools protocol; and ``GET /healthz``,
answered here as soon as its headers are parsed.

uvicorn (with httptools) has none of the first three for what happens before a request is
complete: httptools grows a header by concatenating each fragment it is fed (quadratic in the
header's size), no timer runs before the first request or while headers trickle in, and
``limit_concurrency`` answers 503 only once a request's headers are complete, so sockets that
send nothing hold their file descriptors for ever. Here each connection::

    accepted ──► over max_connections? ──yes──► 503 + Retry-After, closed
        │
        ▼  header timer (header_timeout) runs from the accept and from a request's first byte
    reading headers ──► more than max_header_bytes ──► 431, closed
        │          └──► timer fires ──► 408 (or closed if nothing came), closed
        ▼
    reading the body ──► nothing for idle_timeout ──► 408, closed
        │
        ▼
    answer ──► idle (uvicorn's keep-alive timer: idle_timeout) ──► closed

A body that stops coming would otherwise hold its connection, and the bytes it declared in
the body budget (``api/inflight.py``), for ever: two requests that declare 512 MB and send
one byte would refuse every other body with 429.

A ``GET /healthz`` whose ``Host`` is allowed is answered by the protocol itself, from the
parser callback that completes its headers, unless an answer is still being made on the same
connection (a pipelined probe waits its turn): the probe then needs no task, middleware or
route, so it waits for nothing but the loop's current callback. Any other ``Host`` goes on to
the app, which refuses it (421).

A refused connection is answered, its write side shut, and what the client still sends is read
and dropped for ``LINGER`` seconds (``LINGER_BYTES`` at most), so the client can read the answer
instead of a reset. Each refusal (and each connection closed for sending nothing within
``header_timeout``) is counted under its setting's name in the node's ``limits.Refusals``,
as every other limit is; an idle keep-alive connection closed by ``idle_timeout`` had nothing
outstanding, so it is not a refusal.

This module is the only one that touches uvicorn's protocol internals (``HttpToolsProtocol``'s
parser callbacks and ``connections`` set); ``tests/api/test_connections.py`` checks them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from minutely.api.auth import LOOPBACK_NAMES, host_name
from minutely.limits import Refusals

log = logging.getLogger(__name__)

#: seconds a refused connection is kept to drain what the client still sends, and the bytes
#: drained at most before it is closed anyway
LINGER = 2.0
LINGER_BYTES = 1 << 20
#: file descriptors kept for everything that is not a client connection (store, bus, logs)
FD_RESERVE = 256
#: the liveness probe answered before the app, and its answer's body (as the app's route says)
HEALTHZ_PATH = b"/healthz"
HEALTHZ_BODY = b'{"status":"ok"}'


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one client connection may hold (``Settings`` has each, documented in the README)."""

    #: request line and headers of one request, in bytes (431 beyond)
    max_header_bytes: int = 64 << 10
    #: seconds from a connection's accept, or a request's first byte, to its complete headers
    header_timeout: float = 10.0
    #: seconds a keep-alive connection may wait between requests
    idle_timeout: float = 30.0
    #: open client connections; one more is answered 503 with Retry-After and closed
    max_connections: int = 10_000


def _response(status: int, reason: str, message: str, headers: dict[str, str]) -> bytes:
    body = ('{"error":"' + message + '"}').encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


def _healthz(default_headers: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"content-type: application/json"]
    lines += [name + b": " + value for name, value in default_headers]
    lines.append(b"content-length: %d" % len(HEALTHZ_BODY))
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join([*lines, b"", HEALTHZ_BODY])


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``LIMITS`` enforced (``protocol_class`` sets them)."""

    LIMITS: ClassVar[ConnectionLimits] = ConnectionLimits()
    #: where refusals are counted, by the setting that refused (none: not counted)
    REFUSALS: ClassVar[Refusals | None] = None
    #: the ``Host`` names whose ``/healthz`` is answered here (None: any)
    ALLOWED_HOSTS: ClassVar[frozenset[str] | None] = LOOPBACK_NAMES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._in_headers = True  # before a request's headers are complete
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._drained = 0
        self._probe = False  # the request being read is a /healthz answered here
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.LIMITS.max_connections
        if len(self.connections) > limit:
            message = f"too many connections: the limit max_connections is {limit}"
            self._refuse(503, "Service Unavailable", message, {"Retry-After": "1"})
            self._count("max_connections")
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # draining before the close
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.close()
            return
        if not self._in_headers:
            self._last_read = self.loop.time()
            super().data_received(data)
            return
        if self._header_timer is None:
            self._arm_header_timer()
        room = self.LIMITS.max_header_bytes - self._header_bytes
        if len(data) <= room:
            self._header_bytes += len(data)
            super().data_received(data)
            return
        # feed only what fits: the headers may end inside it, and the rest is body
        self._header_bytes += room
        super().data_received(data[:room])
        if self._in_headers and not self._refused and not self.transport.is_closing():
            limit = self.LIMITS.max_header_bytes
            message = f"request headers exceed the limit max_header_bytes of {limit} bytes"
            self._refuse(431, "Request Header Fields Too Large", message, {})
            self._count("max_header_bytes")
            return
        if not self.transport.is_closing():
            self.data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_header_timer()
        if self._answer_probe():
            return
        super().on_headers_complete()
        self._last_read = self.loop.time()
        self._body_timer = self.loop.call_later(self.LIMITS.idle_timeout, self._body_late)

    def on_body(self, body: bytes) -> None:
        if not self._probe:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        if self._probe:
            self._probe = False
            if not self.transport.is_closing():
                # as uvicorn does once an answer is sent: the keep-alive timer runs until the
                # next request's first byte
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
        else:
            super().on_message_complete()
            cycle = self.cycle
            if (
                cycle is not None
                and cycle.response_complete
                and not self.pipeline
                and self.timeout_keep_alive_task is None
                and not self.transport.is_closing()
            ):
                # answered before its body was all read: the body's bytes cancelled the
                # keep-alive timer uvicorn armed with the answer, and nothing would arm it
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
        self._in_headers = True
        self._header_bytes = 0

    def send_400_response(self, msg: str) -> None:
        # uvicorn's closes at once, so a client still sending gets a reset, which can
        # destroy the answer before it is read: refuse as the limits do, draining
        message = f"the request cannot be read as HTTP/1.1 ({msg.rstrip('.')})"
        self._refuse(400, "Bad Request", message, {})

    def _answer_probe(self) -> bool:
        """Answer a ``GET /healthz`` here if its ``Host`` is allowed and no answer is being
        made on this connection; whether it was."""
        if self.url != HEALTHZ_PATH or self.parser.get_method() != b"GET":
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False
        if self.ALLOWED_HOSTS is not None:
            hosts = [value for name, value in self.headers if name == b"host"]
            if len(hosts) != 1 or host_name(hosts[0].decode("latin-1")) not in self.ALLOWED_HOSTS:
                return False
        keep_alive = self.parser.should_keep_alive()
        self._probe = True
        self.server_state.total_requests += 1
        self.transport.write(_healthz(self.server_state.default_headers, keep_alive))
        if not keep_alive:
            self.transport.close()
        return True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer here; ours starts again with the next byte
        self._cancel_header_timer()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.LIMITS.header_timeout, self._header_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._refused or not self._in_headers:
            return
        self._count("header_timeout")
        if self._header_bytes == 0:
            self.transport.close()  # nothing asked: nothing to answer
            return
        timeout = self.LIMITS.header_timeout
        message = f"request headers not complete within the limit header_timeout of {timeout:g}s"
        self._refuse(408, "Request Timeout", message, {})

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_late(self) -> None:
        """Refuse a request whose body has sent nothing for ``idle_timeout`` (a read paused
        because the app has not taken what came is the app's wait, not the client's)."""
        self._body_timer = None
        if self.transport.is_closing() or self._refused:
            return
        timeout = self.LIMITS.idle_timeout
        quiet = self.loop.time() - self._last_read
        if self.flow.read_paused or quiet < timeout:
            wait = timeout if self.flow.read_paused else timeout - quiet
            self._body_timer = self.loop.call_later(wait, self._body_late)
            return
        if self.cycle is not None and self.cycle.response_complete:
            self.transport.close()  # answered without its body: nothing is outstanding
            return
        self._count("idle_timeout")
        message = f"request body: nothing came within the limit idle_timeout of {timeout:g}s"
        self._refuse(408, "Request Timeout", message, {})

    def _count(self, limit: str) -> None:
        if self.REFUSALS is not None:
            self.REFUSALS.add(limit)

    def _refuse(self, status: int, reason: str, message: str, headers: dict[str, str]) -> None:
        """Answer ``status`` and close, draining what still comes. While an answer to an
        earlier request (pipelined), or the app's own answer to this one, is still being
        sent, nothing can be put before it: the connection closes after it instead."""
        self._refused = True
        self._cancel_header_timer()
        self._unset_keepalive_if_required()
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if answering and (self._in_headers or cycle.response_started):
            cycle.keep_alive = False
            return
        self.transport.write(_response(status, reason, message, headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)


def protocol_class(
    limits: ConnectionLimits,
    refusals: Refusals | None = None,
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES,
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class uvicorn builds each connection with, holding ``limits``, counting
    its refusals in ``refusals``, and answering ``/healthz`` for the ``Host`` names
    ``allowed_hosts`` (``auth.Access.allowed_hosts``)."""
    attributes = {"LIMITS": limits, "REFUSALS": refusals, "ALLOWED_HOSTS": allowed_hosts}
    return cast(
        "type[LimitedHttpToolsProtocol]",
        type("LimitedHttp", (LimitedHttpToolsProtocol,), attributes),
    )


def server_options(
    limits: ConnectionLimits,
    refusals: Refusals | None = None,
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES,
) -> dict[str, Any]:
    """The ``uvicorn.Config`` options for a server with ``limits`` (``serve``'s, and the wire
    fuzz pass's, so that it fuzzes what ``serve`` runs)."""
    return {
        "http": protocol_class(limits, refusals, allowed_hosts),
        "timeout_keep_alive": max(1, math.ceil(limits.idle_timeout)),
        # no route takes a WebSocket: an upgrade is then a plain request, which passes the
        # Host check and is answered with its reason, not with a bare 403 from uvicorn
        "ws": "none",
    }


def raise_open_files_limit(max_connections: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; the connections that then
    fit beside ``FD_RESERVE`` descriptors (at most ``max_connections``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:  # pragma: no cover - platform refusing its own hard
            log.warning("could not raise the open files limit to %s: %s", hard, e)
    fits = int(soft) - FD_RESERVE if soft != resource.RLIM_INFINITY else max_connections
    if fits < max_connections:
        log.warning(
            "max_connections %d lowered to %d: the open files limit is %d (ulimit -n)",
            max_connections,
            max(fits, 1),
            soft,
        )
        return max(fits, 1)
    return max_connections
