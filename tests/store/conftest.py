"""Fixtures for the store suites: every store implementation behind one parameter.

``STORE_FACTORIES`` lists how to open a ``Store`` for a database name; the contract tests
run once per entry. Each test gets a database of its own, dropped and closed afterwards, so
tests never see each other's rows. A ClickHouse-server entry joins the list with a factory
whose DSN is ``http://host:8123`` (skipped when no server is reachable).

chDB hosts one engine directory per process; every test here shares one, and closing every
store after each test lets other suites open engines of their own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minutely.store import Retention, Store, StoreConfig

#: ``factory(database, retention, index_granularity) -> Store``
StoreFactory = Callable[[str, Retention, int], Store]

_ENGINE_DIR: list[Path] = []


def _chdb(database: str, retention: Retention, granularity: int) -> Store:
    dsn = f"chdb://{_ENGINE_DIR[0]}"
    return Store.open(StoreConfig(dsn, database, retention, granularity))


STORE_FACTORIES: list[tuple[str, StoreFactory]] = [
    ("chdb", _chdb),
]

_names = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _engine_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not _ENGINE_DIR:
        _ENGINE_DIR.append(tmp_path_factory.mktemp("chdb"))


#: what the ``make_store`` fixture returns: ``make(retention=…, index_granularity=…)``
MakeStore = Callable[..., Store]


@pytest.fixture(
    params=[factory for _, factory in STORE_FACTORIES], ids=[n for n, _ in STORE_FACTORIES]
)
def make_store(request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """Open stores of the parametrised implementation, each on a fresh database."""
    factory: StoreFactory = request.param
    made: list[Store] = []

    def make(
        retention: Retention | None = None, index_granularity: int = 8192, database: str = ""
    ) -> Store:
        name = database or f"t{next(_names)}"
        store = factory(name, retention or Retention(), index_granularity)
        made.append(store)
        return store

    yield make
    for store in made:
        store.drop()
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    """A store with default settings on a fresh database."""
    return make_store()
