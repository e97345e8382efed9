"""Ingest: request bodies in, a columnar ``PointBatch`` of the good points and the reasons for
the bad ones out. Pure: no I/O, no clock (the caller passes ``now``), no registry.

    decode(body, content_type, now=, oldest=, max_future=)  ->  Decoded(batch, accepted,
                                                                        rejected, errors)

One module per wire format, one set of rules:

    arrow.py     application/vnd.apache.arrow.stream   the fast path, columnar end to end
    json.py      application/json                      pyarrow.json, or orjson when it can't
    validate.py  the accept rules, PointError, Decoded  shared by every format

Beside them, ``idempotency.py`` remembers which body each ``Idempotency-Key`` named; it is the
one stateful part (a clock, and a ledger file of import blocks), used before publish.

A body that cannot be decoded at all raises ``errors.DecodeError`` (HTTP 400) saying why; a bad
point never does: it is counted in ``rejected`` and, among the first ``max_errors``, listed in
``errors`` with its index and a reason naming the field.
"""

from __future__ import annotations

from minutely.errors import DecodeError
from minutely.ingest.arrow import CONTENT_TYPE as ARROW_STREAM
from minutely.ingest.arrow import decode_arrow
from minutely.ingest.json import CONTENT_TYPE as JSON
from minutely.ingest.json import MAX_SLOW_BYTES, decode_json
from minutely.ingest.validate import MAX_NAME_BYTES, Body, Decoded, PointError

__all__ = ["CONTENT_TYPES", "Decoded", "PointError", "decode"]

#: The media types ``decode`` accepts (parameters such as ``; charset=utf-8`` are ignored).
CONTENT_TYPES = (JSON, ARROW_STREAM)


def decode(
    body: Body,
    content_type: str,
    *,
    now: float,
    oldest: float,
    max_future: float,
    max_errors: int = 100,
    horizon: str = "the hot window",
    max_name_bytes: int = MAX_NAME_BYTES,
    max_slow_json_bytes: int = MAX_SLOW_BYTES,
) -> Decoded:
    """Decode and validate one request body.

    A point is accepted iff server and metric are non-empty strings, ts is a finite number
    with ``oldest <= ts <= now + max_future`` and value is a finite number no larger in
    magnitude than ``validate.MAX_MAGNITUDE``. ``horizon`` names what ``oldest`` is, for
    the reason a point older than it is refused.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == JSON:
        return decode_json(
            body,
            now=now,
            oldest=oldest,
            max_future=max_future,
            max_errors=max_errors,
            horizon=horizon,
            max_name_bytes=max_name_bytes,
            max_slow_bytes=max_slow_json_bytes,
        )
    if media_type != ARROW_STREAM:
        msg = f"unsupported content type {content_type!r}: use {JSON} or {ARROW_STREAM}"
        raise DecodeError(msg)
    return decode_arrow(
        body,
        now=now,
        oldest=oldest,
        max_future=max_future,
        max_errors=max_errors,
        horizon=horizon,
        max_name_bytes=max_name_bytes,
    )
