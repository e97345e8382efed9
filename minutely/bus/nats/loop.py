"""The nats client's private event loop, on a daemon thread; ``call`` blocks on it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from minutely.errors import Unavailable

T = TypeVar("T")


# -- the private event loop -----------------------------------------------------------------


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when present (uvicorn[standard] brings it): its transports write and read the
    client's megabyte payloads in C, which the default loop does in Python."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a plain install without uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """An asyncio loop on a daemon thread, for the nats client; ``call`` blocks on it."""

    def __init__(self, name: str) -> None:
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            msg = "NatsBus blocking call made from its own event loop thread"
            raise RuntimeError(msg)
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            msg = f"NATS did not answer within {timeout} s"
            raise Unavailable(msg) from None

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
