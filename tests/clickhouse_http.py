"""The ClickHouse stand-in now lives in the package, ``minutely.testing.clickhouse_http``;
this name stays for the tests (and ``python -m tests.clickhouse_http``) that use it."""

from minutely.testing.clickhouse_http import DISPLAY_NAME, ClickHouseHttpServer, main

__all__ = ["DISPLAY_NAME", "ClickHouseHttpServer", "main"]

if __name__ == "__main__":
    main()
