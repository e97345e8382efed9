"""A counter is drawn as its rate per second, in its unit per second, never as its running
total ("1015 TiB"); a gauge beside it is drawn as before."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TIB = 2**40
MIB = 2**20


def test_a_counter_shows_its_rate_per_second(start_server, page, ui) -> None:
    server = start_server("counters")
    declared = httpx.post(
        f"{server.url}/api/v1/kinds", json={"counter": ["disk.sda.read_bytes"]}, timeout=10
    )
    assert declared.status_code == 200, declared.text
    now = int(time.time())
    stamps = range(now - 20 * 60, now, 10)
    points = [  # 1015 TiB read so far, 1 MiB more every second
        {
            "server": "db-01",
            "metric": "disk.sda.read_bytes",
            "ts": ts,
            "value": 1015 * TIB + (ts - now) * MIB,
        }
        for ts in stamps
    ] + [{"server": "db-01", "metric": "cpu.user", "ts": ts, "value": 42.0} for ts in stamps]
    server.post_points(points)
    server.wait_folded(len(points))

    ui.open(server, "/server/db-01", "server")
    card = page.locator("[data-metric='disk.sda.read_bytes']")
    expect(card.locator(".unit")).to_have_text("B/s")
    expect(card.locator(".last")).to_have_text("1 MiB/s")
    assert "TiB" not in card.inner_text()
    expect(page.locator("[data-metric='cpu.user'] .last")).to_have_text("42%")

    held = page.evaluate("() => window.__minutely.view.data")
    (series,) = [s for s in held["series"] if s["metric"] == "disk.sda.read_bytes"]
    assert series["kind"] == "counter"
    # the minute of the series' first sample holds its baseline (no increase): left out
    counts = series["count"]
    first = next(i for i, c in enumerate(counts) if c)
    full = [
        r for r, c in zip(series["rate"][first + 1 :], counts[first + 1 :], strict=True) if c == 6
    ]
    assert full and all(r == MIB for r in full)  # every whole minute: 60 MiB over 60 s

    ui.open(server, "/metric/disk.sda.read_bytes", "metric")
    expect(page.locator("h1")).to_have_text("disk.sda.read_bytesB/s")
