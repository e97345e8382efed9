"""``StoreWriter`` against a real embedded store: refused rows set aside, outages retried,
stops spilled, the bound that makes ingest answer 503."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minutely import store_writer
from minutely.checkpoint import Checkpoint, Checkpointer, CheckpointFile
from minutely.hot import HotRing
from minutely.letters import LetterBox, points_of, points_table
from minutely.model import Partials, PointBatch
from minutely.registry import Registry
from minutely.store import MinuteRows, Store, StoreConfig, StoreError
from minutely.store_writer import ISOLATE_AFTER, ROW_BYTES, StoreWriter

DAY0 = 19_000 * 1440  # a UTC midnight, in minutes


class RefusingStore:
    """A real store whose engine refuses any insert holding a row of ``bad_server``
    (a poison row), or every insert while ``down`` (an outage, and the probe fails)."""

    def __init__(self, store: Store, bad_server: int | None = None) -> None:
        self.store = store
        self.bad_server = bad_server
        self.down = False
        self.inserts: list[str | None] = []
        #: errors the next inserts raise, one each, whatever they hold
        self.fail_next: list[str] = []

    def insert_piece(self, piece: Any, token: str | None) -> int:
        self.inserts.append(token)
        if self.fail_next:
            raise StoreError(self.fail_next.pop(0))
        if self.down:
            raise StoreError("connection refused (injected outage)")
        if self.bad_server is not None and self.bad_server in piece.column("server_id").to_pylist():
            raise StoreError("Code: 999. the engine refuses this row (injected)")
        return self.store.insert_piece(piece, token)

    def reachable(self) -> bool:
        return not self.down

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(StoreConfig(f"chdb://{tmp_path}/store"))
    try:
        yield s
    finally:
        s.close()


def fleet(registry: Registry, servers: int, metrics: int, minutes: int) -> tuple[Any, ...]:
    """One partial per (series, minute) over ``minutes`` day-spread minutes."""
    s = np.repeat(np.arange(servers), metrics)
    m = np.tile(np.arange(metrics), servers)
    batch = PointBatch.from_names(
        [f"s{i}" for i in s], [f"m{j}" for j in m], np.zeros(len(s)), np.zeros(len(s))
    )
    series = registry.series_ids(batch)
    series = np.repeat(series, minutes)
    mins = np.tile(DAY0 + np.arange(minutes) * 1440 // 4, servers * metrics).astype(np.int64)
    v = np.arange(len(series), dtype=np.float64)
    return series, mins, Partials(v, v + 1, v * 2, np.full(len(v), 2, np.uint32))


def stored_count(store: Store, registry: Registry) -> int:
    total = 0
    for sid in range(len(registry.servers)):
        cells = store.summary("server", sid, None, DAY0 - 10, 400 * 1440)
        total += int(cells.parts.count.sum())
    return total


def test_refused_rows_are_set_aside_and_the_rest_lands(store: Store, tmp_path: Path) -> None:
    registry = Registry()
    series, minutes, parts = fleet(registry, 8, 5, 40)
    bad = registry.servers.get("s3")
    refusing = RefusingStore(store, bad_server=bad)
    box = LetterBox(tmp_path / "dead")
    writer = StoreWriter(refusing, registry, dead_letters=box)  # type: ignore[arg-type]
    writer.accept(series, minutes, parts)
    for _ in range(ISOLATE_AFTER - 1):  # not yet isolated: it might be a passing failure
        with pytest.raises(StoreError):
            writer.flush()
        assert writer.stats.pending == len(series)
    writer.flush()  # the third failure with the store answering: isolate
    assert writer.stats.pending == 0 and writer.stats.pending_bytes == 0
    bad_rows = int((registry.series_of(series)[0] == bad).sum())
    assert writer.stats.dead_rows == bad_rows
    assert stored_count(store, registry) == 2 * (len(series) - bad_rows)
    letters = [box.read(p) for p in box.paths()]
    assert sum(letter.table.num_rows for letter in letters) == bad_rows
    assert {letter.kind for letter in letters} == {"rows"}
    assert all("refuses this row" in letter.reason for letter in letters)
    assert set().union(*(set(letter.table.column("server").to_pylist()) for letter in letters)) == {
        "s3"
    }
    # the cause fixed, the letters replayed: everything is in the store, once
    refusing.bad_server = None
    for _ in range(2):  # a replay repeated (a crash before the letter was removed): once
        for letter in letters:
            writer.replay(letter.table, f"replay-{letter.path.stem}")
    assert stored_count(store, registry) == 2 * len(series)


@pytest.mark.parametrize("kept", [True, False])
def test_an_insert_repeated_after_a_restart_is_cut_as_before(
    store: Store, tmp_path: Path, kept: bool
) -> None:
    """A checkpoint's insert, repeated at the next start with its token, must add nothing
    its first run added: pieces that run split went in as halves with tokens of their own,
    and pieces it set aside are in dead letters. With the cuts kept in the data dir, the
    repeat cuts the same halves and skips what was set aside; without them (``kept`` off,
    as before), a piece inserted whole adds its halves' rows a second time."""
    registry = Registry()
    series, minutes, parts = fleet(registry, 8, 5, 40)
    server_ids, metric_ids = registry.series_of(series)
    bad = registry.servers.get("s3")
    refusing = RefusingStore(store, bad_server=bad)
    cuts = tmp_path / store_writer.CUTS_FILE if kept else None
    box = LetterBox(tmp_path / "dead")
    first = StoreWriter(refusing, registry, dead_letters=box, cuts=cuts)  # type: ignore[arg-type]
    first.insert(server_ids, metric_ids, minutes, parts, token="ck-7-0", patience=1)
    bad_rows = int((server_ids == bad).sum())
    assert first.stats.dead_rows == bad_rows
    assert stored_count(store, registry) == 2 * (len(series) - bad_rows)

    refusing.bad_server = None  # the engine takes every row now, as after an upgrade
    again = StoreWriter(refusing, registry, dead_letters=box, cuts=cuts)  # type: ignore[arg-type]
    again.insert(server_ids, metric_ids, minutes, parts, token="ck-7-0", patience=1)
    if kept:
        assert stored_count(store, registry) == 2 * (len(series) - bad_rows)
        for letter in (box.read(p) for p in box.paths()):
            again.replay(letter.table, f"replay-{letter.path.stem}")
        assert stored_count(store, registry) == 2 * len(series)  # each row once
    else:
        assert stored_count(store, registry) > 2 * len(series)  # halves' rows again


