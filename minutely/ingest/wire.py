"""What the compiled protocol scanners share: byte-level readers (protobuf varints, decimal
numbers, a hash of a span) compiled with numba, and the step from the spans a scanner found
to series numbers through a per-process ``SeriesCache``.

A scanner reads network bytes, so every read here is bounds-checked and reports failure with
a negative position or a kind code rather than raising; the caller then hands the input to
the protocol's reference decoder, which says exactly what is wrong with it. Numbers are
parsed here only when the result is certainly the correctly rounded one (Clinger's fast path:
at most 15 significant digits and a power of ten below 10^23, both exact in float64, so one
multiplication or division rounds once); any other decimal is marked for Python's ``float``.

    scanner (numba) ──► per point: series entry, value, time; per entry: key span, hash
    SeriesCache.series_of ──► an id per entry (a new key: resolved once, in Python)
    validate_points ──► the table's server and metric codes per point ──► validate()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from minutely.ingest.labels import LabelMapping, Resolved
from minutely.ingest.series import Limits, validate_named
from minutely.ingest.validate import Body, Decoded, Names

#: ``decimal``'s kinds: parsed exactly here, a decimal Python must parse, not a plain decimal
EXACT, HARD, NOT_DECIMAL = 0, 1, 2

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_POW10 = np.array([10.0**i for i in range(23)], dtype=np.float64)  # each exact in float64
_MAX_EXACT = 1 << 53

_jit = numba.njit(nogil=True, cache=True)


@_jit
def varint(buf: Any, i: int, end: int) -> tuple[int, int]:
    """(value as uint64 bits in an int64, next position), or position -1 if malformed."""
    result = 0
    shift = 0
    while i < end:
        b = int(buf[i])
        i += 1
        if shift == 63 and b > 1:
            return 0, -1  # more than 64 bits
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            return 0, -1
    return 0, -1


@_jit
def skip_field(buf: Any, i: int, end: int, wire_type: int) -> int:
    """The position after a field's payload of ``wire_type``, or -1 (groups are not read)."""
    if wire_type == 0:
        _, i = varint(buf, i, end)
        return i
    if wire_type == 1:
        return i + 8 if i + 8 <= end else -1
    if wire_type == 2:
        length, i = varint(buf, i, end)
        if i < 0 or length < 0 or length > end - i:
            return -1
        return i + length
    if wire_type == 5:
        return i + 4 if i + 4 <= end else -1
    return -1


@numba.njit(inline="always")
def space(c: Any) -> bool:
    """Is byte ``c`` ASCII whitespace (what ``bytes.split()`` splits on and ``strip()``
    strips)?"""
    return bool(c == 32 or (9 <= c <= 13))


@_jit
def fnv(buf: Any, start: int, end: int, h: np.uint64) -> np.uint64:
    """FNV-1a over ``buf[start:end]``, continuing from ``h``."""
    for k in range(start, end):
        h = (h ^ np.uint64(buf[k])) * _FNV_PRIME
    return h


@_jit
def hash_span(buf: Any, words: Any, start: int, end: int) -> np.uint64:
    """A hash of ``buf[start:end]`` taken eight bytes at a time (``words`` is ``words_of``'s
    view of ``buf``): one multiply per word rather than per byte, and, like ``fnv``, the
    same for the same bytes wherever they sit."""
    h = FNV_OFFSET ^ np.uint64(end - start)
    i = start
    k = start >> 3
    shift = np.uint64(8 * (start & 7))
    back = np.uint64(64) - shift
    last = words.shape[0] - 1  # the word at k + 1 must exist when the span is unaligned
    while i + 8 <= end:
        if shift == 0 and k <= last:
            x = words[k]
        elif k < last:
            x = (words[k] >> shift) | (words[k + 1] << back)
        else:  # the buffer's last bytes, past its whole words: the same word, by bytes
            x = np.uint64(0)
            for b in range(7, -1, -1):
                x = (x << np.uint64(8)) | np.uint64(buf[i + b])
        h = (h ^ x) * _FNV_PRIME
        h ^= h >> np.uint64(29)
        i += 8
        k += 1
    return fnv(buf, i, end, h)


