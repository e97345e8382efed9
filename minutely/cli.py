"""The command line: ``minutely serve | ingest | simulate | import | query | demo | token``.

- ``serve``: run the service (HTTP API + dashboard) until Ctrl-C.
- ``ingest``: an ingest-only node in front of a shared NATS bus (several can run).
- ``simulate``: a simulated fleet that sends points to a running server.
- ``import``: history from CSV, Parquet or Arrow files, through the same ingest path.
- ``query``: the four dashboard questions from a terminal, over HTTP.
- ``demo``: ``serve`` plus a simulated fleet with history, printing the URLs to try.
- ``token``: add, list or revoke the API's tokens (``minutely.auth``).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from minutely import config
from minutely.datadir import DataDir
from minutely.errors import ConfigError, MinutelyError

if TYPE_CHECKING:
    from minutely.api.auth import Access

log = logging.getLogger("minutely")

#: the forms ``start`` and ``end`` take, for the help of the commands that have them
TIME_FORMS = """\
times (--start, --end): unix seconds (1764000000), RFC 3339 (2025-11-24T16:00:00Z), now,
or a time before the end of the current minute: -30s, -90m, -2h, -2d, -1w. The end is
exclusive. --step is seconds, a positive multiple of 60.
"""

#: options whose value may be a relative time, which begins with a dash
_TIME_OPTIONS = ("--start", "--end")
_RELATIVE = re.compile(r"-\d")


class ListenError(MinutelyError, OSError):
    """The address to serve on cannot be had: the port is taken or the host is not ours."""


def _add_settings_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080)")
    p.add_argument("--data-dir", help="where minutely keeps its data (default ./data)")
    p.add_argument("--config", help="TOML settings file")
    p.add_argument("--hot-window", help="how much history the ring keeps, e.g. 2d, 6h")
    p.add_argument("--partitions", type=int, help="bus partitions (default 16)")
    p.add_argument("--bus", help="'memory' (default) or a NATS JetStream URL, nats://host:4222")
    p.add_argument(
        "--store", help="'chdb' (default, embedded), a ClickHouse URL http://host:8123, or 'none'"
    )
    p.add_argument(
        "--node",
        help="join a cluster under this name: every node given the same NATS --bus and"
        " ClickHouse --store owns a share of the partitions (docs/cluster.md)",
    )
    p.add_argument(
        "--advertise",
        help="the URL other cluster nodes reach this one at (default http://host:port)",
    )
    p.add_argument(
        "--replicas", type=int, help="replicas of each JetStream stream and bucket (default 1)"
    )
    p.add_argument(
        "--graphite-port",
        type=int,
        help="take Graphite plaintext on this TCP port (off by default; 2003 by convention)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        help="open client connections; one more is answered 503 (default 10000)",
    )
    p.add_argument("--max-header-bytes", help="a request's headers, 431 beyond (default 64KB)")
    p.add_argument("--header-timeout", help="time to send a request's headers (default 10s)")
    p.add_argument("--idle-timeout", help="a keep-alive connection's wait (default 30s)")
    p.add_argument("--lease-ttl", help="a cluster node's lease on its partitions (default 10s)")
    p.add_argument(
        "--allowed-hosts",
        help="names a request's Host may give, comma-separated, besides the loopback names and"
        " the listening address; '*' allows any (docs/security.md)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="listen on a non-loopback address with no token (or take Graphite there)",
    )
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    p.add_argument("--tls-key", help="... and this PEM private key")
    p.add_argument(
        "--token-file",
        help="a file holding the token this node sends to other cluster nodes (an admin one;"
        " MINUTELY_TOKEN works too)",
    )
    p.add_argument(
        "--allow-damaged-store",
        action="store_true",
        default=None,
        help="start even if the store has broken (detached) parts, serving what is left",
    )


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(
        args.config,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        hot_window=args.hot_window,
        partitions=args.partitions,
        bus=args.bus,
        store=args.store,
        allow_damaged_store=args.allow_damaged_store,
        node=args.node,
        advertise=args.advertise,
        replicas=args.replicas,
        lease_ttl=args.lease_ttl,
        graphite_port=args.graphite_port,
        allowed_hosts=args.allowed_hosts,
        insecure=args.insecure,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        token_file=args.token_file,
        max_connections=args.max_connections,
        max_header_bytes=args.max_header_bytes,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
    )


def serve(settings: config.Settings, on_ready: Any = None, ingest_only: bool = False) -> None:
    """Run the service (or an ingest-only node) in this process until SIGINT/SIGTERM.

    The data dir's lock is taken and the port bound before anything else is built, so a
    second ``serve`` on the same data dir or port stops at once with a one-line reason.
    """
    from minutely.api.auth import access_for, exposure_refusal

    data_dir = None if ingest_only else DataDir(settings.data_dir).lock()
    try:
        access = access_for(settings)
        refusal = exposure_refusal(settings, access)
        if refusal is not None:
            raise ListenError(refusal)
        _check_tls(settings)
        with _listen(settings.host, settings.port) as sock:
            _serve_on(sock, settings, access, on_ready, ingest_only)
    finally:
        if data_dir is not None:
            data_dir.release()


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on (as uvicorn binds its own)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            msg = f"port {port} is in use: pass --port"
        else:
            msg = f"cannot listen on {host}:{port} ({e.strerror or e}): pass --host or --port"
        raise ListenError(msg) from None
    return sock


def _check_tls(settings: config.Settings) -> None:
    """Load the certificate and key once here, so a bad pair stops ``serve`` with its reason."""
    if not settings.tls_cert:
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as e:
        msg = f"tls_cert/tls_key: {settings.tls_cert}, {settings.tls_key} cannot be used ({e})"
        raise ConfigError(msg) from None


def _serve_on(
    sock: socket.socket,
    settings: config.Settings,
    access: Access,
    on_ready: Any,
    ingest_only: bool,
) -> None:
    import uvicorn

    from minutely import failpoints
    from minutely.api import create_app, create_ingest_app
    from minutely.api.connections import ConnectionLimits, raise_open_files_limit, server_options
    from minutely.service import IngestNode, Service

    failpoints.arm(settings.failpoints)
    bodies = settings.max_inflight_body_bytes
    if ingest_only:
        ingest_node = IngestNode(settings).open()
        app, refusals = (
            create_ingest_app(ingest_node, access=access, max_inflight_body_bytes=bodies),
            ingest_node.refusals,
        )
    elif settings.node:
        from minutely.cluster.node import ClusterNode

        cluster_node = ClusterNode(settings).open()
        app, refusals = (
            create_app(cluster_node, access=access, max_inflight_body_bytes=bodies),
            cluster_node.refusals,
        )
    else:
        service = Service(settings).open()
        app, refusals = (
            create_app(service, access=access, max_inflight_body_bytes=bodies),
            service.refusals,
        )
    limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        idle_timeout=settings.idle_timeout,
        max_connections=raise_open_files_limit(settings.max_connections),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            ssl_certfile=settings.tls_cert or None,
            ssl_keyfile=settings.tls_key or None,
            # httptools with the limits uvicorn lacks (api/connections.py)
            **server_options(limits, refusals, access.allowed_hosts),
        )
    )

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            scheme = "https" if settings.tls_cert else "http"
            base = f"{scheme}://{settings.host}:{settings.port}"
            log.info("minutely serving on %s", base)
            if on_ready is not None:
                on_ready(base)
        await task

    # uvloop when present (uvicorn[standard] brings it): its transports read the request
    # bodies the ingest path lives on several times faster than asyncio's selector loop.
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvicorn[standard] is a dependency
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def _cmd_serve(args: argparse.Namespace) -> int:
    serve(_settings(args))
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    serve(_settings(args), ingest_only=True)
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    # imported here: the compiled modules load numba, which the other commands mostly skip
    from minutely import warm
    from minutely.api import protocols

    began = time.perf_counter()
    protocols.warm_up()
    warm.compiled()
    print(f"compiled kernels ready in {time.perf_counter() - began:.1f}s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    cluster = args.nodes > 1
    # a cluster on one machine runs three NATS servers and several nodes: a smaller fleet
    for name, alone, together in (
        ("servers", 50, 20),
        ("metrics", 100, 25),
        ("backfill", "6h", "15m"),
    ):
        if getattr(args, name) is None:
            setattr(args, name, together if cluster else alone)
    if cluster:
        from minutely.cluster.demo import run_cluster_demo

        return run_cluster_demo(
            data_dir=Path(args.data_dir or "data-cluster"),
            nodes=args.nodes,
            servers=args.servers,
            metrics=args.metrics,
            backfill=args.backfill,
            seed=args.seed,
            base_port=args.port,
            partitions=args.partitions or 8,
        )
    settings = _settings(args)
    sim: list[subprocess.Popen[bytes]] = []

    def on_ready(base: str) -> None:
        cmd = [
            sys.executable,
            "-m",
            "minutely",
            "simulate",
            "--url",
            base,
            "--servers",
            str(args.servers),
            "--metrics",
            str(args.metrics),
            "--backfill",
            args.backfill,
            "--seed",
            str(args.seed),
        ]
        sim.append(subprocess.Popen(cmd))
        print(
            f"\nminutely is running. Open the dashboard:  {base}/\n"
            f"Try:  {base}/api/v1/servers\n"
            f"      {base}/api/v1/servers/web-001/summary?start=-1h\n"
            f"      {base}/api/v1/metrics/cpu.user/series?start=-30m\n"
            f"      {base}/api/v1/status\n"
            f"A simulated fleet of {args.servers} servers x {args.metrics} metrics is "
            f"backfilling {args.backfill} of history, then sending live. Ctrl-C stops.\n",
            flush=True,
        )

    try:
        serve(settings, on_ready)
    finally:
        for proc in sim:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from minutely import sim

    fleet = sim.Fleet(args.servers, args.metrics, seed=args.seed)
    stats = sim.SendStats()
    token = _client_token(args)
    try:
        asyncio.run(
            sim.run(
                args.url,
                fleet,
                rate=args.rate,
                duration=args.duration,
                backfill=config.parse_duration(args.backfill, "backfill"),
                stats=stats,
                compression=args.compression,
                token=token,
            )
        )
    except KeyboardInterrupt:
        pass
    except sim.SendError as e:
        print(f"minutely simulate: {e}{_token_hint(e.status, 'write')}", file=sys.stderr)
        return 1
    finally:
        print(
            f"simulate: {stats.accepted} points accepted, {stats.rejected} rejected, "
            f"{stats.requests} requests, {stats.retries} retries in {stats.elapsed:.1f}s",
            file=sys.stderr,
        )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from minutely import sim
    from minutely.errors import DecodeError
    from minutely.importer import import_files

    token = _client_token(args)
    try:
        stats = import_files(args.url, [Path(f) for f in args.files], token=token)
    except DecodeError as e:
        print(f"minutely import: {e}", file=sys.stderr)
        return 1
    except sim.SendError as e:
        print(f"minutely import: {e}{_token_hint(e.status, 'write')}", file=sys.stderr)
        return 1
    return 0 if stats.rejected == 0 else 3


def _cmd_dead_letters(args: argparse.Namespace) -> int:
    try:
        if args.action == "replay":
            resp = httpx.post(
                f"{args.url}/api/v1/dead-letters/replay", headers=_auth_headers(args), timeout=300
            )
        else:
            resp = httpx.get(
                f"{args.url}/api/v1/dead-letters", headers=_auth_headers(args), timeout=30
            )
    except httpx.HTTPError as e:
        print(f"minutely dead-letters: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    if resp.status_code != 200:
        hint = _token_hint(resp.status_code, "admin")
        print(f"minutely dead-letters: {resp.status_code}: {resp.text}{hint}", file=sys.stderr)
        return 1
    data = resp.json()
    if args.action == "replay":
        print(
            f"replayed {data['letters']} letters: {data['rows']} rows to the store,"
            f" {data['points']} points through the bus"
        )
        return 0
    letters = data["letters"]
    if not letters:
        print(f"no dead letters in {data['directory']}")
        return 0
    for letter in letters:
        if "error" in letter:
            print(f"{letter['file']}: unreadable: {letter['error']}")
            continue
        print(f"{letter['file']}: {letter['rows']} {letter['kind']}: {letter['reason']}")
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from minutely import auth

    path = auth.tokens_path(config.load(args.config, data_dir=args.data_dir).data_dir)
    if args.action in ("add", "revoke") and not args.name:
        msg = f"token {args.action}: give the token's NAME"
        raise ConfigError(msg)
    if args.action == "add" and not args.scope:
        msg = "token add: give its --scope: write, read or admin"
        raise ConfigError(msg)
    if args.action == "add":
        secret = auth.add_token(path, args.name, auth.parse_scope(args.scope))
        print(
            f"token {args.name!r} (scope {args.scope}) added to {path}; a running server"
            " takes it within a second.\nIts secret, shown this once (only a hash is kept):"
        )
        print(secret)
        return 0
    if args.action == "revoke":
        auth.revoke_token(path, args.name)
        print(f"token {args.name!r} revoked; a running server refuses it within a second")
        return 0
    tokens = auth.read_tokens(path)
    if not tokens:
        print(f"no tokens in {path}: auth is off")
        return 0
    print(f"{'name':<24} {'scope':<6} created")
    for t in tokens:
        print(f"{t.name:<24} {t.scope.value:<6} {t.created}")
    return 0


def _client_token(args: argparse.Namespace) -> str:
    """The token a client command sends: ``--token``, ``--token-file``'s or MINUTELY_TOKEN."""
    return config.client_token(args.token, args.token_file)


