"""Settings: one frozen object, read once, passed down.

Precedence, lowest first: built-in defaults < TOML file (``--config``) < environment
(``MINUTELY_<FIELD>``, e.g. ``MINUTELY_PORT=9000``, ``MINUTELY_HOT_WINDOW=6h``) < command-line
flags. This module is the only reader of ``os.environ``.

Durations are written as ``<number><unit>`` with unit ``s``, ``m``, ``h`` or ``d`` (``90m``,
``2d``) or as plain seconds; sizes as bytes or with ``KB``/``MB``/``GB`` (powers of 1024).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from minutely.errors import ConfigError
from minutely.limits import MAX_INFLIGHT_BODY_BYTES

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*(|B|KB|MB|GB|KiB|MiB|GiB)\s*$", re.IGNORECASE)
_UNIT_BYTES = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}
#: the hot ring's open slots per series at its defaults (a block of 20 minutes, twice the
#: grace, the live minutes; ``hot.HotRing``), each 28 B uncompressed:
#: ``Settings.series_limit`` counts them
RING_OPEN_MINUTES = 34
RING_OPEN_BYTES_PER_MINUTE = 28
#: a sealed series-minute, compressed: the simulated fleet's whole ring takes about 6 B
#: (docs/hot-ring.md), with room for fleets of more full-precision floats (up to ~18 B)
RING_BYTES_PER_SERIES_MINUTE = 8
#: a cluster node's name goes into KV values and log lines: kept plain
_NODE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_duration(text: str | int | float, name: str = "duration") -> float:
    """Seconds in ``text`` (``'2d'``, ``'90m'``, ``'30s'``, ``3600``)."""
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        msg = f"{name}: {text!r} is not a duration (use e.g. 30s, 90m, 6h, 2d)"
        raise ConfigError(msg)
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def parse_size(text: str | int, name: str = "size") -> int:
    """Bytes in ``text`` (``'512MB'``, ``1024``)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        msg = f"{name}: {text!r} is not a size (use e.g. 1048576, 64MB, 1GB)"
        raise ConfigError(msg)
    unit = m.group(2).lower().replace("i", "")
    return int(m.group(1)) * _UNIT_BYTES[unit]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, with its default."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    #: how far back the in-memory ring reaches (and so the oldest point accepted)
    hot_window: float = 2 * 86400.0
    #: how far ahead of the server's clock a point may be
    max_future: float = 300.0
    #: bus: "memory" (embedded, in-process) or a NATS JetStream URL ("nats://127.0.0.1:4222")
    bus: str = "memory"
    partitions: int = 16
    #: bytes of points the embedded bus holds before ingest answers 429
    bus_max_bytes: int = 512 << 20
    #: the largest request body accepted (413 beyond)
    max_body_bytes: int = 512 << 20
    #: how many per-point errors an ingest answer lists (all are counted in "rejected")
    max_errors: int = 100
    #: the longest server or metric name accepted, in UTF-8 bytes (a point with a longer one
    #: is rejected, naming it)
    max_name_bytes: int = 256
    #: the most cells (series × buckets) one series answer may allocate (400 beyond, naming
    #: the smallest step that fits): the seed's Q1, 2,000 metrics × 2,880 minutes, fits
    max_query_cells: int = 6_000_000
    #: the most series the node holds (429 for a request whose new series would pass it);
    #: 0, the default, derives it from ``series_memory`` (``series_limit``)
    max_series: int = 0
    #: the hot ring's memory that ``max_series`` is derived from when it is 0
    series_memory: int = 12 << 30
    #: the most new series taken in one clock minute (429 with Retry-After beyond); 0, the
    #: default, is off: a fleet's first minute brings all its series at once
    max_new_series_per_minute: int = 0
    #: the most points one request may carry (413 beyond)
    max_points_per_request: int = 5_000_000
    #: the largest JSON body decoded point object by point object, when the columnar fast
    #: path cannot type it (413 beyond): such a body costs tens of times its size in memory
    max_slow_json_bytes: int = 16 << 20
    #: the request body bytes all requests in flight may hold at once (429 beyond, before the
    #: body is read): each body is bounded by ``max_body_bytes``, their sum by this
    max_inflight_body_bytes: int = MAX_INFLIGHT_BODY_BYTES
    #: minutes kept in the time-major live buffer before they move into the ring
    live_minutes: int = 4
    #: the storage tier: "chdb" (embedded, in <data_dir>/store), a ClickHouse URL
    #: ("http://host:8123"), or "none" (memory only: nothing survives a restart)
    store: str = "chdb"
    #: how long each tier keeps its rows (whole partitions are dropped past it)
    retention_1m: float = 400 * 86400.0
    retention_1h: float = 1827 * 86400.0
    retention_1d: float = 1827 * 86400.0
    #: how often expiry runs
    expire_every: float = 3600.0
    #: on a durable bus (NATS) with a store: how often the aggregator checkpoints, and so
    #: how long a message waits for its ack and how much a restart folds again
    checkpoint_every: float = 5.0
    #: rows waiting for the store (in bytes) before ingest answers 503: the store is slow or down
    writer_max_bytes: int = 256 << 20
    #: the embedded store's (chDB) bound on the memory it holds: inserts past it are retried
    #: (the writer's queue fills, then ingest answers 503); 0: the engine's 90% of the machine
    store_memory: int = 2 << 30
    #: the embedded store's cache of part marks, within ``store_memory``
    store_mark_cache: int = 256 << 20
    #: on the embedded bus with a store: how often the open minutes' new points are written
    #: (a SIGKILL loses at most this much of what was folded)
    open_minutes_every: float = 1.0
    #: start even though the store has damaged (detached) parts, whose rows are not read
    allow_damaged_store: bool = False
    #: a clean stop writes the hot ring to <data_dir>/ring-snapshot and the next start reads
    #: it back instead of rebuilding it from the store
    ring_snapshot: bool = True
    #: a cluster node's name (``--node``): set, ``serve`` joins the cluster of every node
    #: given the same bus and store; empty, the default, runs one node alone
    node: str = ""
    #: the URL other nodes reach this one at (``--advertise``; default http://host:port)
    advertise: str = ""
    #: replicas of each JetStream stream and bucket (3 on a cluster of three NATS servers)
    replicas: int = 1
    #: how long a cluster node holds a partition without renewing its lease: a node that
    #: dies (or pauses) this long loses its partitions to the others
    lease_ttl: float = 10.0
    #: the protocols (remote_write, Influx, OTLP, Graphite): the labels that name a point's
    #: server, first present wins (``ingest/labels.py``)
    server_labels: str = "instance,host,host.name,server"
    #: drop the ``:port`` of Prometheus' ``instance`` label, so a machine is one server
    strip_instance_port: bool = True
    #: the server of a protocol point with none of ``server_labels``; empty: it is rejected
    default_server: str = ""
    #: Graphite plaintext on this TCP port (``--graphite-port``; 2003 by convention); 0: off
    graphite_port: int = 0
    #: which dot-separated node of a Graphite path is the server (0-based, e.g. 1 for
    #: collectd's ``collectd.<host>.<plugin>…``); -1: none, the server comes from a
    #: ``;host=`` tag or ``default_server``
    graphite_server_node: int = -1
    #: one request's request line and headers, in bytes (431 beyond)
    max_header_bytes: int = 64 << 10
    #: seconds from a connection's accept, or a request's first byte, to its complete
    #: headers (408 and closed beyond; a connection that sent nothing is just closed)
    header_timeout: float = 10.0
    #: seconds a keep-alive connection may wait for its next request before it is closed
    idle_timeout: float = 30.0
    #: open client connections; one more is answered 503 with Retry-After and closed
    max_connections: int = 10_000
    #: metrics that are counters (shown as rates), as comma-separated glob patterns of names,
    #: beside what the protocols declare and the ``_total`` convention (``kinds.py``)
    counters: str = ""
    #: crash points for the fault-injection tests, ``name=n,…`` (see ``failpoints.py``);
    #: empty, the default, arms none
    failpoints: str = ""
    #: the names a request's ``Host`` may give, comma-separated, besides the loopback names,
    #: the listening address (unless a wildcard) and the advertised URL's; ``*`` allows any
    allowed_hosts: str = ""
    #: listen on a non-loopback address with no token, or take Graphite there (no auth)
    insecure: bool = False
    #: TLS: the PEM certificate (chain) and private key to serve HTTPS with; both or neither
    tls_cert: str = ""
    tls_key: str = ""
    #: the token this process sends on its own calls to other nodes (``MINUTELY_TOKEN``)
    token: str = field(default="", repr=False)
    #: a file holding that token (``--token-file``), read when ``token`` is empty
    token_file: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.max_name_bytes <= 65536:
            msg = f"max_name_bytes: {self.max_name_bytes} is not between 1 and 65536"
            raise ConfigError(msg)
        for name in ("max_series", "max_new_series_per_minute", "store_memory"):
            if getattr(self, name) < 0:
                msg = f"{name}: {getattr(self, name)} is negative (0 for the default)"
                raise ConfigError(msg)
        for name in ("max_points_per_request", "max_slow_json_bytes", "series_memory"):
            if getattr(self, name) < 1:
                msg = f"{name}: {getattr(self, name)} is below the minimum of 1"
                raise ConfigError(msg)
        if self.max_inflight_body_bytes < self.max_body_bytes:
            msg = (
                f"max_inflight_body_bytes: {self.max_inflight_body_bytes} is below"
                f" max_body_bytes ({self.max_body_bytes}): a body that large could never be read"
            )
            raise ConfigError(msg)
        if self.store_memory and self.store_mark_cache >= self.store_memory:
            msg = (
                f"store_mark_cache: {self.store_mark_cache} is not below store_memory"
                f" ({self.store_memory}), which holds it and everything else the store does"
            )
            raise ConfigError(msg)
        if self.store_mark_cache < 0:
            msg = f"store_mark_cache: {self.store_mark_cache} is negative (0 for the engine's)"
            raise ConfigError(msg)
        if self.max_query_cells < 1:
            msg = f"max_query_cells: {self.max_query_cells} is below the minimum of 1"
            raise ConfigError(msg)
        if self.hot_window < 120:
            msg = f"hot_window: {self.hot_window}s is below the minimum of 2 minutes"
            raise ConfigError(msg)
        if not 1 <= self.partitions <= 1024:
            msg = f"partitions: {self.partitions} is not between 1 and 1024"
            raise ConfigError(msg)
        if not 0 < self.port < 65536:
            msg = f"port: {self.port} is not a TCP port"
            raise ConfigError(msg)
        if self.live_minutes < 2:
            msg = f"live_minutes: {self.live_minutes} is below the minimum of 2"
            raise ConfigError(msg)
        if self.store not in ("chdb", "none") and not self.store.startswith(
            ("chdb://", "http://", "https://", "clickhouse://")
        ):
            msg = f"store: {self.store!r} is not 'chdb', 'none' or a ClickHouse URL"
            raise ConfigError(msg)
        if self.open_minutes_every <= 0:
            msg = f"open_minutes_every: {self.open_minutes_every}s must be above 0"
            raise ConfigError(msg)
        if self.node:
            if not _NODE_NAME.match(self.node):
                msg = f"node: {self.node!r} may hold only letters, digits, '-' and '_'"
                raise ConfigError(msg)
            if not self.bus.startswith(("nats://", "tls://")):
                msg = "node: a cluster node needs a NATS JetStream bus (--bus nats://…)"
                raise ConfigError(msg)
            if not self.store.startswith(("http://", "https://")):
                msg = "node: a cluster node needs a shared ClickHouse store (--store http://…)"
                raise ConfigError(msg)
        if not 1 <= self.replicas <= 5:
            msg = f"replicas: {self.replicas} is not between 1 and 5"
            raise ConfigError(msg)
        if self.lease_ttl < 1:
            msg = f"lease_ttl: {self.lease_ttl}s is below the minimum of 1 second"
            raise ConfigError(msg)
        if self.checkpoint_every <= 0:
            msg = f"checkpoint_every: {self.checkpoint_every}s must be above 0"
            raise ConfigError(msg)
        if not 0 <= self.graphite_port < 65536:
            msg = f"graphite_port: {self.graphite_port} is not a TCP port (0 turns it off)"
            raise ConfigError(msg)
        if not self.server_labels.strip() and not self.default_server:
            msg = "server_labels: empty, and no default_server: no protocol point has a server"
            raise ConfigError(msg)
        if bool(self.tls_cert) != bool(self.tls_key):
            msg = "tls_cert and tls_key: give both (--tls-cert and --tls-key) or neither"
            raise ConfigError(msg)
        if self.max_header_bytes < 1024:
            msg = f"max_header_bytes: {self.max_header_bytes} is below the minimum of 1KB"
            raise ConfigError(msg)
        for name in ("header_timeout", "idle_timeout"):
            if getattr(self, name) <= 0:
                msg = f"{name}: {getattr(self, name)}s must be above 0"
                raise ConfigError(msg)
        if self.max_connections < 1:
            msg = f"max_connections: {self.max_connections} must be at least 1"
            raise ConfigError(msg)
        if self.bus != "memory" and not self.bus.startswith(("nats://", "tls://")):
            msg = f"bus: {self.bus!r} is neither 'memory' nor a nats:// URL"
            raise ConfigError(msg)

    @property
    def store_dsn(self) -> str | None:
        """The clickhouse-connect DSN of the store, or None without one."""
        if self.store == "none":
            return None
        if self.store == "chdb":
            return f"chdb:///{Path(self.data_dir).resolve() / 'store'}"
        return self.store

    @property
    def counter_patterns(self) -> tuple[str, ...]:
        """The ``counters`` setting's patterns."""
        return tuple(p.strip() for p in self.counters.split(",") if p.strip())

    @property
    def hot_minutes(self) -> int:
        """Slots in the ring: one per minute of the hot window."""
        return int(self.hot_window // 60)

    @property
    def series_limit(self) -> int:
        """``max_series``, or the series whose ring rows fit ``series_memory``: their open
        slots uncompressed and the rest of the window sealed."""
        if self.max_series:
            return self.max_series
        open_minutes = min(self.hot_minutes, RING_OPEN_MINUTES)
        per_series = open_minutes * RING_OPEN_BYTES_PER_MINUTE
        per_series += (self.hot_minutes - open_minutes) * RING_BYTES_PER_SERIES_MINUTE
        return max(1, self.series_memory // per_series)

    @property
    def advertised_url(self) -> str:
        """Where other nodes reach this one."""
        scheme = "https" if self.tls_cert else "http"
        return self.advertise or f"{scheme}://{self.host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_DURATIONS = {
    "hot_window",
    "max_future",
    "retention_1m",
    "retention_1h",
    "retention_1d",
    "expire_every",
    "checkpoint_every",
    "open_minutes_every",
    "lease_ttl",
    "header_timeout",
    "idle_timeout",
}
_SIZES = {
    "bus_max_bytes",
    "max_body_bytes",
    "writer_max_bytes",
    "store_memory",
    "store_mark_cache",
    "max_header_bytes",
    "series_memory",
    "max_slow_json_bytes",
    "max_inflight_body_bytes",
}


def _coerce(name: str, raw: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    if name not in kinds:
        known = ", ".join(sorted(kinds))
        msg = f"unknown setting {name!r} (known: {known})"
        raise ConfigError(msg)
    if name in _DURATIONS:
        return parse_duration(raw, name)
    if name in _SIZES:
        return parse_size(raw, name)
    kind = kinds[name]
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return _boolean(name, raw)
    except (TypeError, ValueError):
        msg = f"{name}: {raw!r} is not a number"
        raise ConfigError(msg) from None
    return str(raw)


def _boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    msg = f"{name}: {raw!r} is not true or false"
    raise ConfigError(msg)


def load(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Settings from defaults < TOML file < ``MINUTELY_*`` environment < flags (None = unset)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError:
            msg = f"config file {str(path)!r} does not exist"
            raise ConfigError(msg) from None
        except tomllib.TOMLDecodeError as e:
            msg = f"config file {str(path)!r}: {e}"
            raise ConfigError(msg) from None
        section = table.get("minutely", table)
        for key, raw in section.items():
            values[key.replace("-", "_")] = _coerce(key.replace("-", "_"), raw)
    env = os.environ if environ is None else environ
    for key, raw in env.items():
        if key.startswith("MINUTELY_"):
            name = key.removeprefix("MINUTELY_").lower()
            values[name] = _coerce(name, raw)
    for key, raw in flags.items():
        if raw is not None:
            values[key] = _coerce(key, raw)
    if values.get("token_file") and not values.get("token"):
        values["token"] = read_token_file(values["token_file"])
    return Settings(**values)


def read_token_file(path: str | Path) -> str:
    """The token in the file at ``path`` (its first line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        msg = f"token_file: {str(path)!r} cannot be read ({e.strerror})"
        raise ConfigError(msg) from None
    if not lines or not lines[0].strip():
        msg = f"token_file: {str(path)!r} is empty"
        raise ConfigError(msg)
    return lines[0].strip()


def client_token(
    token: str | None = None,
    token_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The token a client command sends: ``token`` (``--token``), else ``token_file``'s, else
    ``MINUTELY_TOKEN``, else none."""
    if token and token.strip():
        return token.strip()
    if token_file:
        return read_token_file(token_file)
    env = os.environ if environ is None else environ
    return env.get("MINUTELY_TOKEN", "").strip()
