"""The compiled OTLP scanner against the protobuf runtime's decode (the reference), on
generated requests, the same requests cut and corrupted, and any bytes: the same points bit
for bit, the same reasons, kinds and partial-success answers, the same refusals. One series
cache serves every example, as one serves every request of a node."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from minutely.errors import DecodeError
from minutely.ingest import otlp
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits
from tests.ingest.helpers import assert_same_decoded

NOW = 1_764_000_000
LIMITS = Limits(now=NOW, oldest=NOW - 3600, max_future=300, max_errors=20)
MAPPING = LabelMapping(default_server="")
CACHE = otlp.series_cache(MAPPING)
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.sampled_from(["host.name", "host", "service.name", "cpu", "é", ""])
attribute_values = st.one_of(
    st.tuples(st.just("string_value"), st.sampled_from(["web-1", "db-2", "", "ü\n", 'a"b'])),
    st.tuples(st.just("int_value"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("double_value"), st.floats()),
    st.tuples(st.just("bool_value"), st.booleans()),
)
attributes = st.lists(st.tuples(keys, attribute_values), max_size=3)
points = st.tuples(
    attributes,
    st.one_of(
        st.integers(NOW - 4000, NOW + 400).map(lambda s: s * 10**9),
        st.integers(0, 2**64 - 1),
    ),
    st.one_of(
        st.tuples(st.just("as_double"), st.floats()),
        st.tuples(st.just("as_int"), st.integers(-(2**63), 2**63 - 1)),
        st.tuples(st.just(""), st.just(0)),
    ),
    st.sampled_from([0, 0, 1, 2, 3]),  # flags: 1 is NO_RECORDED_VALUE
)
metrics = st.tuples(
    st.sampled_from(["cpu", "mem", "requests", "", "é"]),
    # histograms and summaries are the runtime's to read: now and then, so most requests
    # are the scanner's
    st.sampled_from(["gauge"] * 6 + ["sum"] * 8 + [None, "histogram", "summary"]),
    st.booleans(),  # monotonic
    st.sampled_from([0, 1, 2]),  # temporality
    st.lists(points, min_size=1, max_size=3),
    st.booleans(),  # a description and unit
)
resources = st.tuples(
    st.one_of(st.none(), attributes),
    st.lists(
        st.tuples(st.booleans(), st.lists(metrics, max_size=3)),  # (a scope, metrics)
        max_size=2,
    ),
)


def _put(kv: Any, key: str, value: tuple[str, Any]) -> None:
    kv.key = key
    setattr(kv.value, value[0], value[1])


def request(items: list[Any]) -> bytes:
    req = ExportMetricsServiceRequest()
    for resource, scopes in items:
        rm = req.resource_metrics.add()
        if resource is not None:
            rm.resource.SetInParent()
            for key, value in resource:
                _put(rm.resource.attributes.add(), key, value)
        for has_scope, metric_items in scopes:
            sm = rm.scope_metrics.add()
            if has_scope:
                sm.scope.name, sm.scope.version = "minutely.test", "1.0"
            for name, kind, monotonic, temporality, data_points, described in metric_items:
                metric = sm.metrics.add(name=name)
                if described:
                    metric.description, metric.unit = "what it is", "By"
                if kind is None:
                    continue
                data = getattr(metric, kind)
                data.SetInParent()
                if kind == "sum":
                    data.is_monotonic = monotonic
                    data.aggregation_temporality = temporality
                for attrs, stamp, (which, value), flags in data_points:
                    p = data.data_points.add(time_unix_nano=stamp, flags=flags)
                    for key, v in attrs:
                        _put(p.attributes.add(), key, v)
                    if kind in ("gauge", "sum") and which:
                        setattr(p, which, value)
    return bytes(req.SerializeToString())


def check(body: bytes) -> None:
    """The scanner, given the body as the server reads it (a bytearray), against the
    runtime given bytes."""
    read = bytearray(body)
    try:
        want = otlp.decode_otlp_reference(body, otlp.PROTOBUF, MAPPING, LIMITS)
    except DecodeError as e:
        try:
            otlp.decode_otlp(read, otlp.PROTOBUF, MAPPING, LIMITS, CACHE)
        except DecodeError as f:
            assert str(f) == str(e)
            return
        raise AssertionError("the scanner took a body the runtime refuses") from None
    got = otlp.decode_otlp(read, otlp.PROTOBUF, MAPPING, LIMITS, CACHE)
    assert_same_decoded(got, want)
    assert got.kinds == want.kinds
    for media in (otlp.PROTOBUF, otlp.JSON):
        assert otlp.response(got, media) == otlp.response(want, media)


@SLOW
@given(st.lists(resources, max_size=3))
def test_requests_decode_as_the_runtime_decodes_them(items: list[Any]) -> None:
    check(request(items))


@SLOW
@given(st.lists(resources, min_size=1, max_size=2), st.data())
def test_cut_and_corrupted_requests_too(items: list[Any], data: st.DataObject) -> None:
    body = bytearray(request(items))
    if not body:
        return
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body) - 1))
        how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if how == "flip":
            body[at] = data.draw(st.integers(0, 255))
        elif how == "cut":
            del body[at:]
            if not body:
                break
        else:
            body[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    check(bytes(body))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes(body: bytes) -> None:
    check(body)


def test_fields_given_twice_and_bad_utf8_where_the_scanner_skips() -> None:
    """A singular field twice (merged or replaced by the runtime), a point's value twice,
    and a description that is not UTF-8 (refused by the runtime)."""
    good = request(
        [
            (
                None,
                [
                    (
                        False,
                        [
                            (
                                "cpu",
                                "gauge",
                                False,
                                0,
                                [([], NOW * 10**9, ("as_double", 1.5), 0)],
                                False,
                            )
                        ],
                    )
                ],
            )
        ]
    )
    check(good)
    metric_name = b"\x0a\x03cpu"
    point = b"\x19" + (NOW * 10**9).to_bytes(8, "little") + b"\x21" + bytes(8)
    twice = point + b"\x31" + (7).to_bytes(8, "little")  # as_double then as_int: the int
    for metric in (
        metric_name + b"\x2a" + bytes([len(twice) + 2, 0x0A, len(twice)]) + twice,
        metric_name + metric_name + b"\x2a\x00",
        metric_name + b"\x2a\x00\x2a\x00",
        metric_name + b"\x12\x02\xff\xfe\x2a\x00",
    ):
        scope = b"\x12" + bytes([len(metric)]) + metric
        rm = b"\x12" + bytes([len(scope)]) + scope
        check(b"\x0a" + bytes([len(rm)]) + rm)


def _field(number: int, payload: bytes) -> bytes:
    head = number << 3 | 2
    size = len(payload)
    out = bytearray([head])
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + payload


def test_attributes_nested_near_the_runtimes_depth_limit() -> None:
    """A new series' resource and attributes are parsed as deep as in the request, so the
    runtime's nesting limit refuses the same bodies."""
    point = b"\x19" + (NOW * 10**9).to_bytes(8, "little") + b"\x21" + bytes(8)
    for depth in range(40, 56):
        value = _field(1, b"x")  # AnyValue.string_value
        for _ in range(depth):
            value = _field(5, _field(1, value))  # AnyValue.array_value.values
        kv = _field(1, b"deep") + _field(2, value)
        for resource, attrs in ((_field(1, _field(1, kv)), b""), (b"", _field(7, kv))):
            metric = _field(1, b"m") + _field(5, _field(1, point + attrs))
            check(_field(1, resource + _field(2, _field(2, metric))))


def test_known_series_are_not_resolved_again() -> None:
    calls: list[bytes] = []
    cache = otlp.series_cache(MAPPING)
    resolve = cache.resolve

    def counting(key: bytes):  # type: ignore[no-untyped-def]
        calls.append(key)
        return resolve(key)

    cache.resolve = counting
    host = [("host.name", ("string_value", "web-1"))]
    point = ([("cpu", ("string_value", "0"))], NOW * 10**9, ("as_double", 2.5), 0)
    body = request([(host, [(True, [("util", "gauge", False, 0, [point] * 3, True)])])])
    for _ in range(3):
        d = otlp.decode_otlp(body, otlp.PROTOBUF, MAPPING, LIMITS, cache)
        assert d.accepted == 3
        assert d.batch.metric_names.tolist() == ['util{cpu="0"}']
        assert d.batch.server_names.tolist() == ["web-1"]
    assert len(calls) == 1
