"""The NATS client's large-message path (``minutely.bus.nats.client``) against the protocol:
payloads split across reads at any point arrive whole, byte for byte, 8-byte aligned, with
their headers, and small messages around them still go through nats-py's own parser."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from minutely.bus.nats.client import LARGE, _Parser


class Sink:
    """Stands in for the client: records what the parser hands on."""

    def __init__(self) -> None:
        self.got: list[tuple[int, bytes, bytes, Any, bytes | None]] = []

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: Any, headers: bytes | None
    ) -> None:
        self.got.append((sid, subject, reply, data, headers))


def frame(sid: int, payload: bytes, headers: bytes | None) -> bytes:
    if headers is None:
        return b"MSG s.%d %d r.%d %d\r\n" % (sid, sid, sid, len(payload)) + payload + b"\r\n"
    size = len(headers) + len(payload)
    line = b"HMSG s.%d %d r.%d %d %d\r\n" % (sid, sid, sid, len(headers), size)
    return line + headers + payload + b"\r\n"


@pytest.mark.parametrize("read", [1000, 32768, 65536 + 7])
def test_messages_split_across_reads_arrive_whole_and_aligned(read: int) -> None:
    rng = np.random.default_rng(read)
    sent = []
    for sid in range(10):
        size = LARGE + int(rng.integers(0, 3000)) if sid % 3 else int(rng.integers(0, 300))
        payload = rng.bytes(size)
        headers = None if sid % 2 else b"NATS/1.0\r\nNats-Msg-Id: k" + b"x" * sid + b"\r\n\r\n"
        sent.append((sid, payload, headers))
    stream = b"".join(frame(sid, p, h) for sid, p, h in sent) + b"PING\r\n"
    sink = Sink()
    parser = _Parser(sink)  # type: ignore[arg-type]

    async def feed() -> None:
        for start in range(0, len(stream), read):
            await parser.parse(stream[start : start + read])

    pings: list[bool] = []

    async def pong() -> None:
        pings.append(True)

    sink._process_ping = pong  # type: ignore[attr-defined]
    asyncio.run(feed())
    assert len(sink.got) == len(sent) and pings == [True]
    for (sid, payload, headers), (g_sid, subject, reply, data, hdr) in zip(
        sent, sink.got, strict=True
    ):
        assert (g_sid, subject, reply, hdr) == (sid, b"s.%d" % sid, b"r.%d" % sid, headers)
        assert bytes(data) == payload
        if len(payload) >= LARGE:  # gathered into its own buffer, the payload 8-byte aligned
            assert isinstance(data, bytearray)
            assert np.frombuffer(data, dtype=np.uint8).ctypes.data % 8 == 0


def test_a_large_json_reply_reads_like_bytes() -> None:
    # a JetStream API reply can be large too (stream info with subject details): whoever
    # reads it with json.loads or .decode() gets what nats-py's own path would give
    doc = {"subjects": {f"minutely.points.{k}": k for k in range(20_000)}}
    payload = json.dumps(doc).encode()
    assert len(payload) >= LARGE
    sink = Sink()
    parser = _Parser(sink)  # type: ignore[arg-type]
    stream = frame(1, payload, b"NATS/1.0\r\n\r\n")

    async def feed() -> None:
        for start in range(0, len(stream), 32768):
            await parser.parse(stream[start : start + 32768])

    asyncio.run(feed())
    [(_, _, _, data, _)] = sink.got
    assert json.loads(data) == doc and data.decode() == payload.decode()
