"""Metric view: the fleet band drawn from /fleet, per-server lines on demand, the table equal to
Q4, and none of it by downloading every server's series."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

#: the uPlot columns of the big chart: timestamps, min, max, avg, then one per server line
CHART_DATA_JS = "() => window.__minutely.view.chart.data.map((col) => Array.from(col))"


def minutes(server: str, metric: str, count: int, until: int, base: float) -> list[dict[str, Any]]:
    """One point a minute for the ``count`` minutes before ``until``."""
    return [
        {"server": server, "metric": metric, "ts": until - (count - m) * 60 + 30, "value": base + m}
        for m in range(count)
    ]


def requests_to(urls: list[str], kind: str) -> list[dict[str, list[str]]]:
    """The query strings of the requests for ``/series`` or ``/fleet`` among ``urls``."""
    return [parse_qs(urlparse(u).query) for u in urls if urlparse(u).path.endswith(f"/{kind}")]


def test_fleet_band_and_server_table(fleet, page, ui, shoot) -> None:
    servers = fleet.get("/api/v1/servers")["servers"]
    ui.open(fleet, "/metric/cpu.user", "metric")
    expect(page.locator("h1")).to_have_text("cpu.user%")
    expect(page.locator(".view-head .subtitle")).to_have_text(
        f"{len(servers)} servers reporting · 1 min buckets · last hour"
    )
    assert ui.painted(".big-chart canvas") > 0.03
    plot = page.locator(".big-chart .plot")
    assert int(plot.get_attribute("data-points")) <= int(plot.get_attribute("data-width"))

    table = ui.table()
    answer = {r["server"]: r for r in httpx.get(table["src"], timeout=10).json()["rows"]}
    assert sorted(r["key"] for r in table["rows"]) == sorted(answer)
    for row in table["rows"]:
        for col in ("min", "max", "avg", "count"):
            assert row[col] == answer[row["key"]][col]
    maxes = [r["max"] for r in table["rows"]]
    assert maxes == sorted(maxes, reverse=True)  # default: hottest first

    page.get_by_role("button", name="Top 5 by max").click()
    hottest = [r["key"] for r in table["rows"][:5]]
    expect(page.locator(".legend .chip.removable")).to_have_count(5)
    assert plot.get_attribute("data-lines") == ",".join(hottest)
    shoot("metric-view")


def test_server_line_on_demand_survives_reload(fleet, page, ui) -> None:
    server = sorted(fleet.get("/api/v1/servers")["servers"])[1]
    ui.open(fleet, "/metric/load.1m", "metric")
    first_line = (247, 37, 133)  # PALETTE[0] in chart.js
    assert ui.painted(".big-chart canvas", first_line) == 0
    page.get_by_label(f"Show {server}'s line").check()
    page.wait_for_function("(s) => location.hash.includes('show=' + s)", arg=server)
    expect(page.locator(".legend .chip.removable")).to_have_text([f"{server}×"])
    assert page.locator(".big-chart .plot").get_attribute("data-lines") == server
    assert ui.painted(".big-chart canvas", first_line) > 0.001  # its line is drawn

    page.reload()
    ui.wait_drawn("metric")
    expect(page.get_by_label(f"Show {server}'s line")).to_be_checked()
    assert page.locator(".big-chart .plot").get_attribute("data-lines") == server

    page.locator(".legend .chip.removable").click()  # × hides it again
    expect(page.locator(".legend .chip.removable")).to_have_count(0)
    assert "show=" not in ui.hash()


def test_fleet_band_equals_the_fleet_api(fleet, page, ui) -> None:
    """The band is one /fleet request; what is drawn is exactly its answer."""
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    ui.open(fleet, "/metric/cpu.user?live=0", "metric")
    src = page.locator(".big-chart .plot").get_attribute("data-src")
    assert "/api/v1/metrics/cpu.user/fleet?" in src
    answer = httpx.get(src, timeout=10).json()
    assert answer["servers"] == len(fleet.get("/api/v1/servers")["servers"])
    drawn = page.evaluate(CHART_DATA_JS)
    assert drawn[:4] == [answer["timestamps"], answer["min"], answer["max"], answer["avg"]]
    held = page.evaluate("() => window.__minutely.view.data")
    assert held == answer

    fleets = requests_to(requested, "fleet")
    assert len(fleets) == 1
    assert fleets[0]["fields"] == ["min,max,avg,count"]
    assert requests_to(requested, "series") == []  # no server's series without a line to draw


def test_lines_fetch_only_the_servers_shown(fleet, page, ui) -> None:
    servers = sorted(fleet.get("/api/v1/servers")["servers"])
    shown = [servers[0], servers[3]]
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    ui.open(fleet, f"/metric/load.1m?live=0&show={','.join(shown)}", "metric")
    assert page.locator(".big-chart .plot").get_attribute("data-lines") == ",".join(shown)
    (query,) = requests_to(requested, "series")
    assert sorted(query["server"]) == sorted(shown) and query["fields"] == ["avg"]

    # each line is that server's avg from Q2 over the band's buckets
    held = page.evaluate("() => window.__minutely.view.data")
    params: dict[str, Any] = {k: held[k] for k in ("start", "end", "step")}
    full = fleet.get("/api/v1/metrics/load.1m/series", **params)
    by_server = {s["server"]: s for s in full["series"]}
    drawn = page.evaluate(CHART_DATA_JS)
    assert drawn[0] == full["timestamps"]
    assert drawn[4:] == [by_server[s]["avg"] for s in shown]

    # ticking one more fetches that server alone, over the same buckets
    requested.clear()
    page.get_by_label(f"Show {servers[5]}'s line").check()
    expect(page.locator(".legend .chip.removable")).to_have_count(3)
    (query,) = requests_to(requested, "series")
    assert query["server"] == [servers[5]] and query["fields"] == ["avg"]
    assert (query["start"], query["end"]) == ([str(held["start"])], [str(held["end"])])
    assert page.evaluate(CHART_DATA_JS)[6] == by_server[servers[5]]["avg"]
    assert requests_to(requested, "fleet") == []  # the band is not fetched again


def test_live_refresh_merges_the_band_and_the_lines(start_server, page, ui) -> None:
    server = start_server("metric-live")
    minute = int(time.time()) // 60 * 60
    hosts = ["web-01", "web-02", "web-03"]
    for i, host in enumerate(hosts):
        server.post_points(minutes(host, "cpu.user", 14, minute, 10.0 * i))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    ui.open(server, "/metric/cpu.user?range=15m&refresh=1&show=web-02", "metric")

    point = {"server": "web-02", "metric": "cpu.user", "ts": time.time(), "value": 97.5}
    server.post_points([point])
    page.wait_for_function("() => window.__minutely.view.data.max.includes(97.5)")
    held = page.evaluate("() => window.__minutely.view.data")
    params: dict[str, Any] = {k: held[k] for k in ("start", "end", "step")}
    full = server.get("/api/v1/metrics/cpu.user/fleet", **params, fields="min,max,avg,count")
    assert {k: held[k] for k in ("timestamps", "min", "max", "avg", "count")} == {
        k: full[k] for k in ("timestamps", "min", "max", "avg", "count")
    }
    lines = page.evaluate("() => window.__minutely.view.lines")
    q2 = server.get("/api/v1/metrics/cpu.user/series", **params, server="web-02", fields="avg")
    assert lines["timestamps"] == q2["timestamps"] and lines["series"] == q2["series"]
    assert page.evaluate(CHART_DATA_JS)[4] == q2["series"][0]["avg"]

    first, *later = requests_to(requested, "fleet")
    assert first["start"] == ["-15m"] and later, "no live refresh happened"
    for query in later + requests_to(requested, "series")[1:]:  # only the recent buckets
        assert time.time() - int(query["start"][0]) < 5 * 60
        assert query["end"] == ["now"] and query["step"] == first["step"]
    for query in requests_to(requested, "series"):
        assert query["server"] == ["web-02"]


def test_server_link_opens_the_server_view(fleet, page, ui) -> None:
    ui.open(fleet, "/metric/cpu.user", "metric")
    first = page.locator("table.summary tbody tr").first
    name = first.get_attribute("data-key")
    first.get_by_role("link").click()
    ui.wait_drawn("server")
    expect(page.locator("h1")).to_have_text(name)
    expect(page.get_by_placeholder("Filter metrics…")).to_have_value("cpu.user")


def test_unknown_metric_says_so(fleet, page, ui) -> None:
    ui.open(fleet, "/metric/no.such.metric")
    expect(page.locator(".notice.error")).to_contain_text("Unknown metric “no.such.metric”")
