"""``minutely.store.engine``, the one use of clickhouse-connect's private chDB backend: the
release is the one pyproject.toml bounds, the private names still take the parameters the
wrapper passes, and its answers equal the public path's, empty ones and bound parameters
included. A clickhouse-connect release that moves any of this fails here first."""

from __future__ import annotations

import gc
import inspect

import pyarrow as pa
import pytest
from clickhouse_connect.driver._backend.chdb_backend import ChdbBackend
from clickhouse_connect.driver._chdbclient import ChdbClient

from minutely.store import Store
from minutely.store.engine import FORMAT, query_arrow
from tests.pins import assert_tested_release

QUERIES = [
    ("SELECT 1 AS one", None),
    (
        "SELECT number AS n, toString(number) AS s, if(number % 3 = 0, NULL, number / 2) AS x"
        " FROM numbers({count:UInt32})",
        {"count": 100_000},
    ),
    ("SELECT number AS n FROM numbers(10) WHERE n > {above:UInt32}", {"above": 100}),
    ("SELECT {name:String} AS name, [1, 2] AS xs", {"name": "web-'001'"}),
]


def test_clickhouse_connect_is_the_release_pyproject_bounds() -> None:
    assert_tested_release("clickhouse-connect")


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_private_names_take_what_the_wrapper_passes() -> None:
    assert parameters(ChdbClient._prep_raw_query_runtime)[1:] == [
        "query",
        "parameters",
        "settings",
        "fmt",
        "use_database",
    ]
    run = parameters(ChdbBackend._run_with_settings)
    assert run[1:4] == ["sql", "fmt", "settings"] and {"params", "database"} <= set(run)
    assert parameters(ChdbBackend._engine_settings)[-1:] == ["settings"]


@pytest.mark.parametrize(("sql", "params"), QUERIES, ids=range(len(QUERIES)))
def test_answers_equal_the_public_path(
    store: Store, sql: str, params: dict[str, object] | None
) -> None:
    client = store._clients.get()
    got = query_arrow(client, sql, params)
    public = pa.ipc.open_stream(client.raw_query(sql, params, fmt=FORMAT)).read_all()
    assert got.equals(public)


def test_the_table_keeps_the_engine_answer_alive(store: Store) -> None:
    sql = "SELECT number * 2 AS n FROM numbers(1000000)"
    table = query_arrow(store._clients.get(), sql, None)
    gc.collect()
    column = table.column("n").to_numpy()
    assert column[0] == 0 and column[-1] == 1_999_998 and len(column) == 1_000_000
