"""Give the C heap's free pages back to the kernel.

numpy takes buffers below glibc's mmap threshold from the heap, and that threshold rises to
32 MB as large buffers are freed, so the scratch of sealing and compaction (tens of MB a step)
ends up there; once freed, those pages stay resident until something trims them. A ring of a
thousand series then reads as three times its own memory in RSS. ``release`` asks glibc to
return them (``malloc_trim``, under a millisecond for such a heap); elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return fn


def release() -> bool:
    """Return the heap's free pages to the kernel; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
