"""Fuzzing below the app: raw bytes on a socket to the real HTTP server (uvicorn with
``api.connections``' protocol class, which the in-process passes bypass), and Graphite
plaintext to its TCP listener, cut anywhere.

**HTTP** (``wire_case``, ``fuzz_wire``). Each case is one connection: requests whose request
line, ``Host`` (allowed, foreign, odd, twice), ``Content-Length`` (right, short, long,
invalid, twice), ``Transfer-Encoding``, ``Content-Type``, ``Content-Encoding``, header sizes
(up to past ``max_header_bytes``) and bodies are drawn, pipelined or alone, mutated or
random, sent whole or cut in pieces. Most cases end with a ``GET /healthz`` that asks the
server to close, so the case is over when the server closes. Every byte the server sends
must read as whole HTTP answers, each judged by ``fuzz.problem`` (no 5xx but 503 with
``Retry-After``, every 4xx says why); a case whose outcome the standard fixes (a foreign
``Host``: 421; two ``Host`` headers: 400; headers past the limit: 431; a body that stops
coming: 408) must get it; and the server must close every connection within ``WIRE_HANG``
seconds, whatever was sent. After each block the server must still answer ``/healthz`` and
take a body as large as the whole body budget, so nothing a case held is kept.

**Graphite** (``graphite_case``, ``fuzz_graphite``). Each case is one connection carrying
good, bad, tagged, blank, NUL-holding, binary and longer-than-``MAX_LINE`` lines, ended by
``\\n`` or ``\\r\\n``, the last one maybe unterminated, cut into segments at random places
(some a byte at a time), then closed or reset. The points the listener takes must be those
the decoder takes from the whole stream at once (a line past ``MAX_LINE`` is one bad line,
wherever it is cut), and a reset takes a prefix of them: however the stream is cut, the
outcome is the same, and the part of a line cut off by a reset never becomes a point.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minutely.api.connections import LINGER, ConnectionLimits, server_options
from minutely.graphite_server import MAX_LINE, GraphiteListener
from minutely.ingest import Decoded
from minutely.ingest.graphite import decode_graphite
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Decoder, Limits
from minutely.limits import Refusals
from minutely.model import PointBatch
from minutely.testing.asgi import Answer
from minutely.testing.fuzz import FastRun, problem
from minutely.testing.fuzzcases import EDGE_NUMBERS, SERVERS, mutated

#: the limits of the server the wire pass runs (timeouts short, so that cases which wait on
#: them end soon)
WIRE_LIMITS = ConnectionLimits(max_header_bytes=8192, header_timeout=1.0, idle_timeout=1.0)
#: the body limits it runs with: the budget no larger than one body, so a byte held after a
#: case would refuse the check that follows the block
WIRE_BODY_BYTES = 1 << 20
#: seconds by which the server must have closed a case's connection
WIRE_HANG = 15.0
#: connections at once
WIRE_LANES = 32
WIRE_BLOCK = 64

SENTINEL = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
#: ``Host`` values allowed by default (case, port and a trailing dot do not matter)
ALLOWED_HOSTS = (
    "localhost",
    "127.0.0.1",
    "[::1]",
    "LocalHost",
    "localhost.",
    "localhost:8080",
    "127.0.0.1:80",
    "[::1]:8080",
)
#: names a web page could send as its own (DNS rebinding): each must be refused
FOREIGN_HOSTS = (
    "evil.example.com",
    "localhost.evil.example.com",
    "127.0.0.1.nip.io",
    "evil.example.com:80",
    "[::2]",
    "10.0.0.1",
    "127.0.0.2",
    "0.0.0.0",
    "xn--lcalhost-9nf",
    "localhost.localdomain",
)
#: values no browser sends: refused or not, never a 5xx
ODD_HOSTS = (
    "",
    " ",
    "localhost:",
    "localhost:abc",
    "[::1",
    "::1",
    "local host",
    "localhost\x00",
    "é",
    "a" * 300,
    "localhost:80@evil.example.com",
)
_TARGETS = (
    "/healthz",
    "/api/v1/servers",
    "/api/v1/status",
    "/metrics",
    "/",
    "/api/v1/servers/web-1/series?step=60",
    "/api/v1/metrics/cpu/summary",
    "/api/v1/query?query=cpu",
    "/ping",
    "*",
    "http://localhost/healthz",
    "//healthz",
    "/%zz",
    "/api/v1/servers/%2e%2e/series",
    "/" + "a" * 2000,
    "",
)
#: routes that read their body before answering
_BODY_TARGETS = (
    ("/api/v1/points", "application/json"),
    ("/api/v1/write", "application/x-protobuf"),
    ("/write?db=d", "text/plain"),
    ("/api/v2/write?org=o&bucket=b", "text/plain"),
    ("/v1/metrics", "application/json"),
)
_METHODS = ("GET", "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "get", "G ET", "", "X" * 40)
_VERSIONS = ("HTTP/1.1",) * 8 + ("HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/9", "")
_CONTENT_TYPES = (
    "application/json",
    "application/vnd.apache.arrow.stream",
    "application/x-protobuf",
    "text/plain",
    "",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "x" * 500,
)
_ENCODINGS = ("gzip", "zstd", "snappy", "br", "identity", "gzip, gzip", "x-y", "", "é")
_BAD_LENGTHS = ("-1", "abc", "1,1", " 5", "5 ", "+5", "0x10", "99999999999999999999999", "1e3", "")
#: headers a request may carry, odd but well formed
_ODD_HEADERS = (
    (b"Connection", b"keep-alive"),
    (b"Connection", b"Upgrade"),
    (b"Upgrade", b"websocket"),
    (b"Upgrade", b"h2c"),
    (b"Expect", b"100-continue"),
    (b"Expect", b"x"),
    (b"Authorization", b"Bearer \xff\xfe"),
    (b"Accept", b"text/csv"),
    (b"Accept-Encoding", b"gzip;q=0"),
    (b"X-Forwarded-Host", b"evil.example.com"),
    (b"Range", b"bytes=0-1"),
    (b"Te", b"trailers"),
    (b"Idempotency-Key", b"k" * 300),
)
#: headers HTTP does not allow
_BAD_HEADERS = (
    (b"X-\xff", b"v"),
    (b"X-Null", b"a\x00b"),
    (b"", b"empty name"),
    (b"X Space", b"v"),
    (b"X-Fold", b"a\r\n b"),
)


#: the kinds of wire case, and how often each is drawn
_KINDS = {
    "plain": 3,
    "host": 2,
    "two-hosts": 1,
    "large-headers": 1,
    "length": 2,
    "chunked": 1,
    "pipeline": 1,
    "junk": 2,
    "upgrade": 1,
}


@dataclass(frozen=True)
class WireCase:
    """One connection's bytes, and what must come back."""

    seed: int
    label: str
    #: what is sent, a piece at a time
    segments: tuple[bytes, ...]
    #: the method of each request sent, in order (a ``HEAD`` answer has no body)
    methods: tuple[str, ...]
    #: the first answer's status must be one of these (None: only the general rules)
    expect: frozenset[int] | None = None
    #: how many answers must come (None: any; a request the server cannot read ends it)
    answers: int | None = None

    def shown(self) -> str:
        data = b"".join(self.segments)
        return f"{self.label} seed {self.seed}, {len(data)} bytes: {data[:600]!r}"