def test_an_outage_is_retried_with_the_same_token_and_never_dead_lettered(
    store: Store, tmp_path: Path
) -> None:
    registry = Registry()
    series, minutes, parts = fleet(registry, 2, 2, 3)
    refusing = RefusingStore(store)
    box = LetterBox(tmp_path / "dead")
    writer = StoreWriter(
        refusing,  # type: ignore[arg-type]
        registry,
        dead_letters=box,
        max_bytes=ROW_BYTES * len(series) * 2,
    )
    writer.accept(series, minutes, parts)
    refusing.down = True
    for _ in range(ISOLATE_AFTER + 2):
        with pytest.raises(StoreError):
            writer.flush()
    assert not box.paths() and writer.stats.dead_rows == 0
    assert not writer.full
    writer.accept(series, minutes, parts)  # more while the store is down: at the bound
    assert writer.full
    refusing.down = False
    writer.flush()
    assert not writer.full and writer.stats.pending == 0
    tokens = [t for t in refusing.inserts if t is not None]
    assert tokens[0] == tokens[ISOLATE_AFTER + 2]  # the retry kept its token
    assert stored_count(store, registry) == 2 * 2 * len(series)


def test_a_stop_with_the_store_down_spills_and_the_next_start_inserts(
    store: Store, tmp_path: Path
) -> None:
    registry = Registry()
    series, minutes, parts = fleet(registry, 3, 2, 5)
    refusing = RefusingStore(store)
    spill = LetterBox(tmp_path / "spill")
    writer = StoreWriter(refusing, registry, spill=spill)  # type: ignore[arg-type]
    writer.accept(series, minutes, parts)
    refusing.down = True
    writer.stop()  # does not raise
    assert writer.stats.spilled_rows == len(series) and len(spill.paths()) == 1
    # the next start: a fresh registry loaded from the store (which never saw the names)
    fresh = store.load_registry()
    again = StoreWriter(store, fresh, spill=spill)
    assert again.recover_spill() == len(series)
    assert not spill.paths()
    assert stored_count(store, fresh) == 2 * len(series)
    assert again.recover_spill() == 0  # nothing twice


