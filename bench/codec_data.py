"""Minute partials made from per-second points, for the codec benchmark and tests.

- ``issue_mix``: the fleet mix of issue 15 and docs/hot-ring.md (CPU %, memory bytes,
  counters, constant-ish series, 1–2-decimal gauges, full-precision ratios), each series'
  raw seconds generated and folded into minutes as the ring folds them (``s += v`` in
  arrival order), with 0.5 % of minutes one point short.
- ``sim_fleet``: the simulator's fleet (``minutely.sim.Fleet``) over the same minutes,
  folded the same way: each metric at its agent's resolution, or every gauge and percent
  unrounded with ``full_precision``.
"""

from __future__ import annotations

import numpy as np

from minutely.model import Partials
from minutely.sim import EPOCH, Fleet

#: (kind, share of series) of the issue's mix
MIX = (
    ("cpu_percent", 0.30),
    ("memory_bytes", 0.15),
    ("counter", 0.30),
    ("constant", 0.10),
    ("gauge_decimal", 0.10),
    ("full_precision", 0.05),
)


def fold_seconds(raw: np.ndarray, short: np.ndarray | None = None) -> Partials:
    """``(series, minutes, 60)`` seconds folded into ``(series, minutes)`` partials, the sum
    added in arrival order as the ring's fold adds it; ``short`` marks minutes whose last
    second never arrived."""
    mn = raw[:, :, 0].copy()
    mx = raw[:, :, 0].copy()
    sm = raw[:, :, 0].copy()
    ct = np.full(mn.shape, raw.shape[2], np.uint32)
    for k in range(1, raw.shape[2]):
        v = raw[:, :, k]
        if short is not None and k == raw.shape[2] - 1:
            v = np.where(short, np.nan, v)
            keep = ~short
            np.fmin(mn, v, out=mn)
            np.fmax(mx, v, out=mx)
            sm[keep] += v[keep]
            ct[short] -= 1
            continue
        np.minimum(mn, v, out=mn)
        np.maximum(mx, v, out=mx)
        sm += v
    return Partials(mn, mx, sm, ct)


def _kind_seconds(kind: str, rng: np.random.Generator, rows: int, seconds: int) -> np.ndarray:
    t = np.arange(seconds)
    if kind == "cpu_percent":
        level = rng.uniform(2, 60, (rows, 1))
        walk = np.cumsum(rng.normal(0, 0.02, (rows, seconds)), axis=1)
        noise = rng.normal(0, rng.uniform(0.5, 5, (rows, 1)), (rows, seconds))
        return np.round(np.clip(level + walk + noise, 0, 100), 2)
    if kind == "memory_bytes":
        level = rng.uniform(1e9, 6e10, (rows, 1)) // 4096
        step = rng.integers(-64, 65, (rows, seconds)) * (rng.random((rows, seconds)) < 0.3)
        return (level + np.cumsum(step, axis=1)) * 4096.0
    if kind == "counter":
        rate = np.exp(rng.uniform(0, np.log(1e6), (rows, 1)))
        inc = rng.poisson(rate * rng.lognormal(0, 0.2, (rows, seconds)).clip(0.1, 10))
        return np.cumsum(inc, axis=1).astype(np.float64) + rng.integers(0, 1 << 30, (rows, 1))
    if kind == "constant":
        value = rng.choice([0.0, 1.0, 16.0, 64.0, 1024.0], (rows, 1))
        flips = (rng.random((rows, seconds)) < 1e-5).cumsum(axis=1) % 2
        return value + flips
    if kind == "gauge_decimal":
        decimals = rng.integers(1, 3, (rows, 1))
        level = rng.uniform(0, 80, (rows, 1))
        wave = 5 * np.sin(2 * np.pi * t / 86_400 + rng.uniform(0, 6, (rows, 1)))
        noise = rng.normal(0, 0.3, (rows, seconds))
        v = level + wave + noise
        return np.where(decimals == 1, np.round(v, 1), np.round(v, 2))
    # full precision: a ratio of two noisy quantities
    a = rng.uniform(1, 100, (rows, 1)) + rng.normal(0, 1, (rows, seconds))
    return a / (a + rng.uniform(1, 100, (rows, 1)))


def issue_mix(series: int, minutes: int, seed: int = 0) -> tuple[Partials, list[str]]:
    """``series × minutes`` partials of the issue's mix, and each series' kind."""
    rng = np.random.default_rng(seed)
    kinds: list[str] = []
    for kind, share in MIX:
        kinds += [kind] * round(series * share)
    kinds = (kinds + ["cpu_percent"] * series)[:series]
    out = Partials.zeros((series, minutes))
    chunk = max(1, (1 << 23) // (minutes * 60))
    for kind in dict.fromkeys(kinds):
        rows = np.flatnonzero(np.array(kinds) == kind)
        for a in range(0, rows.shape[0], chunk):
            at = rows[a : a + chunk]
            raw = _kind_seconds(kind, rng, at.shape[0], minutes * 60)
            short = rng.random((at.shape[0], minutes)) < 0.005
            parts = fold_seconds(raw.reshape(at.shape[0], minutes, 60), short)
            for dst, src in zip(out.fields(), parts.fields(), strict=True):
                dst[at] = src
    return out, kinds


def sim_fleet(
    metrics: int, minutes: int, seed: int = 0, *, full_precision: bool = False
) -> tuple[Partials, list[str]]:
    """One simulated server's ``metrics`` series over ``minutes`` minutes at 1 Hz, and each
    series' kind."""
    fleet = Fleet(1, metrics, seed=seed, full_precision=full_precision)
    out = Partials.zeros((metrics, minutes))
    t0 = int(EPOCH) // 3600 * 3600 + 86_400
    hour = 60
    for m0 in range(0, minutes, hour):
        m1 = min(minutes, m0 + hour)
        batch = fleet.batch_by_series(t0 + m0 * 60, (m1 - m0) * 60)
        raw = batch.value.reshape(metrics, m1 - m0, 60)
        parts = fold_seconds(raw)
        for dst, src in zip(out.fields(), parts.fields(), strict=True):
            dst[:, m0:m1] = src
    return out, [str(k) for k in fleet.metric_kinds]
