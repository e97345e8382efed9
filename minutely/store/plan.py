"""Which tier answers which part of a range: the planner's pure core.

A read asks for minutes ``[first, first + n)`` in buckets of ``step`` minutes, bucket ``b``
covering ``[first + b·step, first + (b+1)·step)``. A cell of a coarser tier may answer for its
minutes only if it lies wholly inside the range and wholly inside one bucket; then its partial
is exactly the merge of its minutes' partials, so the answer is the same as from the 1-minute
tier, with up to 1,440 times fewer rows read. The range is covered greedily, coarse to fine::

    first                                                               first + n
      |-- 1m --|------ 1h ------|============ 1d ============|-- 1h --|- 1m -|
               ^ hour boundary  ^ day boundary               ^ day    ^ hour

A tier is usable when no bucket boundary cuts one of its cells: always for a single bucket
(a summary), otherwise when both ``first`` and ``step`` are multiples of its cell. Segments
are disjoint and cover the range exactly, so no minute is read twice or missed.
"""

from __future__ import annotations

from typing import NamedTuple

from minutely.store.tiers import TIER_1M, TIERS, Tier


class Segment(NamedTuple):
    """Minutes ``[first, last)`` read from ``tier``; both ends are multiples of its cell."""

    tier: Tier
    first: int
    last: int


def plan(first: int, n: int, step: int) -> list[Segment]:
    """Disjoint segments, in time order, that cover ``[first, first + n)`` exactly."""
    if step <= 0:
        msg = f"step of {step} minutes is not positive"
        raise ValueError(msg)
    if n <= 0:
        return []
    usable = [t for t in TIERS if n <= step or (step % t.minutes == 0 and first % t.minutes == 0)]
    return _cover(first, first + n, usable)


def clamp(segments: list[Segment], horizons: dict[str, int]) -> list[Segment]:
    """Drop each tier's minutes before its horizon (the first minute it still keeps)."""
    out = []
    for seg in segments:
        lo = max(seg.first, horizons.get(seg.tier.name, seg.first))
        if lo < seg.last:
            out.append(Segment(seg.tier, lo, seg.last))
    return out


def _cover(lo: int, hi: int, tiers: list[Tier]) -> list[Segment]:
    if lo >= hi:
        return []
    tier, finer = tiers[0], tiers[1:]
    if tier is TIER_1M:
        return [Segment(tier, lo, hi)]
    size = tier.minutes
    a = -(-lo // size) * size
    b = hi // size * size
    if a >= b:
        return _cover(lo, hi, finer)
    return [*_cover(lo, a, finer), Segment(tier, a, b), *_cover(b, hi, finer)]
