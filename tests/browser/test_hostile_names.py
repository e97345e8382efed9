"""Names are text: a server, metric or label value holding markup is shown as written in every
view, and nothing in it runs (issue #17)."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SERVER = 'web-<img src=x onerror="window.__xss=1">'
METRIC = "cpu.<script>window.__xss=2</script>"
LABELLED = 'http.requests{path="<svg onload=window.__xss=3>",job="a&amp;b"}'


def test_markup_in_names_is_shown_as_text_and_never_runs(start_server, page, ui) -> None:
    server = start_server("hostile")
    now = int(time.time())
    stamps = range(now - 10 * 60, now, 10)
    points = [
        {"server": s, "metric": m, "ts": ts, "value": float(ts % 7)}
        for ts in stamps
        for s, m in ((SERVER, METRIC), (SERVER, LABELLED), ("db-01", METRIC))
    ]
    server.post_points(points)
    server.wait_folded(len(points))

    page.add_init_script("window.__xss = 0")
    ui.open(server, f"/server/{quote(SERVER, safe='')}", "server")
    expect(page.locator("h1")).to_have_text(SERVER)
    expect(page.locator(".chart-card h3", has_text=METRIC)).to_have_count(1)
    expect(page.locator(".chart-card h3", has_text=LABELLED)).to_have_count(1)
    keys = [r["key"] for r in ui.table()["rows"]]
    assert sorted(keys) == sorted([METRIC, LABELLED])

    ui.open(server, f"/metric/{quote(METRIC, safe='')}", "metric")
    expect(page.locator("h1")).to_have_text(METRIC)
    assert sorted(r["key"] for r in ui.table()["rows"]) == sorted([SERVER, "db-01"])

    ui.open(server, f"/fleet?metric={quote(LABELLED, safe='')}", "fleet")
    expect(page.get_by_text(LABELLED).first).to_be_visible()

    # no element the names could have made exists, and nothing they held ran
    made = "img[src='x'], script:not([src]):has-text('__xss'), svg[onload]"
    assert page.locator(made).count() == 0
    assert page.evaluate("() => window.__xss") == 0
