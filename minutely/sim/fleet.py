"""``Fleet``: a deterministic, synthetic fleet of servers × metrics. Every value is a pure
function of ``(seed, server, metric, ts)``: the same timestamps give the same values however
the range is chunked, whichever servers are asked for and however many metrics the fleet has.
Generation is columnar numpy (tens of millions of points per second on one core).

How a value is made. Each series has a kind:

- gauge: ``level + daily wave + hourly wave + noise + occasional spike``, never below 0;
- percent: a gauge clipped to ``[0, 100]``;
- counter: the closed-form integral of a rate that follows the daily and hourly waves, plus a
  small jitter, rounded to whole units. Its value is non-decreasing for any two timestamps at
  least ``MIN_SPACING`` (0.1 s) apart: the jitter is bounded by what the counter gains in that
  time.

Each metric is reported at the resolution its agent (node_exporter, collectd, an
application's client library) reports it at, rounded last, after the clip:

- hundredths (``Resolution.HUNDREDTHS``): CPU, memory, swap and disk-busy percentages, load
  averages, GC pauses in ms;
- tenths: temperatures, disk-used percentages;
- whole: every counter, connection, process, thread, file-descriptor and queue-depth count;
- 4,096-byte pages: memory in bytes;
- full precision (``FULL``, about 6 % of a large fleet's series): latency quantiles, which a
  histogram's quantile interpolates between bucket bounds.

``Fleet(..., full_precision=True)`` skips the rounding of gauges and percents (counters stay
whole): every value is then the unrounded one, a codec's worst case.

Noise and spikes come from a counter-based hash of ``(seed, series, ts)`` (splitmix64 keys per
series and per timestamp, combined and mixed once per point), never from a stateful RNG. The two
waves are sums of ``sin``/``cos`` of time, so the smooth part of every value is one small matrix
product: ``[t - EPOCH, sin d, cos d, sin h, cos h, 1] @ coefficients``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from minutely.model import F64, I32, PointBatch

U64 = npt.NDArray[np.uint64]
Bool = npt.NDArray[np.bool_]

#: Counters are non-decreasing for timestamps at least this many seconds apart.
MIN_SPACING: Final = 0.1
#: The highest ``run`` rate (points per series per second) that keeps counters monotonic.
MAX_RATE: Final = 1.0 / MIN_SPACING
#: Counters started counting up to 30 days before this instant (2023-11-14); before that, 0.
EPOCH: Final = 1_700_000_000.0
DAY: Final = 86_400.0
HOUR: Final = 3_600.0
#: Daily peak at 14:00 UTC (before per-series jitter).
PEAK_SECOND_OF_DAY: Final = 14 * 3_600.0
#: A gauge spikes at a given second with probability SPIKE_THRESHOLD / 65536 (about 1 in 30 min).
SPIKE_THRESHOLD: Final = 36
#: Counter jitter, as a fraction of the least the counter gains per second.
COUNTER_JITTER: Final = MIN_SPACING / 2 * 0.9
#: Elements per generation block: small enough that the scratch arrays stay in cache.
BLOCK: Final = 1 << 15


class Kind(enum.StrEnum):
    """How a series behaves over time."""

    GAUGE = "gauge"
    PERCENT = "percent"
    COUNTER = "counter"


class Resolution(enum.StrEnum):
    """The step a metric's values are whole multiples of, as its agent reports it.

    A value ``x`` is reported as ``rint(x · s) / s`` for the step's scale ``s`` (100, 10, 1 or
    1/4096), which is ``np.round(x, decimals)`` for the decimal steps.
    """

    HUNDREDTHS = "0.01"
    TENTHS = "0.1"
    WHOLE = "1"
    #: memory in 4,096-byte pages
    PAGES = "4096"
    #: unrounded float64, as a quantile interpolated from histogram buckets is
    FULL = "full"


#: ``s`` per resolution. FULL's power of two is so large that every value it scales (from
#: 2^-548 to 2^424) is already whole, so ``rint`` leaves it and both scalings are exact.
_SCALE: Final = {
    Resolution.HUNDREDTHS: 100.0,
    Resolution.TENTHS: 10.0,
    Resolution.WHOLE: 1.0,
    Resolution.PAGES: 2.0**-12,
    Resolution.FULL: 2.0**600,
}


@dataclass(frozen=True, slots=True)
class _Metric:
    """A metric's shape: how it is reported, typical level (gauges) or rate per second
    (counters), and variation."""

    name: str
    kind: Kind
    resolution: Resolution
    level: float
    #: daily amplitude as a fraction of level (counters: of rate; must stay below 0.8)
    daily: float
    #: noise amplitude as a fraction of level (gauges only)
    noise: float = 0.0
    #: spike height as a multiple of level, or in points for percentages (gauges only)
    spike: float = 0.0


G, P, C = Kind.GAUGE, Kind.PERCENT, Kind.COUNTER
HUNDREDTHS, TENTHS, WHOLE = Resolution.HUNDREDTHS, Resolution.TENTHS, Resolution.WHOLE
PAGES, FULL = Resolution.PAGES, Resolution.FULL

_BASE_METRICS: Final = (
    _Metric("cpu.user", P, HUNDREDTHS, 25, 0.5, 0.15, 40),
    _Metric("cpu.system", P, HUNDREDTHS, 8, 0.4, 0.2, 20),
    _Metric("cpu.iowait", P, HUNDREDTHS, 2, 0.5, 0.5, 30),
    _Metric("cpu.steal", P, HUNDREDTHS, 0.5, 0.2, 0.8),
    _Metric("cpu.idle", P, HUNDREDTHS, 65, 0.25, 0.05),
    _Metric("mem.used_pct", P, HUNDREDTHS, 55, 0.1, 0.01, 15),
    _Metric("mem.used_bytes", G, PAGES, 16e9, 0.1, 0.01, 0.2),
    _Metric("mem.cached_bytes", G, PAGES, 8e9, 0.05, 0.01),
    _Metric("mem.free_bytes", G, PAGES, 4e9, 0.2, 0.02),
    _Metric("swap.used_pct", P, HUNDREDTHS, 3, 0.1, 0.05),
    _Metric("load.1m", G, HUNDREDTHS, 2.0, 0.5, 0.3, 3),
    _Metric("load.5m", G, HUNDREDTHS, 2.0, 0.5, 0.1, 1),
    _Metric("load.15m", G, HUNDREDTHS, 2.0, 0.5, 0.05),
    _Metric("disk.sda.read_bytes", C, WHOLE, 2e6, 0.6),
    _Metric("disk.sda.write_bytes", C, WHOLE, 4e6, 0.6),
    _Metric("disk.sda.read_ops", C, WHOLE, 150, 0.6),
    _Metric("disk.sda.write_ops", C, WHOLE, 300, 0.6),
    _Metric("disk.sda.util_pct", P, HUNDREDTHS, 15, 0.5, 0.3, 60),
    _Metric("disk.sda.used_pct", P, TENTHS, 60, 0.01, 0.001),
    _Metric("net.eth0.rx_bytes", C, WHOLE, 5e6, 0.7),
    _Metric("net.eth0.tx_bytes", C, WHOLE, 8e6, 0.7),
    _Metric("net.eth0.rx_packets", C, WHOLE, 5e3, 0.7),
    _Metric("net.eth0.tx_packets", C, WHOLE, 6e3, 0.7),
    _Metric("net.eth0.rx_errors", C, WHOLE, 0.01, 0.5),
    _Metric("net.eth0.rx_dropped", C, WHOLE, 0.05, 0.5),
    _Metric("tcp.established", G, WHOLE, 400, 0.6, 0.05, 1),
    _Metric("tcp.time_wait", G, WHOLE, 150, 0.6, 0.15, 2),
    _Metric("tcp.retransmits", C, WHOLE, 2, 0.5),
    _Metric("proc.count", G, WHOLE, 250, 0.05, 0.01),
    _Metric("proc.threads", G, WHOLE, 1200, 0.1, 0.02),
    _Metric("fd.open", G, WHOLE, 5000, 0.3, 0.02),
    _Metric("app.requests", C, WHOLE, 800, 0.7),
    _Metric("app.errors", C, WHOLE, 0.5, 0.7),
    _Metric("app.latency_ms.p50", G, FULL, 12, 0.3, 0.1, 2),
    _Metric("app.latency_ms.p99", G, FULL, 120, 0.4, 0.25, 5),
    _Metric("app.queue_depth", G, WHOLE, 5, 0.6, 0.6, 10),
    _Metric("gc.pause_ms", G, HUNDREDTHS, 3, 0.3, 0.5, 10),
    _Metric("temp.cpu_c", G, TENTHS, 55, 0.1, 0.02),
    _Metric("uptime_s", C, WHOLE, 1, 0.0),
)


def _disk_name(n: int) -> str:
    """Linux block device naming: 0 → sda, 25 → sdz, 26 → sdaa."""
    letters = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(ord("a") + r) + letters
    return "sd" + letters


def _family(r: int) -> list[_Metric]:
    """The ``r``-th round of numbered metric families, used past the base list."""
    disk = f"disk.{_disk_name(r + 1)}"
    return [
        _Metric(f"{disk}.read_bytes", C, WHOLE, 1e6, 0.6),
        _Metric(f"{disk}.write_bytes", C, WHOLE, 2e6, 0.6),
        _Metric(f"{disk}.read_ops", C, WHOLE, 80, 0.6),
        _Metric(f"{disk}.write_ops", C, WHOLE, 150, 0.6),
        _Metric(f"{disk}.util_pct", P, HUNDREDTHS, 10, 0.5, 0.3, 60),
        _Metric(f"{disk}.used_pct", P, TENTHS, 50, 0.01, 0.001),
        _Metric(f"net.eth{r + 1}.rx_bytes", C, WHOLE, 2e6, 0.7),
        _Metric(f"net.eth{r + 1}.tx_bytes", C, WHOLE, 3e6, 0.7),
        _Metric(f"net.eth{r + 1}.rx_packets", C, WHOLE, 2e3, 0.7),
        _Metric(f"net.eth{r + 1}.tx_packets", C, WHOLE, 2.5e3, 0.7),
        _Metric(f"cpu.{r}.user", P, HUNDREDTHS, 25, 0.5, 0.2, 50),
        _Metric(f"cpu.{r}.system", P, HUNDREDTHS, 8, 0.4, 0.25, 20),
        _Metric(f"cpu.{r}.iowait", P, HUNDREDTHS, 2, 0.5, 0.5, 30),
        _Metric(f"app.requests.{r}", C, WHOLE, 100, 0.7),
        _Metric(f"app.errors.{r}", C, WHOLE, 0.1, 0.7),
        _Metric(f"app.latency_ms.{r}", G, FULL, 20, 0.3, 0.2, 5),
    ]


def _metrics(count: int) -> list[_Metric]:
    """The first ``count`` metrics: the base list, then numbered families (prefix-stable)."""
    out = list(_BASE_METRICS[:count])
    r = 0
    while len(out) < count:
        out.extend(_family(r)[: count - len(out)])
        r += 1
    return out


#: Server roles, cycled so that a larger fleet extends a smaller one's names.
_ROLE_CYCLE: Final = ("web", "web", "web", "api", "api", "db", "cache", "worker", "worker", "queue")
#: How busy each role is per metric family (the name's first component); 1 if absent.
_ROLE_LOAD: Final = {
    "web": {"net": 2.0, "app": 2.0, "tcp": 2.0},
    "api": {"app": 1.5, "cpu": 1.2},
    "db": {"disk": 4.0, "mem": 1.2},
    "cache": {"mem": 1.3, "net": 3.0},
    "worker": {"cpu": 1.5, "load": 2.0},
    "queue": {"disk": 2.0, "net": 1.5},
}


def _server_names(count: int) -> list[tuple[str, str]]:
    """``(name, role)`` per server: ``web-001``, ``web-002``, ``web-003``, ``api-001``…"""
    roles = [_ROLE_CYCLE[i % len(_ROLE_CYCLE)] for i in range(count)]
    width = max(3, len(str(max((roles.count(r) for r in set(roles)), default=0))))
    seen: dict[str, int] = {}
    out = []
    for role in roles:
        seen[role] = seen.get(role, 0) + 1
        out.append((f"{role}-{seen[role]:0{width}d}", role))
    return out


# -- counter-based hashing ---------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MIX3 = np.uint64(0xD6E8FEB86659FD93)


def _splitmix(x: U64) -> U64:
    """splitmix64's finaliser, element-wise (wrapping uint64 arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    out: U64 = z ^ (z >> np.uint64(31))
    return out


