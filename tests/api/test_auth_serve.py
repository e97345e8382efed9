"""Tokens, the Host check and TLS on a real ``minutely serve`` process, driven by the real
``minutely token`` commands."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from minutely.testing.natsserver import free_port
from minutely.testing.processes import ROOT, clean_env, launch, stop_process, wait_healthy

pytestmark = pytest.mark.slow


def minutely(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minutely", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
    )


def add_token(data_dir: Path, name: str, scope: str) -> str:
    done = minutely("token", "add", name, "--scope", scope, "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = launch("serve", port, tmp_path, "--store", "none")
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(url, proc), "minutely serve did not start"
        yield url
    finally:
        stop_process(proc)


def test_token_commands_print_the_secret_once_and_list_and_revoke(tmp_path: Path) -> None:
    secret = add_token(tmp_path, "grafana", "read")
    assert secret.startswith("mt_") and " " not in secret
    listed = minutely("token", "list", "--data-dir", str(tmp_path))
    assert listed.returncode == 0
    assert "grafana" in listed.stdout and "read" in listed.stdout
    assert secret not in listed.stdout
    again = minutely("token", "add", "grafana", "--scope", "read", "--data-dir", str(tmp_path))
    assert again.returncode == 2 and "exists" in again.stderr
    bad = minutely("token", "add", "x", "--scope", "root", "--data-dir", str(tmp_path))
    assert bad.returncode == 2 and "invalid choice: 'root'" in bad.stderr
    done = minutely("token", "revoke", "grafana", "--data-dir", str(tmp_path))
    assert done.returncode == 0
    assert "auth is off" in minutely("token", "list", "--data-dir", str(tmp_path)).stdout


def test_a_running_server_takes_tokens_added_and_revoked(tmp_path: Path, server: str) -> None:
    assert httpx.get(f"{server}/api/v1/servers").status_code == 200
    writer = add_token(tmp_path, "fleet", "write")
    reader = add_token(tmp_path, "grafana", "read")
    deadline = time.monotonic() + 5
    while httpx.get(f"{server}/api/v1/servers").status_code == 200:
        assert time.monotonic() < deadline, "the server did not notice the new tokens"
        time.sleep(0.1)
    assert httpx.get(f"{server}/api/v1/servers").status_code == 401
    point = [{"server": "web-1", "metric": "m", "ts": time.time(), "value": 2.5}]
    r = httpx.post(
        f"{server}/api/v1/points", json=point, headers={"authorization": f"Token {writer}"}
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1
    # Prometheus and Grafana send basic auth with the token as password
    r = httpx.get(f"{server}/api/v1/servers", auth=("grafana", reader))
    assert r.status_code == 200
    assert minutely("token", "revoke", "grafana", "--data-dir", str(tmp_path)).returncode == 0
    deadline = time.monotonic() + 5
    while httpx.get(f"{server}/api/v1/servers", auth=("grafana", reader)).status_code == 200:
        assert time.monotonic() < deadline, "the server did not notice the revocation"
        time.sleep(0.1)
    assert httpx.get(f"{server}/healthz").status_code == 200
    # the query command sends MINUTELY_TOKEN's token
    query = [sys.executable, "-m", "minutely", "query", "server", "web-1", "--url", server]
    done = subprocess.run(query, capture_output=True, text=True, env=clean_env(), cwd=ROOT)
    assert done.returncode == 1 and "401" in done.stderr
    admin = add_token(tmp_path, "root", "admin")
    time.sleep(1.2)
    env = clean_env({"MINUTELY_TOKEN": admin})
    done = subprocess.run(query, capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_a_host_not_allowed_is_refused_by_the_server(server: str) -> None:
    r = httpx.get(f"{server}/api/v1/servers", headers={"host": "evil.example.com"})
    assert r.status_code == 421
    assert "'evil.example.com'" in r.json()["error"]
    assert httpx.get(f"{server}/api/v1/servers", headers={"host": "localhost"}).status_code == 200


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    done = minutely(
        "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path)
    )
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 with no token" in done.stderr
    assert "--insecure" in done.stderr


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("no openssl here: the TLS test makes its certificate with it")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key),
            "-out", str(cert), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    port = free_port()
    proc = launch(
        "serve", port, tmp_path / "data", "--store", "none",
        "--tls-cert", str(cert), "--tls-key", str(key),
    )  # fmt: skip
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "minutely serve --tls-cert exited"
            try:
                r = httpx.get(f"{url}/api/v1/servers", verify=trust, timeout=2)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 200 and r.json() == {"servers": []}
        r = httpx.get(f"https://localhost:{port}/healthz", verify=trust)
        assert r.status_code == 200
        with pytest.raises(httpx.ConnectError):  # not trusted without the certificate
            httpx.get(f"{url}/healthz", timeout=2)
        with pytest.raises(httpx.HTTPError):  # and no plain HTTP on the port
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        stop_process(proc)


def test_a_bad_key_stops_serve_with_its_reason(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path)
    (tmp_path / "other.pem").write_text("not a key")
    done = minutely(
        "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
        "--tls-cert", str(cert), "--tls-key", str(tmp_path / "other.pem"),
    )  # fmt: skip
    assert done.returncode == 2
    assert "tls_cert/tls_key" in done.stderr and "cannot be used" in done.stderr
    done = minutely("serve", "--port", str(free_port()), "--tls-cert", str(cert))
    assert done.returncode == 2 and "give both" in done.stderr
