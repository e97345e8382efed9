"""The block store against a plain dense model: seal, compact, expire, merge late partials and
read at any step, and every full cell comes back bit for bit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minutely import blocks
from minutely.blocks import BlockStore
from minutely.model import Partials, merge, reduce_partials_by_key, restep

B = 4  # minutes per sealed block
SPAN = 8 * B  # minutes the tests cover
ROWS = 5


def cells(draw: st.DrawFn, shape: tuple[int, int]) -> Partials:
    """Decimal or arbitrary finite floats, some entries empty."""
    if draw(st.booleans()):
        d = draw(st.integers(0, 3))
        ints = hnp.arrays(np.int64, shape, elements=st.integers(-(10**5), 10**5))
        mn = draw(ints) / 10.0**d
        mx = mn + draw(ints) % 1000 / 10.0**d
    else:
        floats = st.floats(-1e9, 1e9, allow_subnormal=True)
        mn = draw(hnp.arrays(np.float64, shape, elements=floats))
        mx = mn + np.abs(draw(hnp.arrays(np.float64, shape, elements=floats)))
    ct = draw(hnp.arrays(np.uint32, shape, elements=st.sampled_from([0, 1, 60, 7])))
    sm = (mn + mx) * ct / 2 + draw(
        hnp.arrays(np.float64, shape, elements=st.sampled_from([0, 1e-9]))
    )
    return Partials(mn, mx, sm, ct)


def same(a: Partials, b: Partials) -> None:
    """Equal counts, and bit-equal min, max and sum where there is data."""
    np.testing.assert_array_equal(a.count, b.count)
    full = b.count > 0
    for x, y in zip(a.fields()[:3], b.fields()[:3], strict=True):
        assert (x[full].view(np.uint64) == y[full].view(np.uint64)).all()


def read_all(store: BlockStore, rows: int, pool: ThreadPoolExecutor | None = None) -> Partials:
    out = Partials.empty((rows, SPAN))
    store.read(np.arange(rows, dtype=np.int32), 0, SPAN, 1, out, pool)
    return out


def covered(store: BlockStore) -> npt.NDArray[np.bool_]:
    """Which minutes of the span some block holds."""
    out = np.zeros(SPAN, np.bool_)
    for b in store.blocks:
        out[b.start : b.end] = True
    return out


def held(model: Partials, sealed: npt.NDArray[np.bool_]) -> Partials:
    """The model with minutes no block holds emptied."""
    ct = np.where(sealed[None, :], model.count, 0).astype(np.uint32)
    return Partials(model.min, model.max, model.sum, ct)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_store_matches_a_dense_model(data: st.DataObject) -> None:
    split = blocks.SPLIT_CELLS
    blocks.SPLIT_CELLS = 0  # small reads split over the pool's thread too
    try:
        check_against_dense_model(data)
    finally:
        blocks.SPLIT_CELLS = split


def check_against_dense_model(data: st.DataObject) -> None:
    draw = data.draw
    store = BlockStore(summaries=draw(st.booleans()))  # without, every read decodes
    model = Partials.zeros((ROWS, SPAN))
    rows = 1
    pool = ThreadPoolExecutor(1)
    for start in range(0, SPAN, B):
        rows = draw(st.integers(rows, ROWS))  # series appear over time
        parts = cells(draw, (rows, B))
        store.seal(start, parts)
        for dst, src in zip(model.fields(), parts.fields(), strict=True):
            dst[:rows, start : start + B] = src
        sealed = covered(store)
        op = draw(st.sampled_from(["merge", "compact", "expire", "trim", "read", "none"]))
        if op == "merge":
            k = draw(st.integers(1, 12))
            series = draw(hnp.arrays(np.int32, k, elements=st.integers(0, ROWS - 1)))
            minutes = draw(hnp.arrays(np.int64, k, elements=st.integers(0, start + 2 * B)))
            late = cells(draw, (1, k)).take(0)
            taken = store.merge(series, minutes, late)
            want_taken = (minutes < SPAN) & sealed[np.minimum(minutes, SPAN - 1)]
            np.testing.assert_array_equal(taken, want_taken)
            # the model merges the same way: partials of one cell first, then into it; empty
            # partials carry nothing, and summing them in would change numpy's pairing
            kept = taken & (late.count > 0)
            flat_at = series[kept].astype(np.int64) * SPAN + minutes[kept]
            keys, new = reduce_partials_by_key(flat_at, late.take(kept))
            flat = Partials(*(f.reshape(-1) for f in model.fields()))
            merged = merge(flat.take(keys), new)
            for dst, src in zip(flat.fields(), merged.fields(), strict=True):
                dst[keys] = src
        elif op == "compact":
            span = draw(st.sampled_from([2 * B, 4 * B]))
            at = (start + B) // span * span - span  # a span that is closed already
            sub = draw(st.sampled_from([0, B, 2 * B]))  # keep the parts' summaries, or not
            if at >= 0:
                block = store.compact(at, span, sub)
                assert block is None or (block.subs is None) == (sub == 0)
        elif op == "expire":
            before = draw(st.integers(0, start))
            store.expire(before)
            assert all(b.end > before for b in store.blocks)
            model.count[:, sealed & ~covered(store)] = 0  # whole blocks went
            sealed = covered(store)
        elif op == "trim":
            before = draw(st.integers(0, start + B))
            compacted = {b.end: b.compacted for b in store.blocks}
            store.trim(before)
            assert all(b.start >= before for b in store.blocks)
            assert all(b.compacted == compacted[b.end] for b in store.blocks)
            model.count[:, :before] = 0  # every minute before the cut went
            sealed = covered(store)
        elif op == "read":
            step = draw(st.sampled_from([1, 2, 3, B, 2 * B, SPAN]))
            first = draw(st.integers(0, SPAN - step))
            count = (SPAN - first) // step * step
            series = np.arange(ROWS, dtype=np.int32)[::-1].copy()
            out = Partials.empty((ROWS, count // step))
            lo = draw(st.integers(0, SPAN))
            within = draw(st.sampled_from([None, (lo, lo + draw(st.integers(0, SPAN)))]))
            store.read(series, first, count, step, out, pool, within=within)
            inside = sealed.copy()
            if within is not None:
                inside[: within[0]] = False
                inside[within[1] :] = False
            view = held(model, inside).take(np.s_[series, first : first + count])
            want = restep(view, step)
            np.testing.assert_array_equal(out.count, want.count)
            full = want.count > 0
            np.testing.assert_array_equal(out.min[full], want.min[full])
            np.testing.assert_array_equal(out.max[full], want.max[full])
            size = restep(Partials(view.min, view.max, np.abs(view.sum), view.count), step).sum
            assert (np.abs(out.sum - want.sum)[full] <= 1e-12 * size[full]).all()
        same(read_all(store, ROWS), held(model, sealed))
    pool.shutdown()


def test_summaries_answer_coarse_steps_without_decoding() -> None:
    rng = np.random.default_rng(5)
    parts = Partials(
        np.round(rng.uniform(0, 9, (3, 60)), 1), np.full((3, 60), 10.0),
        np.full((3, 60), 300.0), np.full((3, 60), 60, np.uint32),
    )  # fmt: skip
    store = BlockStore()
    block, _ = store.seal(60, parts)
    block.arena[:] = 0xFF  # a decode now would read garbage
    out = Partials.empty((3, 1))
    store.read(np.arange(3, dtype=np.int32), 0, 180, 180, out)
    np.testing.assert_array_equal(out.min[:, 0], parts.min.min(axis=1))
    np.testing.assert_array_equal(out.count[:, 0], [3600] * 3)
    np.testing.assert_array_equal(out.sum[:, 0], [18000.0] * 3)


def test_a_store_without_summaries_keeps_none_and_decodes() -> None:
    """A store that keeps no summaries (the ring's: its hour summaries answer) holds no
    summary bytes, sealed or compacted, and answers a coarse read by decoding, the same
    answer as a store with summaries; parts' summaries asked of ``compact`` are kept."""
    rng = np.random.default_rng(2)
    hours = [Partials(np.round(rng.uniform(0, 9, (3, 60)), 1), np.full((3, 60), 10.0),
                      np.full((3, 60), 300.0), np.full((3, 60), 60, np.uint32))
             for _ in range(4)]  # fmt: skip
    stores = {kept: BlockStore(summaries=kept) for kept in (True, False)}
    for store in stores.values():
        for i, part in enumerate(hours):
            _, summary = store.seal(i * 60, part)
            np.testing.assert_array_equal(summary.count, [3600] * 3)
    bare = stores[False]
    assert all(b.summary is None for b in bare.blocks)
    assert sum(u.summary for u in bare.usage()) == 0
    assert sum(u.summary for u in stores[True].usage()) == 4 * 3 * blocks.SUMMARY_BYTES
    outs = {}
    for kept, store in stores.items():
        store.compact(0, 120)
        store.compact(120, 120, 60)
        assert store.blocks[1].subs is not None
        out = Partials.empty((3, 2))
        store.read(np.arange(3, dtype=np.int32), 0, 240, 120, out)
        outs[kept] = out
    assert bare.blocks[0].summary is None and sum(u.summary for u in bare.usage()) == 2 * 3 * 28
    bare.blocks[1].arena[:] = 0xFF  # its parts' summaries answer; block 0 must decode
    out = Partials.empty((3, 2))
    bare.read(np.arange(3, dtype=np.int32), 0, 240, 120, out)
    for got in (outs[False], out):
        for g, w in zip(got.fields(), outs[True].fields(), strict=True):
            np.testing.assert_array_equal(g, w)


def test_parts_of_a_compacted_block_answer_their_step_without_decoding() -> None:
    """A 4-hour block that kept its hours' summaries reads at step 1 h from them, also
    after a late merge changed one hour; rows go where ``rows`` says."""
    rng = np.random.default_rng(6)
    hours = [
        Partials(np.round(rng.uniform(0, 9, (3, 60)), 1), np.full((3, 60), 10.0),
                 np.full((3, 60), 300.0), np.full((3, 60), 60, np.uint32))
        for _ in range(4)
    ]  # fmt: skip
    store = BlockStore()
    for i, part in enumerate(hours):
        store.seal(i * 60, part)
    block = store.compact(0, 240, 60)
    assert block is not None and len(store.blocks) == 1
    one = Partials(np.array([-1.0]), np.array([11.0]), np.array([7.0]), np.array([1], np.uint32))
    store.merge(np.array([2], np.int32), np.array([130]), one)
    block.arena[:] = 0xFF  # a decode now would read garbage
    out = Partials.empty((4, 4))
    store.read(np.array([2, 0], np.int32), 0, 240, 60, out, rows=np.array([3, 1]))
    assert out.count[[0, 2]].sum() == 0
    np.testing.assert_array_equal(out.count[1], [3600] * 4)
    np.testing.assert_array_equal(out.count[3], [3600, 3600, 3601, 3600])
    np.testing.assert_array_equal(out.min[1], [h.min[0].min() for h in hours])
    assert out.min[3, 2] == -1.0 and out.max[3, 2] == 11.0
    assert out.sum[3, 2] == 18007.0 and out.sum[1, 0] == 18000.0


def test_merge_into_a_series_new_since_the_block_closed() -> None:
    store = BlockStore()
    store.seal(0, Partials.zeros((1, B)))
    one = Partials(np.array([2.5]), np.array([3.5]), np.array([6.0]), np.array([2], np.uint32))
    taken = store.merge(np.array([3], np.int32), np.array([1]), one)
    assert taken.tolist() == [True]
    out = read_all(store, 4)
    assert out.count[3, 1] == 2 and out.min[3, 1] == 2.5 and out.sum[3, 1] == 6.0
    assert out.count.sum() == 2


def test_dead_bytes_are_repacked() -> None:
    store = BlockStore()
    parts = Partials(np.full((2, 60), 1.0), np.full((2, 60), 2.0), np.full((2, 60), 90.0),
                     np.full((2, 60), 60, np.uint32))  # fmt: skip
    block, _ = store.seal(0, parts)
    rng = np.random.default_rng(0)
    for _ in range(20):
        noisy = Partials(rng.normal(size=1), np.array([50.0]), rng.normal(size=1),
                         np.array([1], np.uint32))  # fmt: skip
        store.merge(np.array([0], np.int32), np.array([int(rng.integers(60))]), noisy)
        assert block.dead * 2 <= block.used
    usage = store.usage()[0]
    assert usage.live == int(block.length.sum()) == block.used - block.dead
    assert usage.bytes_per_series_minute > 0


def test_overlapping_seal_is_refused() -> None:
    store = BlockStore()
    store.seal(0, Partials.zeros((1, B)))
    with pytest.raises(ValueError, match="overlap"):
        store.seal(B - 1, Partials.zeros((1, B)))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_reads_over_many_stores_match_the_dense_models(data: st.DataObject) -> None:
    """``read_stores`` over several stores (the ring's blocks of series), each with its own
    window and rows, against numpy over each store's dense model: blocks sealed with
    series appearing over time (shorter blocks), late merges, compactions with and without
    parts' summaries, expiry, ranges that cut blocks, empty entries and stores."""
    split = blocks.SPLIT_CELLS
    blocks.SPLIT_CELLS = 0  # small reads split over the pool's thread too
    try:
        check_many_stores(data)
    finally:
        blocks.SPLIT_CELLS = split


def many_stores(
    draw: st.DrawFn,
) -> tuple[list[BlockStore], list[Partials], list[npt.NDArray[np.bool_]]]:
    """Stores as the ring's blocks of series hold them, their dense models and which
    minutes their blocks hold."""
    n_stores = draw(st.integers(1, 4))
    stores = [BlockStore(summaries=draw(st.booleans())) for _ in range(n_stores)]
    models = [Partials.zeros((ROWS, SPAN)) for _ in range(n_stores)]
    sealed = [np.zeros(SPAN, np.bool_) for _ in range(n_stores)]
    for i, (store, model) in enumerate(zip(stores, models, strict=True)):
        rows = 1
        for start in range(0, SPAN, B):
            if draw(st.integers(0, 5)) == 0:
                continue  # a block of minutes this store never sealed
            rows = draw(st.integers(rows, ROWS))
            parts = cells(draw, (rows, B))
            store.seal(start, parts)
            for dst, src in zip(model.fields(), parts.fields(), strict=True):
                dst[:rows, start : start + B] = src
            if draw(st.booleans()):
                series = draw(hnp.arrays(np.int32, 3, elements=st.integers(0, ROWS - 1)))
                minutes = draw(hnp.arrays(np.int64, 3, elements=st.integers(0, start + B - 1)))
                late = cells(draw, (1, 3)).take(0)
                taken = store.merge(series, minutes, late)
                flat_at = series[taken].astype(np.int64) * SPAN + minutes[taken]
                keys, new = reduce_partials_by_key(flat_at, late.take(taken))
                flat = Partials(*(f.reshape(-1) for f in model.fields()))
                merged = merge(flat.take(keys), new)
                for dst, src in zip(flat.fields(), merged.fields(), strict=True):
                    dst[keys] = src
        if draw(st.booleans()):
            store.compact(0, 4 * B, draw(st.sampled_from([0, B])))
        if draw(st.booleans()):
            store.expire(draw(st.integers(0, SPAN // 2)))
        sealed[i] = covered(store)
    return stores, models, sealed


def check_many_stores(data: st.DataObject) -> None:
    draw = data.draw
    stores, models, sealed = many_stores(draw)
    step = draw(st.sampled_from([1, 2, 3, B, 2 * B, SPAN]))
    first = draw(st.integers(0, SPAN - step))
    count = (SPAN - first) // step * step
    asked, want_rows = [], []
    for model, inside in zip(models, sealed, strict=True):
        ids = np.array(draw(st.permutations(range(ROWS)))[: draw(st.integers(0, ROWS))], np.int32)
        lo = draw(st.integers(0, SPAN))
        hi = draw(st.integers(lo, SPAN))
        asked.append((ids, lo, hi))
        mask = inside.copy()
        mask[:lo] = False
        mask[hi:] = False
        want_rows.append(held(model, mask).take(np.s_[ids, first : first + count]))
    at = sum(ids.shape[0] for ids, _, _ in asked)
    order = np.array(draw(st.permutations(range(at))), np.int64)  # out rows in any order
    reads, k = [], 0
    for store, (ids, lo, hi) in zip(stores, asked, strict=True):
        reads.append(blocks.StoreRead(store, ids, order[k : k + ids.shape[0]], lo, hi))
        k += ids.shape[0]
    out = Partials.empty((at, count // step))
    pool = ThreadPoolExecutor(1)
    blocks.read_stores(reads, first, count, step, out, pool if draw(st.booleans()) else None)
    pool.shutdown()
    if at == 0:
        return
    view = Partials(
        *(np.concatenate(f) for f in zip(*(w.fields() for w in want_rows), strict=True))
    )
    want = restep(view, step)
    got = out.take(order)
    np.testing.assert_array_equal(got.count, want.count)
    full = want.count > 0
    np.testing.assert_array_equal(got.min[full], want.min[full])
    np.testing.assert_array_equal(got.max[full], want.max[full])
    size = restep(Partials(view.min, view.max, np.abs(view.sum), view.count), step).sum
    assert (np.abs(got.sum - want.sum)[full] <= 1e-12 * size[full]).all()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_reads_overwriting_at_step_one_equal_reads_into_zeros(data: st.DataObject) -> None:
    """``read_stores(overwrite=True)`` at step 1 into a block of garbage leaves each read's
    rows × minutes as the same read into a zeroed block, all four fields bit for bit, and
    leaves every other cell as it was: minutes no block holds, series a block does not,
    empty entries, a block a summary answers (one minute long), split over two threads."""
    split = blocks.SPLIT_CELLS
    blocks.SPLIT_CELLS = 0
    try:
        check_overwrite(data)
    finally:
        blocks.SPLIT_CELLS = split


def check_overwrite(data: st.DataObject) -> None:
    draw = data.draw
    stores, _, _ = many_stores(draw)
    for store in stores:
        gaps = np.flatnonzero(~covered(store))
        if gaps.shape[0] and draw(st.booleans()):  # a one-minute block: its summary answers
            minute = int(gaps[draw(st.integers(0, gaps.shape[0] - 1))])
            store.seal(minute, cells(draw, (draw(st.integers(1, ROWS)), 1)))
    first = draw(st.integers(0, SPAN - 1))
    count = draw(st.integers(1, SPAN - first))
    reads, at = [], 0
    order = np.array(draw(st.permutations(range(len(stores) * ROWS))), np.int64)
    for store in stores:
        ids = np.array(draw(st.permutations(range(ROWS)))[: draw(st.integers(0, ROWS))], np.int32)
        lo = draw(st.integers(0, SPAN))
        hi = draw(st.integers(lo, SPAN))
        reads.append(blocks.StoreRead(store, ids, order[at : at + ids.shape[0]], lo, hi))
        at += ids.shape[0]
    shape = (len(stores) * ROWS, count)
    want = Partials.zeros(shape)
    blocks.read_stores(reads, first, count, 1, want)
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    bits = rng.integers(0, 2**63, (3, *shape), dtype=np.int64).view(np.float64)
    before = Partials(*bits, rng.integers(0, 2**32, shape, dtype=np.uint32))
    got = Partials(*(f.copy() for f in before.fields()))
    pool = ThreadPoolExecutor(1)
    blocks.read_stores(reads, first, count, 1, got, pool if draw(st.booleans()) else None, True)
    pool.shutdown()
    written = np.zeros(shape, np.bool_)
    for r in reads:
        if r.lo < r.hi:
            written[r.rows, max(r.lo, first) - first : max(0, r.hi - first)] = True
    for g, w, b in zip(got.fields(), want.fields(), before.fields(), strict=True):
        u = g.view(np.uint32 if g.dtype == np.uint32 else np.uint64)
        np.testing.assert_array_equal(u[written], w.view(u.dtype)[written])
        np.testing.assert_array_equal(u[~written], b.view(u.dtype)[~written])


def test_overwriting_is_for_step_one_only() -> None:
    store = BlockStore()
    store.seal(0, Partials.zeros((1, B)))
    out = Partials.zeros((1, 2))
    read = blocks.StoreRead(store, np.zeros(1, np.int32), np.zeros(1, np.int64), 0, B)
    with pytest.raises(ValueError, match="step 1 only"):
        blocks.read_stores([read], 0, B, 2, out, overwrite=True)
