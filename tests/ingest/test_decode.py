"""minutely.ingest.decode: content-type dispatch, the public surface, and JSON == Arrow."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minutely.ingest
from minutely.errors import DecodeError
from minutely.ingest import CONTENT_TYPES, PointError, decode
from minutely.ingest.validate import MAX_MAGNITUDE
from tests.ingest.helpers import assert_same_decoded
from tests.ingest.helpers import rows as as_rows

NOW = 1_764_000_000.0
LIMITS: dict[str, Any] = {"now": NOW, "oldest": NOW - 2 * 86400, "max_future": 300.0}
JSON_BODY = b'[{"server": "s", "metric": "m", "ts": 1764000000, "value": 1.5}]'


def arrow_body(server: list[str], metric: list[str], ts: list[float], value: list[float]) -> bytes:
    b = pa.RecordBatch.from_pydict(
        {
            "server": pa.array(server, pa.string()).dictionary_encode(),
            "metric": pa.array(metric, pa.large_string()),
            "ts": pa.array(ts, pa.float64()),
            "value": pa.array(value, pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, b.schema) as w:
        w.write_batch(b)
    return bytes(sink.getvalue().to_pybytes())


def test_public_surface() -> None:
    assert minutely.ingest.__all__ == sorted(minutely.ingest.__all__)
    assert set(minutely.ingest.__all__) == {"CONTENT_TYPES", "Decoded", "PointError", "decode"}
    assert CONTENT_TYPES == ("application/json", "application/vnd.apache.arrow.stream")


def test_result_shapes() -> None:
    d = decode(
        b'[{"server": "", "metric": "m", "ts": 1764000000, "value": 1}]',
        "application/json",
        **LIMITS,
    )
    assert d.errors == [PointError(0, "server: missing or empty", "server_missing")]
    with pytest.raises(AttributeError):
        d.accepted = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON ;charset=UTF-8",
        " application/json",
    ],
)
def test_json_content_types(content_type: str) -> None:
    assert decode(JSON_BODY, content_type, **LIMITS).accepted == 1


@pytest.mark.parametrize(
    "content_type",
    ["application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.stream; codec=none"],
)
def test_arrow_content_types(content_type: str) -> None:
    body = arrow_body(["s"], ["m"], [NOW], [1.0])
    assert decode(body, content_type, **LIMITS).accepted == 1


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "", "application/x-ndjson", "application/vnd.apache.arrow.file", "json"],
)
def test_unsupported_content_types(content_type: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(JSON_BODY, content_type, **LIMITS)
    message = str(info.value)
    assert repr(content_type) in message
    assert "application/json" in message
    assert "application/vnd.apache.arrow.stream" in message


def test_max_errors_defaults_to_100() -> None:
    body = orjson.dumps([{"server": "", "metric": "m", "ts": NOW, "value": 1}] * 150)
    d = decode(body, "application/json", **LIMITS)
    assert (d.rejected, len(d.errors)) == (150, 100)


# --- the same points through either format decode to the same columns ----------------------

names = st.sampled_from(["web-001", "web-002", "db-1", "", "ü✓", "cpu.user", "a b"])
timestamps = st.one_of(
    st.integers(int(NOW) - 3 * 86400, int(NOW) + 600).map(float),
    st.floats(NOW - 3 * 86400, NOW + 600),
)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53).map(float),
)
points = st.lists(st.tuples(names, names, timestamps, values), max_size=50)


@settings(deadline=None, max_examples=150)
@given(points, st.integers(0, 10))
def test_json_and_arrow_decode_to_the_same_columns(
    pts: list[tuple[str, str, float, float]], max_errors: int
) -> None:
    json_body = orjson.dumps(
        [{"server": s, "metric": m, "ts": t, "value": v} for s, m, t, v in pts]
    )
    columns = [list(c) for c in zip(*pts, strict=True)] if pts else [[], [], [], []]
    arrow = decode(
        arrow_body(*columns),
        "application/vnd.apache.arrow.stream",
        max_errors=max_errors,
        **LIMITS,
    )
    json = decode(json_body, "application/json", max_errors=max_errors, **LIMITS)
    assert as_rows(json) == as_rows(arrow)
    assert json.errors == arrow.errors
    assert (json.accepted, json.rejected) == (arrow.accepted, arrow.rejected)
    expected = [
        p
        for p in pts
        if p[0] and p[1] and NOW - 2 * 86400 <= p[2] <= NOW + 300 and abs(p[3]) <= MAX_MAGNITUDE
    ]
    assert as_rows(arrow) == expected
    for d in (json, arrow):
        used = set(d.batch.server_names[d.batch.server_codes].tolist())
        assert "" not in used
        assert len(set(d.batch.server_names.tolist())) == len(d.batch.server_names)


def _arrow_file(stream: bytes) -> bytes:
    table = pa.ipc.open_stream(stream).read_all()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


_STREAM = arrow_body(["s", "s", ""], ["m", "n", "m"], [NOW, NOW - 60, NOW], [1.5, -2.0, 3.0])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (JSON_BODY[:-1] + b',{"server":"","metric":"m","ts":1,"value":2}]', "application/json"),
        (
            b'[{"server":"s","metric":"m","ts":1764000000,"value":"x"},' + JSON_BODY[1:],
            "application/json",
        ),
        (_STREAM, "application/vnd.apache.arrow.stream"),
        (_arrow_file(_STREAM), "application/vnd.apache.arrow.stream"),
    ],
    ids=["json", "json-slow-path", "arrow-stream", "arrow-file"],
)
def test_a_body_read_into_a_bytearray_decodes_as_its_bytes_do(
    body: bytes, content_type: str
) -> None:
    """The server reads a body into a bytearray and hands it to the decoders as it is."""
    want = decode(body, content_type, **LIMITS)
    assert want.accepted and want.rejected  # both kinds of point are compared
    assert_same_decoded(decode(bytearray(body), content_type, **LIMITS), want)
