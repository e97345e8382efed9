"""``FakeClock``: an injectable wall clock for tests, which moves only when told to.

Every part of minutely that reads the time takes a ``clock`` (a callable returning unix
seconds); tests give them one of these, so windows and expiry are tested without sleeping.
"""

from __future__ import annotations

import asyncio


class FakeClock:
    """Unix seconds that stand still until ``advance`` (or ``now = …``, or ``sleep``)."""

    def __init__(self, now: float = 1_764_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds``; returns the new time."""
        self.now += seconds
        return self.now

    async def sleep(self, seconds: float) -> None:
        """An ``asyncio.sleep`` that moves this clock instead of waiting."""
        self.now += seconds
        await asyncio.sleep(0)
