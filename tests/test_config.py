"""Settings precedence: defaults < TOML < environment < flags; errors name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from minutely.config import Settings, client_token, load, parse_duration, parse_size
from minutely.errors import ConfigError


def test_precedence(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text('[minutely]\nport = 9000\nhot_window = "6h"\npartitions = 4\n')
    env = {"MINUTELY_PORT": "9100", "MINUTELY_MAX_FUTURE": "1m", "HOME": "/x"}
    s = load(f, env, port=9200, host=None)
    assert s.port == 9200 and s.hot_window == 6 * 3600 and s.partitions == 4
    assert s.max_future == 60 and s.host == "127.0.0.1" and s.hot_minutes == 360
    assert load(None, {}) == Settings()


def test_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hot_window"):
        load(None, {"MINUTELY_HOT_WINDOW": "two days"})
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load(None, {"MINUTELY_COLOUR": "red"})
    with pytest.raises(ConfigError, match="port"):
        load(None, {}, port=70000)
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml", {})


def test_units() -> None:
    assert parse_duration("2d") == 172800 and parse_duration("90m") == 5400
    assert parse_duration("30s") == 30 and parse_duration(15) == 15
    assert parse_size("64MB") == 64 << 20 and parse_size("1GiB") == 1 << 30


def test_bus_is_memory_or_a_nats_url() -> None:
    assert load(None, {"MINUTELY_BUS": "nats://127.0.0.1:4222"}).bus == "nats://127.0.0.1:4222"
    with pytest.raises(ConfigError, match="bus"):
        load(None, {}, bus="kafka://x")


def test_connection_limits_read_with_units_and_refused_out_of_range() -> None:
    s = load(
        environ={"MINUTELY_MAX_HEADER_BYTES": "8KB", "MINUTELY_HEADER_TIMEOUT": "2m"},
        idle_timeout="5s",
        max_connections=100,
    )
    assert (s.max_header_bytes, s.header_timeout, s.idle_timeout) == (8192, 120.0, 5.0)
    assert s.max_connections == 100
    with pytest.raises(ConfigError, match="max_header_bytes: 100 is below the minimum of 1KB"):
        Settings(max_header_bytes=100)
    with pytest.raises(ConfigError, match=r"header_timeout: 0\.0s must be above 0"):
        load(header_timeout="0")
    with pytest.raises(ConfigError, match="max_connections: 0 must be at least 1"):
        Settings(max_connections=0)


def test_a_client_sends_its_token_flag_else_its_file_else_minutely_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("mt_from_file\nignored\n")
    env = {"MINUTELY_TOKEN": " mt_from_env \n"}
    assert client_token("mt_flag", str(token_file), env) == "mt_flag"
    assert client_token(None, str(token_file), env) == "mt_from_file"
    assert client_token(None, None, env) == "mt_from_env"
    assert client_token(None, None, {}) == ""
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match=r"token_file: .* is empty"):
        client_token(None, str(token_file), env)


def test_the_store_memory_bounds_read_as_sizes_and_hold_the_mark_cache() -> None:
    s = load(environ={"MINUTELY_STORE_MEMORY": "1GB", "MINUTELY_STORE_MARK_CACHE": "64MB"})
    assert (s.store_memory, s.store_mark_cache) == (1 << 30, 64 << 20)
    assert load(environ={"MINUTELY_STORE_MEMORY": "0"}).store_memory == 0  # the engine's own
    with pytest.raises(ConfigError, match=r"store_mark_cache: .* is not below store_memory"):
        Settings(store_memory=64 << 20, store_mark_cache=64 << 20)
    with pytest.raises(ConfigError, match="store_memory: -1 is negative"):
        Settings(store_memory=-1)
