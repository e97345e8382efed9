"""The compiled loops of ``buckets`` against numpy's spelling of the same step."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minutely.buckets import merge_cells, scatter_points
from minutely.model import Partials, merge

finite = st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, -0.0, 1e-300])


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.int64, st.integers(0, 60), elements=st.integers(0, 7)),
    st.data(),
)
def test_scatter_points_is_numpys_ufunc_at_bit_for_bit(
    flat: np.ndarray, data: st.DataObject
) -> None:
    n = flat.shape[0]
    mn = data.draw(hnp.arrays(np.float64, n, elements=finite))
    mx = data.draw(hnp.arrays(np.float64, n, elements=finite))
    sm = data.draw(hnp.arrays(np.float64, n, elements=finite))
    ct = data.draw(hnp.arrays(np.uint32, n, elements=st.integers(0, 5)))
    want = [np.full(8, np.inf), np.full(8, -np.inf), np.zeros(8), np.zeros(8, np.uint32)]
    want[0][:2] = (3.0, -0.0)  # some entries already hold partials
    want[1][:2] = (3.0, 0.0)
    got = [a.copy() for a in want]
    np.minimum.at(want[0], flat, mn)
    np.maximum.at(want[1], flat, mx)
    np.add.at(want[2], flat, sm)
    np.add.at(want[3], flat, ct)
    scatter_points(flat, mn, mx, sm, np.broadcast_to(ct, ct.shape), *got)
    for g, w in zip(got, want, strict=True):
        assert g.tobytes() == w.tobytes()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_merge_cells_is_model_merge_bit_for_bit(data: st.DataObject) -> None:
    """Into a ring block whose empty cells (count 0) still hold an older lap's numbers."""
    shape = (3, 4)
    block = [data.draw(hnp.arrays(np.float64, shape, elements=finite)) for _ in range(3)] + [
        data.draw(hnp.arrays(np.uint32, shape, elements=st.integers(0, 3)))
    ]
    cells = data.draw(st.lists(st.integers(0, 11), unique=True, max_size=12))
    rows = np.array([c // 4 for c in cells], dtype=np.int64)
    slots = np.array([c % 4 for c in cells], dtype=np.int64)
    n = len(cells)
    parts = Partials(
        data.draw(hnp.arrays(np.float64, n, elements=finite)),
        data.draw(hnp.arrays(np.float64, n, elements=finite)),
        data.draw(hnp.arrays(np.float64, n, elements=finite)),
        data.draw(hnp.arrays(np.uint32, n, elements=st.integers(1, 5))),
    )
    want = [a.copy() for a in block]
    merged = merge(Partials(*(a[rows, slots] for a in want)), parts)
    for dst, src in zip(want, merged.fields(), strict=True):
        dst[rows, slots] = src
    merge_cells(rows, slots, *parts.fields(), *block)
    for got, expected in zip(block, want, strict=True):
        assert got.view(np.uint8).tolist() == expected.view(np.uint8).tolist()
