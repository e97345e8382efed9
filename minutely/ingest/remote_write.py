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
rejected as a non-finite value. Each series is resolved to (server, metric) once
(``labels.py``); its samples are gathered into numpy columns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cramjam
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError

from minutely.errors import DecodeError, PayloadTooLarge
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits, SeriesIndex
from minutely.ingest.validate import Decoded, PointError

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


def unsnappy(body: bytes, limit: int) -> bytes:
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


def decode_remote_write(body: bytes, mapping: LabelMapping, limits: Limits) -> RemoteWriteResult:
    """Decode an uncompressed WriteRequest; raise ``DecodeError`` if it is not one."""
    request = WriteRequest()
    try:
        request.ParseFromString(body)
    except ProtobufDecodeError as e:
        msg = f"body is not a prometheus.WriteRequest: {e}"
        raise DecodeError(msg) from None
    index = SeriesIndex(mapping)
    counts: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    histograms: list[tuple[int, int]] = []  # (series number, how many)
    for series in request.timeseries:
        labels = {label.name: label.value for label in series.labels}
        name = labels.pop("__name__", "")
        number = index.add(name, labels)
        samples = series.samples
        counts.append(len(samples))
        values.extend([s.value for s in samples])
        stamps.extend([s.timestamp for s in samples])
        if series.histograms:
            histograms.append((number, len(series.histograms)))
    value = np.array(values, dtype=np.float64)
    ts = np.array(stamps, dtype=np.int64) / 1000.0
    numbers = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    stale_mask = value.view(np.uint64) == STALE_NAN_BITS
    stale = int(stale_mask.sum())
    if stale:
        keep = ~stale_mask
        value, ts, numbers = value[keep], ts[keep], numbers[keep]

    def where(i: int) -> str:
        return f"series {index.names[int(numbers[i])]!r}"

    decoded = index.validate(numbers, ts, value, limits, where)
    if stale and decoded.errors:  # number errors by the sample's place in the request
        kept = np.flatnonzero(~stale_mask)
        errors = [PointError(int(kept[e.index]), e.reason) for e in decoded.errors]
        decoded = replace(decoded, errors=errors)
    kinds = {
        m.metric_family_name: _KINDS[m.type]
        for m in request.metadata
        if m.type in _KINDS and m.metric_family_name
    }
    if kinds:  # Prometheus sends each family's type now and then (metadata_config)
        decoded = replace(decoded, kinds=kinds)
    if histograms:
        first = int(sum(counts))  # histogram samples are numbered after the float ones
        decoded = _reject_histograms(decoded, histograms, index, first, limits.max_errors)
    return RemoteWriteResult(decoded, stale)


def _reject_histograms(
    decoded: Decoded,
    histograms: list[tuple[int, int]],
    index: SeriesIndex,
    first: int,
    max_errors: int,
) -> Decoded:
    """Native histogram samples are points minutely cannot keep: one error per series."""
    errors = list(decoded.errors)
    rejected = decoded.rejected
    for number, count in histograms:
        rejected += count
        if len(errors) < max_errors:
            reason = (
                f"series {index.names[number]!r}: {count} native histogram sample(s) "
                "not supported (only float samples are)"
            )
            errors.append(PointError(first + rejected - decoded.rejected - count, reason))
    return replace(decoded, rejected=rejected, errors=errors)
