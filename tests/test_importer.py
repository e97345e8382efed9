"""``minutely import`` against the real ingest path in-process (the app over a ``Service``,
through ``httpx.ASGITransport``): bad CSV rows reported by line and the rest imported, mixed
``ts`` formats, and re-runs that count every point once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minutely import importer
from minutely.api import create_app
from minutely.bus import MemoryBus
from minutely.config import Settings
from minutely.errors import DecodeError
from minutely.importer import MAX_REPORTED, ImportStats, import_files
from minutely.service import Service
from minutely.sim import SendError
from minutely.testing.clock import FakeClock
from tests.api.helpers import NOW

URL = "http://localhost"
T0 = int(NOW) // 60 * 60 - 3600  # an hour back, on a minute


class Server:
    """A service and an ASGI transport to it; its bus forgets keys on the fake clock."""

    def __init__(self) -> None:
        self.clock = FakeClock(NOW)
        settings = Settings(hot_window=6 * 3600, store="none")
        bus = MemoryBus(4, 64 << 20, clock=self.clock)
        self.service = Service(settings, clock=self.clock, bus=bus).open()
        self.transport = httpx.ASGITransport(app=create_app(self.service, manage_lifecycle=False))

    def counts(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(server, metric) -> (count, sum) of everything folded."""
        while self.service.aggregator.drain(timeout=0):
            pass
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for server in self.service.registry.servers.names():
            a = self.service.query.summary("server", server, T0 - 3600, int(NOW) + 60)
            for metric, count, total in zip(
                a.labels, a.parts.count.tolist(), a.parts.sum.tolist(), strict=True
            ):
                out[(server, metric)] = (int(count), float(total))
        return out


@pytest.fixture
def server() -> Iterator[Server]:
    yield Server()


def run(server: Server, *paths: Path, block_bytes: int = 1 << 20) -> ImportStats:
    return import_files(
        URL, list(paths), progress=False, block_bytes=block_bytes, transport=server.transport
    )


def test_bad_rows_are_reported_by_line_and_the_rest_is_imported(
    server: Server, tmp_path: Path
) -> None:
    lines = ["server,metric,ts,value"]
    lines += [f"a,m,{T0 + i},1" for i in range(200)]  # lines 2..201: numbers
    lines[50] = f"a,m,{T0}"  # three fields, in a block read before the first bad value
    lines += [
        f"a,m,{T0 + 1}.5,abc",  # 202
        "",  # 203: no text at all: not a point, not reported
        "a,m,yesterday,2",  # 204
        "a,m,2025-11-24T16:00:00Z",  # 205: three fields
        f"a,m,{T0 + 2},",  # 206
        f",m,{T0 + 3},4",  # 207: the server refuses it
        f"a,m,{rfc3339(T0 + 7200).replace('T', ' ')}.5+02:00,7",  # 208: RFC 3339 (at T0)
    ]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    stats = run(server, path, block_bytes=1 << 10)  # several blocks; the bad ones late

    assert stats.errors == [
        f"{path}:51: 3 fields, not 4 ('a,m,{T0}')",
        f"{path}:202: value: not a number ('abc')",
        f"{path}:204: ts: not a number or RFC 3339 time ('yesterday')",
        f"{path}:205: 3 fields, not 4 ('a,m,2025-11-24T16:00:00Z')",
        f"{path}:206: value: missing",
        f"{path}:207: server: missing or empty",
    ]
    assert (stats.accepted, stats.rejected) == (200, 6)
    assert server.counts() == {("a", "m"): (200, 206.0)}


def rfc3339(t: float) -> str:
    return str(np.datetime_as_string(np.datetime64(int(t), "s")))


def test_numbers_and_rfc3339_times_mix_in_one_block(server: Server, tmp_path: Path) -> None:
    iso = np.datetime_as_string(np.array([T0 + 60, T0 + 120], dtype="datetime64[s]"))
    path = tmp_path / "mixed.csv"
    path.write_text(
        "server,metric,ts,value\n"
        f"a,m,{T0},1\n"
        f"a,m,{iso[0]}Z,2\n"
        f"a,m,{iso[1].replace('T', ' ')}.25,3\n"  # no zone: UTC
        f"a,m,{iso[1]}+01:00,4\n"  # T0 + 2 min - 1 h
    )
    stats = run(server, path)
    assert stats.errors == [] and stats.accepted == 4
    assert server.counts() == {("a", "m"): (4, 10.0)}
    a = server.service.query.series("server", "a", T0 - 3600, T0 + 180)
    per_minute = a.parts.count.sum(axis=0)
    assert np.flatnonzero(per_minute).tolist() == [2, 60, 61, 62]  # from T0 - 1 h