def _request(
    method: str,
    target: str,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
    eol: bytes = b"\r\n",
) -> bytes:
    line = f"{method} {target} {version}".encode("utf-8", "surrogateescape")
    fields = [name + b": " + value for name, value in headers]
    return eol.join([line, *fields, b"", b""]) + body


def _points_body(rng: random.Random) -> bytes:
    now = 1_764_000_000 + rng.randrange(3600)
    points = ",".join(
        f'{{"server":"{rng.choice(SERVERS)}","metric":"cpu","ts":{now},"value":{rng.random()}}}'
        for _ in range(rng.randrange(1, 5))
    )
    return f"[{points}]".encode()


def _host(rng: random.Random) -> tuple[bytes, bool | None]:
    """A ``Host`` value, and whether it is allowed (None: either may be right)."""
    pick = rng.random()
    if pick < 0.75:
        return rng.choice(ALLOWED_HOSTS).encode(), True
    if pick < 0.9:
        return rng.choice(FOREIGN_HOSTS).encode(), False
    return rng.choice(ODD_HOSTS).encode("utf-8"), None


def wire_case(seed: int, limits: ConnectionLimits = WIRE_LIMITS) -> WireCase:
    """The wire case of ``seed``: the same seed makes the same case."""
    rng = random.Random(seed)
    kind = rng.choices(list(_KINDS), list(_KINDS.values()))[0]
    sentinel = rng.random() < 0.9
    expect: frozenset[int] | None = None
    answers: int | None = None
    methods: list[str] = []
    data = b""
    if kind in ("plain", "host", "pipeline"):
        n = rng.randrange(2, 5) if kind == "pipeline" else 1
        for _ in range(n):
            host, allowed = _host(rng) if kind == "host" else (b"localhost", True)
            headers = [(b"Host", host)]
            if rng.random() < 0.5:
                target, media = rng.choice(_BODY_TARGETS)
                body = _points_body(rng) if media == "application/json" else rng.randbytes(20)
                method = "POST"
                headers += [(b"Content-Type", media.encode())]
                headers += [(b"Content-Length", str(len(body)).encode())]
            else:
                target, body = rng.choice(_TARGETS[:9]), b""
                method = rng.choice(("GET", "GET", "HEAD"))
            if rng.random() < 0.3:
                headers.append(rng.choice(_ODD_HEADERS))
            rng.shuffle(headers)
            data += _request(method, target, headers, body)
            methods.append(method)
            if kind == "host" and allowed is not None:
                expect = frozenset({421}) if not allowed else frozenset(range(200, 420))
        if kind == "pipeline":
            answers = n + sentinel
    elif kind == "upgrade":  # a WebSocket or h2c upgrade: no route takes one
        host, allowed = _host(rng)
        upgrade = rng.choice((b"websocket", b"h2c", b"WebSocket", b"x"))
        headers = [
            (b"Host", host),
            (b"Upgrade", upgrade),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"Sec-WebSocket-Version", b"13"),
        ]
        data = _request("GET", rng.choice(_TARGETS[:9]), headers)
        methods.append("GET")
        if allowed is not None:
            expect = frozenset({421}) if not allowed else frozenset(range(200, 420))
    elif kind == "two-hosts":
        hosts = [_host(rng)[0], _host(rng)[0]]
        headers = [(b"Host", hosts[0]), (b"Accept", b"*/*"), (b"Host", hosts[1])]
        method = rng.choice(("GET", "HEAD"))
        data = _request(method, rng.choice(_TARGETS[:9]), headers)
        methods.append(method)
        expect = frozenset({400})
    elif kind == "large-headers":
        room = limits.max_header_bytes
        if rng.random() < 0.5:
            headers = [(b"Host", b"localhost"), (b"X-Big", b"a" * rng.randrange(room, 4 * room))]
        else:
            many = rng.randrange(room // 16, room // 4)
            headers = [(b"Host", b"localhost"), *[(b"X-%d" % i, b"v") for i in range(many)]]
        data = _request("GET", rng.choice(_TARGETS[:6]), headers)
        methods.append("GET")
        expect = frozenset({431}) if len(data) > room else None
    elif kind == "length":
        target, media = rng.choice(_BODY_TARGETS)
        body = _points_body(rng)
        headers = [(b"Host", b"localhost"), (b"Content-Type", media.encode())]
        pick = rng.random()
        if pick < 0.35:  # promises more than it sends: the body stops coming
            declared = len(body) + rng.choice((1, 100, 1 << 19, WIRE_BODY_BYTES))
            headers.append((b"Content-Length", str(declared).encode()))
            sentinel = False
            expect = frozenset(range(400, 500))  # 408, or refused before the body is read
        elif pick < 0.55:  # sends more than it promises: the rest is the next request
            headers.append((b"Content-Length", str(rng.randrange(len(body))).encode()))
        elif pick < 0.8:
            headers.append((b"Content-Length", rng.choice(_BAD_LENGTHS).encode()))
        else:  # twice, the same or not
            lengths = [len(body), len(body) + rng.choice((0, 1, -1))]
            headers += [(b"Content-Length", str(n).encode()) for n in lengths]
        if rng.random() < 0.3:
            headers.append((b"Content-Encoding", rng.choice(_ENCODINGS).encode()))
        rng.shuffle(headers)
        data = _request("POST", target, headers, body)
        methods.append("POST")
    elif kind == "chunked":
        target, media = rng.choice(_BODY_TARGETS)
        body = _points_body(rng)
        headers = [(b"Host", b"localhost"), (b"Content-Type", media.encode())]
        headers.append((b"Transfer-Encoding", rng.choice((b"chunked",) * 3 + (b"gzip, chunked",))))
        if rng.random() < 0.2:
            headers.append((b"Content-Length", str(len(body)).encode()))
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        if rng.random() < 0.4:
            chunks = mutated(rng, chunks)
        data = _request("POST", target, headers, chunks)
        methods.append("POST")
    else:  # junk: a request mutated, or built of odd parts, or random bytes
        pick = rng.random()
        method = rng.choice(_METHODS)
        headers = [(b"Host", _host(rng)[0])]
        for _ in range(rng.randrange(4)):
            headers.append(rng.choice(_ODD_HEADERS + _BAD_HEADERS))
        if rng.random() < 0.4:
            headers.append((b"Content-Type", rng.choice(_CONTENT_TYPES).encode()))
        if rng.random() < 0.3:
            headers.append((b"Content-Encoding", rng.choice(_ENCODINGS).encode()))
        body = rng.choice((b"", _points_body(rng), rng.randbytes(rng.randrange(64))))
        if body:
            headers.append((b"Content-Length", str(len(body)).encode()))
        eol = rng.choice((b"\r\n",) * 4 + (b"\n", b"\r"))
        valid = _request(method, rng.choice(_TARGETS), headers, body, eol=eol)
        if pick < 0.4:
            data = valid
        elif pick < 0.8:
            data = mutated(rng, valid)
        else:
            data = rng.randbytes(rng.randrange(1, 512))
        methods.append(method.upper() if method.isalpha() else "GET")
    if sentinel:
        data += SENTINEL
        methods.append("GET")
    return WireCase(seed, f"http {kind}", _cut(rng, data), tuple(methods), expect, answers)


def _cut(rng: random.Random, data: bytes) -> tuple[bytes, ...]:
    """``data`` in pieces: whole, at a few random places, or a byte at a time."""
    pick = rng.random()
    if pick < 0.5 or len(data) < 2:
        return (data,)
    if pick < 0.9 or len(data) > 400:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 6))))
        return tuple(data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True))
    return tuple(data[i : i + 1] for i in range(len(data)))


