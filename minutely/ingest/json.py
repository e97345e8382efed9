"""The JSON decoder (``application/json``): an array of point objects.

    [{"server": "web-001", "metric": "cpu.user", "ts": 1764000000, "value": 12.5}, ...]

Owns two ways through a body, which must agree on every result:

- **Fast path**, all in C++: the body is wrapped as ``{"p": <body>}`` and read by
  ``pyarrow.json`` against an explicit schema (``p: list<struct<server: string, metric: string,
  ts: double, value: double>>``), giving Arrow columns directly. It works whenever every point
  is an object whose fields have those JSON types or are null/absent (extra keys are ignored).
  ``pyarrow.json`` is strict: a string where a number belongs, a bool, a nested value, a
  non-object element all make it fail, and then we take
- **the fallback**: ``orjson.loads`` (stdlib ``json`` if orjson refuses, which accepts NaN,
  Infinity and integers beyond 64 bits, as Python's ``json.dumps`` writes them), then one
  list comprehension per field and type checks on the lists, so each bad point is rejected
  with its own index and reason ("value: not a number ('abc')", "point is not an object").

Only a body that is not JSON, or JSON that is not an array, is a ``DecodeError``.
"""

from __future__ import annotations

import json
import math
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from minutely.errors import DecodeError, PayloadTooLarge
from minutely.ingest.arrow import names_column, numbers_column
from minutely.ingest.validate import (
    MAX_NAME_BYTES,
    Body,
    Decoded,
    Explain,
    Names,
    Numbers,
    validate,
)

CONTENT_TYPE = "application/json"

_POINT = pa.struct(
    [
        ("server", pa.string()),
        ("metric", pa.string()),
        ("ts", pa.float64()),
        ("value", pa.float64()),
    ]
)
_PARSE = pa_json.ParseOptions(
    explicit_schema=pa.schema([("p", pa.list_(_POINT))]),
    newlines_in_values=True,  # the whole body is one "row", newlines and all
    unexpected_field_behavior="ignore",
)
_MAX_BLOCK = 2**31 - 1
#: The largest body decoded through Python objects when the columnar fast path cannot type
#: it: such a body costs tens of times its size in memory (``Settings.max_slow_json_bytes``).
MAX_SLOW_BYTES = 16 << 20
_OPEN = b'{"p":'
_OPEN_BYTES = np.frombuffer(_OPEN, dtype=np.uint8)
_NAME_TYPES = frozenset({str, type(None)})
_NUMBER_TYPES = frozenset({int, float, type(None)})
_NOT_AN_OBJECT: dict[str, Any] = {}


def decode_json(
    body: Body,
    *,
    now: float,
    oldest: float,
    max_future: float,
    max_errors: int,
    horizon: str = "the hot window",
    max_name_bytes: int = MAX_NAME_BYTES,
    max_slow_bytes: int = MAX_SLOW_BYTES,
) -> Decoded:
    """Decode a JSON array of points; raise ``DecodeError`` if the body is not one, and
    ``PayloadTooLarge`` if it misses the fast path and is over ``max_slow_bytes``."""
    fast = read_fast(body)
    if fast is None and len(body) > max_slow_bytes:
        msg = (
            f"body of {len(body)} bytes is over the limit of {max_slow_bytes} bytes"
            " (max_slow_json_bytes) for JSON that is not an array of objects with a string"
            " server and metric and a numeric ts and value (a wrong type, null element, NaN"
            " or a value beyond 64 bits somewhere): send such points in smaller requests, or"
            " as Arrow"
        )
        raise PayloadTooLarge(msg, "max_slow_json_bytes")
    columns, explain = (fast, None) if fast is not None else read_slow(body)
    return validate(
        *columns,
        now=now,
        oldest=oldest,
        horizon=horizon,
        max_future=max_future,
        max_errors=max_errors,
        explain=explain,
        max_name_bytes=max_name_bytes,
    )


def read_fast(body: Body) -> tuple[Names, Names, Numbers, Numbers] | None:
    """The four columns via ``pyarrow.json``, or None if it cannot type this body."""
    if len(body) > _MAX_BLOCK - 16:
        return None  # pyarrow.json's block size is an int32
    wrapped = _wrap(body)
    # One block holds the whole document: a row cannot span blocks.
    options = pa_json.ReadOptions(use_threads=False, block_size=wrapped.size + 1)
    try:
        table = pa_json.read_json(
            pa.BufferReader(wrapped), read_options=options, parse_options=_PARSE
        )
    except (pa.ArrowException, ValueError, OSError):
        return None
    # More than one row means the body closed our wrapper and opened another: not one array.
    if table.num_rows != 1 or table.column(0).null_count:
        return None
    points = table.column(0).chunk(0).flatten()
    if points.null_count:  # a null element is "not an object": the fallback says so per point
        return None
    server, metric, ts, value = points.flatten()
    try:
        return (
            names_column("server", pa.chunked_array([server])),
            names_column("metric", pa.chunked_array([metric])),
            numbers_column("ts", pa.chunked_array([ts])),
            numbers_column("value", pa.chunked_array([value])),
        )
    except DecodeError:  # invalid UTF-8 in a name: the fallback names the JSON error
        return None


