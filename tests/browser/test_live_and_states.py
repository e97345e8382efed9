"""Live refresh, the API-down banner, the empty state and the draw-time budget, each against
a server of its own so what it sends or stops touches no other test."""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def history(server: str, metrics: list[str], minutes: int, until: int) -> list[dict[str, Any]]:
    """One point per minute per metric for the ``minutes`` minutes before ``until``."""
    points = []
    for i, metric in enumerate(metrics):
        for m in range(minutes):
            ts = until - (minutes - m) * 60 + 30
            value = 20 + 10 * i + 5 * math.sin(m / 30 + i)
            points.append({"server": server, "metric": metric, "ts": ts, "value": value})
    return points


def series_requests(urls: list[str]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(u).query) for u in urls if "/series?" in u]


def test_live_refresh_fetches_only_the_recent_range(start_server, page, ui) -> None:
    server = start_server("live")
    minute = int(time.time()) // 60 * 60
    server.post_points(history("live-01", ["cpu.user", "load.1m"], 14, minute))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    ui.open(server, "/server/live-01?range=15m&refresh=1", "server")
    draws = ui.draws("server")

    # a new point in the current minute: the live tick must bring it in without a reload
    point = {"server": "live-01", "metric": "cpu.user", "ts": time.time(), "value": 97.5}
    server.post_points([point])
    page.wait_for_function(
        "() => document.querySelector('[data-metric=\"cpu.user\"] .last').textContent === '97.5%'"
    )
    assert ui.draws("server") > draws
    row = next(r for r in ui.table()["rows"] if r["key"] == "cpu.user")
    assert row["max"] == 97.5
    expect(page.locator("#live-status")).to_contain_text("live every 1 s · updated")

    # what the page holds after merging equals a full fetch of the same buckets
    held = page.evaluate("() => window.__minutely.view.data")
    full = server.get(
        "/api/v1/servers/live-01/series", start=held["start"], end=held["end"], step=held["step"]
    )
    assert held["timestamps"] == full["timestamps"]
    assert sorted(held["series"], key=lambda s: s["metric"]) == full["series"]

    first, *later = series_requests(requested)
    assert first["start"] == ["-15m"]
    assert later, "no live refresh happened"
    for query in later:  # the recent buckets only: from the last complete one to now
        start = int(query["start"][0])
        assert time.time() - start < 5 * 60
        assert query["end"] == ["now"] and query["step"] == first["step"]

    # paused: no more series requests
    page.get_by_role("button", name="❚❚ Pause").click()
    expect(page.locator("#live-status")).to_contain_text("paused")
    assert "live=0" in ui.hash()
    page.wait_for_timeout(300)
    count = len(series_requests(requested))
    page.wait_for_timeout(2500)
    assert len(series_requests(requested)) == count


def test_banner_when_the_api_goes_down_and_back(start_server, page, ui, shoot) -> None:
    server = start_server("down")
    minute = int(time.time()) // 60 * 60
    points = history("db-01", ["cpu.user", "disk.used_pct", "net.rx_bytes"], 60, minute)
    server.post_points(points)
    ui.open(server, "/server/db-01?refresh=1", "server")
    charts = page.locator(".chart-card.drawn").count()
    assert charts == 3

    port = int(server.url.rsplit(":", 1)[1])
    server.stop()
    banner = page.locator("#banner")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("Cannot reach the minutely API")
    # what was on screen stays there, so a wall screen keeps its last picture
    assert page.locator(".chart-card.drawn").count() == charts
    shoot("api-down")

    again = start_server("down-again", port=port)
    again.post_points(points)
    expect(banner).to_be_hidden(timeout=10_000)


def test_empty_server_explains_what_to_do(start_server, page, ui, shoot) -> None:
    server = start_server("empty")
    ui.open(server, "/fleet")
    notice = page.locator(".notice.empty")
    expect(notice).to_contain_text("No data yet")
    expect(notice).to_contain_text("minutely simulate")
    expect(page.locator(".heat-card")).to_be_hidden()
    shoot("fleet-empty")

    # data arrives: the live tick picks it up without a reload
    page.goto(f"{server.url}/#/fleet?refresh=1")
    minute = int(time.time()) // 60 * 60
    server.post_points(history("web-01", ["cpu.user"], 10, minute))
    ui.wait_drawn("fleet")
    expect(page.locator(".heat-card")).to_be_visible()


