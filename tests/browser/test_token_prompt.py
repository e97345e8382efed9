"""The dashboard against a server with tokens: it asks for one when the API answers 401,
sends it as Bearer, keeps it for the browser session only and forgets it on request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from minutely import auth

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=window.__owned=1>"


def test_the_dashboard_asks_for_a_token_keeps_it_and_forgets_it(
    start_server: Any, browser: Any, page: Any, ui: Any
) -> None:
    server = start_server("tokens")
    now = time.time()
    server.post_points(
        [
            {"server": "web-01", "metric": "cpu.user", "ts": now - 60 * i, "value": 40.0 + i}
            for i in range(5)
        ]
    )
    tokens = auth.tokens_path(Path(server.log).parent)
    reader = auth.add_token(tokens, "dashboard", auth.Scope.READ)
    writer = auth.add_token(tokens, "fleet", auth.Scope.WRITE)
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/api/v1/servers").status_code != 401:
        assert time.monotonic() < deadline, "the server did not take the tokens"
        time.sleep(0.1)

    sent: list[str | None] = []
    page.on(
        "request",
        lambda r: sent.append(r.headers.get("authorization")) if "/api/v1/" in r.url else None,
    )
    page.goto(f"{server.url}/#/fleet")
    dialog = page.locator("dialog.token-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".token-reason")).to_contain_text("no token")
    assert page.locator("dialog.token-dialog").count() == 1  # one prompt for every refusal

    # a token the server does not know: asked again, saying so (the reason shown as text)
    dialog.locator("input").fill(HOSTILE)
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator(".token-reason")).to_contain_text("That token was refused")
    assert page.evaluate("() => window.__owned") is None

    # a write token is known but may not read: the view says why, and it can be forgotten
    dialog.locator("input").fill(writer)
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("main .notice.error").first).to_contain_text("needs scope read")
    forget = page.locator("#forget-token")
    expect(forget).to_be_visible()
    forget.click()
    expect(page.locator("dialog.token-dialog")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('minutely.token')") is None

    # the read token: the fleet draws, every API call carries it as Bearer
    page.locator("dialog.token-dialog input").fill(reader)
    page.locator("dialog.token-dialog button[type=submit]").click()
    ui.wait_drawn("fleet")
    assert f"Bearer {reader}" in sent
    assert page.evaluate("() => sessionStorage.getItem('minutely.token')") == reader

    # kept for the session: a reload asks nothing
    sent.clear()
    page.reload()
    ui.wait_drawn("fleet")
    assert page.locator("dialog.token-dialog").count() == 0
    assert sent and all(h == f"Bearer {reader}" for h in sent)
    expect(page.locator("#forget-token")).to_be_visible()

    # a new browser session has none: asked again
    other = browser.new_context()
    try:
        fresh = other.new_page()
        fresh.goto(f"{server.url}/#/fleet")
        expect(fresh.locator("dialog.token-dialog")).to_be_visible()
        expect(fresh.locator("#forget-token")).to_be_hidden()
    finally:
        other.close()

    # revoked while the page is open: the next call asks again
    auth.revoke_token(tokens, "dashboard")
    time.sleep(auth.REFRESH_EVERY + 0.2)
    page.reload()
    expect(page.locator("dialog.token-dialog .token-reason")).to_contain_text(
        "That token was refused"
    )
