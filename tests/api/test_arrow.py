"""Arrow answers (``format=arrow`` or ``Accept: application/vnd.apache.arrow.stream``) hold
exactly what the JSON answer to the same query holds: labels, timestamps, values and nulls."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from minutely.api import arrow, render
from minutely.model import Partials
from minutely.query import SeriesAnswer
from minutely.service import Service
from tests.api.helpers import ARROW, ingest, make_points


def read(body: bytes) -> pa.Table:
    return pa.ipc.open_stream(body).read_all()


def get_both(client: TestClient, path: str, **params: Any) -> tuple[dict[str, Any], pa.Table]:
    """The JSON answer and the Arrow answer (asked for by header) to the same query."""
    js = client.get(path, params=params)
    ar = client.get(path, params=params, headers={"accept": ARROW})
    assert js.status_code == ar.status_code == 200, (js.text, ar.text)
    assert js.headers["content-type"] == "application/json"
    assert ar.headers["content-type"] == ARROW
    return js.json(), read(ar.content)


def assert_series_equal(data: dict[str, Any], table: pa.Table, label: str) -> None:
    """Every column of ``table`` against the JSON answer's ``series`` flattened label-major."""
    series, stamps = data["series"], data["timestamps"]
    n, b = len(series), len(stamps)
    assert table.num_rows == n * b
    codes = table.column(label).combine_chunks()
    assert codes.dictionary.to_pylist() == [s[label] for s in series]
    assert codes.to_pylist() == [s[label] for s in series for _ in range(b)]
    assert table.column("ts").cast(pa.int64()).to_pylist() == stamps * n
    assert table.column("ts").type == pa.timestamp("s", tz="UTC")
    fields = [f for f in table.column_names if f not in (label, "ts")]
    assert fields == [f for f in series[0] if f != label] if series else True
    for f in fields:
        # exact: orjson writes the shortest repr that reads back as the same double
        assert table.column(f).to_pylist() == [v for s in series for v in s[f]], f


@pytest.mark.parametrize("by", ["server", "metric"])
@pytest.mark.parametrize("step", [60, 600])
def test_series_arrow_equals_json(client: TestClient, service: Service, by: str, step: int) -> None:
    ingest(client, service, make_points(seed=11))
    name = "web-003" if by == "server" else "mem.used"
    other = "metric" if by == "server" else "server"
    # 6 h back: the points cover the last 5 h, so the first hour is empty buckets (nulls)
    data, table = get_both(client, f"/api/v1/{by}s/{name}/series", start="-6h", step=step)
    assert len(data["series"]) == (4 if by == "server" else 5)
    assert_series_equal(data, table, other)
    assert table.column("min").null_count > 0
    assert table.column("min").null_count == sum(c == 0 for s in data["series"] for c in s["count"])
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta == {by: name, **{k: str(data[k]) for k in ("start", "end", "step")}}


def test_arrow_reads_back_as_the_json_block(client: TestClient, service: Service) -> None:
    """A numpy or pandas user gets the 2-D block back: NaN where JSON has null."""
    ingest(client, service, make_points(seed=12))
    data, table = get_both(client, "/api/v1/servers/web-000/series", start="-6h", step=300)
    n, b = len(data["series"]), len(data["timestamps"])
    avg = table.column("avg").to_numpy(zero_copy_only=False).reshape(n, b)
    want = np.array([[np.nan if v is None else v for v in s["avg"]] for s in data["series"]])
    np.testing.assert_array_equal(avg, want)
    frame = table.to_pandas()
    assert list(frame.columns) == ["metric", "ts", "min", "max", "avg", "count"]
    assert str(frame["ts"].dtype) == "datetime64[s, UTC]"
    assert frame["max"].isna().sum() == table.column("max").null_count > 0


def test_fields_choose_and_order_the_columns(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(seed=13, n=3000))
    data, table = get_both(
        client, "/api/v1/servers/web-001/series", start="-2h", step=120, fields="count,sum,avg"
    )
    assert table.column_names == ["metric", "ts", "count", "sum", "avg"]
    assert table.schema.field("count").type == pa.uint32()
    assert_series_equal(data, table, "metric")


def test_fleet_arrow_equals_json(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(seed=14))
    params = {"start": "-6h", "step": 900, "server": ["web-000", "web-002"]}
    data, table = get_both(client, "/api/v1/metrics/disk.io/fleet", **params)
    assert table.column_names == ["ts", "min", "max", "avg", "count"]
    assert table.column("ts").cast(pa.int64()).to_pylist() == data["timestamps"]
    for f in ("min", "max", "avg", "count"):
        assert table.column(f).to_pylist() == data[f], f
    assert table.column("avg").null_count > 0
    meta = table.schema.metadata
    assert meta[b"metric"] == b"disk.io" and meta[b"servers"] == b"2"
    assert data["servers"] == 2


