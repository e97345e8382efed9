"""The compiled line-protocol scanner against the line-at-a-time reference, on generated
lines (plain, escaped, quoted, broken) and any bytes: the same points bit for bit, the same
reasons at the same places. One series cache serves every example, as one serves a node."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.errors import DecodeError
from minutely.ingest import influx
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits
from tests.ingest.helpers import assert_same_decoded

NOW = 1_764_000_000.0
LIMITS = Limits(now=NOW, oldest=NOW - 3600, max_future=300, max_errors=20)
MAPPING = LabelMapping(default_server="")
CACHE = influx.series_cache(MAPPING)

keys = st.sampled_from(
    [
        "cpu,host=web-1",
        "cpu,host=web-2,cpu=0",
        "mem",
        "disk,dev=sda",
        "m,host=a\\ b",
        "m,=x",
        "m,host",
        "é,host=ü",
        "cpu,host=web-1,host=web-3",
        ",host=a",
    ]
) | st.text(alphabet="ab,=h\\ ", min_size=1, max_size=8)
field_names = st.sampled_from(["idle", "user", "a\\=b", "", "é"])
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.3f}"),
    st.integers(-(2**70), 2**70).map(lambda i: f"{i}i"),
    st.integers(-5, 2**66).map(lambda i: f"{i}u"),
    st.sampled_from(
        [
            "t",
            "F",
            "true",
            "False",
            "TRUE",
            "tru",
            '"str"',
            '"a\\"b"',
            "nan",
            "",
            "1e400",
            "0.30000000000000004",
            "+5",
            "1_0",
            "ti",
            "1.5i",
            "-0u",
        ]
    ),
)
stamps = st.one_of(
    st.just(""),
    st.integers(int(NOW) - 4000, int(NOW) + 400).map(lambda t: f" {t}"),
    st.sampled_from([" -1", " 1e9", " +5", " x", " 99999999999999999999", "  17640"]),
)
fields = st.lists(st.tuples(field_names, values).map(lambda f: f"{f[0]}={f[1]}"), max_size=3)
lines = st.one_of(
    st.tuples(keys, fields.map(",".join), stamps).map(lambda t: f"{t[0]} {t[1]}{t[2]}"),
    st.sampled_from(["", "# comment", "  ", "m v=1 2 3", "m  v=1", " m v=1 ", "m\tv=1"]),
)


def check(body: bytes, precision: str) -> None:
    """The scanner, given the body as the server reads it (a bytearray), against the
    reference given bytes."""
    read = bytearray(body)
    try:
        want = influx.decode_line_protocol_reference(body, precision, MAPPING, LIMITS)
    except DecodeError:
        with pytest.raises(DecodeError):
            influx.decode_line_protocol(read, precision, MAPPING, LIMITS, CACHE)
        return
    got = influx.decode_line_protocol(read, precision, MAPPING, LIMITS, CACHE)
    assert_same_decoded(got, want)


@settings(max_examples=600, deadline=None)
@given(st.lists(lines, max_size=10), st.sampled_from(["s", "ns", "ms", "m"]))
def test_lines_decode_as_the_reference_decodes_them(items: list[str], precision: str) -> None:
    check("\n".join(items).encode(), precision)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes(body: bytes) -> None:
    check(body, "s")
