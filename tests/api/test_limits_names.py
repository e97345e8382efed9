"""Issue #17's names that could be written but never read: every name the ingest rules
accept reads back through every route, and every other name is refused per point, naming
the field and the rule, with the good points of the batch kept."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits, SeriesIndex
from minutely.ingest.validate import NAME_OK, name_problems, name_reason
from minutely.service import Service
from tests.api.helpers import NOW

#: names a hostile but realistic user sends, each with the words its refusal must carry
REFUSED = {
    "": "missing or empty",
    "a\nb": "control character U+000A",
    "tab\there": "control character U+0009",
    "bell\x07": "control character U+0007",
    "del\x7f": "control character U+007F",
    "sep\u2028": "control character U+2028",
    " ": "only spaces",
    "   \u3000": "only spaces",
    ".": "'.' is not a name",
    "..": "'..' is not a name",
    "x" * 257: "257 bytes is over the limit of 256 bytes (max_name_bytes)",
    "é" * 129: "258 bytes is over the limit of 256 bytes (max_name_bytes)",
    "x" * (1 << 20): "1048576 bytes is over the limit of 256 bytes",
}

#: names that look risky but are names: each must read back through every route
ACCEPTED = [
    "a/b",
    "a/../b",
    "/lead",
    "trail/",
    "x/series",
    "sp ace",
    " padded ",
    "q?x=1#frag",
    # "100%25" reads back over a real server (tests/integration/test_no_blocking.py); the
    # test client decodes a path twice, so it cannot carry a "%" in a name
    "dots.in.graphite",
    "...",
    "<script>alert(1)</script>",
    'quo"te\\',
    "ünï/cødé ☃",
    "emoji 🚀",
    "x" * 256,
    "é" * 128,
]


def _reference(name: str, max_bytes: int = 256) -> bool:
    """The rule in plain Python, one name at a time: what the vectorised one must agree with."""
    if not name or name in (".", ".."):
        return False
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or ord(c) in (0x2028, 0x2029) for c in name):
        return False
    if any(0xD800 <= ord(c) < 0xE000 for c in name):
        return False
    if not name.strip(
        " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
        "\u2009\u200a\u202f\u205f\u3000"
    ):
        return False
    return len(name.encode("utf-8")) <= max_bytes


@given(st.lists(st.text(max_size=12), max_size=30), st.integers(1, 20))
def test_the_vectorised_rule_agrees_with_the_plain_one(names: list[str], limit: int) -> None:
    got = name_problems(np.array(names, dtype=object), limit)
    assert [int(p) == NAME_OK for p in got] == [_reference(n, limit) for n in names]


@pytest.mark.parametrize("name", sorted(REFUSED, key=len))
def test_each_refused_name_has_its_reason(name: str) -> None:
    (problem,) = name_problems(np.array([name], dtype=object), 256)
    assert problem != NAME_OK
    assert REFUSED[name] in name_reason(name, int(problem), 256)


def test_accepted_names_pass() -> None:
    assert (name_problems(np.array(ACCEPTED, dtype=object), 256) == NAME_OK).all()


def _post_json(client: TestClient, points: list[dict[str, object]]) -> dict[str, object]:
    r = client.post(
        "/api/v1/points", content=json.dumps(points), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_bad_names_are_refused_per_point_and_the_good_points_kept(
    client: TestClient, service: Service
) -> None:
    bad = sorted(REFUSED, key=len)
    points: list[dict[str, object]] = [{"server": "good", "metric": "m", "ts": NOW, "value": 1.0}]
    points += [{"server": name, "metric": "m", "ts": NOW, "value": 2.0} for name in bad]
    points += [{"server": "good", "metric": name, "ts": NOW, "value": 3.0} for name in bad]
    answer = _post_json(client, points)
    assert answer["accepted"] == 1
    assert answer["rejected"] == 2 * len(bad)
    errors = answer["errors"]
    assert isinstance(errors, list)
    reasons = {e["index"]: e["reason"] for e in errors}
    for k, name in enumerate(bad):
        assert reasons[1 + k].startswith("server: ")
        assert REFUSED[name] in reasons[1 + k]
        assert reasons[1 + len(bad) + k].startswith("metric: ")
        assert REFUSED[name] in reasons[1 + len(bad) + k]
    while service.aggregator.drain(timeout=0):
        pass
    assert service.server_names() == ["good"]
    assert service.metric_names() == ["m"]
    # counted by limit, a point at a time: the length's setting, or the characters
    long = sum("over the limit of 256 bytes" in why for why in REFUSED.values())
    other = len(REFUSED) - long - 1  # the empty name is missing, not refused by a limit
    refused = client.get("/api/v1/status").json()["limits"]["refused"]
    assert refused == {"max_name_bytes": 2 * long, "name_characters": 2 * other}
    scraped = client.get("/metrics").text
    assert f'minutely_limit_refusals_total{{limit="max_name_bytes"}} {2 * long}.0' in scraped
    assert f'minutely_limit_refusals_total{{limit="name_characters"}} {2 * other}.0' in scraped


def test_the_limit_is_the_setting() -> None:
    (problem,) = name_problems(np.array(["x" * 20], dtype=object), 16)
    assert "over the limit of 16 bytes" in name_reason("x" * 20, int(problem), 16)


def test_protocol_decoders_get_the_rule_through_the_series_index() -> None:
    index = SeriesIndex(LabelMapping(server_labels=("instance",)))
    index.add_resolved("ok", "m")
    index.add_resolved("bad\nhost", "m")
    index.add_resolved("ok", ".")
    limits = Limits(NOW, NOW - 3600, 300.0, max_name_bytes=256)
    decoded = index.validate(
        np.array([0, 1, 2]), np.full(3, NOW), np.ones(3), limits, where=lambda i: f"line {i + 1}"
    )
    assert decoded.accepted == 1
    reasons = [e.reason for e in decoded.errors]
    assert reasons == [
        "line 2: server: name holds control character U+000A at character 3",
        "line 3: metric: '.' is not a name (it would be a path segment of its own)",
    ]


def _metric(i: int, name: str) -> str:
    """A metric as risky as the server ``name``, but a different name (a long one reversed)."""
    return name[::-1] if len(name) > 100 else f"m{i}-{name}"


def _arrow_table(body: bytes) -> pa.Table:
    return pa.ipc.open_stream(io.BytesIO(body)).read_all()


def test_every_accepted_name_reads_back_through_every_route(
    client: TestClient, service: Service
) -> None:
    points = [
        {"server": name, "metric": _metric(i, name), "ts": NOW - 60, "value": float(i)}
        for i, name in enumerate(ACCEPTED)
    ]
    answer = _post_json(client, points)
    assert answer["rejected"] == 0, answer
    while service.aggregator.drain(timeout=0):
        pass
    assert sorted(client.get("/api/v1/servers").json()["servers"]) == sorted(ACCEPTED)
    metrics = sorted(_metric(i, n) for i, n in enumerate(ACCEPTED))
    assert sorted(client.get("/api/v1/metrics").json()["metrics"]) == metrics
    for i, name in enumerate(ACCEPTED):
        metric = _metric(i, name)
        path = f"/api/v1/servers/{quote(name, safe='')}"
        series = client.get(f"{path}/series", params={"start": "-1h"})
        assert series.status_code == 200, (name, series.text)
        assert series.json()["server"] == name
        assert [s["metric"] for s in series.json()["series"]] == [metric]
        summary = client.get(f"{path}/summary", params={"start": "-1h"}).json()
        assert summary["rows"][0]["metric"] == metric
        assert summary["rows"][0]["avg"] == float(i)
        csv = client.get(f"{path}/series", params={"start": "-1h", "format": "csv"})
        table = pa.csv.read_csv(io.BytesIO(csv.content))
        assert table.column("metric").to_pylist() == [metric]
        assert table.column("server").to_pylist() == [name]
        arrow = client.get(f"{path}/series", params={"start": "-1h", "format": "arrow"})
        assert arrow.status_code == 200
        assert metric in _arrow_table(arrow.content).column("metric").to_pylist()
        by_metric = client.get(f"/api/v1/metrics/{quote(metric, safe='')}/series")
        assert [s["server"] for s in by_metric.json()["series"]] == [name]
        fleet = client.get(f"/api/v1/metrics/{quote(metric, safe='')}/fleet")
        assert fleet.json()["servers"] == 1
    values = client.get("/api/v1/label/instance/values").json()["data"]
    assert sorted(values) == sorted(ACCEPTED)
    for name in ACCEPTED:
        selector = "{instance=" + json.dumps(name, ensure_ascii=False) + "}"
        found = client.get("/api/v1/series", params={"match[]": selector}).json()
        assert found["status"] == "success", (name, found)
        assert [s["instance"] for s in found["data"]] == [name]
