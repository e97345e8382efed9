"""The door of the HTTP app: the ``Host`` check and the token check, as one ASGI middleware.

Every HTTP request passes ``Guard`` before routing:

1. its ``Host`` must be an allowed name (``Access.allowed_hosts``), or it is answered 421:
   a web page that rebinds its own DNS name to a loopback or private address still sends
   its own name, so it never reaches a route (docs/security.md);
2. its path needs a scope (``required_scope``): ``write`` for every ingest route, ``admin``
   for dead letters and the cluster's ``/api/v1/local`` routes, nothing for ``/healthz``,
   InfluxDB's ``/ping`` and the dashboard's static files, and ``read`` for everything else,
   so a route added later is closed until it is listed;
3. when the tokens file holds a token, the request must carry one whose scope grants it:
   ``Authorization: Bearer <t>``, ``Token <t>`` (InfluxDB's clients) or ``Basic`` with the
   token as password (Prometheus' remote_write, Grafana). None or an unknown one is a 401
   with ``WWW-Authenticate: Bearer``, a known one with too small a scope a 403.

It is a plain ASGI callable, not a ``BaseHTTPMiddleware``, which would cost a task and a
stream per request on the ingest path.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from minutely import auth
from minutely.api import render
from minutely.auth import Scope as TokenScope
from minutely.auth import TokenFile
from minutely.config import Settings

#: the names of this machine's loopback interface, allowed by default
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
#: the routes that need no token
OPEN_PATHS = frozenset({"/healthz", "/ping", "/", "/index.html", "/style.css", "/favicon.ico"})
#: the dashboard's static files, which need no token (the page asks for one when the API does)
OPEN_PREFIXES = ("/js/", "/vendor/")
WRITE_PATHS = frozenset(
    {"/api/v1/points", "/api/v1/write", "/write", "/api/v2/write", "/v1/metrics", "/api/v1/kinds"}
)
ADMIN_PREFIXES = ("/api/v1/dead-letters", "/api/v1/local/")

_CHALLENGE = (b"www-authenticate", b'Bearer realm="minutely"')


def required_scope(path: str) -> TokenScope | None:
    """The scope a request for ``path`` needs; None for the open routes."""
    if path in WRITE_PATHS:
        return TokenScope.WRITE
    if path.startswith(ADMIN_PREFIXES):
        return TokenScope.ADMIN
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return None
    return TokenScope.READ


def host_name(text: str) -> str:
    """``text`` (a Host header or a setting) as the name compared: lower case, no port, no
    trailing dot, an IPv6 address in brackets."""
    text = text.strip().lower()
    if text.startswith("["):
        return text.partition("]")[0] + "]"
    if text.count(":") > 1:  # a bare IPv6 address
        return f"[{text}]"
    return text.partition(":")[0].rstrip(".")


@dataclass(frozen=True, slots=True)
class Access:
    """Who may come in: the ``Host`` names allowed (None: any) and the tokens (None: off)."""

    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES
    tokens: TokenFile | None = None

    @staticmethod
    def hosts(names: Iterable[str]) -> frozenset[str]:
        """The loopback names and ``names``, normalized."""
        return LOOPBACK_NAMES | {host_name(n) for n in names if n.strip()}


#: the default: loopback names only, no tokens
LOOPBACK_ONLY = Access()


def _is_wildcard(host: str) -> bool:
    return host.strip() in ("", "0.0.0.0", "::", "[::]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) is reachable from this machine only."""
    name = host_name(host).strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def access_for(settings: Settings) -> Access:
    """The access ``settings`` describe, its tokens file read (``auth.TokenError`` if it is
    malformed)."""
    tokens = TokenFile(auth.tokens_path(settings.data_dir)).open()
    given = [h for h in settings.allowed_hosts.split(",") if h.strip()]
    if "*" in (h.strip() for h in given):
        return Access(None, tokens)
    names = [*given]
    if not _is_wildcard(settings.host):
        names.append(settings.host)
    advertised = urlsplit(settings.advertised_url).hostname
    if advertised and not _is_wildcard(advertised):
        names.append(advertised)
    return Access(Access.hosts(names), tokens)


