"""What the store raises: one error for a store that fails, one for a damaged registry."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from minutely.errors import MinutelyError
from minutely.model import Partials
from minutely.store import TIER_1H, Store, StoreConfig, StoreCorrupt, StoreError
from minutely.store.names import names_table, series_table
from minutely.store.schema import NAMES_TABLE, SERIES_TABLE

MakeStore = Callable[..., Store]


def test_an_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot reach the store") as err:
        Store.open(StoreConfig("http://127.0.0.1:1"))
    assert isinstance(err.value, MinutelyError)


def test_bad_arguments_are_value_errors(store: Store) -> None:
    with pytest.raises(ValueError, match="by must be"):
        store.read("host", 0, None, 0, 10, 1)  # type: ignore[arg-type]
    one = Partials(np.ones(1), np.ones(1), np.ones(1), np.ones(1, np.uint32))
    with pytest.raises(ValueError, match="multiples of 60"):
        store.write_cells(TIER_1H, [0], [0], [61], one)


def test_a_gap_in_the_names_is_refused(store: Store) -> None:
    store.save_names(["a", "b"], ["cpu"])
    store._insert(NAMES_TABLE, names_table("server", 3, ["d"]))  # id 2 missing
    with pytest.raises(StoreCorrupt, match=r"not 0\.\.2"):
        store.load_registry()


def test_one_id_with_two_names_is_refused(store: Store) -> None:
    store.save_names(["a", "b"], ["cpu"])
    store._insert(NAMES_TABLE, names_table("server", 1, ["c"]))
    with pytest.raises(StoreCorrupt, match="more than one name"):
        store.load_names()


def test_a_series_of_an_unnamed_server_is_refused(store: Store) -> None:
    store.save_names(["a"], ["cpu"])
    store._insert(SERIES_TABLE, series_table(0, np.array([4], np.uint32), np.array([0], np.uint32)))
    with pytest.raises(StoreCorrupt, match="no name"):
        store.load_series()


def test_saving_a_registry_that_forgot_names_is_refused(store: Store) -> None:
    store.save_names(["a", "b"], ["cpu"])
    with pytest.raises(StoreCorrupt, match="load_registry"):
        store.save_names(["a"], ["cpu"])
