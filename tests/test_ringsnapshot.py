"""The hot ring written at a stop and put back at the next start: the compressed ring's
state machine with restarts, and every reason a snapshot is refused."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis.stateful import rule

from minutely import ringsnapshot
from minutely.hot import HotRing
from minutely.registry import Registry
from tests.test_hot import CompressedRingModel

#: series 0..44 are (server s, metric 0), numbered s as the model numbers them
SERIES = 45


def registry() -> Registry:
    reg = Registry()
    reg.servers.intern(np.array([f"s{i}" for i in range(SERIES)], dtype=object))
    reg.metrics.intern(np.array(["m"], dtype=object))
    ids = reg.ensure_series(np.arange(SERIES), np.zeros(SERIES, np.int64))
    assert ids.tolist() == list(range(SERIES))
    return reg


class RestartedRingModel(CompressedRingModel):
    """The sealing ring against its model, stopped and started again at any point: the
    live minutes handed on, the ring written to a snapshot and put back into a fresh ring,
    which must then read the same as the ring stopped, bit for bit."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = registry()
        self.dir = Path(tempfile.mkdtemp()) / ringsnapshot.DIRECTORY

    def teardown(self) -> None:
        ringsnapshot.discard(self.dir)

    @rule()
    def restart(self) -> None:
        if self.head is None:
            return
        self.ring.hand_on_live()  # as a stop does before it writes the snapshot
        assert ringsnapshot.save(self.dir, self.ring, self.registry, "marker") > 0
        fresh = self.make_ring()
        got = ringsnapshot.take(self.dir, fresh, self.registry, lambda: "marker")
        assert got is not None and not self.dir.exists()
        assert fresh.head == self.ring.head
        assert fresh.oldest_minute() == self.ring.oldest_minute()
        first = self.ring.oldest_minute()
        assert first is not None
        series = np.arange(SERIES, dtype=np.int32)
        count = self.ring.head - first + 1
        want, have = self.ring.read(series, first, count), fresh.read(series, first, count)
        for w, h in zip(want.fields(), have.fields(), strict=True):
            np.testing.assert_array_equal(w.view(np.uint8), h.view(np.uint8))
        # the blocks' arenas come back without the room they had to grow into
        was, now = self.ring.memory(), fresh.memory()
        for part in ("sealed_blocks", "compacted_blocks"):
            assert now.pop(part) <= was.pop(part)
        assert now == was
        self.ring.close()
        self.ring = fresh


TestRestartedRingModel = RestartedRingModel.TestCase
TestRestartedRingModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@pytest.fixture
def sealed_ring() -> Iterator[HotRing]:
    """A ring of 30 minutes sealing blocks of 4, with 12 series over 40 minutes, its live
    minutes handed on (as a stop leaves it)."""
    ring = HotRing(30, 3, capacity=16, block=8, block_minutes=4, summary_minutes=8, grace_minutes=3,
                   compact_minutes=8)  # fmt: skip
    rng = np.random.default_rng(3)
    for minute in range(1000, 1040):
        series = np.arange(12, dtype=np.int32)
        ring.fold(series, np.full(12, minute), np.round(rng.normal(5, 2, 12), 2))
    ring.hand_on_live()
    yield ring
    ring.close()


def fresh() -> HotRing:
    return HotRing(30, 3, capacity=16, block=8, block_minutes=4, summary_minutes=8, grace_minutes=3,
                   compact_minutes=8)  # fmt: skip


def test_a_snapshot_puts_back_every_minute_bit_for_bit(
    sealed_ring: HotRing, tmp_path: Path
) -> None:
    reg = registry()
    d = tmp_path / ringsnapshot.DIRECTORY
    assert ringsnapshot.save(d, sealed_ring, reg, "m") > 0
    ring = fresh()
    got = ringsnapshot.take(d, ring, reg, lambda: "m")
    assert got is not None and not d.exists()
    assert got > 0 and ring.memory()["series_minutes"] == 12 * (1039 - 1008 + 1)
    series = np.arange(12, dtype=np.int32)
    # sealed, compacted, open and handed-on live minutes: all back, bit for bit
    want = sealed_ring.read(series, 1000, 40)
    have = ring.read(series, 1000, 40)
    assert (want.count[:, 8:] == 1).all()
    for w, h in zip(want.fields(), have.fields(), strict=True):
        np.testing.assert_array_equal(w.view(np.uint8), h.view(np.uint8))
    assert ring.memory()["compacted_blocks"] > 0
    assert ring.oldest_minute() == sealed_ring.oldest_minute()
    # and it goes on as the ring it was: a point into the newest minute, one into a sealed one
    for r in (sealed_ring, ring):
        r.fold(np.array([3, 4], np.int32), np.array([1039, 1012]), np.array([99.0, -1.0]))
    want, have = sealed_ring.read(series, 1000, 40), ring.read(series, 1000, 40)
    for w, h in zip(want.fields(), have.fields(), strict=True):
        np.testing.assert_array_equal(w.view(np.uint8), h.view(np.uint8))
    assert have.max[3, 39] == 99.0 and have.min[4, 12] == -1.0


