"""Compressed request bodies: ``minutely.api.encoding`` on its own (every coding, the limit
counted after decompressing, broken and unknown codings) and through ``POST /api/v1/points``
(gzip and zstd accepted, 400 / 413 / 415 answered)."""

from __future__ import annotations

import gzip
import json
import os

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from minutely.api import create_app
from minutely.api.encoding import UnsupportedEncoding, decompress
from minutely.errors import DecodeError, PayloadTooLarge
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from tests.api.helpers import NOW

BODY = os.urandom(3000) * 40  # compresses well, not trivially


def zstd(data: bytes) -> bytes:
    return bytes(pa.compress(data, codec="zstd", asbytes=True))


@pytest.mark.parametrize(
    ("coding", "sent"),
    [
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("GZIP", gzip.compress(BODY[:1000]) + gzip.compress(BODY[1000:])),  # two members
        ("zstd", zstd(BODY)),
        ("zstd", zstd(BODY[:7]) + zstd(BODY[7:])),  # two frames
        ("identity", BODY),
        ("gzip, zstd", zstd(gzip.compress(BODY))),  # undone last first
    ],
)
def test_each_coding_is_undone(coding: str, sent: bytes) -> None:
    assert decompress(sent, coding, len(BODY)) == BODY


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_the_limit_counts_decompressed_bytes(coding: str) -> None:
    sent = gzip.compress(BODY) if coding == "gzip" else zstd(BODY)
    with pytest.raises(PayloadTooLarge, match=f"limit of {len(BODY) - 1} bytes once {coding}"):
        decompress(sent, coding, len(BODY) - 1)


def test_a_bomb_is_refused_without_decompressing_it_whole() -> None:
    bomb = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros in ~64 KB
    with pytest.raises(PayloadTooLarge):
        decompress(bomb, "gzip", 1 << 20)


@pytest.mark.parametrize(
    ("coding", "sent"),
    [
        ("gzip", b"[{}]"),
        ("gzip", gzip.compress(BODY)[:-100]),  # truncated
        ("zstd", b"[{}]"),
        ("zstd", zstd(BODY)[:-100]),
    ],
)
def test_a_body_not_in_its_coding_is_a_decode_error_naming_it(coding: str, sent: bytes) -> None:
    with pytest.raises(DecodeError, match=f"not valid {coding} \\(Content-Encoding: {coding}\\)"):
        decompress(sent, coding, 1 << 30)


def test_an_unknown_coding_is_named() -> None:
    with pytest.raises(UnsupportedEncoding, match="'br' is not supported: send gzip, zstd"):
        decompress(b"x", "br", 100)


def points_json(n: int) -> bytes:
    return json.dumps(
        [
            {"server": f"web-{i % 3}", "metric": "cpu.user", "ts": NOW - i, "value": i}
            for i in range(n)
        ]
    ).encode()


def post(client: TestClient, body: bytes, coding: str) -> tuple[int, dict[str, object]]:
    headers = {"content-type": "application/json", "content-encoding": coding}
    r = client.post("/api/v1/points", content=body, headers=headers)
    return r.status_code, r.json()


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_compressed_points_are_accepted(client: TestClient, coding: str) -> None:
    body = points_json(500)
    sent = gzip.compress(body) if coding == "gzip" else zstd(body)
    assert post(client, sent, coding) == (200, {"accepted": 500, "rejected": 0, "errors": []})


def test_the_api_answers_400_413_and_415(client: TestClient, service: Service) -> None:
    status, answer = post(client, points_json(3), "gzip")  # says gzip, is not
    assert status == 400 and "not valid gzip" in str(answer["error"])
    status, answer = post(client, points_json(3), "br")
    assert status == 415 and "'br'" in str(answer["error"])
    small = Service(service.settings.replace(max_body_bytes=1000), clock=service.clock).open()
    with TestClient(create_app(small, manage_lifecycle=False, access=TESTSERVER)) as c:
        status, answer = post(c, gzip.compress(points_json(100)), "gzip")
    assert status == 413 and "1000 bytes once gzip-decompressed" in str(answer["error"])
