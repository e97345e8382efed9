"""The JSON decoder: both paths (pyarrow.json and the orjson fallback) and their agreement."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.errors import DecodeError
from minutely.ingest import Decoded, decode
from minutely.ingest.json import read_fast, read_slow
from minutely.ingest.validate import MAX_MAGNITUDE, validate
from tests.ingest.helpers import reasons, rows

NOW = 1_764_000_000.0
LIMITS: dict[str, Any] = {"now": NOW, "oldest": NOW - 2 * 86400, "max_future": 300.0}
JSON = "application/json"


def decode_json(body: bytes, max_errors: int = 100) -> Decoded:
    return decode(body, JSON, max_errors=max_errors, **LIMITS)


def pt(server: Any = "web-001", metric: Any = "cpu.user", ts: Any = NOW, value: Any = 1.0) -> Any:
    return {"server": server, "metric": metric, "ts": ts, "value": value}


def test_good_batch_round_trip() -> None:
    points = [
        pt("web-001", "cpu.user", 1764000000, 12.5),
        pt("web-002", "cpu.user", 1764000000.25, 0.1),
        pt("web-001", "mem.used", 1763999999, -3),
        pt("ünï-çødé ✓", "disk.free", 1764000001, MAX_MAGNITUDE),
        pt("web-002", "mem.used", 1764000002, 5e-324),
    ]
    body = orjson.dumps(points)
    assert read_fast(body) is not None  # a clean body takes the fast path
    d = decode_json(body)
    assert (d.accepted, d.rejected, d.errors) == (5, 0, [])
    assert rows(d) == [(p["server"], p["metric"], p["ts"], p["value"]) for p in points]
    assert d.batch.server_codes.dtype.name == "int32"
    assert sorted(d.batch.server_names.tolist()) == ["web-001", "web-002", "ünï-çødé ✓"]
    assert sorted(d.batch.metric_names.tolist()) == ["cpu.user", "disk.free", "mem.used"]


def test_whitespace_newlines_extra_keys_and_key_order() -> None:
    body = b"""
    [
      {"value": 2, "extra": {"nested": [1, {"x": "y"}]}, "ts": 1764000000,
       "metric": "cpu.user", "server": "web-001", "tags": ["a", "b"]},
      {"server": "web-002",
       "metric": "cpu.user", "ts": 1764000060.5, "value": 3.25}
    ]
    """
    assert read_fast(body) is not None
    assert rows(decode_json(body)) == [
        ("web-001", "cpu.user", 1764000000.0, 2.0),
        ("web-002", "cpu.user", 1764000060.5, 3.25),
    ]


@pytest.mark.parametrize("body", [b"[]", b"  [ ]\n", b"[\n]"])
def test_empty_array(body: bytes) -> None:
    d = decode_json(body)
    assert (d.accepted, d.rejected, d.errors, len(d.batch)) == (0, 0, [], 0)


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        ({"metric": "m", "ts": NOW, "value": 1}, "server: missing or empty"),
        (pt(server=None), "server: missing or empty"),
        (pt(server=""), "server: missing or empty"),
        ({"server": "s", "ts": NOW, "value": 1}, "metric: missing or empty"),
        (pt(metric=""), "metric: missing or empty"),
        ({"server": "s", "metric": "m", "value": 1}, "ts: missing"),
        (pt(ts=None), "ts: missing"),
        (
            pt(ts=1700000000),
            "ts: 1700000000 is older than the hot window (oldest accepted 1763827200)",
        ),
        (pt(ts=1764000301), "ts: 1764000301 is more than 300s ahead of the server clock"),
        (pt(ts=1e30), "ts: 1e+30 is more than 300s ahead of the server clock"),
        ({"server": "s", "metric": "m", "ts": NOW}, "value: missing"),
        (pt(value=None), "value: missing"),
    ],
)
def test_rejections_the_fast_path_can_type(point: Any, reason: str) -> None:
    body = orjson.dumps([pt(), point, pt()])
    assert read_fast(body) is not None
    d = decode_json(body)
    assert (d.accepted, d.rejected) == (2, 1)
    assert reasons(d) == [(1, reason)]


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        (pt(server=5), "server: not a string (5)"),
        (pt(server=["web"]), 'server: not a string (["web"])'),
        (pt(metric=True), "metric: not a string (true)"),
        (pt(metric={"a": 1}), 'metric: not a string ({"a":1})'),
        (pt(ts="1764000000"), "ts: not a number ('1764000000')"),
        (pt(ts=False), "ts: not a number (false)"),
        (pt(value="abc"), "value: not a number ('abc')"),
        (pt(value=True), "value: not a number (true)"),
        (pt(value=[1]), "value: not a number ([1])"),
        (pt(value="x" * 100), "value: not a number ('" + "x" * 36 + "...)"),
        (5, "point is not an object"),
        (None, "point is not an object"),
        ("web-001", "point is not an object"),
        ([1, 2], "point is not an object"),
    ],
)
def test_rejections_only_the_fallback_can_explain(point: Any, reason: str) -> None:
    body = orjson.dumps([pt(), point, pt()])
    assert read_fast(body) is None
    d = decode_json(body)
    assert rows(d) == [("web-001", "cpu.user", NOW, 1.0)] * 2
    assert (d.accepted, d.rejected) == (2, 1)
    assert reasons(d) == [(1, reason)]


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        (b"NaN", "value: not finite (nan)"),
        (b"Infinity", "value: not finite (inf)"),
        (b"-Infinity", "value: not finite (-inf)"),
        (b"1e400", "value: not finite (inf)"),
        (b"1" + b"0" * 400, "value: not finite (inf)"),
    ],
)
def test_non_finite_values(literal: bytes, reason: str) -> None:
    # Python's json.dumps writes NaN/Infinity; they are rejected per point, not per body.
    good = b'{"server": "s", "metric": "m", "ts": 1764000000, "value": 1}'
    body = b"[" + good + b', {"server": "s", "metric": "m", "ts": 1764000000, "value": '
    body += literal + b"}, " + good + b"]"
    d = decode_json(body)
    assert (d.accepted, d.rejected) == (2, 1)
    assert reasons(d) == [(1, reason)]


def test_python_json_dumps_nan_ts() -> None:
    body = json.dumps([pt(ts=math.nan), pt(value=math.inf), pt()]).encode()
    d = decode_json(body)
    assert reasons(d) == [(0, "ts: not finite (nan)"), (1, "value: not finite (inf)")]
    assert d.accepted == 1


def test_big_integer_ts_in_the_fallback() -> None:
    body = orjson.dumps([pt(value="x")])[:-1] + b',{"server":"s","metric":"m","ts":'
    body += b"1" + b"0" * 30 + b',"value":1}]'
    d = decode_json(body)
    assert reasons(d) == [
        (0, "value: not a number ('x')"),
        (1, "ts: 1e+30 is more than 300s ahead of the server clock"),
    ]


def test_mixed_good_and_bad_keep_the_good() -> None:
    points: list[Any] = [pt(value=float(i)) for i in range(10)]
    points[2] = pt(server="")
    points[5] = "oops"
    points[7] = pt(value="7")
    d = decode_json(orjson.dumps(points))
    assert [r[3] for r in rows(d)] == [0.0, 1.0, 3.0, 4.0, 6.0, 8.0, 9.0]
    assert reasons(d) == [
        (2, "server: missing or empty"),
        (5, "point is not an object"),
        (7, "value: not a number ('7')"),
    ]


def test_error_cap() -> None:
    points = [pt(server="") if i % 3 == 0 else pt() for i in range(300)]
    d = decode_json(orjson.dumps(points), max_errors=5)
    assert (d.accepted, d.rejected) == (200, 100)
    assert [e.index for e in d.errors] == [0, 3, 6, 9, 12]


def test_error_cap_in_the_fallback() -> None:
    d = decode_json(orjson.dumps([True] * 50 + [pt()]), max_errors=3)
    assert (d.accepted, d.rejected) == (1, 50)
    assert reasons(d) == [(i, "point is not an object") for i in range(3)]


def test_invalid_utf8_escape_in_a_name() -> None:
    body = b'[{"server": "a\\ud800", "metric": "m", "ts": 1764000000, "value": 1}]'
    d = decode_json(body)
    assert d.accepted == 0
    assert reasons(d)[0][1].startswith("server: not valid UTF-8 text")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"nope", "not valid JSON"),
        (b'[{"server": "a"', "not valid JSON"),
        (b"[1,]", "not valid JSON"),
        (b'[{"server": "\xff"}]', "not valid JSON"),
        (b'{"server": "a", "metric": "m", "ts": 1, "value": 1}', "not an object"),
        (b'"points"', "not a string"),
        (b"null", "not null"),
        (b"42", "not a number"),
        (b"true", "not a boolean"),
        # A body that closes the fast path's wrapper and opens a second row.
        (b'[]} {"p": [{"server": "s", "metric": "m", "ts": 1764000000, "value": 1}]', "JSON"),
        (b"[] []", "not valid JSON"),
    ],
)
def test_undecodable_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError, match="JSON") as info:
        decode_json(body)
    assert fragment in str(info.value)


def test_array_message_says_what_is_expected() -> None:
    with pytest.raises(DecodeError, match=r"body must be a JSON array of points, not an object"):
        decode_json(b"{}")


# --- the two paths agree ------------------------------------------------------------------

name = st.one_of(st.sampled_from(["web-001", "web-002", "", "ü"]), st.none(), st.text(max_size=5))
number = st.one_of(
    st.none(),
    st.integers(int(NOW) - 200_000, int(NOW) + 1000),
    st.floats(NOW - 200_000, NOW + 1000),
    st.floats(allow_nan=False, allow_infinity=False),
)
point = st.fixed_dictionaries(
    {},
    optional={"server": name, "metric": name, "ts": number, "value": number},
)


def slow(body: bytes) -> Decoded:
    columns, explain = read_slow(body)
    return validate(*columns, max_errors=100, explain=explain, **LIMITS)


@settings(deadline=None, max_examples=200)
@given(st.lists(point, max_size=30))
def test_fast_and_fallback_paths_agree(points: list[dict[str, Any]]) -> None:
    body = orjson.dumps(points)
    columns = read_fast(body)
    assert columns is not None
    fast = validate(*columns, max_errors=100, **LIMITS)
    reference = slow(body)
    assert rows(fast) == rows(reference)
    assert reasons(fast) == reasons(reference)
    assert (fast.accepted, fast.rejected) == (reference.accepted, reference.rejected)
