"""``heap.release`` returns the heap's free pages to the kernel."""

from __future__ import annotations

import numpy as np
import psutil

from minutely.heap import release

MB = 1 << 20


def test_release_returns_freed_heap_pages() -> None:
    big = np.ones(24 * MB, np.uint8)
    del big  # glibc raises its mmap threshold past a freed mapping: 1 MB buffers now use the heap
    buffers = [np.ones(MB, np.uint8) for _ in range(96)]
    del buffers[::2]  # 48 MB freed between live buffers: no trim of the heap's top reaches them
    proc = psutil.Process()
    before = proc.memory_info().rss
    assert release()
    after = proc.memory_info().rss
    assert before - after >= 24 * MB, (before, after)
    assert all(int(b.sum()) == MB for b in buffers)  # what is still held is intact
