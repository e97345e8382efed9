"""InfluxDB line protocol: the decoder's rules, the v1 and v2 routes, and Q3 against numpy."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minutely.errors import DecodeError
from minutely.ingest.influx import decode_line_protocol
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits
from tests.ingest.helpers import reasons, rows
from tests.ingest.protocol_helpers import NOW, drain, serving, summary, truth

T = 1_764_000_000
LIMITS = Limits(now=T + 100, oldest=0, max_future=300)


def decode(body: bytes, precision: str = "ns", **mapping: object):  # type: ignore[no-untyped-def]
    return decode_line_protocol(body, precision, LabelMapping(**mapping), LIMITS)  # type: ignore[arg-type]


def test_every_field_is_a_point_and_tags_name_the_metric() -> None:
    d = decode(
        b"cpu,host=web-1,cpu=cpu0 idle=97.5,user=1i,up=t,down=FALSE,n=7u 1764000000000000000"
    )
    assert rows(d) == [
        ("web-1", 'cpu.idle{cpu="cpu0"}', T, 97.5),
        ("web-1", 'cpu.user{cpu="cpu0"}', T, 1.0),
        ("web-1", 'cpu.up{cpu="cpu0"}', T, 1.0),
        ("web-1", 'cpu.down{cpu="cpu0"}', T, 0.0),
        ("web-1", 'cpu.n{cpu="cpu0"}', T, 7.0),
    ]


@pytest.mark.parametrize(
    ("precision", "stamp"),
    [
        ("ns", T * 10**9 + 500_000_000),
        ("u", T * 10**6 + 500_000),
        ("us", T * 10**6 + 500_000),
        ("ms", T * 1000 + 500),
        ("s", T),
        ("m", T // 60),
        ("h", T // 3600),
    ],
)
def test_precisions(precision: str, stamp: int) -> None:
    (row,) = rows(decode(b"m,host=h v=1 %d" % stamp, precision))
    want = {"s": T, "m": T // 60 * 60, "h": T // 3600 * 3600}.get(precision, T + 0.5)
    assert row[2] == want


def test_missing_timestamp_takes_the_server_clock() -> None:
    assert rows(decode(b"m,host=h v=1")) == [("h", "m.v", LIMITS.now, 1.0)]


def test_escapes() -> None:
    body = (
        b"weather\\ st\\,x,host=a\\,b,lo\\=c=x\\ y "
        b'te\\ mp=1.5,note="a \\"q\\", b" 1764000000000000000'
    )
    d = decode(body)
    assert rows(d) == [("a,b", 'weather st,x.te mp{lo=c="x y"}', T, 1.5)]
    assert reasons(d) == [(1, "line 1: field 'note': a string, not a number")]


def test_bad_lines_are_named_by_line_and_good_ones_kept() -> None:
    body = b"""# a comment
m,host=h v=1 1764000000000000000
m,host=h v=oops 1764000000000000000
m,host=h
m,host=h v=2,w="s" 1764000000000000000
nohost v=1 1764000000000000000
m,host=h v=-1u 1764000000000000000
m,host=h v=3 1764000000000000000
"""
    d = decode(body)
    assert [r[3] for r in rows(d)] == [1.0, 2.0, 3.0]
    assert d.rejected == 5
    got = dict(reasons(d))
    assert got[1].startswith("line 3: field value 'oops'")
    assert got[2].startswith("line 4: expected a measurement, fields")
    assert got[4] == "line 5: field 'w': a string, not a number"
    assert got[5].startswith("line 6: server: no label of")
    assert got[6] == "line 7: unsigned field value -1u is negative"


def test_default_server_and_bad_precision() -> None:
    assert rows(decode(b"m v=1 1764000000000000000", default_server="fleet")) == [
        ("fleet", "m.v", T, 1.0)
    ]
    with pytest.raises(DecodeError, match="precision"):
        decode(b"m v=1", "fortnight")


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200) | st.text(alphabet=' ,="\\\nabhost=1i.tu-', max_size=80).map(str.encode)
)
def test_any_body_decodes_or_is_a_decode_error(body: bytes) -> None:
    try:
        d = decode(body, default_server="x")
    except DecodeError:
        return
    assert d.accepted + d.rejected >= len(d.errors)
    assert all(e.reason for e in d.errors)


def _lines(values: np.ndarray, stamps: np.ndarray) -> bytes:
    return "\n".join(
        f"disk,host=web-1,dev=sda read={v!r},write={2 * v!r} {int(t)}"
        for v, t in zip(values.tolist(), stamps.tolist(), strict=True)
    ).encode()


@pytest.mark.parametrize(
    "route", ["/write?db=x&precision=ms", "/api/v2/write?org=o&bucket=b&precision=ms"]
)
def test_routes_answer_204_and_q3_matches_numpy(route: str) -> None:
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(10, 3, 500), 4)
    stamps = np.sort(rng.uniform(NOW - 3000, NOW, 500)) * 1000
    with serving() as (service, client):
        r = client.post(
            route,
            content=gzip.compress(_lines(values, stamps)),
            headers={"Content-Encoding": "gzip"},
        )
        assert r.status_code == 204, r.text
        drain(service)
        got = summary(client, "web-1", NOW - 3600, NOW + 60)
    for name, v in (('disk.read{dev="sda"}', values), ('disk.write{dev="sda"}', 2 * values)):
        want = truth(v)
        assert got[name]["count"] == want["count"]
        assert got[name]["min"] == want["min"] and got[name]["max"] == want["max"]
        assert got[name]["avg"] == pytest.approx(want["avg"], rel=1e-12)


def test_partial_writes_answer_influx_error_json() -> None:
    body = b'm,host=h v=1\nm,host=h v="s"\n'
    with serving() as (_, client):
        r = client.post("/api/v2/write?org=o&bucket=b", content=body)
        assert r.status_code == 400
        assert r.json()["code"] == "invalid"
        assert "line 2: field 'v': a string" in r.json()["message"]
        r = client.post("/write?db=x", content=body)
        assert r.status_code == 400 and "partial write" in r.json()["error"]
        r = client.post("/write?precision=fortnight", content=body)
        assert r.status_code == 400 and "precision" in r.json()["error"]
        assert client.get("/ping").status_code == 204
        counts = client.get("/api/v1/ingest/protocols").json()["influx"]
        assert counts == {"requests": 2, "accepted": 2, "rejected": 2, "dropped": 0}
