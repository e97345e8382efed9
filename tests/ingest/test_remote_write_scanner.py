"""The compiled remote_write scanner against the protobuf runtime's decode (the reference),
on generated requests, the same requests cut and corrupted, and any bytes: the same points
bit for bit, the same reasons, the same refusals. One series cache serves every example, as
one serves every request of a node."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minutely.errors import DecodeError
from minutely.ingest import remote_write as rw
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits
from tests.ingest.helpers import assert_same_decoded

NOW = 1_764_000_000.0
LIMITS = Limits(now=NOW, oldest=NOW - 3600, max_future=300, max_errors=20)
MAPPING = LabelMapping(default_server="")
CACHE = rw.series_cache(MAPPING)
STALE = struct.unpack("<d", struct.pack("<Q", rw.STALE_NAN_BITS))[0]

label_names = st.sampled_from(["__name__", "instance", "job", "host", "mode", "le", "é"])
label_values = st.sampled_from(["", "up", "web-1:9100", "web-2", "[::1]:80", 'a"b\\c', "ü\n"])
values = st.one_of(
    st.floats(),
    st.sampled_from([STALE, 0.0, -0.0, 1e300, 2e288, 12.5]),
)
stamps = st.one_of(
    st.integers(int(NOW - 4000) * 1000, int(NOW + 400) * 1000),
    st.integers(-(2**63), 2**63 - 1),
)
series = st.tuples(
    st.lists(st.tuples(label_names, label_values), max_size=4),
    st.lists(st.tuples(values, stamps), max_size=4),
    st.integers(0, 2),  # native histograms
    st.integers(0, 1),  # exemplars
)


def request(items: list[tuple[list[tuple[str, str]], list[tuple[float, int]], int, int]]) -> bytes:
    req = rw.WriteRequest()
    for labels, samples, histograms, exemplars in items:
        ts = req.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for value, stamp in samples:
            ts.samples.add(value=value, timestamp=stamp)
        ts.histograms.extend([b"\x08\x01"] * histograms)
        ts.exemplars.extend([b""] * exemplars)
    return bytes(req.SerializeToString())


def check(body: bytes) -> None:
    """The scanner, given the body as the server reads it (a bytearray), against the
    runtime given bytes."""
    read = bytearray(body)
    try:
        want = rw.decode_remote_write_reference(body, MAPPING, LIMITS)
    except DecodeError as e:
        try:
            rw.decode_remote_write(read, MAPPING, LIMITS, CACHE)
        except DecodeError as f:
            assert str(f) == str(e)
            return
        raise AssertionError("the scanner took a body the runtime refuses") from None
    got = rw.decode_remote_write(read, MAPPING, LIMITS, CACHE)
    assert got.stale == want.stale
    assert_same_decoded(got.decoded, want.decoded)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(series, max_size=6))
def test_requests_decode_as_the_runtime_decodes_them(items: list) -> None:  # type: ignore[type-arg]
    check(request(items))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(series, min_size=1, max_size=4), st.data())
def test_cut_and_corrupted_requests_too(items: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
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


def test_labels_between_samples_and_metadata_go_to_the_runtime() -> None:
    def field(number: int, message: bytes) -> bytes:
        return bytes([number << 3 | 2, len(message)]) + message

    label = field(1, rw.Label(name="__name__", value="m").SerializeToString())
    host = field(1, rw.Label(name="host", value="web").SerializeToString())
    sample = field(2, rw.Sample(value=1.5, timestamp=128).SerializeToString())
    ts = label + sample + host
    body = b"\x0a" + bytes([len(ts)]) + ts
    check(body)
    got = rw.decode_remote_write(body, MAPPING, LIMITS, CACHE)
    assert got.decoded.rejected == 1  # its time is 1970: the point is read, and refused
    metadata = b"\x1a\x04\x08\x01\x22\x00"
    check(body + metadata)


def test_known_series_are_not_resolved_again() -> None:
    calls: list[bytes] = []
    cache = rw.series_cache(MAPPING)
    resolve = cache.resolve

    def counting(key: bytes):  # type: ignore[no-untyped-def]
        calls.append(key)
        return resolve(key)

    cache.resolve = counting
    labels = [("__name__", "up"), ("instance", "web-1:9100")]
    body = request([(labels, [(1.0, int(NOW * 1000))], 0, 0)] * 3)
    for _ in range(3):
        d = rw.decode_remote_write(body, MAPPING, LIMITS, cache).decoded
        assert d.accepted == 3
        assert d.batch.metric_names.tolist() == ["up"]
    assert len(calls) == 1
    assert np.all(d.batch.server_names == ["web-1"])
