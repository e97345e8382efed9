"""Placing a store answer's sparse cells into the dense block: the compiled loop and numpy's
passes must give the same block, cell for cell, whatever the cells hold."""

from __future__ import annotations

import numpy as np
import pytest

from minutely.model import Partials
from minutely.store.reader import CellBlock, SeriesCells


def random_blocks(
    rng: np.random.Generator, ids: int, buckets: int, sizes: list[int], readonly: bool
) -> SeriesCells:
    """Blocks of distinct cells over ``ids × buckets`` (a quarter more of each than the dense
    block asks for, so that some cells fall outside it), in random order."""
    cells = rng.permutation(ids * buckets)[: sum(sizes)]
    blocks = []
    for part in np.split(cells, np.cumsum(sizes)[:-1]):
        n = len(part)
        columns = [
            (part // buckets).astype(np.uint32),
            (part % buckets).astype(np.uint32),
            rng.normal(50, 20, n),
            rng.normal(70, 20, n),
            rng.normal(3000, 500, n),
            rng.integers(1, 61, n).astype(np.uint32),
        ]
        for c in columns:
            c.flags.writeable = not readonly  # the engine's Arrow buffers are read-only
        blocks.append(CellBlock(columns[0], columns[1], Partials(*columns[2:])))
    return SeriesCells(blocks)


@pytest.mark.parametrize("readonly", [False, True])
def test_compiled_placement_equals_numpy(readonly: bool) -> None:
    rng = np.random.default_rng(11)
    ids, buckets = 250, 150
    cells = random_blocks(rng, ids, buckets, [9_000, 20_000, 1, 4_000], readonly)
    # dense rows in another order than the ids; 50 ids below 200 (inside the id table),
    # ids 200-249 (past it) and buckets 120-149 left out
    others = rng.permutation(200)[:150]
    compiled = cells.dense(others, 120)
    numpy = cells.dense(others, 120, compiled=False)
    for got, want in zip(compiled.fields(), numpy.fields(), strict=True):
        assert got.dtype == want.dtype and got.shape == (150, 120)
        np.testing.assert_array_equal(got, want)
    # and both equal the cells themselves
    o, b, p = cells.other_ids, cells.buckets, cells.parts
    row_of = np.full(250, -1)
    row_of[others] = np.arange(150)
    keep = (row_of[o] >= 0) & (b < 120)
    row = row_of[o[keep]]
    assert 0 < keep.sum() < len(o)
    np.testing.assert_array_equal(compiled.count[row, b[keep]], p.count[keep])
    np.testing.assert_array_equal(compiled.min[row, b[keep]], p.min[keep])
    assert int((compiled.count > 0).sum()) == int(keep.sum())


def test_ids_too_large_for_a_table_are_placed_by_search() -> None:
    big = np.uint32(1 << 30)
    one = Partials(
        np.array([1.0, 2.0]),
        np.array([3.0, 4.0]),
        np.array([5.0, 6.0]),
        np.array([7, 8], np.uint32),
    )
    cells = SeriesCells(
        [CellBlock(np.array([big, 3], np.uint32), np.array([1, 0], np.uint32), one)]
    )
    got = cells.dense(np.array([3, big], dtype=np.uint32), 2)
    np.testing.assert_array_equal(got.count, [[8, 0], [0, 7]])
    np.testing.assert_array_equal(got.sum, [[6.0, 0.0], [0.0, 5.0]])
