"""The JetStream bus's books (``minutely.bus.nats.ledger``), without a broker: the bound,
publishes moving bytes from a reservation into the books, and reconciling with a stream's
state."""

from __future__ import annotations

import time

import pytest

from minutely.bus.nats.broker import StreamState
from minutely.bus.nats.ledger import Ledger
from minutely.errors import Backpressure


def state(messages: int, nbytes: int, first: int, last: int) -> StreamState:
    return StreamState(messages, nbytes, first, last, first_ts=0.0)


def test_the_bound_takes_any_batch_on_an_empty_bus_and_refuses_what_does_not_fit() -> None:
    ledger = Ledger(2)
    big = ledger.reserve(500, limit=100)  # empty: goes through, or it never could
    with pytest.raises(Backpressure, match="500 of 100 bytes"):
        ledger.reserve(1, limit=100)
    ledger.release(big)
    assert ledger.held() == 0


def test_a_publish_moves_its_bytes_from_the_reservation_into_the_books() -> None:
    ledger = Ledger(2)
    reservation = ledger.reserve(300, limit=1000)
    for partition, seq, nbytes in ((0, 1, 100), (1, 1, 150)):
        ledger.sending(partition)
        ledger.sent(partition, seq, nbytes, reservation)
    ledger.sending(1)
    ledger.sent(1, None, 40, reservation)  # a duplicate: stored before, not counted again
    assert reservation.held == 10
    ledger.release(reservation)
    assert ledger.backlog_bytes() == [100, 150]
    assert ledger.held() == 250

    ledger.forget([(0, 1)])
    assert ledger.backlog_bytes() == [0, 150]


def test_a_failed_publish_keeps_its_bytes_reserved_until_released() -> None:
    ledger = Ledger(1)
    reservation = ledger.reserve(100, limit=1000)
    ledger.sending(0)
    ledger.failed(0)
    assert ledger.held() == 100
    ledger.release(reservation)
    assert ledger.held() == 0


def test_sync_estimates_messages_it_never_saw_and_drops_committed_ones() -> None:
    ledger = Ledger(1)
    ledger.learn(0, 3, 100)
    ledger.learn(0, 4, 100)
    # the stream holds 3..6: two messages of others, 50 stored bytes each
    ledger.sync([state(4, 200, 3, 6)], asked_at=time.monotonic())
    assert ledger.backlog_bytes() == [200 + 2 * 50]
    # 3 committed elsewhere and gone; 4 still there
    ledger.sync([state(3, 150, 4, 6)], asked_at=time.monotonic())
    assert ledger.backlog_bytes() == [100 + 2 * 50]
    ledger.sync([state(0, 0, 7, 6)], asked_at=time.monotonic())
    assert ledger.backlog_bytes() == [0]


def test_a_commit_after_the_state_was_asked_for_is_not_counted_as_unknown() -> None:
    ledger = Ledger(1)
    ledger.learn(0, 1, 100)
    asked = time.monotonic()
    ledger.forget([(0, 1)])  # committed while the state was on its way: still in it
    ledger.sync([state(1, 60, 1, 1)], asked_at=asked)
    assert ledger.backlog_bytes() == [0]