def test_letters_round_trip_and_refuse_other_files(tmp_path: Path) -> None:
    box = LetterBox(tmp_path / "box", clock=lambda: 123.0)
    batch = PointBatch.from_names(["a", "b"], ["x", "x"], [1.0, 2.0], [0.5, -0.0])
    path = box.put("p/1", "points", points_table(batch), "why\nsecond line")
    assert path.name == "p_1.arrow" and box.paths() == [path]
    letter = box.read(path)
    assert (letter.kind, letter.reason, letter.written_at) == ("points", "why", 123.0)
    back = points_of(letter.table)
    assert back.value.tolist() == [0.5, -0.0] and np.signbit(back.value[1])
    assert box.summary() == {"files": 1, "rows": 2}
    (tmp_path / "box" / "junk.arrow").write_bytes(b"not arrow")
    with pytest.raises(ValueError, match="not a minutely letter"):
        box.read(tmp_path / "box" / "junk.arrow")


def test_a_full_disk_is_retried_not_dead_lettered(store: Store, tmp_path: Path) -> None:
    registry = Registry()
    series, minutes, parts = fleet(registry, 2, 2, 3)
    refusing = RefusingStore(store)
    box = LetterBox(tmp_path / "dead")
    writer = StoreWriter(refusing, registry, dead_letters=box)  # type: ignore[arg-type]
    writer.accept(series, minutes, parts)
    refusing.fail_next = ["Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space"]
    refusing.fail_next *= ISOLATE_AFTER + 3
    for _ in range(ISOLATE_AFTER + 3):
        with pytest.raises(StoreError, match="not enough space"):
            writer.flush()
    assert not box.paths()
    writer.flush()
    assert stored_count(store, registry) == 2 * len(series)


def test_an_outage_in_the_middle_of_isolating_resumes_without_counting_twice(
    store: Store, tmp_path: Path
) -> None:
    """Halves that landed under their own tokens are not inserted again whole."""
    registry = Registry()
    series, minutes, parts = fleet(registry, 8, 4, 10)
    bad = registry.servers.get("s6")  # in the second half of the rows
    refusing = RefusingStore(store, bad_server=bad)
    box = LetterBox(tmp_path / "dead")
    writer = StoreWriter(refusing, registry, dead_letters=box)  # type: ignore[arg-type]
    writer.accept(series, minutes, parts)
    for _ in range(ISOLATE_AFTER - 1):
        with pytest.raises(StoreError):
            writer.flush()
    real_insert = refusing.insert_piece
    landed: list[str | None] = []

    def down_after_first_half(piece: Any, token: str | None) -> int:
        if landed:  # the first half landed: now the store goes away
            refusing.down = True
        written = real_insert(piece, token)
        landed.append(token)
        return written

    refusing.insert_piece = down_after_first_half  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="outage"):
        writer.flush()
    assert landed and str(landed[0]).endswith("a")
    refusing.insert_piece = real_insert  # type: ignore[method-assign]
    refusing.down = False
    writer.flush()
    bad_rows = int((registry.series_of(series)[0] == bad).sum())
    assert writer.stats.dead_rows == bad_rows
    assert stored_count(store, registry) == 2 * (len(series) - bad_rows)


def test_a_checkpoint_holding_refused_rows_does_not_stop_a_start(
    store: Store, tmp_path: Path
) -> None:
    """On NATS a checkpoint's insert is repeated at every start: rows the engine refuses
    are set aside at once there, so the server starts, with everything else stored."""
    registry = Registry()
    series, minutes, parts = fleet(registry, 4, 3, 6)
    store.save_registry(registry)
    server_ids, metric_ids = registry.series_of(series)
    ckpt = Checkpoint(
        "r1",
        3,
        {0: 10},
        MinuteRows(server_ids.astype(np.uint32), metric_ids.astype(np.uint32), minutes, parts),
        MinuteRows(
            np.zeros(0, np.uint32),
            np.zeros(0, np.uint32),
            np.zeros(0, np.int64),
            Partials.empty((0,)),
        ),
    )
    CheckpointFile(tmp_path / "ck").write(ckpt)
    bad = registry.servers.get("s2")
    refusing = RefusingStore(store, bad_server=bad)
    box = LetterBox(tmp_path / "dead")
    fresh = store.load_registry()
    writer = StoreWriter(refusing, fresh, interval=None, dead_letters=box)  # type: ignore[arg-type]
    ring = HotRing(60, 4, sink=writer.accept)
    checkpointer = Checkpointer(tmp_path / "ck", refusing, fresh, ring, writer)  # type: ignore[arg-type]
    assert checkpointer.recover() is not None
    bad_rows = int((server_ids == bad).sum())
    assert writer.stats.dead_rows == bad_rows > 0 and box.paths()
    assert stored_count(store, fresh) == 2 * (len(series) - bad_rows)


