"""A stored metric name back to Prometheus labels: the inverse of ingest's ``series_name``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minutely.ingest.labels import series_name
from minutely.promql.names import metric_labels, series_labels

names = st.from_regex(r"[a-zA-Z_:.][a-zA-Z0-9_:.]{0,20}", fullmatch=True)
keys = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_.]{0,10}", fullmatch=True).filter(
    lambda k: k != "__name__"
)
values = st.text(max_size=12)


@given(names, st.dictionaries(keys, values, max_size=5))
def test_labels_come_back_from_a_stored_name(name: str, labels: dict[str, str]) -> None:
    stored = series_name(name, labels.items())
    kept = {k: v for k, v in labels.items() if v != ""}
    assert metric_labels(stored) == {"__name__": name, **kept}


def test_a_plain_or_malformed_name_is_all_name() -> None:
    assert metric_labels("cpu.user") == {"__name__": "cpu.user"}
    assert metric_labels('m{a="1",b}') == {"__name__": 'm{a="1",b}'}
    assert metric_labels('m{a="unterminated}') == {"__name__": 'm{a="unterminated}'}


def test_the_server_is_the_instance_label() -> None:
    stored = series_name("http_requests_total", [("code", "200"), ("job", "api")])
    assert series_labels("web-1", stored) == (
        ("__name__", "http_requests_total"),
        ("code", "200"),
        ("instance", "web-1"),
        ("job", "api"),
    )
