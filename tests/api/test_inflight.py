"""The budget of request body bytes in flight (``api/inflight.py``): a body that would take
the bodies being read past ``max_inflight_body_bytes`` is refused 429 with ``Retry-After``,
naming the limit, before any of it is read; counted in status; taken again once the bodies
in flight are answered. Requests are driven as raw ASGI calls, so one can hold its body
bytes while another arrives."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from minutely.api import create_app
from minutely.config import Settings
from minutely.errors import BodyBytesLimit, ConfigError
from minutely.limits import BodyBudget
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from tests.api.helpers import NOW

BUDGET = 100_000


def points_body(size: int, value: float = 1.0) -> bytes:
    """A JSON ingest body of one point, padded with spaces to ``size`` bytes."""
    point = orjson.dumps([{"server": "web", "metric": "cpu", "ts": NOW - 30, "value": value}])
    return point + b" " * (size - len(point))


class Call:
    """One request to ``app``: its body sent when ``release`` is set, its answer kept."""

    def __init__(self, app: Any, body: bytes, chunked: bool = False) -> None:
        self.app, self.body, self.chunked = app, body, chunked
        self.release = asyncio.Event()
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.answer = b""

    async def run(self) -> None:
        headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
        if self.chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        else:
            headers.append((b"content-length", str(len(self.body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/points",
            "raw_path": b"/api/v1/points",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 1),
        }
        half = len(self.body) // 2
        parts = [self.body[:half], self.body[half:]]

        async def receive() -> dict[str, Any]:
            if not parts:
                await asyncio.Event().wait()  # the client stays; the app never asks again
            await self.release.wait()
            body = parts.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(parts)}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.headers = dict(message["headers"])
            else:
                self.answer += message.get("body", b"")

        await self.app(scope, receive, send)


@pytest.fixture
def service() -> Service:
    return Service(Settings(hot_window=6 * 3600, store="none"), clock=lambda: NOW).open()


def app_over(service: Service) -> Any:
    return create_app(
        service, manage_lifecycle=False, access=TESTSERVER, max_inflight_body_bytes=BUDGET
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_body_past_the_budget_is_refused_429_naming_it_until_the_others_are_answered(
    service: Service,
) -> None:
    async def scenario() -> None:
        app = app_over(service)
        holder = Call(app, points_body(BUDGET - 10_000))
        held = asyncio.create_task(holder.run())
        await settle()  # the holder has taken its bytes and waits for its body
        refused = Call(app, points_body(20_000))
        refused.release.set()
        await refused.run()
        assert refused.status == 429
        assert refused.headers[b"retry-after"] == b"1"
        error = orjson.loads(refused.answer)["error"]
        assert "max_inflight_body_bytes of 100000" in error and "none of it was read" in error
        small = Call(app, points_body(10_000, 2.0))  # what still fits is taken
        small.release.set()
        await small.run()
        assert small.status == 200, small.answer
        holder.release.set()
        await held
        assert holder.status == 200, holder.answer
        again = Call(app, points_body(20_000, 3.0))  # the bytes were given back
        again.release.set()
        await again.run()
        assert again.status == 200, again.answer

    asyncio.run(scenario())
    assert service.status()["limits"]["refused"] == {"max_inflight_body_bytes": 1}
    # the three points answered 200 are taken, the refused one is not
    while service.aggregator.drain(timeout=0):
        pass
    summary = service.answers.summary("server", "web", int(NOW) - 3600, int(NOW) + 60)
    assert (summary.parts.count.tolist(), summary.parts.sum.tolist()) == ([3], [6.0])


def test_a_chunked_body_is_refused_once_its_chunks_stop_fitting(service: Service) -> None:
    async def scenario() -> None:
        app = app_over(service)
        holder = Call(app, points_body(BUDGET - 10_000))
        held = asyncio.create_task(holder.run())
        await settle()
        chunked = Call(app, points_body(30_000), chunked=True)
        chunked.release.set()
        await chunked.run()  # its first 15,000 bytes do not fit beside the holder's
        assert chunked.status == 429 and chunked.headers[b"retry-after"] == b"1"
        assert "max_inflight_body_bytes" in orjson.loads(chunked.answer)["error"]
        holder.release.set()
        await held
        assert holder.status == 200

    asyncio.run(scenario())
    assert service.status()["limits"]["refused"] == {"max_inflight_body_bytes": 1}


def test_the_budget_counts_what_is_held_and_refuses_nothing_partly() -> None:
    budget = BodyBudget(100)
    budget.take(60)
    with pytest.raises(BodyBytesLimit) as e:
        budget.take(41)
    assert e.value.limit == "max_inflight_body_bytes" and e.value.retry_after == 1.0
    budget.take(40)
    assert (budget.held, budget.peak) == (100, 100)
    budget.give(60)
    budget.give(40)
    assert (budget.held, budget.peak) == (0, 100)


def test_the_budget_may_not_be_below_one_body() -> None:
    with pytest.raises(ConfigError, match="max_inflight_body_bytes"):
        Settings(max_body_bytes=2 << 20, max_inflight_body_bytes=1 << 20)
