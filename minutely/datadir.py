"""The data directory's lock: one ``minutely serve`` per data dir.

``DataDir(path).lock()`` creates the directory if needed and takes an exclusive ``flock`` on
``<path>/minutely.lock``, writing this process's PID into it, before anything opens the
store: the embedded engine, the checkpoint and the spill files each assume one writer, and a
second process would otherwise fail deep inside the engine. The kernel drops the lock when
the process exits, however it exits, so a crash never leaves the directory locked; the file
itself stays, and only says who held it last.

Every refusal is a ``DataDirError`` whose message says what to do, in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from minutely.errors import MinutelyError

LOCK_FILE = "minutely.lock"


class DataDirError(MinutelyError, OSError):
    """The data directory cannot be used: not creatable, not a directory, or in use."""


class DataDir:
    """A data directory and, once ``lock`` has run, the lock this process holds on it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def lock(self) -> Self:
        """Create the directory if needed and take its lock; ``DataDirError`` if another
        process holds it or the directory cannot be used."""
        self._create()
        lock_path = self.path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            msg = f"data dir {self.path} is not writable ({e.strerror}): pass another --data-dir"
            raise DataDirError(msg) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            msg = f"data dir {self.path} is in use by {who}: stop it, or pass another --data-dir"
            raise DataDirError(msg) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (exiting does too)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self.lock()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _create(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            msg = f"data dir {self.path} is not a directory: pass --data-dir with a directory"
            raise DataDirError(msg)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            msg = f"cannot create data dir {self.path} ({e.strerror}): pass another --data-dir"
            raise DataDirError(msg) from None


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None
