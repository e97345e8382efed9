"""Answer blocks made in memory that earlier answers gave back, so a large answer does not
fault fresh pages.

A fresh block of ``(rows, columns)`` partials is memory the kernel must map and zero page by
page at its first write: for Q1 at step 1 minute (2,000 series × 2,880 minutes, 161 MB) that
costs more CPU than zeroing the same bytes again in memory already mapped (figures:
docs/performance.md, "Q1 at step 1 minute"). ``BlockPool.zeros`` hands out the four fields
as views of one buffer; when the last array that views them is gone the buffer goes back to
the pool, which keeps up to ``keep_bytes`` of them for the next answer and lets the rest go.

``BlockPool.unzeroed`` hands out a kept buffer as it was left, for a caller that writes
every entry (at step 1 the ring's decode overwrites its cells: ``HotRing.merge_buckets``).

Nothing changes for the holder of a block: it is an ordinary ``Partials``, its
arrays may be sliced, viewed, kept or handed to Arrow as long as wanted; the buffer is
reused only once nothing refers to it. Thread-safe.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from minutely.model import Partials

U8 = npt.NDArray[np.uint8]

#: bytes of one entry over the four fields (min, max, sum as float64, count as uint32)
ENTRY_BYTES = 3 * 8 + 4
#: blocks smaller than this are ordinary ``Partials.zeros`` (their pages are few)
MIN_BYTES = 4 << 20


class _Lease:
    """Holds one buffer while any field made from it is alive; its finalizer gives the
    buffer back."""

    __slots__ = ("__weakref__", "buffer")

    def __init__(self, buffer: U8) -> None:
        self.buffer = buffer


class _Field:
    """One field of a block, as numpy's array interface: the array made from it keeps it,
    and so the lease, alive."""

    __slots__ = ("__array_interface__", "lease")

    def __init__(self, lease: _Lease, offset: int, dtype: Any, shape: tuple[int, ...]) -> None:
        self.lease = lease
        self.__array_interface__ = {
            "shape": shape,
            "typestr": np.dtype(dtype).str,
            "data": (int(lease.buffer.ctypes.data) + offset, False),
            "version": 3,
        }


class BlockPool:
    """Zeroed blocks of partials in reused memory, keeping at most ``keep_bytes`` of
    buffers that no block uses (0: keep none, every block is fresh); blocks of fewer than
    ``min_bytes`` are always fresh."""

    def __init__(self, keep_bytes: int, min_bytes: int = MIN_BYTES) -> None:
        self.keep_bytes = keep_bytes
        self.min_bytes = min_bytes
        self._lock = threading.Lock()
        #: buffers no block uses, each a whole block's bytes
        self._free: list[U8] = []
        #: blocks handed out from a kept buffer, and made fresh
        self.reused = 0
        self.made = 0

    @property
    def kept_bytes(self) -> int:
        """Bytes of the buffers kept for later blocks."""
        with self._lock:
            return sum(int(b.shape[0]) for b in self._free)

    def zeros(self, shape: tuple[int, int]) -> Partials:
        """Empty entries (every field 0), as ``Partials.zeros``: in a kept buffer when one
        is large enough (the smallest such), else in fresh memory."""
        return self._block(shape, True)

    def unzeroed(self, shape: tuple[int, int]) -> Partials:
        """A block as ``zeros`` makes it, but a kept buffer is not zeroed again: its entries
        hold whatever an earlier answer left, for a caller that writes every one of them
        (a read that overwrites its cells), so the pool's ``memset`` is saved."""
        return self._block(shape, False)

    def _block(self, shape: tuple[int, int], zeroed: bool) -> Partials:
        cells = shape[0] * shape[1]
        need = cells * ENTRY_BYTES
        if need < self.min_bytes or need > self.keep_bytes:
            return Partials.zeros(shape)
        buffer = self._take(need)
        fresh = buffer is None
        if buffer is None:  # zeroed by the kernel at each page's first write
            buffer = np.zeros(need, np.uint8)
        lease = _Lease(buffer)
        weakref.finalize(lease, self._give_back, buffer)
        f8 = cells * 8
        out = Partials(
            np.asarray(_Field(lease, 0, np.float64, shape)),
            np.asarray(_Field(lease, f8, np.float64, shape)),
            np.asarray(_Field(lease, 2 * f8, np.float64, shape)),
            np.asarray(_Field(lease, 3 * f8, np.uint32, shape)),
        )
        if zeroed and not fresh:
            for field in out.fields():
                field.fill(0)
        with self._lock:
            if fresh:
                self.made += 1
            else:
                self.reused += 1
        return out

    def _take(self, need: int) -> U8 | None:
        """The smallest kept buffer of at least ``need`` bytes, taken out of the pool."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if b.shape[0] >= need]
            if not fits:
                return None
            best = min(fits, key=lambda i: int(self._free[i].shape[0]))
            return self._free.pop(best)

    def _give_back(self, buffer: U8) -> None:
        """Keep ``buffer`` for later blocks, dropping the smallest kept ones while the pool
        would hold more than ``keep_bytes``."""
        with self._lock:
            self._free.append(buffer)
            self._free.sort(key=lambda b: -int(b.shape[0]))
            total = 0
            kept = []
            for b in self._free:
                if total + b.shape[0] <= self.keep_bytes:
                    kept.append(b)
                    total += int(b.shape[0])
            self._free = kept


def clear(block: Partials, at: Any) -> None:
    """Entries ``block[at]`` (whatever numpy indexes with) made empty as ``zeros`` makes
    them, every field 0: the cells of an ``unzeroed`` block that nothing overwrites."""
    for field in block.fields():
        field[at] = 0
