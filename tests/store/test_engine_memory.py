"""The embedded engine's memory bounds (``StoreConfig.engine_memory``, ``engine_mark_cache``)
reach the engine. The engine is one per process and takes its settings when it starts, so
each case opens its store in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minutely.store import StoreConfig

PROBE = """
import json, sys
import clickhouse_connect
from minutely.store import Store, StoreConfig
store = Store.open(StoreConfig(sys.argv[1], engine_memory=int(sys.argv[2]),
                               engine_mark_cache=int(sys.argv[3])))
rows = clickhouse_connect.get_client(dsn=sys.argv[1]).query(
    "SELECT name, value FROM system.server_settings WHERE name IN"
    " ('max_server_memory_usage', 'mark_cache_size', 'merges_mutations_memory_usage_soft_limit')"
).result_rows
print(json.dumps(dict(rows)))
store.close()
"""


def engine_settings(tmp_path: Path, memory: int, mark_cache: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"chdb://{tmp_path}/store", str(memory), str(mark_cache)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {k: int(v) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def test_the_bounds_reach_the_engine(tmp_path: Path) -> None:
    got = engine_settings(tmp_path, 1 << 30, 64 << 20)
    assert got == {
        "max_server_memory_usage": 1 << 30,
        "merges_mutations_memory_usage_soft_limit": 1 << 29,
        "mark_cache_size": 64 << 20,
    }


def test_zero_leaves_the_engine_its_defaults(tmp_path: Path) -> None:
    got = engine_settings(tmp_path, 0, 0)
    assert got["mark_cache_size"] == 5 << 30  # the engine's own
    assert got["max_server_memory_usage"] > 1 << 30


def test_negative_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        StoreConfig("chdb:///x", engine_memory=-1)
