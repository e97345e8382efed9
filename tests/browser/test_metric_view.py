"""Metric view: the fleet band drawn, per-server lines on demand, the table equal to Q4."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_fleet_band_and_server_table(fleet, page, ui, shoot) -> None:
    servers = fleet.get("/api/v1/servers")["servers"]
    ui.open(fleet, "/metric/cpu.user", "metric")
    expect(page.locator("h1")).to_have_text("cpu.user%")
    expect(page.locator(".view-head .subtitle")).to_have_text(
        f"{len(servers)} servers reporting · 1 min buckets · last hour")
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
