"""The Prometheus HTTP API (the subset Grafana's Prometheus data source and ``promtool`` use),
over a ``QueryNode``: a thin adapter that parses a request, evaluates PromQL
(``minutely.promql``) on a worker thread and renders Prometheus 2.42's answer shapes.

    GET|POST /api/v1/query                  instant query: ``query``, ``time`` (default now)
    GET|POST /api/v1/query_range            ``query``, ``start``, ``end``, ``step``
    GET|POST /api/v1/series                 ``match[]`` (one or more), ``start``, ``end``
    GET|POST /api/v1/labels                 label names (``match[]`` optional)
    GET      /api/v1/label/{name}/values    a label's values (``match[]`` optional)
    GET      /api/v1/metadata               every metric with its type, counter or gauge
    GET      /api/v1/status/buildinfo       a Prometheus 2.42 build, so Grafana enables its
                                            2.42 features
    GET|POST /api/v1/query_exemplars        always empty: minutely keeps no exemplars

None of these paths is one of minutely's own, so they are mounted at the root and a Grafana
data source's URL is the node's URL. Each series is ``{__name__=<metric>, instance=<server>}``
(plus the labels a ``name{k="v"}`` metric name carries). Times are unix seconds or RFC 3339,
durations seconds or ``5m``; ``series`` and the label endpoints default to the last 2 days.
Errors are ``{"status":"error","errorType":…,"error":…}``: ``bad_data`` (400) for a bad
parameter, a parse error or an unsupported construct; ``execution`` (422) for an answer
over the limits (11,000 points per series, as Prometheus; ``max_query_cells`` buckets read,
counted as a refusal by that limit);
``unavailable`` (503). A cluster answer read partly from the store alone carries a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minutely import __version__
from minutely.api.params import LATEST
from minutely.api.ports import QueryNode, Refusing
from minutely.errors import Unavailable
from minutely.model import F64
from minutely.promql import Evaluator, PromQLError, Scalar, Vector, parse
from minutely.promql.names import Labels, metric_labels
from minutely.promql.parser import parse_duration, tokenize
from minutely.promql.syntax import VectorSelector
from minutely.query import By, SeriesAnswer, SummaryAnswer

#: Prometheus's limit on the points of one series in a range query
MAX_POINTS = 11_000
#: how far back ``series`` and the label endpoints look without a ``start``
DEFAULT_LOOKBACK = 2 * 86400
PARTIAL_WARNING = (
    "partial answer: a partition had no ready owner, so its newest minutes are missing"
)
BUILD_INFO = {
    "version": "2.42.0",
    "revision": f"minutely-{__version__}",
    "branch": "minutely",
    "buildUser": "minutely",
    "buildDate": "",
    "goVersion": "",
}


#: a request's parameters, each with every value it was given
Params = dict[str, list[str]]


class BadData(ValueError):
    """A malformed request parameter (``bad_data``)."""


@dataclass(frozen=True, slots=True)
class NodeSource:
    """A ``QueryNode`` as what the evaluator reads (``promql.Source``)."""

    node: QueryNode

    def server_names(self) -> list[str]:
        return self.node.server_names()

    def metric_names(self) -> list[str]:
        return self.node.metric_names()

    def metric_kind(self, metric: str) -> str:
        return self.node.metric_kind(metric)

    def series(
        self, by: By, name: str, start: int, end: int, step: int, only: list[str] | None
    ) -> SeriesAnswer:
        return self.node.answers.series(by, name, start, end, step, only)

    def summary(
        self, by: By, name: str, start: int, end: int, only: list[str] | None
    ) -> SummaryAnswer:
        return self.node.answers.summary(by, name, start, end, only)


# parameters


def parse_time(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            value = math.nan
    if not math.isfinite(value):
        msg = f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp'
        raise BadData(msg)
    if not 0 <= value <= LATEST:  # beyond, minute arithmetic overflows 64-bit integers
        msg = f'invalid parameter "{name}": "{text}" is outside unix seconds 0 .. {LATEST}'
        raise BadData(msg)
    return value


def parse_step(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            tokens = tokenize(text) if text else []
        except PromQLError:
            tokens = []
        if len(tokens) != 2 or tokens[0].kind != "duration":
            msg = f'invalid parameter "step": cannot parse "{text}" to a valid duration'
            raise BadData(msg) from None
        value = parse_duration(text)
    if not math.isfinite(value) or value <= 0:
        msg = (
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        )
        raise BadData(msg)
    return value


async def _params(request: Request) -> Params:
    """The query string's parameters and, for a POST, the form body's."""
    out: dict[str, list[str]] = {}
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        body = (await request.body()).decode("utf-8", errors="replace")
        pairs += parse_qsl(body, keep_blank_values=True)
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _one(params: Params, name: str, default: str | None = None) -> str:
    values = params.get(name)
    if not values:
        if default is None:
            msg = f'invalid parameter "{name}": missing'
            raise BadData(msg)
        return default
    return values[-1]


# rendering


def format_value(v: float) -> str:
    """As Go's ``strconv.FormatFloat(v, 'f', -1, 64)``, as Prometheus writes sample values."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    if "e" in text:
        text = np.format_float_positional(v, trim="-")
    return text[:-2] if text.endswith(".0") else text