def exposure_refusal(settings: Settings, access: Access) -> str | None:
    """Why ``serve`` must not start as ``settings`` say, or None: a non-loopback address with
    no token, or Graphite (which has no auth) on one, unless ``insecure``."""
    if settings.insecure or is_loopback(settings.host):
        return None
    if access.tokens is None or not access.tokens.enabled:
        return (
            f"refusing to listen on {settings.host} with no token: anyone who reaches the port"
            " could write and read every series. Add one (minutely token add NAME --scope"
            f" admin --data-dir {settings.data_dir}), listen on 127.0.0.1, or pass --insecure"
        )
    if settings.graphite_port:
        return (
            f"refusing to take Graphite plaintext on {settings.host}:{settings.graphite_port}:"
            " that protocol has no authentication. Listen on 127.0.0.1, or pass --insecure"
            " and firewall the port"
        )
    return None


def _secret(header: bytes) -> str | None:
    """The token in an Authorization header's value, or None if it carries none."""
    kind, _, rest = header.decode("latin-1").strip().partition(" ")
    kind = kind.lower()
    rest = rest.strip()
    if kind in ("bearer", "token"):
        return rest or None
    if kind == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


#: how many Host values and Authorization headers a Guard remembers as already let in
_REMEMBERED = 256


class Guard:
    """The ASGI middleware in front of ``app`` that enforces ``access``.

    It remembers the raw ``Host`` values it allowed and the ``Authorization`` headers that
    matched a token (never the refused ones, so no one can fill it), until the tokens file
    changes: a repeat request then costs two dict lookups instead of parsing, hashing and
    comparing again, which matter next to a query's time once its work has left them cold.
    """

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access
        self._hosts: set[bytes] = set()
        self._matched: dict[bytes, auth.Token] = {}
        self._matched_in: tuple[auth.Token, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_host = header = None
        hosts = 0
        for key, value in scope["headers"]:
            if key == b"host":
                raw_host = value
                hosts += 1
            elif key == b"authorization":
                header = value
        if hosts > 1:  # which one names the server is ambiguous: HTTP says refuse (RFC 9112)
            why = "more than one Host header: a request names one host"
            await _send_error(send, 400, why, [])
            return
        allowed = self.access.allowed_hosts
        if allowed is not None and raw_host not in self._hosts:
            host = host_name(raw_host.decode("latin-1")) if raw_host is not None else ""
            if raw_host is None or host not in allowed:
                await _refuse_host(send, host)
                return
            if len(self._hosts) < _REMEMBERED:
                self._hosts.add(raw_host)
        tokens = self.access.tokens
        if tokens is not None:
            needed = required_scope(scope["path"])
            if needed is not None:
                tokens.refresh()
                if tokens.enabled:
                    refusal = self._check(tokens, header, scope["path"], needed)
                    if refusal is not None:
                        await _send_error(send, *refusal)
                        return
        await self.app(scope, receive, send)

    def _check(
        self, tokens: TokenFile, header: bytes | None, path: str, needed: TokenScope
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """None if the request may pass, else the status, reason and headers to refuse it."""
        if tokens.tokens is not self._matched_in:  # the file changed: forget every match
            self._matched = {}
            self._matched_in = tokens.tokens
        token = self._matched.get(header) if header is not None else None
        if token is None:
            secret = _secret(header) if header is not None else None
            if secret is None:
                why = (
                    "no token: send Authorization: Bearer <token> (or Token <token>, or basic"
                    f" auth with the token as the password); {path} needs scope {needed.value}"
                )
                return 401, why, [_CHALLENGE]
            token = auth.match(tokens.tokens, secret)
            if token is None:
                why = "the token sent is not one of this server's (mistyped, or revoked)"
                if tokens.broken is not None:
                    why = f"no token is accepted: {tokens.broken}"
                return 401, why, [_CHALLENGE]
            if header is not None and len(self._matched) < _REMEMBERED:
                self._matched[header] = token
        if not token.scope.grants(needed):
            why = (
                f"token {token.name!r} has scope {token.scope.value}; {path} needs scope"
                f" {needed.value}"
            )
            return 403, why, []
        return None


async def _refuse_host(send: Send, host: str) -> None:
    why = (
        f"Host {host!r} is not an allowed name for this server: add it to allowed_hosts"
        " (--allowed-hosts or MINUTELY_ALLOWED_HOSTS; '*' allows any)"
    )
    if not host:
        why = "no Host header: this server answers only requests that name an allowed host"
    await _send_error(send, 421, why, [])


async def _send_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = render.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
