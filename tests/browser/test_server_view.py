"""Server view: a chart per metric, the summary table equal to Q3, filter, sort, ranges, URL;
with more metrics than a batch, the charts' series come `metric=` batches at a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

BATCH = 24  # metrics per series request (BATCH in views/server.js)


def first_server(fleet: Any) -> str:
    return str(sorted(fleet.get("/api/v1/servers")["servers"])[0])


def assert_table_matches_api(ui: Any, label: str) -> list[dict[str, Any]]:
    """Every row of the page's summary table equals the API's answer to the same request."""
    shown = ui.table()
    answer = httpx.get(shown["src"], timeout=10).json()["rows"]
    expected = {r[label]: r for r in answer}
    assert len(shown["rows"]) == len(expected)
    for row in shown["rows"]:
        api_row = expected[row["key"]]
        for col in ("min", "max", "avg", "count"):
            assert row[col] == api_row[col], (row["key"], col)
    return list(shown["rows"])


def test_charts_and_summary(fleet, page, ui, shoot) -> None:
    server = first_server(fleet)
    ui.open(fleet, f"/server/{server}", "server")
    expect(page.locator("h1")).to_have_text(server)
    expect(page.locator(".chart-card")).to_have_count(12)
    drawn = page.locator(".chart-card.drawn")
    assert drawn.count() >= 4
    assert ui.painted(".chart-card.drawn canvas") > 0.02
    # one bucket per pixel at most: 1 hour at 1-minute steps fits a chart this wide
    for card in drawn.all():
        assert int(card.get_attribute("data-points")) <= int(card.get_attribute("data-width"))
        assert card.get_attribute("data-step") == "60"
    rows = assert_table_matches_api(ui, "metric")
    assert [r["key"] for r in rows] == sorted(r["key"] for r in rows)  # default: by name
    assert page.locator(".server-layout .subtitle, .view-head .subtitle").first.inner_text() == (
        "12 metrics · 1 min buckets · last hour"
    )
    shoot("server-view")


def test_lazy_charts_draw_when_scrolled_into_view(fleet, page, ui) -> None:
    page.set_viewport_size({"width": 1600, "height": 600})
    ui.open(fleet, f"/server/{first_server(fleet)}", "server")
    assert page.locator(".chart-card.drawn").count() < 12
    last = page.locator(".chart-card").last
    last.scroll_into_view_if_needed()
    expect(last).to_have_class("card chart-card drawn")
    assert ui.painted(".chart-card:last-child canvas") > 0.02


def test_filter_sort_and_reload(fleet, page, ui) -> None:
    server = first_server(fleet)
    # A fixed range: with "last hour" a minute boundary between load and reload would
    # slide the oldest minute out of the window and change the table.
    to = int(time.time()) // 60 * 60
    ui.open(fleet, f"/server/{server}?range=custom&from={to - 3600}&to={to}", "server")
    page.get_by_placeholder("Filter metrics…").fill("cpu")
    page.wait_for_function("() => location.hash.includes('q=cpu')")
    visible = page.locator(".chart-card:visible h3").all_inner_texts()
    assert visible and all("cpu" in v for v in visible)
    page.locator("th button.sort", has_text="max").click()
    page.wait_for_function("() => location.hash.includes('sort=max.desc')")
    rows = ui.table()["rows"]
    assert rows and all("cpu" in r["key"] for r in rows)
    maxes = [r["max"] for r in rows]
    assert maxes == sorted(maxes, reverse=True)

    page.reload()  # the same view comes back from the URL
    ui.wait_drawn("server")
    expect(page.get_by_placeholder("Filter metrics…")).to_have_value("cpu")
    assert ui.table()["rows"] == rows
    assert page.locator(".chart-card:visible h3").all_inner_texts() == visible
    expect(page.locator("th[aria-sort='descending']")).to_have_text("max▼")


def test_range_buttons_refetch(fleet, page, ui) -> None:
    server = first_server(fleet)
    ui.open(fleet, f"/server/{server}", "server")
    before = ui.draws("server")
    page.get_by_role("button", name="6h", exact=True).click()
    ui.wait_drawn("server", before)
    assert "range=6h" in ui.hash()
    subtitle = page.locator(".view-head .subtitle")
    expect(subtitle).to_have_text("12 metrics · 1 min buckets · last 6 hours")
    six_hours = page.get_by_role("button", name="6h", exact=True)
    expect(six_hours).to_have_attribute("aria-pressed", "true")
    table = ui.table()
    assert "start=" in table["src"]
    assert_table_matches_api(ui, "metric")

    before = ui.draws("server")
    page.get_by_role("button", name="2d", exact=True).click()
    ui.wait_drawn("server", before)
    for card in page.locator(".chart-card.drawn").all():  # coarser steps over 2 days
        points = int(card.get_attribute("data-points"))
        assert points <= int(card.get_attribute("data-width"))
        assert int(card.get_attribute("data-step")) > 60


def test_custom_range(fleet, page, ui) -> None:
    server = first_server(fleet)
    ui.open(fleet, f"/server/{server}", "server")
    now = int(time.time()) // 60 * 60
    start, end = now - 90 * 60, now - 30 * 60
    fmt = "%Y-%m-%dT%H:%M"  # the page runs in UTC (see the page fixture)
    page.get_by_role("button", name="Custom").click()
    page.locator("input[name=from]").fill(datetime.fromtimestamp(start, UTC).strftime(fmt))
    page.locator("input[name=to]").fill(datetime.fromtimestamp(end, UTC).strftime(fmt))
    before = ui.draws("server")
    page.get_by_role("button", name="Apply").click()
    ui.wait_drawn("server", before)
    assert f"range=custom&from={start}&to={end}" in ui.hash()
    expect(page.locator("#live-status")).to_have_text("fixed range")
    expect(page.locator("#live-toggle")).to_be_disabled()
    src = ui.table()["src"]
    assert f"start={start}" in src and f"end={end}" in src
    assert_table_matches_api(ui, "metric")


def test_drag_on_a_chart_zooms_in(fleet, page, ui) -> None:
    ui.open(fleet, f"/server/{first_server(fleet)}", "server")
    over = page.locator(".chart-card.drawn .u-over").first
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()
    page.wait_for_function("() => location.hash.includes('range=custom')")
    state = ui.state()
    assert 10 * 60 <= state["to"] - state["from"] <= 25 * 60  # about 30% of an hour


def test_tooltip_shows_exact_values(fleet, page, ui, shoot) -> None:
    ui.open(fleet, f"/server/{first_server(fleet)}?q=cpu.user", "server")
    page.locator(".chart-card.drawn .u-over").first.hover()
    tooltip = page.locator("#tooltip")
    expect(tooltip).to_be_visible()
    text = tooltip.inner_text()
    for label in ("max", "avg", "min", "points"):
        assert label in text
    assert text.count("%") == 3  # cpu.user is a percentage
    shoot("server-tooltip", hover=True)


def test_unknown_server_says_so(fleet, page, ui, shoot) -> None:
    ui.open(fleet, "/server/no-such-host")
    notice = page.locator(".notice.error")
    expect(notice).to_contain_text("Unknown server “no-such-host”")
    expect(notice).to_contain_text("unknown server 'no-such-host'")  # the API's own message
    expect(notice.locator(".suggest a").first).to_be_visible()
    assert page.locator(".chart-card").count() == 0
    shoot("server-unknown")


def series_queries(urls: list[str]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(u).query) for u in urls if urlparse(u).path.endswith("/series")]


def test_few_metrics_come_in_one_request(fleet, page, ui) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    ui.open(fleet, f"/server/{first_server(fleet)}?live=0", "server")
    (query,) = series_queries(requested)  # 12 metrics: one request, no filter
    assert "metric" not in query and query["start"] == ["-1h"]


def test_many_metrics_are_fetched_in_batches(start_server, page, ui) -> None:
    server = start_server("many")
    minute = int(time.time()) // 60 * 60
    metrics = [f"svc.part{i:02d}.queue" for i in range(60)]
    points = [
        {"server": "many-01", "metric": m, "ts": minute - (20 - k) * 60 + 30, "value": i + k / 10}
        for i, m in enumerate(metrics)
        for k in range(20)
    ]
    server.post_points(points)
    server.wait_folded(len(points))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.set_viewport_size({"width": 1600, "height": 700})
    ui.open(server, "/server/many-01?refresh=1", "server")
    expect(page.locator(".chart-card")).to_have_count(60)
    expect(page.locator(".view-head .subtitle")).to_have_text(
        "60 metrics · 1 min buckets · last hour"
    )
    summaries = [u for u in requested if urlparse(u).path.endswith("/summary")]
    assert summaries and "metric=" not in summaries[0]  # the table: one request for all

    first, *_ = queries = series_queries(requested)
    assert first["start"] == ["-1h"] and first["end"] == ["now"]
    asked: set[str] = set()
    for query in queries:  # batches only, never every metric at once
        assert 0 < len(query["metric"]) <= BATCH
        asked.update(query["metric"])
    assert len(asked) < len(metrics)
    drawn = page.locator(".chart-card.drawn")
    assert 0 < drawn.count() < len(metrics)
    assert set(drawn.evaluate_all("(cards) => cards.map((c) => c.dataset.metric)")) <= asked

    # what the page holds equals the API's answer for the same metrics and buckets
    held = page.evaluate("() => window.__minutely.view.data")
    held_metrics = sorted(s["metric"] for s in held["series"])
    full = httpx.get(
        f"{server.url}/api/v1/servers/many-01/series",
        timeout=10,
        params={
            "start": held["start"],
            "end": held["end"],
            "step": held["step"],
            "metric": held_metrics,
        },
    )
    assert held["timestamps"] == full.json()["timestamps"]
    assert sorted(held["series"], key=lambda s: s["metric"]) == full.json()["series"]

    # a new point in the current minute: the live tick refreshes the charts on screen, batched
    requested.clear()
    point = {"server": "many-01", "metric": metrics[0], "ts": time.time(), "value": 97.5}
    server.post_points([point])
    page.wait_for_function(
        "(m) => document.querySelector(`[data-metric='${m}'] .last`).textContent === '97.5'",
        arg=metrics[0],
    )
    for query in series_queries(requested):
        assert 0 < len(query["metric"]) <= BATCH
        assert query["end"] == ["now"] and time.time() - int(query["start"][0]) < 5 * 60

    # the last card, far below: fetched in a batch when it scrolls into view
    page.get_by_role("button", name="❚❚ Pause").click()
    requested.clear()
    last = page.locator(".chart-card").last
    last.scroll_into_view_if_needed()
    expect(last).to_have_class("card chart-card drawn")
    queries = series_queries(requested)
    assert any(metrics[-1] in q["metric"] for q in queries)
    for query in queries:
        assert 0 < len(query["metric"]) <= BATCH
    held = page.evaluate("() => window.__minutely.view.data")
    by_metric = {s["metric"]: s for s in held["series"]}
    full = httpx.get(
        f"{server.url}/api/v1/servers/many-01/series",
        timeout=10,
        params={
            "start": held["start"],
            "end": held["end"],
            "step": held["step"],
            "metric": metrics[-1],
        },
    ).json()
    assert by_metric[metrics[-1]] == full["series"][0]