@pytest.mark.parametrize("by", ["server", "metric"])
def test_summary_arrow_equals_json(client: TestClient, service: Service, by: str) -> None:
    ingest(client, service, make_points(seed=15))
    name = "web-002" if by == "server" else "cpu.user"
    other = "metric" if by == "server" else "server"
    data, table = get_both(client, f"/api/v1/{by}s/{name}/summary", start="-3h")
    assert table.to_pylist() == data["rows"]
    assert table.column_names == [other, "min", "max", "avg", "count"]
    assert table.schema.metadata == {
        by.encode(): name.encode(),
        b"start": str(data["start"]).encode(),
        b"end": str(data["end"]).encode(),
    }


def test_format_parameter_and_accept_header(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(seed=16, n=2000))
    path = "/api/v1/metrics/cpu.sys/series"
    r = client.get(path, params={"start": "-1h", "format": "arrow"})
    assert r.status_code == 200 and r.headers["content-type"] == ARROW
    assert r.headers["server-timing"].startswith("app;dur=")
    by_param = read(r.content)
    by_header = read(client.get(path, params={"start": "-1h"}, headers={"accept": ARROW}).content)
    assert by_param.equals(by_header, check_metadata=True) and by_param.num_rows > 0
    # format= wins over the header; a header naming JSON as well gets JSON
    r = client.get(path, params={"start": "-1h", "format": "json"}, headers={"accept": ARROW})
    assert r.headers["content-type"] == "application/json" and "series" in r.json()
    r = client.get(path, params={"start": "-1h"}, headers={"accept": f"{ARROW}, application/json"})
    assert r.headers["content-type"] == "application/json"
    r = client.get(path, params={"start": "-1h", "format": "csv"}, headers={"accept": ARROW})
    assert r.headers["content-type"].startswith("text/csv")


def test_errors_name_the_format_and_stay_json(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(seed=17, n=500))
    for path in ("/api/v1/servers/web-001/series", "/api/v1/servers/web-001/summary"):
        r = client.get(path, params={"format": "parquet"})
        assert r.status_code == 400
        error = r.json()["error"]
        assert "'format'" in error and "'parquet'" in error and "arrow" in error
    r = client.get("/api/v1/servers/nope/series", params={"format": "arrow"})
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = client.get("/api/v1/servers/web-001/series?step=90", headers={"accept": ARROW})
    assert r.status_code == 400 and "step" in r.json()["error"]


def test_no_matching_series_is_an_empty_table(client: TestClient, service: Service) -> None:
    ingest(client, service, make_points(seed=18, n=500))
    r = client.get("/api/v1/servers/web-001/series?start=-1h&metric=none&format=arrow")
    table = read(r.content)
    assert table.num_rows == 0
    assert table.column_names == ["metric", "ts", "min", "max", "avg", "count"]
    assert table.schema.metadata[b"server"] == b"web-001"


def test_empty_buckets_are_null_whatever_the_partial_holds() -> None:
    """The rule is ``count == 0``, as in JSON: stale min/max/sum under it never show."""
    count = np.array([[3, 0, 1], [0, 0, 2]], dtype=np.uint32)
    parts = Partials(
        np.array([[1.0, np.inf, 4.0], [7.0, 0.0, 2.5]]),
        np.array([[2.0, -np.inf, 4.0], [9.0, 0.0, 3.5]]),
        np.array([[4.5, 0.0, 4.0], [5.0, 0.0, 6.0]]),
        count,
    )
    stamps = np.array([0, 60, 120], dtype=np.int64)
    a = SeriesAnswer("server", "s", 0, 180, 60, stamps, ["a", "b"], parts)
    table = read(arrow.series_arrow(a, render.FIELDS))
    js = orjson.loads(render.series_json(a, render.FIELDS))["series"]
    for f in render.FIELDS:
        assert table.column(f).to_pylist() == js[0][f] + js[1][f], f
    assert table.column("min").to_pylist() == [1.0, None, 4.0, None, None, 2.5]
    assert table.column("avg").to_pylist() == [1.5, None, 4.0, None, None, 3.0]
    assert table.column("sum").null_count == 0 == table.column("count").null_count
