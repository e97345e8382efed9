"""The checkpoint file, the ring's open minutes in and out, and the failpoints."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minutely import failpoints
from minutely.checkpoint import FORMAT_VERSION, Checkpoint, CheckpointFile
from minutely.errors import ConfigError
from minutely.hot import HotRing
from minutely.model import I32, I64, Partials
from minutely.store.errors import StoreCorrupt
from minutely.store.reader import MinuteRows


def rows(n: int, seed: int) -> MinuteRows:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n)
    return MinuteRows(
        rng.integers(0, 9, n).astype(np.uint32),
        rng.integers(0, 9, n).astype(np.uint32),
        rng.integers(29_000_000, 29_000_100, n),
        Partials(v - 1, v + 1, v * 3, rng.integers(1, 9, n).astype(np.uint32)),
    )


def same_rows(a: MinuteRows, b: MinuteRows) -> None:
    for x, y in zip(
        (a.server_ids, a.metric_ids, a.minutes, *a.parts.fields()),
        (b.server_ids, b.metric_ids, b.minutes, *b.parts.fields()),
        strict=True,
    ):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def test_checkpoint_file_round_trip_and_replace(tmp_path: Path) -> None:
    f = CheckpointFile(tmp_path / "ck")
    assert f.read() is None  # a first start
    one = Checkpoint("ab12", 7, {0: 41, 3: 9}, rows(100, 1), rows(10, 2))
    f.write(one)
    got = f.read()
    assert got is not None
    assert (got.run, got.epoch, got.offsets, got.token) == ("ab12", 7, {0: 41, 3: 9}, "ab12-7")
    same_rows(got.rows, one.rows)
    same_rows(got.open, one.open)
    empty = Checkpoint("ab12", 8, {0: 42, 3: 9}, rows(0, 3), rows(0, 4))
    f.write(empty)
    got = f.read()
    assert got is not None and got.epoch == 8 and got.rows.minutes.shape[0] == 0
    assert not (tmp_path / "ck" / "aggregator.npz.tmp").exists()


def test_a_leftover_temporary_file_is_ignored_and_a_damaged_one_refused(tmp_path: Path) -> None:
    f = CheckpointFile(tmp_path)
    f.write(Checkpoint("r", 1, {0: 5}, rows(5, 1), rows(5, 2)))
    (tmp_path / "aggregator.npz.tmp").write_bytes(b"half a checkpoint")  # died mid-write
    got = f.read()
    assert got is not None and got.epoch == 1
    f.path.write_bytes(f.path.read_bytes()[:200])  # damaged in place (not by minutely)
    with pytest.raises(StoreCorrupt, match="refusing to start"):
        f.read()


def fold(ring: HotRing, series: list[int], minutes: list[int], values: list[float]) -> None:
    ring.fold(np.array(series, np.int32), np.array(minutes, np.int64), np.array(values))


def test_open_minutes_leave_one_ring_and_come_back_into_another() -> None:
    sunk: list[tuple[I32, I64, Partials]] = []
    a = HotRing(minutes=30, live_minutes=4, capacity=8, block=4)
    fold(a, [0, 1, 5, 0, 1], [100, 100, 101, 103, 103], [1.0, 2.0, 3.0, 4.0, 5.0])
    fold(a, [0, 0], [103, 90], [6.0, 7.0])  # minute 90 is in the ring, not live
    series, minutes, parts = a.live_partials()
    assert sorted(zip(series.tolist(), minutes.tolist(), strict=True)) == [
        (0, 100),
        (0, 103),
        (1, 100),
        (1, 103),
        (5, 101),
    ]
    assert int(parts.count.sum()) == 6  # minute 90's point is not open

    b = HotRing(minutes=30, live_minutes=4, capacity=8, block=4, sink=lambda *x: sunk.append(x))
    b.merge_partials(series, minutes, parts)
    got = b.read(np.array([0, 1, 5], np.int32), 100, 4)
    want = a.read(np.array([0, 1, 5], np.int32), 100, 4)
    for x, y in zip(got.fields(), want.fields(), strict=True):
        assert np.array_equal(x[want.count > 0], y[want.count > 0])
    assert not sunk  # still open: nothing for the store yet
    fold(b, [2], [110], [0.5])  # time moves on: the merged minutes close
    closed = {
        (int(s), int(m)): int(c)
        for x in sunk
        for s, m, c in zip(x[0], x[1], x[2].count, strict=True)
    }
    assert closed == {(0, 100): 1, (1, 100): 1, (5, 101): 1, (0, 103): 2, (1, 103): 1}


def test_partials_older_than_the_live_minutes_go_to_the_ring_and_the_sink() -> None:
    sunk: list[tuple[I32, I64, Partials]] = []
    ring = HotRing(minutes=30, live_minutes=4, capacity=8, sink=lambda *x: sunk.append(x))
    fold(ring, [3], [200], [1.0])
    v = np.array([5.0, 6.0])
    one = Partials(v, v, v, np.array([1, 1], np.uint32))
    ring.merge_partials(np.array([3, 3], np.int32), np.array([190, 100], np.int64), one)
    assert ring.read(np.array([3], np.int32), 190, 1).max[0, 0] == 5.0  # in the window
    assert sorted(int(m) for x in sunk for m in x[1]) == [100, 190]  # both reach the store


def test_failpoints_are_checked_and_kill_on_the_nth_pass() -> None:
    with pytest.raises(ConfigError, match="unknown point 'nope'"):
        failpoints.arm("nope=1")
    with pytest.raises(ConfigError, match="pass count"):
        failpoints.arm("checkpoint.renamed=0")
    failpoints.arm("")
    failpoints.hit("checkpoint.renamed")  # unarmed: nothing happens
    code = (
        "from minutely import failpoints\n"
        "failpoints.arm('aggregate.folded=2')\n"
        "failpoints.hit('aggregate.folded'); print('first pass', flush=True)\n"
        "failpoints.hit('aggregate.folded'); print('second pass', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "first pass\n"


def test_a_checkpoint_records_its_format_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    f = CheckpointFile(tmp_path)
    f.write(Checkpoint("ab12", 1, {0: 1}, rows(5, 1), rows(0, 2)))
    with np.load(f.path) as saved:
        arrays = {k: saved[k] for k in saved.files}
    assert int(arrays["version"]) == FORMAT_VERSION
    del arrays["version"]  # a file from before versions were recorded reads as version 1
    np.savez(f.path, **arrays)  # type: ignore[arg-type]
    got = f.read()
    assert got is not None and got.epoch == 1
    arrays["version"] = np.array(FORMAT_VERSION + 1)
    np.savez(f.path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(StoreCorrupt, match="newer minutely"):
        f.read()
