"""A real collectd (Debian's ``collectd-core``) in the foreground, sending to a real
``minutely serve --graphite-port`` with its ``write_graphite`` plugin.

Its ``table`` plugin reads values the test writes into a file, changing them every half
second, once a second; its ``csv`` plugin writes every value it dispatched, with its time,
which is the truth minutely's answers are checked against minute by minute."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from minutely.testing.natsserver import free_port
from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.slow

COLLECTD = shutil.which("collectd") or shutil.which("collectd", path="/usr/sbin")
PLUGINS = Path("/usr/lib/collectd")
TYPES_DB = Path("/usr/share/collectd/types.db")
#: write_graphite escapes the dots of the host name; node 1 of the path is the server
SERVER = "probe_host"
METRICS = {
    "answer": "collectd.table-probe.gauge-answer",
    "other": "collectd.table-probe.gauge-other",
}


@pytest.fixture
def graphite(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    port = free_port()
    server = start_server(
        tmp_path / "minutely",
        "--store",
        "none",
        "--hot-window",
        "6h",
        "--graphite-port",
        str(port),
        env={"MINUTELY_GRAPHITE_SERVER_NODE": "1"},
    )
    yield server, port
    stop_server(server)


def collectd_config(work: Path, values: Path, graphite_port: int) -> str:
    return f"""
Hostname "probe.host"
FQDNLookup false
Interval 1
BaseDir "{work}"
PIDFile "{work}/collectd.pid"
PluginDir "{PLUGINS}"
TypesDB "{TYPES_DB}"
AutoLoadPlugin false
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>
LoadPlugin table
LoadPlugin csv
<LoadPlugin write_graphite>
  FlushInterval 1
</LoadPlugin>
<Plugin table>
  <Table "{values}">
    Instance "probe"
    Separator " "
    <Result>
      Type gauge
      InstancesFrom 0
      ValuesFrom 1
    </Result>
  </Table>
</Plugin>
<Plugin csv>
  DataDir "{work}/csv"
  StoreRates false
</Plugin>
<Plugin write_graphite>
  <Node "minutely">
    Host "127.0.0.1"
    Port "{graphite_port}"
    Protocol "tcp"
    Prefix "collectd."
  </Node>
</Plugin>
"""


def dispatched(work: Path, instance: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) collectd's csv plugin wrote for ``gauge-<instance>``."""
    stamps: list[float] = []
    values: list[float] = []
    for path in sorted((work / "csv" / "probe.host" / "table-probe").glob(f"gauge-{instance}-*")):
        with path.open() as f:
            for row in csv.DictReader(f):
                stamps.append(float(row["epoch"]))
                values.append(float(row["value"]))
    return np.array(stamps), np.array(values)


def test_collectd_write_graphite_answers_as_it_sent(
    graphite: tuple[Server, int], tmp_path: Path
) -> None:
    assert COLLECTD is not None, (
        "no collectd: make test installs Debian's collectd-core package"
        " (scripts/ensure_debian_tools.py); or apt-get install collectd-core"
    )
    server, port = graphite
    work = tmp_path / "collectd"
    work.mkdir()
    values = work / "values.txt"
    rng = np.random.default_rng(5)

    def write_values() -> None:
        answer, other = np.round(rng.normal(50, 20, 2), 3)
        (work / "next.txt").write_text(f"answer {answer}\nother {other}\n")
        os.replace(work / "next.txt", values)  # collectd never reads half a file

    write_values()
    config = work / "collectd.conf"
    config.write_text(collectd_config(work, values, port))
    proc = subprocess.Popen(
        [COLLECTD, "-f", "-C", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.5)
            write_values()
    finally:
        proc.terminate()  # collectd flushes its writers at exit
        proc.wait(timeout=30)
    assert proc.returncode == 0, "collectd exited with an error"

    for instance, metric in METRICS.items():
        stamps, sent = dispatched(work, instance)
        assert sent.size >= 5, f"collectd dispatched only {sent.size} values of {instance}"
        assert np.unique(sent).size > 1  # the values changed while it ran
        # write_graphite sends whole seconds rounded to the nearest (CDTIME_T_TO_TIME_T), so a
        # sample at :59.5 or later belongs to the next minute on the wire.
        minutes = (np.floor(stamps + 0.5) // 60 * 60).astype(np.int64)
        start = int(minutes.min())
        end = int(minutes.max() + 60)
        answer: dict[str, Any] = {}
        wait = time.monotonic() + 30
        while time.monotonic() < wait:
            r = httpx.get(
                f"{server.url}/api/v1/servers/{SERVER}/series",
                params={"start": start, "end": end, "metric": metric},
            )
            if r.status_code == 200:
                answer = r.json()
                got = sum(sum(s["count"]) for s in answer["series"])
                if got == sent.size:
                    break
            time.sleep(0.2)
        assert answer, f"{metric} never answered for {SERVER}"
        (series,) = answer["series"]
        assert series["metric"] == metric
        for i, t in enumerate(answer["timestamps"]):
            mine = sent[minutes == t]
            assert series["count"][i] == mine.size, (t, series["count"][i], mine.size)
            if mine.size:
                assert series["min"][i] == mine.min() and series["max"][i] == mine.max()
                assert series["avg"][i] == pytest.approx(mine.mean(), rel=1e-12)

    status = httpx.get(f"{server.url}/api/v1/status").json()
    assert status["graphite"]["rejected"] == 0
    assert status["graphite"]["connections"] >= 1
