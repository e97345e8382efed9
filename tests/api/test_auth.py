"""The door of the app (``api/auth.py``): the Host check, and tokens with scopes on every
route, through Starlette's TestClient over a real service and a real tokens file."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from minutely import auth
from minutely.api import create_app
from minutely.api.auth import Access, Guard, exposure_refusal, host_name, required_scope
from minutely.auth import Scope, TokenError, TokenFile
from minutely.config import Settings
from minutely.service import Service
from minutely.testing.access import TESTSERVER
from minutely.testing.clock import FakeClock
from tests.api.helpers import ARROW, NOW, arrow_body, make_points, truth
from tests.ingest.protocol_helpers import drain

#: one valid body per write route, with the content type it is sent as
INFLUX = b"cpu,host=web-1 user=1.5 1764010800000000000\n"
WRITES: list[tuple[str, bytes, str]] = [
    ("/write", INFLUX, "text/plain"),
    ("/api/v2/write", INFLUX, "text/plain"),
    (
        "/api/v1/points",
        b'[{"server":"web-1","metric":"m","ts":1764010800,"value":1}]',
        "application/json",
    ),
]


class Door:
    """A service behind an app with a tokens file, and a tick of the file's refresh clock."""

    def __init__(self, tmp_path: Path, access_hosts: frozenset[str] | None) -> None:
        self.path = auth.tokens_path(tmp_path)
        self.tick = FakeClock(0.0)
        self.tokens = TokenFile(self.path, clock=self.tick).open()
        settings = Settings(hot_window=6 * 3600, store="none")
        self.service = Service(settings, clock=FakeClock(NOW)).open()
        self.app = create_app(
            self.service, manage_lifecycle=False, access=Access(access_hosts, self.tokens)
        )

    def add(self, name: str, scope: str) -> str:
        secret = auth.add_token(self.path, name, Scope(scope))
        self.tick.advance(auth.REFRESH_EVERY)
        return secret


@pytest.fixture
def door(tmp_path: Path) -> Door:
    return Door(tmp_path, TESTSERVER.allowed_hosts)


@pytest.fixture
def client(door: Door) -> Iterator[TestClient]:
    with TestClient(door.app) as c:
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


# -- Host ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example.com", "rebind.attacker.net:8080", "10.0.0.5"])
def test_a_host_not_allowed_is_refused_naming_it_and_the_setting(
    service: Service, host: str
) -> None:
    with TestClient(create_app(service, manage_lifecycle=False)) as c:
        r = c.get("/api/v1/servers", headers={"host": host})
        assert r.status_code == 421
        error = r.json()["error"]
        assert repr(host_name(host)) in error
        assert "allowed_hosts" in error and "--allowed-hosts" in error
        # the default lets in the loopback names only, with or without a port
        for name in ("localhost", "127.0.0.1:8080", "[::1]:9", "LOCALHOST."):
            assert c.get("/api/v1/servers", headers={"host": name}).status_code == 200, name
        # Starlette's own name is not one of them
        assert c.get("/api/v1/servers").status_code == 421


def test_a_star_allows_any_host(service: Service) -> None:
    with TestClient(create_app(service, manage_lifecycle=False, access=Access(None))) as c:
        assert c.get("/api/v1/servers", headers={"host": "evil.example.com"}).status_code == 200


def test_a_request_without_host_is_refused(service: Service) -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a request without Host reached the app")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": "/api/v1/servers", "headers": [], "method": "GET"}
    asyncio.run(Guard(app, Access())(scope, receive, send))
    assert sent[0]["status"] == 421
    assert b"no Host header" in sent[1]["body"]


def test_host_names_are_compared_without_port_case_or_trailing_dot() -> None:
    assert host_name("Example.COM.:443") == "example.com"
    assert host_name("[::1]:8080") == "[::1]"
    assert host_name("::1") == "[::1]"
    assert Access.hosts(["metrics.example.com", " "]) == frozenset(
        {"localhost", "127.0.0.1", "[::1]", "metrics.example.com"}
    )


def test_access_from_settings_allows_the_listening_and_advertised_names(tmp_path: Path) -> None:
    from minutely.api.auth import access_for

    s = Settings(data_dir=str(tmp_path), host="10.1.2.3", advertise="https://node-a.dc:8080")
    assert access_for(s).allowed_hosts == Access.hosts(["10.1.2.3", "node-a.dc"])
    wild = access_for(s.replace(host="0.0.0.0", advertise="", allowed_hosts="m.example.com"))
    assert wild.allowed_hosts == Access.hosts(["m.example.com"])
    assert access_for(s.replace(allowed_hosts="a.example, *")).allowed_hosts is None


# -- tokens -------------------------------------------------------------------------------


