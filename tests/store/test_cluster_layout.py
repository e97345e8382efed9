"""A cluster's store: each copy writes its own 1-minute table, exactly once, and rolls it up;
no view copies one into the other; a store of the other layout is refused."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from minutely.model import Partials
from minutely.store import Store, StoreConfig, StoreCorrupt
from tests.store.conftest import _ENGINE_DIR

_names = itertools.count()


@pytest.fixture
def database() -> Iterator[str]:
    name = f"cluster_layout_{next(_names)}"
    yield name
    with Store(StoreConfig(f"chdb://{_ENGINE_DIR[0]}", name)) as store:
        store.drop()


def _open(database: str, layout: str = "cluster", copy: str = "server") -> Store:
    config = StoreConfig(f"chdb://{_ENGINE_DIR[0]}", database, layout=layout, copy=copy)  # type: ignore[arg-type]
    return Store.open(config)


def _parts(values: list[float]) -> Partials:
    v = np.asarray(values)
    return Partials(v, v, v, np.ones(len(v), dtype=np.uint32))


def test_each_copy_writes_its_own_table_once(database: str) -> None:
    by_server, by_metric = _open(database, copy="server"), _open(database, copy="metric")
    try:
        minute = 29_000_000
        s, m = np.array([1, 1, 2]), np.array([7, 8, 7])
        minutes = np.array([minute, minute, minute + 1])
        by_server.write_minutes(s, m, minutes, _parts([1.0, 2.0, 3.0]), token="t-s")
        by_server.write_minutes(s, m, minutes, _parts([1.0, 2.0, 3.0]), token="t-s")  # again
        # nothing reaches the metric copy but its own inserts
        assert (
            by_server.summary("metric", 7, None, minute, 10).dense(np.array([1, 2])).count.sum()
            == 0
        )
        by_metric.write_minutes(s[:2], m[:2], minutes[:2], _parts([1.0, 2.0]), token="t-m")
        q1 = by_server.summary("server", 1, None, minute, 10).dense(np.array([7, 8]))
        assert q1.count.tolist() == [1, 1] and q1.sum.tolist() == [1.0, 2.0]
        q2 = by_metric.summary("metric", 7, None, minute, 10).dense(np.array([1, 2]))
        assert q2.count.tolist() == [1, 0]
        # each copy's day tier follows its own minutes, and knows its series
        assert by_server.series_pairs("server", [1])[1].tolist() == [7, 8]
        assert sorted(by_metric.series_pairs("metric", [7])[0].tolist()) == [1]
        # a shard's rebuild reads only its own servers (or metrics) from its copy
        rows = by_server.read_minutes(minute, 10, ids=[2])
        assert rows.server_ids.tolist() == [2] and rows.parts.sum.tolist() == [3.0]
        rows = by_metric.read_minutes(minute, 10, ids=[8])
        assert rows.metric_ids.tolist() == [8]
    finally:
        by_server.close()
        by_metric.close()


def test_a_store_of_the_other_layout_is_refused(database: str) -> None:
    _open(database, layout="single").close()
    with pytest.raises(StoreCorrupt, match="single layout"):
        _open(database, layout="cluster")


def test_a_shard_finds_where_its_minutes_begin(database: str) -> None:
    store = _open(database, copy="metric")
    try:
        assert store.first_minute(0, [7]) is None
        store.write_minutes([1, 2], [7, 8], [29_000_005, 29_000_001], _parts([1.0, 2.0]))
        assert store.first_minute(0, [7]) == 29_000_005
        assert store.first_minute(0, [7, 8]) == 29_000_001
        assert store.first_minute(29_000_006, [7]) is None
    finally:
        store.close()
