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
``\\"`` and ``\\\\`` in string values. A line that cannot be parsed rejects its points (one
error naming the line) and never the request.

A compiled scanner (``_scan``) reads the plain lines: no backslash or quote, single spaces,
numbers and booleans for values, an integer timestamp. A line's series key and field name
are resolved to (server, metric) once per process (``wire.SeriesCache``). Any other line
(escapes, strings, ``nan``, anything malformed) is read by the reference reader
(``_Reader``), which is also what says why a line is bad.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from minutely.errors import DecodeError
from minutely.ingest import wire
from minutely.ingest.labels import LabelMapping, Resolved
from minutely.ingest.series import Limits
from minutely.ingest.validate import MALFORMED, Body, Decoded, PointError
from minutely.ingest.wire import SeriesCache

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


_MIN_TICKS, _MAX_TICKS = -(2**63), 2**63 - 1


class LineError(ValueError):
    """One line that cannot be parsed."""


def series_cache(mapping: LabelMapping) -> SeriesCache:
    """A cache of line-protocol series (``<series key> <field>`` → server, metric)."""

    def resolve(key: bytes) -> Resolved | None:
        series, _, field = key.rpartition(b" ")
        try:
            measurement, tags = _series_key(series)
            return mapping.resolve(f"{measurement}.{field.decode()}", tags)
        except ValueError:  # LineError, or not UTF-8: the reader says why
            return None

    return SeriesCache(mapping, resolve)


def decode_line_protocol(
    body: Body,
    precision: str,
    mapping: LabelMapping,
    limits: Limits,
    cache: SeriesCache | None = None,
) -> Decoded:
    """Decode a line-protocol body; raise ``DecodeError`` for a bad precision. ``cache``
    keeps series resolved across calls (None: this call's own)."""
    per_second = _per_second(precision)
    if cache is None or cache.context != mapping:
        cache = series_cache(mapping)
    now_ticks = int(limits.now * per_second)
    buf = np.frombuffer(body, dtype=np.uint8)
    lines, spans, hashes, value, ticks, hard, slow = _scan(buf, now_ticks)
    ids, table = cache.series_of(body, buf, spans, hashes)
    for k in np.flatnonzero(hard[:, 1] > hard[:, 0]).tolist():  # Python rounds these
        value[k] = float(body[int(hard[k, 0]) : int(hard[k, 1])])
    refused = ids < 0
    if refused.any():  # series keys or fields that do not resolve: the reader says why
        slow = np.unique(np.concatenate([slow, lines[refused] - 1]))  # 0-based
        keep = ~np.isin(lines - 1, slow)
        lines, ids, value, ticks = lines[keep], ids[keep], value[keep], ticks[keep]
    present: npt.NDArray[np.bool_] | None = None
    strings: dict[int, str] = {}
    broken: list[tuple[int, int, str]] = []
    if slow.shape[0]:
        reader = _Reader(cache, mapping, now_ticks)
        starts = wire.line_starts(buf)
        for k in slow.tolist():
            reader.read(k + 1, bytes(body[int(starts[k]) : int(starts[k + 1]) - 1]))
        table = cache.table()
        ids, ticks, value, lines, present, strings, broken = _merge(
            (ids, ticks, value, lines), reader
        )

    def where(i: int) -> str:
        return f"line {int(lines[i])}"

    def explain_value(i: int) -> str | None:
        field = strings.get(i)
        return None if field is None else f"field {field!r}: a string, not a number"

    ts = _seconds(ticks, per_second)
    decoded = wire.validate_points(
        table, ids, ts, value, limits, mapping, where, present, explain_value
    )
    if not broken:
        return decoded
    return _with_broken_lines(decoded, broken, limits.max_errors)


def decode_line_protocol_reference(
    body: Body, precision: str, mapping: LabelMapping, limits: Limits
) -> Decoded:
    """``decode_line_protocol`` a line at a time in Python: the reference the scanner is
    tested against."""
    per_second = _per_second(precision)
    cache = series_cache(mapping)
    reader = _Reader(cache, mapping, int(limits.now * per_second))
    for number, line in enumerate(bytes(body).split(b"\n"), 1):
        reader.read(number, line)
    none = np.zeros(0, dtype=np.int64)
    ids, ticks, value, lines, present, strings, broken = _merge(
        (none.astype(np.int32), none, none.astype(np.float64), none), reader
    )

    def where(i: int) -> str:
        return f"line {int(lines[i])}"

    def explain_value(i: int) -> str | None:
        field = strings.get(i)
        return None if field is None else f"field {field!r}: a string, not a number"

    decoded = wire.validate_points(
        cache.table(),
        ids,
        _seconds(ticks, per_second),
        value,
        limits,
        mapping,
        where,
        present,
        explain_value,
    )
    if not broken:
        return decoded
    return _with_broken_lines(decoded, broken, limits.max_errors)


