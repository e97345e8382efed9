"""The Prometheus HTTP API over a real ``Service``: Prometheus 2.42's answer shapes, its
errors, and answers that agree with minutely's own API on the same data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from minutely.api.prometheus import format_value
from minutely.service import Service
from tests.api.helpers import NOW, ingest, make_points

END = (NOW // 60 + 1) * 60
#: an end on a 5-minute boundary, so minutely's own 5-minute buckets line up with the windows
END5 = NOW // 300 * 300


@pytest.fixture
def loaded(client: TestClient, service: Service) -> dict[str, np.ndarray]:
    pts = make_points(seed=4, n=20_000)
    ingest(client, service, pts)
    return pts


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def failed(response: Any, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["errorType"]) == ("error", error_type)
    return str(body["error"])


def test_save_and_test_query(client: TestClient) -> None:
    data = ok(client.get("/api/v1/query", params={"query": "1+1", "time": "1764000000.5"}))
    assert data == {"resultType": "scalar", "result": [1764000000.5, "2"]}


def test_instant_vector_shape_and_values(client: TestClient, loaded: dict[str, np.ndarray]) -> None:
    data = ok(
        client.get("/api/v1/query", params={"query": "max_over_time(cpu.user[1h])", "time": END})
    )
    assert data["resultType"] == "vector"
    summary = client.get(
        "/api/v1/metrics/cpu.user/summary", params={"start": END - 3600, "end": END}
    ).json()
    want = {row["server"]: row["max"] for row in summary["rows"]}
    got = {r["metric"]["instance"]: r["value"] for r in data["result"]}
    assert set(got) == set(want)
    for server, (t, v) in got.items():
        assert t == END and isinstance(v, str)
        assert float(v) == want[server]
    assert [r["metric"] for r in data["result"]] == sorted(
        (r["metric"] for r in data["result"]), key=lambda m: sorted(m.items())
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_range_query_matrix_shape(
    client: TestClient, loaded: dict[str, np.ndarray], method: str
) -> None:
    form = {
        "query": 'avg_over_time(cpu.user{instance="web-001"}[5m])',
        "start": str(END5 - 3600),
        "end": str(END5),
        "step": "5m",
    }
    if method == "GET":
        response = client.get("/api/v1/query_range", params=form)
    else:
        response = client.post("/api/v1/query_range", data=form)
    data = ok(response)
    assert data["resultType"] == "matrix"
    [series] = data["result"]
    assert series["metric"] == {"instance": "web-001"}
    times = [t for t, _ in series["values"]]
    assert times == [END5 - 3600 + 300 * i for i in range(13)]
    own = client.get(
        "/api/v1/metrics/cpu.user/series",
        params={"start": END5 - 3900, "end": END5, "step": 300, "server": "web-001"},
    ).json()
    avg = own["series"][0]["avg"]
    for (_, v), want in zip(series["values"], avg, strict=True):
        assert float(v) == pytest.approx(want, rel=1e-12)


def test_a_scalar_range_query_is_one_series_without_labels(client: TestClient) -> None:
    data = ok(
        client.get(
            "/api/v1/query_range", params={"query": "2*3", "start": 0, "end": 120, "step": 60}
        )
    )
    assert data == {
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [[0, "6"], [60, "6"], [120, "6"]]}],
    }


def test_names_labels_series_and_metadata(
    client: TestClient, loaded: dict[str, np.ndarray]
) -> None:
    metrics = sorted(set(loaded["metric"].tolist()))
    servers = sorted(set(loaded["server"].tolist()))
    assert ok(client.get("/api/v1/labels")) == ["__name__", "instance"]
    assert ok(client.get("/api/v1/label/__name__/values")) == metrics
    assert ok(client.get("/api/v1/label/instance/values")) == servers
    found = ok(
        client.post(
            "/api/v1/series",
            data={
                "match[]": ['cpu.user{instance=~"web-00[12]"}', "mem.used"],
                "start": END - 7200,
                "end": END,
            },
        )
    )
    want = [{"__name__": "cpu.user", "instance": s} for s in ("web-001", "web-002")]
    want += [{"__name__": "mem.used", "instance": s} for s in servers]
    key = lambda m: (m["__name__"], m["instance"])  # noqa: E731
    assert sorted(found, key=key) == sorted(want, key=key)
    assert ok(
        client.get(
            "/api/v1/label/instance/values", params={"match[]": 'cpu.user{instance="web-003"}'}
        )
    ) == ["web-003"]
    meta = ok(client.get("/api/v1/metadata"))
    assert sorted(meta) == metrics
    assert meta["cpu.user"] == [{"type": "gauge", "help": "", "unit": ""}]
    info = ok(client.get("/api/v1/status/buildinfo"))
    assert info["version"] == "2.42.0"
    assert ok(client.get("/api/v1/query_exemplars", params={"query": "x"})) == []


@pytest.mark.parametrize(
    ("path", "params", "status", "error_type", "says"),
    [
        ("/api/v1/query", {"query": "abs(x)"}, 400, "bad_data", "'abs' is not supported"),
        ("/api/v1/query", {"query": "x >"}, 400, "bad_data", "parse error"),
        ("/api/v1/query", {}, 400, "bad_data", '"query"'),
        ("/api/v1/query", {"query": "1", "time": "soon"}, 400, "bad_data", "valid timestamp"),
        (
            "/api/v1/query_range",
            {"query": "1", "start": 0, "end": 10, "step": "x"},
            400,
            "bad_data",
            "valid duration",
        ),
        (
            "/api/v1/query_range",
            {"query": "1", "start": 0, "end": 10, "step": 0},
            400,
            "bad_data",
            "zero or negative",
        ),
        (
            "/api/v1/query_range",
            {"query": "1", "start": 10, "end": 0, "step": 1},
            400,
            "bad_data",
            "before start",
        ),
        (
            "/api/v1/query_range",
            {"query": "1", "start": 0, "end": 11_000, "step": 1},
            400,
            "bad_data",
            "11,000 points",
        ),
        ("/api/v1/series", {}, 400, "bad_data", "match[]"),
        ("/api/v1/series", {"match[]": "sum(x)"}, 400, "bad_data", "not a series selector"),
    ],
)
def test_errors_are_prometheus_shaped(
    client: TestClient, path: str, params: dict[str, Any], status: int, error_type: str, says: str
) -> None:
    assert says in failed(client.get(path, params=params), status, error_type)


def test_an_answer_over_the_bucket_limit_is_an_execution_error(
    client: TestClient, loaded: dict[str, np.ndarray]
) -> None:
    params = {"query": "cpu.user", "start": END - 30 * 86400, "end": END, "step": "1h"}
    message = failed(client.get("/api/v1/query_range", params=params), 422, "execution")
    assert "limit" in message


def test_values_are_written_as_prometheus_writes_them() -> None:
    assert format_value(2.0) == "2"
    assert format_value(0.1) == "0.1"
    assert format_value(1e21) == "1000000000000000000000"
    assert format_value(1.5e-7) == "0.00000015"
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"
