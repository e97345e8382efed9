"""Evaluates the expression tree over a grid of instants, from minute partials, columnar.

A value is a ``Scalar`` (one float per instant) or a ``Vector`` (one row per series, one
column per instant; NaN marks an instant where the series has no sample). Each selector is
read once for the whole grid, as minute (or coarser) buckets, and every window is a reduction
over those buckets (``windows``), never a Python loop over samples.

Windows. An instant ``t`` falls in minute ``ceil(t / 60) - 1`` (its end is ``T = ceil(t /
60) · 60``: ``t`` itself when ``t`` is on a minute boundary). A range ``[r]`` is rounded up
to whole minutes, ``R``, and at ``t`` covers the minutes ``[T - R, T)``: for an instant on a
minute boundary, exactly the buckets of ``[t - r, t)``, as Prometheus's ``[t - r, t]``
window but half-open like every minutely bucket; for an instant inside a minute, the
minute being filled is the window's last. When the instants of a query are spaced by a whole
number of minutes, the buckets are read at the largest step ``g`` that divides the range, the
spacing and the first ``T``, so ``avg_over_time(x[1h])`` at a step of 1h reads hourly
partials (and the store its hourly tier).

From partials, exactly: ``min_over_time`` is the min of the mins, ``max_over_time`` the
max of the maxes, ``sum_over_time`` the sum of the sums, ``count_over_time`` the sum of
the counts and ``avg_over_time`` their quotient. ``increase`` of a counter (``kinds.py``) is
the sum of the increases its partials hold (each sample's over the one before it, resets
counted as Prometheus counts them: exact, and increases of adjacent windows add up); of a
gauge, the per-minute growth of ``windows.counter_increases`` over its values. ``rate`` is
that over the range in seconds. A bare selector is the average of the newest minute with data
within 5 minutes before ``T`` (Prometheus's lookback), so ``x`` at a 1-minute step is the
minute averages.

Arithmetic is between scalars, or a vector and a scalar (the result drops ``__name__``, as
Prometheus does); an arithmetic result that is NaN is absent, since NaN marks absence here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from minutely.errors import BadParameter, NotFound
from minutely.model import F64, I64, MINUTE, Partials
from minutely.promql.errors import ExecutionError, NotSupported, PromQLError
from minutely.promql.names import Labels, metric_labels, series_labels
from minutely.promql.syntax import (
    Aggregate,
    Binary,
    Call,
    Expr,
    Matcher,
    MatrixSelector,
    NumberLiteral,
    StringLiteral,
    Unary,
    VectorSelector,
)
from minutely.promql.windows import counter_increases, window_extreme, window_sum
from minutely.query import By, SeriesAnswer, SummaryAnswer

#: Prometheus's lookback: a bare selector takes the newest minute within this many minutes
LOOKBACK_MINUTES = 5
#: the most buckets (series × buckets, over all selectors) one query may read
MAX_CELLS = 5_000_000

_COUNTER_FUNCTIONS = ("rate", "increase")


class Source(Protocol):
    """What the evaluator reads: the names a node knows and its series answers."""

    def server_names(self) -> list[str]: ...

    def metric_names(self) -> list[str]: ...

    def metric_kind(self, metric: str) -> str:
        """``"counter"`` or ``"gauge"``: a counter's partials hold its increases."""
        ...

    def series(
        self, by: By, name: str, start: int, end: int, step: int, only: list[str] | None
    ) -> SeriesAnswer: ...

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None
    ) -> SummaryAnswer: ...


@dataclass(frozen=True, slots=True)
class Scalar:
    values: F64


@dataclass(frozen=True, slots=True)
class Vector:
    labels: list[Labels]
    values: F64


Value = Scalar | Vector


@dataclass(slots=True)
class _Read:
    """The series one selector reads, as bucket partials ``(series, buckets)``."""

    labels: list[Labels]
    parts: Partials
    #: per series: a counter, whose partials hold increases (``counters.py``)
    counter: npt.NDArray[np.bool_]


