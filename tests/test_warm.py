"""``warm.compiled`` leaves nothing for a node's first folds and reads to compile: after it, a
ring at the default hour blocks folds, seals, compacts, merges late partials and answers at
every step without one new compiled signature (which would be a compile under the ring's
lock, seconds on a fresh install)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from minutely.testing.processes import clean_env

SCRIPT = textwrap.dedent(
    """
    import numba
    import numpy as np
    from minutely import buckets, counters, ringcodec, warm
    from minutely.hot import HotRing
    from minutely.model import Partials

    def signatures():
        return {
            f"{mod.__name__}.{name}": set(d.signatures)
            for mod in (buckets, counters, ringcodec)
            for name, d in vars(mod).items()
            if isinstance(d, numba.core.registry.CPUDispatcher)
        }

    warm.compiled()
    before = signatures()
    ring = HotRing(minutes=720, capacity=256, block=128)
    series = np.arange(200, dtype=np.int32)
    rng = np.random.default_rng(1)
    for minute in range(800):
        ring.fold(series, np.full(200, minute, np.int64), rng.normal(size=200).round(2))
    assert ring.seal_stats.sealed and ring.seal_stats.compacted, ring.seal_stats
    late = Partials(np.ones(200), np.ones(200), np.ones(200), np.ones(200, np.uint32))
    ring.merge_partials(series, np.full(200, 200, np.int64), late)
    for step in (1, 60, 720):
        ring.read_buckets(series[::3], 80, 720, step)
    block = Partials.zeros((67, 720))
    ring.merge_buckets(series[::3], 80, 720, 1, block, overwrite=True)  # as Query asks
    ring.close()
    state = counters.CounterState()
    state.increases(series[::-1].copy(), np.arange(200.0), np.arange(200.0))
    state.increases(series, np.zeros(200), np.ones(200))
    after = signatures()
    new = {k: after[k] - before.get(k, set()) for k in after if after[k] - before.get(k, set())}
    assert not new, f"compiled after the warm-up: {new}"
    print("no new signatures in", len(after), "kernels")
    """
)


def test_nothing_compiles_after_the_warm_up() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no new signatures" in done.stdout
