"""Values too large to sum: refused per point, with the reason, on the JSON and Arrow paths."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest

from minutely.ingest import decode
from tests.ingest.helpers import reasons, rows

NOW = 1_764_000_000.0
LIMITS: dict[str, Any] = {"now": NOW, "oldest": NOW - 2 * 86400, "max_future": 300.0}
BOUND = 1e288  #: the documented bound, ``validate.BOUND``
VALUES = [1.5, 1e308, -1e300, BOUND, -BOUND, 2.5]
REFUSED = [
    (1, "value: magnitude 1e+308 exceeds 1e+288 (sums would overflow)"),
    (2, "value: magnitude -1e+300 exceeds 1e+288 (sums would overflow)"),
]
KEPT = [("s", "m", NOW, v) for v in (1.5, BOUND, -BOUND, 2.5)]


def json_body() -> bytes:
    return orjson.dumps([{"server": "s", "metric": "m", "ts": NOW, "value": v} for v in VALUES])


def arrow_body() -> bytes:
    n = len(VALUES)
    b = pa.RecordBatch.from_pydict(
        {
            "server": pa.array(["s"] * n, pa.string()),
            "metric": pa.array(["m"] * n, pa.string()),
            "ts": pa.array([NOW] * n, pa.float64()),
            "value": pa.array(VALUES, pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, b.schema) as w:
        w.write_batch(b)
    return bytes(sink.getvalue().to_pybytes())


def test_the_bound_keeps_every_sum_finite() -> None:
    from minutely.ingest.validate import MAX_MAGNITUDE

    assert MAX_MAGNITUDE == BOUND
    assert BOUND * 2.0**64 < 1.7e308  # a multi-year summary's count reaches 2^64


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(json_body(), "application/json"), (arrow_body(), "application/vnd.apache.arrow.stream")],
    ids=["json", "arrow"],
)
def test_a_value_past_the_bound_is_refused_and_the_rest_kept(
    body: bytes, content_type: str
) -> None:
    d = decode(body, content_type, **LIMITS)
    assert reasons(d) == REFUSED
    assert d.rejected == 2 and d.accepted == 4
    assert rows(d) == KEPT
