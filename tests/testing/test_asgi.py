"""``asgi.call``: a request to an ASGI app in process gets the whole answer, streamed or not,
and an answer that does not finish in time is a ``Hang``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from minutely.testing.asgi import Hang, call


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.query_params.getlist("x"),
            "body": body.decode(),
            "type": request.headers.get("content-type"),
            "host": request.headers.get("host"),
        },
        status_code=201,
    )


async def stream(request: Request) -> Response:
    def chunks() -> Iterator[bytes]:
        for i in range(50):
            yield b"%d," % i

    return StreamingResponse(chunks(), media_type="text/plain")


async def slow(request: Request) -> Response:
    await asyncio.sleep(60)
    return Response(b"late")


APP = Starlette(
    routes=[
        Route("/echo/{name:path}", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/slow", slow),
    ]
)


def test_a_request_reaches_the_app_as_sent() -> None:
    answer = asyncio.run(
        call(APP, "POST", "/echo/a%2Fb", b"x=1&x=%C3%A9", [(b"content-type", b"text/x")], b"hi")
    )
    assert answer.status == 201
    assert answer.headers["content-type"] == "application/json"
    assert answer.body == (
        b'{"path":"/echo/a/b","query":["1","\xc3\xa9"],"body":"hi","type":"text/x",'
        b'"host":"testserver"}'
    )


def test_a_streamed_answer_arrives_whole() -> None:
    answer = asyncio.run(call(APP, "GET", "/stream"))
    assert answer.status == 200
    assert answer.body == b"".join(b"%d," % i for i in range(50))


def test_an_answer_not_finished_in_time_is_a_hang() -> None:
    with pytest.raises(Hang, match=r"GET /slow within 0\.2 s"):
        asyncio.run(call(APP, "GET", "/slow", timeout=0.2))
