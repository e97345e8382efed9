"""Query-string parsing for the API: times, steps and name filters, with errors that name the
parameter.

Times accept unix seconds (``1764000000`` or ``1764000000.5``), RFC 3339
(``2025-11-24T16:00:00Z``; a time without an offset is UTC), or a form relative to now:
``now``, ``-2d``, ``-90m``, ``-30s``, ``-6h``, ``-1w``. Both ends are floored to the minute.

Relative forms count back from the *end of the current minute*: ``now`` is the start of the
next minute, so the current (still filling) minute is inside ``[start, now)``, and the default
range ``[-2d, now)`` is exactly the last 2,880 minutes, the current one included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from minutely import query
from minutely.errors import BadParameter

_RELATIVE = re.compile(r"^now\s*$|^(?:now)?\s*-\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

DEFAULT_START = "-2d"
DEFAULT_END = "now"

#: the times a question may name: 1970 to the end of year 9999 (beyond, arithmetic on them
#: overflows the 64-bit integers every answer is made of)
LATEST = 253_402_300_799
#: the largest step: a hundred years, far past any range a store keeps
MAX_STEP = query.MAX_STEP


def parse_time(param: str, text: str, now: float) -> int:
    """Unix seconds for ``text``, floored to the minute."""
    raw = text.strip()
    if not raw:
        raise BadParameter(param=param, problem="is empty")
    m = _RELATIVE.match(raw)
    if m:
        seconds = 0.0 if m.group(1) is None else float(m.group(1)) * _UNIT[m.group(2)]
        value = (now // 60) * 60 + 60 - seconds
    else:
        try:
            value = float(raw)
        except ValueError:
            value = _rfc3339(param, raw)
    if not math.isfinite(value):
        raise BadParameter(param=param, problem=f"{text!r} is not a finite time")
    if not 0 <= value <= LATEST:
        problem = f"{text!r} is outside 1970-01-01 .. 9999-12-31 (unix seconds 0 .. {LATEST})"
        raise BadParameter(param=param, problem=problem)
    return int(value // 60) * 60


def _rfc3339(param: str, raw: str) -> float:
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        problem = (
            f"{raw!r} is not a time: use unix seconds, RFC 3339 (2025-11-24T16:00:00Z) "
            "or a relative form (now, -2d, -90m, -30s)"
        )
        raise BadParameter(param=param, problem=problem) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_step(text: str | None) -> int:
    """Step in seconds: a positive multiple of 60 (default 60)."""
    if text is None:
        return 60
    try:
        step = int(text)
    except ValueError:
        raise BadParameter(
            param="step", problem=f"{text!r} is not a whole number of seconds"
        ) from None
    if step <= 0 or step % 60:
        raise BadParameter(param="step", problem=f"{step} is not a positive multiple of 60 seconds")
    if step > MAX_STEP:
        raise BadParameter(param="step", problem=f"{step} is over the limit of {MAX_STEP} seconds")
    return step


def parse_range(query: Mapping[str, str], now: float) -> tuple[int, int]:
    """``(start, end)`` from the ``start`` and ``end`` parameters (defaults: -2d, now)."""
    start = parse_time("start", query.get("start", DEFAULT_START), now)
    end = parse_time("end", query.get("end", DEFAULT_END), now)
    if end <= start:
        raise BadParameter(
            param="end", problem=f"{end} is not after start {start} (after flooring to minutes)"
        )
    return start, end


def parse_fields(
    text: str | None, allowed: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    """The arrays a series answer carries: ``fields=avg,count`` (default: min, max, avg, count)."""
    if text is None:
        return default
    wanted = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in wanted if f not in allowed]
    if unknown or not wanted:
        problem = f"{text!r} is not a list of {', '.join(allowed)}"
        raise BadParameter(param="fields", problem=problem)
    return wanted
