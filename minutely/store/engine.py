"""``query_arrow``: a query's answer as an Arrow table, the one place that reaches into
clickhouse-connect's private chDB backend.

A server's answer arrives as the HTTP body. The embedded engine's is read where the engine
wrote it, with no copy: clickhouse-connect's public ``query_arrow`` copies it into a ``bytes``
first, which for a 1.4M-cell answer costs as much as the query itself (the figures are in
docs/performance.md). That takes four private names, all used here and nowhere else:

    ChdbClient._prep_raw_query_runtime(query, parameters, settings, fmt, use_database)
    ChdbClient._backend                                       a ChdbBackend
    ChdbBackend._run_with_settings(sql, fmt, settings, params=, database=)
    ChdbBackend._engine_settings(settings)

pyproject.toml bounds clickhouse-connect to the minor release they were read from, and
tests/store/test_engine.py checks the names, their parameters and the answers against the
public path, so a release that moves them fails that test, not a query.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver._chdbclient import ChdbClient
from clickhouse_connect.driver.client import Client

#: the engine's output format read: the IPC stream, which it writes faster than the file form
#: (figures: docs/performance.md, Measured choices)
FORMAT = "ArrowStream"


def query_arrow(client: Client, sql: str, params: dict[str, Any] | None) -> pa.Table:
    """The answer of ``sql`` (``{name:Type}`` placeholders bound from ``params``) as a table.

    On the embedded engine the table's buffers are the engine's result itself; they keep it
    alive for as long as any column uses them.
    """
    if not isinstance(client, ChdbClient):
        body = client.raw_query(sql, params, fmt=FORMAT)
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    final, bound, runtime = client._prep_raw_query_runtime(sql, params, None, FORMAT, True)
    backend = client._backend
    result = backend._run_with_settings(
        final,
        "TabSeparated",  # ignored: ``final`` ends in its own FORMAT clause
        backend._engine_settings(runtime.settings),
        params={k.removeprefix("param_"): v for k, v in bound.items()},
        database=runtime.database,
    )
    view = result.get_memview()
    data = view.view()
    if len(data) == 0:
        return pa.ipc.open_stream(pa.py_buffer(result.bytes())).read_all()
    address = np.frombuffer(data, dtype=np.uint8).ctypes.data
    buffer = pa.foreign_buffer(address, len(data), base=(result, view, data))
    return pa.ipc.open_stream(buffer).read_all()
