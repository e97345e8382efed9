"""Graphite plaintext: the decoder's rules (paths, tags, the server node, bad lines)."""

from __future__ import annotations

from minutely.ingest.graphite import decode_graphite
from minutely.ingest.labels import LabelMapping
from minutely.ingest.series import Limits
from tests.ingest.helpers import reasons, rows

T = 1_764_000_000
LIMITS = Limits(now=T + 100, oldest=0, max_future=300)


def test_server_node_is_taken_out_of_the_path() -> None:
    body = b"collectd.web_1.cpu-0.cpu-idle 97.5 1764000000\ncollectd.web_1.load 0.5 -1\n"
    assert rows(decode_graphite(body, LabelMapping(), 1, LIMITS)) == [
        ("web_1", "collectd.cpu-0.cpu-idle", T, 97.5),
        ("web_1", "collectd.load", T + 100, 0.5),
    ]


def test_tags_name_the_server_without_a_server_node() -> None:
    body = b"cpu.user;host=h;core=0 5 1764000000\ncpu.sys 1 1764000000"
    d = decode_graphite(body, LabelMapping(), -1, LIMITS)
    assert rows(d) == [("h", 'cpu.user{core="0"}', T, 5.0)]
    assert reasons(d) == [
        (
            1,
            "line 2: server: no label of instance, host, host.name, server "
            "and no default_server set",
        )
    ]
    d = decode_graphite(body, LabelMapping(default_server="box"), -1, LIMITS)
    assert [r[0] for r in rows(d)] == ["h", "box"]


def test_bad_lines_are_named_and_good_ones_kept() -> None:
    body = b"a.h.m 1 1764000000\nnonsense\na.h.m x 1764000000\nshort 1 1764000000\na.h.m 2\n"
    d = decode_graphite(body, LabelMapping(), 1, LIMITS, first_line=10)
    assert [r[3] for r in rows(d)] == [1.0, 2.0]
    got = dict(reasons(d))
    assert got[2].startswith("line 11: expected '<path> <number> [<timestamp>]'")
    assert got[3].startswith("line 12: expected")
    assert got[4] == "line 13: path 'short' has no node 1 before its metric (graphite_server_node)"
