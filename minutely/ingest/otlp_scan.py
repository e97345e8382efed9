"""OTLP/HTTP protobuf read by a compiled scanner: the bytes of an ``ExportMetricsServiceRequest``
to its gauge and sum points, with no Python step per point or per metric.

    ExportMetricsServiceRequest.resource_metrics (1)
      ResourceMetrics: resource (1) as raw bytes, scope_metrics (2), schema_url (3)
        ScopeMetrics: scope (1: name, version), metrics (2), schema_url (3)
          Metric: name (1), description (2), unit (3), gauge (5) | sum (7)
            Gauge/Sum: data_points (1); Sum: aggregation_temporality (2), is_monotonic (3)
              NumberDataPoint: attributes (7, contiguous), time_unix_nano (3),
                as_double (4) | as_int (6), flags (8), start_time_unix_nano (2)

Each point's series is named by a key built here from raw bytes: its resource, its
metric's name and its own attributes (``key_parts`` splits it again), so a known series is
found by ``wire.SeriesCache`` without being parsed, and a new one is parsed once by the
protobuf runtime. The scanner reads only what it can read exactly as the runtime does:
anything else (histograms and summaries, exemplars, scope attributes, metric metadata, a
singular field given twice, a known field of another wire type, groups, malformed bytes, a
resource with no points to check it through) is ``NOT_READ``, and the caller hands the body
to the runtime's decode. Strings the runtime checks as UTF-8 and the scanner skips
(description, unit, schema URLs, the scope's name and version) are checked here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from minutely.ingest import wire
from minutely.ingest.validate import Body

#: what the scanner says of a request
READ, NOT_READ, MORE = 0, 1, 2
#: a metric's data as read: none, a gauge, a sum
NO_DATA, GAUGE, SUM = 0, 1, 2
_CUMULATIVE = 2  # AggregationTemporality
_NO_RECORDED_VALUE = 1  # DataPointFlags

_jit = numba.njit(nogil=True, cache=True)


class Scanned(NamedTuple):
    """A request's points and metrics as the scanner read them."""

    value: npt.NDArray[np.float64]
    ticks: npt.NDArray[np.uint64]  #: time_unix_nano
    present: npt.NDArray[np.bool_]  #: a value, and not flagged NO_RECORDED_VALUE
    metric: npt.NDArray[np.int64]  #: per point: its metric entry
    resource: npt.NDArray[np.int64]  #: per point: its resource's bytes (start, end)
    attributes: npt.NDArray[np.int64]  #: per point: its attribute fields' bytes (start, end)
    name: npt.NDArray[np.int64]  #: per metric entry: its name's bytes (start, end)
    kind: npt.NDArray[np.int8]  #: per metric entry: NO_DATA, GAUGE or SUM
    counter: npt.NDArray[np.bool_]  #: per metric entry: a cumulative monotonic sum


