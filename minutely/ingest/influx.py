"""InfluxDB line protocol: lines of text in, one point per field out.

    <measurement>[,<tag>=<value>…] <field>=<value>[,<field>=<value>…] [<timestamp>]

    cpu,host=web-1,cpu=cpu0 usage_idle=97.5,usage_user=1.5 1764000000000000000

Each field is a point of the metric ``<measurement>.<field>`` with the line's tags as labels
(``labels.py`` takes the server from them and names the metric with the rest:
``cpu.usage_idle{cpu="cpu0"}`` of server ``web-1``). Field values: floats (``1.5``,
``-3e4``), integers (``1i``), unsigned (``1u``) and booleans (``t``, ``true``, ``F``…), which
become 1 and 0 so an up/down field can be charted and averaged; strings (``"text"``) are
rejected with a reason, as minutely keeps numbers only. The timestamp is an integer in the
request's ``precision`` (``ns`` by default, ``us``/``u``, ``ms``, ``s``, ``m``, ``h``); a line
without one takes the server's clock, as InfluxDB does.

Escapes follow the protocol: ``\\,`` ``\\ `` (and ``\\=`` in tag and field keys) in names,
``\\"`` and ``\\\\`` in string values. Parsing is per line with ``bytes.split``, which is C, and
falls to a character scanner only for a line with a backslash or a quote. A line that cannot
be parsed rejects its points (one error naming the line) and never the request.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from minutely.errors import DecodeError
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits, SeriesIndex
from minutely.ingest.validate import Decoded, PointError

CONTENT_TYPE = "text/plain"

#: ticks per second of each precision InfluxDB accepts (v1 and v2 spellings)
PRECISIONS = {
    "ns": 10**9,
    "n": 10**9,
    "us": 10**6,
    "u": 10**6,
    "µ": 10**6,
    "ms": 10**3,
    "s": 1,
    "m": 1 / 60,
    "h": 1 / 3600,
}
_TRUE = frozenset({b"t", b"T", b"true", b"True", b"TRUE"})
_FALSE = frozenset({b"f", b"F", b"false", b"False", b"FALSE"})


class LineError(ValueError):
    """One line that cannot be parsed."""


def decode_line_protocol(
    body: bytes, precision: str, mapping: LabelMapping, limits: Limits
) -> Decoded:
    """Decode a line-protocol body; raise ``DecodeError`` for a bad precision or non-UTF-8."""
    per_second = PRECISIONS.get(precision)
    if per_second is None:
        msg = f"precision {precision!r} is not one of {', '.join(PRECISIONS)}"
        raise DecodeError(msg)
    index = SeriesIndex(mapping)
    keys: dict[bytes, tuple[str, dict[str, str]]] = {}  # a line's series key → its parts
    numbers: dict[tuple[bytes, bytes], int] = {}  # (series key, field) → series number
    series: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    lines: list[int] = []  # per point: its line, 1-based
    strings: dict[int, str] = {}  # point → the field a string value made unusable
    broken: list[tuple[int, int, str]] = []  # (point index, line, why) of unparsable lines
    now_ticks = int(limits.now * per_second)
    tricky = b"\\" in body or b'"' in body

    for number, line in enumerate(body.split(b"\n"), 1):
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            if tricky and (b"\\" in line or b'"' in line):
                key, fields, stamp = _split_escaped(line)
            else:
                key, fields, stamp = _split_plain(line)
            ticks = now_ticks if stamp is None else int(stamp)
            head = keys.get(key)
            if head is None:
                head = keys[key] = _series_key(key)
            parsed = [(field, _value(raw)) for field, raw in fields]  # all or none of a line
            for field, value in parsed:
                if value is None:
                    strings[len(values)] = field.decode(errors="replace")
                    value = np.nan
                pair = (key, field)
                n = numbers.get(pair)
                if n is None:
                    name = f"{head[0]}.{field.decode()}"
                    n = numbers[pair] = index.add(name, head[1])
                series.append(n)
                values.append(value)
                stamps.append(ticks)
                lines.append(number)
        except (LineError, ValueError) as e:
            broken.append((len(values) + len(broken), number, str(e)))

    ts = _seconds(np.array(stamps, dtype=np.int64), per_second)
    value_array = np.array(values, dtype=np.float64)
    present = np.ones(len(values), dtype=np.bool_)
    if strings:
        present[list(strings)] = False

    def where(i: int) -> str:
        return f"line {lines[i]}"

    def explain_value(i: int) -> str | None:
        field = strings.get(i)
        return None if field is None else f"field {field!r}: a string, not a number"

    decoded = index.validate(
        np.array(series, dtype=np.int32), ts, value_array, limits, where, present, explain_value
    )
    if not broken:
        return decoded
    return _with_broken_lines(decoded, broken, limits.max_errors)


def _split_plain(line: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes | None]:
    """A line without escapes or quotes: three space-separated parts."""
    parts = line.split(b" ")
    if len(parts) == 2:
        key, fields, stamp = parts[0], parts[1], None
    elif len(parts) == 3:
        key, fields, stamp = parts
    else:
        parts = [p for p in parts if p]  # several spaces between parts
        if len(parts) not in (2, 3):
            msg = "expected a measurement, fields and an optional timestamp"
            raise LineError(msg)
        key, fields, stamp = parts[0], parts[1], parts[2] if len(parts) == 3 else None
    pairs = []
    for item in fields.split(b","):
        name, eq, raw = item.partition(b"=")
        if not eq or not name or not raw:
            msg = f"field {item.decode(errors='replace')!r} is not key=value"
            raise LineError(msg)
        pairs.append((name, raw))
    return key, pairs, stamp


def _split_escaped(line: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes | None]:
    """A line with backslashes or quoted strings, scanned character by character."""
    text = line
    n = len(text)
    i = 0
    # the series key: up to the first unescaped space
    while i < n and text[i] != 0x20:
        i += 2 if text[i] == 0x5C else 1
    key = text[:i]
    while i < n and text[i] == 0x20:
        i += 1
    pairs: list[tuple[bytes, bytes]] = []
    while i < n:
        start = i
        while i < n and text[i] != 0x3D:  # '='
            if text[i] in (0x20, 0x2C):
                msg = f"field {text[start:i].decode(errors='replace')!r} has no value"
                raise LineError(msg)
            i += 2 if text[i] == 0x5C else 1
        name = _unescape(text[start:i])
        i += 1
        start = i
        if i < n and text[i] == 0x22:  # '"': a string value, to its closing quote
            i += 1
            while i < n and text[i] != 0x22:
                i += 2 if text[i] == 0x5C else 1
            if i >= n:
                msg = "a string field value has no closing quote"
                raise LineError(msg)
            i += 1
        else:
            while i < n and text[i] not in (0x2C, 0x20):
                i += 1
        raw = text[start:i]
        if not name or not raw:
            msg = f"field {name.decode(errors='replace')!r} is not key=value"
            raise LineError(msg)
        pairs.append((name, raw))
        if i < n and text[i] == 0x2C:
            i += 1
            continue
        break
    rest = text[i:].strip()
    if not pairs:
        msg = "expected at least one field"
        raise LineError(msg)
    if b" " in rest:
        msg = "unexpected text after the timestamp"
        raise LineError(msg)
    return key, pairs, rest or None


def _series_key(key: bytes) -> tuple[str, dict[str, str]]:
    """``measurement,k=v,…`` (escaped) → the measurement and its tags."""
    parts = _split_unescaped(key, 0x2C)  # ','
    measurement = _unescape(parts[0]).decode()
    if not measurement:
        msg = "the measurement is empty"
        raise LineError(msg)
    tags: dict[str, str] = {}
    for part in parts[1:]:
        pieces = _split_unescaped(part, 0x3D)  # '='
        if len(pieces) != 2 or not pieces[0] or not pieces[1]:
            msg = f"tag {part.decode(errors='replace')!r} is not key=value"
            raise LineError(msg)
        tags[_unescape(pieces[0]).decode()] = _unescape(pieces[1]).decode()
    return measurement, tags


def _split_unescaped(text: bytes, sep: int) -> list[bytes]:
    if b"\\" not in text:
        return text.split(bytes([sep]))
    parts: list[bytes] = []
    start = i = 0
    while i < len(text):
        if text[i] == 0x5C:
            i += 2
            continue
        if text[i] == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: bytes) -> bytes:
    if b"\\" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == 0x5C and i + 1 < len(text) and text[i + 1] in b' ,="\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _value(raw: bytes) -> float | None:
    """A field value as a float; None for a string. Raises ValueError if malformed."""
    last = raw[-1]
    if last == 0x69 or last == 0x75:  # 'i', 'u': integers
        number = int(raw[:-1])
        if last == 0x75 and number < 0:
            msg = f"unsigned field value {raw.decode()} is negative"
            raise LineError(msg)
        return float(number)
    if raw[0] == 0x22:  # '"'
        return None
    try:
        return float(raw)
    except ValueError:
        if raw in _TRUE:
            return 1.0
        if raw in _FALSE:
            return 0.0
        msg = f"field value {raw.decode(errors='replace')!r} is not a number, boolean or string"
        raise LineError(msg) from None


def _seconds(ticks: np.ndarray, per_second: float) -> np.ndarray:
    """Unix seconds from integer ticks, exact to float64 for ns."""
    if per_second >= 1 and per_second == int(per_second):
        p = int(per_second)
        if p == 1:
            return ticks.astype(np.float64)
        whole, rest = np.divmod(ticks, p)
        return whole.astype(np.float64) + rest / p
    return ticks.astype(np.float64) / per_second


def _with_broken_lines(
    decoded: Decoded, broken: list[tuple[int, int, str]], max_errors: int
) -> Decoded:
    """Add the unparsable lines' errors: each counts as one rejected point."""
    # validate numbered the parsed points alone; each broken line took a place among them
    places = np.array([place for place, _, _ in broken], dtype=np.int64)
    parsed_before = places - np.arange(len(places))
    errors = [
        PointError(e.index + int(np.searchsorted(parsed_before, e.index, side="right")), e.reason)
        for e in decoded.errors
    ]
    errors += [PointError(place, f"line {line}: {why}") for place, line, why in broken]
    errors.sort(key=lambda e: e.index)
    return replace(decoded, rejected=decoded.rejected + len(broken), errors=errors[:max_errors])