def test_with_no_token_everything_is_open(client: TestClient) -> None:
    assert client.get("/api/v1/servers").status_code == 200
    path, body, kind = WRITES[2]
    assert client.post(path, content=body, headers={"content-type": kind}).status_code == 200


def test_without_a_token_the_api_answers_401_with_a_challenge(
    door: Door, client: TestClient
) -> None:
    door.add("reader", "read")
    for path in ("/api/v1/servers", "/api/v1/status", "/api/v1/query?query=up", "/metrics"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer realm="minutely"'
        assert "Authorization: Bearer" in r.json()["error"]
    r = client.get("/api/v1/servers", headers=bearer("mt_not-a-token"))
    assert r.status_code == 401
    assert "not one of this server's" in r.json()["error"]


def test_health_ping_and_the_dashboard_stay_open(door: Door, client: TestClient) -> None:
    door.add("reader", "read")
    assert client.get("/healthz").status_code == 200
    assert client.get("/ping").status_code == 204
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get("/js/api.js").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        lambda s: f"Bearer {s}",
        lambda s: f"bearer {s}",
        lambda s: f"Token {s}",
        lambda s: "Basic " + base64.b64encode(f"grafana:{s}".encode()).decode(),
        lambda s: "Basic " + base64.b64encode(f":{s}".encode()).decode(),
    ],
    ids=["bearer", "bearer-lower", "token", "basic", "basic-no-user"],
)
def test_a_token_is_taken_in_each_form(door: Door, client: TestClient, header: Any) -> None:
    secret = door.add("reader", "read")
    assert (
        client.get("/api/v1/servers", headers={"authorization": header(secret)}).status_code == 200
    )


def test_basic_auth_with_the_token_as_user_is_not_taken(door: Door, client: TestClient) -> None:
    secret = door.add("reader", "read")
    basic = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
    assert client.get("/api/v1/servers", headers={"authorization": basic}).status_code == 401
    assert client.get("/api/v1/servers", headers={"authorization": "Basic %%%"}).status_code == 401


@pytest.mark.parametrize(("path", "body", "kind"), WRITES)
def test_every_write_route_needs_write(
    door: Door, client: TestClient, path: str, body: bytes, kind: str
) -> None:
    reader = door.add("reader", "read")
    writer = door.add("writer", "write")
    admin = door.add("root", "admin")
    headers = {"content-type": kind}
    assert client.post(path, content=body, headers=headers).status_code == 401
    refused = client.post(path, content=body, headers=headers | bearer(reader))
    assert refused.status_code == 403
    assert refused.json()["error"] == f"token 'reader' has scope read; {path} needs scope write"
    for secret in (writer, admin):
        r = client.post(path, content=body, headers=headers | bearer(secret))
        assert r.status_code in (200, 204), r.text


def test_remote_write_and_otlp_need_write(door: Door, client: TestClient) -> None:
    reader = door.add("reader", "read")
    for path in ("/api/v1/write", "/v1/metrics"):
        assert client.post(path, content=b"x").status_code == 401
        assert client.post(path, content=b"x", headers=bearer(reader)).status_code == 403


def test_reads_need_read_and_a_write_token_is_refused(door: Door, client: TestClient) -> None:
    writer = door.add("writer", "write")
    reader = door.add("reader", "read")
    for path in ("/api/v1/servers", "/api/v1/metrics", "/api/v1/status", "/api/v1/labels"):
        r = client.get(path, headers=bearer(writer))
        assert r.status_code == 403, path
        assert "needs scope read" in r.json()["error"]
        assert client.get(path, headers=bearer(reader)).status_code == 200, path


def test_admin_routes_need_admin(door: Door, client: TestClient) -> None:
    reader = door.add("reader", "read")
    admin = door.add("root", "admin")
    r = client.get("/api/v1/dead-letters", headers=bearer(reader))
    assert r.status_code == 403
    assert "needs scope admin" in r.json()["error"]
    assert client.get("/api/v1/dead-letters", headers=bearer(admin)).status_code == 200
    assert client.get("/api/v1/servers", headers=bearer(admin)).status_code == 200


def test_the_scope_of_each_path() -> None:
    assert required_scope("/api/v1/local/servers/a/series") is Scope.ADMIN
    assert required_scope("/api/v1/dead-letters/replay") is Scope.ADMIN
    assert required_scope("/api/v1/ingest/protocols") is Scope.READ
    assert required_scope("/api/v1/cluster") is Scope.READ
    # a route added later, or a path spelled to dodge a prefix, is closed
    assert required_scope("/api/v9/anything") is Scope.READ
    assert required_scope("//api/v1/points") is Scope.READ
    assert required_scope("/js/../api/v1/servers") is None  # static files only: 404 there
    assert Scope.ADMIN.grants(Scope.WRITE) and not Scope.WRITE.grants(Scope.READ)


