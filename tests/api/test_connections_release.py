"""minutely/api/connections.py subclasses uvicorn's httptools protocol: pinned to a tested range."""

from __future__ import annotations

from tests.pins import assert_tested_release


def test_uvicorn_is_a_tested_release() -> None:
    assert_tested_release("uvicorn")
