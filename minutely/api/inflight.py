"""The ASGI middleware that keeps the request bodies in flight within ``limits.BodyBudget``.

A request that declares its length (``Content-Length``) takes that many bytes from the
budget before the app reads any of it, and is answered 429 with ``Retry-After``, naming
``max_inflight_body_bytes``, if they do not fit; a chunked body takes its bytes as each
chunk arrives, and one that stops fitting is refused the same way (by its route, in its
protocol's shape, as backpressure; or here if the route lets the error through). The bytes
are given back when the app has answered, since a body is held until then.

A body declared larger than the whole budget is left to its route, which refuses it as over
``max_body_bytes`` (never above the budget: ``Settings`` checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minutely.api import render
from minutely.errors import BodyBytesLimit
from minutely.limits import BodyBudget


def _declared_length(scope: Scope) -> int:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


class BodyBudgetGuard:
    """Takes each request's body bytes from ``budget`` (see the module docstring);
    ``on_refusal`` is called with each refusal it answers, to count it."""

    def __init__(
        self, app: ASGIApp, budget: BodyBudget, on_refusal: Callable[[BaseException], None]
    ) -> None:
        self.app = app
        self.budget = budget
        self.on_refusal = on_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self.budget
        declared = _declared_length(scope)
        if declared > budget.max_bytes:
            declared = 0  # the route refuses it whole, over max_body_bytes, without reading it
        try:
            budget.take(declared)
        except BodyBytesLimit as e:
            await self._refuse(send, e)
            return
        held = declared
        started = False

        async def counted() -> Message:
            nonlocal held
            message = await receive()
            if message["type"] == "http.request" and not declared:
                n = len(message.get("body", b""))
                budget.take(n)  # a chunked body: raises BodyBytesLimit once it stops fitting
                held += n
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyBytesLimit as e:
            if started:
                raise
            await self._refuse(send, e)
        finally:
            budget.give(held)

    async def _refuse(self, send: Send, error: BodyBytesLimit) -> None:
        self.on_refusal(error)
        retry = str(max(1, math.ceil(error.retry_after)))
        body = render.dumps({"error": f"{error}; retry after {retry}s"})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", retry.encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
