"""``call``: one HTTP request sent to an ASGI app in process, with no socket and no client
library, for the long fuzz pass (``bench/bench_fuzz.py``), whose cost per case is then the
app's own.

The request is one ``http.request`` message holding the whole body; after it, ``receive``
waits until the answer is complete, so a streamed answer is never cut short by a disconnect.
An answer that is not complete within ``timeout`` seconds is a hang: ``Hang`` is raised.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

ASGI = {"version": "3.0", "spec_version": "2.4"}


class Hang(Exception):
    """The app did not finish its answer within the timeout."""


@dataclass
class Answer:
    """What the app sent back: status, headers (names lower case) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


async def call(
    app: Any,
    method: str,
    path: str,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    *,
    host: bytes = b"testserver",
    timeout: float = 30.0,
) -> Answer:
    """Send one request to ``app``; ``path`` is as sent on the wire (percent-encoded)."""
    raw_path = path.encode("latin-1")
    scope = {
        "type": "http",
        "asgi": ASGI,
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("utf-8", "replace"),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", host), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    done = asyncio.Event()
    sent = False
    status = 0
    answer_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for k, v in message.get("headers", []):
                answer_headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                done.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), timeout)
    except TimeoutError:
        done.set()
        msg = f"no complete answer to {method} {path} within {timeout:g} s"
        raise Hang(msg) from None
    done.set()
    return Answer(status, answer_headers, b"".join(chunks))