def _wrap(body: Body) -> Any:
    """``{"p":<body>}`` in an Arrow buffer. Arrow's memory pool reuses freed pages, where a new
    ``bytes`` of this size is fresh memory the OS must fault in page by page (figures:
    docs/performance.md, Measured choices)."""
    n = len(body)
    buffer = pa.allocate_buffer(n + len(_OPEN) + 1)
    out = np.frombuffer(buffer, dtype=np.uint8)
    out[: len(_OPEN)] = _OPEN_BYTES
    out[len(_OPEN) : len(_OPEN) + n] = np.frombuffer(body, dtype=np.uint8)
    out[-1] = ord("}")
    return buffer


def read_slow(body: Body) -> tuple[tuple[Names, Names, Numbers, Numbers], Explain]:
    """The four columns via Python objects, and an ``explain`` for the unusable fields."""
    items = _load(body)
    if type(items) is not list:
        msg = f"body must be a JSON array of points, not {_kind(items)}"
        raise DecodeError(msg)
    points: list[dict[str, Any]] = (
        items
        if set(map(type, items)) <= {dict}
        else [p if type(p) is dict else _NOT_AN_OBJECT for p in items]
    )
    # map() over dict.get runs the per-point loop in C; every element is a dict by now.
    server = _names("server", list(map(dict.get, points, repeat("server"))))
    metric = _names("metric", list(map(dict.get, points, repeat("metric"))))
    ts = _numbers("ts", list(map(dict.get, points, repeat("ts"))))
    value = _numbers("value", list(map(dict.get, points, repeat("value"))))

    def explain(field: str, i: int) -> str | None:
        point = items[i]
        if type(point) is not dict:
            return "point is not an object"
        raw = point.get(field)
        if raw is None or raw == "":
            return None  # the generic "missing" reason
        if field in ("server", "metric"):
            if type(raw) is str:
                return f"{field}: not valid UTF-8 text ({_show(raw)})"
            return f"{field}: not a string ({_show(raw)})"
        return f"{field}: not a number ({_show(raw)})"

    return (server, metric, ts, value), explain


def _load(body: Body) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        # Python's json.dumps writes NaN and Infinity, and integers may exceed 64 bits: stdlib
        # json reads both, so such points are rejected one by one, not the whole body.
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        msg = f"body is not valid JSON: {e}"
        raise DecodeError(msg) from None


def _names(field: str, raw: list[Any]) -> Names:
    if set(map(type, raw)) <= _NAME_TYPES:
        try:
            return names_column(field, pa.chunked_array([pa.array(raw, pa.string())]))
        except UnicodeEncodeError:  # a lone surrogate from "\ud800"
            pass
    clean = pa.array([_as_text(x) for x in raw], pa.string())
    return names_column(field, pa.chunked_array([clean]))


def _numbers(field: str, raw: list[Any]) -> Numbers:
    if set(map(type, raw)) <= _NUMBER_TYPES:  # no bool: pa.array would make True 1.0
        try:
            return numbers_column(field, pa.chunked_array([pa.array(raw, pa.float64())]))
        except (pa.ArrowInvalid, OverflowError):  # an int beyond 64 bits
            pass
    clean = pa.array([_as_number(x) for x in raw], pa.float64())
    return numbers_column(field, pa.chunked_array([clean]))


def _as_text(x: Any) -> str | None:
    if type(x) is not str:
        return None
    try:
        x.encode()
    except UnicodeEncodeError:
        return None
    return x


def _as_number(x: Any) -> float | None:
    if type(x) is float:
        return x
    if type(x) is int:
        try:
            return float(x)
        except OverflowError:
            return math.inf if x > 0 else -math.inf
    return None


def _kind(x: Any) -> str:
    kinds = {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(x), "a number")


def _show(x: Any) -> str:
    """A short rendering of a JSON value for a reason string."""
    if type(x) is str:
        text = repr(x)
    elif type(x) is bool:
        text = "true" if x else "false"
    else:
        try:
            text = orjson.dumps(x).decode()
        except (TypeError, orjson.JSONEncodeError):
            text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."