def _times(times: F64) -> list[float | int]:
    rounded = np.round(times, 3).tolist()
    return [int(t) if t.is_integer() else t for t in rounded]


def _metric(labels: Labels) -> dict[str, str]:
    return dict(labels)


def render_instant(value: Scalar | Vector, t: float) -> dict[str, Any]:
    ts = _times(np.array([t]))[0]
    if isinstance(value, Scalar):
        return {"resultType": "scalar", "result": [ts, format_value(float(value.values[0]))]}
    order = sorted(range(len(value.labels)), key=lambda i: value.labels[i])
    column = value.values[:, 0].tolist() if len(value.labels) else []
    result = [
        {"metric": _metric(value.labels[i]), "value": [ts, format_value(column[i])]}
        for i in order
        if not math.isnan(column[i])
    ]
    return {"resultType": "vector", "result": result}


def render_range(value: Scalar | Vector, times: F64) -> dict[str, Any]:
    ts = _times(times)
    if isinstance(value, Scalar):
        labels: list[Labels] = [()]
        rows = value.values[np.newaxis, :]
    else:
        labels, rows = value.labels, value.values
    result = []
    for i in sorted(range(len(labels)), key=lambda i: labels[i]):
        row = rows[i]
        present = np.flatnonzero(~np.isnan(row)).tolist()
        values = row.tolist()
        result.append(
            {
                "metric": _metric(labels[i]),
                "values": [[ts[j], format_value(values[j])] for j in present],
            }
        )
    return {"resultType": "matrix", "result": result}


