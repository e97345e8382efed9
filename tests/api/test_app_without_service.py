"""The HTTP app over a fake node: it needs only ``api.ports``' methods, not a ``Service``,
and maps what the node raises to the HTTP answers the README promises."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.api.app import INLINE_CELLS
from minutely.errors import Backpressure, IdempotencyConflict, NotFound, Unavailable
from minutely.ingest import Decoded
from minutely.model import Partials, PointBatch
from minutely.query import By, SeriesAnswer, SummaryAnswer
from minutely.testing.access import TESTSERVER


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class FakeAnswers:
    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []
        #: what ``series_count`` says, and whether each question was answered on the loop
        self.count: int | None = None
        self.on_loop: list[bool] = []

    def series(
        self, by: By, name: str, start: int, end: int, step: int = 60, only: list[str] | None = None
    ) -> SeriesAnswer:
        self.on_loop.append(_on_loop())
        raise NotFound(f"no {by} named {name!r}")

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None = None
    ) -> SummaryAnswer:
        self.on_loop.append(_on_loop())
        self.asked.append((by, name, start, end, only))
        parts = Partials(
            np.array([1.0]), np.array([3.0]), np.array([4.0]), np.array([2], np.uint32)
        )
        return SummaryAnswer(by, name, start, end, ["cpu"], parts)

    def fleet(
        self, metric: str, start: int, end: int, step: int = 60, only: list[str] | None = None
    ) -> SeriesAnswer:
        raise NotFound(metric)

    max_cells = 1000

    def touches_store(self, start: int) -> bool:
        return False

    def series_count(self, by: By, name: str) -> int | None:
        return self.count


class FakeNode:
    """Everything ``create_app`` asks of a node, and nothing else."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.bodies: list[bytes] = []
        self.fake_answers = FakeAnswers()

    @property
    def max_body_bytes(self) -> int:
        return 1000

    @property
    def answers(self) -> FakeAnswers:
        return self.fake_answers

    @property
    def clock(self) -> Callable[[], float]:
        return lambda: 1_764_000_000.0

    async def ingest(
        self, body: bytes, content_type: str, idempotency_key: str | None = None
    ) -> Decoded:
        if self.fail is not None:
            raise self.fail
        self.bodies.append(body)
        return Decoded(PointBatch.empty(), 3, 0, [])

    def status(self) -> dict[str, Any]:
        return {"role": "fake"}

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def server_names(self) -> list[str]:
        return ["b", "a"]

    def metric_names(self) -> list[str]:
        return ["cpu"]

    def metric_kind(self, metric: str) -> str:
        return "gauge"

    def declare_kinds(self, kinds: dict[str, str]) -> int:
        return 0

    def dead_letter_list(self) -> dict[str, Any]:
        return {"directory": "-", "letters": []}

    async def replay_dead_letters(self) -> dict[str, int]:
        return {"letters": 0, "rows": 0, "points": 0}


def client(node: FakeNode) -> TestClient:
    return TestClient(create_app(node, manage_lifecycle=False, access=TESTSERVER))


def test_reads_and_ingest_go_through_the_node() -> None:
    node = FakeNode()
    with client(node) as c:
        assert c.get("/api/v1/status").json() == {"role": "fake"}
        assert c.get("/api/v1/servers").json() == {"servers": ["a", "b"]}
        got = c.post("/api/v1/points", content=b"[]", headers={"content-type": "application/json"})
        assert got.json() == {"accepted": 3, "rejected": 0, "errors": []}
        assert node.bodies == [b"[]"]
        assert c.post("/api/v1/points", content=b"x" * 1001).status_code == 413
        row = c.get("/api/v1/servers/web-1/summary?start=1763999940&end=1764000000").json()
        assert row["rows"] == [{"metric": "cpu", "min": 1.0, "max": 3.0, "avg": 2.0, "count": 2}]
        assert node.answers.asked == [("server", "web-1", 1763999940, 1764000000, None)]
        missing = c.get("/api/v1/servers/nope/series")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_what_the_node_raises_becomes_the_promised_status() -> None:
    cases = [
        (Backpressure("full", retry_after=2.5), 429, "3"),
        (Unavailable("closed"), 503, "1"),
        (IdempotencyConflict("key reused"), 422, None),
    ]
    for error, code, retry in cases:
        with client(FakeNode(fail=error)) as c:
            got = c.post(
                "/api/v1/points", content=b"[]", headers={"content-type": "application/json"}
            )
            assert got.status_code == code, error
            assert got.headers.get("retry-after") == retry
            assert str(error) in got.json()["error"]


def test_small_questions_are_answered_on_the_loop_and_the_others_on_a_thread() -> None:
    node = FakeNode()
    day = "start=1763913600&end=1764000000"  # 1,440 buckets of a minute
    cases = [  # (series the node counts, the question, answered on the loop)
        (None, "summary", False),  # not known here: a thread
        (3, "summary", True),
        (INLINE_CELLS, "summary", True),
        (INLINE_CELLS + 1, "summary", False),
        (INLINE_CELLS // 1440, f"series?{day}", True),
        (INLINE_CELLS // 1440 + 1, f"series?{day}", False),
        (INLINE_CELLS // 24 + 1, f"series?{day}&step=3600", False),
        (INLINE_CELLS // 24 + 1, f"series?{day}&step=3600&metric=a&metric=b", True),
    ]
    with client(node) as c:
        for count, question, _ in cases:
            node.answers.count = count
            c.get(f"/api/v1/servers/web-1/{question}")
    assert node.answers.on_loop == [inline for _, _, inline in cases]