@_jit
def _utf8(buf: Any, start: int, end: int) -> bool:
    """Is ``buf[start:end]`` well-formed UTF-8 (what Python's strict decode takes)?"""
    i = start
    while i < end:
        c = buf[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            size, lo, hi = 2, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            size = 3
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF  # no surrogates
        elif 0xF0 <= c <= 0xF4:
            size = 4
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return False
        if i + size > end or not lo <= buf[i + 1] <= hi:
            return False
        for k in range(2, size):
            if not 0x80 <= buf[i + k] <= 0xBF:
                return False
        i += size
    return True


@_jit
def _delimited(buf: Any, i: int, end: int) -> tuple[int, int]:
    """The (start, end) of a length-delimited payload whose length is at ``i``; (-1, -1)."""
    size, j = wire.varint(buf, i, end)
    if j < 0 or size < 0 or size > end - j:
        return -1, -1
    return j, j + size


@_jit
def _string(buf: Any, i: int, end: int, wire_type: int) -> int:
    """The position after a string field's payload, or -1 if malformed or not UTF-8."""
    if wire_type != 2:
        return -1
    s, e = _delimited(buf, i, end)
    if s < 0 or not _utf8(buf, s, e):
        return -1
    return e


@_jit
def _fixed64(buf: Any, i: int) -> np.uint64:
    x = np.uint64(0)
    for k in range(7, -1, -1):
        x = (x << np.uint64(8)) | np.uint64(buf[i + k])
    return x


@_jit
def _scope(buf: Any, i: int, end: int) -> int:
    """Check an InstrumentationScope (no attributes); the position after it, or -1."""
    while i < end:
        tag, i = wire.varint(buf, i, end)
        if i < 0 or tag <= 7 or tag > 0xFFFFFFFF:
            return -1
        field = tag >> 3
        wt = tag & 7
        if field == 1 or field == 2:
            i = _string(buf, i, end, wt)
        elif field == 3:
            return -1
        elif field == 4:
            i = wire.skip_field(buf, i, end, wt) if wt == 0 else -1
        else:
            i = wire.skip_field(buf, i, end, wt)
        if i < 0:
            return -1
    return i


@_jit
def _scan_compiled(buf: Any, cap: int) -> Any:
    """The request's points and metrics (``Scanned``'s fields), with a status first; room
    is made for ``cap`` points and ``cap`` metrics, ``MORE`` when there are more."""
    n = buf.shape[0]
    value = np.empty(cap, np.float64)
    ticks = np.empty(cap, np.uint64)
    present = np.empty(cap, np.bool_)
    metric_of = np.empty(cap, np.int64)
    resource = np.empty((cap, 2), np.int64)
    attrs = np.empty((cap, 2), np.int64)
    name = np.empty((cap, 2), np.int64)
    kind = np.empty(cap, np.int8)
    counter = np.empty(cap, np.bool_)
    bits = np.zeros(1, np.uint64)
    as_double = bits.view(np.float64)
    np_ = 0
    nm = 0
    status = READ
    i = 0
    while i < n and status == READ:
        tag, i = wire.varint(buf, i, n)
        if i < 0 or tag <= 7 or tag > 0xFFFFFFFF:
            status = NOT_READ
            break
        if tag >> 3 != 1:
            i = wire.skip_field(buf, i, n, tag & 7)
            if i < 0:
                status = NOT_READ
            continue
        if tag & 7 != 2:
            status = NOT_READ
            break
        rs, re = _delimited(buf, i, n)
        if rs < 0:
            status = NOT_READ
            break
        i = re
        res_s = res_e = 0
        has_resource = False
        first_point = np_
        j = rs
        while j < re and status == READ:
            t, j = wire.varint(buf, j, re)
            if j < 0 or t <= 7 or t > 0xFFFFFFFF:
                status = NOT_READ
                break
            f = t >> 3
            w = t & 7
            if f == 1:
                if w != 2 or has_resource:
                    status = NOT_READ
                    break
                has_resource = True
                res_s, res_e = _delimited(buf, j, re)
                j = res_e
            elif f == 3:
                j = _string(buf, j, re, w)
            elif f != 2:
                j = wire.skip_field(buf, j, re, w)
            elif w != 2:
                status = NOT_READ
                break
            else:  # ScopeMetrics
                ss, se = _delimited(buf, j, re)
                if ss < 0:
                    status = NOT_READ
                    break
                j = se
                k = ss
                while k < se and status == READ:
                    t2, k = wire.varint(buf, k, se)
                    if k < 0 or t2 <= 7 or t2 > 0xFFFFFFFF:
                        status = NOT_READ
                        break
                    f2 = t2 >> 3
                    w2 = t2 & 7
                    if f2 == 1:
                        if w2 != 2:
                            status = NOT_READ
                            break
                        a, b = _delimited(buf, k, se)
                        k = -1 if a < 0 or _scope(buf, a, b) < 0 else b
                    elif f2 == 3:
                        k = _string(buf, k, se, w2)
                    elif f2 != 2:
                        k = wire.skip_field(buf, k, se, w2)
                    elif w2 != 2:
                        status = NOT_READ
                        break
                    else:  # Metric
                        ms, me = _delimited(buf, k, se)
                        if ms < 0:
                            status = NOT_READ
                            break
                        k = me
                        if nm == cap:
                            status = MORE
                            break
                        m = nm
                        nm += 1
                        name[m, 0] = name[m, 1] = 0
                        kind[m] = NO_DATA
                        counter[m] = False
                        has_name = False
                        has_data = False
                        p = ms
                        while p < me and status == READ:
                            t3, p = wire.varint(buf, p, me)
                            if p < 0 or t3 <= 7 or t3 > 0xFFFFFFFF:
                                status = NOT_READ
                                break
                            f3 = t3 >> 3
                            w3 = t3 & 7
                            if f3 == 1:
                                if w3 != 2 or has_name:
                                    status = NOT_READ
                                    break
                                has_name = True
                                name[m, 0], name[m, 1] = _delimited(buf, p, me)
                                p = name[m, 1]
                            elif f3 == 2 or f3 == 3:
                                p = _string(buf, p, me, w3)
                            elif f3 == 5 or f3 == 7:
                                if w3 != 2 or has_data:
                                    status = NOT_READ
                                    break
                                has_data = True
                                kind[m] = GAUGE if f3 == 5 else SUM
                                ds, de = _delimited(buf, p, me)
                                if ds < 0:
                                    status = NOT_READ
                                    break
                                p = de
                                temporality = 0
                                monotonic = False
                                q = ds
                                while q < de and status == READ:
                                    t4, q = wire.varint(buf, q, de)
                                    if q < 0 or t4 <= 7 or t4 > 0xFFFFFFFF:
                                        status = NOT_READ
                                        break
                                    f4 = t4 >> 3
                                    w4 = t4 & 7
                                    if f3 == 7 and (f4 == 2 or f4 == 3):
                                        if w4 != 0:
                                            status = NOT_READ
                                            break
                                        x, q = wire.varint(buf, q, de)
                                        if f4 == 2:
                                            temporality = x & 0xFFFFFFFF  # an int32 enum
                                        else:
                                            monotonic = x != 0
                                    elif f4 != 1:
                                        q = wire.skip_field(buf, q, de, w4)
                                    elif w4 != 2:
                                        status = NOT_READ
                                        break
                                    else:  # NumberDataPoint
                                        ps, pe = _delimited(buf, q, de)
                                        if ps < 0:
                                            status = NOT_READ
                                            break
                                        q = pe
                                        if np_ == cap:
                                            status = MORE
                                            break
                                        tick = np.uint64(0)
                                        v = 0.0
                                        has_value = False
                                        flags = 0
                                        a_s = a_e = -1
                                        r = ps
                                        while r < pe:
                                            at = r
                                            t5, r = wire.varint(buf, r, pe)
                                            if r < 0 or t5 <= 7 or t5 > 0xFFFFFFFF:
                                                r = -1
                                                break
                                            f5 = t5 >> 3
                                            w5 = t5 & 7
                                            if f5 == 7:
                                                if w5 != 2:
                                                    r = -1
                                                    break
                                                if a_s < 0:
                                                    a_s = at
                                                elif a_e != at:  # not contiguous
                                                    r = -1
                                                    break
                                                _, a_e = _delimited(buf, r, pe)
                                                r = a_e
                                            elif 2 <= f5 <= 4 or f5 == 6:
                                                if w5 != 1 or r + 8 > pe:
                                                    r = -1
                                                    break
                                                if f5 == 3:
                                                    tick = _fixed64(buf, r)
                                                elif f5 == 4:
                                                    bits[0] = _fixed64(buf, r)
                                                    v = as_double[0]
                                                    has_value = True
                                                elif f5 == 6:
                                                    v = float(np.int64(_fixed64(buf, r)))
                                                    has_value = True
                                                r += 8
                                            elif f5 == 8:
                                                if w5 != 0:
                                                    r = -1
                                                    break
                                                flags, r = wire.varint(buf, r, pe)
                                            elif f5 == 5:  # exemplars: the runtime's
                                                r = -1
                                                break
                                            else:
                                                r = wire.skip_field(buf, r, pe, w5)
                                            if r < 0:
                                                break
                                        if r < 0:
                                            status = NOT_READ
                                            break
                                        if a_s < 0:
                                            a_s = a_e = pe
                                        value[np_] = v
                                        ticks[np_] = tick
                                        present[np_] = has_value and not flags & _NO_RECORDED_VALUE
                                        metric_of[np_] = m
                                        resource[np_, 0] = -1  # set once the resource is read
                                        attrs[np_, 0] = a_s
                                        attrs[np_, 1] = a_e
                                        np_ += 1
                                    if q < 0:
                                        status = NOT_READ
                                counter[m] = f3 == 7 and monotonic and temporality == _CUMULATIVE
                            elif 9 <= f3 <= 12:  # histograms, summaries, metadata
                                status = NOT_READ
                            else:
                                p = wire.skip_field(buf, p, me, w3)
                            if p < 0:
                                status = NOT_READ
                    if k < 0:
                        status = NOT_READ
            if j < 0:
                status = NOT_READ
        if status != READ:
            break
        if has_resource and np_ == first_point:  # its bytes would go unchecked
            status = NOT_READ
            break
        resource[first_point:np_, 0] = res_s
        resource[first_point:np_, 1] = res_e
    return (
        status,
        value[:np_],
        ticks[:np_],
        present[:np_],
        metric_of[:np_],
        resource[:np_],
        attrs[:np_],
        name[:nm],
        kind[:nm],
        counter[:nm],
    )


def scan(buf: npt.NDArray[np.uint8]) -> Scanned | None:
    """The request's points and metrics, or None when the runtime must read it."""
    # room for a point or metric per 16 bytes (a gauge point takes more), else for any
    status, *fields = _scan_compiled(buf, buf.shape[0] // 16 + 16)
    if status == MORE:
        status, *fields = _scan_compiled(buf, buf.shape[0] // 2 + 1)
    if status != READ:
        return None
    return Scanned(*fields)


@_jit
def _keys_compiled(buf: Any, resource: Any, name: Any, attrs: Any) -> Any:
    """Per point its key ``len(resource) resource len(name) name attributes`` (lengths as
    varints) in one new buffer, each key's span (start, end, end, end) and hash."""
    n = resource.shape[0]
    size = 0
    for e in range(n):
        size += resource[e, 1] - resource[e, 0] + name[e, 1] - name[e, 0] + 20
        size += attrs[e, 1] - attrs[e, 0]
    keys = np.empty(size, np.uint8)
    spans = np.empty((n, 4), np.int64)
    at = 0
    for e in range(n):
        spans[e, 0] = at
        for s, t in ((resource[e, 0], resource[e, 1]), (name[e, 0], name[e, 1])):
            length = t - s
            while length >= 0x80:
                keys[at] = (length & 0x7F) | 0x80
                length >>= 7
                at += 1
            keys[at] = length
            at += 1
            keys[at : at + t - s] = buf[s:t]
            at += t - s
        s, t = attrs[e, 0], attrs[e, 1]
        keys[at : at + t - s] = buf[s:t]
        at += t - s
        spans[e, 1] = spans[e, 2] = spans[e, 3] = at
    keys = keys[:at]
    words = keys[: at // 8 * 8].view(np.uint64)
    hashes = np.empty(n, np.uint64)
    for e in range(n):
        hashes[e] = wire.hash_span(keys, words, spans[e, 0], spans[e, 1])
    return keys, spans, hashes


def keys(
    buf: npt.NDArray[np.uint8], scanned: Scanned
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.uint64]]:
    """Each point's series key (``key_parts`` reads one), its span and its hash."""
    name = scanned.name[scanned.metric]
    out: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.uint64]]
    out = _keys_compiled(buf, scanned.resource, name, scanned.attributes)
    return out


def key_parts(key: bytes) -> tuple[bytes, bytes, bytes] | None:
    """A key's resource bytes, metric name bytes and attribute fields; None if malformed."""
    parts: list[bytes] = []
    at = 0
    for _ in range(2):
        length = shift = 0
        while True:
            if at >= len(key) or shift > 63:
                return None
            byte = key[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if at + length > len(key):
            return None
        parts.append(key[at : at + length])
        at += length
    return parts[0], parts[1], key[at:]


@_jit
def _same_names(buf: Any, name: Any, first: Any) -> bool:
    """Does every metric entry's name hold the same bytes as its hash's first entry's?"""
    for e in range(name.shape[0]):
        f = first[e]
        a, b = name[e, 0], name[e, 1]
        c, d = name[f, 0], name[f, 1]
        if b - a != d - c:
            return False
        for k in range(b - a):
            if buf[a + k] != buf[c + k]:
                return False
    return True


@_jit
def _name_hashes(buf: Any, words: Any, name: Any) -> Any:
    out = np.empty(name.shape[0], np.uint64)
    for e in range(name.shape[0]):
        out[e] = wire.hash_span(buf, words, name[e, 0], name[e, 1])
    return out


def metric_names(
    body: Body, buf: npt.NDArray[np.uint8], name: npt.NDArray[np.int64]
) -> tuple[list[str], npt.NDArray[np.intp]] | None:
    """The distinct metric names and each metric entry's place among them (Python work per
    distinct name); None if a name is not UTF-8 (or, improbably, two share a hash)."""
    hashes = _name_hashes(buf, wire.words_of(buf), name)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if not _same_names(buf, name, first[inverse]):
        return None
    try:
        names = [body[int(name[f, 0]) : int(name[f, 1])].decode() for f in first.tolist()]
    except UnicodeDecodeError:
        return None
    return names, inverse