def read_answers(data: bytes, methods: Sequence[str]) -> tuple[list[Answer], str | None]:
    """The HTTP answers in ``data``, in order; and why the rest cannot be read, if it cannot."""
    answers: list[Answer] = []
    at, asked = 0, 0
    while at < len(data):
        end = data.find(b"\r\n\r\n", at)
        if end < 0:
            return answers, f"an answer cut short at byte {at}: {data[at : at + 300]!r}"
        head = data[at:end].split(b"\r\n")
        parts = head[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            return answers, f"not an HTTP answer at byte {at}: {data[at : at + 300]!r}"
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        at = end + 4
        if 100 <= status < 200:
            continue
        method = methods[asked] if asked < len(methods) else "GET"
        asked += 1
        # a HEAD answer has no body, but a request the server could not read is answered
        # as if it were not a HEAD
        rest = data[at : at + 7]
        if status in (204, 304) or (method == "HEAD" and rest in (b"", b"HTTP/1.")):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", ""):
            body, at, why = _chunked(data, at)
            if why is not None:
                return answers, why
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body, at = data[at : at + n], at + n
            if len(body) < n:
                return answers, f"a body of {len(body)} bytes, {n} declared"
        else:
            body, at = data[at:], len(data)
        answers.append(Answer(status, headers, body))
    return answers, None


def _chunked(data: bytes, at: int) -> tuple[bytes, int, str | None]:
    out = bytearray()
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return bytes(out), at, "a chunked body cut short"
        size = int(data[at:end].split(b";")[0], 16)
        at = end + 2
        if size == 0:
            end = data.find(b"\r\n", at)  # no trailers: one empty line
            return bytes(out), (end + 2 if end >= 0 else len(data)), None
        out += data[at : at + size]
        at += size + 2


async def send_case(port: int, case: WireCase, hang: float = WIRE_HANG) -> tuple[bytes, bool]:
    """Send ``case`` on a new connection and read until the server closes; the bytes read,
    and whether it closed within ``hang`` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read() -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received.extend(chunk)

    reading = asyncio.ensure_future(read())
    try:
        for piece in case.segments:
            if reading.done():  # closed: what is left would only be reset
                break
            writer.write(piece)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            if len(case.segments) > 1:
                await asyncio.sleep(0)
        try:
            await asyncio.wait_for(asyncio.shield(reading), hang)
            closed = True
        except TimeoutError:
            closed = False
    finally:
        reading.cancel()
        writer.transport.abort()
    return bytes(received), closed


def judge_wire(case: WireCase, data: bytes, closed: bool, run: FastRun) -> None:
    """Count and judge what the server sent for ``case``."""
    run.cases += 1
    run.labels[case.label] += 1
    answers, unreadable = read_answers(data, case.methods)
    found: list[str] = []
    if not closed:
        found.append(f"the connection was still open after {WIRE_HANG:g} s")
    if unreadable is not None:
        found.append(unreadable)
    for method, answer in zip([*case.methods, *["GET"] * len(answers)], answers, strict=False):
        run.statuses[case.label, answer.status] += 1
        if method == "HEAD" and not answer.body:  # the reason is in the GET's body
            backpressure = answer.status == 503 and "retry-after" in answer.headers
            why = (
                f"{answer.status} to a HEAD" if answer.status >= 500 and not backpressure else None
            )
        else:
            why = problem(answer.status, answer.headers, answer.body)
        if why is not None:
            found.append(why)
    if not answers:
        run.statuses[case.label, 0] += 1
    if case.expect is not None and (not answers or answers[0].status not in case.expect):
        got = answers[0].status if answers else "no answer"
        found.append(f"answered {got}, not one of {sorted(case.expect)[:6]}")
    if case.answers is not None and len(answers) != case.answers:
        found.append(f"{len(answers)} answers to {case.answers} requests")
    if found:
        run.problems.append("; ".join(found) + "\n" + case.shown())


async def server_is_whole(port: int, settle: float = LINGER + 4.0) -> str | None:
    """None once ``/healthz`` answers and a body as large as the budget is taken (every
    case's bytes given back); else why not, after ``settle`` seconds of asking."""
    body = b"[" + b" " * (WIRE_BODY_BYTES - 2) + b"]"
    headers = [(b"Host", b"localhost"), (b"Content-Type", b"application/json")]
    headers += [(b"Content-Length", str(len(body)).encode()), (b"Connection", b"close")]
    check = WireCase(-1, "check", (SENTINEL,), ("GET",))
    full = WireCase(-1, "check", (_request("POST", "/api/v1/points", headers, body),), ("POST",))
    deadline = time.monotonic() + settle
    why = ""
    while True:
        data, closed = await send_case(port, check, 5.0)
        answers, _ = read_answers(data, check.methods)
        if not closed or not answers or answers[0].status != 200:
            why = f"/healthz answered {data[:200]!r}"
        else:
            data, closed = await send_case(port, full, 10.0)
            answers, _ = read_answers(data, full.methods)
            if closed and answers and answers[0].status not in (429, 503):
                return None
            why = f"a body of the whole budget was answered {data[:300]!r}"
        if time.monotonic() > deadline:
            return why
        await asyncio.sleep(0.2)


async def fuzz_wire(
    port: int, seeds: range, *, lanes: int = WIRE_LANES, progress: Any = None
) -> FastRun:
    """Send the wire case of each seed to the server on ``port``, ``lanes`` connections at
    once, judging each; after each block of ``WIRE_BLOCK``, check the server is whole."""
    run = FastRun()
    began = time.perf_counter()
    gate = asyncio.Semaphore(lanes)

    async def one(case: WireCase) -> None:
        async with gate:
            data, closed = await send_case(port, case)
        judge_wire(case, data, closed, run)

    for start in range(seeds.start, seeds.stop, WIRE_BLOCK):
        block = [wire_case(s) for s in range(start, min(start + WIRE_BLOCK, seeds.stop))]
        await asyncio.gather(*map(one, block))
        why = await server_is_whole(port)
        if why is not None:
            run.problems.append(f"after seeds {start}..{start + len(block) - 1}: {why}")
        if progress is not None:
            progress(run)
    run.seconds = time.perf_counter() - began
    return run


class WireServer:
    """``app`` served by uvicorn with minutely's protocol class (as ``serve`` runs it) on a
    free loopback port, in a thread of its own; ``start()`` binds and waits until it
    answers, ``stop()`` ends it."""

    def __init__(
        self, app: Any, limits: ConnectionLimits = WIRE_LIMITS, refusals: Refusals | None = None
    ) -> None:
        self.app = app
        self.limits = limits
        self.refusals = refusals
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> WireServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="error",
            access_log=False,
            lifespan="on",
            **server_options(self.limits, self.refusals),
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                msg = f"the server did not start within {timeout:g} s"
                raise RuntimeError(msg)
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)


# -- Graphite ---------------------------------------------------------------------------------

#: the node the fuzzed paths name their server at (``servers.<server>.<metric>``)
GRAPHITE_SERVER_NODE = 1
GRAPHITE_LIMITS = Limits(2e9, 0.0, 2e9, 100, "the hot window", 256)


class CollectingSink:
    """The node a Graphite listener feeds, as a test double: it decodes with fixed limits and
    keeps every batch taken."""

    def __init__(self, limits: Limits = GRAPHITE_LIMITS) -> None:
        self.limits = limits
        self.mapping = LabelMapping()
        self.refusals = Refusals()
        self.batches: list[PointBatch] = []

    @property
    def label_mapping(self) -> LabelMapping:
        return self.mapping

    def new_points(self, batch: PointBatch) -> None:
        return None

    async def ingest_with(
        self, decoder: Decoder, body: bytes = b"", idempotency_key: str | None = None
    ) -> Decoded:
        decoded = decoder(self.limits)
        self.batches.append(decoded.batch)
        return decoded

    def points(self) -> list[tuple[str, str, float, float]]:
        return [p for batch in self.batches for p in points_of(batch)]


def points_of(batch: PointBatch) -> list[tuple[str, str, float, float]]:
    servers = batch.server_names[batch.server_codes].tolist()
    metrics = batch.metric_names[batch.metric_codes].tolist()
    return list(zip(servers, metrics, batch.ts.tolist(), batch.value.tolist(), strict=True))


@dataclass(frozen=True)
class GraphiteCase:
    """One connection's stream, how it is cut, and whether it ends in a reset."""

    seed: int
    lines: tuple[bytes, ...]  #: each with its line ending, the last maybe without
    segments: tuple[bytes, ...]
    reset: bool

    def shown(self) -> str:
        data = b"".join(self.lines)
        cuts = [len(s) for s in self.segments][:20]
        return f"graphite seed {self.seed}, cut {cuts}, reset {self.reset}: {data[:600]!r}"


def _graphite_line(rng: random.Random, now: int) -> bytes:
    """One line's text, without its end."""
    pick = rng.random()
    server, metric = rng.choice(SERVERS).encode(), rng.choice((b"cpu", b"mem", b"disk_io"))
    good = b"servers.%s.%s %r %d" % (server, metric, round(rng.uniform(-1e6, 1e6), 3), now)
    if pick < 0.5:
        return good
    if pick < 0.55:
        return b"servers.%s.%s %d" % (server, metric, rng.randrange(100))
    if pick < 0.6:
        return b"servers.%s.%s 1 -1" % (server, metric)
    if pick < 0.65:
        return b"%s;host=%s 2.5 %d" % (metric, server, now)
    if pick < 0.75:
        edge = rng.choice(EDGE_NUMBERS).encode()
        return rng.choice(
            (b"servers.web-1.cpu %s %d" % (edge, now), b"servers.web-1.cpu 1 " + edge)
        )
    if pick < 0.8:
        return rng.choice((b"", b"   ", b"\t", b" \x00 "))
    if pick < 0.85:
        return good[: rng.randrange(len(good))] + b"\x00" + good[rng.randrange(len(good)) :]
    if pick < 0.9:
        return rng.randbytes(rng.randrange(1, 80)).replace(b"\n", b" ")
    return mutated(rng, good).replace(b"\n", b"")


def graphite_case(seed: int, now: int = 1_764_000_000) -> GraphiteCase:
    """The Graphite case of ``seed``: the same seed makes the same case."""
    rng = random.Random(seed)
    texts = [_graphite_line(rng, now) for _ in range(rng.randrange(1, 40))]
    long = None
    if rng.random() < 0.1:  # a line past MAX_LINE whose tail is a good line of its own
        tail = texts[0] if texts[0].startswith(b"servers.") else b"servers.web-1.cpu 1 %d" % now
        junk = rng.choice((b"x", b"servers.", b"\xff")) * rng.randrange(MAX_LINE, 3 * MAX_LINE)
        at = rng.randrange(len(texts))
        texts[at], long = junk + tail, (at, len(junk))
    lines = [t + rng.choice((b"\n", b"\n", b"\r\n")) for t in texts]
    if rng.random() < 0.3:  # the last line unterminated
        lines[-1] = lines[-1].rstrip(b"\r\n")
    data = b"".join(lines)
    size = len(data)
    # the long line cut where its tail begins, as TCP might
    cuts = [] if long is None else [sum(map(len, lines[: long[0]])) + long[1]]
    if rng.random() < 0.2 and size < 300:
        segments = tuple(data[i : i + 1] for i in range(size))
    else:
        more = rng.sample(range(1, max(2, size)), min(max(1, size - 1), rng.randrange(0, 6)))
        points = sorted({c for c in (*cuts, *more) if 0 < c < size})
        segments = tuple(data[a:b] for a, b in zip([0, *points], [*points, size], strict=True))
    return GraphiteCase(seed, tuple(lines), segments, rng.random() < 0.15)


def graphite_truth(case: GraphiteCase, sink: CollectingSink) -> tuple[list[Any], int]:
    """The points the whole stream holds, decoded at once, and its lines refused: a line
    longer than ``MAX_LINE`` is one refused line."""
    short, long = [], 0
    for line in case.lines:
        if len(line.rstrip(b"\r\n")) > MAX_LINE:
            long += 1
        else:
            short.append(line if line.endswith(b"\n") else line + b"\n")
    decoded = decode_graphite(b"".join(short), sink.mapping, GRAPHITE_SERVER_NODE, sink.limits)
    return points_of(decoded.batch), decoded.rejected + long


async def send_graphite(port: int, case: GraphiteCase) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in case.segments[: len(case.segments) - case.reset]:
            writer.write(piece)
            await writer.drain()
            if len(case.segments) > 1:  # the listener reads each piece on its own
                for _ in range(3):
                    await asyncio.sleep(0)
    finally:
        if case.reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            writer.transport.abort()
        else:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def graphite_one(case: GraphiteCase, run: FastRun, settle: float = 10.0) -> None:
    """Send ``case`` to a listener of its own and judge what it took."""
    sink = CollectingSink()
    listener = GraphiteListener(sink, "127.0.0.1", 0, GRAPHITE_SERVER_NODE).listen()
    label = "graphite reset" if case.reset else "graphite"
    run.cases += 1
    run.labels[label] += 1
    try:
        await send_graphite(listener.port, case)
        expected, refused = graphite_truth(case, sink)
        counts = listener.counts
        deadline = time.monotonic() + settle
        last, still = (-1, -1), 0
        while time.monotonic() < deadline:  # until every line is counted, or it settles
            now = (counts.accepted, counts.rejected)
            if not case.reset and now[0] + now[1] >= len(expected) + refused:
                break
            still = still + 1 if now == last else 0
            if case.reset and still > 20:
                break
            last = now
            await asyncio.sleep(0.002)
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        await listener.close()
    taken = sink.points()
    run.statuses[label, 200] += 1
    found = None
    if case.reset:
        if taken != expected[: len(taken)]:
            found = f"took {len(taken)} points that are not the first of the {len(expected)} sent"
    elif taken != expected or counts.rejected != refused:
        found = (
            f"took {len(taken)} points and refused {counts.rejected} lines; the stream holds"
            f" {len(expected)} and {refused} bad"
        )
        if len(taken) == len(expected):
            wrong = [(a, b) for a, b in zip(taken, expected, strict=True) if a != b][:3]
            found += f", and these differ: {wrong}"
    if found is not None:
        run.problems.append(found + "\n" + case.shown())


async def fuzz_graphite(seeds: range, *, lanes: int = 8, progress: Any = None) -> FastRun:
    """Send the Graphite case of each seed, ``lanes`` listeners at once, judging each."""
    run = FastRun()
    began = time.perf_counter()
    gate = asyncio.Semaphore(lanes)

    async def one(seed: int) -> None:
        async with gate:
            await graphite_one(graphite_case(seed), run)

    for start in range(seeds.start, seeds.stop, WIRE_BLOCK):
        await asyncio.gather(*map(one, range(start, min(start + WIRE_BLOCK, seeds.stop))))
        if progress is not None:
            progress(run)
    run.seconds = time.perf_counter() - began
    return run
