"""``LoopThread``: an asyncio loop on a daemon thread, for the nats client.

Built without side effects; ``start`` makes the loop and starts the thread, ``stop`` ends
both. Other threads hand it work with ``submit``, ``call`` (blocking, with a timeout) and
``call_soon``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from minutely.errors import Unavailable

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when present (uvicorn[standard] brings it): its transports write and read the
    client's megabyte payloads in C, which the default loop does in Python."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a plain install without uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """An asyncio loop on a daemon thread named ``name``, once ``start`` has run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            msg = f"loop thread {self.name} was started already"
            raise RuntimeError(msg)
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = self._started()[0]
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _started(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        if self._loop is None or self._thread is None:
            msg = f"loop thread {self.name} is not started"
            raise RuntimeError(msg)
        return self._loop, self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; its result in a thread-safe future."""
        loop, _ = self._started()
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for it; ``Unavailable`` after ``timeout`` s."""
        loop, thread = self._started()
        if threading.current_thread() is thread:
            coro.close()
            msg = "NatsBus blocking call made from its own event loop thread"
            raise RuntimeError(msg)
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as e:
            if future.done():  # a request of the coroutine's own timed out (the same class)
                msg = f"a NATS request timed out: {e!r}"
                raise Unavailable(msg) from e
            future.cancel()
            msg = f"NATS did not answer within {timeout} s"
            raise Unavailable(msg) from None

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop, soon; from any thread."""
        loop, _ = self._started()
        loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        """Stop the loop and wait for its thread; nothing if it never started."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