def _seed_key(seed: int, stream: int) -> np.uint64:
    mixed = _splitmix(np.array([seed & 0xFFFF_FFFF_FFFF_FFFF, stream], dtype=np.uint64))
    return np.uint64(mixed[0] ^ _splitmix(mixed[1:2])[0])


def _uniform(keys: U64, salt: int) -> F64:
    """A uniform [0, 1) per key, independent for each ``salt``."""
    h = _splitmix(keys ^ np.uint64(salt * 0x2545F4914F6CDD1D & 0xFFFF_FFFF_FFFF_FFFF))
    out: F64 = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return out


def _time_keys(ts: F64, seed_key: np.uint64) -> U64:
    """One hash key per timestamp (resolution: a millisecond)."""
    ms = np.rint(ts * 1000.0).astype(np.int64).view(np.uint64)
    return _splitmix(ms ^ seed_key)


def _time_matrix(ts: F64) -> F64:
    """``[t - EPOCH, sin day, cos day, sin hour, cos hour, 1]`` per timestamp."""
    day = np.mod(ts, DAY) * (2 * math.pi / DAY)
    hour = np.mod(ts, HOUR) * (2 * math.pi / HOUR)
    return np.stack(
        [ts - EPOCH, np.sin(day), np.cos(day), np.sin(hour), np.cos(hour), np.ones_like(ts)],
        axis=1,
    )


