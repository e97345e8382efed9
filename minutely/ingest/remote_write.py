"""Prometheus remote_write 1.0: a snappy-compressed ``prometheus.WriteRequest`` in, points out.

The messages (``prompb/types.proto`` and ``remote.proto``, the fields a 1.0 sender fills)::

    WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
                   repeated <Exemplar> exemplars = 3; repeated <Histogram> histograms = 4; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }     // timestamp in milliseconds

The classes are built at import from a descriptor written here rather than a checked-in
``_pb2.py``: five small messages do not need protoc in the build, and a generated module is
tied to the protobuf runtime version that generated it. Exemplars and native histograms are
declared as opaque bytes, only to count them: native histograms are rejected (one error per
series carrying them), exemplars ignored.

A sample whose value is Prometheus' stale marker (the NaN with bits ``0x7ff0000000000002``,
written when a series disappears) is dropped and counted, not rejected; any other NaN is
rejected as a non-finite value.

The request is read by a compiled scanner (``_scan``): one pass over the bytes gives each
sample's value, time and series entry, and each series entry the span of its labels and a
hash of them. A series' labels are resolved to (server, metric) once per process
(``labels.SeriesCache``, keyed by those raw bytes), so a request of known series costs no
Python per series or sample. Whatever the scanner does not expect (metadata, groups, a known
field of another wire type, labels between samples, malformed bytes) goes to the protobuf
runtime's decode instead, which reads it the same way or says what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cramjam
import numba
import numpy as np
import numpy.typing as npt
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError

from minutely.errors import DecodeError, PayloadTooLarge
from minutely.ingest import wire
from minutely.ingest.labels import LabelMapping, Resolved
from minutely.ingest.series import Limits
from minutely.ingest.validate import UNSUPPORTED, Body, Decoded, PointError
from minutely.ingest.wire import SeriesCache, SeriesTable

CONTENT_TYPE = "application/x-protobuf"
#: what a remote_write 2.0 sender says it sends (refused with 415)
V2_PROTO = "io.prometheus.write.v2.Request"
#: the bits of Prometheus' stale marker (``value.StaleNaN``)
STALE_NAN_BITS = 0x7FF0000000000002

_F = descriptor_pb2.FieldDescriptorProto


def _message_classes() -> dict[str, Any]:
    """WriteRequest, TimeSeries, Label, Sample, MetricMetadata, from a descriptor built here."""
    file = descriptor_pb2.FileDescriptorProto(
        name="minutely/prompb_remote_write_v1.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name

    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("Label", ("name", 1, _F.TYPE_STRING, one, ""), ("value", 2, _F.TYPE_STRING, one, ""))
    message(
        "Sample", ("value", 1, _F.TYPE_DOUBLE, one, ""), ("timestamp", 2, _F.TYPE_INT64, one, "")
    )
    message(
        "TimeSeries",
        ("labels", 1, _F.TYPE_MESSAGE, many, ".prometheus.Label"),
        ("samples", 2, _F.TYPE_MESSAGE, many, ".prometheus.Sample"),
        ("exemplars", 3, _F.TYPE_BYTES, many, ""),
        ("histograms", 4, _F.TYPE_BYTES, many, ""),
    )
    message(
        "MetricMetadata",
        ("type", 1, _F.TYPE_INT32, one, ""),
        ("metric_family_name", 4, _F.TYPE_STRING, one, ""),
        ("help", 5, _F.TYPE_STRING, one, ""),
        ("unit", 6, _F.TYPE_STRING, one, ""),
    )
    message(
        "WriteRequest",
        ("timeseries", 1, _F.TYPE_MESSAGE, many, ".prometheus.TimeSeries"),
        ("metadata", 3, _F.TYPE_MESSAGE, many, ".prometheus.MetricMetadata"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    names = ("WriteRequest", "TimeSeries", "Label", "Sample", "MetricMetadata")
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{n}"))
        for n in names
    }


_CLASSES = _message_classes()
WriteRequest: Any = _CLASSES["WriteRequest"]
TimeSeries: Any = _CLASSES["TimeSeries"]
Label: Any = _CLASSES["Label"]
Sample: Any = _CLASSES["Sample"]


#: MetricMetadata.MetricType: COUNTER and GAUGE, the kinds minutely folds differently
_KINDS = {1: "counter", 2: "gauge"}


@dataclass(frozen=True, slots=True)
class RemoteWriteResult:
    """A decoded request: the points, and the stale markers dropped from it."""

    decoded: Decoded
    stale: int


def check_content_type(content_type: str) -> str | None:
    """None if a 1.0 sender's content type (or none), else why it is refused (for a 415)."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    proto = ""
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "proto":
            proto = value.strip().strip('"')
    if media in ("", CONTENT_TYPE) and proto in ("", "prometheus.WriteRequest"):
        return None
    return (
        f"unsupported content type {content_type!r}: this receiver speaks remote_write 1.0 "
        f"only, {CONTENT_TYPE} (proto=prometheus.WriteRequest), snappy-compressed"
    )