def _per_second(precision: str) -> float:
    per_second = PRECISIONS.get(precision)
    if per_second is None:
        msg = f"precision {precision!r} is not one of {', '.join(PRECISIONS)}"
        raise DecodeError(msg)
    return per_second


class _Reader:
    """Lines read one at a time in Python: their points, and the lines that are broken."""

    def __init__(self, cache: SeriesCache, mapping: LabelMapping, now_ticks: int) -> None:
        self.cache = cache
        self.mapping = mapping
        self.now_ticks = now_ticks
        self.keys: dict[bytes, tuple[str, dict[str, str]]] = {}  # series key → its parts
        self.numbers: dict[tuple[bytes, bytes], int] = {}  # (series key, field) → series id
        self.ids: list[int] = []
        self.values: list[float] = []
        self.stamps: list[int] = []
        self.lines: list[int] = []  # per point: its line, 1-based
        self.strings: dict[int, str] = {}  # point → the field a string value made unusable
        self.broken: list[tuple[int, str]] = []  # (line, why) of unparsable lines

    def read(self, number: int, line: bytes) -> None:
        line = line.strip()
        if not line or line.startswith(b"#"):
            return
        try:
            if b"\\" in line or b'"' in line:
                key, fields, stamp = _split_escaped(line)
            else:
                key, fields, stamp = _split_plain(line)
            ticks = self.now_ticks if stamp is None else int(stamp)
            if not _MIN_TICKS <= ticks <= _MAX_TICKS:
                msg = f"timestamp {ticks} is out of range"
                raise LineError(msg)
            head = self.keys.get(key)
            if head is None:
                head = self.keys[key] = _series_key(key)
            parsed = [(field, _value(raw)) for field, raw in fields]  # all or none of a line
            for field, value in parsed:
                if value is None:
                    self.strings[len(self.values)] = field.decode(errors="replace")
                    value = np.nan
                pair = (key, field)
                n = self.numbers.get(pair)
                if n is None:
                    name = f"{head[0]}.{field.decode()}"
                    n = self.numbers[pair] = self.cache.add(self.mapping.resolve(name, head[1]))
                self.ids.append(n)
                self.values.append(value)
                self.stamps.append(ticks)
                self.lines.append(number)
        except (LineError, ValueError) as e:
            self.broken.append((number, str(e)))


def _merge(
    fast: tuple[
        npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]
    ],
    reader: _Reader,
) -> tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.bool_],
    dict[int, str],
    list[tuple[int, int, str]],
]:
    """The scanner's points and the reader's in line order, the reader's strings at their
    new places, and each broken line's place among points and broken lines, as one pass
    over the lines would have numbered them."""
    ids, ticks, value, lines = fast
    first = int(lines.shape[0])
    lines = np.concatenate([lines, np.array(reader.lines, dtype=np.int64)])
    order = np.argsort(lines, kind="stable")
    place = np.empty_like(order)
    place[order] = np.arange(order.shape[0])
    ids = np.concatenate([ids, np.array(reader.ids, dtype=np.int32)])[order]
    ticks = np.concatenate([ticks, np.array(reader.stamps, dtype=np.int64)])[order]
    value = np.concatenate([value, np.array(reader.values, dtype=np.float64)])[order]
    lines = lines[order]
    present = np.ones(lines.shape[0], dtype=np.bool_)
    strings = {int(place[first + k]): field for k, field in reader.strings.items()}
    if strings:
        present[list(strings)] = False
    # a broken line follows every point of the lines up to it (its own, read before the
    # field that broke it, included) and the broken lines before it
    broken_lines = np.array([n for n, _ in reader.broken], dtype=np.int64)
    before = np.searchsorted(lines, broken_lines, side="right")
    broken = [(int(before[k]) + k, n, why) for k, (n, why) in enumerate(reader.broken)]
    return ids, ticks, value, lines, present, strings, broken


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
        if abs(number) >= 2**64:
            msg = f"integer field value {raw.decode()} is out of range"
            raise LineError(msg)
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
        replace(e, index=e.index + int(np.searchsorted(parsed_before, e.index, side="right")))
        for e in decoded.errors
    ]
    more = [PointError(place, f"line {line}: {why}", MALFORMED) for place, line, why in broken]
    return replace(decoded, errors=errors).rejecting(more, len(broken), MALFORMED, max_errors)