def test_what_is_written_with_a_write_token_reads_back_exactly(
    door: Door, client: TestClient
) -> None:
    writer = door.add("writer", "write")
    reader = door.add("reader", "read")
    pts = make_points(seed=3, n=5_000)
    from minutely.model import PointBatch

    batch = PointBatch.from_names(pts["server"], pts["metric"], pts["ts"], pts["value"])
    r = client.post(
        "/api/v1/points",
        content=arrow_body(batch),
        headers={"content-type": ARROW} | bearer(writer),
    )
    assert r.status_code == 200 and r.json()["accepted"] == 5_000
    drain(door.service)
    start, end = int(NOW - 6 * 3600), int(NOW) + 60
    r = client.get(
        "/api/v1/servers/web-001/summary",
        params={"start": start, "end": end},
        headers=bearer(reader),
    )
    assert r.status_code == 200
    for row in r.json()["rows"]:
        sel = (pts["server"] == "web-001") & (pts["metric"] == row["metric"])
        lo, hi, avg, n = truth(pts, sel)
        assert (row["min"], row["max"], row["count"]) == (lo, hi, n)
        assert row["avg"] == pytest.approx(avg, rel=1e-12)


# -- the tokens file ----------------------------------------------------------------------


def test_tokens_added_and_revoked_are_seen_within_a_second(door: Door, client: TestClient) -> None:
    secret = auth.add_token(door.path, "reader", Scope.READ)
    # within the second the file is not looked at again: still open
    assert client.get("/api/v1/servers").status_code == 200
    door.tick.advance(auth.REFRESH_EVERY)
    assert client.get("/api/v1/servers").status_code == 401
    assert client.get("/api/v1/servers", headers=bearer(secret)).status_code == 200
    other = door.add("other", "read")
    auth.revoke_token(door.path, "reader")
    door.tick.advance(auth.REFRESH_EVERY)
    assert client.get("/api/v1/servers", headers=bearer(secret)).status_code == 401
    assert client.get("/api/v1/servers", headers=bearer(other)).status_code == 200
    auth.revoke_token(door.path, "other")
    door.tick.advance(auth.REFRESH_EVERY)
    assert client.get("/api/v1/servers").status_code == 200  # no token left: open again


def test_a_file_broken_while_serving_closes_the_door(door: Door, client: TestClient) -> None:
    secret = door.add("reader", "read")
    door.path.write_text("{not json")
    door.tick.advance(auth.REFRESH_EVERY)
    r = client.get("/api/v1/servers", headers=bearer(secret))
    assert r.status_code == 401
    assert "malformed" in r.json()["error"]
    with pytest.raises(TokenError, match="malformed"):
        TokenFile(door.path).open()


def test_only_a_hash_is_stored_in_a_private_file(tmp_path: Path) -> None:
    path = auth.tokens_path(tmp_path)
    secret = auth.add_token(path, "fleet", Scope.WRITE)
    assert secret.startswith(auth.SECRET_PREFIX) and len(secret) >= 40
    text = path.read_text()
    assert secret not in text and secret[len(auth.SECRET_PREFIX) :] not in text
    assert json.loads(text)["tokens"][0]["sha256"] == auth.digest(secret).hex()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tokens.")] == []
    again = auth.add_token(path, "fleet2", Scope.WRITE)
    assert again != secret
    tokens = auth.read_tokens(path)
    assert auth.match(tokens, again) == tokens[1]
    assert auth.match(tokens, secret + "x") is None


# -- serve's refusals ---------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    s = Settings(data_dir=str(tmp_path), host="0.0.0.0")
    closed = Access(None, TokenFile(auth.tokens_path(tmp_path)).open())
    why = exposure_refusal(s, closed)
    assert why is not None and "--insecure" in why and "minutely token add" in why
    assert exposure_refusal(s.replace(insecure=True), closed) is None
    assert exposure_refusal(s.replace(host="127.0.0.1"), closed) is None
    assert exposure_refusal(s.replace(host="::1"), closed) is None
    auth.add_token(auth.tokens_path(tmp_path), "root", Scope.ADMIN)
    tokened = Access(None, TokenFile(auth.tokens_path(tmp_path)).open())
    assert exposure_refusal(s, tokened) is None
    # Graphite has no auth: not on a public address, tokens or not
    why = exposure_refusal(s.replace(graphite_port=2003), tokened)
    assert why is not None and "Graphite" in why and "--insecure" in why
    assert exposure_refusal(s.replace(graphite_port=2003, insecure=True), tokened) is None
    assert exposure_refusal(s.replace(graphite_port=2003, host="127.0.0.1"), tokened) is None