def unsnappy(body: Body, limit: int) -> bytes:
    """Undo snappy's block format (what remote_write uses), refusing more than ``limit``."""
    try:
        size = cramjam.snappy.decompress_raw_len(body)
    except Exception as e:  # cramjam raises its own DecompressionError
        msg = f"body is not snappy block-compressed: {e}"
        raise DecodeError(msg) from None
    if size > limit:
        msg = f"body is over the limit of {limit} bytes once snappy-decompressed ({size})"
        raise PayloadTooLarge(msg)
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as e:
        msg = f"body is not snappy block-compressed: {e}"
        raise DecodeError(msg) from None


def series_cache(mapping: LabelMapping) -> SeriesCache:
    """A cache of remote_write series (raw ``Label`` fields → server, metric) for ``mapping``."""

    def resolve(key: bytes) -> Resolved | None:
        try:
            series = TimeSeries.FromString(key)
        except ProtobufDecodeError:
            return None
        labels = {label.name: label.value for label in series.labels}
        name = labels.pop("__name__", "")
        return mapping.resolve(name, labels)

    return SeriesCache(mapping, resolve)


def decode_remote_write(
    body: Body, mapping: LabelMapping, limits: Limits, cache: SeriesCache | None = None
) -> RemoteWriteResult:
    """Decode an uncompressed WriteRequest; raise ``DecodeError`` if it is not one.

    ``cache`` keeps series resolved across requests (one per mapping; None: this request's
    own)."""
    if cache is None or cache.context != mapping:
        cache = series_cache(mapping)
    buf = np.frombuffer(body, dtype=np.uint8)
    ok, value, stamps, owner, spans, hashes, histogram_counts = _scan(buf)
    if not ok:
        return decode_remote_write_reference(body, mapping, limits)
    per_entry, table = cache.series_of(body, buf, spans, hashes)
    if per_entry.shape[0] and int(per_entry.min()) < 0:  # labels the runtime must judge
        return decode_remote_write_reference(body, mapping, limits)
    ids = per_entry[owner]
    histograms = [
        (int(per_entry[e]), int(histogram_counts[e]))
        for e in np.flatnonzero(histogram_counts).tolist()
    ]
    return _validate(table, mapping, ids, stamps / 1000.0, value, histograms, limits)


def decode_remote_write_reference(
    body: Body, mapping: LabelMapping, limits: Limits
) -> RemoteWriteResult:
    """``decode_remote_write`` through the protobuf runtime: the reference the scanner is
    tested against, and the decode of what the scanner does not take."""
    request = WriteRequest()
    try:
        request.ParseFromString(body)
    except ProtobufDecodeError as e:
        msg = f"body is not a prometheus.WriteRequest: {e}"
        raise DecodeError(msg) from None
    cache = series_cache(mapping)
    counts: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    histograms: list[tuple[int, int]] = []  # (series number, how many)
    for series in request.timeseries:
        labels = {label.name: label.value for label in series.labels}
        name = labels.pop("__name__", "")
        number = cache.add(mapping.resolve(name, labels))
        samples = series.samples
        counts.append(len(samples))
        values.extend([s.value for s in samples])
        stamps.extend([s.timestamp for s in samples])
        if series.histograms:
            histograms.append((number, len(series.histograms)))
    value = np.array(values, dtype=np.float64)
    ts = np.array(stamps, dtype=np.int64) / 1000.0
    numbers = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    result = _validate(cache.table(), mapping, numbers, ts, value, histograms, limits)
    kinds = {
        m.metric_family_name: _KINDS[m.type]
        for m in request.metadata
        if m.type in _KINDS and m.metric_family_name
    }
    if kinds:  # Prometheus sends each family's type now and then (metadata_config)
        result = replace(result, decoded=replace(result.decoded, kinds=kinds))
    return result


