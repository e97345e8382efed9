"""``Query`` over a hot ring and a store: a bucket that straddles the seam merges the store's
minutes and the ring's exactly once each, and a failed store read fails the question.

The store is a fake that answers from the same minute partials the ring is not given, so the
ground truth is the merge of every minute in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from minutely.hot import HotRing
from minutely.model import I32, MINUTE, Partials, PointBatch
from minutely.pool import BlockPool
from minutely.query import Query
from minutely.registry import Registry
from minutely.store import StoreError
from minutely.store.reader import CellBlock, SeriesCells

METRICS = 6
#: the ring's window: minutes [HEAD - WINDOW + 1, HEAD], from the start of that minute's hour
#: (the ring seals hours: its window is longer than its open slots)
WINDOW = 90
HEAD = 10_000
OLDEST = (HEAD - WINDOW + 1) // 60 * 60


class MinuteStore:
    """A store holding ``parts[:, k]`` for minute ``first + k`` of every metric (id = row)."""

    def __init__(self, first: int, parts: Partials) -> None:
        self.first = first
        self.parts = parts
        self.fail = False
        self.reads = 0

    def read(
        self, by: str, key_id: int, other_ids: object, first: int, n: int, step: int
    ) -> SeriesCells:
        if self.fail:
            msg = "the engine is gone"
            raise StoreError(msg)
        self.reads += 1
        held_to = self.first + self.parts.count.shape[1]  # minutes after it are empty
        minutes = np.arange(max(first, self.first), min(first + n, held_to))
        cols = minutes - self.first
        blocks = []
        for metric in range(METRICS):
            held = self.parts.take(np.s_[metric, cols])
            buckets = (minutes - first) // step
            for b in np.unique(buckets).tolist():
                sel = (buckets == b) & (held.count > 0)
                if not sel.any():
                    continue
                cell = Partials(
                    np.array([held.min[sel].min()]),
                    np.array([held.max[sel].max()]),
                    np.array([held.sum[sel].sum()]),
                    np.array([held.count[sel].sum()], np.uint32),
                )
                blocks.append(
                    CellBlock(np.array([metric], np.uint32), np.array([b], np.uint32), cell)
                )
        return SeriesCells(blocks)


def random_minutes(rng: np.random.Generator, shape: tuple[int, int]) -> Partials:
    count = rng.integers(0, 4, shape).astype(np.uint32)  # a quarter of the minutes empty
    low = np.round(rng.normal(50, 10, shape), 2)
    high = low + np.round(rng.random(shape) * 5, 2)
    return Partials(low, high, np.round(count * (low + high) / 2, 2), count)


def web_registry() -> tuple[Registry, I32]:
    """Server ``web`` with metrics ``m0`` .. ``m5``, and their series ids."""
    registry = Registry()
    names = PointBatch.from_names(
        np.array(["web"] * METRICS, dtype=object),
        np.array([f"m{i}" for i in range(METRICS)], dtype=object),
        np.zeros(METRICS),
        np.zeros(METRICS),
    )
    return registry, registry.series_ids(names)


def setup(
    rng: np.random.Generator, pool: BlockPool | None = None
) -> tuple[Query, MinuteStore, Partials, int]:
    registry, series = web_registry()
    first = HEAD - 400  # the store's oldest minute
    truth = random_minutes(rng, (METRICS, HEAD + 1 - first))
    oldest = OLDEST
    ring = HotRing(minutes=WINDOW, capacity=METRICS)
    in_ring = np.arange(oldest, HEAD + 1)
    ring_parts = truth.take(np.s_[:, in_ring - first])
    ring.load(
        np.repeat(series, len(in_ring)),
        np.tile(in_ring, METRICS),
        Partials(*(f.reshape(-1) for f in ring_parts.fields())),
        distinct=True,
    )
    assert ring.oldest_minute() == oldest
    store = MinuteStore(first, truth.take(np.s_[:, : oldest - first]))
    query = Query(registry, ring, store, pool=pool)  # type: ignore[arg-type]
    return query, store, truth, first


@pytest.mark.parametrize("step_minutes", [1, 7, 60, 1440])
def test_buckets_across_the_seam_merge_every_minute_once(step_minutes: int) -> None:
    query, _, truth, first = setup(np.random.default_rng(step_minutes))
    start, end = (first + 13) * MINUTE, (HEAD + 1) * MINUTE
    a = query.series("server", "web", start, end, step_minutes * MINUTE)
    minutes = np.arange(first, HEAD + 1)
    for i, label in enumerate(a.labels):
        row = int(label[1:])
        for j, ts in enumerate(a.timestamps.tolist()):
            sel = (minutes * MINUTE >= ts) & (minutes * MINUTE < ts + a.step)
            sel &= truth.count[row] > 0
            assert a.parts.count[i, j] == truth.count[row, sel].sum()
            if sel.any():
                assert a.parts.min[i, j] == truth.min[row, sel].min()
                assert a.parts.max[i, j] == truth.max[row, sel].max()
                assert a.parts.sum[i, j] == pytest.approx(truth.sum[row, sel].sum(), rel=1e-12)
    assert sorted(a.labels) == [f"m{i}" for i in range(METRICS)]


def test_a_failed_store_read_fails_the_question() -> None:
    query, store, _, first = setup(np.random.default_rng(5))
    store.fail = True
    with pytest.raises(StoreError, match="gone"):
        query.series("server", "web", first * MINUTE, (HEAD + 1) * MINUTE, 3600)


def test_answers_in_reused_memory_are_exact() -> None:
    pool = BlockPool(1 << 30, min_bytes=0)  # every block pooled, however small
    query, _, truth, first = setup(np.random.default_rng(9), pool)
    start, end = (HEAD - WINDOW + 1) * MINUTE, (HEAD + 1) * MINUTE  # the ring alone
    a = query.series("server", "web", start, end, MINUTE)
    fresh = [f.copy() for f in a.parts.fields()]
    a.parts.sum[...] = 3  # a caller may write its answer; the next one must not see it
    a.parts.count[...] = 3
    del a
    narrow = query.series("server", "web", start, end, 5 * MINUTE, only=["m1", "m4"])
    again = query.series("server", "web", start, end, MINUTE)
    assert pool.reused >= 1
    for got, want in zip(again.parts.fields(), fresh, strict=True):
        np.testing.assert_array_equal(got, want)
    cols = np.arange(HEAD - WINDOW + 1, HEAD + 1) - first
    for i, label in enumerate(again.labels):
        row = int(label[1:])
        np.testing.assert_array_equal(again.parts.count[i], truth.count[row, cols])
        held = truth.count[row, cols] > 0
        np.testing.assert_array_equal(again.parts.min[i][held], truth.min[row, cols][held])
        np.testing.assert_array_equal(again.parts.max[i][held], truth.max[row, cols][held])
        np.testing.assert_array_equal(again.parts.sum[i][held], truth.sum[row, cols][held])
        assert not again.parts.sum[i][~held].any()  # empty entries hold zeros, as fresh ones
    assert narrow.labels == ["m1", "m4"]
    assert not np.shares_memory(narrow.parts.sum, again.parts.sum)


def test_a_sealing_ring_answers_from_its_blocks_start_without_the_store() -> None:
    """A ring sealing blocks of 4 minutes holds the whole block its window starts in, so a
    question from that block's start (or aligned down to it by a step of 4 minutes) reads
    no store, and answers as the store does from every minute."""
    registry, series = web_registry()
    first = HEAD - 400
    truth = random_minutes(np.random.default_rng(21), (METRICS, HEAD + 1 - first))
    ring = HotRing(minutes=46, live_minutes=3, capacity=METRICS, block_minutes=4, summary_minutes=8,
                   grace_minutes=3, compact_minutes=8)  # fmt: skip
    assert ring.sealing
    minutes = np.arange(first, HEAD + 1)  # every stored minute: the ring keeps its window's
    ring.load(
        np.repeat(series, len(minutes)),
        np.tile(minutes, METRICS),
        Partials(*(f.reshape(-1) for f in truth.fields())),
        distinct=True,
    )
    oldest = 9952  # 46 minutes back from the head is 9955, in the block [9952, 9956)
    assert ring.oldest_minute() == oldest
    assert ring.memory()["series_minutes"] == METRICS * (HEAD + 1 - oldest)
    store = MinuteStore(first, truth)  # the store holds every minute, the ring's too
    query = Query(registry, ring, store)  # type: ignore[arg-type]
    empty = HotRing(minutes=46, capacity=METRICS)
    store_only = Query(registry, empty, MinuteStore(first, truth))  # type: ignore[arg-type]
    assert not query.touches_store(oldest * MINUTE)
    assert query.touches_store((oldest - 1) * MINUTE)
    end = (HEAD + 1) * MINUTE
    for start, step in ((oldest, 1), (oldest, 4), (HEAD - 45, 4), (oldest, 8)):
        a = query.series("server", "web", start * MINUTE, end, step * MINUTE)
        assert store.reads == 0, (start, step)
        b = store_only.series("server", "web", start * MINUTE, end, step * MINUTE)
        assert a.labels == b.labels and a.timestamps.tolist() == b.timestamps.tolist()
        assert a.timestamps[0] == oldest * MINUTE
        np.testing.assert_array_equal(a.parts.count, b.parts.count)
        full = b.parts.count > 0
        np.testing.assert_array_equal(a.parts.min[full], b.parts.min[full])
        np.testing.assert_array_equal(a.parts.max[full], b.parts.max[full])
        np.testing.assert_allclose(a.parts.sum[full], b.parts.sum[full], rtol=1e-12)
    want = truth.take(np.s_[:, oldest - first :])
    got = query.summary("server", "web", oldest * MINUTE, end)  # the fake has no summary
    rows = [int(label[1:]) for label in got.labels]
    held = want.count[rows] > 0
    np.testing.assert_array_equal(got.parts.count, want.count[rows].sum(axis=1))
    np.testing.assert_array_equal(got.parts.min, np.where(held, want.min[rows], np.inf).min(axis=1))
    np.testing.assert_array_equal(
        got.parts.max, np.where(held, want.max[rows], -np.inf).max(axis=1)
    )
    np.testing.assert_allclose(got.parts.sum, want.sum[rows].sum(axis=1), rtol=1e-12)


def test_answers_in_memory_left_dirty_equal_answers_in_fresh_memory() -> None:
    """An answer made in a buffer an earlier answer left full of garbage (NaNs, any bits,
    any counts) equals, all four fields bit for bit, the same answer in fresh zeroed
    memory: at step 1, where the ring's decode writes over the sealed minutes and the rest
    is zeroed first, and at coarser steps; over ranges before, across and past the window,
    with the live rows, a series the ring never saw and a filter."""
    registry, series = web_registry()
    first = HEAD - 400
    truth = random_minutes(np.random.default_rng(33), (METRICS, HEAD + 1 - first))
    ring = HotRing(minutes=46, live_minutes=3, capacity=METRICS, block_minutes=4, summary_minutes=8,
                   grace_minutes=3, compact_minutes=8)  # fmt: skip
    ids = series[:-1]  # the last metric is named but never reaches the ring
    minutes = np.arange(first, HEAD - 1)
    ring.load(
        np.repeat(ids, len(minutes)),
        np.tile(minutes, len(ids)),
        Partials(*(f[:-1].reshape(-1) for f in truth.take(np.s_[:, : HEAD - 1 - first]).fields())),
        distinct=True,
    )
    ring.fold(ids, np.full(len(ids), HEAD), np.arange(len(ids), dtype=np.float64))  # live
    assert ring.sealing and ring.oldest_minute() == 9952
    fresh = Query(registry, ring, None, pool=BlockPool(0))
    rng = np.random.default_rng(4)
    end = (HEAD + 1) * MINUTE
    asks = [
        (9952, end, 1, None),
        (9900, end + 600, 1, None),
        (9960, 9990 * MINUTE, 1, ["m2"]),
        (9900, 9940 * MINUTE, 1, None),
        (9900, end, 4, None),
        (9950, end, 7, ["m0", "m5"]),
    ]
    for start, stop, step, only in asks:
        pool = BlockPool(1 << 30, min_bytes=0)  # every block pooled, however small
        left = pool.unzeroed((METRICS, 200))  # larger than any answer here
        for f in left.fields():  # garbage where the next answer is made
            f.view(np.uint8)[...] = rng.integers(0, 256, f.view(np.uint8).shape, np.uint8)
        del left, f
        args = ("server", "web", start * MINUTE, stop, step * MINUTE, only)
        got = Query(registry, ring, None, pool=pool).series(*args)
        want = fresh.series(*args)
        assert pool.reused == 1, args
        assert got.labels == want.labels and got.timestamps.tolist() == want.timestamps.tolist()
        for g, w in zip(got.parts.fields(), want.parts.fields(), strict=True):
            u = np.uint32 if g.dtype == np.uint32 else np.uint64
            np.testing.assert_array_equal(g.view(u), w.view(u), err_msg=str(args))