def words_of(buf: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """``buf``'s whole eight-byte words, for ``hash_span`` (a view, no copy)."""
    return buf[: buf.shape[0] // 8 * 8].view(np.uint64)


@_jit
def decimal(buf: Any, start: int, end: int) -> tuple[int, float]:
    """``(kind, value)`` of ``buf[start:end]`` read as ``[+-]digits[.digits][e[+-]digits]``:
    kind ``EXACT`` with its correctly rounded value, ``HARD`` (in that form, but Python must
    round it) or ``NOT_DECIMAL`` (anything else: ``nan``, ``1_0``, empty...)."""
    i = start
    negative = False
    if i < end and (buf[i] == 43 or buf[i] == 45):  # '+', '-'
        negative = buf[i] == 45
        i += 1
    mantissa = 0
    significant = 0
    exponent = 0
    digits = 0
    inexact = False
    while i < end and 48 <= buf[i] <= 57:
        d = int(buf[i]) - 48
        digits += 1
        if significant < 18:
            mantissa = mantissa * 10 + d
            if mantissa:
                significant += 1
        else:
            exponent += 1
            inexact |= d != 0
        i += 1
    if i < end and buf[i] == 46:  # '.'
        i += 1
        while i < end and 48 <= buf[i] <= 57:
            d = int(buf[i]) - 48
            digits += 1
            if significant < 18:
                mantissa = mantissa * 10 + d
                exponent -= 1
                if mantissa:
                    significant += 1
            else:
                inexact |= d != 0
            i += 1
    if digits == 0:
        return NOT_DECIMAL, 0.0
    if i < end and (buf[i] == 101 or buf[i] == 69):  # 'e', 'E'
        i += 1
        exp_negative = False
        if i < end and (buf[i] == 43 or buf[i] == 45):
            exp_negative = buf[i] == 45
            i += 1
        exp_digits = 0
        e = 0
        while i < end and 48 <= buf[i] <= 57:
            if e < 100_000:
                e = e * 10 + int(buf[i]) - 48
            exp_digits += 1
            i += 1
        if exp_digits == 0:
            return NOT_DECIMAL, 0.0
        exponent += -e if exp_negative else e
    if i != end:
        return NOT_DECIMAL, 0.0
    if mantissa == 0 and not inexact:
        return EXACT, -0.0 if negative else 0.0
    if inexact or mantissa > _MAX_EXACT or exponent > 22 or exponent < -22:
        return HARD, 0.0
    value = float(mantissa)
    value = value * _POW10[exponent] if exponent >= 0 else value / _POW10[-exponent]
    return EXACT, -value if negative else value


@_jit
def integer(buf: Any, start: int, end: int) -> tuple[bool, int]:
    """``(ok, value)`` of ``buf[start:end]`` read as ``[-]digits`` of at most 18 digits."""
    i = start
    negative = False
    if i < end and buf[i] == 45:
        negative = True
        i += 1
    if i == end or end - i > 18:
        return False, 0
    value = 0
    while i < end:
        c = buf[i]
        if c < 48 or c > 57:
            return False, 0
        value = value * 10 + int(c) - 48
        i += 1
    return True, -value if negative else value


@_jit
def _key_matches(
    buf: Any, spans: Any, ids: Any, arena: Any, key_start: Any, key_end: Any
) -> npt.NDArray[np.bool_]:
    """Per entry with an id: are its key's bytes the ones stored for that id? (The key of
    spans ``(a, b, c, d)`` is ``buf[a:b]``, followed by a space and ``buf[c:d]`` if that is
    not empty.)"""
    n = ids.shape[0]
    out = np.ones(n, dtype=np.bool_)
    for e in range(n):
        at = ids[e]
        if at < 0:
            continue
        a, b, c, d = spans[e, 0], spans[e, 1], spans[e, 2], spans[e, 3]
        s, t = key_start[at], key_end[at]
        size = (b - a) + ((d - c) + 1 if d > c else 0)
        if s < 0 or t - s != size:
            out[e] = False
            continue
        for k in range(b - a):
            if buf[a + k] != arena[s + k]:
                out[e] = False
                break
        if out[e] and d > c:
            s += b - a
            if arena[s] != 32:
                out[e] = False
                continue
            s += 1
            for k in range(d - c):
                if buf[c + k] != arena[s + k]:
                    out[e] = False
                    break
    return out


@_jit
def line_starts(buf: Any) -> Any:
    """Where each line starts, and one past the end (as if the body ended in a newline)."""
    n = buf.shape[0]
    count = 1
    for i in range(n):
        if buf[i] == 10:
            count += 1
    starts = np.empty(count + 1, np.int64)
    starts[0] = 0
    k = 1
    for i in range(n):
        if buf[i] == 10:
            starts[k] = i + 1
            k += 1
    starts[k] = n + 1
    return starts


def key_bytes(body: Body, spans: npt.NDArray[np.int64], entry: int) -> bytes:
    """The raw key of ``entry`` as ``_key_matches`` reads it (bytes: it is a dict key)."""
    a, b, c, d = (int(x) for x in spans[entry])
    return bytes(body[a:b] + b" " + body[c:d] if d > c else body[a:b])


@dataclass(frozen=True, slots=True)
class SeriesTable:
    """The series a request's ids refer to: each id's server and metric as codes into name
    arrays. A table is never changed where a request may read it (new series go past the
    ids handed out; a full cache starts a new table), so a decode reads it without a lock."""

    server_of: npt.NDArray[np.int32]  #: per id: server code, -1 when no label names one
    metric_of: npt.NDArray[np.int32]
    server_names: npt.NDArray[np.object_]
    metric_names: npt.NDArray[np.object_]

    def metric(self, series: int) -> str:
        return str(self.metric_names[self.metric_of[series]])

    def names(self, ids: npt.NDArray[np.int32]) -> tuple[Names, Names]:
        """Per point of ``ids``: its server and metric, dictionary-encoded with only the
        names these points use."""
        return (
            _compact(self.server_of[ids], self.server_names),
            _compact(self.metric_of[ids], self.metric_names),
        )


def _compact(codes: npt.NDArray[np.int32], names: npt.NDArray[np.object_]) -> Names:
    """The names ``codes`` use, in code order, and each code renumbered into them (-1, no
    server, stays -1): a mark per name rather than a sort, as codes are below the table's
    size."""
    marks = np.zeros(names.shape[0] + 1, dtype=np.bool_)
    marks[codes + 1] = True  # -1 → 0
    marks[0] = False
    used = np.flatnonzero(marks)
    renumber = (np.cumsum(marks, dtype=np.int32) - np.int32(1)).astype(np.int32)
    renumber[0] = -1
    compact: npt.NDArray[np.int32] = renumber[codes + 1]
    return Names(names[used - 1], compact)


class SeriesCache:
    """A protocol's series as resolved before, kept across requests: a raw key (the bytes a
    protocol names a series with) → an id with its ``(server, metric)``, so a request of
    known series is looked up with numpy (a binary search of the keys' hashes, then a
    compiled comparison of the keys' bytes) and only a new series costs ``resolve``.

    At most ``max_series`` are kept; when full the cache starts over, which bounds its
    memory under series churn at the price of resolving the live series once more. One lock
    serialises look-ups between the worker threads that decode.
    """

    def __init__(
        self,
        context: object,
        resolve: Callable[[bytes], Resolved | None],
        max_series: int = 1 << 18,
    ) -> None:
        #: what ``resolve`` depends on (the label mapping...): a cache serves this context only
        self.context = context
        self.resolve = resolve  #: a raw key's series, or None if the key is malformed
        self.max_series = max_series
        self._lock = threading.Lock()
        self._reset(1024)

    def _reset(self, capacity: int) -> None:
        self._count = 0
        self._hashes = np.zeros(0, dtype=np.uint64)  # sorted
        self._hash_ids = np.zeros(0, dtype=np.int32)
        self._key_start = np.full(capacity, -1, dtype=np.int64)
        self._key_end = np.full(capacity, -1, dtype=np.int64)
        self._arena = np.zeros(1 << 16, dtype=np.uint8)
        self._arena_used = 0
        self._server_of = np.zeros(capacity, dtype=np.int32)
        self._metric_of = np.zeros(capacity, dtype=np.int32)
        self._servers: dict[str, int] = {}
        self._metrics: dict[str, int] = {}
        self._server_names = np.empty(capacity, dtype=object)
        self._metric_names = np.empty(capacity, dtype=object)

    def __len__(self) -> int:
        return self._count

    def table(self) -> SeriesTable:
        """The series of every id handed out so far."""
        n = self._count
        return SeriesTable(
            self._server_of[:n],
            self._metric_of[:n],
            self._server_names[: len(self._servers)],
            self._metric_names[: len(self._metrics)],
        )

    def series_of(
        self,
        body: Body,
        buf: npt.NDArray[np.uint8],
        spans: npt.NDArray[np.int64],
        hashes: npt.NDArray[np.uint64],
    ) -> tuple[npt.NDArray[np.int32], SeriesTable]:
        """The id of each entry (-1 where ``resolve`` refused its key) and the table they
        index. Entry ``e``'s key is ``key_bytes(body, spans, e)``; ``hashes[e]`` its hash."""
        with self._lock:
            if self._count + hashes.shape[0] > self.max_series:
                self._reset(1024)
            ids = self._known(buf, spans, hashes)
            if ids.shape[0] and int(ids.min()) < 0:
                ids = self._learn(body, buf, spans, hashes, ids)
            return ids, self.table()

    def add(self, resolved: Resolved) -> int:
        """An id for a series resolved by the caller (not looked up by key)."""
        with self._lock:
            if self._count >= self.max_series:
                self._reset(1024)
            return self._add(resolved, b"")

    def _known(
        self,
        buf: npt.NDArray[np.uint8],
        spans: npt.NDArray[np.int64],
        hashes: npt.NDArray[np.uint64],
    ) -> npt.NDArray[np.int32]:
        """Ids of entries already cached, -1 for the others (new, or a hash collision)."""
        if self._hashes.shape[0] == 0 or hashes.shape[0] == 0:
            return np.full(hashes.shape[0], -1, dtype=np.int32)
        at = np.searchsorted(self._hashes, hashes)
        at[at == self._hashes.shape[0]] = 0
        ids = np.where(self._hashes[at] == hashes, self._hash_ids[at], -1).astype(np.int32)
        same = _key_matches(buf, spans, ids, self._arena, self._key_start, self._key_end)
        ids[~same] = -1
        return ids

    def _learn(
        self,
        body: Body,
        buf: npt.NDArray[np.uint8],
        spans: npt.NDArray[np.int64],
        hashes: npt.NDArray[np.uint64],
        ids: npt.NDArray[np.int32],
    ) -> npt.NDArray[np.int32]:
        """Resolve the distinct new keys among ``ids`` == -1; Python work per new series."""
        new = np.flatnonzero(ids < 0)
        unique, first = np.unique(hashes[new], return_index=True)
        indexed = np.isin(unique, self._hashes)  # a hash taken by another key: not indexed
        fresh: list[tuple[int, int]] = []  # (hash, id) to index
        for entry in np.sort(new[first[~indexed]]).tolist():
            key = key_bytes(body, spans, entry)
            resolved = self.resolve(key)
            if resolved is not None:
                fresh.append((int(hashes[entry]), self._add(resolved, key)))
        if fresh:
            fresh.sort()
            h = np.array([f[0] for f in fresh], dtype=np.uint64)
            i = np.array([f[1] for f in fresh], dtype=np.int32)
            at = np.searchsorted(self._hashes, h)
            self._hashes = np.insert(self._hashes, at, h)
            self._hash_ids = np.insert(self._hash_ids, at, i)
        ids = self._known(buf, spans, hashes)
        others: dict[bytes, int] = {}  # refused, or sharing a hash with another key
        for entry in np.flatnonzero(ids < 0).tolist():
            key = key_bytes(body, spans, entry)
            number = others.get(key)
            if number is None:
                resolved = self.resolve(key)
                number = others[key] = -1 if resolved is None else self._add(resolved, b"")
            ids[entry] = number
        return ids

    def _add(self, resolved: Resolved, key: bytes) -> int:
        server, metric = resolved
        at = self._count
        if at == self._server_of.shape[0]:
            self._grow(2 * at)
        if server is None:
            self._server_of[at] = -1
        else:
            code = self._servers.get(server)
            if code is None:
                code = self._servers[server] = len(self._servers)
                self._server_names = _put(self._server_names, code, server)
            self._server_of[at] = code
        code = self._metrics.get(metric)
        if code is None:
            code = self._metrics[metric] = len(self._metrics)
            self._metric_names = _put(self._metric_names, code, metric)
        self._metric_of[at] = code
        if key:
            end = self._arena_used + len(key)
            if end > self._arena.shape[0]:
                grown = np.zeros(2 * end, dtype=np.uint8)
                grown[: self._arena_used] = self._arena[: self._arena_used]
                self._arena = grown
            self._arena[self._arena_used : end] = np.frombuffer(key, dtype=np.uint8)
            self._key_start[at], self._key_end[at] = self._arena_used, end
            self._arena_used = end
        self._count = at + 1
        return at

    def _grow(self, capacity: int) -> None:
        """Copy the per-id arrays into larger ones (tables handed out keep the old ones)."""
        self._server_of = _resized(self._server_of, capacity, 0)
        self._metric_of = _resized(self._metric_of, capacity, 0)
        self._key_start = _resized(self._key_start, capacity, -1)
        self._key_end = _resized(self._key_end, capacity, -1)


def _resized(a: Any, capacity: int, fill: int) -> Any:
    out = np.full(capacity, fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def _put(names: npt.NDArray[np.object_], at: int, name: str) -> npt.NDArray[np.object_]:
    """``names`` with ``name`` at ``at``, in a larger copy when full."""
    if at == names.shape[0]:
        grown = np.empty(max(1024, 2 * at), dtype=object)
        grown[:at] = names
        names = grown
    names[at] = name
    return names


def validate_points(
    table: SeriesTable,
    ids: npt.NDArray[np.int32],
    ts: npt.NDArray[np.float64],
    value: npt.NDArray[np.float64],
    limits: Limits,
    mapping: LabelMapping,
    where: Callable[[int], str] | None = None,
    present: npt.NDArray[np.bool_] | None = None,
    explain_value: Callable[[int], str | None] | None = None,
) -> Decoded:
    """Validate points given by series id, time (seconds) and value, as
    ``SeriesIndex.validate`` does for a request's own series."""
    server, metric = table.names(ids)
    return validate_named(server, metric, ts, value, limits, mapping, where, present, explain_value)
