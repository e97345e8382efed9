"""The label mapping: which label is the server, and the reversible series name."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minutely.ingest.labels import LabelMapping, parse_series_name, series_name, strip_port


def test_server_is_the_first_label_present_and_the_rest_name_the_metric() -> None:
    m = LabelMapping()
    labels = {"instance": "web-1:9100", "job": "node", "host": "other", "mode": "idle"}
    assert m.resolve("node_cpu_seconds_total", labels) == (
        "web-1",
        'node_cpu_seconds_total{host="other",job="node",mode="idle"}',
    )
    assert m.resolve("cpu.usage", {"host.name": "db-2"}) == ("db-2", "cpu.usage")


def test_port_kept_when_asked_and_default_server() -> None:
    m = LabelMapping(strip_instance_port=False, default_server="fleet")
    assert m.resolve("up", {"instance": "web-1:9100"}) == ("web-1:9100", "up")
    assert m.resolve("up", {"job": "x"}) == ("fleet", 'up{job="x"}')
    assert LabelMapping().resolve("up", {}) == (None, "up")
    assert "instance, host, host.name, server" in LabelMapping().missing_server()


def test_strip_port() -> None:
    assert strip_port("web-1:9100") == "web-1"
    assert strip_port("[::1]:9100") == "::1"
    assert strip_port("::1") == "::1"
    assert strip_port("web-1") == "web-1"
    assert strip_port("web-1:http") == "web-1:http"


_names = st.text(st.characters(blacklist_characters='{}"=,'), min_size=1, max_size=8)


@given(
    st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:.]{0,10}", fullmatch=True),
    st.dictionaries(_names, st.text(min_size=1, max_size=10), max_size=5),
)
def test_series_name_is_reversible(name: str, labels: dict[str, str]) -> None:
    text = series_name(name, labels.items())
    assert parse_series_name(text) == (name, labels)


def test_series_name_escapes_like_prometheus() -> None:
    text = series_name("m", [("path", 'a"b\\c\nd'), ("empty", "")])
    assert text == 'm{path="a\\"b\\\\c\\nd"}'
