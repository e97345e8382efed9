"""The HTTP server below the app and the Graphite listener, over real sockets
(``minutely.testing.fuzzwire``): what the fuzzing found, each as a test, and a short run of
the wire and Graphite passes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import pytest

from minutely.api import create_app
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.fuzzwire import (
    WIRE_BODY_BYTES,
    WIRE_LIMITS,
    WireServer,
    fuzz_graphite,
    fuzz_wire,
    read_answers,
    server_is_whole,
)

#: about twenty seconds on a loaded machine
CASES = 640


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    settings = Settings(
        store="none",
        hot_window=6 * 3600,
        data_dir=str(tmp_path_factory.mktemp("wire")),
        max_body_bytes=WIRE_BODY_BYTES,
        max_inflight_body_bytes=WIRE_BODY_BYTES,
    )
    node = Service(settings).open()
    server = WireServer(create_app(node, max_inflight_body_bytes=WIRE_BODY_BYTES)).start()
    yield server.port
    server.stop()


def exchange(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Send ``data`` and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_bodies_that_stop_coming_are_refused_and_give_their_budget_back(port: int) -> None:
    # together they declare the whole body budget, so while held every other body is a 429
    half = WIRE_BODY_BYTES // 2
    head = (
        b"POST /api/v1/points HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n[" % half
    )
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        for s in stalled:
            s.sendall(head)
        began = time.monotonic()
        answers = []
        for s in stalled:
            s.settimeout(WIRE_LIMITS.idle_timeout + 10)
            answers.append(s.recv(65536))
        took = time.monotonic() - began
    finally:
        for s in stalled:
            s.close()
    for answer in answers:
        (refused,), why = read_answers(answer, ["POST"])
        assert why is None and refused.status == 408, answer
        assert "idle_timeout" in json.loads(refused.body)["error"]
    assert took >= WIRE_LIMITS.idle_timeout * 0.9
    assert asyncio.run(server_is_whole(port)) is None
    # the app saw its client leave: counted as such, not as the server's failure
    scrape = exchange(
        port, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    points = [line for line in scrape.decode().splitlines() if '"/api/v1/points"' in line]
    assert any('code="499"' in line for line in points)
    assert not any('code="5' in line for line in points)


def test_two_host_headers_are_refused(port: int) -> None:
    for hosts in ((b"evil.example.com", b"localhost"), (b"localhost", b"localhost")):
        request = b"GET /api/v1/servers HTTP/1.1\r\nHost: %s\r\nHost: %s\r\n" % hosts
        (answer,), _ = read_answers(exchange(port, request + b"Connection: close\r\n\r\n"), [])
        assert answer.status == 400
        assert "more than one Host" in json.loads(answer.body)["error"]


def test_an_unreadable_request_is_answered_while_the_client_still_sends(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX\x00: y\r\n\r\n")
        for _ in range(50):  # what a client still sends is drained, not answered by a reset
            s.sendall(b"more " * 20)
            time.sleep(0.005)
        s.settimeout(10)
        data = s.recv(65536)
    (answer,), why = read_answers(data, ["GET"])
    assert why is None and answer.status == 400, data
    assert "cannot be read" in json.loads(answer.body)["error"]


def test_a_pipelined_unreadable_request_comes_after_the_answers_before_it(port: int) -> None:
    good = b"GET /api/v1/servers HTTP/1.1\r\nHost: localhost\r\n\r\n"
    data = exchange(port, good * 3 + b"NOT HTTP\r\n\r\n")
    answers, why = read_answers(data, ["GET"] * 3)
    assert why is None, data
    assert [a.status for a in answers] == [200, 200, 200]


def test_a_connection_answered_before_its_body_came_is_closed_when_idle(port: int) -> None:
    head = (
        b"POST /api/v1/points HTTP/1.1\r\nHost: evil.example.com\r\n"
        b"Content-Type: application/json\r\nContent-Length: 20\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head + b"[")
        s.settimeout(10)
        data, answers = b"", []
        while not answers:  # the answer may come in pieces
            data += s.recv(65536)
            answers, _ = read_answers(data, ["POST"])
        assert answers[0].status == 421  # refused on its headers, before its body was read
        s.sendall(b" " * 18 + b"]")  # the rest of the body, and then nothing
        began = time.monotonic()
        assert s.recv(65536) == b""  # closed as idle, not held for ever
    assert time.monotonic() - began < WIRE_LIMITS.idle_timeout + 5


def test_an_upgrade_is_a_plain_request_that_passes_the_host_check(port: int) -> None:
    upgrade = (
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    for host, status in ((b"localhost", 200), (b"evil.example.com", 421)):
        data = exchange(port, b"GET /api/v1/servers HTTP/1.1\r\nHost: %s\r\n" % host + upgrade)
        (answer,), _ = read_answers(data, ["GET"])
        assert answer.status == status, data  # not uvicorn's bare 403 for a WebSocket
        assert json.loads(answer.body)


def test_a_short_wire_pass_finds_no_problem(port: int) -> None:
    run = asyncio.run(fuzz_wire(port, range(CASES)))
    assert not run.problems, f"{len(run.problems)} problems:\n\n" + "\n\n".join(run.problems[:10])
    assert run.cases == CASES
    statuses = {status for (_, status) in run.statuses}
    assert {200, 400, 408, 421, 431} <= statuses


def test_a_short_graphite_pass_finds_no_problem() -> None:
    run = asyncio.run(fuzz_graphite(range(400)))
    assert not run.problems, f"{len(run.problems)} problems:\n\n" + "\n\n".join(run.problems[:10])
    assert run.labels["graphite"] > 250 and run.labels["graphite reset"] > 30
