"""OTLP/HTTP metrics: an ``ExportMetricsServiceRequest`` (protobuf or JSON) in, points out.

    resource_metrics[]                resource.attributes: where the server comes from
      scope_metrics[]
        metrics[]                     name, and one of:
          gauge.data_points[]         NumberDataPoint: attributes, time_unix_nano,
          sum.data_points[]             as_double | as_int      → one point each
          histogram | summary |       rejected, one error per metric naming its type
          exponential_histogram

The message classes are the ``opentelemetry-proto`` package's; JSON is read by protobuf's
``json_format``, which takes OTLP's JSON mapping (lowerCamelCase keys, 64-bit integers as
strings, enums as numbers). A point's server comes from the first of ``server_labels`` among
its resource's attributes and its own (its own win); its metric is the metric's name with the
point's own attributes, so a resource's many descriptive attributes (``service.name``,
``telemetry.sdk.*``) do not make every name long. Cumulative monotonic sums are declared
counters (``Decoded.kinds``; the aggregator folds their increases), gauges and other sums
gauges (a delta sum's points are increases already). A point flagged
``NO_RECORDED_VALUE`` is rejected.

Protobuf is read by a compiled scanner (``otlp_scan``) and each point's series found by its
raw bytes in a ``wire.SeriesCache``, so a request of known series costs no Python per point;
what the scanner does not read (histograms, exemplars, malformed bytes...) and JSON go
through the runtime (``decode_otlp_reference``), the reference the scanner is tested against.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from minutely.errors import DecodeError
from minutely.ingest import otlp_scan, wire
from minutely.ingest.labels import LabelMapping, Resolved, series_name
from minutely.ingest.series import Limits, SeriesIndex
from minutely.ingest.validate import UNSUPPORTED, Body, Decoded, PointError
from minutely.ingest.wire import SeriesCache

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
#: AggregationTemporality: a delta sum's points are increases already, so it stays a gauge
_CUMULATIVE = 2
_UNSUPPORTED = {
    "histogram": "a histogram",
    "exponential_histogram": "an exponential histogram",
    "summary": "a summary",
}

_NO_VALUE = "value: no recorded value"

__all__ = [
    "JSON",
    "PROTOBUF",
    "decode_otlp",
    "decode_otlp_reference",
    "response",
    "series_cache",
    "status",
]


def series_cache(mapping: LabelMapping) -> SeriesCache:
    """A cache of OTLP series (``otlp_scan``'s keys: resource, metric name and a point's
    attributes as raw bytes → server, metric) for ``mapping``."""

    def resolve(key: bytes) -> Resolved | None:
        parts = otlp_scan.key_parts(key)
        if parts is None:
            return None
        resource_bytes, name_bytes, attribute_bytes = parts
        # each part parsed as deep in a request as it was sent, so the runtime's nesting
        # limit refuses here what it refuses there
        at_resource = _field(1, _field(1, resource_bytes))
        at_point = _field(1, _field(2, _field(2, _field(5, _field(1, attribute_bytes)))))
        try:
            name = name_bytes.decode()
            request = ExportMetricsServiceRequest.FromString(at_resource)
            resource = _attributes(request.resource_metrics[0].resource.attributes)
            request = ExportMetricsServiceRequest.FromString(at_point)
            metric = request.resource_metrics[0].scope_metrics[0].metrics[0]
            own = _attributes(metric.gauge.data_points[0].attributes)
        except (ProtobufDecodeError, UnicodeDecodeError):
            return None
        server, used = mapping.server_of(resource | own)
        return server, series_name(name, ((k, v) for k, v in sorted(own.items()) if k != used))

    return SeriesCache(mapping, resolve)


def decode_otlp(
    body: Body,
    media_type: str,
    mapping: LabelMapping,
    limits: Limits,
    cache: SeriesCache | None = None,
) -> Decoded:
    """Decode an export request; raise ``DecodeError`` if it is not one.

    ``cache`` keeps series resolved across requests (one per mapping; None: this request's
    own)."""
    if media_type == JSON:
        return decode_otlp_reference(body, media_type, mapping, limits)
    buf = np.frombuffer(body, dtype=np.uint8)
    scanned = otlp_scan.scan(buf)
    if scanned is None:
        return decode_otlp_reference(body, media_type, mapping, limits)
    names = otlp_scan.metric_names(body, buf, scanned.name)
    if names is None:
        return decode_otlp_reference(body, media_type, mapping, limits)
    if cache is None or cache.context != mapping:
        cache = series_cache(mapping)
    keys, spans, hashes = otlp_scan.keys(buf, scanned)
    ids, table = cache.series_of(keys.tobytes(), keys, spans, hashes)
    if ids.shape[0] and int(ids.min()) < 0:  # attributes the runtime must judge
        return decode_otlp_reference(body, media_type, mapping, limits)
    distinct, name_of = names
    present = scanned.present

    def where(i: int) -> str:
        return f"metric {table.metric(int(ids[i]))!r}"

    def explain(i: int) -> str | None:
        return None if present[i] else _NO_VALUE

    decoded = wire.validate_points(
        table, ids, _seconds(scanned.ticks), scanned.value, limits, mapping, where, present, explain
    )
    kind, counter = scanned.kind, scanned.counter
    data = np.flatnonzero(kind != otlp_scan.NO_DATA)
    # the last entry of a name says its kind, as the reference's dict assignment does
    last = _last_of(name_of, data, len(distinct)).tolist()
    kinds = {distinct[name_of[e]]: "counter" if counter[e] else "gauge" for e in last}
    decoded = replace(decoded, kinds=kinds)
    empty = np.flatnonzero(kind == otlp_scan.NO_DATA).tolist()
    unsupported = [(1, _unsupported(distinct[int(name_of[e])], None)) for e in empty]
    return _with_unsupported(decoded, unsupported, int(ids.shape[0]), limits)


def _last_of(
    name_of: npt.NDArray[np.intp], entries: npt.NDArray[np.intp], names: int
) -> npt.NDArray[np.intp]:
    """Of ``entries``, the last one of each of the ``names`` names, by name."""
    last = np.full(names, -1, dtype=np.intp)
    last[name_of[entries]] = entries  # of repeated indices the last assignment stays
    found: npt.NDArray[np.intp] = last[last >= 0]
    return found


def _seconds(ticks: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Unix nanoseconds (fixed64: past 2**63 is a time, not an error) as seconds."""
    whole, rest = np.divmod(ticks, np.uint64(10**9))
    seconds: npt.NDArray[np.float64] = whole.astype(np.float64) + rest / 1e9
    return seconds


