"""Points per second through minutely and VictoriaMetrics, per write protocol, end to end.

Each run starts both servers fresh (minutely: ``serve --store none``, the embedded bus;
VictoriaMetrics: Debian's ``victoria-metrics`` with a temporary ``-storageDataPath``) and
sends the same points in the protocol's usual request size, in two rounds: a warm-up of six
samples per series (untimed), then the timed workload, whose clock stops once every point is
queryable: minutely's aggregator has folded them all (``/api/v1/status``); VictoriaMetrics
after ``/internal/force_flush`` answers their count. The warm-up makes the figure the rate
of a running server taking points of series it knows, which is what a fleet sends all day;
without it (``--cold``) the first touch of each new series (minutely's ring rows,
VictoriaMetrics' index entries) is timed too, and in a run of a second weighs more than the
points. minutely and VictoriaMetrics alternate run by run, so both meet the same load on the
shared cores. OTLP: VictoriaMetrics 1.79 has no OTLP receiver, so minutely's figure stands
alone, and a second table times, in this process, the compiled decoders of remote_write and
OTLP against the protobuf runtime's (their reference decoders, what was used before) on the
same requests (``--decode-points`` of them, with every series known, as in a running server).
Prints Markdown tables of medians.

    flock /tmp/minutely-cpu.lock .venv/bin/python bench/bench_protocols.py [--runs 3]
        [--samples 250] [--cold] [--protocols remote_write,influx,otlp,graphite]
        [--decode-points 100000] [--baseline TREE]

``--baseline TREE`` runs minutely from another source tree (``git archive COMMIT | tar -x
-C TREE``) alternating with this one, for a before and after in one run.
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

from minutely.ingest import otlp
from minutely.ingest import remote_write as rw
from minutely.ingest.labels import LabelMapping
from minutely.ingest.remote_write import WriteRequest
from minutely.ingest.series import Limits
from minutely.testing.natsserver import free_port
from minutely.testing.processes import clean_env, launch, stop_process, wait_healthy

SERVERS, METRICS = 50, 40  # 2,000 series
WARM_SAMPLES = 6  # per series before the timed round: past minutely's 4 live minutes
PER_REQUEST = 10_000  # points per request (remote_write sends 500–2,000; Telegraf 1,000–5,000)


def workload(
    end: int, samples: int, step: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """server index, metric index, unix seconds, value per point, in time order: ``samples``
    per series, ``step`` seconds apart, the last before ``end``."""
    rng = np.random.default_rng(samples)
    n = SERVERS * METRICS
    s = np.tile(np.repeat(np.arange(SERVERS), METRICS), samples)
    m = np.tile(np.tile(np.arange(METRICS), SERVERS), samples)
    t = np.repeat(end - samples * step + np.arange(samples) * step, n)
    v = np.round(rng.normal(50, 10, n * samples), 3)
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
        q = f'sum(count_over_time({{__name__=~"{name}"}}[1d]))'
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


#: one round of points: each protocol's payload, and how many points it holds
Round = tuple[dict[str, object], int]


def run_rounds(
    send: Callable[[object], None],
    done: Callable[[int], Callable[[], bool]],
    rounds: list[tuple[object, int]],
) -> float:
    """Send each round and wait until its points are queryable; time the last round only."""
    seen = 0
    for k, (payload, points) in enumerate(rounds):
        seen += points
        elapsed = timed(lambda p=payload: send(p), done(seen))  # type: ignore[misc]
        if k == len(rounds) - 1:
            return elapsed
    raise ValueError("no rounds")


def run_minutely(protocol: str, rounds: list[Round], tree: str = "") -> float:
    """One run against a fresh server: this checkout's, or the one of source ``tree``."""
    port, gport = free_port(), free_port()
    args = ["--store", "none", "--graphite-port", str(gport)]
    env = {"MINUTELY_GRAPHITE_SERVER_NODE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        if tree:  # run from the tree: ``-m minutely`` finds the package in its cwd first
            command = [sys.executable, "-m", "minutely", "serve", "--port", str(port)]
            proc = subprocess.Popen(
                [*command, "--data-dir", tmp, *args],
                cwd=tree,
                env=clean_env(env | {"PYTHONPATH": tree}),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            proc = launch("serve", port, tmp, *args, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_healthy(url, proc)
            return run_rounds(
                _sender(protocol, url, gport),
                lambda total: minutely_done(url, total),
                [(payload[protocol], points) for payload, points in rounds],
            )
        finally:
            stop_process(proc)


def run_vm(protocol: str, rounds: list[Round]) -> float:
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
            name = "bench.web-.*" if protocol == "graphite" else "bench_m.*"
            return run_rounds(
                _sender(protocol, url, gport),
                lambda total: vm_done(url, total, name),
                [(payload[protocol], points) for payload, points in rounds],
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _sender(protocol: str, url: str, graphite_port: int) -> Callable[[object], None]:
    if protocol == "graphite":
        return lambda payload: send_graphite(graphite_port, payload)  # type: ignore[arg-type]
    route, headers = ROUTES[protocol]
    return lambda payload: post_all(url + route, payload, headers)  # type: ignore[arg-type]


def payloads(s, m, t, v) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "remote_write": remote_write_bodies(s, m, t, v),
        "influx": influx_bodies(s, m, t, v),
        "otlp": otlp_bodies(s, m, t, v),
        "graphite": graphite_payload(s, m, t, v),
    }


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


def decode_table(payload: dict[str, object], points: int, runs: int, now: int) -> None:
    """Points/s of each compiled decoder and its reference on the first ``points`` points'
    requests, decoded in this process: median of ``runs``, the two alternating."""
    mapping = LabelMapping()
    limits = Limits(now=float(now), oldest=float(now - 2 * 86400), max_future=300.0)
    count = points // PER_REQUEST
    snappy: list[bytes] = payload["remote_write"][:count]  # type: ignore[index]
    rw_bodies = [rw.unsnappy(b, 1 << 30) for b in snappy]
    otlp_bodies_: list[bytes] = payload["otlp"][:count]  # type: ignore[index]
    rw_cache, otlp_cache = rw.series_cache(mapping), otlp.series_cache(mapping)
    decoders: dict[
        str, tuple[Callable[[bytes], object], Callable[[bytes], object], list[bytes]]
    ] = {
        "remote_write": (
            lambda b: rw.decode_remote_write(b, mapping, limits, rw_cache),
            lambda b: rw.decode_remote_write_reference(b, mapping, limits),
            rw_bodies,
        ),
        "otlp": (
            lambda b: otlp.decode_otlp(b, otlp.PROTOBUF, mapping, limits, otlp_cache),
            lambda b: otlp.decode_otlp_reference(b, otlp.PROTOBUF, mapping, limits),
            otlp_bodies_,
        ),
    }
    print(
        f"\nDecoding alone, in process: {points:,} points in requests of {PER_REQUEST:,}, "
        f"series known, median of {runs} runs\n"
    )
    print("| protocol | compiled points/s | protobuf runtime points/s | compiled / runtime |")
    print("|---|---:|---:|---:|")
    for name, (fast, reference, bodies) in decoders.items():
        for body in bodies:  # series known, as in a running server
            fast(body)
        took: dict[str, list[float]] = {"fast": [], "reference": []}
        for _ in range(runs):
            for which, decode in (("fast", fast), ("reference", reference)):
                began = time.perf_counter()
                for body in bodies:
                    decode(body)
                took[which].append(time.perf_counter() - began)
        n = len(bodies) * PER_REQUEST
        a, b = (n / statistics.median(took[k]) for k in ("fast", "reference"))
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {a / b:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=250, help="per series (2,000 series)")
    parser.add_argument("--protocols", default="remote_write,influx,otlp,graphite")
    parser.add_argument(
        "--cold", action="store_true", help="time the first points of new series (no warm-up)"
    )
    parser.add_argument(
        "--decode-points", type=int, default=100_000, help="for the decoding table (0: none)"
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="a source tree of minutely (git archive of a commit) run alternating with this one",
    )
    args = parser.parse_args()
    if shutil.which("victoria-metrics") is None:
        sys.exit("needs Debian's victoria-metrics (apt-get install victoria-metrics)")
    now = int(time.time())
    s, m, t, v = workload(now - 60, args.samples)
    total = len(t)
    rounds: list[Round] = [(payloads(s, m, t, v), total)]
    if not args.cold:  # six samples per series, a minute apart, ending 4 minutes earlier
        ws, wm, wt, wv = workload(int(t[0]) - 240, WARM_SAMPLES, step=60)
        rounds.insert(0, (payloads(ws, wm, wt, wv), len(wt)))
    print(
        f"{total:,} points, {SERVERS * METRICS:,} series, {PER_REQUEST:,} points a request, "
        f"median of {args.runs} runs, minutely and VictoriaMetrics alternating, "
        f"{'cold: new series' if args.cold else 'warm: known series'}\n"
    )
    print("| protocol | minutely points/s | VictoriaMetrics points/s | minutely / VM |")
    print("|---|---:|---:|---:|")
    for protocol in args.protocols.split(","):
        ours: list[float] = []
        theirs: list[float] = []
        before: list[float] = []
        for _ in range(args.runs):  # alternating, so both see the same load on shared cores
            ours.append(run_minutely(protocol, rounds))
            if protocol != "otlp":
                theirs.append(run_vm(protocol, rounds))
            if args.baseline:
                before.append(run_minutely(protocol, rounds, args.baseline))
        mine = total / statistics.median(ours)
        if before:
            base = total / statistics.median(before)
            print(f"| {protocol} (baseline {args.baseline}) | {base:,.0f} | | |", flush=True)
        if not theirs:
            print(f"| {protocol} | {mine:,.0f} | n/a (no OTLP in 1.79) | |", flush=True)
            continue
        vm = total / statistics.median(theirs)
        print(f"| {protocol} | {mine:,.0f} | {vm:,.0f} | {mine / vm:.2f} |", flush=True)
    if args.decode_points:
        decode_table(rounds[-1][0], min(args.decode_points, total), args.runs, now)


if __name__ == "__main__":
    main()
