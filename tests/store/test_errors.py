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


def test_settings_an_older_engine_lacks_are_not_sent(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an older ClickHouse refuses every request that carries a setting it does not know: the
    # store gives the newest settings only to an engine that lists them in system.settings
    from minutely.store import store as store_module

    real = store_module.get_client

    def older(**kwargs: object) -> object:
        client = real(**kwargs)
        for key in store_module._IF_KNOWN:
            client.server_settings.pop(key, None)
        return client

    monkeypatch.setattr(store_module, "get_client", older)
    old = make_store()
    client = old._clients.get()
    assert all(client.get_client_setting(key) is None for key in store_module._IF_KNOWN)
    old.save_names(["a"], ["cpu"])  # and the store works without them
    assert old.load_registry().servers.get("a") == 0
    monkeypatch.undo()
    new = make_store()
    got = new._clients.get()
    assert all(got.get_client_setting(k) == str(v) for k, v in store_module._IF_KNOWN.items())
