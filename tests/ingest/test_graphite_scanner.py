"""The compiled Graphite scanner against the line-at-a-time reference, on generated lines
(good, odd and broken) and any bytes: the same points bit for bit and the same reasons.
One series cache serves every example, as one serves a listener's every block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.ingest import graphite
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits
from tests.ingest.helpers import assert_same_decoded

NOW = 1_764_000_000.0
LIMITS = Limits(now=NOW, oldest=NOW - 3600, max_future=300, max_errors=20)
MAPPINGS = {node: LabelMapping(default_server="box" if node < 0 else "") for node in (-1, 1)}
CACHES = {node: graphite.series_cache(MAPPINGS[node], node) for node in (-1, 1)}

paths = st.sampled_from(
    ["a.web-1.cpu", "a.web-2.load", "short", "c.h.m;host=x", "m;bad", "é.ü.x", "a..b", "x.y.z"]
) | st.text(alphabet="ab.;=h", min_size=1, max_size=8)
numbers = st.one_of(
    st.floats(allow_nan=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.3f}"),
    st.integers(int(NOW) - 4000, int(NOW) + 400).map(str),
    st.sampled_from(["-1", "nan", "1e400", "x", "1_0", "0.30000000000000004", "+5", ".5"]),
)
spaces = st.sampled_from([" ", "  ", "\t", " \r"])
lines = st.one_of(
    st.tuples(paths, spaces, numbers, spaces, numbers).map("".join),
    st.tuples(paths, spaces, numbers).map("".join),
    st.tuples(paths, spaces, numbers, spaces, numbers, spaces, numbers).map("".join),
    st.sampled_from(["", "   ", "nonsense"]),
)


def check(body: bytes, node: int) -> None:
    mapping = MAPPINGS[node]
    want = graphite.decode_graphite_reference(body, mapping, node, LIMITS, first_line=7)
    got = graphite.decode_graphite(body, mapping, node, LIMITS, 7, CACHES[node])
    assert_same_decoded(got, want)


@settings(max_examples=500, deadline=None)
@given(st.lists(lines, max_size=12), st.sampled_from([-1, 1]), st.booleans())
def test_lines_decode_as_the_reference_decodes_them(
    items: list[str], node: int, final_newline: bool
) -> None:
    body = "\n".join(items) + ("\n" if final_newline else "")
    check(body.encode(), node)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([-1, 1]))
def test_any_bytes(body: bytes, node: int) -> None:
    check(body, node)
