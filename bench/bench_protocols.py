"""Points per second through minutely and VictoriaMetrics, per write protocol, end to end.

Each run starts both servers fresh (minutely: ``serve --store none``, the embedded bus;
VictoriaMetrics: Debian's ``victoria-metrics`` with a temporary ``-storageDataPath``), sends
the same workload in the protocol's usual request size, and stops the clock once every point
is queryable: minutely's aggregator has folded them all (``/api/v1/status``); VictoriaMetrics
after ``/internal/force_flush`` answers their count. OTLP: VictoriaMetrics 1.79 has no OTLP
receiver, so minutely's figure stands alone. Prints a Markdown table of medians.

    flock /tmp/minutely-cpu.lock .venv/bin/python bench/bench_protocols.py [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import cramjam
import httpx
import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from minutely.ingest.remote_write import WriteRequest
from minutely.testing.natsserver import free_port
from minutely.testing.processes import launch, stop_process, wait_healthy

SERVERS, METRICS, SAMPLES = 50, 40, 50  # 2,000 series × 50 samples = 100,000 points
PER_REQUEST = 10_000  # points per request (remote_write sends 500–2,000; Telegraf 1,000–5,000)


def workload(now: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """server index, metric index, unix seconds, value per point, in time order."""
    rng = np.random.default_rng(0)
    n = SERVERS * METRICS
    s = np.tile(np.repeat(np.arange(SERVERS), METRICS), SAMPLES)
    m = np.tile(np.tile(np.arange(METRICS), SERVERS), SAMPLES)
    t = np.repeat(now - 3000 + np.arange(SAMPLES) * 10, n)
    v = np.round(rng.normal(50, 10, n * SAMPLES), 3)
    return s, m, t, v


def chunks(total: int) -> list[slice]:
    return [slice(i, min(i + PER_REQUEST, total)) for i in range(0, total, PER_REQUEST)]


def remote_write_bodies(s, m, t, v) -> list[bytes]:  # type: ignore[no-untyped-def]
    out = []
    for part in chunks(len(t)):
        req = WriteRequest()
        for si, mi, ti, vi in zip(
            s[part].tolist(), m[part].tolist(), t[part].tolist(), v[part].tolist(), strict=True
        ):
            ts = req.timeseries.add()
            ts.labels.add(name="__name__", value=f"bench_m{mi}")
            ts.labels.add(name="instance", value=f"web-{si}:9100")
            ts.labels.add(name="job", value="node")
            ts.samples.add(value=vi, timestamp=int(ti * 1000))
        out.append(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    return out


def influx_bodies(s, m, t, v) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [
        gzip.compress(
            "\n".join(
                f"bench,host=web-{si} m{mi}={vi} {ti}"
                for si, mi, ti, vi in zip(
                    s[p].tolist(), m[p].tolist(), t[p].tolist(), v[p].tolist(), strict=True
                )
            ).encode(),
            1,
        )
        for p in chunks(len(t))
    ]


def otlp_bodies(s, m, t, v) -> list[bytes]:  # type: ignore[no-untyped-def]
    out = []
    for part in chunks(len(t)):
        req = ExportMetricsServiceRequest()
        by_server: dict[int, object] = {}
        for si, mi, ti, vi in zip(
            s[part].tolist(), m[part].tolist(), t[part].tolist(), v[part].tolist(), strict=True
        ):
            sm = by_server.get(si)
            if sm is None:
                rm = req.resource_metrics.add()
                kv = rm.resource.attributes.add(key="host.name")
                kv.value.string_value = f"web-{si}"
                sm = by_server[si] = rm.scope_metrics.add()
            metric = sm.metrics.add(name=f"bench.m{mi}")  # type: ignore[attr-defined]
            metric.gauge.data_points.add(time_unix_nano=int(ti * 1e9), as_double=vi)
        out.append(bytes(req.SerializeToString()))
    return out


def graphite_payload(s, m, t, v) -> bytes:  # type: ignore[no-untyped-def]
    return "".join(
        f"bench.web-{si}.m{mi} {vi} {ti}\n"
        for si, mi, ti, vi in zip(s.tolist(), m.tolist(), t.tolist(), v.tolist(), strict=True)
    ).encode()


def post_all(url: str, bodies: list[bytes], headers: dict[str, str]) -> None:
    with httpx.Client(timeout=60) as client:
        for body in bodies:
            while True:
                r = client.post(url, content=body, headers=headers)
                if r.status_code in (429, 503):
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                assert r.status_code < 300, (r.status_code, r.text[:300])
                break


def send_graphite(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(payload)


def minutely_done(url: str, total: int) -> Callable[[], bool]:
    def done() -> bool:
        return int(httpx.get(f"{url}/api/v1/status").json()["aggregator"]["points"]) >= total

    return done


def vm_done(url: str, total: int, name: str) -> Callable[[], bool]:
    def done() -> bool:
        httpx.get(f"{url}/internal/force_flush")
        q = f'sum(count_over_time({{__name__=~"{name}"}}[2h]))'
        r = httpx.get(f"{url}/api/v1/query", params={"query": q}).json()
        result = r["data"]["result"]
        return bool(result) and int(float(result[0]["value"][1])) >= total

    return done


def timed(send: Callable[[], None], done: Callable[[], bool]) -> float:
    began = time.perf_counter()
    send()
    while not done():
        time.sleep(0.01)
    return time.perf_counter() - began


def run_minutely(protocol: str, data: dict[str, object], total: int) -> float:
    port, gport = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = launch(
            "serve",
            port,
            tmp,
            "--store",
            "none",
            "--graphite-port",
            str(gport),
            env={"MINUTELY_GRAPHITE_SERVER_NODE": "1"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_healthy(url, proc)
            done = minutely_done(url, total)
            if protocol == "graphite":
                return timed(lambda: send_graphite(gport, data["graphite"]), done)  # type: ignore[arg-type]
            route, headers = ROUTES[protocol]
            return timed(lambda: post_all(url + route, data[protocol], headers), done)  # type: ignore[arg-type]
        finally:
            stop_process(proc)


def run_vm(protocol: str, data: dict[str, object], total: int) -> float:
    port, gport = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                "victoria-metrics",
                f"-storageDataPath={tmp}",
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-graphiteListenAddr=127.0.0.1:{gport}",
                "-search.latencyOffset=0s",
                "-retentionPeriod=1y",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            if protocol == "graphite":
                done = vm_done(url, total, "bench.web-.*")
                return timed(lambda: send_graphite(gport, data["graphite"]), done)  # type: ignore[arg-type]
            name = {"remote_write": "bench_m.*", "influx": "bench_m.*"}[protocol]
            route, headers = ROUTES[protocol]
            return timed(
                lambda: post_all(url + route, data[protocol], headers),  # type: ignore[arg-type]
                vm_done(url, total, name),
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


ROUTES = {
    "remote_write": (
        "/api/v1/write",
        {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
    ),
    "influx": ("/write?precision=s", {"Content-Encoding": "gzip"}),
    "otlp": ("/v1/metrics", {"Content-Type": "application/x-protobuf"}),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("victoria-metrics") is None:
        sys.exit("needs Debian's victoria-metrics (apt-get install victoria-metrics)")
    s, m, t, v = workload(int(time.time()))
    total = len(t)
    data: dict[str, object] = {
        "remote_write": remote_write_bodies(s, m, t, v),
        "influx": influx_bodies(s, m, t, v),
        "otlp": otlp_bodies(s, m, t, v),
        "graphite": graphite_payload(s, m, t, v),
    }
    print(
        f"{total:,} points, {SERVERS * METRICS:,} series, {PER_REQUEST:,} points a request, "
        f"median of {args.runs} runs\n"
    )
    print("| protocol | minutely points/s | VictoriaMetrics points/s | minutely / VM |")
    print("|---|---:|---:|---:|")
    for protocol in ("remote_write", "influx", "otlp", "graphite"):
        ours = statistics.median(run_minutely(protocol, data, total) for _ in range(args.runs))
        theirs = (
            None
            if protocol == "otlp"
            else statistics.median(run_vm(protocol, data, total) for _ in range(args.runs))
        )
        vm = "n/a (no OTLP in 1.79)" if theirs is None else f"{total / theirs:,.0f}"
        ratio = "" if theirs is None else f"{theirs / ours:.2f}"
        print(f"| {protocol} | {total / ours:,.0f} | {vm} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