def test_50_metrics_over_2_days_draw_within_a_second(start_server, page, ui, shoot) -> None:
    server = start_server("wide")
    minute = int(time.time()) // 60 * 60
    metrics = [f"app.stage{i:02d}.latency_ms" for i in range(50)]
    minutes = 2 * 24 * 60 - 10  # inside the 2-day hot window
    points = history("big-001", metrics, minutes, minute)
    for i in range(0, len(points), 25_000):
        server.post_points(points[i : i + 25_000])
    server.wait_folded(len(points))

    page.set_viewport_size({"width": 1920, "height": 1080})
    ui.open(server, "/server/big-001?range=2d")
    ui.wait_drawn("server")
    last_draw = "window.__minutely.draws.filter((d) => d.view === 'server').at(-1)"
    page.wait_for_function(f"() => {last_draw}.paintMs !== null")
    timing = page.evaluate(f"() => {last_draw}")
    print(f"server view, 50 metrics x 2 days: {timing}")
    assert timing["charts"] >= 6
    assert timing["paintMs"] < 1000, timing
    assert page.locator(".chart-card").count() == 50
    assert page.locator(".chart-card.drawn").count() < 50  # the rest wait until scrolled to
    for card in page.locator(".chart-card.drawn").all():
        assert int(card.get_attribute("data-points")) <= int(card.get_attribute("data-width"))
    shoot("server-50-metrics-2-days")
    last = page.locator(".chart-card").last
    last.scroll_into_view_if_needed()
    expect(last).to_have_class("card chart-card drawn")


def test_merge_slides_the_window(fleet, page) -> None:
    """The live merge (data.js) overlays fresh buckets, appends new ones, drops the oldest."""
    page.goto(f"{fleet.url}/#/fleet?live=0")
    merged = page.evaluate("""async () => {
      const { mergeSeries } = await import("./js/data.js");
      const s = (metric, values) => ({
        metric, min: values, max: values, avg: values,
        count: values.map((v) => (v == null ? 0 : 1)),
      });
      const old = { start: 0, end: 240, step: 60, timestamps: [0, 60, 120, 180],
        series: [s("a", [1, 2, 3, 4]), s("gone", [5, null, null, null])] };
      const fresh = { start: 120, end: 360, step: 60, timestamps: [120, 180, 240, 300],
        series: [s("a", [30, 40, 50, null]), s("new", [null, null, null, 9])] };
      return mergeSeries(old, fresh, "metric");
    }""")
    assert merged["timestamps"] == [120, 180, 240, 300]
    assert (merged["start"], merged["end"]) == (120, 360)
    by_name = {s["metric"]: s for s in merged["series"]}
    assert sorted(by_name) == ["a", "new"]  # "gone" has no data left in the window
    assert by_name["a"]["avg"] == [30, 40, 50, None]
    assert by_name["new"]["count"] == [0, 0, 0, 1]


def test_merges_carry_only_the_fields_asked_for(fleet, page) -> None:
    """Lines (`fields=avg`) merge without counts; a /fleet answer merges at the top level."""
    page.goto(f"{fleet.url}/#/fleet?live=0")
    merged = page.evaluate("""async () => {
      const { mergeFleet, mergeSeries, realign } = await import("./js/data.js");
      const old = { start: 0, end: 180, step: 60, timestamps: [0, 60, 120],
        series: [{ server: "a", avg: [1, 2, 3] }, { server: "gone", avg: [4, null, null] }] };
      const fresh = { start: 60, end: 240, step: 60, timestamps: [60, 120, 180],
        series: [{ server: "a", avg: [20, 30, 40] }] };
      const band = mergeFleet(
        { servers: 3, start: 0, end: 180, step: 60, timestamps: [0, 60, 120],
          min: [1, 2, 3], max: [5, 6, 7], avg: [3, 4, 5], count: [2, 2, 2] },
        { servers: 2, start: 120, end: 240, step: 60, timestamps: [120, 180],
          min: [0, 9], max: [8, 9], avg: [4, 9], count: [3, 1] });
      return { lines: mergeSeries(old, fresh, "server"), band,
        laid: realign([7, 8], [120, 180], [60, 120, 180], 60) };
    }""")
    assert merged["lines"]["timestamps"] == [60, 120, 180]
    assert merged["lines"]["series"] == [{"server": "a", "avg": [20, 30, 40]}]  # "gone" dropped
    band = merged["band"]
    assert band["timestamps"] == [60, 120, 180] and (band["start"], band["end"]) == (60, 240)
    assert band["min"] == [2, 0, 9] and band["max"] == [6, 8, 9] and band["count"] == [2, 3, 1]
    assert band["servers"] == 3  # a distinct count: the larger one, not a sum
    assert merged["laid"] == [None, 7, 8]