def test_a_spill_holds_only_what_did_not_land_and_goes_in_with_its_tokens(
    store: Store, tmp_path: Path
) -> None:
    """A backfill block cut into pieces: the first lands, the second lands but its answer
    is lost (a time-out), the third fails; the stop spills the second and third with their
    tokens, and the next start adds only the third."""
    registry = Registry()
    minutes = DAY0 + np.arange(0, 200 * 1440, 720, dtype=np.int64)  # 200 days: 4 pieces
    n = minutes.shape[0]
    batch = PointBatch.from_names(["a"], ["m"], [0.0], [0.0])
    series = np.repeat(registry.series_ids(batch), n)
    v = np.arange(n, dtype=np.float64)
    parts = Partials(v, v, v, np.ones(n, np.uint32))
    refusing = RefusingStore(store)
    real = refusing.insert_piece
    calls: list[str | None] = []

    def flaky(piece: Any, token: str | None) -> int:
        calls.append(token)
        if len(calls) == 2:  # lands, but the answer is lost
            real(piece, token)
            raise StoreError("Code: 209. DB::Exception: Timeout exceeded (injected)")
        return real(piece, token)

    refusing.insert_piece = flaky  # type: ignore[method-assign]
    spill = LetterBox(tmp_path / "spill")
    writer = StoreWriter(refusing, registry, spill=spill)  # type: ignore[arg-type]
    writer.accept(series, minutes, parts)
    with pytest.raises(StoreError, match="Timeout"):
        writer.flush()
    refusing.down = True
    writer.stop()  # the store is down at the stop: what is left is spilled
    tokens = {spill.read(p).token for p in spill.paths()}
    assert calls[1] in tokens and len(tokens) == 3  # the unanswered piece and the two after
    assert calls[0] not in tokens  # it landed: not spilled
    fresh = store.load_registry()
    StoreWriter(store, fresh, spill=spill).recover_spill()
    assert stored_count(store, fresh) == n  # every row once