def _unsupported(name: str, kind: str | None) -> str:
    what = _UNSUPPORTED.get(kind or "", "no data")
    return f"metric {name!r}: {what} is not supported (gauges and sums are)"


def _with_unsupported(
    decoded: Decoded, unsupported: list[tuple[int, str]], first: int, limits: Limits
) -> Decoded:
    """``decoded`` with the points of metrics not taken rejected: one error per metric,
    numbered after the gauges' and sums' points (``first`` of them)."""
    if not unsupported:
        return decoded
    errors = []
    for count, reason in unsupported:
        errors.append(PointError(first, reason, UNSUPPORTED))
        first += count
    rejected = sum(count for count, _ in unsupported)
    return decoded.rejecting(errors, rejected, UNSUPPORTED, limits.max_errors)


def decode_otlp_reference(
    body: Body, media_type: str, mapping: LabelMapping, limits: Limits
) -> Decoded:
    """``decode_otlp`` through the protobuf runtime (and ``json_format`` for JSON): the
    reference the scanner is tested against, and the decode of what it does not read."""
    request = ExportMetricsServiceRequest()
    try:
        if media_type == JSON:
            json_format.Parse(body, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (ProtobufDecodeError, json_format.ParseError, UnicodeDecodeError) as e:
        msg = f"body is not an OTLP ExportMetricsServiceRequest ({media_type}): {e}"
        raise DecodeError(msg) from None
    index = SeriesIndex(mapping)
    numbers: dict[tuple[int, str, tuple[tuple[str, str], ...]], int] = {}
    series: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    present: list[bool] = []
    why: dict[int, str] = {}  # point → why its value is unusable
    unsupported: list[tuple[int, str]] = []  # (data points, reason) of metrics not taken
    kinds: dict[str, str] = {}  # metric -> counter (a cumulative monotonic sum) or gauge

    for r, resource_metrics in enumerate(request.resource_metrics):
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind not in ("gauge", "sum"):
                    points = len(getattr(metric, kind).data_points) if kind else 0
                    unsupported.append((max(points, 1), _unsupported(metric.name, kind)))
                    continue
                counter = kind == "sum" and metric.sum.is_monotonic
                counter = counter and metric.sum.aggregation_temporality == _CUMULATIVE
                kinds[metric.name] = "counter" if counter else "gauge"
                for point in getattr(metric, kind).data_points:
                    own = _attributes(point.attributes)
                    key = (r, metric.name, tuple(sorted(own.items())))
                    n = numbers.get(key)
                    if n is None:
                        server, used = mapping.server_of(resource | own)
                        name = series_name(metric.name, ((k, v) for k, v in key[2] if k != used))
                        n = numbers[key] = index.add_resolved(server, name)
                    which = point.WhichOneof("value")
                    ok = which is not None and not point.flags & _NO_RECORDED_VALUE
                    if not ok:
                        why[len(values)] = _NO_VALUE
                    series.append(n)
                    values.append(point.as_double if which == "as_double" else float(point.as_int))
                    stamps.append(point.time_unix_nano)
                    present.append(ok)

    ts = _seconds(np.array(stamps, dtype=np.uint64))

    def where(i: int) -> str:
        return f"metric {index.names[series[i]]!r}"

    decoded = index.validate(
        np.array(series, dtype=np.int32),
        ts,
        np.array(values, dtype=np.float64),
        limits,
        where,
        np.array(present, dtype=np.bool_),
        why.get,
    )
    decoded = replace(decoded, kinds=kinds)
    return _with_unsupported(decoded, unsupported, len(values), limits)


def response(decoded: Decoded, media_type: str) -> bytes:
    """The ``ExportMetricsServiceResponse``: partial success when points were rejected."""
    answer = ExportMetricsServiceResponse()
    if decoded.rejected:
        answer.partial_success.rejected_data_points = decoded.rejected
        reasons = [f"point {e.index}: {e.reason}" for e in decoded.errors[:20]]
        answer.partial_success.error_message = "; ".join(reasons)
    if media_type == JSON:
        return str(json_format.MessageToJson(answer, indent=None)).encode()
    return bytes(answer.SerializeToString())


def status(message: str, media_type: str) -> bytes:
    """A ``google.rpc.Status`` (code 3, INVALID_ARGUMENT) for a 4xx answer, as OTLP asks."""
    if media_type == JSON:
        return json.dumps({"code": 3, "message": message}).encode()
    text = message.encode()
    return b"\x08\x03\x12" + _varint(len(text)) + text


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _attributes(attributes: Any) -> dict[str, str]:
    """OTLP ``KeyValue``s as text (numbers and booleans written as OTLP JSON would)."""
    out: dict[str, str] = {}
    for kv in attributes:
        v = kv.value
        which = v.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = v.string_value
        elif which == "int_value":
            out[kv.key] = str(v.int_value)
        elif which == "double_value":
            out[kv.key] = repr(v.double_value)
        elif which == "bool_value":
            out[kv.key] = "true" if v.bool_value else "false"
        elif which is not None:  # arrays, maps, bytes: their JSON
            out[kv.key] = json_format.MessageToJson(v, indent=None)
    return out
