"""No request blocks the others (issue #17), against a real ``minutely serve``: ``/healthz``
answers within 100 ms while the biggest query ``max_query_cells`` allows is answered, and a
500 MB JSON body with one bad value is refused without the memory blow-up."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from minutely.model import PointBatch
from minutely.query import MAX_CELLS
from tests.api.helpers import ARROW, arrow_body
from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow

N_METRICS = 2_000
MINUTES = 2_880
#: minutes of data a series gets: all the ring takes once its newest minute is the current one
FILLED = MINUTES - 3


def _peak_rss(server: Server) -> int:
    """The server process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _healthz_while(busy: threading.Thread, url: str) -> list[float]:
    """The latency of /healthz, asked every 20 ms for as long as ``busy`` runs."""
    took: list[float] = []
    with httpx.Client(timeout=30) as client:
        while busy.is_alive():
            began = time.perf_counter()
            assert client.get(f"{url}/healthz").status_code == 200
            took.append(time.perf_counter() - began)
            time.sleep(0.02)
    return took


@pytest.fixture
def full(tmp_path: Path) -> object:
    server = start_server(tmp_path, "--hot-window", "2d", "--store", "none")
    try:
        now = time.time()
        first = (int(now) // 60 - FILLED + 1) * 60  # up to the current minute
        for part in np.array_split(np.arange(N_METRICS), 4):
            n = len(part) * FILLED
            batch = PointBatch(
                np.array(["web-001"], dtype=object),
                np.zeros(n, dtype=np.int32),
                np.array([f"metric.{i:04d}" for i in part], dtype=object),
                np.repeat(np.arange(len(part), dtype=np.int32), FILLED),
                np.tile(first + 60.0 * np.arange(FILLED), len(part)),
                np.tile(np.arange(FILLED, dtype=np.float64), len(part)),
            )
            r = httpx.post(
                f"{server.url}/api/v1/points",
                content=arrow_body(batch),
                headers={"content-type": ARROW},
                timeout=120,
            )
            assert r.status_code == 200 and r.json()["rejected"] == 0, r.text[:500]
        server.wait_folded(N_METRICS * FILLED, timeout=120)
        yield server
    finally:
        stop_server(server)


def test_healthz_answers_within_100ms_while_the_biggest_allowed_query_runs(full: Server) -> None:
    got: dict[str, object] = {}

    def biggest() -> None:
        began = time.perf_counter()
        with httpx.stream("GET", f"{full.url}/api/v1/servers/web-001/series", timeout=300) as r:
            got["status"] = r.status_code
            size, tail = 0, b""
            for chunk in r.iter_bytes():
                size, tail = size + len(chunk), (tail + chunk)[-64:]
        got["bytes"], got["tail"] = size, tail
        got["seconds"] = time.perf_counter() - began

    # a first answer loads the compiled bucket merge (numba) into the process: a one-off
    # that holds the interpreter ~0.25 s, so the answer measured against is the second
    warm = httpx.get(f"{full.url}/api/v1/servers/web-001/series?start=-1h", timeout=60)
    assert warm.status_code == 200
    query = threading.Thread(target=biggest)
    query.start()
    took = _healthz_while(query, full.url)
    query.join()
    assert got["status"] == 200
    assert N_METRICS * MINUTES <= MAX_CELLS  # the biggest answer the default limit allows
    assert isinstance(got["tail"], bytes) and got["tail"].endswith(b"]}")
    assert len(took) >= 20, got  # the query ran long enough to be measured against
    took.sort()
    # within 100 ms, but for the rare probe the machine's scheduler holds up: this box has
    # 2 cores shared by several test runs, where even an idle server sees such outliers
    assert took[int(len(took) * 0.95)] < 0.1, (took[-5:], got["seconds"])
    assert took[len(took) // 2] < 0.05 and took[-1] < 1.0, (took[-5:], got["seconds"])


def test_a_500_mb_json_body_with_one_bad_value_is_refused_without_the_blow_up(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, "--store", "none")
    try:
        t = int(time.time())
        point = b'{"server":"web-001","metric":"cpu","ts":%d,"value":1.5},' % t
        n = (500 << 20) // len(point)
        body = b"[" + point * (n // 2) + point.replace(b"1.5", b'"x"') + point * (n // 2)
        body = body[:-1] + b"]"
        before = _peak_rss(server)
        answer: dict[str, httpx.Response] = {}

        def send() -> None:
            answer["r"] = httpx.post(
                f"{server.url}/api/v1/points",
                content=body,
                headers={"content-type": "application/json"},
                timeout=300,
            )

        sender = threading.Thread(target=send)
        sender.start()
        took = _healthz_while(sender, server.url)
        sender.join()
        r = answer["r"]
        assert r.status_code == 413
        assert "(max_slow_json_bytes)" in r.json()["error"]
        peak = _peak_rss(server)
        # the issue measured 7.1 GB; the body itself is 0.5 GB, read into one buffer (never
        # joined) and copied once more, off the event loop, for pyarrow
        assert peak - before < 3 * len(body), (before, peak)
        print(f"peak RSS {before / 1e9:.2f} -> {peak / 1e9:.2f} GB; /healthz max {max(took):.2f} s")
        # loose: this process builds and sends the body while it probes, so its own thread
        # holds up the probes (bench_health.py sends it from another process); the issue
        # measured 15 s
        assert max(took) < 2.0, sorted(took)[-5:]
        status = httpx.get(f"{server.url}/api/v1/status").json()
        assert status["limits"]["refused"] == {"max_slow_json_bytes": 1}
    finally:
        stop_server(server)


def test_a_name_with_a_percent_reads_back_over_a_real_server(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--store", "none")
    try:
        names = ["100%25", "50%", "a%2Fb", "sp ace/x?y#z"]
        t = time.time() - 30
        body = [{"server": n, "metric": f"m {n}", "ts": t, "value": 1.0} for n in names]
        r = httpx.post(f"{server.url}/api/v1/points", json=body)
        assert r.status_code == 200 and r.json()["accepted"] == len(names), r.text
        server.wait_folded(len(names))
        for n in names:
            q = httpx.get(f"{server.url}/api/v1/servers/{quote(n, safe='')}/series")
            assert q.status_code == 200, (n, q.text)
            assert [s["metric"] for s in q.json()["series"]] == [f"m {n}"]
            q = httpx.get(f"{server.url}/api/v1/metrics/{quote(f'm {n}', safe='')}/summary")
            assert [row["server"] for row in q.json()["rows"]] == [n]
    finally:
        stop_server(server)
