"""The Arrow IPC stream decoder: column types, record batches, nulls, undecodable streams."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from minutely.errors import DecodeError
from minutely.ingest import Decoded, decode
from minutely.model import PointBatch, minute_of
from tests.ingest.helpers import reasons, rows

NOW = 1_764_000_000.0
LIMITS: dict[str, Any] = {"now": NOW, "oldest": NOW - 2 * 86400, "max_future": 300.0}
ARROW = "application/vnd.apache.arrow.stream"


def stream(*batches: pa.RecordBatch, schema: pa.Schema | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema if schema is not None else batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    return bytes(sink.getvalue().to_pybytes())


def batch(**columns: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def decode_arrow(body: bytes, max_errors: int = 100) -> Decoded:
    return decode(body, ARROW, max_errors=max_errors, **LIMITS)


def good(n: int = 3, **override: Any) -> pa.RecordBatch:
    columns: dict[str, Any] = {
        "server": pa.array([f"web-{i % 2}" for i in range(n)]),
        "metric": pa.array(["cpu.user"] * n),
        "ts": pa.array([NOW - i for i in range(n)], pa.float64()),
        "value": pa.array([float(i) + 0.5 for i in range(n)], pa.float64()),
    }
    columns.update(override)
    return batch(**columns)


def test_round_trip_of_a_point_batch() -> None:
    original = PointBatch.from_names(
        ["web-001", "web-002", "web-001", "ü"],
        ["cpu.user", "cpu.user", "mem.used", "disk"],
        [NOW, NOW - 60.25, NOW - 1, NOW + 299],
        [12.5, 0.1, -1e280, 5e-324],
    )
    d = decode_arrow(stream(original.to_arrow()))
    assert (d.accepted, d.rejected, d.errors) == (4, 0, [])
    assert rows(d) == [
        ("web-001", "cpu.user", NOW, 12.5),
        ("web-002", "cpu.user", NOW - 60.25, 0.1),
        ("web-001", "mem.used", NOW - 1, -1e280),
        ("ü", "disk", NOW + 299, 5e-324),
    ]
    assert d.batch.server_codes.dtype == np.int32
    assert d.batch.metric_codes.dtype == np.int32
    assert sorted(d.batch.server_names.tolist()) == ["web-001", "web-002", "ü"]


@pytest.mark.parametrize(
    "names",
    [
        pa.array(["b", "a", "b"], pa.string()),
        pa.array(["b", "a", "b"], pa.large_string()),
        pa.array(["b", "a", "b"]).dictionary_encode(),
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int8()), ["b", "a"]),
        pa.DictionaryArray.from_arrays(pa.array([1, 0, 1], pa.uint16()), ["a", "b"]),
        pa.DictionaryArray.from_arrays(
            pa.array([2, 1, 0], pa.int64()), pa.array(["b", "a", "b"], pa.large_string())
        ),
    ],
    ids=["string", "large_string", "dict-int32", "dict-int8", "dict-uint16", "dict-dup-large"],
)
def test_name_column_types(names: pa.Array) -> None:
    d = decode_arrow(stream(good(3, server=names, metric=names)))
    assert [(s, m) for s, m, _, _ in rows(d)] == [("b", "b"), ("a", "a"), ("b", "b")]
    assert sorted(d.batch.server_names.tolist()) == ["a", "b"]  # distinct, even from a dup dict


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_timestamp_units_and_zones(unit: str, tz: str | None) -> None:
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    whole = int(NOW) - 7
    fraction = 0 if unit == "s" else per_second // 4
    ticks = pa.array([whole * per_second + fraction], pa.timestamp(unit, tz))
    d = decode_arrow(stream(good(1, ts=ticks)))
    assert d.errors == []
    assert d.batch.ts.tolist() == [whole + fraction / per_second]


def test_timestamp_from_datetimes() -> None:
    when = datetime.fromtimestamp(NOW - 30, tz=UTC)
    d = decode_arrow(stream(good(1, ts=pa.array([when], pa.timestamp("us", "UTC")))))
    assert d.batch.ts.tolist() == [NOW - 30]


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_last_tick_of_a_minute_stays_in_that_minute(unit: str) -> None:
    per_second = {"ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    minute = int(NOW) // 60 - 1
    next_minute_start = (minute + 1) * 60 * per_second
    ticks = pa.array(
        [next_minute_start - 1, next_minute_start, next_minute_start + 1], pa.timestamp(unit)
    )
    d = decode_arrow(stream(good(3, ts=ticks)))
    assert minute_of(d.batch.ts).tolist() == [minute, minute + 1, minute + 1]


@pytest.mark.parametrize(
    "ts_type", [pa.int32(), pa.int64(), pa.uint32(), pa.uint64(), pa.float32(), pa.float64()]
)
def test_numeric_timestamps_are_unix_seconds(ts_type: pa.DataType) -> None:
    when = 1_763_999_744  # exact in float32
    ticks = np.array([when, when + 128], dtype=ts_type.to_pandas_dtype())
    d = decode_arrow(stream(good(2, ts=pa.array(ticks, ts_type))))
    assert d.errors == []
    assert d.batch.ts.tolist() == [when, when + 128]


@pytest.mark.parametrize(
    ("value_type", "values"),
    [
        (pa.int8(), [-128, 127]),
        (pa.int32(), [-(2**31), 2**31 - 1]),
        (pa.int64(), [-(2**53), 2**53]),
        (pa.uint8(), [0, 255]),
        (pa.uint64(), [0, 2**64 - 1]),
        (pa.float16(), [0.5, -2.0]),
        (pa.float32(), [0.5, 1e30]),
        (pa.float64(), [0.1, -1e-300]),
    ],
)
def test_value_types(value_type: pa.DataType, values: list[float]) -> None:
    array = pa.array(np.array(values, dtype=value_type.to_pandas_dtype()), value_type)
    d = decode_arrow(stream(good(2, value=array)))
    assert d.errors == []
    assert d.batch.value.tolist() == [
        float(np.array(v, value_type.to_pandas_dtype())) for v in values
    ]


def test_extra_columns_are_ignored_and_order_does_not_matter() -> None:
    b = batch(
        tags=pa.array([["a"], ["b"]]),
        value=pa.array([1, 2], pa.int32()),
        ts=pa.array([NOW, NOW], pa.float64()),
        host_ip=pa.array(["10.0.0.1", "10.0.0.2"]),
        metric=pa.array(["m", "n"]),
        server=pa.array(["a", "b"]),
    )
    assert rows(decode_arrow(stream(b))) == [("a", "m", NOW, 1.0), ("b", "n", NOW, 2.0)]


def test_record_batches_with_different_dictionaries() -> None:
    first = good(
        2,
        server=pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int32()), ["x", "y"]),
        metric=pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), ["m"]),
    )
    second = good(
        3,
        server=pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int32()), ["z", "x", ""]),
        metric=pa.DictionaryArray.from_arrays(pa.array([1, 0, 1], pa.int32()), ["n", "m"]),
    )
    third = good(
        2,
        server=pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()), ["y", "z"]),
        metric=pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), ["n"]),
    )
    d = decode_arrow(stream(first, second, third))
    assert [(s, m) for s, m, _, _ in rows(d)] == [
        ("x", "m"),
        ("y", "m"),
        ("z", "m"),
        ("x", "n"),  # ("", "m") at request index 4 is rejected
        ("z", "n"),
        ("y", "n"),
    ]
    assert reasons(d) == [(4, "server: missing or empty")]
    assert sorted(d.batch.server_names.tolist()) == ["x", "y", "z"]
    assert sorted(d.batch.metric_names.tolist()) == ["m", "n"]


def test_indices_count_across_record_batches() -> None:
    bad_value = pa.array([1.0, math.nan, 2.0])
    d = decode_arrow(stream(good(3), good(3, value=bad_value), good(2)))
    assert (d.accepted, d.rejected) == (7, 1)
    assert reasons(d) == [(4, "value: not finite (nan)")]


def test_plain_strings_across_record_batches() -> None:
    d = decode_arrow(
        stream(
            good(2, server=pa.array(["a", "b"])),
            good(2, server=pa.array(["c", "a"])),
        )
    )
    assert [r[0] for r in rows(d)] == ["a", "b", "c", "a"]
    assert sorted(d.batch.server_names.tolist()) == ["a", "b", "c"]


def test_nulls_and_bad_values_are_rejected_with_reasons() -> None:
    b = good(
        9,
        server=pa.array(["a", None, "", "a", "a", "a", "a", "a", "a"]),
        metric=pa.DictionaryArray.from_arrays(
            pa.array([0, 0, 0, None, 1, 0, 0, 0, 0], pa.int32()), pa.array(["m", None])
        ),
        ts=pa.array([NOW, NOW, NOW, NOW, NOW, None, NOW - 3 * 86400, NOW + 301, NOW], pa.float64()),
        value=pa.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, None]),
    )
    d = decode_arrow(stream(b))
    assert rows(d) == [("a", "m", NOW, 1.0)]
    assert d.batch.server_names.tolist() == ["a"]
    assert reasons(d) == [
        (1, "server: missing or empty"),
        (2, "server: missing or empty"),
        (3, "metric: missing or empty"),
        (4, "metric: missing or empty"),
        (5, "ts: missing"),
        (6, "ts: 1763740800 is older than the hot window (oldest accepted 1763827200)"),
        (7, "ts: 1764000301 is more than 300s ahead of the server clock"),
        (8, "value: missing"),
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (math.nan, "value: not finite (nan)"),
        (math.inf, "value: not finite (inf)"),
        (-math.inf, "value: not finite (-inf)"),
    ],
)
def test_non_finite_values(value: float, reason: str) -> None:
    d = decode_arrow(stream(good(2, value=pa.array([1.0, value]))))
    assert reasons(d) == [(1, reason)]


def test_non_finite_and_null_timestamps() -> None:
    d = decode_arrow(stream(good(3, ts=pa.array([math.nan, None, NOW], pa.float64()))))
    assert reasons(d) == [(0, "ts: not finite (nan)"), (1, "ts: missing")]
    d = decode_arrow(stream(good(2, ts=pa.array([None, int(NOW) * 10**9], pa.timestamp("ns")))))
    assert reasons(d) == [(0, "ts: missing")]
    assert d.batch.ts.tolist() == [NOW]


@pytest.mark.parametrize("column", ["server", "metric", "ts", "value"])
def test_a_column_of_type_null_is_missing_everywhere(column: str) -> None:
    d = decode_arrow(stream(good(2, **{column: pa.nulls(2)})))
    assert (d.accepted, d.rejected) == (0, 2)
    assert d.errors[0].reason.startswith(column + ": missing")


def test_error_cap() -> None:
    values = pa.array([math.nan if i % 2 else 1.0 for i in range(1000)])
    d = decode_arrow(stream(good(1000, value=values)), max_errors=4)
    assert (d.accepted, d.rejected) == (500, 500)
    assert [e.index for e in d.errors] == [1, 3, 5, 7]


def test_stream_without_batches_and_empty_batches() -> None:
    schema = good(1).schema
    assert decode_arrow(stream(schema=schema)).accepted == 0
    empty = good(2).slice(0, 0)
    d = decode_arrow(stream(empty, good(2), empty))
    assert (d.accepted, d.rejected) == (2, 0)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not a valid Arrow IPC stream"),
        (b"not arrow at all", "not a valid Arrow IPC stream"),
        (b'[{"server": "a"}]', "not a valid Arrow IPC stream"),
    ],
)
def test_garbage_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError, match=fragment):
        decode_arrow(body)


def test_truncated_stream() -> None:
    body = stream(good(100))
    with pytest.raises(DecodeError, match="not a valid Arrow IPC stream"):
        decode_arrow(body[: len(body) // 2])


def test_a_column_name_that_is_not_utf8_is_a_decode_error() -> None:
    """A mutated schema's name was answered 500 (found by bench/bench_fuzz.py)."""
    body = stream(good(2, **{"x-fuzz": pa.array([1, 2])})).replace(b"x-fuzz", b"\xf3-fuzz")
    with pytest.raises(DecodeError, match="not UTF-8"):
        decode_arrow(body)


