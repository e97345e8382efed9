"""Calls made on the event loop's worker threads that leave an idle thread holding nothing.

A worker thread of anyio before 4.16 keeps the function, arguments and result of the job it
last ran until it is given the next one, and 4.16 drops them only after the caller has been
woken: a request's body, or the batch decoded from it, then stays in memory for as long as
that thread idles. ``run`` hands the thread a job that lets go of the function (and so of
everything it closes over) as soon as it has been called, and passes the result or the
exception back through the job, which is emptied once the call is done. So whatever the
anyio version, what a call held is freed as soon as its caller lets go of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class _Job(Generic[T]):
    """One call, run once; ``run`` takes its outcome."""

    __slots__ = ("call", "error", "result")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call: Callable[[], T] | None = call
        self.result: T | None = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        call, self.call = self.call, None
        if call is None:  # pragma: no cover - a job is handed to one thread once
            msg = "a worker job ran twice"
            raise RuntimeError(msg)
        try:
            self.result = call()
        except BaseException as e:  # re-raised where the job was awaited
            self.error = e


async def run(call: Callable[[], T]) -> T:
    """``call()`` on a worker thread; the thread keeps no reference to it or its outcome."""
    job = _Job(call)
    try:
        await run_in_threadpool(job)
    finally:  # emptied even when the caller is cancelled while the thread runs
        result, error = job.result, job.error
        job.result = job.error = None
    if error is not None:
        try:
            raise error
        finally:
            del error  # else this frame and the error's traceback would hold each other
    return result  # type: ignore[return-value]
