"""Connection limits against a real ``minutely serve``: idle, trickling and oversized
connections are cut off by their limit (``minutely/api/connections.py``) and ``/healthz``
keeps answering within 100 ms beside them."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def serving(tmp: Path, *flags: str) -> Iterator[Server]:
    s = start_server(tmp, "--store", "none", "--hot-window", "1h", *flags)
    try:
        yield s
    finally:
        stop_server(s)


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def healthz_latencies(server: Server, seconds: float) -> list[float]:
    """Seconds each ``/healthz`` took, on a fresh connection each, for ``seconds`` (a plain
    socket: an httpx client's set-up alone can take tens of milliseconds)."""
    took = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.perf_counter()
        with socket.create_connection(address(server), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = read_all(s, 5)
        took.append(time.perf_counter() - began)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        time.sleep(0.02)
    return took


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes (or ``timeout``)."""
    sock.settimeout(timeout)
    out = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_idle_and_trickling_sockets_neither_stall_healthz_nor_stay(tmp_path: Path) -> None:
    with serving(tmp_path, "--header-timeout", "4s") as server:
        idle = [socket.create_connection(address(server)) for _ in range(300)]
        slow = [socket.create_connection(address(server)) for _ in range(200)]
        stop = threading.Event()

        def trickle() -> None:
            for s in slow:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            while not stop.is_set():
                for s in slow:
                    with contextlib.suppress(OSError):
                        s.sendall(b"a")
                time.sleep(0.05)

        sender = threading.Thread(target=trickle)
        sender.start()
        time.sleep(0.5)  # the 500 accepts, a burst the server takes in one go
        try:
            took = healthz_latencies(server, 3.0)
            assert max(took) < 0.1, f"slowest /healthz {max(took) * 1000:.0f} ms"
            # past the header timeout the idle ones are closed and the slow ones told why
            time.sleep(2.0)
            assert all(read_all(s, 1.0) == b"" for s in idle[:20])
            answer = read_all(slow[0], 1.0)
            assert answer.startswith(b"HTTP/1.1 408 ")
            assert b"header_timeout" in answer
        finally:
            stop.set()
            sender.join()
            for s in idle + slow:
                s.close()


def test_huge_header_is_refused_at_the_limit_and_fast(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        sock = socket.create_connection(address(server))
        sent = [0]

        def send_256_mib() -> None:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            with contextlib.suppress(OSError):
                for _ in range(256):
                    sock.sendall(chunk)
                    sent[0] += len(chunk)

        began = time.perf_counter()
        sender = threading.Thread(target=send_256_mib)
        sender.start()
        answer = b""
        sock.settimeout(5)
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        took = time.perf_counter() - began
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert took < 1.0
        assert max(healthz_latencies(server, 0.5)) < 0.1
        sender.join(10)
        assert not sender.is_alive()
        # the server stopped reading well before the 256 MiB were through
        assert sent[0] < 64 << 20
        sock.close()


def test_headers_at_the_limit_pass_and_one_byte_more_is_431(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-header-bytes", "8KB") as server:
        head = b"POST /api/v1/points HTTP/1.1\r\nHost: localhost\r\n"
        body = b"[]" + b" " * 100_000  # the body arrives in the headers' packet
        tail = (
            "Content-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()

        def request(pad: int) -> bytes:
            pad_line = b"X-Pad: " + b"p" * pad + b"\r\n"
            with socket.create_connection(address(server)) as s:
                s.sendall(head + pad_line + tail + b"\r\n" + body)
                return read_all(s, 2.0)

        fixed = len(head) + len(tail) + len(b"X-Pad: \r\n") + 2
        ok = request(8192 - fixed)
        assert ok.startswith(b"HTTP/1.1 200 "), ok[:200]
        refused = request(8192 - fixed + 1)
        assert refused.startswith(b"HTTP/1.1 431 "), refused[:200]
        assert b"max_header_bytes of 8192" in refused


def test_connections_past_the_limit_are_answered_503_with_retry_after(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-connections", "40", "--header-timeout", "3s") as server:
        held = [socket.create_connection(address(server)) for _ in range(39)]
        try:
            time.sleep(0.2)
            resp = httpx.get(f"{server.url}/healthz", timeout=5)
            assert resp.status_code == 200  # the 40th connection
            with socket.create_connection(address(server)) as extra:
                held.append(socket.create_connection(address(server)))
                time.sleep(0.2)
                answer = read_all(held[-1], 1.0) or read_all(extra, 1.0)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
            assert b"retry-after: 1" in answer.lower()
            assert b"max_connections is 40" in answer
            # the idle ones time out, and the server answers again
            time.sleep(3.5)
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        finally:
            for s in held:
                s.close()


def test_more_idle_sockets_than_the_inherited_open_files_limit(tmp_path: Path) -> None:
    """With a soft limit of 1,024 inherited (a hard one far above), the server raises its own:
    1,500 idle sockets do not exhaust its descriptors, and /healthz answers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.fail(f"the hard open files limit is {hard}: this test needs 4096")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        cm = serving(tmp_path)
        server = cm.__enter__()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        idle = [socket.create_connection(address(server)) for _ in range(1500)]
        time.sleep(1.0)  # the 1,500 accepts, a burst the server takes in one go
        try:
            assert max(healthz_latencies(server, 1.0)) < 0.1
        finally:
            for s in idle:
                s.close()
    finally:
        cm.__exit__(None, None, None)


def test_each_connection_refusal_is_counted_by_its_limit(tmp_path: Path) -> None:
    """431, 408 (and a socket closed for sending nothing) and 503 are counted under their
    settings on /api/v1/status and /metrics, as every other limit is."""
    flags = ("--max-connections", "4", "--header-timeout", "2s", "--max-header-bytes", "4KB")
    with serving(tmp_path, *flags) as server:
        with socket.create_connection(address(server)) as big:
            big.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8192)
            assert read_all(big, 2.0).startswith(b"HTTP/1.1 431 ")
        silent = [socket.create_connection(address(server)) for _ in range(3)]
        slow = socket.create_connection(address(server))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        time.sleep(0.2)
        with socket.create_connection(address(server)) as extra:  # a 5th: one too many
            assert read_all(extra, 1.0).startswith(b"HTTP/1.1 503 ")
        assert read_all(slow, 4.0).startswith(b"HTTP/1.1 408 ")
        assert all(read_all(s, 1.0) == b"" for s in silent)  # closed, nothing said
        for s in (*silent, slow):
            s.close()
        refused = httpx.get(f"{server.url}/api/v1/status", timeout=5).json()["limits"]["refused"]
        assert refused == {"max_header_bytes": 1, "max_connections": 1, "header_timeout": 4}
        scraped = httpx.get(f"{server.url}/metrics", timeout=5).text
        for limit, n in refused.items():
            assert f'minutely_limit_refusals_total{{limit="{limit}"}} {n}.0' in scraped


def test_healthz_is_answered_before_the_app_and_keeps_the_connection(tmp_path: Path) -> None:
    with serving(tmp_path) as server, socket.create_connection(address(server), 5) as s:
        s.settimeout(5)
        probe = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        # two probes, then a request the app answers, pipelined on one connection
        s.sendall(probe + probe + b"GET /api/v1/servers HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got = b""
        while got.count(b"HTTP/1.1 200 OK") < 3 or not got.endswith(b"}"):
            got += s.recv(65536)
        answers = got.split(b"HTTP/1.1 ")[1:]
        assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [
            b'{"status":"ok"}',
            b'{"status":"ok"}',
            b'{"servers":[]}',
        ]
        assert all(b"connection: close" not in a for a in answers)
        s.sendall(probe.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        last = read_all(s, 5)
        assert last.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in last
        assert last.endswith(b'{"status":"ok"}')  # and then the server closed it


def test_healthz_with_a_host_not_allowed_is_refused_by_the_app(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        r = httpx.get(f"{server.url}/healthz", headers={"host": "evil.example.com"})
        assert r.status_code == 421 and "evil.example.com" in r.json()["error"]
