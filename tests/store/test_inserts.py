"""``insert_pieces``: long backfills cut into inserts the engine takes, the same way twice."""

from __future__ import annotations

import numpy as np

from minutely.model import Partials
from minutely.store.inserts import (
    MAX_DAYS_PER_INSERT,
    MAX_ROWS_PER_INSERT,
    insert_pieces,
    minute_table,
)


def _table(minutes: np.ndarray) -> object:
    n = minutes.shape[0]
    v = np.arange(n, dtype=np.float64)
    return minute_table(
        np.zeros(n, np.uint32), np.arange(n) % 7, minutes, Partials(v, v, v, np.ones(n, np.uint32))
    )


def test_a_short_insert_is_one_piece_and_untouched() -> None:
    rows = _table(np.arange(1000, dtype=np.int64) * 7)
    assert insert_pieces(rows) == [rows]


def test_many_days_are_cut_into_pieces_of_few_days_holding_every_row() -> None:
    rng = np.random.default_rng(1)
    minutes = rng.integers(0, 400 * 1440, 50_000)  # 400 days, shuffled
    rows = _table(minutes)
    pieces = insert_pieces(rows)
    assert len(pieces) >= 400 // MAX_DAYS_PER_INSERT
    seen = []
    last_day = -1
    for piece in pieces:
        days = piece.column("ts").to_numpy() // 86_400
        assert len(np.unique(days)) <= MAX_DAYS_PER_INSERT
        assert int(days.min()) > last_day  # day order, no day in two pieces
        last_day = int(days.max())
        seen.append(piece.column("min").to_numpy())
    assert sorted(np.concatenate(seen).tolist()) == list(range(50_000))
    again = insert_pieces(rows)  # deterministic: a retry cuts the same way
    assert [p.equals(q) for p, q in zip(pieces, again, strict=True)] == [True] * len(pieces)


def test_many_rows_in_one_day_are_cut_by_rows() -> None:
    rows = _table(np.full(MAX_ROWS_PER_INSERT + 10, 5, dtype=np.int64))
    pieces = insert_pieces(rows)
    assert [p.num_rows for p in pieces] == [MAX_ROWS_PER_INSERT, 10]
