"""Stored formats carry a version: a store made by the previous release is migrated in
place and answers the same; a store from a newer minutely is refused with what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minutely.model import Partials
from minutely.store import Store, StoreConfig, StoreCorrupt
from minutely.store.schema import SCHEMA_VERSION, VERSION_TABLE, statements
from minutely.store.tiers import TIER_1D, TIER_1H

DAY0 = 19_000 * 1440

#: the coarse tiers' codecs before version 2 (``git show 7d0df8a``)
V1_CODECS = {"id": "T64, LZ4", "ts": "DoubleDelta, LZ4", "value": "LZ4"}


def v1_statements(config: StoreConfig) -> list[str]:
    """The DDL the previous release ran: no version table, the old coarse-tier codecs."""
    out = []
    for sql in statements(config):
        if "minutes_1h " in sql or "minutes_1d " in sql or "_by_metric (" in sql:
            sql = sql.replace("CODEC(LZ4)", "CODEC(@)")
            for kind, codec in V1_CODECS.items():
                column = {"id": "server_id UInt32", "ts": "ts DateTime('UTC')"}.get(kind)
                if column:
                    sql = sql.replace(f"{column} CODEC(@)", f"{column} CODEC({codec})")
            sql = sql.replace(
                "metric_id UInt32 CODEC(@)", f"metric_id UInt32 CODEC({V1_CODECS['id']})"
            )
            sql = sql.replace("CODEC(@)", "CODEC(LZ4)")
        out.append(sql)
    return out


def codecs(store: Store, table: str) -> dict[str, str]:
    t = store._arrow(
        "SELECT name, compression_codec FROM system.columns"
        " WHERE database = {db:String} AND table = {t:String}",
        {"db": store.config.database, "t": table},
    )
    return dict(
        zip(t.column("name").to_pylist(), t.column("compression_codec").to_pylist(), strict=True)
    )


def test_a_store_of_the_previous_release_is_migrated_and_answers_the_same(tmp_path: Path) -> None:
    config = StoreConfig(f"chdb://{tmp_path}/store")
    old = Store(config)
    for sql in v1_statements(config):
        old._command(sql)
    assert "T64" in codecs(old, TIER_1H.table)["server_id"]
    rng = np.random.default_rng(2)
    n = 5000
    s, m = rng.integers(0, 4, n), rng.integers(0, 6, n)
    t = DAY0 + rng.integers(0, 3 * 1440, n)
    v = np.round(rng.normal(50, 10, n), 2)
    old.write_minutes(s, m, t, Partials(v, v, v, np.ones(n, np.uint32)))
    before = [old.summary("server", k, None, DAY0, 3 * 1440) for k in range(4)]
    hours = old.read("metric", 2, None, DAY0, 3 * 1440, 60)
    old.close()

    store = Store.open(config)  # migrates
    try:
        assert store.schema_version() == SCHEMA_VERSION
        for table in (TIER_1H.table, TIER_1D.table, TIER_1H.by_metric):
            assert set(codecs(store, table).values()) == {"CODEC(LZ4)"}, table
        for k, want in enumerate(before):
            got = store.summary("server", k, None, DAY0, 3 * 1440)
            for a, b in zip(got.parts.fields(), want.parts.fields(), strict=True):
                np.testing.assert_array_equal(a, b)
        again = store.read("metric", 2, None, DAY0, 3 * 1440, 60)
        assert int(again.parts.count.sum()) == int(hours.parts.count.sum()) > 0
        store.write_minutes([0], [0], [DAY0], Partials(*(np.ones(1),) * 3, np.ones(1, np.uint32)))
    finally:
        store.close()
    reopened = Store.open(config)  # nothing left to migrate: one version row
    try:
        rows = reopened._arrow(f"SELECT version FROM {config.database}.{VERSION_TABLE}")
        assert rows.column("version").to_pylist() == [SCHEMA_VERSION]
    finally:
        reopened.close()


def test_a_store_of_a_newer_minutely_is_refused(tmp_path: Path) -> None:
    config = StoreConfig(f"chdb://{tmp_path}/store")
    Store.open(config).close()
    store = Store(config)
    store._command(
        f"INSERT INTO {config.database}.{VERSION_TABLE} (version) VALUES ({SCHEMA_VERSION + 1})"
    )
    store.close()
    with pytest.raises(StoreCorrupt, match=r"newer minutely .* upgrade minutely"):
        Store.open(config)
