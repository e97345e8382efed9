"""``promtool`` (Prometheus 2.42's own client) against ``minutely serve``: it must parse every
answer, and the answers must equal minutely's own API on the same data.

promtool comes from Debian's ``prometheus`` package: ``make test`` installs it
(``scripts/ensure_debian_tools.py``); without it these tests fail and say how to get it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow

SERVERS = ("web-1", "web-2", "db-1")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: it comes with Debian's prometheus package "
            "(apt-get install prometheus; `make test` runs scripts/ensure_debian_tools.py)"
        )
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)


def query_json(*args: str) -> Any:
    done = promtool("query", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    """A server with one gauge and one counter per server, a point every 10 s for an hour;
    and a minute boundary 5 minutes back, inside the data."""
    server = start_server(tmp_path_factory.mktemp("promtool"), "--hot-window", "6h")
    now = time.time()
    start = (now // 60) * 60 - 3600
    rows = []
    for i, name in enumerate(SERVERS):
        for k, ts in enumerate(range(int(start), int(now) - 5, 10)):
            rows.append(
                {
                    "server": name,
                    "metric": "cpu.user",
                    "ts": float(ts),
                    "value": float((k * 7 + i * 13) % 100),
                }
            )
            rows.append(
                {
                    "server": name,
                    "metric": "requests_total",
                    "ts": float(ts),
                    "value": float(k * (i + 1)),
                }
            )
    r = httpx.post(
        f"{server.url}/api/v1/points",
        content=orjson.dumps(rows),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["accepted"] == len(rows), r.text
    server.wait_folded(len(rows))
    yield server, int((now // 60) * 60 - 300)
    stop_server(server)


def test_save_and_test(loaded: tuple[Server, int]) -> None:
    server, t = loaded
    answer = query_json("instant", "-o", "json", "--time", str(t), server.url, "1+1")
    assert (
        answer == [t, "2"]
        or answer == {"resultType": "scalar", "result": [t, "2"]}
        or answer["value"] == [t, "2"]
    )


def test_instant_query_equals_the_summary(loaded: tuple[Server, int]) -> None:
    server, t = loaded
    answer = query_json(
        "instant", "-o", "json", "--time", str(t), server.url, "max_over_time(cpu.user[30m])"
    )
    own = httpx.get(
        f"{server.url}/api/v1/metrics/cpu.user/summary", params={"start": t - 1800, "end": t}
    ).json()
    want = {row["server"]: row["max"] for row in own["rows"]}
    got = {s["metric"]["instance"]: float(s["value"][1]) for s in answer}
    assert got == want
    assert all(s["value"][0] == t for s in answer)


def test_range_query_equals_the_series(loaded: tuple[Server, int]) -> None:
    server, t = loaded
    start, end = t - 1800, t
    answer = query_json(
        "range",
        "-o",
        "json",
        f"--start={start}",
        f"--end={end}",
        "--step=1m",
        server.url,
        'avg_over_time(cpu.user{instance=~"web-.*"}[1m])',
    )
    assert sorted(s["metric"]["instance"] for s in answer) == ["web-1", "web-2"]
    for s in answer:
        own = httpx.get(
            f"{server.url}/api/v1/servers/{s['metric']['instance']}/series",
            params={"start": start - 60, "end": end, "step": 60, "metric": "cpu.user"},
        ).json()
        want = own["series"][0]["avg"]
        assert [v[0] for v in s["values"]] == list(range(start, end + 1, 60))
        assert [float(v[1]) for v in s["values"]] == pytest.approx(want, rel=1e-12)


def test_rate_of_a_counter(loaded: tuple[Server, int]) -> None:
    server, t = loaded
    answer = query_json(
        "instant",
        "-o",
        "json",
        "--time",
        str(t),
        server.url,
        "sum by (instance) (rate(requests_total[10m]))",
    )
    got = {s["metric"]["instance"]: float(s["value"][1]) for s in answer}
    # the counter grows by (i + 1) every 10 s: (i + 1) / 10 per second
    assert got == pytest.approx({name: (i + 1) / 10 for i, name in enumerate(SERVERS)}, rel=1e-12)


def test_labels_and_series(loaded: tuple[Server, int]) -> None:
    server, _ = loaded
    names = promtool("query", "labels", server.url, "__name__")
    assert names.returncode == 0, names.stderr
    assert names.stdout.split() == ["cpu.user", "requests_total"]
    instances = promtool("query", "labels", server.url, "instance")
    assert instances.stdout.split() == sorted(SERVERS)
    series = promtool("query", "series", "--match=requests_total", server.url)
    assert series.returncode == 0, series.stderr
    assert len(series.stdout.splitlines()) == 3
    assert 'instance="db-1"' in series.stdout


def test_an_unsupported_query_is_refused_with_its_reason(loaded: tuple[Server, int]) -> None:
    server, _ = loaded
    done = promtool("query", "instant", server.url, "histogram_quantile(0.9, x)")
    assert done.returncode != 0
    assert "not supported by minutely" in done.stderr + done.stdout