def test_a_restored_ring_hands_on_what_the_ring_it_was_would(tmp_path: Path) -> None:
    """Late points into a sealed minute, an open slot and a live minute, and a new series,
    after a restart: the sink gets the same partials as from the ring never stopped."""
    sinks: list[list[tuple[np.ndarray, ...]]] = [[], []]

    def ring(into: int) -> HotRing:
        return HotRing(30, 3, capacity=16, block=8, block_minutes=4,
                       summary_minutes=8, grace_minutes=3,
                       compact_minutes=8,
                       sink=lambda s, m, p: sinks[into].append((s, m, *p.fields())))  # fmt: skip

    was = ring(0)
    rng = np.random.default_rng(5)
    for minute in range(1000, 1040):
        was.fold(np.arange(12, dtype=np.int32), np.full(12, minute), rng.normal(5, 2, 12))
    was.hand_on_live()
    ringsnapshot.save(tmp_path / "snap", was, registry(), "m")
    now = ring(1)
    assert ringsnapshot.take(tmp_path / "snap", now, registry(), lambda: "m") is not None
    del sinks[0][:]
    series = np.array([2, 5, 7, 12], np.int32)  # 12: a series the stopped ring never had
    for r in (was, now):
        r.fold(series, np.array([1012, 1034, 1039, 1039]), np.array([-4.0, 9.5, 1.25, 3.0]))
        r.fold(np.array([1], np.int32), np.array([1044]), np.array([0.5]))  # the head moves
        r.hand_on_live()
    assert len(sinks[0]) == len(sinks[1]) > 0
    for a, b in zip(*sinks, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    everyone = np.arange(13, dtype=np.int32)
    for x, y in zip(was.read(everyone, 1000, 45).fields(), now.read(everyone, 1000, 45).fields(),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))


def test_a_ring_whose_live_minutes_are_not_handed_on_is_not_kept(
    sealed_ring: HotRing, tmp_path: Path
) -> None:
    """The snapshot holds what the store holds: points still in a live row are not there."""
    sealed_ring.fold(np.array([0], np.int32), np.array([1039]), np.array([1.0]))
    with pytest.raises(ValueError, match="not handed on"):
        ringsnapshot.save(tmp_path / "snap", sealed_ring, registry(), "m")
    assert list(tmp_path.iterdir()) == []


def refused(d: Path, ring: HotRing, reg: Registry, marker: str, reason: str) -> None:
    with pytest.raises(ringsnapshot.Refused, match=reason):
        ringsnapshot.take(d, ring, reg, lambda: marker)
    assert not d.exists()  # gone: a later start rebuilds from the store
    assert ring.head is None  # and the ring is untouched


def test_a_snapshot_is_refused_when_the_store_changed(sealed_ring: HotRing, tmp_path: Path) -> None:
    d = tmp_path / "snap"
    ringsnapshot.save(d, sealed_ring, registry(), "db.t:41:0")
    refused(d, fresh(), registry(), "db.t:42:0", r"the store changed since the stop")


def test_a_snapshot_is_refused_for_a_ring_of_another_shape(
    sealed_ring: HotRing, tmp_path: Path
) -> None:
    d = tmp_path / "snap"
    ringsnapshot.save(d, sealed_ring, registry(), "m")
    other = HotRing(60, 3, capacity=16, block=8, block_minutes=4,
                    summary_minutes=8, grace_minutes=3,
                    compact_minutes=8)  # fmt: skip
    refused(d, other, registry(), "m", r"a ring of")


