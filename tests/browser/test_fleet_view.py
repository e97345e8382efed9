"""Fleet view: names searchable, the heatmap drawn from only the field it paints, avg/max
switchable, top-N equal to Q4."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def top_n(src: str, agg: str, n: int) -> list[tuple[str, Any]]:
    """Q4 at ``src`` asked again, its top ``n`` by ``agg``. An avg may differ from the
    page's in the last bit: live minutes handed on between the two asks are summed in
    another order, which float64 rounding allows."""
    rows = httpx.get(src, timeout=10).json()["rows"]
    rows.sort(key=lambda r: -r[agg])
    return [(r["server"], pytest.approx(r[agg], rel=1e-12)) for r in rows[:n]]


def shown_top(page: Any) -> tuple[str, list[tuple[str, float]]]:
    top = page.locator("ol.top-list")
    items = top.locator("li").evaluate_all(
        "(lis) => lis.map((li) => [li.dataset.server, Number(li.dataset.value)])"
    )
    return top.get_attribute("data-src"), [(s, v) for s, v in items]


def test_heatmap_draws_every_server(fleet, page, ui, shoot) -> None:
    servers = fleet.get("/api/v1/servers")["servers"]
    metrics = fleet.get("/api/v1/metrics")["metrics"]
    ui.open(fleet, "/fleet", "fleet")

    assert "cpu.user" in metrics
    expect(page.locator(".fleet-main h1")).to_have_text("cpu.user%")  # the default metric
    assert (
        page.locator(".fleet-main .subtitle")
        .inner_text()
        .startswith(f"{len(servers)} of {len(servers)} servers reporting · avg per 1 min")
    )
    assert ui.painted(".heatmap-canvas") > 0.3
    assert page.locator(".metric-list li").count() == len(metrics)
    assert page.locator(".server-list li").count() == len(servers)
    # the top-N list is Q4 for the same range, sorted by avg
    src, shown = shown_top(page)
    assert shown == top_n(src, "avg", min(10, len(servers)))
    shoot("fleet-view")


def test_switch_to_max_and_pick_a_metric(fleet, page, ui) -> None:
    ui.open(fleet, "/fleet", "fleet")
    draws = ui.draws("fleet")
    page.get_by_role("button", name="max", exact=True).click()
    ui.wait_drawn("fleet", draws)
    assert "agg=max" in ui.hash()
    assert "max per 1 min" in page.locator(".fleet-main .subtitle").inner_text()
    src, shown = shown_top(page)
    assert shown == top_n(src, "max", 8)

    draws = ui.draws("fleet")
    page.locator(".metric-list a", has_text="load.1m").first.click()
    ui.wait_drawn("fleet", draws)
    assert "metric=load.1m" in ui.hash()
    assert page.locator(".fleet-main h1").inner_text().startswith("load.1m")
    assert page.locator(".metric-list li.active").inner_text().startswith("load.1m")
    src, shown = shown_top(page)
    assert "/metrics/load.1m/summary" in src
    assert shown == top_n(src, "max", 8)

    page.reload()  # the URL brings back the same metric and aggregate
    ui.wait_drawn("fleet")
    assert page.locator(".fleet-main h1").inner_text().startswith("load.1m")
    assert page.locator(".seg button.active").inner_text() == "max"


def series_queries(urls: list[str]) -> list[dict[str, list[str]]]:
    return [parse_qs(urlparse(u).query) for u in urls if urlparse(u).path.endswith("/series")]


def test_heatmap_asks_only_for_the_field_it_paints(fleet, page, ui) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    ui.open(fleet, "/fleet?live=0", "fleet")
    (query,) = series_queries(requested)
    assert query["fields"] == ["avg,count"]
    src = page.locator(".heatmap").get_attribute("data-src")
    answer = httpx.get(src, timeout=10).json()
    held = page.evaluate("() => window.__minutely.view.data")
    assert held == answer
    assert all(set(s) == {"server", "avg", "count"} for s in held["series"])

    requested.clear()
    draws = ui.draws("fleet")
    page.get_by_role("button", name="max", exact=True).click()
    ui.wait_drawn("fleet", draws)
    (query,) = series_queries(requested)
    assert query["fields"] == ["max,count"]
    src = page.locator(".heatmap").get_attribute("data-src")
    assert page.evaluate("() => window.__minutely.view.data") == httpx.get(src, timeout=10).json()


def test_tooltip_fetches_the_hovered_server_alone(fleet, page, ui) -> None:
    servers = sorted(fleet.get("/api/v1/servers")["servers"])
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    ui.open(fleet, "/fleet?live=0", "fleet")
    requested.clear()
    canvas = page.locator(".heatmap-canvas")
    box = canvas.bounding_box()
    row_height = int(canvas.get_attribute("data-row-height"))
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + 4 * row_height + row_height / 2)
    tooltip = page.locator("#tooltip")
    expect(tooltip).to_contain_text(servers[4])
    expect(tooltip).not_to_contain_text("…")  # min/max filled in once that server's series is in
    (query,) = series_queries(requested)
    assert query["server"] == [servers[4]] and "fields" not in query
    held = page.evaluate("() => window.__minutely.view.data")
    params: dict[str, Any] = {k: held[k] for k in ("start", "end", "step")}
    expected = fleet.get("/api/v1/metrics/cpu.user/series", **params, server=servers[4])
    detail = page.evaluate("(s) => window.__minutely.view.details.get(s)", servers[4])
    for field in ("min", "max", "avg", "count"):
        assert detail[field] == expected["series"][0][field]


def test_search_filters_both_lists(fleet, page, ui) -> None:
    ui.open(fleet, "/fleet", "fleet")
    page.get_by_placeholder("Search names…").fill("cpu")
    page.wait_for_function("() => location.hash.includes('q=cpu')")
    metrics = page.locator(".metric-list li a:not(.go)").all_inner_texts()
    assert metrics and all("cpu" in m for m in metrics)
    assert page.locator(".server-list li").count() == 0
    servers = fleet.get("/api/v1/servers")["servers"]
    page.get_by_placeholder("Search names…").fill(servers[0])
    expect(page.locator(".server-list li")).to_have_text([servers[0]])


def test_click_a_heatmap_row_opens_that_server(fleet, page, ui) -> None:
    servers = sorted(fleet.get("/api/v1/servers")["servers"])
    ui.open(fleet, "/fleet", "fleet")
    canvas = page.locator(".heatmap-canvas")
    box = canvas.bounding_box()
    row_height = int(canvas.get_attribute("data-row-height"))
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 2 * row_height + row_height / 2)
    tooltip = page.locator("#tooltip")
    tooltip.wait_for(state="visible")
    assert tooltip.inner_text().startswith(servers[2])
    for label in ("max", "avg", "min", "points"):
        assert label in tooltip.inner_text()
    page.mouse.down()
    page.mouse.up()
    ui.wait_drawn("server")
    assert page.locator("h1").inner_text() == servers[2]
    assert ui.hash().startswith(f"#/server/{servers[2]}")
