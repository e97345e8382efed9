"""What ``minutely.bus.nats.client`` takes from nats-py's private parts still holds: the
release is the one pyproject.toml bounds, the names and attributes it uses exist, a large
message published our way is byte for byte what nats-py would queue, and our parser hands
on what nats-py's own parser does. A nats-py release that moves any of this fails here."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import nats.aio.client as nats_client
import pytest
from nats.protocol import parser as nats_parser

from minutely.bus.nats.client import LARGE, Client, _Parser
from tests.pins import assert_tested_release


def test_nats_py_is_the_release_pyproject_bounds() -> None:
    assert_tested_release("nats-py")


def test_the_private_names_exist() -> None:
    for name in ("_CRLF_", "_HEADER_KEY_RE", "_HEADER_VALUE_NEWLINES", "NATS_HDR_LINE"):
        assert hasattr(nats_client, name), name
    for name in ("AWAITING_CONTROL_LINE", "AWAITING_MSG_PAYLOAD", "CRLF_SIZE"):
        assert hasattr(nats_parser, name), name
    send = inspect.signature(nats_client.Client._send_publish).parameters
    assert list(send)[1:] == ["subject", "reply", "payload", "payload_size", "headers"]
    assert "force_flush" in inspect.signature(nats_client.Client._flush_pending).parameters
    process = inspect.signature(nats_client.Client._process_msg).parameters
    assert list(process)[1:6] == ["sid", "subject", "reply", "data", "headers"]
    client = nats_client.Client()
    for name in ("_pending", "_pending_data_size", "_max_pending_size", "_flush_queue", "stats"):
        assert hasattr(client, name), name
    parser = nats_parser.Parser(client)
    for name in ("buf", "state", "needed", "header_needed", "msg_arg", "nc"):
        assert hasattr(parser, name), name


def queued(client: Any, publish: Any, payload: bytes, headers: dict[str, str] | None) -> bytes:
    """What ``publish`` (a ``_send_publish``) leaves in a fresh client's outgoing queue."""
    asyncio.run(publish(client, "minutely.points.3", "", payload, len(payload), headers))
    assert client._pending_data_size == sum(len(p) for p in client._pending)
    assert client.stats["out_msgs"] == 1 and client.stats["out_bytes"] == len(payload)
    return b"".join(bytes(p) for p in client._pending)


@pytest.mark.parametrize("headers", [None, {"Nats-Msg-Id": " k-1 ", "X-Two": "a\r\nb"}])
def test_a_large_publish_queues_what_nats_py_would(headers: dict[str, str] | None) -> None:
    payload = bytes(range(256)) * (LARGE // 256 + 3)
    ours = queued(Client(), Client._send_publish, payload, headers)
    theirs = queued(nats_client.Client(), nats_client.Client._send_publish, payload, headers)
    assert ours == theirs


class Sink:
    """Stands in for the client: records what a parser hands on."""

    def __init__(self) -> None:
        self.got: list[tuple[int, bytes, bytes, bytes, bytes | None]] = []

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: Any, headers: bytes | None
    ) -> None:
        self.got.append((sid, subject, reply, bytes(data), headers))


def test_our_parser_hands_on_what_nats_py_does() -> None:
    headers = b"NATS/1.0\r\nNats-Msg-Id: k\r\n\r\n"
    stream = b""
    for sid, size in enumerate([10, LARGE + 5, 0, LARGE * 3, 100]):
        payload = bytes([sid]) * size
        if sid % 2:
            line = b"HMSG s.%d %d %d %d\r\n" % (sid, sid, len(headers), len(headers) + size)
            stream += line + headers + payload + b"\r\n"
        else:
            stream += b"MSG s.%d %d r.%d %d\r\n" % (sid, sid, sid, size) + payload + b"\r\n"

    def parse(parser_type: Any) -> list[tuple[int, bytes, bytes, bytes, bytes | None]]:
        sink = Sink()
        parser = parser_type(sink)

        async def feed() -> None:
            for start in range(0, len(stream), 32768):
                await parser.parse(stream[start : start + 32768])

        asyncio.run(feed())
        return sink.got

    theirs = parse(nats_parser.Parser)
    assert len(theirs) == 5
    assert parse(_Parser) == theirs