def test_a_snapshot_is_refused_when_the_series_are_numbered_otherwise(
    sealed_ring: HotRing, tmp_path: Path
) -> None:
    d = tmp_path / "snap"
    ringsnapshot.save(d, sealed_ring, registry(), "m")
    other = Registry()
    other.servers.intern(np.array([f"s{i}" for i in range(SERIES)], dtype=object))
    other.metrics.intern(np.array(["m", "n"], dtype=object))
    other.ensure_series([3], [1])  # one series more, numbered first
    other.ensure_series(np.arange(SERIES), np.zeros(SERIES, np.int64))
    refused(d, fresh(), other, "m", r"numbers the series otherwise")
    ringsnapshot.save(d, sealed_ring, registry(), "m")
    refused(d, fresh(), Registry(), "m", r"12 series in the ring, 0 in the store")


@pytest.mark.parametrize("damage", ["flip", "cut", "manifest", "number"])
def test_a_damaged_snapshot_is_refused(sealed_ring: HotRing, tmp_path: Path, damage: str) -> None:
    d = tmp_path / "snap"
    size = ringsnapshot.save(d, sealed_ring, registry(), "m")
    data = d / ringsnapshot.ARRAYS
    raw = bytearray(data.read_bytes())
    assert len(raw) == size
    if damage == "flip":
        raw[size - 40] ^= 0x10
        data.write_bytes(bytes(raw))
        reason = "fails its CRC-32"
    elif damage == "cut":
        data.write_bytes(bytes(raw[: size // 2]))
        reason = "cut short"
    elif damage == "manifest":
        (d / ringsnapshot.MANIFEST).write_text(json.dumps({"format": 1}))
        reason = "manifest fails its CRC-32"
    else:  # one number of the manifest: a block's first minute
        manifest = json.loads((d / ringsnapshot.MANIFEST).read_text())
        manifest["blocks"][0][0]["start"] += 4
        (d / ringsnapshot.MANIFEST).write_text(json.dumps(manifest))
        reason = "manifest fails its CRC-32"
    refused(d, fresh(), registry(), "m", reason)


def test_no_snapshot_an_empty_ring_and_a_ring_that_seals_nothing_leave_nothing(
    tmp_path: Path,
) -> None:
    d = tmp_path / "snap"
    assert ringsnapshot.take(d, fresh(), registry(), lambda: "m") is None
    assert ringsnapshot.save(d, fresh(), registry(), "m") == 0  # nothing held: nothing to keep
    short = HotRing(10, 3, capacity=16, block=8)  # its window fits its slots: it rebuilds
    short.fold(np.array([0], np.int32), np.array([1000]), np.array([1.0]))
    short.hand_on_live()
    assert not short.sealing and ringsnapshot.save(d, short, registry(), "m") == 0
    assert not d.exists()
    half = d.with_name(d.name + ".partial")
    half.mkdir()  # a stop killed while it wrote
    (half / ringsnapshot.ARRAYS).write_bytes(b"x")
    assert ringsnapshot.take(d, fresh(), registry(), lambda: "m") is None
    assert not half.exists()


def test_a_snapshot_of_another_build_is_refused(
    sealed_ring: HotRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "snap"
    ringsnapshot.save(d, sealed_ring, registry(), "m")
    monkeypatch.setattr(ringsnapshot, "layout", lambda: "another codec")
    refused(d, fresh(), registry(), "m", r"another build of minutely's ring wrote it")


def test_the_store_is_asked_only_when_there_is_a_snapshot(
    sealed_ring: HotRing, tmp_path: Path
) -> None:
    d = tmp_path / "snap"

    def unreadable() -> str:
        raise RuntimeError("system.parts: access denied")

    assert ringsnapshot.take(d, fresh(), registry(), unreadable) is None
    ringsnapshot.save(d, sealed_ring, registry(), "m")
    with pytest.raises(ringsnapshot.Refused, match=r"marker cannot be read: system\.parts"):
        ringsnapshot.take(d, fresh(), registry(), unreadable)
    assert not d.exists()


def test_a_save_that_fails_leaves_nothing_behind(
    sealed_ring: HotRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "snap"
    monkeypatch.setattr(ringsnapshot, "SPARE_BYTES", 1 << 62)
    with pytest.raises(OSError, match="MB are free"):
        ringsnapshot.save(d, sealed_ring, registry(), "m")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ringsnapshot.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ringsnapshot.save(d, sealed_ring, registry(), "m")
    assert list(tmp_path.iterdir()) == []
