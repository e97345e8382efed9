"""IdempotencyKeys with a fake clock: a key names one body for the window, import keys name
theirs for good (in a ledger file that survives a restart), and the bounds hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from minutely.errors import Backpressure, BadParameter, IdempotencyConflict
from minutely.ingest.idempotency import IdempotencyKeys, body_digest
from minutely.testing.clock import FakeClock


def test_the_same_key_and_body_pass_again_and_are_not_stored() -> None:
    keys = IdempotencyKeys(clock=FakeClock())
    first = keys.check("k", b"body")
    again = keys.check("k", b"body")
    assert first == again
    assert (first.key, first.digest, first.stored) == ("k", body_digest(b"body"), False)
    assert len(keys) == 1


def test_the_same_key_with_another_body_is_a_conflict_within_the_window() -> None:
    clock = FakeClock()
    keys = IdempotencyKeys(window=120, clock=clock)
    keys.check("k", b"one")
    clock.now += 119
    with pytest.raises(IdempotencyConflict) as e:
        keys.check("k", b"two")
    assert str(e.value) == (
        "Idempotency-Key 'k' was used within the last 2 minutes for a different body"
    )
    clock.now += 1.5  # the window has passed: the key is free again
    assert not keys.check("k", b"two").stored
    with pytest.raises(IdempotencyConflict):
        keys.check("k", b"one")


def test_old_keys_are_forgotten_by_age() -> None:
    clock = FakeClock()
    keys = IdempotencyKeys(window=60, clock=clock)
    for i in range(3):
        keys.check(f"k{i}", b"x")
        clock.now += 20
    assert len(keys) == 3
    clock.now += 10
    keys.check("new", b"x")  # at +70 only k0 (seen at +0) is older than 60 s
    assert len(keys) == 3
    assert not keys.check("k0", b"another body").stored
    with pytest.raises(IdempotencyConflict):
        keys.check("k1", b"another body")


def test_too_many_keys_within_the_window_is_backpressure_until_the_oldest_expires() -> None:
    clock = FakeClock()
    keys = IdempotencyKeys(window=120, max_keys=3, clock=clock)
    for i in range(3):
        keys.check(f"k{i}", b"x")
        clock.now += 10
    keys.check("k1", b"x")  # a repeat takes no room
    with pytest.raises(Backpressure) as e:
        keys.check("k3", b"x")
    assert e.value.retry_after == pytest.approx(90)  # k0 was seen 30 s ago
    assert "3 Idempotency-Keys seen within the last 2 minutes" in str(e.value)
    clock.now += 90
    keys.check("k3", b"x")
    assert len(keys) == 3


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "is 0 bytes; it must be 1 to 256 bytes"),
        ("k" * 257, "is 257 bytes; it must be 1 to 256 bytes"),
        ("é" * 129, "is 258 bytes; it must be 1 to 256 bytes"),
        ("a\nb", "cannot contain a line break"),
    ],
)
def test_unusable_keys_are_refused(key: str, problem: str) -> None:
    keys = IdempotencyKeys(clock=FakeClock())
    with pytest.raises(BadParameter) as e:
        keys.check(key, b"x")
    assert e.value.param == "Idempotency-Key" and e.value.problem == problem
    assert len(keys) == 0
    assert not keys.check("k" * 256, b"x").stored


def test_an_ordinary_key_never_touches_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "imports.log"
    keys = IdempotencyKeys(ledger, clock=FakeClock())
    keys.published(keys.check("k", b"x"))
    assert not ledger.exists()


def test_an_import_block_is_stored_once_published_and_across_a_restart(tmp_path: Path) -> None:
    ledger = tmp_path / "data" / "imports.log"
    clock = FakeClock()
    keys = IdempotencyKeys(ledger, clock=clock)
    claim = keys.check("import:a", b"block")
    assert not claim.stored  # not yet published: a retry must publish it
    assert not keys.check("import:a", b"block").stored
    keys.published(claim)
    keys.published(claim)  # a concurrent retry: one line
    assert ledger.read_text() == f"{body_digest(b'block').hex()} import:a\n"
    clock.now += 10 * 86400  # long past the window
    assert keys.check("import:a", b"block").stored

    restarted = IdempotencyKeys(ledger, clock=clock)
    assert restarted.check("import:a", b"block").stored
    with pytest.raises(IdempotencyConflict) as e:
        restarted.check("import:a", b"other")
    assert "'import:a' was used for a different body" in str(e.value)
    assert not restarted.check("import:b", b"block").stored


def test_without_a_ledger_file_import_blocks_are_kept_in_memory() -> None:
    clock = FakeClock()
    keys = IdempotencyKeys(clock=clock)
    keys.published(keys.check("import:a", b"block"))
    clock.now += 86400
    assert keys.check("import:a", b"block").stored


def test_a_torn_last_line_is_skipped_and_the_next_line_starts_clean(tmp_path: Path) -> None:
    ledger = tmp_path / "imports.log"
    good = f"{body_digest(b'one').hex()} import:one\n"
    ledger.write_text(good + body_digest(b"two").hex()[:20])  # a crash mid-append
    keys = IdempotencyKeys(ledger, clock=FakeClock())
    assert keys.check("import:one", b"one").stored
    claim = keys.check("import:two", b"two")
    assert not claim.stored
    keys.published(claim)
    assert IdempotencyKeys(ledger, clock=FakeClock()).check("import:two", b"two").stored
    lines = ledger.read_text().splitlines()
    assert lines[0] + "\n" == good and lines[-1] == f"{claim.digest.hex()} import:two"