def _validate(
    table: SeriesTable,
    mapping: LabelMapping,
    numbers: npt.NDArray[np.int32],
    ts: npt.NDArray[np.float64],
    value: npt.NDArray[np.float64],
    histograms: list[tuple[int, int]],
    limits: Limits,
) -> RemoteWriteResult:
    """Drop stale markers, validate the rest, reject native histograms' samples."""
    total = int(value.shape[0])
    stale_mask = value.view(np.uint64) == STALE_NAN_BITS
    stale = int(stale_mask.sum())
    if stale:
        keep = ~stale_mask
        value, ts, numbers = value[keep], ts[keep], numbers[keep]

    def where(i: int) -> str:
        return f"series {table.metric(int(numbers[i]))!r}"

    decoded = wire.validate_points(table, numbers, ts, value, limits, mapping, where)
    if stale and decoded.errors:  # number errors by the sample's place in the request
        kept = np.flatnonzero(~stale_mask)
        errors = [replace(e, index=int(kept[e.index])) for e in decoded.errors]
        decoded = replace(decoded, errors=errors)
    if histograms:  # histogram samples are numbered after the float ones
        decoded = _reject_histograms(decoded, histograms, table, total, limits.max_errors)
    return RemoteWriteResult(decoded, stale)


_NOT_READ = (
    False,
    np.zeros(0, np.float64),
    np.zeros(0, np.int64),
    np.zeros(0, np.int64),
    np.zeros((0, 4), np.int64),
    np.zeros(0, np.uint64),
    np.zeros(0, np.int32),
)


#: what the scanner says of a request: read, left to the runtime, or needing more room
READ, NOT_READ, MORE = 0, 1, 2


@numba.njit(nogil=True, cache=True)
def _count_series(buf: Any) -> int:
    """How many top-level fields of WriteRequest bytes (at most this many series entries),
    reading only tags and lengths, so the scanner allocates its arrays at their size; -1 if
    malformed."""
    n = buf.shape[0]
    fields = 0
    i = 0
    while i < n:
        tag, i = wire.varint(buf, i, n)
        if i < 0:
            return -1
        i = wire.skip_field(buf, i, n, tag & 7)
        if i < 0:
            return -1
        fields += 1
    return fields


