"""The data dir's lock: one holder at a time, its PID in the refusal, given up on release
(and by the kernel when the holder exits); a path that cannot be a data dir says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minutely.datadir import LOCK_FILE, DataDir, DataDirError


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    with DataDir(tmp_path / "data") as held:
        assert (held.path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(DataDirError, match=f"in use by process {os.getpid()}: stop it"):
            DataDir(tmp_path / "data").lock()
    DataDir(tmp_path / "data").lock().release()  # given up: anyone may take it


def test_the_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    with DataDir(tmp_path / "a" / "b") as held:
        assert held.path.is_dir()


def test_a_file_is_not_a_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataDirError, match="is not a directory: pass --data-dir"):
        DataDir(tmp_path / "file").lock()


def test_a_dir_that_cannot_be_created_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataDirError, match=r"cannot create data dir .*: pass another --data-dir"):
        DataDir(tmp_path / "file" / "below").lock()