def _auth_headers(args: argparse.Namespace) -> dict[str, str]:
    """The Authorization header of a client command (``_client_token``)."""
    token = _client_token(args)
    return {"authorization": f"Bearer {token}"} if token else {}


def _token_hint(status: int | None, scope: str) -> str:
    """What to do about a 401 or 403, said after the server's message (nothing otherwise)."""
    if status == 401:
        return (
            f"\nThe server has tokens (401): pass a {scope} token with --token, --token-file"
            f" or MINUTELY_TOKEN (minutely token add NAME --scope {scope})"
        )
    if status == 403:
        return f"\nThe token's scope is too small (403): pass a {scope} (or admin) token"
    return ""


def _add_token_flags(p: argparse.ArgumentParser, scope: str) -> None:
    """``--token`` and ``--token-file`` of a command that talks to a server."""
    given = p.add_mutually_exclusive_group()
    given.add_argument(
        "--token",
        help=f"a token with scope {scope}, sent as Authorization: Bearer (default:"
        " MINUTELY_TOKEN, if set; other users can read a command line, the variable they"
        " cannot)",
    )
    given.add_argument("--token-file", help=TOKEN_FILE_HELP.replace("SCOPE", scope))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _cmd_query(args: argparse.Namespace) -> int:
    by = args.by
    kind = "summary" if args.summary else "series"
    other = "metric" if by == "server" else "server"
    q: list[tuple[str, str | int | float | bool | None]] = [
        ("start", args.start),
        ("end", args.end),
    ]
    if kind == "series":
        q.append(("step", str(args.step)))
    q += [(other, f) for f in args.filter or []]
    url = f"{args.url}/api/v1/{by}s/{args.name}/{kind}"
    headers = {"accept": "text/csv"} if args.csv else {}
    headers.update(_auth_headers(args))
    try:
        resp = httpx.get(url, params=q, headers=headers, timeout=30)
    except httpx.HTTPError as e:
        print(f"minutely query: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    if resp.status_code != 200:
        hint = _token_hint(resp.status_code, "read")
        print(f"minutely query: {resp.status_code}: {resp.text}{hint}", file=sys.stderr)
        return 1
    if args.csv:
        sys.stdout.write(resp.text)
        return 0
    data = resp.json()
    if kind == "summary":
        print(f"{other:<32} {'min':>12} {'max':>12} {'avg':>12} {'count':>10}")
        for row in data["rows"]:
            print(
                f"{row[other]:<32} {_fmt(row['min']):>12} {_fmt(row['max']):>12} "
                f"{_fmt(row['avg']):>12} {row['count']:>10}"
            )
    else:
        stamps = data["timestamps"]
        for s in data["series"]:
            print(f"# {other}={s[other]}")
            for i, ts in enumerate(stamps):
                if s["count"][i]:
                    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
                    print(
                        f"{when}  min={_fmt(s['min'][i])} max={_fmt(s['max'][i])} "
                        f"avg={_fmt(s['avg'][i])} count={s['count'][i]}"
                    )
    return 0


IMPORT_FORMATS = """\
files, by name: .csv or .csv.gz (a header row; ts as unix seconds or RFC 3339), .parquet or
.pq, and .arrow, .feather, .ipc or .arrows (an Arrow IPC file or stream). Columns: server,
metric (strings), ts (a timestamp, or unix seconds) and value (a number); others are
ignored. Points older than the hot window go to the store, as long as the 1-minute tier
keeps them (400 days by default).

examples:
  minutely import history.parquet
  minutely import a.csv b.csv.gz --url http://127.0.0.1:8080
"""

QUERY_HELP = f"""\
{TIME_FORMS}
examples:
  minutely query server web-001 --start -1h
  minutely query server web-001 --summary --filter cpu.user --csv
  minutely query metric cpu.user --summary --start -2d
  minutely query metric cpu.user --start 2025-11-24T16:00:00Z --end 2025-11-24T18:00:00Z
"""


TOKEN_HELP = """\
examples:
  minutely token add grafana --scope read       # the secret is the last line printed
  TOKEN=$(minutely token add fleet --scope write | tail -n 1)
  minutely token list
  minutely token revoke grafana
"""

TOKEN_FILE_HELP = "a file holding a token with scope SCOPE (default: MINUTELY_TOKEN, if set)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minutely", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show an error's traceback")
    # every command takes --debug after its name too; unset there, the top level's stands
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show an error's traceback"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, parents=[common], **kwargs)

    p = command("serve", "run the HTTP API and dashboard")
    _add_settings_flags(p)
    p.set_defaults(func=_cmd_serve)

    p = command("ingest", "an ingest-only node: validate and publish to a shared NATS bus")
    _add_settings_flags(p)
    p.set_defaults(func=_cmd_ingest)

    p = command(
        "compile",
        "compile the decoders' and the ring's kernels into numba's cache",
        description=(
            "A node compiles its kernels before it serves; the first start after an install"
            " spends about a minute of CPU on it unless this has run (make runs it)."
        ),
    )
    p.set_defaults(func=_cmd_compile)

    p = command("demo", "serve plus a simulated fleet with history")
    _add_settings_flags(p)
    p.add_argument("--servers", type=int, help="fleet servers (default 50; 20 with --nodes)")
    p.add_argument("--metrics", type=int, help="metrics per server (default 100; 25 with --nodes)")
    p.add_argument("--backfill", help="history sent first (default 6h; 15m with --nodes)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="run a cluster: three NATS servers, a shared store and this many nodes",
    )
    p.set_defaults(func=_cmd_demo)

    p = command("simulate", "send a simulated fleet's points to a server")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--servers", type=int, default=50)
    p.add_argument("--metrics", type=int, default=100)
    p.add_argument("--rate", type=float, default=1.0, help="points per second per series")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    p.add_argument("--backfill", default="0s", help="history to send first, e.g. 6h")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compression", choices=["lz4", "zstd"], default=None, help="compress Arrow bodies"
    )
    _add_token_flags(p, "write")
    p.set_defaults(func=_cmd_simulate)

    p = command(
        "import",
        "load raw points from CSV, Parquet or Arrow files",
        description="Send the points in FILEs to a running minutely, through the ingest path.",
        epilog=IMPORT_FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", help="files with columns server, metric, ts, value")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    _add_token_flags(p, "write")
    p.set_defaults(func=_cmd_import)

    p = command(
        "dead-letters",
        "list or replay what the store refused or the aggregator could not fold",
        description=(
            "Rows the store refused again and again, and batches that failed to fold, are set"
            " aside in <data_dir>/dead-letters/ so that everything behind them moves on. List"
            " them with their reasons; replay them once the cause is fixed (a letter that fails"
            " the same way again becomes a new one)."
        ),
    )
    p.add_argument("action", choices=["list", "replay"], nargs="?", default="list")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    _add_token_flags(p, "admin")
    p.set_defaults(func=_cmd_dead_letters)

    p = command(
        "token",
        "add, list or revoke the API's tokens",
        description=(
            "Tokens let clients in once one exists: write for ingest, read for queries and the"
            " dashboard, admin for both and dead letters. add prints the secret once, alone on"
            " the last line; only its hash is stored, in <data_dir>/tokens.json. A running"
            " server notices a change within a second."
        ),
        epilog=TOKEN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["add", "list", "revoke"])
    p.add_argument("name", nargs="?", help="the token's name (add, revoke)")
    p.add_argument("--scope", choices=["write", "read", "admin"], help="what it may do (add)")
    p.add_argument("--data-dir", help="the server's data dir (default ./data)")
    p.add_argument("--config", help="TOML settings file (for its data_dir)")
    p.set_defaults(func=_cmd_token)

    p = command(
        "query",
        "ask one of the four questions",
        description="A server's metrics or a metric's servers, per step or summarised.",
        epilog=QUERY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("by", choices=["server", "metric"])
    p.add_argument("name")
    p.add_argument("--summary", action="store_true", help="min/max/avg over the range (Q3/Q4)")
    p.add_argument("--start", default="-1h", help="first time (default -1h)")
    p.add_argument("--end", default="now", help="time after the last (default now)")
    p.add_argument("--step", type=int, default=60, help="seconds per point (default 60)")
    p.add_argument("--filter", action="append", help="only these metrics (or servers)")
    p.add_argument("--csv", action="store_true")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    _add_token_flags(p, "read")
    p.set_defaults(func=_cmd_query)
    return parser


def join_relative_times(argv: Sequence[str]) -> list[str]:
    """``--start -2d`` as ``--start=-2d``. argparse takes a value that begins with a dash for
    an option of its own (only plain negative numbers pass), so the relative times, which
    all begin with one, would need the ``=`` form."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out += args[i:]
            break
        if arg in _TIME_OPTIONS and i + 1 < len(args) and _RELATIVE.match(args[i + 1]):
            out.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(join_relative_times(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # one line per request at INFO: noise before a query's table or a simulation's totals
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except MinutelyError as e:  # ours say what to do
        if args.debug:
            raise
        print(f"minutely: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if args.debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"minutely: {type(e).__name__}: {first} (--debug shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