@numba.njit(nogil=True, cache=True)
def _scan_compiled(buf: Any, words: Any, sample_cap: int) -> Any:
    """WriteRequest bytes → (read?, value, timestamp ms, series entry per sample; per series
    entry: labels' span (start, end, 0, 0), hash of them, native histograms). Room is made
    for ``sample_cap`` samples; ``MORE`` instead of read when there are more."""
    n = buf.shape[0]
    series_cap = max(_count_series(buf), 0)
    if sample_cap < 0:
        sample_cap = series_cap
    value = np.empty(sample_cap, np.float64)
    stamp = np.empty(sample_cap, np.int64)
    owner = np.empty(sample_cap, np.int64)
    spans = np.empty((series_cap, 4), np.int64)
    hashes = np.empty(series_cap, np.uint64)
    hists = np.empty(series_cap, np.int32)
    bits = np.zeros(1, np.uint64)
    as_double = bits.view(np.float64)
    ns = 0
    np_ = 0
    i = 0
    while i < n:
        tag, i = wire.varint(buf, i, n)
        if i < 0 or tag <= 7 or tag > 0xFFFFFFFF:
            return NOT_READ, value, stamp, owner, spans, hashes, hists
        field = tag >> 3
        wt = tag & 7
        if field == 1 and wt == 2:
            length, i = wire.varint(buf, i, n)
            if i < 0 or length < 0 or length > n - i:
                return NOT_READ, value, stamp, owner, spans, hashes, hists
            end = i + length
            if ns == series_cap:
                return NOT_READ, value, stamp, owner, spans, hashes, hists
            labels_start = -1
            labels_end = -1
            hist = 0
            while i < end:
                at = i
                t, i = wire.varint(buf, i, end)
                if i < 0 or t <= 7 or t > 0xFFFFFFFF:
                    return NOT_READ, value, stamp, owner, spans, hashes, hists
                f = t >> 3
                w = t & 7
                if f == 1 or f == 2 or f == 3 or f == 4:
                    if w != 2:
                        return NOT_READ, value, stamp, owner, spans, hashes, hists
                    size, j = wire.varint(buf, i, end)
                    if j < 0 or size < 0 or size > end - j:
                        return NOT_READ, value, stamp, owner, spans, hashes, hists
                    stop = j + size
                    if f == 1:
                        if labels_start < 0:
                            labels_start = at
                        elif labels_end != at:  # labels between samples: not read here
                            return NOT_READ, value, stamp, owner, spans, hashes, hists
                        labels_end = stop
                    elif f == 2:
                        v = 0.0
                        ms = 0
                        while j < stop:
                            st, j = wire.varint(buf, j, stop)
                            if j < 0 or st <= 7 or st > 0xFFFFFFFF:
                                return NOT_READ, value, stamp, owner, spans, hashes, hists
                            sf = st >> 3
                            sw = st & 7
                            if sf == 1:
                                if sw != 1 or j + 8 > stop:
                                    return NOT_READ, value, stamp, owner, spans, hashes, hists
                                x = np.uint64(0)
                                for k in range(7, -1, -1):
                                    x = (x << np.uint64(8)) | np.uint64(buf[j + k])
                                bits[0] = x
                                v = as_double[0]
                                j += 8
                            elif sf == 2:
                                if sw != 0:
                                    return NOT_READ, value, stamp, owner, spans, hashes, hists
                                ms, j = wire.varint(buf, j, stop)
                                if j < 0:
                                    return NOT_READ, value, stamp, owner, spans, hashes, hists
                            else:
                                j = wire.skip_field(buf, j, stop, sw)
                                if j < 0:
                                    return NOT_READ, value, stamp, owner, spans, hashes, hists
                        if np_ == sample_cap:
                            return MORE, value, stamp, owner, spans, hashes, hists
                        value[np_] = v
                        stamp[np_] = ms
                        owner[np_] = ns
                        np_ += 1
                    elif f == 4:
                        hist += 1
                    i = stop
                else:
                    i = wire.skip_field(buf, i, end, w)
                    if i < 0:
                        return NOT_READ, value, stamp, owner, spans, hashes, hists
            if labels_start < 0:
                labels_start = labels_end = end
            spans[ns, 0] = labels_start
            spans[ns, 1] = labels_end
            spans[ns, 2] = labels_end
            spans[ns, 3] = labels_end
            hashes[ns] = wire.hash_span(buf, words, labels_start, labels_end)
            hists[ns] = hist
            ns += 1
        elif field == 1 or field == 3:  # metadata: the runtime reads it
            return NOT_READ, value, stamp, owner, spans, hashes, hists
        else:
            i = wire.skip_field(buf, i, n, wt)
            if i < 0:
                return NOT_READ, value, stamp, owner, spans, hashes, hists
    return (
        READ,
        value[:np_],
        stamp[:np_],
        owner[:np_],
        spans[:ns],
        hashes[:ns],
        hists[:ns],
    )


def _scan(
    buf: npt.NDArray[np.uint8],
) -> tuple[
    bool,
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.int32],
]:
    words = wire.words_of(buf)
    # room for one sample a series (what Prometheus sends), else for as many as could fit
    status, value, stamp, owner, spans, hashes, hists = _scan_compiled(buf, words, -1)
    if status == MORE:
        status, value, stamp, owner, spans, hashes, hists = _scan_compiled(
            buf, words, buf.shape[0] // 2 + 1
        )
    if status != READ:
        return _NOT_READ
    return True, value, stamp, owner, spans, hashes, hists


def _reject_histograms(
    decoded: Decoded,
    histograms: list[tuple[int, int]],
    table: SeriesTable,
    first: int,
    max_errors: int,
) -> Decoded:
    """Native histogram samples are points minutely cannot keep: one error per series."""
    errors: list[PointError] = []
    rejected = 0
    for number, count in histograms:
        rejected += count
        if len(decoded.errors) + len(errors) < max_errors:
            reason = (
                f"series {table.metric(number)!r}: {count} native histogram sample(s) "
                "not supported (only float samples are)"
            )
            errors.append(PointError(first + rejected - count, reason, UNSUPPORTED))
    return decoded.rejecting(errors, rejected, UNSUPPORTED, max_errors)