@numba.njit(nogil=True, cache=True)
def _boolean(buf: Any, a: int, b: int) -> int:
    """1 or 0 for InfluxDB's spellings of true and false, -1 for anything else."""
    size = b - a
    c = buf[a]
    if size == 1:
        return 1 if c == 116 or c == 84 else (0 if c == 102 or c == 70 else -1)
    if size == 4:  # true, True, TRUE
        w = buf[a + 1 : b]
        if c == 116 and w[0] == 114 and w[1] == 117 and w[2] == 101:
            return 1
        if c == 84 and (
            (w[0] == 114 and w[1] == 117 and w[2] == 101)
            or (w[0] == 82 and w[1] == 85 and w[2] == 69)
        ):
            return 1
        return -1
    if size == 5:  # false, False, FALSE
        w = buf[a + 1 : b]
        if c == 102 and w[0] == 97 and w[1] == 108 and w[2] == 115 and w[3] == 101:
            return 0
        if c == 70 and (
            (w[0] == 97 and w[1] == 108 and w[2] == 115 and w[3] == 101)
            or (w[0] == 65 and w[1] == 76 and w[2] == 83 and w[3] == 69)
        ):
            return 0
    return -1


@numba.njit(nogil=True, cache=True)
def _scan(buf: Any, now_ticks: int) -> Any:
    """Per point of a plain line: its line (1-based), key spans (series key start, end,
    field start, end), their hash, value, ticks and the span of a value Python must round
    (empty if none); and the lines (0-based) left to the reader."""
    n = buf.shape[0]
    cap = 1
    lines_cap = 1
    for i in range(n):
        if buf[i] == 61:
            cap += 1
        elif buf[i] == 10:
            lines_cap += 1
    lines = np.empty(cap, np.int64)
    spans = np.empty((cap, 4), np.int64)
    hashes = np.empty(cap, np.uint64)
    value = np.empty(cap, np.float64)
    ticks = np.empty(cap, np.int64)
    hard = np.zeros((cap, 2), np.int64)
    slow = np.empty(lines_cap, np.int64)
    points = 0
    slows = 0
    line = 0
    i = 0
    while i <= n:
        end = i
        while end < n and buf[end] != 10:
            end += 1
        a = i
        b = end
        line += 1
        i = end + 1
        while a < b and wire.space(buf[a]):
            a += 1
        while b > a and wire.space(buf[b - 1]):
            b -= 1
        if a == b or buf[a] == 35:  # empty, or a '#' comment
            continue
        sp1 = -1
        sp2 = -1
        spaces = 0
        plain = True
        for k in range(a, b):
            c = buf[k]
            if c == 92 or c == 34:  # '\', '"'
                plain = False
                break
            if c == 32:
                spaces += 1
                if spaces == 1:
                    sp1 = k
                elif spaces == 2:
                    sp2 = k
                else:
                    plain = False
                    break
        if not plain or spaces == 0 or (spaces == 2 and sp2 == sp1 + 1):
            slow[slows] = line - 1
            slows += 1
            continue
        stamp = now_ticks
        fields_end = b
        if spaces == 2:
            fields_end = sp2
            ok, stamp = wire.integer(buf, sp2 + 1, b)
            if not ok:
                slow[slows] = line - 1
                slows += 1
                continue
        key_hash = wire.fnv(buf, a, sp1, wire.FNV_OFFSET)
        saved = points
        ok = True
        k = sp1 + 1
        while True:
            item_end = k
            while item_end < fields_end and buf[item_end] != 44:  # ','
                item_end += 1
            eq = k
            while eq < item_end and buf[eq] != 61:  # '='
                eq += 1
            if eq == k or eq + 1 >= item_end:
                ok = False
                break
            v = 0.0
            last = buf[item_end - 1]
            hard[points, 0] = 0
            hard[points, 1] = 0
            if last == 105 or last == 117:  # 'i', 'u'
                good, number = wire.integer(buf, eq + 1, item_end - 1)
                if not good or (last == 117 and number < 0):
                    ok = False
                    break
                v = float(number)
            else:
                kind, v = wire.decimal(buf, eq + 1, item_end)
                if kind == wire.HARD:
                    hard[points, 0] = eq + 1
                    hard[points, 1] = item_end
                elif kind == wire.NOT_DECIMAL:
                    truth = _boolean(buf, eq + 1, item_end)
                    if truth < 0:
                        ok = False
                        break
                    v = float(truth)
            lines[points] = line
            spans[points, 0] = a
            spans[points, 1] = sp1
            spans[points, 2] = k
            spans[points, 3] = eq
            hashes[points] = wire.fnv(buf, k, eq, key_hash)
            value[points] = v
            ticks[points] = stamp
            points += 1
            if item_end >= fields_end:
                break
            k = item_end + 1
        if not ok:
            points = saved
            slow[slows] = line - 1
            slows += 1
    return (
        lines[:points],
        spans[:points],
        hashes[:points],
        value[:points],
        ticks[:points],
        hard[:points],
        slow[:slows],
    )
