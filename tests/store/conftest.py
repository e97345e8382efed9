"""Fixtures for the store suites: every store implementation behind one parameter.

``STORE_FACTORIES`` lists how to open a ``Store`` for a database name; the contract tests
run once per entry. Each test gets a database of its own, dropped and closed afterwards, so
tests never see each other's rows.

- ``chdb``: the embedded engine (``chdb:///dir``). chDB hosts one engine directory per
  process; every test here shares one, and closing every store after each test lets other
  suites open engines of their own.
- ``http``: the ``http://`` DSN, so clickhouse-connect's HTTP client, against one server for
  the whole session, started by the first test that needs it. No real ClickHouse server can
  run here, so it is ``minutely.testing.clickhouse_http``: the HTTP interface answered by
  chDB's engine in a process of its own. If it does not start, the tests fail.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minutely.store import Retention, Store, StoreConfig
from minutely.testing.clickhouse_http import ClickHouseHttpServer

#: ``factory(database, retention, index_granularity) -> Store``
StoreFactory = Callable[[str, Retention, int], Store]

_ENGINE_DIR: list[Path] = []
_HTTP_SERVER: list[ClickHouseHttpServer] = []


def _chdb(database: str, retention: Retention, granularity: int) -> Store:
    dsn = f"chdb://{_ENGINE_DIR[0]}"
    return Store.open(StoreConfig(dsn, database, retention, granularity))


def _http(database: str, retention: Retention, granularity: int) -> Store:
    server = _HTTP_SERVER[0]
    server.start()  # the first call of the session starts it; later ones return at once
    return Store.open(StoreConfig(server.url, database, retention, granularity))


STORE_FACTORIES: list[tuple[str, StoreFactory]] = [
    ("chdb", _chdb),
    ("http", _http),
]

_names = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _engine_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not _ENGINE_DIR:
        _ENGINE_DIR.append(tmp_path_factory.mktemp("chdb"))


@pytest.fixture(scope="session", autouse=True)
def _http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's ClickHouse stand-in: made here, started on first use, stopped at the end."""
    server = ClickHouseHttpServer(tmp_path_factory.mktemp("clickhouse-http"))
    _HTTP_SERVER.append(server)
    yield
    server.stop()
    _HTTP_SERVER.remove(server)


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