def write_csv(path: Path, n: int) -> float:
    rows = [f"s{i % 3},m{i % 2},{T0 + i * 7 % 3000},{i % 10}" for i in range(n)]
    path.write_text("server,metric,ts,value\n" + "\n".join(rows) + "\n")
    return float(sum(i % 10 for i in range(n)))


def test_a_rerun_long_after_counts_every_point_once(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    total = write_csv(path, 5_000)
    first = run(server, path, block_bytes=16 << 10)
    assert first.accepted == 5_000
    before = server.counts()
    assert sum(c for c, _ in before.values()) == 5_000
    assert sum(s for _, s in before.values()) == total

    server.clock.now += 3600  # far past the bus's duplicate window
    again = run(server, path, block_bytes=16 << 10)
    assert again.rejected == 0
    assert server.counts() == before


REAL_SLEEP = asyncio.sleep


async def no_sleep(seconds: float) -> None:
    await REAL_SLEEP(0)


class FailAfter(httpx.AsyncBaseTransport):
    """Passes ``n`` requests on, then fails every one as the network would."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner, self.left = inner, n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.left <= 0:
            raise httpx.ConnectError("the server went away")
        self.left -= 1
        return await self.inner.handle_async_request(request)


def test_an_import_that_stopped_half_way_is_completed_by_a_rerun(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    path = tmp_path / "history.csv"
    write_csv(path, 5_000)
    broken = FailAfter(server.transport, 3)
    with pytest.raises(SendError, match="the server went away"):
        import_files(URL, [path], progress=False, block_bytes=16 << 10, transport=broken)
    partial = sum(c for c, _ in server.counts().values())
    assert 0 < partial < 5_000
    server.clock.now += 3600
    run(server, path, block_bytes=16 << 10)
    assert sum(c for c, _ in server.counts().values()) == 5_000


def test_identical_blocks_in_one_file_both_count(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = pa.table(
        {
            "server": ["a"] * 10,
            "metric": ["m"] * 10,
            "ts": [float(T0 + i) for i in range(10)],
            "value": [1.0] * 10,
        }
    )
    path = tmp_path / "twice.parquet"
    pq.write_table(pa.concat_tables([block, block]), path, row_group_size=10)
    monkeypatch.setattr(importer, "ROWS_PER_BODY", 10)
    stats = run(server, path)
    assert stats.accepted == 20
    assert server.counts() == {("a", "m"): (20, 20.0)}


def test_server_rejections_in_parquet_are_reported_by_row(server: Server, tmp_path: Path) -> None:
    table = pa.table(
        {
            "server": ["a", "a", "", "a"],
            "metric": ["m", "m", "m", "m"],
            "ts": [float(T0), float(T0), float(T0), float(T0)],
            "value": [1.0, float("nan"), 2.0, 3.0],
        }
    )
    path = tmp_path / "p.parquet"
    pq.write_table(table, path)
    stats = run(server, path)
    assert stats.errors == [
        f"{path}:row 2: value: not finite (nan)",
        f"{path}:row 3: server: missing or empty",
    ]
    assert server.counts() == {("a", "m"): (2, 4.0)}


def test_at_most_max_reported_problems_are_listed(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    bad = MAX_REPORTED + 50
    path.write_text("server,metric,ts,value\n" + f"a,m,{T0},x\n" * bad + f"a,m,{T0},1\n")
    stats = run(server, path)
    assert len(stats.errors) == MAX_REPORTED
    assert stats.errors[-1] == f"{path}:{MAX_REPORTED + 1}: value: not a number ('x')"
    assert (stats.accepted, stats.rejected) == (1, bad)


def test_a_file_that_is_not_text_is_an_error_naming_it(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"server,metric,ts,value\na,m,1,\xff\xfe\n")
    with pytest.raises(DecodeError, match=r"binary\.csv: .*UTF8"):
        run(server, path)


def test_a_missing_column_is_an_error_before_anything_is_sent(
    server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "short.csv"
    path.write_text(f"server,metric,ts\na,m,{T0}\n")
    with pytest.raises(DecodeError, match=r"short\.csv: missing column\(s\) value"):
        run(server, path)
    assert server.counts() == {}
