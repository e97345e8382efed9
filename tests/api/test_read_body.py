"""``protocols.read_body``: a body read into one bytearray, whatever its chunks, with or
without a declared length, and refused past the limit."""

from __future__ import annotations

import asyncio
import os

import pytest
from starlette.requests import Request
from starlette.types import Message

from minutely.api.protocols import PREALLOCATE_MAX, read_body
from minutely.errors import PayloadTooLarge


def _request(chunks: list[bytes], declared: int | None) -> Request:
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    return Request(scope, receive)


def _chunks(body: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(body[at : at + size])
        at += size
    return [*out, body[at:]]


@pytest.mark.parametrize(
    ("length", "declared"),
    [
        (1_700_003, True),  # the buffer made at its declared length
        (1_700_003, False),  # chunked: grown
        (PREALLOCATE_MAX + 12_345, True),  # over PREALLOCATE_MAX: grown
    ],
)
def test_the_body_is_read_whole_into_one_bytearray(length: int, declared: bool) -> None:
    body = os.urandom(length)
    chunks = _chunks(body, [1, 65_536, 0, 262_144, 7, 300_001])
    request = _request(chunks, length if declared else None)
    got = asyncio.run(read_body(request, limit=PREALLOCATE_MAX + 1_000_000))
    assert type(got) is bytearray and got == body


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_past_the_limit_is_refused(declared: bool) -> None:
    body = os.urandom(100_001)
    request = _request(_chunks(body, [40_000, 40_000]), len(body) if declared else None)
    with pytest.raises(PayloadTooLarge, match="over the limit of 100000 bytes"):
        asyncio.run(read_body(request, limit=100_000))


def test_a_body_longer_than_it_declared_is_refused() -> None:
    request = _request([b"x" * 10, b"y" * 10], declared=15)
    with pytest.raises(PayloadTooLarge, match="longer than its Content-Length of 15 bytes"):
        asyncio.run(read_body(request, limit=100))