@dataclass(frozen=True, slots=True)
class _Series:
    """Per-series generation constants, one row per series (server-major)."""

    key: U64
    #: coefficients of the time matrix's columns, shape (6, series): rows contiguous
    coef: F64
    noise: F64
    spike: F64
    ceiling: F64
    #: the resolution's scale: values are ``rint(x · scale) / scale``
    scale: F64

    @staticmethod
    def allocate(n: int) -> _Series:
        return _Series(
            np.empty(n, np.uint64),
            np.empty((6, n)),
            np.empty(n),
            np.empty(n),
            np.empty(n),
            np.empty(n),
        )

    def fill(self, start: int, part: _Series) -> None:
        """Copy ``part`` into this series' rows from ``start`` on."""
        end = start + int(part.key.shape[0])
        self.key[start:end] = part.key
        self.coef[:, start:end] = part.coef
        self.noise[start:end] = part.noise
        self.spike[start:end] = part.spike
        self.ceiling[start:end] = part.ceiling
        self.scale[start:end] = part.scale

    def take(self, index: slice | npt.NDArray[np.intp]) -> _Series:
        return _Series(
            self.key[index],
            self.coef[:, index],
            self.noise[index],
            self.spike[index],
            self.ceiling[index],
            self.scale[index],
        )


class Fleet:
    """A deterministic synthetic fleet: ``servers`` × ``metrics`` series at any timestamps.

    Names depend only on the counts (a larger fleet extends a smaller one's names); values
    depend only on ``(seed, server index, metric index, ts)``.
    """

    def __init__(
        self, servers: int, metrics: int, seed: int = 0, *, full_precision: bool = False
    ) -> None:
        if servers < 1 or metrics < 1:
            msg = f"a fleet needs at least one server and one metric, not {servers}×{metrics}"
            raise ValueError(msg)
        if metrics >= 1 << 24 or servers >= 1 << 38:
            msg = f"fleet too large: {servers}×{metrics}"
            raise ValueError(msg)
        self.seed = seed
        self.full_precision = full_precision
        named = _server_names(servers)
        specs = _metrics(metrics)
        if full_precision:
            specs = [m if m.kind is Kind.COUNTER else replace(m, resolution=FULL) for m in specs]
        self.server_names: npt.NDArray[np.object_] = np.array([n for n, _ in named], dtype=object)
        self.server_roles: tuple[str, ...] = tuple(r for _, r in named)
        self.metric_names: npt.NDArray[np.object_] = np.array([m.name for m in specs], dtype=object)
        self.metric_kinds: tuple[Kind, ...] = tuple(m.kind for m in specs)
        self.metric_resolutions: tuple[Resolution, ...] = tuple(m.resolution for m in specs)
        self._time_seed = _seed_key(seed, 1)
        # Built a few servers at a time into arrays allocated once: the temporaries of a
        # 1,000 × 2,000 fleet at once would take four times the ~180 MB kept.
        m, seed_key = len(specs), _seed_key(seed, 0)
        self._series = _Series.allocate(servers * m)
        step = max(1, (1 << 16) // m)
        for a in range(0, servers, step):
            b = min(servers, a + step)
            self._series.fill(a * m, _build_series(specs, self.server_roles[a:b], a, seed_key))

    @property
    def servers(self) -> int:
        return int(self.server_names.shape[0])

    @property
    def metrics(self) -> int:
        return int(self.metric_names.shape[0])

    def __len__(self) -> int:
        """The number of series."""
        return self.servers * self.metrics

    def __repr__(self) -> str:
        full = ", full_precision=True" if self.full_precision else ""
        return f"Fleet(servers={self.servers}, metrics={self.metrics}, seed={self.seed}{full})"

    def kind(self, metric: str) -> Kind:
        """The kind of a metric by name."""
        return self.metric_kinds[self._metric_index(metric)]

    def resolution(self, metric: str) -> Resolution:
        """The resolution a metric is reported at, by name."""
        return self.metric_resolutions[self._metric_index(metric)]

    def _metric_index(self, metric: str) -> int:
        found = np.flatnonzero(self.metric_names == metric)
        if found.shape[0] == 0:
            msg = f"no metric {metric!r} in {self!r}"
            raise KeyError(msg)
        return int(found[0])

    # -- generation ----------------------------------------------------------------------------

    def batch(self, t0: int, seconds: int, servers: slice | None = None) -> PointBatch:
        """Every series at 1 Hz over ``[t0, t0 + seconds)``, ordered by time, then series."""
        return self.at(np.arange(t0, t0 + seconds, dtype=np.float64), servers)

    def batch_by_series(self, t0: int, seconds: int, servers: slice | None = None) -> PointBatch:
        """Like ``batch``, ordered by series (server, then metric), then time."""
        ts = np.arange(t0, t0 + seconds, dtype=np.float64)
        return self.at(ts, servers, series_major=True)

    def at(
        self, ts: npt.ArrayLike, servers: slice | None = None, *, series_major: bool = False
    ) -> PointBatch:
        """Every series (of the servers in ``servers``) at each timestamp of ``ts``.

        Time-major (all series at ``ts[0]``, then at ``ts[1]``…) unless ``series_major``.
        The batch's server dictionary holds only the servers asked for.
        """
        times = np.asarray(ts, dtype=np.float64).reshape(-1)
        chosen = np.arange(self.servers)[servers if servers is not None else slice(None)]
        m, k, n = self.metrics, int(chosen.shape[0]), int(times.shape[0])
        if k == 0 or n == 0:
            return PointBatch(
                self.server_names[chosen], np.zeros(0, np.int32), self.metric_names,
                np.zeros(0, np.int32), np.zeros(0), np.zeros(0),
            )  # fmt: skip
        series = self._select(chosen)
        # At one timestamp both orders are the same; the time-major kernel is the faster.
        values = self._values(series, times, series_major and n > 1)
        server_of = np.repeat(np.arange(k, dtype=np.int32), m)
        metric_of = np.tile(np.arange(m, dtype=np.int32), k)
        s_codes: I32
        m_codes: I32
        if series_major:
            s_codes = np.repeat(server_of, n)
            m_codes = np.repeat(metric_of, n)
            stamps = np.tile(times, k * m)
        else:
            s_codes = np.tile(server_of, n)
            m_codes = np.tile(metric_of, n)
            stamps = np.repeat(times, k * m)
        return PointBatch(
            self.server_names[chosen], s_codes, self.metric_names, m_codes, stamps, values.ravel()
        )

    def _select(self, chosen: npt.NDArray[np.intp]) -> _Series:
        m = self.metrics
        lo, hi = int(chosen[0]), int(chosen[-1]) + 1
        if hi - lo == chosen.shape[0]:  # a contiguous run of servers: views, no copies
            return self._series.take(slice(lo * m, hi * m))
        return self._series.take((chosen[:, None] * m + np.arange(m)).ravel())

    def _values(self, series: _Series, ts: F64, series_major: bool) -> F64:
        """Values as a ``(series, time)`` or ``(time, series)`` array, computed in blocks."""
        tm = _time_matrix(ts)
        tkey = _time_keys(ts, self._time_seed)
        n_series, n_times = int(series.key.shape[0]), int(ts.shape[0])
        rows, cols = (n_series, n_times) if series_major else (n_times, n_series)
        out = np.empty((rows, cols))
        bc = min(cols, BLOCK)
        br = max(1, min(rows, BLOCK // bc))
        scratch = _Scratch(br * bc)
        for r0 in range(0, rows, br):
            r1 = min(rows, r0 + br)
            for c0 in range(0, cols, bc):
                c1 = min(cols, c0 + bc)
                if series_major:
                    s = series.take(slice(r0, r1))
                    _fill(out[r0:r1, c0:c1], scratch, s, tm[c0:c1], tkey[c0:c1], series_major)
                else:
                    s = series.take(slice(c0, c1))
                    _fill(out[r0:r1, c0:c1], scratch, s, tm[r0:r1], tkey[r0:r1], series_major)
        return out


def _build_series(
    specs: list[_Metric], server_roles: tuple[str, ...], first_server: int, seed_key: np.uint64
) -> _Series:
    """Per-series constants for consecutive servers from ``first_server`` on."""
    s, m = len(server_roles), len(specs)
    server_ix = np.repeat(np.arange(first_server, first_server + s, dtype=np.uint64), m)
    metric_ix = np.tile(np.arange(m, dtype=np.uint64), s)
    # A series' identity is (server index, metric index), not its position in this fleet.
    key = _splitmix((server_ix << np.uint64(24)) + metric_ix + seed_key)

    def per_metric(values: list[float]) -> F64:
        return np.tile(np.asarray(values, dtype=np.float64), s)

    level = per_metric([x.level for x in specs])
    daily = per_metric([x.daily for x in specs])
    noise_frac = per_metric([x.noise for x in specs])
    spike_frac = per_metric([x.spike for x in specs])
    is_pct = np.tile(np.array([x.kind is Kind.PERCENT for x in specs]), s)
    is_counter = np.tile(np.array([x.kind is Kind.COUNTER for x in specs]), s)
    scale = per_metric([_SCALE[x.resolution] for x in specs])
    family = [x.name.split(".", 1)[0] for x in specs]
    roles = sorted(_ROLE_LOAD)
    by_role = np.array([[_ROLE_LOAD[r].get(f, 1.0) for f in family] for r in roles])
    role_of = np.array([roles.index(r) for r in server_roles])
    load = by_role[role_of].ravel()

    u = [_uniform(key, salt) for salt in range(1, 7)]
    # Each series sits at its own level: a factor in [0.6, 1.65] around the metric's.
    level = level * np.exp(u[0] - 0.5) * np.where(is_pct, 1.0, load)
    level = np.where(is_pct, np.minimum(level, 95.0), level)
    day_phase = math.pi / 2 - 2 * math.pi * PEAK_SECOND_OF_DAY / DAY + (u[1] - 0.5)
    hour_phase = 2 * math.pi * u[2]
    hourly = daily * 0.25 * u[3]
    daily = daily * (0.75 + 0.25 * u[4])
    w_day, w_hour = 2 * math.pi / DAY, 2 * math.pi / HOUR

    # Gauges: level + A sin(ωt + φ) + ..., with sin(ωt + φ) = sin ωt cos φ + cos ωt sin φ.
    # Noise is N·(f - 1) with f in [0, 2), so N is folded out of the constant.
    amp_d, amp_h = level * daily, level * hourly
    noise = level * noise_frac
    gauge = np.stack(
        [
            np.zeros_like(level),
            amp_d * np.cos(day_phase),
            amp_d * np.sin(day_phase),
            amp_h * np.cos(hour_phase),
            amp_h * np.sin(hour_phase),
            level - noise,
        ],
        axis=0,
    )
    # Counters: the integral since EPOCH of rate·(1 + a sin(ωt + φ) + b sin(ω't + φ')),
    # i.e. rate·(t - E) - (rate·a/ω)(cos(ωt + φ) - cos(ωE + φ)) - ..., plus a start offset
    # (as if each counter had been counting for up to 30 days at EPOCH) and a jitter
    # J·f, f in [0, 2), bounded by what the counter gains in MIN_SPACING.
    rate = level
    k_d, k_h = rate * daily / w_day, rate * hourly / w_hour
    start = rate * u[5] * 30 * DAY + k_d * np.cos(w_day * EPOCH + day_phase)
    start += k_h * np.cos(w_hour * EPOCH + hour_phase)
    jitter = COUNTER_JITTER * rate * (1.0 - daily - hourly)
    counter = np.stack(
        [
            rate,
            k_d * np.sin(day_phase),
            -k_d * np.cos(day_phase),
            k_h * np.sin(hour_phase),
            -k_h * np.cos(hour_phase),
            start,
        ],
        axis=0,
    )
    return _Series(
        key=key,
        coef=np.ascontiguousarray(np.where(is_counter[None, :], counter, gauge)),
        noise=np.where(is_counter, jitter, noise),
        spike=np.where(is_counter, 0.0, np.where(is_pct, spike_frac, level * spike_frac))
        * (0.5 + u[5]),
        ceiling=np.where(is_pct, 100.0, np.inf),
        scale=scale,
    )


class _Scratch:
    """Reusable per-block buffers, so a batch allocates them once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.u = np.empty(size, np.uint64)
        self.v = np.empty(size, np.uint64)
        self.f = np.empty(size, np.float64)
        self.g = np.empty(size, np.float64)
        self.mask = np.empty(size, np.bool_)

    def views(self, shape: tuple[int, int]) -> tuple[U64, U64, F64, F64, Bool]:
        n = shape[0] * shape[1]
        return (
            self.u[:n].reshape(shape),
            self.v[:n].reshape(shape),
            self.f[:n].reshape(shape),
            self.g[:n].reshape(shape),
            self.mask[:n].reshape(shape),
        )


_LOW16 = np.uint64(0xFFFF)
_LOW24 = np.uint64(0xFFFFFF)


def _fill(out: F64, scratch: _Scratch, s: _Series, tm: F64, tkey: U64, series_major: bool) -> None:
    """Compute one block of values into ``out`` (``(series, time)`` or ``(time, series)``)."""
    u, v, f, g, mask = scratch.views(out.shape)

    def per_series(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a[:, None] if series_major else a[None, :]

    # The point's hash: mix(series key + time key).
    if series_major:
        np.add(s.key[:, None], tkey[None, :], out=u)
        np.matmul(s.coef.T, tm.T, out=f)
    else:
        np.add(tkey[:, None], s.key[None, :], out=u)
        np.matmul(tm, s.coef, out=f)
    np.right_shift(u, np.uint64(32), out=v)
    np.bitwise_xor(u, v, out=u)
    np.multiply(u, _MIX3, out=u)
    np.right_shift(u, np.uint64(29), out=v)
    np.bitwise_xor(u, v, out=u)
    # Spikes: where bits 24..39 of the hash fall under the threshold.
    np.right_shift(u, np.uint64(24), out=v)
    np.bitwise_and(v, _LOW16, out=v)
    np.less(v, np.uint64(SPIKE_THRESHOLD), out=mask)
    # Noise: bits 40..63 and 0..23 as two uniforms, summed (triangular on [0, 2)).
    np.right_shift(u, np.uint64(40), out=v)
    np.bitwise_and(u, _LOW24, out=u)
    np.add(u, v, out=v)
    np.multiply(v.view(np.int64), 2.0**-24, out=g)  # via int64: a faster cast than uint64
    np.multiply(g, per_series(s.noise), out=g)
    np.add(f, g, out=f)
    np.add(f, per_series(s.spike), out=f, where=mask)
    np.maximum(f, 0.0, out=f)
    np.minimum(f, per_series(s.ceiling), out=f)
    # Rounded as the agent reports it, after the clip: 0 and 100 are whole at every step, and
    # rint is monotonic, so counters stay non-decreasing. A division, not a multiplication by
    # 1/scale, so that values are exactly np.round's.
    scale = per_series(s.scale)
    np.multiply(f, scale, out=f)
    np.rint(f, out=f)
    np.divide(f, scale, out=out)
