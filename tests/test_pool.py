"""``BlockPool``: a block is all zeros however its buffer was used before (an unzeroed one
is as it was left), a buffer is reused only once nothing views it, and the pool keeps no
more than it is allowed."""

from __future__ import annotations

import gc
import threading

import numpy as np

from minutely.model import Partials
from minutely.pool import ENTRY_BYTES, MIN_BYTES, BlockPool, clear

#: a block just over the size the pool takes
SHAPE = (64, MIN_BYTES // ENTRY_BYTES // 64 + 1)


def scribble(block: Partials) -> None:
    """Write every entry, as an answer does."""
    for field in block.fields():
        field[...] = 7


def assert_zeros(block: Partials, shape: tuple[int, int]) -> None:
    for field, dtype in zip(block.fields(), (np.float64,) * 3 + (np.uint32,), strict=True):
        assert field.shape == shape and field.dtype == dtype
        assert not field.any()
        assert field.flags.writeable and field.flags.c_contiguous


def test_a_block_is_zeros_with_its_own_memory_per_field() -> None:
    pool = BlockPool(64 << 20)
    block = pool.zeros(SHAPE)
    assert_zeros(block, SHAPE)
    fields = block.fields()
    for i, a in enumerate(fields):
        for b in fields[i + 1 :]:
            assert not np.shares_memory(a, b)
    assert (pool.made, pool.reused) == (1, 0)


def test_a_given_back_buffer_comes_back_zeroed() -> None:
    pool = BlockPool(64 << 20)
    first = pool.zeros(SHAPE)
    scribble(first)
    address = first.min.ctypes.data
    del first
    gc.collect()
    assert pool.kept_bytes >= SHAPE[0] * SHAPE[1] * ENTRY_BYTES
    again = pool.zeros(SHAPE)
    assert again.min.ctypes.data == address  # the same memory
    assert_zeros(again, SHAPE)
    assert (pool.made, pool.reused) == (1, 1)


def test_an_unzeroed_block_reuses_a_buffer_as_it_was_left() -> None:
    pool = BlockPool(64 << 20)
    fresh = pool.unzeroed(SHAPE)
    assert_zeros(fresh, SHAPE)  # fresh memory is the kernel's zeros
    scribble(fresh)
    address = fresh.count.ctypes.data
    del fresh
    gc.collect()
    again = pool.unzeroed(SHAPE)
    assert again.count.ctypes.data == address
    for field in again.fields():
        assert field.shape == SHAPE and field.flags.writeable
        assert (field == 7).all()  # not zeroed: the caller writes every entry
    clear(again, np.s_[2:5, 1:])
    for field in again.fields():
        assert not field[2:5, 1:].any() and (field[:2] == 7).all() and (field[2:5, 0] == 7).all()
    del again, field
    gc.collect()
    assert_zeros(pool.zeros(SHAPE), SHAPE)  # and ``zeros`` zeroes it again
    assert (pool.made, pool.reused) == (1, 2)


def test_small_unzeroed_blocks_are_fresh() -> None:
    pool = BlockPool(64 << 20)
    assert_zeros(pool.unzeroed((10, 10)), (10, 10))
    assert pool.made == pool.reused == 0


def test_a_buffer_stays_out_while_a_view_of_any_field_lives() -> None:
    pool = BlockPool(64 << 20)
    first = pool.zeros(SHAPE)
    scribble(first)
    view = first.count[3:, 5:]  # a view of one field keeps the whole buffer
    del first
    gc.collect()
    assert pool.kept_bytes == 0
    second = pool.zeros(SHAPE)
    assert not np.shares_memory(second.count, view)
    assert (view == 7).all()  # untouched by the second block's zeroing
    del view
    gc.collect()
    assert pool.kept_bytes > 0


def test_the_pool_keeps_at_most_keep_bytes() -> None:
    one = SHAPE[0] * SHAPE[1] * ENTRY_BYTES
    pool = BlockPool(2 * one + one // 2)  # room for two whole buffers
    blocks = [pool.zeros(SHAPE) for _ in range(4)]
    del blocks
    gc.collect()
    assert pool.kept_bytes == 2 * one


def test_small_and_oversized_blocks_are_fresh_and_not_kept() -> None:
    pool = BlockPool(8 << 20)
    small = pool.zeros((10, 10))
    big = pool.zeros((64, (16 << 20) // ENTRY_BYTES // 64))
    assert_zeros(small, (10, 10))
    assert_zeros(big, big.count.shape)
    del small, big
    gc.collect()
    assert pool.kept_bytes == 0 and pool.made == pool.reused == 0


def test_threads_never_share_a_buffer() -> None:
    pool = BlockPool(4 * SHAPE[0] * SHAPE[1] * ENTRY_BYTES)
    errors: list[str] = []

    def work(value: int) -> None:
        for _ in range(20):
            block = pool.zeros(SHAPE)
            if block.sum.any():
                errors.append("not zeroed")
            block.sum[...] = value
            if not (block.sum == value).all():
                errors.append("written by another thread")

    threads = [threading.Thread(target=work, args=(v,)) for v in range(1, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pool.reused > 0