@pytest.mark.parametrize("column", ["server", "metric", "ts", "value"])
def test_missing_column(column: str) -> None:
    b = good(2)
    b = b.drop_columns([column])
    with pytest.raises(DecodeError, match=f"missing column.*'{column}'.*required"):
        decode_arrow(stream(b))


def test_doubled_column() -> None:
    b = good(2)
    b = pa.RecordBatch.from_arrays([*b.columns, b.column(3)], names=[*b.schema.names, "value"])
    with pytest.raises(DecodeError, match="'value' more than once"):
        decode_arrow(stream(b))


@pytest.mark.parametrize(
    ("column", "array", "fragment"),
    [
        ("server", pa.array([1, 2]), "'server' has type int64"),
        ("metric", pa.array([b"a", b"b"]), "'metric' has type binary"),
        (
            "server",
            pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array([1])),
            "'server' has type dictionary<values=int64",
        ),
        ("ts", pa.array(["1764000000", "1"]), "'ts' has type string"),
        ("ts", pa.array([1, 2], pa.date32()), "'ts' has type date32"),
        ("value", pa.array([True, False]), "'value' has type bool"),
        ("value", pa.array(["1.5", "2"]), "'value' has type string"),
        ("value", pa.array([1, 2], pa.decimal128(5, 2)), "'value' has type decimal128"),
    ],
)
def test_unusable_column_types(column: str, array: pa.Array, fragment: str) -> None:
    with pytest.raises(DecodeError, match="expected") as info:
        decode_arrow(stream(good(2, **{column: array})))
    assert fragment in str(info.value)


def test_invalid_utf8_in_a_name() -> None:
    bad = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.py_buffer(np.array([0, 2], np.int32)), pa.py_buffer(b"\xff\xfe")]
    )
    with pytest.raises(DecodeError, match="'server' holds invalid data"):
        decode_arrow(stream(good(1, server=bad)))


def test_dictionary_index_out_of_range() -> None:
    bad = pa.DictionaryArray.from_buffers(
        pa.dictionary(pa.int32(), pa.string()),
        1,
        [None, pa.py_buffer(np.array([5], np.int32))],
        pa.array(["a"]),
    )
    with pytest.raises(DecodeError, match="'metric'"):
        decode_arrow(stream(good(1, metric=bad)))