def test_a_flush_inserts_the_queue_a_bounded_block_at_a_time(store: Store) -> None:
    """Queued pieces of uneven sizes go in as blocks of at most ``block_rows`` rows (the
    flush's copies scale with the block, not the queue); an outage after the first block
    resumes with the rest, and every row lands once."""
    registry = Registry()
    series, minutes, parts = fleet(registry, 4, 3, 5)  # 60 rows
    refusing = RefusingStore(store)
    sizes: list[int] = []
    real = refusing.insert_piece

    def counted(piece: Any, token: str | None) -> int:
        if refusing.down:
            raise StoreError("connection refused (injected outage)")
        sizes.append(int(piece.num_rows))
        written = real(piece, token)
        refusing.down = len(sizes) == 1  # the next block meets an outage
        return written

    refusing.insert_piece = counted  # type: ignore[method-assign]
    writer = StoreWriter(refusing, registry, block_rows=7)  # type: ignore[arg-type]
    cuts = [0, 5, 18, 20, 41, 60]
    for a, b in itertools.pairwise(cuts):
        writer.accept(series[a:b], minutes[a:b], parts.take(np.arange(a, b)))
    with pytest.raises(StoreError):
        writer.flush()
    assert sizes == [7] and writer.stats.pending == 60 - 7
    refusing.down = False
    assert writer.flush() == 60 - 7
    assert max(sizes) == 7 and sum(sizes) == 60 and writer.stats.pending == 0
    assert stored_count(store, registry) == int(parts.count.sum())
    total = 0.0
    for sid in range(len(registry.servers)):
        total += float(store.summary("server", sid, None, DAY0 - 10, 400 * 1440).parts.sum.sum())
    assert total == float(parts.sum.sum())


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_a_rebuild_read_in_slices_of_servers_loads_every_stored_minute_exactly(
    store: Store, monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    # 7 servers x 3 metrics over 3 hours, each hour read in slices of about 2 servers, with
    # none, one or three reads made ahead of the load
    monkeypatch.setattr(store_writer, "LOAD_ROWS", 2 * 3 * 60)
    monkeypatch.setattr(store_writer, "LOAD_AHEAD", ahead)
    registry = Registry()
    s = np.repeat(np.arange(7), 3)
    m = np.tile(np.arange(3), 7)
    batch = PointBatch.from_names(
        [f"s{i}" for i in s], [f"m{j}" for j in m], np.zeros(len(s)), np.zeros(len(s))
    )
    series = registry.series_ids(batch)
    store.save_registry(registry)
    now_minute = DAY0 + 600
    minutes = np.arange(now_minute - 180, now_minute, dtype=np.int64)
    rng = np.random.default_rng(15)
    shape = (len(series), len(minutes))
    lo = rng.normal(size=shape)
    hi = lo + rng.random(shape)
    parts = Partials(lo, hi, (lo + hi) * 30, rng.integers(1, 61, shape).astype(np.uint32))
    sids, mids = registry.series_of(series)
    store.write_minutes(sids[:, None], mids[:, None], minutes[None, :], parts)

    ring = HotRing(minutes=240, capacity=64)
    fresh = Registry()
    store.load_registry(into=fresh)
    loaded = store_writer.rebuild_ring(store, fresh, ring, now_minute * 60)

    assert loaded == parts.count.size
    got = ring.read(series, int(minutes[0]), len(minutes))
    np.testing.assert_array_equal(got.count, parts.count)
    np.testing.assert_array_equal(got.min, parts.min)
    np.testing.assert_array_equal(got.max, parts.max)
    np.testing.assert_array_equal(got.sum, parts.sum)
    # the engine's allocator gave back the pages of the answers it freed
    memory = store.memory()
    assert memory["allocator_resident"] - memory["allocator_allocated"] < 64 << 20


def test_a_rebuild_after_a_quiet_spell_loads_the_whole_hour_the_window_starts_in(
    store: Store,
) -> None:
    # 150 minutes stored, the newest 31 minutes before the clock; a 100-minute window of
    # hour blocks then starts at the hour that 100 minutes before the newest falls in
    registry = Registry()
    s = np.repeat(np.arange(7), 3)
    m = np.tile(np.arange(3), 7)
    batch = PointBatch.from_names(
        [f"s{i}" for i in s], [f"m{j}" for j in m], np.zeros(len(s)), np.zeros(len(s))
    )
    series = registry.series_ids(batch)
    store.save_registry(registry)
    now_minute = DAY0 + 600
    minutes = np.arange(now_minute - 180, now_minute - 30, dtype=np.int64)
    rng = np.random.default_rng(16)
    shape = (len(series), len(minutes))
    lo = rng.normal(size=shape)
    hi = lo + rng.random(shape)
    parts = Partials(lo, hi, (lo + hi) * 30, rng.integers(1, 61, shape).astype(np.uint32))
    sids, mids = registry.series_of(series)
    store.write_minutes(sids[:, None], mids[:, None], minutes[None, :], parts)

    ring = HotRing(minutes=100, capacity=64)
    assert ring.sealing
    fresh = Registry()
    store.load_registry(into=fresh)
    loaded = store_writer.rebuild_ring(store, fresh, ring, now_minute * 60)

    oldest = DAY0 + 420  # the hour of DAY0 + 470, 100 minutes back from the newest minute
    assert ring.oldest_minute() == oldest
    held = minutes >= oldest
    assert loaded == len(series) * int(held.sum())
    got = ring.read(series, int(minutes[0]), len(minutes))
    assert not got.count[:, ~held].any()
    np.testing.assert_array_equal(got.count[:, held], parts.count[:, held])
    np.testing.assert_array_equal(got.min[:, held], parts.min[:, held])
    np.testing.assert_array_equal(got.max[:, held], parts.max[:, held])
    np.testing.assert_array_equal(got.sum[:, held], parts.sum[:, held])


def test_release_memory_gives_back_the_pages_of_a_large_read(store: Store) -> None:
    # 2 M minute rows read back as one answer: ~80 MB the engine frees when it is dropped
    minutes = np.arange(DAY0, DAY0 + 1000, dtype=np.int64)
    ones = np.ones((2000, 1000))
    parts = Partials(ones, ones, ones, np.ones((2000, 1000), np.uint32))
    store.write_minutes(0, np.arange(2000)[:, None], minutes[None, :], parts)
    rows = store.read_minutes(DAY0, 1000)
    assert rows.minutes.shape[0] == 2_000_000
    del rows

    store.release_memory()

    memory = store.memory()
    assert memory["allocator_resident"] - memory["allocator_allocated"] < 32 << 20
