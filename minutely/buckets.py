"""Partials merged into bucket blocks: the two loops every read ends in and the one every fold
ends in, compiled to machine code (numba, nopython mode) because numpy would make several
passes.

Only numpy arrays go in and out, and no Python object is made per element: a compiled loop is
one pass over its columns, where the numpy spelling of the same step is a pass per
temporary. Each function here is compiled on first call for the dtypes it is given (about
0.3 s) and cached on disk (``cache=True``) for later processes; it releases the GIL while it
runs.

- ``place_cells``: a store answer's sparse cells into their dense ``(others × buckets)``
  block. numpy needs a gather (id → row), an add (+ bucket) and a scatter per field, each
  over a temporary of the answer's length; one loop reads each cell once
  (figures: docs/performance.md, Measured choices).
- ``scatter_points``: a batch's points merged into the hot ring's live rows, one pass where
  numpy's ``minimum.at``, ``maximum.at`` and two ``add.at`` make four, each far slower per
  element than a loop (the fold is what the protocol benchmark waits for; figures:
  docs/performance.md, Protocols).
- ``merge_cells``: a batch's partials (one per cell, reduced by key) merged into a ring
  block's cells, one pass where numpy gathers each field, merges with a ``where`` per field
  and scatters it back.
- ``merge_slots``: the hot ring's minute cells merged straight into step buckets, so that a
  read at a step of an hour never makes the ``(series × minutes)`` block first (a 2-day
  read of 2,000 series would make 161 MB of it, then merge it with a pass per field;
  figures: docs/performance.md, Measured choices); ``merge_slots_at`` does it for many
  ring blocks in one call, given their arenas' addresses, so a read over 125 ring blocks
  runs no Python per block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from numba.extending import intrinsic


def _place_cells(
    rows: npt.NDArray[np.int64],
    other_ids: npt.NDArray[np.uint32],
    buckets: npt.NDArray[np.uint32],
    mn: npt.NDArray[np.float64],
    mx: npt.NDArray[np.float64],
    sm: npt.NDArray[np.float64],
    ct: npt.NDArray[np.uint32],
    out_mn: npt.NDArray[np.float64],
    out_mx: npt.NDArray[np.float64],
    out_sm: npt.NDArray[np.float64],
    out_ct: npt.NDArray[np.uint32],
    n_buckets: int,
) -> None:
    """Write cell ``i`` to ``out[rows[other_ids[i]] * n_buckets + buckets[i]]``. A cell is
    left out when its id is past ``rows`` or has row -1, or when its bucket is ``n_buckets``
    or more."""
    top = rows.shape[0]
    for i in range(other_ids.shape[0]):
        other = other_ids[i]
        bucket = buckets[i]
        if other >= top or bucket >= n_buckets:
            continue
        row = rows[other]
        if row < 0:
            continue
        at = row * n_buckets + bucket
        out_mn[at] = mn[i]
        out_mx[at] = mx[i]
        out_sm[at] = sm[i]
        out_ct[at] = ct[i]


place_cells: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_place_cells)


def _merge_slots(
    mn: npt.NDArray[np.float64],
    mx: npt.NDArray[np.float64],
    sm: npt.NDArray[np.float64],
    ct: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.int64],
    out_rows: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    buckets: npt.NDArray[np.int64],
    out_mn: npt.NDArray[np.float64],
    out_mx: npt.NDArray[np.float64],
    out_sm: npt.NDArray[np.float64],
    out_ct: npt.NDArray[np.uint32],
) -> None:
    """Merge ring cells ``[rows[k], slots[j]]`` into ``out[out_rows[k], buckets[j]]`` for
    every ``k`` and ``j``, skipping empty cells (``count == 0``). ``buckets`` must be
    ascending (the slots of ascending minutes): a bucket's cells are merged in registers
    and written once, not once per minute (figures: docs/performance.md, Measured
    choices), merged with what ``out`` holds (an entry with ``count == 0`` is empty,
    whatever its other fields hold). Values are finite."""
    n = slots.shape[0]
    for k in range(rows.shape[0]):
        row = rows[k]
        at = out_rows[k]
        j = 0
        while j < n:
            bucket = buckets[j]
            low, high, total, count = np.inf, -np.inf, 0.0, 0
            while j < n and buckets[j] == bucket:
                slot = slots[j]
                held = ct[row, slot]
                if held != 0:
                    low = min(low, mn[row, slot])
                    high = max(high, mx[row, slot])
                    total += sm[row, slot]
                    count += held
                j += 1
            if count == 0:
                continue
            if out_ct[at, bucket] == 0:  # an empty entry: its other fields are undefined
                out_mn[at, bucket] = low
                out_mx[at, bucket] = high
                out_sm[at, bucket] = total
                out_ct[at, bucket] = count
            else:
                out_mn[at, bucket] = min(out_mn[at, bucket], low)
                out_mx[at, bucket] = max(out_mx[at, bucket], high)
                out_sm[at, bucket] += total
                out_ct[at, bucket] += count


merge_slots: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_merge_slots)


def _scatter_points(
    flat: npt.NDArray[np.int64],
    mn: npt.NDArray[np.float64],
    mx: npt.NDArray[np.float64],
    sm: npt.NDArray[np.float64],
    ct: npt.NDArray[np.uint32],
    out_mn: npt.NDArray[np.float64],
    out_mx: npt.NDArray[np.float64],
    out_sm: npt.NDArray[np.float64],
    out_ct: npt.NDArray[np.uint32],
) -> None:
    """Merge entry ``i`` into ``out[flat[i]]``, in order (so sums add up exactly as
    ``np.add.at`` adds them). ``out`` entries hold ``inf``, ``-inf``, 0 and 0 when empty;
    values are finite and ``flat`` in bounds (the ring computed it)."""
    for i in range(flat.shape[0]):
        at = flat[i]
        if mn[i] <= out_mn[at]:  # on a tie the new one, as np.minimum: -0.0 and 0.0
            out_mn[at] = mn[i]
        if mx[i] >= out_mx[at]:
            out_mx[at] = mx[i]
        out_sm[at] += sm[i]
        out_ct[at] += ct[i]


scatter_points: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_scatter_points)


def _merge_cells(
    rows: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    mn: npt.NDArray[np.float64],
    mx: npt.NDArray[np.float64],
    sm: npt.NDArray[np.float64],
    ct: npt.NDArray[np.uint32],
    out_mn: npt.NDArray[np.float64],
    out_mx: npt.NDArray[np.float64],
    out_sm: npt.NDArray[np.float64],
    out_ct: npt.NDArray[np.uint32],
) -> None:
    """Merge partial ``i`` into cell ``(rows[i], slots[i])`` of a ring block, as
    ``model.merge(cell, partial)`` does, bit for bit: an empty cell (count 0, fields 0) is
    the identity, a tie takes the partial's value (np.minimum's second argument). Cells are
    distinct; partials are not empty."""
    for i in range(rows.shape[0]):
        r = rows[i]
        s = slots[i]
        empty = out_ct[r, s] == 0
        if empty or mn[i] <= out_mn[r, s]:
            out_mn[r, s] = mn[i]
        if empty or mx[i] >= out_mx[r, s]:
            out_mx[r, s] = mx[i]
        out_sm[r, s] = (0.0 if empty else out_sm[r, s]) + sm[i]
        out_ct[r, s] = out_ct[r, s] + ct[i]


merge_cells: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_merge_cells)


def pointer_intrinsic(dtype: Any) -> Callable[..., Any]:
    """An intrinsic turning an address (int64) into a ``dtype`` pointer, for ``carray``."""

    def make(typingctx: Any, address: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return numba.types.CPointer(dtype)(address), codegen  # type: ignore[no-untyped-call]

    return intrinsic(make)


_carray = numba.carray  # type: ignore[attr-defined]
_f8_at = pointer_intrinsic(numba.types.float64)
_u4_at = pointer_intrinsic(numba.types.uint32)


def _merge_slots_at(
    arenas: npt.NDArray[np.int64],
    width: int,
    groups: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    out_rows: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    buckets: npt.NDArray[np.int64],
    out_mn: npt.NDArray[np.float64],
    out_mx: npt.NDArray[np.float64],
    out_sm: npt.NDArray[np.float64],
    out_ct: npt.NDArray[np.uint32],
) -> None:
    """``merge_slots`` over many ring blocks in one call: group ``g`` is
    ``groups[g] = (block, r0, r1)``, rows ``rows[r0:r1]`` of ring block ``block`` into out
    rows ``out_rows[r0:r1]``, whose cells are ``(arenas[block, 0] rows, width)`` arrays at
    the addresses ``arenas[block]`` (min, max, sum, count). The caller keeps them alive."""
    for g in range(groups.shape[0]):
        a = arenas[groups[g, 0]]
        r0 = groups[g, 1]
        r1 = groups[g, 2]
        n = a[0]
        merge_slots(
            _carray(_f8_at(a[1]), (n, width)),
            _carray(_f8_at(a[2]), (n, width)),
            _carray(_f8_at(a[3]), (n, width)),
            _carray(_u4_at(a[4]), (n, width)),
            rows[r0:r1], out_rows[r0:r1], slots, buckets, out_mn, out_mx, out_sm, out_ct,
        )  # fmt: skip


merge_slots_at: Callable[..., Any] = numba.njit(nogil=True, cache=True)(_merge_slots_at)
