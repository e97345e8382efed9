"""The compiled loops of ``buckets`` against numpy's spelling of the same step."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minutely.buckets import scatter_points

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
