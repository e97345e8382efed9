"""A call made on a worker thread leaves the idle thread holding nothing of it: not the function,
its arguments, its result nor its exception (``minutely/workers.py``).

The switch interval is raised for each test so that the worker thread, once it has reported,
cannot run again before the test has looked: what the thread still holds then is what it
would hold while it idles."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Iterator

import numpy as np
import orjson
import pytest

from minutely import workers
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.clock import FakeClock

NOW = 1_764_000_000.0


@pytest.fixture(autouse=True)
def no_thread_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_the_result_is_the_callers_alone() -> None:
    async def main() -> None:
        got = await workers.run(lambda: np.arange(1 << 20, dtype=np.float64))
        assert got.sum() == (1 << 20) * ((1 << 20) - 1) / 2
        ref = weakref.ref(got)
        del got
        gc.collect()
        assert ref() is None

    asyncio.run(main())


def test_the_arguments_and_the_exception_are_let_go() -> None:
    def fails(values: np.ndarray) -> float:
        raise ValueError(f"refused {values.size} values")

    async def attempt(values: np.ndarray) -> str:
        try:
            await workers.run(lambda: fails(values))
        except ValueError as e:
            return str(e)
        return "not refused"

    async def main() -> None:
        big = np.ones(1 << 20)
        ref = weakref.ref(big)
        assert await attempt(big) == "refused 1048576 values"
        del big
        gc.collect()
        assert ref() is None

    asyncio.run(main())


def test_an_ingested_body_is_held_by_no_worker_thread() -> None:
    service = Service(Settings(store="none", hot_window=6 * 3600), clock=FakeClock(NOW)).open()
    points = [
        {"server": "s", "metric": f"m{i % 7}", "ts": NOW - i % 3600, "value": i}
        for i in range(50_000)
    ]
    body = bytearray(orjson.dumps(points))  # as the server reads a body
    held = sys.getrefcount(body)

    async def main() -> int:
        decoded = await service.ingest(body, "application/json")
        assert decoded.accepted == len(points)
        return sys.getrefcount(body)

    assert asyncio.run(main()) == held
