"""``Client``: nats-py's client with fewer copies of a large message, in and out.

A bus message is megabytes of Arrow. nats-py handles every message as a small one:

- publishing, ``hpub_cmd`` joins the command line, the headers, the payload and a CRLF into
  one new ``bytes`` (two copies of the payload, holding the GIL);
- receiving, the parser appends each 32 KiB read to a growing ``bytearray`` (reallocated as
  it grows), then cuts the payload out with a slice and a ``bytes`` of it (two more copies).

Here a large payload is queued as its own buffer beside the command line (no copy in the
client; the transport may still join what it writes at once), and received into one buffer
of its size as the reads arrive (one copy); the message's ``data`` is that ``bytearray``,
its payload 8-byte aligned, so that ``json.loads``, ``decode()`` and Arrow all take it as
they take ``bytes``. Small messages (API replies, acks, heartbeats) take nats-py's own path
unchanged. The protocol is the same byte for byte; the bus contract suite runs over this
client against a real ``nats-server``.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import _CRLF_, _HEADER_KEY_RE, _HEADER_VALUE_NEWLINES, NATS_HDR_LINE
from nats.aio.client import Client as _NatsClient
from nats.errors import BadHeaderError, BadSubjectError
from nats.protocol.parser import AWAITING_CONTROL_LINE, AWAITING_MSG_PAYLOAD, CRLF_SIZE, Parser

#: from this many payload bytes a message is handled without nats-py's copies
LARGE = 256 << 10


class Client(_NatsClient):
    """nats-py's ``Client``; large payloads are published and received with fewer copies."""

    def __init__(self) -> None:
        super().__init__()
        self._ps = _Parser(self)

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: Any,
        payload_size: int,
        headers: dict[str, Any] | None,
    ) -> None:
        if payload_size < LARGE:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        if subject == "":
            raise BadSubjectError
        if headers is None:
            line = f"PUB {subject} {reply} {payload_size}\r\n".encode()
        else:
            hdr = _header_block(headers)
            size = len(hdr) + payload_size
            line = f"HPUB {subject} {reply} {len(hdr)} {size}\r\n".encode() + hdr
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        # the three parts in one step: nothing can come between them in the outgoing queue
        pending: list[Any] = self._pending  # written with ``writelines``: any buffer goes
        pending.extend((line, memoryview(payload), _CRLF_))
        self._pending_data_size += len(line) + payload_size + CRLF_SIZE
        if self._max_pending_size > 0 and self._pending_data_size > self._max_pending_size:
            await self._flush_pending(force_flush=True)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()


def _header_block(headers: dict[str, Any]) -> bytes:
    """The NATS/1.0 header block, as nats-py writes it."""
    hdr = bytearray(NATS_HDR_LINE)
    hdr.extend(_CRLF_)
    for k, v in headers.items():
        key = k.strip()
        if not key:
            continue
        if not _HEADER_KEY_RE.fullmatch(key):
            raise BadHeaderError(key)
        hdr.extend(key.encode())
        hdr.extend(b": ")
        hdr.extend(v.strip().translate(_HEADER_VALUE_NEWLINES).encode())
        hdr.extend(_CRLF_)
    hdr.extend(_CRLF_)
    return bytes(hdr)


class _Parser(Parser):
    """nats-py's parser, except that a large payload is gathered into one buffer of its size
    as the reads arrive, instead of into the growing parse buffer."""

    def reset(self) -> None:
        super().reset()
        self._body: bytearray | None = None
        self._pad = 0
        self._filled = 0

    async def parse(self, data: bytes = b"") -> None:
        if (
            self._body is None
            and self.state == AWAITING_MSG_PAYLOAD
            and self.needed >= LARGE
            and len(self.buf) + len(data) < self.needed + CRLF_SIZE
        ):
            # the control line is read and the payload has begun: take what the parse
            # buffer holds of it, then the reads as they come
            # the payload starts 8-byte aligned in the buffer (headers before it, padding
            # before them), so that the Arrow columns read from it in place are aligned
            self._pad = -self.header_needed % 8
            self._body = bytearray(self._pad + self.needed + CRLF_SIZE)
            self._filled = self._pad + len(self.buf)
            self._body[self._pad : self._filled] = self.buf
            self.buf.clear()
        if self._body is None:
            await super().parse(data)
            return
        room = len(self._body) - self._filled
        if len(data) < room:
            self._body[self._filled : self._filled + len(data)] = data
            self._filled += len(data)
            return
        self._body[self._filled :] = memoryview(data)[:room]
        body, self._body = self._body, None
        await self._dispatch(body)
        await super().parse(bytes(memoryview(data)[room:]))

    async def _dispatch(self, body: bytearray) -> None:
        """Hand a gathered message on, as nats-py's parser does: the buffer itself becomes
        the payload, cut down in place (CPython drops a ``bytearray``'s head by moving its
        start, and its tail by shortening it: no copy, the alignment kept)."""
        hdr = None
        start = self._pad
        if self.header_needed > 0:
            hdr = bytes(body[start : start + self.header_needed])
            start += self.header_needed
            self.header_needed = 0
        del body[self._pad + self.needed :]  # the CRLF
        del body[:start]
        self.state = AWAITING_CONTROL_LINE
        arg = self.msg_arg
        await self.nc._process_msg(arg["sid"], arg["subject"], arg["reply"], body, hdr)