def _success(data: Any, warnings: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    return Response(orjson.dumps(body), media_type="application/json")


def _failure(error_type: str, message: str, status: int) -> Response:
    body = {"status": "error", "errorType": error_type, "error": message}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


#: a request's parameters and path parameters → the answer's data and whether it is partial
Handler = Callable[[Params, dict[str, str]], tuple[Any, bool]]


def routes(node: QueryNode) -> list[Route]:
    """The Prometheus API's routes over ``node``."""
    source = NodeSource(node)

    def instant(params: Params, path: dict[str, str]) -> tuple[dict[str, Any], bool]:
        expr = parse(_one(params, "query"))
        t = parse_time("time", _one(params, "time", repr(node.clock())))
        evaluator = Evaluator(source, node.answers.max_cells)
        value = evaluator.evaluate(expr, np.array([t]))
        return render_instant(value, t), evaluator.partial

    def ranged(params: Params, path: dict[str, str]) -> tuple[dict[str, Any], bool]:
        expr = parse(_one(params, "query"))
        start = parse_time("start", _one(params, "start"))
        end = parse_time("end", _one(params, "end"))
        step = parse_step(_one(params, "step"))
        if end < start:
            msg = 'invalid parameter "end": end timestamp must not be before start time'
            raise BadData(msg)
        points = math.floor((end - start) / step) + 1
        if points > MAX_POINTS:
            msg = (
                f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
            raise BadData(msg)
        times: F64 = start + np.arange(points, dtype=np.float64) * step
        evaluator = Evaluator(source, node.answers.max_cells)
        value = evaluator.evaluate(expr, times)
        return render_range(value, times), evaluator.partial

    def span(params: Params) -> tuple[int, int]:
        now = node.clock()
        start = parse_time("start", _one(params, "start", repr(now - DEFAULT_LOOKBACK)))
        end = parse_time("end", _one(params, "end", repr(now)))
        if end < start:
            msg = 'invalid parameter "end": end timestamp must not be before start time'
            raise BadData(msg)
        # whole minutes, the current one included
        return int(start // 60) * 60, int(end // 60) * 60 + 60

    def matched(params: Params) -> tuple[list[Labels], bool]:
        start, end = span(params)
        evaluator = Evaluator(source, node.answers.max_cells)
        found: set[Labels] = set()
        for text in params["match[]"]:
            sel = parse(text)
            if not isinstance(sel, VectorSelector):
                msg = f'invalid parameter "match[]": {text!r} is not a series selector'
                raise BadData(msg)
            found.update(evaluator.matching(sel, start, end))
        return sorted(found), evaluator.partial

    def series(params: Params, path: dict[str, str]) -> tuple[Any, bool]:
        if not params.get("match[]"):
            msg = "no match[] parameter provided"
            raise BadData(msg)
        found, partial = matched(params)
        return [_metric(ls) for ls in found], partial

    def every_label() -> list[Labels]:
        metrics = [tuple(metric_labels(m).items()) for m in set(node.metric_names())]
        servers = [(("instance", s),) for s in node.server_names()]
        return metrics + servers

    def labels(params: Params, path: dict[str, str]) -> tuple[Any, bool]:
        found, partial = matched(params) if params.get("match[]") else (every_label(), False)
        return sorted({k for ls in found for k, _ in ls}), partial

    def label_values(params: Params, path: dict[str, str]) -> tuple[Any, bool]:
        found, partial = matched(params) if params.get("match[]") else (every_label(), False)
        return sorted({v for ls in found for k, v in ls if k == path["name"]}), partial

    def metadata(params: Params, path: dict[str, str]) -> tuple[Any, bool]:
        kinds = {metric_labels(m)["__name__"]: node.metric_kind(m) for m in node.metric_names()}
        names = sorted(kinds)
        wanted = params.get("metric")
        if wanted:
            names = [n for n in names if n == wanted[-1]]
        text = _one(params, "limit", "-1") or "-1"
        try:
            limit = int(text)
        except ValueError:
            msg = f'invalid parameter "limit": "{text}" is not an integer'
            raise BadData(msg) from None
        if limit >= 0:
            names = names[:limit]
        return {n: [{"type": kinds[n], "help": "", "unit": ""}] for n in names}, False

    def endpoint(handler: Handler) -> Callable[[Request], Any]:
        async def answer(request: Request) -> Response:
            try:
                params = await _params(request)
                data, partial = await run_in_threadpool(handler, params, request.path_params)
            except PromQLError as e:
                if isinstance(node, Refusing):  # counted when a limit refused it (its .limit)
                    node.refusals.note(e)
                return _failure(e.error_type, str(e), 422 if e.error_type == "execution" else 400)
            except BadData as e:
                return _failure("bad_data", str(e), 400)
            except Unavailable as e:
                return _failure("unavailable", str(e), 503)
            return _success(data, [PARTIAL_WARNING] if partial else None)

        return answer

    async def buildinfo(request: Request) -> Response:
        return _success(BUILD_INFO)

    async def exemplars(request: Request) -> Response:
        return _success([])

    both = ["GET", "POST"]
    return [
        Route("/api/v1/query", endpoint(instant), methods=both),
        Route("/api/v1/query_range", endpoint(ranged), methods=both),
        Route("/api/v1/series", endpoint(series), methods=both),
        Route("/api/v1/labels", endpoint(labels), methods=both),
        Route("/api/v1/label/{name}/values", endpoint(label_values)),
        Route("/api/v1/metadata", endpoint(metadata)),
        Route("/api/v1/status/buildinfo", buildinfo),
        Route("/api/v1/query_exemplars", exemplars, methods=both),
    ]