@dataclass
class Evaluator:
    """Evaluates expressions over ``source``; ``partial`` tells afterwards whether any
    answer read was partial (a cluster partition without a ready owner)."""

    source: Source
    max_cells: int = MAX_CELLS
    partial: bool = False
    cells: int = 0
    _names: tuple[list[str], list[str]] | None = field(default=None, repr=False)

    def evaluate(self, expr: Expr, times: F64) -> Value:
        """``expr`` at each of ``times`` (unix seconds, ascending)."""
        if isinstance(expr, MatrixSelector):
            msg = "a range vector as the answer"
            raise NotSupported(
                msg,
                "minutely keeps minute aggregates, not raw samples: wrap it in a function "
                "such as max_over_time",
            )
        return self._eval(expr, times)

    def _eval(self, expr: Expr, times: F64) -> Value:
        if isinstance(expr, NumberLiteral):
            return Scalar(np.full(len(times), expr.value))
        if isinstance(expr, StringLiteral):
            msg = "a string literal"
            raise NotSupported(msg)
        if isinstance(expr, VectorSelector):
            return self._instant(expr, times)
        if isinstance(expr, MatrixSelector):
            msg = "a range vector is only allowed as a function's argument"
            raise PromQLError(msg)
        if isinstance(expr, Call):
            arg = expr.args[0]
            assert isinstance(arg, MatrixSelector)  # the parser checks
            return self._range_function(expr.func, arg, times)
        if isinstance(expr, Aggregate):
            return self._aggregate(expr, times)
        if isinstance(expr, Unary):
            inner = self._eval(expr.expr, times)
            if expr.op == "+":
                return inner
            if isinstance(inner, Scalar):
                return Scalar(-inner.values)
            return Vector(_drop_name(inner.labels), -inner.values)
        if isinstance(expr, Binary):
            return self._binary(expr, times)
        raise NotSupported(type(expr).__name__)  # pragma: no cover

    # reading

    def _names_known(self) -> tuple[list[str], list[str]]:
        if self._names is None:
            self._names = (self.source.server_names(), self.source.metric_names())
        return self._names

    def _plan(self, sel: VectorSelector) -> tuple[By, list[str], list[str] | None] | None:
        """How to read the series ``sel`` matches: one question per name of the smaller side
        (servers or metrics), each filtered to the other side's matches (``None``: all)."""
        by_instance = [m for m in sel.matchers if m.label == "instance"]
        by_metric = [m for m in sel.matchers if m.label != "instance"]
        all_servers, all_metrics = self._names_known()
        metrics = [n for n in all_metrics if _matches(metric_labels(n), by_metric)]
        servers = [s for s in all_servers if all(m.matches(s) for m in by_instance)]
        if not metrics or not servers:
            return None
        if len(servers) < len(metrics):
            return "server", servers, None if len(metrics) == len(all_metrics) else metrics
        return "metric", metrics, None if len(servers) == len(all_servers) else servers

    def matching(self, sel: VectorSelector, start: int, end: int) -> list[Labels]:
        """The label sets of the series ``sel`` matches that have data in ``[start, end)``."""
        plan = self._plan(sel)
        if plan is None:
            return []
        by, own, only = plan
        found: list[Labels] = []
        for name in own:
            try:
                answer = self.source.summary(by, name, start, end, only)
            except NotFound:
                continue
            except BadParameter as e:
                raise ExecutionError(str(e), e.limit) from None
            self.partial |= answer.partial
            if by == "server":
                found += [series_labels(name, metric) for metric in answer.labels]
            else:
                found += [series_labels(server, name) for server in answer.labels]
        return found

    def _read(self, sel: VectorSelector, first: int, last: int, g: int) -> _Read:
        """Buckets of ``g`` minutes over minutes ``[first, last)`` of every series matching
        ``sel`` (``first`` and ``last`` are multiples of ``g``)."""
        n_buckets = (last - first) // g
        if n_buckets > self.max_cells:  # the windows are sized per bucket, series or none
            msg = (
                f"the query would read {n_buckets:,} buckets per series, over the limit of"
                f" {self.max_cells:,} (max_query_cells): use a shorter range or a larger step"
            )
            raise ExecutionError(msg, "max_query_cells")
        labels: list[Labels] = []
        chunks: list[Partials] = []
        counter: list[bool] = []
        nothing = np.zeros(0, np.bool_)
        plan = self._plan(sel)
        if plan is None:
            return _Read(labels, Partials.zeros((0, n_buckets)), nothing)
        by, own, only = plan
        for name in own:
            try:
                answer = self.source.series(
                    by, name, first * MINUTE, last * MINUTE, g * MINUTE, only
                )
            except NotFound:
                continue
            except BadParameter as e:
                raise ExecutionError(str(e), e.limit) from None
            self.partial |= answer.partial
            self.cells += answer.parts.count.size
            if self.cells > self.max_cells:
                msg = (
                    f"the query would read over the limit of {self.max_cells:,} buckets"
                    " (series × buckets, max_query_cells); select fewer series, or use a"
                    " shorter range or a larger step"
                )
                raise ExecutionError(msg, "max_query_cells")
            if by == "server":
                labels += [series_labels(name, metric) for metric in answer.labels]
                counter += [self.source.metric_kind(m) == "counter" for m in answer.labels]
            else:
                labels += [series_labels(server, name) for server in answer.labels]
                counter += [self.source.metric_kind(name) == "counter"] * len(answer.labels)
            chunks.append(answer.parts)
        if not chunks:
            return _Read(labels, Partials.zeros((0, n_buckets)), nothing)
        parts = Partials(
            *(np.concatenate(f, axis=0) for f in zip(*(c.fields() for c in chunks), strict=True))
        )
        return _Read(labels, parts, np.array(counter, dtype=np.bool_))

    # selectors and functions

    def _instant(self, sel: VectorSelector, times: F64) -> Vector:
        ends = _minute_ends(times)
        first = int(ends[0]) - LOOKBACK_MINUTES
        read = self._read(sel, first, int(ends[-1]), 1)
        has = read.parts.count > 0
        positions = np.arange(has.shape[1])
        newest = np.maximum.accumulate(np.where(has, positions, -1), axis=1)
        cols = ends - first - 1
        found = newest[:, cols]
        avg = read.parts.avg()
        values = np.take_along_axis(avg, np.maximum(found, 0), axis=1)
        values = np.where(found > cols - LOOKBACK_MINUTES, values, np.nan)
        return _nonempty(Vector(read.labels, values))

    def _range_function(self, func: str, msel: MatrixSelector, times: F64) -> Vector:
        ends = _minute_ends(times)
        width = max(1, math.ceil(msel.range / MINUTE))
        counter = func in _COUNTER_FUNCTIONS
        extra = LOOKBACK_MINUTES if counter else 0
        g = 1
        spacing = np.unique(np.diff(ends))
        if not counter and len(spacing) <= 1:
            g = math.gcd(width, int(spacing[0]) if len(spacing) else 0, int(ends[0]))
        first = int(ends[0]) - width - extra
        read = self._read(msel.vector, first, int(ends[-1]), g)
        p = read.parts
        cols = (ends - first) // g
        w = width // g
        count = window_sum(p.count.astype(np.float64), cols, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            if func == "min_over_time":
                values = window_extreme(p.neutral().min, cols, w, np.minimum)
            elif func == "max_over_time":
                values = window_extreme(p.neutral().max, cols, w, np.maximum)
            elif func == "sum_over_time":
                values = window_sum(p.neutral().sum, cols, w)
            elif func == "count_over_time":
                values = count
            elif func == "avg_over_time":
                values = window_sum(p.neutral().sum, cols, w) / count
            else:
                growth, pairs = counter_increases(p, LOOKBACK_MINUTES)
                # a counter's partials already hold its increases, each sample's over the one
                # before it: the window's increase is their sum, exact
                kept = read.counter[:, None]
                growth = np.where(kept, p.neutral().sum, growth)
                pairs = np.where(kept, p.count.astype(np.float64), pairs)
                values = window_sum(growth, cols, w)
                count = window_sum(pairs, cols, w)
                if func == "rate":
                    values = values / (width * MINUTE)
        values = np.where(count > 0, values, np.nan)
        return _nonempty(Vector(_unique(_drop_name(read.labels)), values))

    # aggregation and arithmetic

    def _aggregate(self, agg: Aggregate, times: F64) -> Vector:
        inner = self._eval(agg.expr, times)
        if not isinstance(inner, Vector):
            msg = f"expected type instant vector in aggregation expression {agg.op!r}, got scalar"
            raise PromQLError(msg)
        keys = [_group_key(labels, agg.grouping, agg.without) for labels in inner.labels]
        groups: dict[Labels, int] = {}
        gid = np.array([groups.setdefault(k, len(groups)) for k in keys], dtype=np.int64)
        if agg.op in ("topk", "bottomk"):
            assert agg.param is not None
            k = self._eval(agg.param, times)
            if not isinstance(k, Scalar):
                msg = f"expected type scalar as the parameter of {agg.op!r}, got instant vector"
                raise PromQLError(msg)
            return _nonempty(
                Vector(inner.labels, _ranked(inner.values, gid, k.values, agg.op == "topk"))
            )
        order = np.argsort(gid, kind="stable")
        values = inner.values[order]
        starts = np.flatnonzero(np.r_[True, np.diff(gid[order]) != 0]) if len(order) else order
        out_labels = list(groups)
        if not len(order):
            return Vector([], np.zeros((0, len(times))))
        present = ~np.isnan(values)
        count = np.add.reduceat(present, starts, axis=0).astype(np.float64)
        total = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if agg.op == "sum":
                result = total
            elif agg.op == "count":
                result = count
            elif agg.op == "avg":
                result = total / count
            elif agg.op == "min":
                result = np.fmin.reduceat(values, starts, axis=0)
            else:
                result = np.fmax.reduceat(values, starts, axis=0)
        return _nonempty(Vector(out_labels, np.where(count > 0, result, np.nan)))

    def _binary(self, node: Binary, times: F64) -> Value:
        lhs, rhs = self._eval(node.lhs, times), self._eval(node.rhs, times)
        op = _OPERATORS[node.op]
        with np.errstate(all="ignore"):
            if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
                return Scalar(op(lhs.values, rhs.values))
            if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
                return _nonempty(
                    Vector(_drop_name(lhs.labels), op(lhs.values, rhs.values[None, :]))
                )
            if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
                return _nonempty(
                    Vector(_drop_name(rhs.labels), op(lhs.values[None, :], rhs.values))
                )
        msg = f"the operator {node.op!r} between two instant vectors"
        raise NotSupported(
            msg,
            "arithmetic is between scalars, or an instant vector and a scalar",
        )


_OPERATORS: dict[str, Callable[[F64, F64], F64]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,
    "^": np.power,
}


def _minute_ends(times: F64) -> I64:
    """``ceil(t / 60)`` per instant: the minute each instant's windows end before."""
    ends: I64 = np.ceil(times / MINUTE).astype(np.int64)
    return ends


def _matches(labels: dict[str, str], matchers: list[Matcher]) -> bool:
    return all(m.matches(labels.get(m.label, "")) for m in matchers)


def _drop_name(labels: list[Labels]) -> list[Labels]:
    return [tuple(kv for kv in ls if kv[0] != "__name__") for ls in labels]


def _unique(labels: list[Labels]) -> list[Labels]:
    if len(set(labels)) < len(labels):
        msg = "vector cannot contain metrics with the same labelset"
        raise ExecutionError(msg)
    return labels


def _group_key(labels: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    if without:
        dropped = {*grouping, "__name__"}
        return tuple(kv for kv in labels if kv[0] not in dropped)
    return tuple(kv for kv in labels if kv[0] in grouping)


def _ranked(values: F64, gid: I64, k: F64, largest: bool) -> F64:
    """``values`` where the series is among the ``k`` largest (smallest) of its group at that
    instant, NaN elsewhere."""
    out = np.full_like(values, np.nan)
    ks = np.floor(k)[None, :]
    for g in np.unique(gid):
        rows = np.flatnonzero(gid == g)
        v = values[rows]
        key = np.where(np.isnan(v), np.inf, -v if largest else v)
        order = np.argsort(key, axis=0, kind="stable")
        ranks = np.argsort(order, axis=0)
        keep = (ranks < ks) & ~np.isnan(v)
        out[rows] = np.where(keep, v, np.nan)
    return out


def _nonempty(v: Vector) -> Vector:
    """``v`` without the series that have no value at any instant."""
    keep: npt.NDArray[np.bool_] = np.asarray(~np.isnan(v.values).all(axis=1))
    if keep.all():
        return v
    kept = [ls for ls, k in zip(v.labels, keep.tolist(), strict=True) if k]
    return Vector(kept, v.values[keep])
